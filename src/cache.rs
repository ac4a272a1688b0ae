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

use std::path::PathBuf;

/// The cache directory, or `None` when neither `XDG_CACHE_HOME` nor `HOME` is set.
pub fn dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".cache"),
    };
    Some(base.join("cfsetup"))
}
