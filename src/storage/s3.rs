//! The S3 backend: R2's S3-compatible API with keys derived from the API token itself.
//!
//! Facts used (docs/cloudflare-api.md §7 "S3 credentials from an API token", "The R2
//! S3-compatible API" and "Signing: use the header form"; upstream `r2/api/tokens.mdx`,
//! `r2/api/s3/api.mdx`, `r2/platform/limits.mdx`):
//! - Access Key ID = the token's `id`; Secret Access Key = the lowercase hex SHA-256 of the
//!   token's value ("Secret Access Key: The SHA-256 hash of the API token `value`").
//! - Endpoint `https://<account>.r2.cloudflarestorage.com`, or `.eu.` / `.fedramp.` for a
//!   jurisdictional bucket, which is reachable only at its own endpoint. Region `auto`, SigV4,
//!   path-style addressing.
//! - Not under the REST API's 1,200 requests per 5 minutes ("For high-throughput object
//!   operations, use the S3-compatible API").
//! - One write per second per key, more is 429 (10058); 503 (10043) asks for backoff. Both, and
//!   other 5xx, are retried by the one transport ([`crate::transport`]), honouring `Retry-After`.
//! - R2 refuses `aws-chunked` bodies and CRC trailer checksums (501), and requires Content-Length
//!   (411): every upload here has a known length and a plain body.
//! - A single PUT or part is at most 5 GiB; at most 10,000 parts, every non-final part at least
//!   5 MiB and all non-final parts the same size (10048 InvalidPart otherwise).
//! - Conditional PutObject (`If-None-Match: *`, `If-Match`) answers 412 PreconditionFailed; AWS
//!   answers 409 ConditionalRequestConflict to a conditional write that raced another, and R2's
//!   answer is undocumented (cloudflare-docs#32793), so both read as "the condition failed".
//!   CompleteMultipartUpload documents no conditions on R2, so a conditional multipart write is
//!   refused here before any request ([`StorageError::ConditionalMultipart`]).
//!
//! **What is signed.** Every request is signed in the `Authorization`-header form of SigV4 by
//! `aws-sigv4`, the signer of the AWS SDK for Rust (the SDK R2's own example uses,
//! `r2/examples/aws/aws-sdk-rust.mdx`), with region `auto` and service `s3`. The signed headers
//! are `host`, `x-amz-date`, `x-amz-content-sha256` and every header this module sends itself
//! (`content-type`, `cache-control`, `if-match`, `if-none-match`, `range`, `content-md5`,
//! `cf-r2-jurisdiction`). `x-amz-content-sha256` is the body's real SHA-256, in hex, and it is
//! also the canonical request's payload line, so the server hashes the bytes it receives and
//! refuses anything else (400 XAmzContentSHA256Mismatch): a blob can only ever be stored under
//! the hash of its bytes. cfsetup knows each hash before it sends: a blob is named by it, a part
//! is hashed as it is read, a manifest or XML body is hashed in memory. The body is also hashed
//! while it streams ([`verified_file_stream`]), which stops a file changed on disk before its
//! last byte. This is how boto3, the AWS SDKs and rclone sign for R2; presigned URLs, whose
//! payload line R2 leaves undocumented when a hash header is also sent, are never used.
//!
//! URLs and the S3 XML come from `rusty-s3` (object URLs, CompleteMultipartUpload and
//! DeleteObjects bodies, ListObjectsV2 and error parsing); `reqwest` sends over the run's one
//! transport ([`Client::transport`]).
//!
//! This module must not import commands, reports or output; the derived secret is never logged.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesUnordered, StreamExt};
use instant_xml::FromXml;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Method;
use rusty_s3::actions::{
    CompleteMultipartUpload, CreateMultipartUpload, DeleteObjects, DeleteObjectsResponse,
    ListObjectsV2, ObjectIdentifier,
};
use rusty_s3::{Bucket, UrlStyle};
use sha2::Digest;
use tokio::io::AsyncReadExt;
use url::Url;

use crate::cloudflare::Client;
use crate::secret::Secret;
use crate::transport::{fetch, verified_file_stream, Answer, Call, Failure, HashCheck};

use super::{
    unquote_etag, BucketLoc, Object, ObjectMeta, Payload, PutMode, PutOptions, StorageError,
};

/// R2's largest object (4.995 TiB; `r2/platform/limits.mdx`).
pub const S3_MAX_OBJECT_SIZE: u64 = 4_995 * 1024 * 1024 * 1024 * 1024 / 1000;
/// R2's smallest non-final part.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// R2's most parts in one upload.
pub const MAX_PARTS: u64 = 10_000;
/// DeleteObjects takes at most this many keys per call (S3 API reference).
pub const DELETE_BATCH: usize = 1000;
/// SHA-256 of the empty body: the payload line of a request without one.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// The first S3 call of an `auto` run gets this long for an answer, so that an S3 host a
/// firewall drops is given up on, and the run moved to REST, within about 2 s.
pub const PROBE_TIMEOUT: Duration = Duration::from_millis(1800);

/// S3 keys derived from an API token. The secret is held in the redacting [`Secret`].
#[derive(Debug, Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
}

impl S3Credentials {
    /// Access Key ID = the token's id (from its verify call); Secret = lowercase hex SHA-256 of
    /// the token's value (docs/cloudflare-api.md §7; upstream `r2/api/tokens.mdx`).
    pub fn from_token(token_id: &str, token: &Secret) -> Self {
        S3Credentials {
            access_key_id: token_id.to_string(),
            secret_access_key: Secret::new(hex::encode(sha2::Sha256::digest(
                token.expose().as_bytes(),
            ))),
        }
    }
}

/// `https://<account>.r2.cloudflarestorage.com`, with `.eu.` or `.fedramp.` for a jurisdiction.
pub fn default_endpoint(account: &str, jurisdiction: Option<&str>) -> Url {
    let host = match jurisdiction.filter(|j| !j.is_empty() && *j != "default") {
        Some(j) => format!("https://{account}.{j}.r2.cloudflarestorage.com"),
        None => format!("https://{account}.r2.cloudflarestorage.com"),
    };
    Url::parse(&host).unwrap_or_else(|_| {
        Url::parse("https://invalid-account.r2.cloudflarestorage.com").expect("a valid URL")
    })
}

/// Tuning of the S3 backend.
#[derive(Debug, Clone)]
pub struct S3Options {
    /// Files larger than this go up in parts (64 MiB; tests lower it).
    pub multipart_threshold: u64,
    /// The part size to start from; grown (in whole MiB) so a file fits in 10,000 parts.
    pub part_size: u64,
    /// Parts uploading at once. Memory is bounded by `(parts_in_flight + 1) * part size`.
    pub parts_in_flight: usize,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            multipart_threshold: 64 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
            parts_in_flight: 3,
        }
    }
}

/// The part size for a file of `len` bytes: at least `base` and 5 MiB, grown in whole MiB until
/// the file fits in 10,000 parts. All parts but the last have this size.
pub fn part_size_for(len: u64, base: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    let needed = len.div_ceil(MAX_PARTS);
    let size = base.max(MIN_PART_SIZE).max(needed);
    size.div_ceil(MIB) * MIB
}

/// One bucket over R2's S3 API.
#[derive(Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    loc: BucketLoc,
    bucket: Bucket,
    credentials: aws_credential_types::Credentials,
    /// The emulator's one endpoint serves every jurisdiction and picks one by this header; the
    /// real endpoints differ per jurisdiction, so it is sent only to an overridden endpoint.
    jurisdiction_header: Option<String>,
    options: S3Options,
    /// Until S3 has answered once, a call without an answer is not retried and has
    /// [`PROBE_TIMEOUT`]: set for `auto`, which then falls back to REST
    /// ([`StorageError::S3Unreachable`]).
    probing: AtomicBool,
    /// The token whose id came from the local cache: an S3 refusal of the keys removes that
    /// entry ([`super::token_ids::forget`]), once.
    cached_id_of: std::sync::Mutex<Option<crate::secret::Secret>>,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.inner.loc)
            .field("endpoint", &self.inner.bucket.base_url().as_str())
            .field("access_key_id", &self.inner.credentials.access_key_id())
            .finish_non_exhaustive()
    }
}

/// What one attempt sends.
enum SendBody {
    Empty,
    Bytes(Bytes),
    File {
        path: std::path::PathBuf,
        len: u64,
        check: Arc<HashCheck>,
    },
}

impl SendBody {
    fn len(&self) -> u64 {
        match self {
            SendBody::Empty => 0,
            SendBody::Bytes(b) => b.len() as u64,
            SendBody::File { len, .. } => *len,
        }
    }
}

/// One S3 request before signing: the URL (query included), the headers this module sets (all
/// of them signed), the body and its SHA-256.
struct Op<'a> {
    method: Method,
    /// The object key (or listing prefix) the request is about, for errors and the log.
    key: &'a str,
    url: Url,
    headers: Vec<(&'static str, String)>,
    body: SendBody,
    /// Lowercase hex SHA-256 of `body`: the value of `x-amz-content-sha256` and the canonical
    /// request's payload line.
    sha256: String,
    /// Whether a 5xx or a lost answer may be repeated. CreateMultipartUpload is, too: a second
    /// upload id from a repeated create holds no data and R2 removes it after 7 days.
    idempotent: bool,
}

/// Characters kept as they are in a query name or value: RFC 3986's unreserved set, as SigV4's
/// canonical query encodes them, so the URL sent and the string signed agree byte for byte.
const QUERY: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl S3Store {
    /// `endpoint` is the S3 endpoint (see [`default_endpoint`]); `overridden` says it came from
    /// `--s3-endpoint` / `R2_S3_ENDPOINT`.
    pub fn new(
        client: Client,
        loc: BucketLoc,
        endpoint: Url,
        overridden: bool,
        credentials: &S3Credentials,
        options: S3Options,
    ) -> Result<Self, StorageError> {
        let bucket =
            Bucket::new(endpoint, UrlStyle::Path, loc.name.to_string(), "auto").map_err(|e| {
                StorageError::S3Transport {
                    method: "-".into(),
                    key: String::new(),
                    detail: format!("the S3 endpoint cannot be used: {e}"),
                }
            })?;
        let jurisdiction_header = if overridden {
            loc.jurisdiction.clone().filter(|j| j != "default")
        } else {
            None
        };
        Ok(S3Store {
            inner: Arc::new(Inner {
                client,
                credentials: aws_credential_types::Credentials::new(
                    credentials.access_key_id.clone(),
                    credentials.secret_access_key.expose(),
                    None,
                    None,
                    "cfsetup",
                ),
                loc,
                bucket,
                jurisdiction_header,
                options,
                probing: AtomicBool::new(false),
                cached_id_of: std::sync::Mutex::new(None),
            }),
        })
    }

    /// Makes the first calls fail fast without an answer (no retries, [`PROBE_TIMEOUT`]), until
    /// S3 answers once: `auto` uses it to fall back to REST within about 2 s when R2's S3 host
    /// cannot be reached.
    pub fn probing(self) -> Self {
        self.inner.probing.store(true, Ordering::SeqCst);
        self
    }

    /// The access key id was read from the local cache for `token`: a refusal of the keys
    /// (InvalidAccessKeyId, SignatureDoesNotMatch, …) removes that entry.
    pub fn forgetting_cached_id(self, token: crate::secret::Secret) -> Self {
        *self
            .inner
            .cached_id_of
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(token);
        self
    }

    pub fn bucket(&self) -> &BucketLoc {
        &self.inner.loc
    }

    pub fn endpoint(&self) -> &Url {
        self.inner.bucket.base_url()
    }

    /// The endpoint's scheme, host and port, for messages.
    fn endpoint_origin(&self) -> String {
        self.endpoint().origin().ascii_serialization()
    }

    /// The URL of `key` (or of the bucket) with `query`, each name and value encoded as SigV4's
    /// canonical query encodes it.
    fn url(&self, key: Option<&str>, query: &[(&str, &str)]) -> Result<Url, StorageError> {
        let mut url = match key {
            Some(k) => self
                .inner
                .bucket
                .object_url(k)
                .map_err(|e| StorageError::S3Transport {
                    method: "-".into(),
                    key: k.to_string(),
                    detail: format!("the key cannot be put in a URL: {e}"),
                })?,
            None => self.inner.bucket.base_url().clone(),
        };
        if query.is_empty() {
            url.set_query(None);
        } else {
            let q: Vec<String> = query
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        utf8_percent_encode(k, QUERY),
                        utf8_percent_encode(v, QUERY)
                    )
                })
                .collect();
            url.set_query(Some(&q.join("&")));
        }
        Ok(url)
    }

    /// The SigV4 headers (`authorization`, `x-amz-date`, `x-amz-content-sha256`) for `op`, signed
    /// now. The Authorization value is marked sensitive so no log of reqwest's ever shows it.
    fn sign(&self, op: &Op<'_>) -> Result<Vec<(&'static str, HeaderValue)>, String> {
        let identity = self.inner.credentials.clone().into();
        let mut settings = SigningSettings::default();
        // S3 signs the path as sent, encoded once, never normalised (`a/../b` is a key).
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("auto")
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| format!("cannot sign: {e}"))?
            .into();
        let mut headers: Vec<(&str, &str)> =
            op.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        if let Some(j) = &self.inner.jurisdiction_header {
            headers.push(("cf-r2-jurisdiction", j.as_str()));
        }
        let signable = SignableRequest::new(
            op.method.as_str(),
            op.url.as_str(),
            headers.into_iter(),
            SignableBody::Precomputed(op.sha256.clone()),
        )
        .map_err(|e| format!("cannot sign: {e}"))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| format!("cannot sign: {e}"))?
            .into_parts();
        let (signed, _) = instructions.into_parts();
        signed
            .into_iter()
            .map(|h| {
                let mut v = HeaderValue::from_str(h.value())
                    .map_err(|_| "a signed header is not a header value".to_string())?;
                v.set_sensitive(h.sensitive() || h.name() == "authorization");
                Ok((h.name(), v))
            })
            .collect()
    }

    /// Sends `op` through the one transport: signed afresh on each attempt (a signature is
    /// dated), with the body rebuilt (a file is opened and streamed again).
    async fn send(&self, op: &Op<'_>) -> Result<Answer, StorageError> {
        let probing = self.inner.probing.load(Ordering::SeqCst);
        let check = match &op.body {
            SendBody::File { check, .. } => Some(check.as_ref()),
            _ => None,
        };
        let call = Call {
            api: "S3 ",
            method: &op.method,
            what: op.key,
            idempotent: op.idempotent,
            check,
            fail_fast: probing,
        };
        let transport = self.inner.client.transport();
        let sent = transport
            .send_retry(&call, |n| async move {
                let signed = self.sign(op).map_err(Err)?;
                let mut b = transport.http().request(op.method.clone(), op.url.clone());
                for (name, value) in &op.headers {
                    b = b.header(*name, value.as_str());
                }
                if let Some(j) = &self.inner.jurisdiction_header {
                    b = b.header("cf-r2-jurisdiction", j.as_str());
                }
                for (name, value) in signed {
                    b = b.header(name, value);
                }
                let mut timeout =
                    Duration::from_secs(60) + Duration::from_secs(op.body.len() / (256 * 1024));
                if probing && op.body.len() <= 1024 * 1024 {
                    timeout = PROBE_TIMEOUT;
                }
                b = match &op.body {
                    SendBody::Empty => {
                        if op.method == Method::PUT || op.method == Method::POST {
                            b.header(reqwest::header::CONTENT_LENGTH, 0)
                        } else {
                            b
                        }
                    }
                    SendBody::Bytes(bytes) => b
                        .header(reqwest::header::CONTENT_LENGTH, bytes.len())
                        .body(bytes.clone()),
                    SendBody::File { path, len, check } => {
                        let file = tokio::fs::File::open(path)
                            .await
                            .map_err(|e| Err(format!("cannot open {}: {e}", path.display())))?;
                        b.header(reqwest::header::CONTENT_LENGTH, *len).body(
                            reqwest::Body::wrap_stream(verified_file_stream(
                                file,
                                *len,
                                Arc::clone(check),
                            )),
                        )
                    }
                };
                self.inner.client.count_s3(op.body.len(), n > 0);
                fetch(b.timeout(timeout)).await
            })
            .await;
        match sent {
            Ok(a) => {
                self.inner.probing.store(false, Ordering::SeqCst);
                Ok(a)
            }
            Err(Failure::NoAnswer { detail, .. }) if probing => Err(StorageError::S3Unreachable {
                endpoint: self.endpoint_origin(),
                detail,
            }),
            Err(Failure::NoAnswer { detail, .. }) => Err(StorageError::S3Transport {
                method: op.method.to_string(),
                key: op.key.to_string(),
                detail: format!("no answer from {} ({detail})", self.endpoint_origin()),
            }),
            Err(Failure::ChangedOnDisk) => match &op.body {
                SendBody::File { path, check, .. } => Err(StorageError::ChangedOnDisk {
                    path: path.clone(),
                    expected: check.expected().to_string(),
                }),
                _ => Err(StorageError::S3Transport {
                    method: op.method.to_string(),
                    key: op.key.to_string(),
                    detail: "the body changed while it was sent".into(),
                }),
            },
            Err(Failure::WaitTooLong { answer, wait }) => Err(StorageError::S3 {
                method: op.method.to_string(),
                key: op.key.to_string(),
                status: answer.status,
                code: "SlowDown".into(),
                message: format!(
                    "R2 asked to wait {}s before trying again, longer than cfsetup waits; run \
                     the command again later",
                    wait.as_secs()
                ),
            }),
            Err(Failure::Build(detail)) => Err(StorageError::S3Transport {
                method: op.method.to_string(),
                key: op.key.to_string(),
                detail,
            }),
        }
    }

    fn error(&self, op: &Op<'_>, a: &Answer) -> StorageError {
        let parsed = parse_error(&a.body);
        let (code, message) = match parsed {
            Some(e) => {
                if e.code == "SignatureDoesNotMatch" {
                    self.explain_signature(op, &e);
                }
                (e.code, e.message.unwrap_or_default())
            }
            // A HEAD error has no body.
            None => {
                let key_len = self.inner.credentials.access_key_id().len();
                match a.status {
                    401 => ("Unauthorized".to_string(), String::new()),
                    403 => ("AccessDenied".to_string(), String::new()),
                    404 => ("NotFound".to_string(), String::new()),
                    // What R2 says to a key id that is not 32 characters (docs/cloudflare-api.md §7).
                    400 if key_len != 32 => (
                        "InvalidArgument".to_string(),
                        format!("Credential access key has length {key_len}, should be 32"),
                    ),
                    s => (format!("HTTP{s}"), String::new()),
                }
            }
        };
        let e = StorageError::S3 {
            method: op.method.to_string(),
            key: op.key.to_string(),
            status: a.status,
            code,
            message,
        };
        if e.is_s3_auth_refusal() {
            let cached = self
                .inner
                .cached_id_of
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(token) = cached {
                super::token_ids::forget(&token);
            }
        }
        e
    }

    /// With `-v`: R2's SignatureDoesNotMatch body carries the canonical request it computed
    /// (docs/cloudflare-api.md §7, a capture in WWBN/AVideo#9667); its last line is the payload
    /// hash the server used. Printed beside the one cfsetup signed, so the first failed request
    /// on a live account says which side read the payload differently. No secret is in either.
    fn explain_signature(&self, op: &Op<'_>, e: &XmlError) {
        if !log::log_enabled!(log::Level::Debug) {
            return;
        }
        let server = e
            .canonical_request
            .as_deref()
            .and_then(|c| c.lines().last())
            .unwrap_or("(no <CanonicalRequest> in the answer)");
        log::debug!(
            "S3 {} {}: SignatureDoesNotMatch; the server's canonical request \
             ends with payload line {server:?}; cfsetup signed payload {:?}",
            op.method,
            op.key,
            op.sha256
        );
    }

    pub async fn get(&self, key: &str) -> Result<Option<Object>, StorageError> {
        self.get_inner(key, None).await
    }

    /// Bytes `range` of the object (`Range: bytes=start-end`, end exclusive here), or `None` if
    /// the key does not exist. `meta.size` is the length of what was returned.
    pub async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Option<Object>, StorageError> {
        self.get_inner(key, Some(range)).await
    }

    fn op<'a>(&self, method: Method, key: &'a str, url: Url) -> Op<'a> {
        Op {
            method,
            key,
            url,
            headers: Vec::new(),
            body: SendBody::Empty,
            sha256: EMPTY_SHA256.to_string(),
            idempotent: true,
        }
    }

    async fn get_inner(
        &self,
        key: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Option<Object>, StorageError> {
        let mut op = self.op(Method::GET, key, self.url(Some(key), &[])?);
        if let Some(r) = &range {
            if r.end <= r.start {
                return Ok(None);
            }
            op.headers
                .push(("range", format!("bytes={}-{}", r.start, r.end - 1)));
        }
        let a = self.send(&op).await?;
        match a.status {
            200 | 206 => Ok(Some(Object {
                meta: meta_from_headers(key, &a.headers, Some(a.body.len() as u64)),
                body: a.body,
            })),
            404 => Ok(None),
            _ => Err(self.error(&op, &a)),
        }
    }

    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        let op = self.op(Method::HEAD, key, self.url(Some(key), &[])?);
        let a = self.send(&op).await?;
        match a.status {
            200 => Ok(Some(meta_from_headers(key, &a.headers, None))),
            404 => Ok(None),
            _ => Err(self.error(&op, &a)),
        }
    }

    pub async fn put(
        &self,
        key: &str,
        payload: Payload,
        options: PutOptions,
    ) -> Result<Option<String>, StorageError> {
        if payload.len() > S3_MAX_OBJECT_SIZE {
            return Err(StorageError::TooLarge {
                key: key.to_string(),
                size: payload.len(),
                max: S3_MAX_OBJECT_SIZE,
            });
        }
        let (body, sha256) = match payload {
            Payload::Bytes(b) => {
                let sha = hex::encode(sha2::Sha256::digest(&b));
                (SendBody::Bytes(b), sha)
            }
            Payload::File { path, len, sha256 } => {
                if len > self.inner.options.multipart_threshold {
                    if options.mode != PutMode::Overwrite {
                        return Err(StorageError::ConditionalMultipart {
                            key: key.to_string(),
                            size: len,
                        });
                    }
                    return self.put_multipart(key, &path, len, &sha256, &options).await;
                }
                let check = HashCheck::new(sha256.clone());
                (SendBody::File { path, len, check }, sha256)
            }
        };
        let op = Op {
            headers: common_headers(&options),
            body,
            sha256: sha256.to_ascii_lowercase(),
            ..self.op(Method::PUT, key, self.url(Some(key), &[])?)
        };
        let a = self.send(&op).await?;
        self.put_result(&op, &a)
    }

    fn put_result(&self, op: &Op<'_>, a: &Answer) -> Result<Option<String>, StorageError> {
        let conditional = op
            .headers
            .iter()
            .any(|(n, _)| *n == "if-match" || *n == "if-none-match");
        match a.status {
            200..=299 => Ok(a
                .headers
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(unquote_etag)),
            412 => Err(StorageError::PreconditionFailed {
                key: op.key.to_string(),
            }),
            // AWS's answer to a conditional write that raced another (409
            // ConditionalRequestConflict); R2's is undocumented (docs/cloudflare-api.md §7 "A
            // conditional write that races another"). Either way the write did not land.
            409 if conditional => Err(StorageError::PreconditionFailed {
                key: op.key.to_string(),
            }),
            _ => {
                let e = self.error(op, a);
                // The server compared the bytes with the signed hash and refused them.
                if let (StorageError::S3 { code, .. }, SendBody::File { path, check, .. }) =
                    (&e, &op.body)
                {
                    if code == "XAmzContentSHA256Mismatch" || code == "BadDigest" {
                        return Err(StorageError::ChangedOnDisk {
                            path: path.clone(),
                            expected: check.expected().to_string(),
                        });
                    }
                }
                Err(e)
            }
        }
    }

    /// Sends `body` under `key` with `claimed_sha256` as its signed payload hash, whatever the
    /// bytes are: for `doctor`, which proves on the user's account that R2 refuses bytes that
    /// are not what the signature says. Returns the answer's status and S3 error code.
    pub async fn put_claiming(
        &self,
        key: &str,
        body: Bytes,
        claimed_sha256: &str,
    ) -> Result<(u16, Option<String>), StorageError> {
        let op = Op {
            headers: vec![("content-type", "text/plain".to_string())],
            body: SendBody::Bytes(body),
            sha256: claimed_sha256.to_string(),
            ..self.op(Method::PUT, key, self.url(Some(key), &[])?)
        };
        let a = self.send(&op).await?;
        Ok((a.status, parse_error(&a.body).map(|e| e.code)))
    }

    /// Creates a multipart upload and aborts it at once: for `doctor`. Returns the upload id.
    pub async fn multipart_round_trip(&self, key: &str) -> Result<String, StorageError> {
        let upload_id = self
            .create_multipart(key, &PutOptions::overwrite("application/octet-stream"))
            .await?;
        self.abort_multipart(key, &upload_id).await?;
        Ok(upload_id)
    }

    async fn create_multipart(
        &self,
        key: &str,
        options: &PutOptions,
    ) -> Result<String, StorageError> {
        let op = Op {
            headers: common_headers(&PutOptions {
                mode: PutMode::Overwrite,
                ..options.clone()
            }),
            ..self.op(Method::POST, key, self.url(Some(key), &[("uploads", "")])?)
        };
        let a = self.send(&op).await?;
        if a.status != 200 {
            return Err(self.error(&op, &a));
        }
        let text = String::from_utf8_lossy(&a.body);
        let created = CreateMultipartUpload::parse_response(&text).map_err(|e| {
            StorageError::S3Transport {
                method: "POST".into(),
                key: key.to_string(),
                detail: format!("cannot read CreateMultipartUpload's answer: {e}"),
            }
        })?;
        Ok(created.upload_id().to_string())
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StorageError> {
        let op = self.op(
            Method::DELETE,
            key,
            self.url(Some(key), &[("uploadId", upload_id)])?,
        );
        let a = self.send(&op).await?;
        match a.status {
            200..=299 | 404 => Ok(()),
            _ => Err(self.error(&op, &a)),
        }
    }

    /// A large file in equal parts, read in order from one handle: each part is hashed and
    /// signed with its own SHA-256, the whole file's hash is checked before the last part is
    /// sent, and the upload is aborted on any failure.
    async fn put_multipart(
        &self,
        key: &str,
        path: &Path,
        len: u64,
        sha256: &str,
        options: &PutOptions,
    ) -> Result<Option<String>, StorageError> {
        let part_size = part_size_for(len, self.inner.options.part_size);
        let upload_id = self.create_multipart(key, options).await?;
        let result = self
            .upload_parts(key, &upload_id, path, len, sha256, part_size)
            .await;
        if result.is_err() && self.abort_multipart(key, &upload_id).await.is_err() {
            // Unfinished uploads expire after 7 days (R2 limits); say so rather than hide it.
            log::info!(
                "could not abort the multipart upload of {key}; R2 removes unfinished uploads \
                 after 7 days"
            );
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        path: &Path,
        len: u64,
        sha256: &str,
        part_size: u64,
    ) -> Result<Option<String>, StorageError> {
        let changed = || StorageError::ChangedOnDisk {
            path: path.to_path_buf(),
            expected: sha256.to_string(),
        };
        let mut file =
            tokio::fs::File::open(path)
                .await
                .map_err(|e| StorageError::S3Transport {
                    method: "PUT".into(),
                    key: key.to_string(),
                    detail: format!("cannot open {}: {e}", path.display()),
                })?;
        let parts = len.div_ceil(part_size).max(1);
        let mut whole = sha2::Sha256::new();
        let mut etags: Vec<Option<String>> = vec![None; parts as usize];
        let mut in_flight = FuturesUnordered::new();
        for n in 0..parts {
            while in_flight.len() >= self.inner.options.parts_in_flight.max(1) {
                let (i, etag): (usize, String) =
                    in_flight.next().await.expect("a part is in flight")?;
                etags[i] = Some(etag);
            }
            let this_len = part_size.min(len - n * part_size) as usize;
            let mut buf = BytesMut::zeroed(this_len);
            if file.read_exact(&mut buf).await.is_err() {
                return Err(changed());
            }
            let buf = buf.freeze();
            whole.update(&buf);
            if n + 1 == parts {
                // The last part goes only if the whole file is still what was hashed, and no
                // longer than it was.
                let mut extra = [0u8; 1];
                let grew = file.read(&mut extra).await.map(|k| k > 0).unwrap_or(true);
                let got = hex::encode(std::mem::take(&mut whole).finalize());
                if grew || !got.eq_ignore_ascii_case(sha256) {
                    return Err(changed());
                }
            }
            let part_number = (n + 1).to_string();
            let url = self.url(
                Some(key),
                &[
                    ("partNumber", part_number.as_str()),
                    ("uploadId", upload_id),
                ],
            )?;
            in_flight.push(async move {
                let op = Op {
                    sha256: hex::encode(sha2::Sha256::digest(&buf)),
                    body: SendBody::Bytes(buf),
                    ..self.op(Method::PUT, key, url)
                };
                let a = self.send(&op).await?;
                if a.status != 200 {
                    return Err(self.error(&op, &a));
                }
                let etag = a
                    .headers
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .ok_or_else(|| StorageError::S3Transport {
                        method: "PUT".into(),
                        key: key.to_string(),
                        detail: format!("part {} was stored without an ETag", n + 1),
                    })?;
                Ok::<_, StorageError>((n as usize, etag))
            });
        }
        while let Some(done) = in_flight.next().await {
            let (i, etag) = done?;
            etags[i] = Some(etag);
        }
        let etags: Vec<String> = etags.into_iter().map(Option::unwrap_or_default).collect();
        let xml = CompleteMultipartUpload::new(
            &self.inner.bucket,
            None,
            key,
            upload_id,
            etags.iter().map(String::as_str),
        )
        .body();
        let xml = Bytes::from(xml);
        // No condition headers: R2 documents none on CompleteMultipartUpload (`put` refuses a
        // conditional multipart write before it starts).
        let op = Op {
            headers: vec![("content-type", "application/xml".to_string())],
            sha256: hex::encode(sha2::Sha256::digest(&xml)),
            body: SendBody::Bytes(xml),
            ..self.op(
                Method::POST,
                key,
                self.url(Some(key), &[("uploadId", upload_id)])?,
            )
        };
        let a = self.send(&op).await?;
        // CompleteMultipartUpload can answer 200 with an error in its body (S3 API reference).
        if a.status == 200 {
            if let Some(e) = parse_error(&a.body) {
                return Err(StorageError::S3 {
                    method: "POST".into(),
                    key: key.to_string(),
                    status: 200,
                    code: e.code,
                    message: e.message.unwrap_or_default(),
                });
            }
            let etag = a
                .headers
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(unquote_etag)
                .or_else(|| completed_etag(&a.body).map(|e| unquote_etag(&e)));
            return Ok(etag);
        }
        Err(self.error(&op, &a))
    }

    /// Deletes `key`; a missing key is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let op = self.op(Method::DELETE, key, self.url(Some(key), &[])?);
        let a = self.send(&op).await?;
        match a.status {
            200..=299 | 404 => Ok(()),
            _ => Err(self.error(&op, &a)),
        }
    }

    /// Deletes every key, at most 1,000 per DeleteObjects call; missing keys are not errors.
    pub async fn delete_many(&self, keys: &[String]) -> Result<(), StorageError> {
        for chunk in keys.chunks(DELETE_BATCH) {
            let objects: Vec<ObjectIdentifier> = chunk
                .iter()
                .map(|k| ObjectIdentifier::new(k.clone()))
                .collect();
            let mut action = DeleteObjects::new(&self.inner.bucket, None, objects.iter());
            action.set_quiet(true);
            let (xml, md5) = action.body_with_md5();
            let xml = Bytes::from(xml);
            let op = Op {
                headers: vec![
                    ("content-md5", md5),
                    ("content-type", "application/xml".to_string()),
                ],
                sha256: hex::encode(sha2::Sha256::digest(&xml)),
                body: SendBody::Bytes(xml),
                ..self.op(Method::POST, &chunk[0], self.url(None, &[("delete", "")])?)
            };
            let a = self.send(&op).await?;
            if a.status != 200 {
                return Err(self.error(&op, &a));
            }
            let text = String::from_utf8_lossy(&a.body);
            if let Ok(r) = DeleteObjectsResponse::parse(&text) {
                if let Some(e) = r.errors.into_iter().find(|e| e.code != "NoSuchKey") {
                    return Err(StorageError::S3 {
                        method: "POST".into(),
                        key: e.key,
                        status: 200,
                        code: e.code,
                        message: e.message,
                    });
                }
            }
        }
        Ok(())
    }

    /// Every object whose key starts with `prefix`, in key order (ListObjectsV2, following
    /// continuation tokens). `last_modified` keeps the listing's milliseconds.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        let mut out = Vec::new();
        self.list_pages(prefix, None, |page| {
            out.extend(page.contents.into_iter().map(|c| ObjectMeta {
                last_modified: humantime::parse_rfc3339_weak(&c.last_modified).ok(),
                etag: Some(unquote_etag(&c.etag)).filter(|e| !e.is_empty()),
                size: c.size,
                key: c.key,
            }));
        })
        .await?;
        Ok(out)
    }

    /// The distinct next path levels below `prefix` (delimiter `/`).
    pub async fn list_prefixes(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let mut out = Vec::new();
        self.list_pages(prefix, Some("/"), |page| {
            out.extend(page.common_prefixes.into_iter().map(|p| p.prefix));
        })
        .await?;
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    async fn list_pages(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        mut each: impl FnMut(rusty_s3::actions::ListObjectsV2Response),
    ) -> Result<(), StorageError> {
        let mut token: Option<String> = None;
        for _ in 0..1_000_000 {
            let mut query = vec![("list-type", "2"), ("prefix", prefix)];
            if let Some(d) = delimiter {
                query.push(("delimiter", d));
            }
            if let Some(t) = &token {
                query.push(("continuation-token", t.as_str()));
            }
            let op = self.op(Method::GET, prefix, self.url(None, &query)?);
            let a = self.send(&op).await?;
            if a.status != 200 {
                return Err(self.error(&op, &a));
            }
            let text = String::from_utf8_lossy(&a.body);
            let page =
                ListObjectsV2::parse_response(&text).map_err(|e| StorageError::S3Transport {
                    method: "GET".into(),
                    key: prefix.to_string(),
                    detail: format!("cannot read ListObjectsV2's answer: {e}"),
                })?;
            let next = page
                .next_continuation_token
                .clone()
                .filter(|t| !t.is_empty());
            each(page);
            match next {
                Some(t) if Some(&t) != token.as_ref() => token = Some(t),
                _ => return Ok(()),
            }
        }
        Ok(())
    }
}

fn common_headers(options: &PutOptions) -> Vec<(&'static str, String)> {
    let mut headers = condition_headers(&options.mode);
    headers.push((
        "content-type",
        options
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".to_string()),
    ));
    if let Some(cc) = &options.cache_control {
        headers.push(("cache-control", cc.clone()));
    }
    headers
}

fn condition_headers(mode: &PutMode) -> Vec<(&'static str, String)> {
    match mode {
        PutMode::Overwrite => vec![],
        PutMode::Create => vec![("if-none-match", "*".to_string())],
        PutMode::Update(etag) => vec![("if-match", format!("\"{etag}\""))],
    }
}

fn meta_from_headers(key: &str, headers: &HeaderMap, body_len: Option<u64>) -> ObjectMeta {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    ObjectMeta {
        key: key.to_string(),
        size: body_len
            .or_else(|| h("content-length").and_then(|v| v.parse().ok()))
            .unwrap_or(0),
        etag: h("etag").map(unquote_etag),
        last_modified: h("last-modified").and_then(|d| httpdate::parse_http_date(d).ok()),
    }
}

/// An S3 error body: `<Error><Code>…</Code><Message>…</Message>…</Error>` (S3 API reference
/// "Error responses").
#[derive(Debug, FromXml)]
#[xml(rename = "Error")]
struct XmlError {
    #[xml(rename = "Code")]
    code: String,
    #[xml(rename = "Message")]
    message: Option<String>,
    /// R2 (like AWS) puts the canonical request it computed in a SignatureDoesNotMatch.
    #[xml(rename = "CanonicalRequest")]
    canonical_request: Option<String>,
}

fn parse_error(body: &[u8]) -> Option<XmlError> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Error")?;
    instant_xml::from_str::<XmlError>(&text[start..]).ok()
}

/// The ETag of a CompleteMultipartUploadResult.
fn completed_etag(body: &[u8]) -> Option<String> {
    #[derive(FromXml)]
    #[xml(
        rename = "CompleteMultipartUploadResult",
        ns("http://s3.amazonaws.com/doc/2006-03-01/")
    )]
    struct Completed {
        #[xml(rename = "ETag")]
        etag: Option<String>,
    }
    let text = std::str::from_utf8(body).ok()?;
    instant_xml::from_str::<Completed>(text).ok()?.etag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_token() {
        let c = S3Credentials::from_token("abc123", &Secret::new("token-value"));
        assert_eq!(c.access_key_id, "abc123");
        // sha256("token-value")
        assert_eq!(
            c.secret_access_key.expose(),
            hex::encode(sha2::Sha256::digest(b"token-value"))
        );
        assert_eq!(c.secret_access_key.expose().len(), 64);
        assert!(!format!("{c:?}").contains(c.secret_access_key.expose()));
    }

    #[test]
    fn endpoints_follow_the_jurisdiction() {
        let a = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            default_endpoint(a, None).as_str(),
            format!("https://{a}.r2.cloudflarestorage.com/")
        );
        assert_eq!(
            default_endpoint(a, Some("eu")).as_str(),
            format!("https://{a}.eu.r2.cloudflarestorage.com/")
        );
        assert_eq!(
            default_endpoint(a, Some("fedramp")).as_str(),
            format!("https://{a}.fedramp.r2.cloudflarestorage.com/")
        );
        assert_eq!(
            default_endpoint(a, Some("default")),
            default_endpoint(a, None)
        );
    }

    #[test]
    fn parts_are_equal_at_least_5_mib_and_at_most_10000() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(part_size_for(100 * MIB, 8 * MIB), 8 * MIB);
        assert_eq!(part_size_for(100 * MIB, MIB), 5 * MIB);
        let big = 200 * 1024 * MIB; // 200 GiB
        let p = part_size_for(big, 8 * MIB);
        assert!(big.div_ceil(p) <= MAX_PARTS, "{p}");
        assert_eq!(p % MIB, 0);
    }

    #[test]
    fn s3_errors_are_read_from_their_xml() {
        let body = br#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message><Resource>/b/k</Resource><RequestId>1</RequestId></Error>"#;
        let e = parse_error(body).unwrap();
        assert_eq!(e.code, "SignatureDoesNotMatch");
        assert!(e.message.unwrap().starts_with("The request signature"));
        assert!(parse_error(b"").is_none());
    }

    fn store() -> S3Store {
        let loc = BucketLoc {
            account: "a".into(),
            name: crate::names::BucketName::parse("bucket", "x").unwrap(),
            jurisdiction: None,
        };
        let client = Client::new(
            &Url::parse("http://127.0.0.1:9").unwrap(),
            crate::cloudflare::Auth::Token(Secret::new("t")),
            crate::cloudflare::ClientOptions::default(),
        )
        .unwrap();
        let creds = S3Credentials {
            access_key_id: "0123456789abcdef0123456789abcdef".into(),
            secret_access_key: Secret::new("s"),
        };
        S3Store::new(
            client,
            loc,
            Url::parse("http://127.0.0.1:9000").unwrap(),
            true,
            &creds,
            S3Options::default(),
        )
        .unwrap()
    }

    #[test]
    fn every_request_is_header_signed_over_its_real_payload_hash() {
        let s = store();
        let sha = hex::encode(sha2::Sha256::digest(b"hello"));
        let op = Op {
            headers: vec![("if-none-match", "*".to_string())],
            body: SendBody::Bytes(Bytes::from_static(b"hello")),
            sha256: sha.clone(),
            ..s.op(
                Method::PUT,
                "blobs/ab",
                s.url(Some("blobs/ab"), &[]).unwrap(),
            )
        };
        let signed = s.sign(&op).unwrap();
        let get = |n: &str| {
            signed
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_str().unwrap().to_string())
        };
        assert_eq!(get("x-amz-content-sha256").as_deref(), Some(sha.as_str()));
        let auth = get("authorization").unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=0123456789abcdef0123456789abcdef/"));
        assert!(auth.contains("/auto/s3/aws4_request"), "{auth}");
        assert!(
            auth.contains("SignedHeaders=host;if-none-match;x-amz-content-sha256;x-amz-date"),
            "{auth}"
        );
        assert!(signed
            .iter()
            .any(|(k, v)| *k == "authorization" && v.is_sensitive()));
        assert!(op.url.query().is_none(), "nothing is presigned");
    }

    #[test]
    fn queries_are_encoded_as_sigv4_canonicalises_them() {
        let s = store();
        let url = s
            .url(
                None,
                &[("list-type", "2"), ("prefix", "a b+c/"), ("delete", "")],
            )
            .unwrap();
        assert_eq!(url.query(), Some("list-type=2&prefix=a%20b%2Bc%2F&delete="));
        assert_eq!(url.path(), "/bucket/");
    }

    #[test]
    fn a_signature_mismatch_body_keeps_the_server_s_canonical_request() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>m</Message><CanonicalRequest>PUT\n/b/k\n\nhost:x\n\nhost\nUNSIGNED-PAYLOAD</CanonicalRequest></Error>";
        let e = parse_error(body).unwrap();
        assert_eq!(
            e.canonical_request.unwrap().lines().last(),
            Some("UNSIGNED-PAYLOAD")
        );
    }
}
