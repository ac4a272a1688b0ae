//! What this machine last saw live for a tenant: the live Route's digest and shard hashes, as
//! this machine last read them (the head of a deploy's plan) or switched to them, in
//! `$XDG_CACHE_HOME/cfsetup/live/<key>.json` (else `~/.cache/cfsetup/live/`), where `<key>` is the
//! SHA-256 of the account, jurisdiction, bucket and tenant. A deploy uses it to guess, before it
//! reads the head, what the live deploy lacks (the blobs its early intent names) and whether
//! anything changed at all (docs/storage-layout.md "deploy-site", step 1).
//!
//! Only a guess: the head read beside it decides, and a wrong guess costs a round trip, never
//! safety. Nothing here is a secret (shard hashes, a digest). Best effort: any I/O error means
//! "never seen". Imports only `site::manifest` and `cache`; never storage.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::site::manifest::{is_hash, sha256_hex};

/// The live Route of a tenant as last seen here (format 3 only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct LastLive {
    pub digest: String,
    pub shards: Vec<String>,
}

fn path_in(cache: &Path, place: &str) -> PathBuf {
    let key = sha256_hex(format!("cfsetup live v1\0{place}").as_bytes());
    cache.join("live").join(format!("{key}.json"))
}

/// `place` names the tenant in its bucket (account, jurisdiction, bucket, tenant).
pub(super) fn read(place: &str) -> Option<LastLive> {
    read_in(&crate::cache::dir()?, place)
}

/// Records `last` as live for `place`, or forgets it (`None`: the tenant has no format 3 live
/// deploy); errors are ignored.
pub(super) fn write(place: &str, last: Option<&LastLive>) {
    if let Some(cache) = crate::cache::dir() {
        write_in(&cache, place, last);
    }
}

fn read_in(cache: &Path, place: &str) -> Option<LastLive> {
    let bytes = std::fs::read(path_in(cache, place)).ok()?;
    let last: LastLive = serde_json::from_slice(&bytes).ok()?;
    (is_hash(&last.digest) && last.shards.iter().all(|h| is_hash(h))).then_some(last)
}

fn write_in(cache: &Path, place: &str, last: Option<&LastLive>) {
    let p = path_in(cache, place);
    let Some(last) = last else {
        let _ = std::fs::remove_file(&p);
        return;
    };
    if read_in(cache, place).as_ref() == Some(last) {
        return;
    }
    let (Some(dir), Some(name), Ok(bytes)) = (
        p.parent(),
        p.file_name().and_then(|n| n.to_str()),
        serde_json::to_vec(last),
    ) else {
        return;
    };
    let _ = crate::cache::write(dir, name, &bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_kept_per_place_and_a_bad_one_is_ignored() {
        let tmp = std::env::temp_dir().join(format!("cfsetup-live-{}", std::process::id()));
        let h = "a".repeat(64);
        let last = LastLive {
            digest: h.clone(),
            shards: vec![h.clone()],
        };
        let place = "acct//b/acme";
        assert!(read_in(&tmp, place).is_none());
        write_in(&tmp, place, Some(&last));
        assert_eq!(read_in(&tmp, place), Some(last.clone()));
        assert!(read_in(&tmp, "acct//b/globex").is_none());
        std::fs::write(path_in(&tmp, place), br#"{"digest":"x","shards":[]}"#).unwrap();
        assert!(read_in(&tmp, place).is_none());
        write_in(&tmp, place, Some(&last));
        write_in(&tmp, place, None);
        assert!(read_in(&tmp, place).is_none());
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
