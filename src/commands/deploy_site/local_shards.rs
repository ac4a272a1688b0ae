//! A local cache of content-addressed shards (`shards/<sha256>.json`), by hash, in
//! `$XDG_CACHE_HOME/cfsetup/shards/` (else `~/.cache/cfsetup/shards/`): a deploy keeps the
//! shards it wrote, so the next deploy from the same machine reads the live shards it replaces
//! from disk instead of R2 (one request fewer on a one-file change). A shard is immutable and
//! named by the SHA-256 of its bytes, so an entry is either exactly right or ignored: every read
//! checks the hash. Nothing here is a secret (paths, blob hashes, sizes, content types).
//! Best effort: any I/O error means "not cached". Imports only `site::manifest` and `cache`;
//! never storage.

use std::path::PathBuf;

use crate::site::manifest::{is_hash, sha256_hex, Shard};

/// At most this many shards are kept; beyond it the directory is emptied (they are cheap to
/// read again).
const MAX_ENTRIES: usize = 4096;

fn dir() -> Option<PathBuf> {
    Some(crate::cache::dir()?.join("shards"))
}

/// The shard `hash` names, if it is cached and its bytes still hash to the name.
pub(super) fn read(hash: &str) -> Option<Shard> {
    if !is_hash(hash) {
        return None;
    }
    let bytes = std::fs::read(dir()?.join(format!("{hash}.json"))).ok()?;
    Shard::parse(&bytes, Some(hash)).ok()
}

/// Keeps these shards (hash, bytes); errors are ignored.
pub(super) fn write(shards: &[(String, Vec<u8>)]) {
    let Some(dir) = dir() else { return };
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    if std::fs::read_dir(&dir).map_or(0, Iterator::count) + shards.len() > MAX_ENTRIES {
        let _ = std::fs::remove_dir_all(&dir);
        if std::fs::create_dir_all(&dir).is_err() {
            return;
        }
    }
    for (hash, bytes) in shards {
        if !is_hash(hash) || sha256_hex(bytes) != *hash {
            continue;
        }
        let name = format!("{hash}.json");
        if dir.join(&name).exists() {
            continue;
        }
        // Whole or not at all (a reader would reject half a file by its hash anyway).
        let _ = crate::cache::write(&dir, &name, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_used_only_when_its_bytes_hash_to_its_name() {
        let tmp = std::env::temp_dir().join(format!("cfsetup-shards-{}", std::process::id()));
        std::env::set_var("XDG_CACHE_HOME", &tmp);
        let bytes = br#"{"files":{}}"#.to_vec();
        let hash = sha256_hex(&bytes);
        assert!(read(&hash).is_none());
        write(&[(hash.clone(), bytes.clone())]);
        assert_eq!(read(&hash).unwrap().files.len(), 0);
        // Other bytes under the name are ignored.
        std::fs::write(
            dir().unwrap().join(format!("{hash}.json")),
            b"{\"files\":{\"/a\":1}}",
        )
        .unwrap();
        assert!(read(&hash).is_none());
        assert!(read("../../etc/passwd").is_none());
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
