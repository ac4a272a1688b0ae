//! Object storage: the one type through which every command reads and writes the bucket's objects.
//!
//! Commands hold a [`Storage`] and never know which API carries an object. The shape follows
//! apache/arrow-rs-object-store (`put_opts` with a [`PutMode`] of overwrite, create-if-absent or
//! update-if-version-matches; conditional reads; listings), as STYLE.md §26 suggests.
//!
//! Backends:
//! - [`rest`]: R2's REST object endpoints through the one [`Client`](crate::cloudflare::Client)
//!   (paced to the REST API's 1,200 requests per 5 minutes; cloudflare-api.md §1, §7). The
//!   fallback for the Global API Key, which has no token id to derive S3 keys from.
//!
//! ETags are kept unquoted everywhere in this module: R2's REST GET quotes them, its listings and
//! PUT results do not (cloudflare-api.md §7 "Object REST endpoints").
//!
//! This module must not import commands, reports or output.

use std::path::PathBuf;
use std::time::SystemTime;

use bytes::Bytes;

pub mod rest;

pub use rest::RestStore;

/// Which bucket, in which account and jurisdiction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketLoc {
    pub account: String,
    pub name: String,
    /// `None` is the default jurisdiction; otherwise `eu` or `fedramp`.
    pub jurisdiction: Option<String>,
}

/// How a PUT treats an object that may already exist (object_store `PutMode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutMode {
    /// Write whatever is there.
    Overwrite,
    /// Write only if the key does not exist (`If-None-Match: *`).
    Create,
    /// Write only if the object's current ETag is this one (`If-Match`), unquoted.
    Update(String),
}

/// Options of one PUT.
#[derive(Debug, Clone)]
pub struct PutOptions {
    pub mode: PutMode,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
}

impl PutOptions {
    /// An unconditional PUT with this content type.
    pub fn overwrite(content_type: &str) -> Self {
        PutOptions {
            mode: PutMode::Overwrite,
            content_type: Some(content_type.to_string()),
            cache_control: None,
        }
    }

    pub fn with_mode(mut self, mode: PutMode) -> Self {
        self.mode = mode;
        self
    }
}

/// What to upload.
#[derive(Debug, Clone)]
pub enum Payload {
    /// Bytes in memory (manifests, heads, shards, intents).
    Bytes(Bytes),
    /// A file streamed from disk. `sha256` is the hash it was walked with (the blob's key): the
    /// upload fails, and nothing is stored, if the bytes read from disk do not hash to it.
    File {
        path: PathBuf,
        len: u64,
        sha256: String,
    },
}

impl Payload {
    pub fn len(&self) -> u64 {
        match self {
            Payload::Bytes(b) => b.len() as u64,
            Payload::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An object's metadata, from a HEAD, a GET or a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// Unquoted.
    pub etag: Option<String>,
    pub last_modified: Option<SystemTime>,
}

/// An object read whole.
#[derive(Debug, Clone)]
pub struct Object {
    pub meta: ObjectMeta,
    pub body: Bytes,
}

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A conditional PUT's condition did not hold: the key exists (`Create`) or changed
    /// (`Update`). HTTP 412 PreconditionFailed.
    #[error("{key} was changed by another writer (the write's condition failed)")]
    PreconditionFailed { key: String },
    /// The bytes read from disk did not hash to the name they were uploaded under.
    #[error("{} changed on disk while it was being uploaded (it no longer hashes to {expected})", path.display())]
    ChangedOnDisk { path: PathBuf, expected: String },
    /// The REST API refused or failed.
    #[error(transparent)]
    Rest(#[from] crate::cloudflare::Error),
}

impl StorageError {
    pub fn is_precondition_failed(&self) -> bool {
        matches!(self, StorageError::PreconditionFailed { .. })
    }
}

/// The bucket's objects, over whichever API this run uses.
#[derive(Debug, Clone)]
pub struct Storage {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Rest(RestStore),
}

impl Storage {
    /// Objects over the REST API only.
    pub fn rest(store: RestStore) -> Self {
        Storage {
            backend: Backend::Rest(store),
        }
    }

    /// `"REST"` or `"S3"`: which API carries objects, for reports.
    pub fn via(&self) -> &'static str {
        match &self.backend {
            Backend::Rest(_) => "REST",
        }
    }

    /// Whether conditional PUTs are enforced by the server (S3) rather than checked just before
    /// the write (REST; docs/storage-layout.md "Over the REST API").
    pub fn conditional_writes_are_atomic(&self) -> bool {
        match &self.backend {
            Backend::Rest(_) => false,
        }
    }

    pub fn bucket(&self) -> &BucketLoc {
        match &self.backend {
            Backend::Rest(s) => s.bucket(),
        }
    }

    /// The whole object, or `None` if the key does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Object>, StorageError> {
        match &self.backend {
            Backend::Rest(s) => s.get(key).await,
        }
    }

    /// The object's metadata, or `None` if the key does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        match &self.backend {
            Backend::Rest(s) => s.head(key).await,
        }
    }

    /// Writes `payload` under `key`; returns the new ETag (unquoted) when the API gives one.
    pub async fn put(
        &self,
        key: &str,
        payload: Payload,
        options: PutOptions,
    ) -> Result<Option<String>, StorageError> {
        match &self.backend {
            Backend::Rest(s) => s.put(key, payload, options).await,
        }
    }

    /// Deletes `key`; a missing key is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match &self.backend {
            Backend::Rest(s) => s.delete(key).await,
        }
    }

    /// Every object whose key starts with `prefix`, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        match &self.backend {
            Backend::Rest(s) => s.list(prefix).await,
        }
    }

    /// The distinct next path levels below `prefix` (a listing with delimiter `/`): for
    /// `sites/`, every `sites/<tenant>/`.
    pub async fn list_prefixes(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        match &self.backend {
            Backend::Rest(s) => s.list_prefixes(prefix).await,
        }
    }
}

/// The common prefixes of `keys` one `/`-level below `prefix`, sorted and distinct.
pub(crate) fn prefixes_below<'a>(prefix: &str, keys: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = keys
        .filter_map(|k| {
            let rest = k.strip_prefix(prefix)?;
            let cut = rest.find('/')?;
            Some(format!("{prefix}{}", &rest[..=cut]))
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// `"abc"` → `abc`; a weak `W/"abc"` → `abc`.
pub(crate) fn unquote_etag(etag: &str) -> String {
    let e = etag.trim();
    let e = e.strip_prefix("W/").unwrap_or(e);
    e.trim_matches('"').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_one_level_below() {
        let keys = [
            "sites/a/manifest.json",
            "sites/a/deploys/1.json",
            "sites/b/manifest.json",
            "sites/top.json",
        ];
        assert_eq!(
            prefixes_below("sites/", keys.into_iter()),
            ["sites/a/", "sites/b/"]
        );
    }

    #[test]
    fn etags_are_unquoted() {
        assert_eq!(unquote_etag("\"abc\""), "abc");
        assert_eq!(unquote_etag("W/\"abc\""), "abc");
        assert_eq!(unquote_etag("abc"), "abc");
    }
}
