//! cfsetup's local cache directory: `$XDG_CACHE_HOME/cfsetup/`, else `~/.cache/cfsetup/`. What
//! lives there is never a secret and is always safe to delete (`rm -rf ~/.cache/cfsetup`): each
//! entry is checked when read and a run without it only makes a request more.
//!
//! - `shards/<sha256>.json`: content-addressed shards this machine wrote or read
//!   (`commands::deploy_site::local_shards`).
//! - `live/<hex>.json`: the digest and shard hashes of a tenant's live Route as this machine last
//!   saw it (`commands::deploy_site::local_live`), to guess what a deploy's intent must name.
//! - `token-ids/<hex>`: an API token's id, under a domain-separated hash of the token
//!   (`storage::token_ids`).
//!
//! Imports nothing of the crate.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The cache directory, or `None` when neither `XDG_CACHE_HOME` nor `HOME` is set.
pub fn dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".cache"),
    };
    Some(base.join("cfsetup"))
}

/// Writes `bytes` to `dir/name` whole: under a temporary name in the same folder, then renamed,
/// so a reader never sees half a file. The folder is made if missing (`0700`) and the file is
/// `0600`: nothing here is a secret, but none of it is anyone else's business either. On an
/// error the temporary file is removed; callers treat the cache as best effort.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let mut folder = std::fs::DirBuilder::new();
    folder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        folder.mode(0o700);
    }
    folder.create(dir)?;
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|()| std::fs::rename(&tmp, dir.join(name)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
