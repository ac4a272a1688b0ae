//! Object storage: the one type through which every command reads and writes the bucket's objects.
//!
//! Commands hold a [`Storage`] and never know which API carries an object; [`open`] (open.rs)
//! is the one place that picks the backend from the configuration and the credentials. The
//! shape follows apache/arrow-rs-object-store (`put_opts` with a [`PutMode`] of overwrite, create-if-absent or
//! update-if-version-matches; conditional reads; listings), as docs/design.md describes.
//!
//! Backends:
//! - [`s3`]: R2's S3 API with keys derived from the API token (docs/cloudflare-api.md §7), outside the
//!   REST limit. The default with an API token.
//! - [`rest`]: R2's REST object endpoints through the one [`Client`](crate::cloudflare::Client)
//!   (paced to the REST API's 1,200 requests per 5 minutes; docs/cloudflare-api.md §1, §7). The
//!   fallback for the Global API Key, which has no token id to derive S3 keys from.
//! - `auto` ([`Storage::auto`]): S3, falling back to REST for the rest of the run when S3
//!   refuses the derived keys on its first calls (401 Unauthorized, InvalidAccessKeyId,
//!   SignatureDoesNotMatch, AccessDenied, or 400 InvalidArgument "Credential access key has
//!   length N"; [`StorageError::is_s3_auth_refusal`]), or when its first call gets no answer
//!   at all (DNS, refused, reset, TLS, or nothing within 2 s: [`StorageError::S3Unreachable`]),
//!   with one note on stderr naming the cause.
//!
//! ETags are kept unquoted everywhere in this module: R2's REST GET quotes them, its listings and
//! PUT results do not (docs/cloudflare-api.md §7 "Object REST endpoints").
//!
//! This module must not import commands, reports or output.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::names::BucketName;
use bytes::Bytes;

pub mod open;
pub mod rest;
pub mod s3;
pub mod token_ids;

pub use open::{open, open_with, s3_store, s3_store_at, OpenSetup};
pub use rest::{RestStore, REST_MAX_OBJECT_SIZE};
pub use s3::{S3Credentials, S3Options, S3Store, S3_MAX_OBJECT_SIZE};

/// Which bucket, in which account and jurisdiction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketLoc {
    pub account: String,
    pub name: BucketName,
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

impl ObjectMeta {
    /// Whether `self` and `other`, two looks at one key, saw the same write. The ETag decides
    /// when both have one: every refresh of an intent or marker rewrites its bytes, so its ETag.
    /// Without both ETags the times decide, truncated to whole seconds on both sides: a listing
    /// carries R2's milliseconds, a HEAD's `Last-Modified` is an HTTP date with whole seconds, so
    /// the two never compare equal untruncated (docs/cloudflare-api.md §7 "Times";
    /// aws-sdk-js#3717 shows the same gap on S3).
    pub fn same_version(&self, other: &ObjectMeta) -> bool {
        match (&self.etag, &other.etag) {
            (Some(a), Some(b)) => a == b,
            _ => {
                let secs = |t: Option<SystemTime>| {
                    t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                        .map(|d| d.as_secs())
                };
                let (a, b) = (secs(self.last_modified), secs(other.last_modified));
                a.is_some() && a == b
            }
        }
    }
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
    /// (`Update`). HTTP 412 PreconditionFailed, or 409 ConditionalRequestConflict (AWS's answer
    /// to a conditional write that raced another; R2's is undocumented, docs/cloudflare-api.md §7).
    /// Either way this write did not land: re-read to see what did.
    #[error("{key} was changed by another writer (the write's condition failed)")]
    PreconditionFailed { key: String },
    /// The bytes read from disk did not hash to the name they were uploaded under.
    #[error("{} changed on disk while it was being uploaded (it no longer hashes to {expected})", path.display())]
    ChangedOnDisk { path: PathBuf, expected: String },
    /// The REST API refused or failed.
    #[error(transparent)]
    Rest(#[from] crate::cloudflare::Error),
    /// R2's S3 API answered with an error (`<Error><Code>…`; a HEAD's has no body, so its code
    /// is taken from the status).
    #[error("S3 {method} {key}: HTTP {status} {code}{}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    S3 {
        method: String,
        key: String,
        status: u16,
        code: String,
        message: String,
    },
    /// No answer from R2's S3 API (after retries), or one that could not be read.
    #[error("S3 {method} {key}: {detail}")]
    S3Transport {
        method: String,
        key: String,
        detail: String,
    },
    /// R2's S3 endpoint gave no answer to the first call of an `auto` run (DNS, refused, reset,
    /// TLS, or no answer within 2 s): `auto` falls back to REST on it.
    #[error("R2's S3 endpoint {endpoint} could not be reached ({detail})")]
    S3Unreachable { endpoint: String, detail: String },
    /// A conditional write of a file large enough for multipart: R2 documents no conditions on
    /// CompleteMultipartUpload (docs/cloudflare-api.md §7), so it is refused before any request.
    #[error("{key} is {size} bytes, large enough to go up in parts, and R2 documents no conditional write for a multipart upload; write it unconditionally")]
    ConditionalMultipart { key: String, size: u64 },
    /// The object is larger than this API takes (REST: 300 MiB; S3: 4.995 TiB).
    #[error("{key} is {size} bytes, over the {max}-byte limit of this API")]
    TooLarge { key: String, size: u64, max: u64 },
}

impl StorageError {
    pub fn is_precondition_failed(&self) -> bool {
        matches!(self, StorageError::PreconditionFailed { .. })
    }

    /// The S3 error code, for an error S3 answered.
    pub fn s3_code(&self) -> Option<&str> {
        match self {
            StorageError::S3 { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether S3 refused the credentials themselves: the errors on which `auto` falls back to
    /// REST. After R2's error table (`r2/api/error-codes.mdx`): 401 Unauthorized (missing or
    /// invalid credentials, a disabled or expired token), 403 InvalidAccessKeyId,
    /// SignatureDoesNotMatch or AccessDenied (no permission), and 400 InvalidArgument
    /// "Credential access key has length N, should be 32" (a key id that is not 32 characters).
    pub fn is_s3_auth_refusal(&self) -> bool {
        match self {
            StorageError::S3 {
                status,
                code,
                message,
                ..
            } => match (*status, code.as_str()) {
                (
                    401 | 403,
                    "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "AccessDenied"
                    | "Unauthorized",
                ) => true,
                (400, "InvalidArgument") => message.contains("Credential access key"),
                _ => false,
            },
            _ => false,
        }
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
    S3(S3Store),
    Auto(Arc<Auto>),
}

/// `auto`: S3 until it refuses the keys on a first call, then REST for the rest of the run.
#[derive(Debug)]
struct Auto {
    s3: S3Store,
    rest: RestStore,
    /// 0: S3 not yet proven; 1: S3 answered a call; 2: fell back to REST.
    state: AtomicU8,
    /// The likely cause, for the note.
    cause: String,
    note: Mutex<Option<String>>,
}

const UNPROVEN: u8 = 0;
const PROVEN: u8 = 1;
const FELL_BACK: u8 = 2;

impl Auto {
    fn on_rest(&self) -> bool {
        self.state.load(Ordering::SeqCst) == FELL_BACK
    }

    /// Switches to REST for the rest of the run, once, with `note` on stderr.
    fn switch(&self, note: String) {
        if self.state.swap(FELL_BACK, Ordering::SeqCst) != FELL_BACK {
            log::info!("{note}");
            *self.note.lock().unwrap_or_else(|p| p.into_inner()) = Some(note);
        }
    }

    /// After an S3 call: whether to repeat it over REST (and from now on use REST).
    fn fall_back<T>(&self, result: &Result<T, StorageError>) -> bool {
        match result {
            Err(StorageError::S3Unreachable { endpoint, detail })
                if self.state.load(Ordering::SeqCst) != PROVEN =>
            {
                self.switch(format!(
                    "R2's S3 endpoint {endpoint} could not be reached ({detail}); a firewall or \
                     proxy may block *.r2.cloudflarestorage.com. Using the REST API for the rest \
                     of this run (paced to 1,200 requests per 5 minutes). Allow that host, or \
                     pass --via rest to skip S3."
                ));
                true
            }
            Err(e) if e.is_s3_auth_refusal() && self.state.load(Ordering::SeqCst) != PROVEN => {
                let code = e.s3_code().unwrap_or("AccessDenied");
                self.switch(format!(
                    "R2's S3 API refused the keys derived from the API token ({code}); using \
                     the REST API for the rest of this run (paced to 1,200 requests per 5 \
                     minutes). {}",
                    self.cause
                ));
                true
            }
            Err(e) if e.is_s3_auth_refusal() => false,
            _ => {
                if result.is_ok() {
                    let _ = self.state.compare_exchange(
                        UNPROVEN,
                        PROVEN,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    );
                }
                false
            }
        }
    }
}

/// Runs `$call` on the backend `$s` is bound to; in `auto`, on S3 first and, when S3 refuses the
/// keys, again on REST.
macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match &$self.backend {
            Backend::Rest($s) => $call,
            Backend::S3($s) => $call,
            Backend::Auto(a) => {
                if a.on_rest() {
                    let $s = &a.rest;
                    $call
                } else {
                    let result = {
                        let $s = &a.s3;
                        $call
                    };
                    if a.fall_back(&result) {
                        let $s = &a.rest;
                        $call
                    } else {
                        result
                    }
                }
            }
        }
    };
}

impl Storage {
    /// Objects over the REST API only.
    pub fn rest(store: RestStore) -> Self {
        Storage {
            backend: Backend::Rest(store),
        }
    }

    /// Objects over R2's S3 API only (`--via s3`): an S3 refusal is an error.
    pub fn s3(store: S3Store) -> Self {
        Storage {
            backend: Backend::S3(store),
        }
    }

    /// `--via auto` with an API token: S3, or REST for the rest of the run once S3 refuses the
    /// derived keys on a first call, or cannot be reached at all (no answer within about 2 s:
    /// [`S3Store::probing`]). `cause` ends the one note logged then (the likely reason;
    /// [`Storage::fallback_note`] has it too).
    pub fn auto(s3: S3Store, rest: RestStore, cause: impl Into<String>) -> Self {
        Storage {
            backend: Backend::Auto(Arc::new(Auto {
                s3: s3.probing(),
                rest,
                state: AtomicU8::new(UNPROVEN),
                cause: cause.into(),
                note: Mutex::new(None),
            })),
        }
    }

    /// `"REST"` or `"S3"`: which API carries objects, for reports. In `auto` this is `"S3"`
    /// until it falls back.
    pub fn via(&self) -> &'static str {
        match &self.backend {
            Backend::Rest(_) => "REST",
            Backend::S3(_) => "S3",
            Backend::Auto(a) if a.on_rest() => "REST",
            Backend::Auto(_) => "S3",
        }
    }

    /// The note `auto` printed when it fell back to REST, if it did.
    pub fn fallback_note(&self) -> Option<String> {
        match &self.backend {
            Backend::Auto(a) => a.note.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            _ => None,
        }
    }

    /// Whether conditional PUTs are enforced by the server (S3) rather than checked just before
    /// the write (REST; docs/storage-layout.md "Over the REST API").
    pub fn conditional_writes_are_atomic(&self) -> bool {
        self.via() == "S3"
    }

    /// The largest object a single [`Storage::put`] takes: 300 MiB over REST (check before any
    /// request, and point to S3), 4.995 TiB over S3 (multipart above 64 MiB). In `auto`, S3's.
    pub fn max_object_size(&self) -> u64 {
        match &self.backend {
            Backend::Rest(_) => REST_MAX_OBJECT_SIZE,
            Backend::S3(_) => S3_MAX_OBJECT_SIZE,
            Backend::Auto(a) if a.on_rest() => REST_MAX_OBJECT_SIZE,
            Backend::Auto(_) => S3_MAX_OBJECT_SIZE,
        }
    }

    pub fn bucket(&self) -> &BucketLoc {
        match &self.backend {
            Backend::Rest(s) => s.bucket(),
            Backend::S3(s) => s.bucket(),
            Backend::Auto(a) => a.rest.bucket(),
        }
    }

    /// The whole object, or `None` if the key does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Object>, StorageError> {
        dispatch!(self, s => s.get(key).await)
    }

    /// Bytes `range` (end exclusive) of the object, or `None` if the key does not exist. Over
    /// REST, which has no documented Range, the whole object is read and cut.
    pub async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Option<Object>, StorageError> {
        match &self.backend {
            Backend::S3(s) => s.get_range(key, range).await,
            Backend::Auto(a) if !a.on_rest() => {
                let result = a.s3.get_range(key, range.clone()).await;
                if a.fall_back(&result) {
                    rest_range(a.rest.get(key).await?, range)
                } else {
                    result
                }
            }
            Backend::Auto(a) => rest_range(a.rest.get(key).await?, range),
            Backend::Rest(s) => rest_range(s.get(key).await?, range),
        }
    }

    /// The object's metadata, or `None` if the key does not exist.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        dispatch!(self, s => s.head(key).await)
    }

    /// Writes `payload` under `key`; returns the new ETag (unquoted) when the API gives one.
    /// A [`Payload::File`] whose bytes do not hash to its `sha256` is refused, and nothing is
    /// stored ([`StorageError::ChangedOnDisk`]).
    pub async fn put(
        &self,
        key: &str,
        payload: Payload,
        options: PutOptions,
    ) -> Result<Option<String>, StorageError> {
        dispatch!(self, s => s.put(key, payload.clone(), options.clone()).await)
    }

    /// Deletes `key`; a missing key is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        dispatch!(self, s => s.delete(key).await)
    }

    /// Deletes every key; missing keys are not errors. S3: DeleteObjects, 1,000 keys a call;
    /// REST: one DELETE per key, 8 at a time.
    pub async fn delete_many(&self, keys: &[String]) -> Result<(), StorageError> {
        dispatch!(self, s => s.delete_many(keys).await)
    }

    /// Every object whose key starts with `prefix`, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        dispatch!(self, s => s.list(prefix).await)
    }

    /// The distinct next path levels below `prefix` (a listing with delimiter `/`): for
    /// `sites/`, every `sites/<tenant>/`.
    pub async fn list_prefixes(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        dispatch!(self, s => s.list_prefixes(prefix).await)
    }
}

fn rest_range(
    object: Option<Object>,
    range: std::ops::Range<u64>,
) -> Result<Option<Object>, StorageError> {
    Ok(object.map(|mut o| {
        let len = o.body.len() as u64;
        let (start, end) = (
            range.start.min(len),
            range.end.min(len).max(range.start.min(len)),
        );
        o.body = o.body.slice(start as usize..end as usize);
        o.meta.size = end - start;
        o
    }))
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

    fn s3(status: u16, code: &str, message: &str) -> StorageError {
        StorageError::S3 {
            method: "GET".into(),
            key: "k".into(),
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    #[test]
    fn auth_refusals_follow_r2_s_error_table() {
        for (status, code, message) in [
            (403, "InvalidAccessKeyId", ""),
            (403, "SignatureDoesNotMatch", ""),
            (403, "AccessDenied", ""),
            (
                401,
                "Unauthorized",
                "Missing or invalid authentication credentials",
            ),
            (
                400,
                "InvalidArgument",
                "Credential access key has length 40, should be 32",
            ),
        ] {
            assert!(s3(status, code, message).is_s3_auth_refusal(), "{code}");
        }
        for (status, code, message) in [
            (400, "InvalidArgument", "Part number must be an integer"),
            (404, "NoSuchKey", ""),
            (412, "PreconditionFailed", ""),
            (501, "NotImplemented", ""),
        ] {
            assert!(!s3(status, code, message).is_s3_auth_refusal(), "{code}");
        }
    }

    #[test]
    fn a_listing_s_milliseconds_and_a_head_s_seconds_are_one_version() {
        let at = |ms: u64| Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms));
        let meta = |etag: Option<&str>, t| ObjectMeta {
            key: "locks/deploys/x.json".into(),
            size: 1,
            etag: etag.map(str::to_string),
            last_modified: t,
        };
        // R2: the listing says .789, the HEAD's HTTP date says .000 of the same second.
        assert!(meta(Some("e1"), at(1_700_000_000_789))
            .same_version(&meta(Some("e1"), at(1_700_000_000_000))));
        assert!(!meta(Some("e1"), at(1_700_000_000_789))
            .same_version(&meta(Some("e2"), at(1_700_000_000_789))));
        assert!(meta(None, at(1_700_000_000_789)).same_version(&meta(None, at(1_700_000_000_000))));
        assert!(!meta(None, at(1_700_000_000_789)).same_version(&meta(None, at(1_700_000_001_000))));
        assert!(!meta(None, None).same_version(&meta(None, None)));
    }

    #[test]
    fn etags_are_unquoted() {
        assert_eq!(unquote_etag("\"abc\""), "abc");
        assert_eq!(unquote_etag("W/\"abc\""), "abc");
        assert_eq!(unquote_etag("abc"), "abc");
    }
}
