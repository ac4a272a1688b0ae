//! The API token's id, kept locally so that a run needs no `GET /user/tokens/verify` to derive
//! R2's S3 keys once this machine has verified the token (docs/storage-layout.md "The token id,
//! kept locally").
//!
//! An entry is `<cache>/token-ids/<key>`, where `<cache>` is [`crate::cache::dir`] and `<key>` is
//! `hex(SHA-256("cfsetup token-id v1\0" ‖ token))`. The key is domain-separated on purpose: the
//! plain `SHA-256(token)` is the token's S3 Secret Access Key (docs/cloudflare-api.md §7 "S3
//! credentials from an API token"), so it must never be written anywhere. The file holds only
//! the token's id (32 lowercase hex), which is the S3 Access Key ID: an identifier, not a secret
//! (the API returns it to anyone holding the token, and it is sent in the clear in every S3
//! request's `Authorization` header). A token's id never changes while its value is the same
//! (rolling a token changes the value, so the key), so an entry cannot go stale; one that is
//! unreadable or malformed is ignored, and an S3 refusal of the keys derived with a cached id
//! removes the entry ([`forget`]), so the next run verifies the token again.
//!
//! Best effort throughout: a failure to read is "not cached", a failure to write is logged at
//! debug level and otherwise ignored. Written `0600` (its folder `0700`) under a temporary name,
//! then renamed ([`crate::cache::write`]). Imports only `cache` and `secret`.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// What the key hashes before the token: never the bare token (see the module's doc).
const DOMAIN: &[u8] = b"cfsetup token-id v1\0";

/// The entry's file name for `token`.
fn key(token: &Secret) -> String {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(token.expose().as_bytes());
    hex::encode(h.finalize())
}

fn dir() -> Option<PathBuf> {
    Some(crate::cache::dir()?.join("token-ids"))
}

/// Where `token`'s id is kept (whether or not it is there).
fn path(token: &Secret) -> Option<PathBuf> {
    Some(dir()?.join(key(token)))
}

fn is_id(v: &str) -> bool {
    v.len() == 32
        && v.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `token`'s id, if this machine kept it and the entry is well formed.
pub fn read(token: &Secret) -> Option<String> {
    let text = std::fs::read_to_string(path(token)?).ok()?;
    let id = text.trim();
    is_id(id).then(|| id.to_string())
}

/// Keeps `id` as `token`'s id (only a well-formed id; an entry already holding it is left).
pub fn write(token: &Secret, id: &str) {
    if !is_id(id) || read(token).as_deref() == Some(id) {
        return;
    }
    if let Err(e) = try_write(token, id) {
        log::debug!("could not keep the API token's id in the local cache: {e}");
    }
}

fn try_write(token: &Secret, id: &str) -> std::io::Result<()> {
    let dir = dir().ok_or_else(|| std::io::Error::other("no cache directory (HOME unset)"))?;
    crate::cache::write(&dir, &key(token), format!("{id}\n").as_bytes())
}

/// Drops `token`'s entry (S3 refused the keys derived with it).
pub fn forget(token: &Secret) {
    if let Some(p) = path(token) {
        match std::fs::remove_file(&p) {
            Ok(()) => log::debug!("removed the cached API token id {}", p.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::debug!("could not remove {}: {e}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_domain_separated_from_the_s3_secret() {
        let token = Secret::new("abc");
        let plain = hex::encode(Sha256::digest(b"abc"));
        assert_ne!(key(&token), plain);
        assert_eq!(key(&token).len(), 64);
        assert_ne!(key(&token), key(&Secret::new("abd")));
        assert!(is_id("0123456789abcdef0123456789abcdef"));
        assert!(!is_id("0123456789ABCDEF0123456789abcdef"));
        assert!(!is_id("../../etc/passwd"));
    }
}
