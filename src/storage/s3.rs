//! The S3 backend: R2's S3-compatible API with keys derived from the API token itself.
//!
//! Facts used (docs/cloudflare-api.md §7 "S3 credentials from an API token" and "The R2
//! S3-compatible API"; docs `r2/api/tokens.mdx`, `r2/api/s3/api.mdx`, `r2/platform/limits.mdx`):
//! - Access Key ID = the token's `id`; Secret Access Key = the lowercase hex SHA-256 of the
//!   token's value ("Secret Access Key: The SHA-256 hash of the API token `value`").
//! - Endpoint `https://<account>.r2.cloudflarestorage.com`, or `.eu.` / `.fedramp.` for a
//!   jurisdictional bucket, which is reachable only at its own endpoint. Region `auto`, SigV4,
//!   path-style addressing.
//! - Not under the REST API's 1,200 requests per 5 minutes ("For high-throughput object
//!   operations, use the S3-compatible API").
//! - One write per second per key, more is 429 (10058); 503 (10043) asks for backoff. Both, and
//!   other 5xx, are retried here with exponential backoff and jitter, honouring `Retry-After`.
//! - R2 refuses `aws-chunked` bodies and CRC trailer checksums (501), and requires Content-Length
//!   (411): every upload here has a known length and a plain body.
//! - A single PUT or part is at most 5 GiB; at most 10,000 parts, every non-final part at least
//!   5 MiB and all non-final parts the same size (10048 InvalidPart otherwise).
//! - Conditional PutObject (`If-None-Match: *`, `If-Match`) answers 412 PreconditionFailed.
//! - Presigned URLs are documented for GET, HEAD, PUT and DELETE only ("POST … is not currently
//!   supported"; §7 "Clients": unconfirmed). rusty-s3 presigns everything, so a POST refused
//!   (403 AccessDenied, 400, 501) is remembered for the run, with one note: DeleteObjects becomes
//!   one DeleteObject per key (8 at a time) and multipart one streamed PUT, up to 4.995 GiB
//!   ([`S3_MAX_PUT_SIZE`]); a larger file fails with [`StorageError::MultipartRefused`].
//!
//! Signing and the S3 XML come from `rusty-s3` (Sans-IO: it signs a URL, reqwest sends it over
//! the run's one connection pool, [`Client::http`]). It signs in the presigned-query form, whose
//! canonical payload line is `UNSIGNED-PAYLOAD`; every upload therefore also carries
//! `x-amz-content-sha256: <hex SHA-256 of the bytes>` as a *signed header*. S3 servers compare
//! that header with the body they receive and refuse a mismatch (400 XAmzContentSHA256Mismatch),
//! so bytes that are not what the key says are refused by the server. The body is also hashed
//! while it streams ([`verified_file_stream`]), which stops a changed file before its last byte.
//!
//! This module must not import commands, reports or output; the derived secret is never logged.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::stream::{FuturesUnordered, StreamExt};
use instant_xml::FromXml;
use reqwest::header::HeaderMap;
use rusty_s3::actions::{
    AbortMultipartUpload, CompleteMultipartUpload, CreateMultipartUpload, DeleteObject,
    DeleteObjects, DeleteObjectsResponse, GetObject, HeadObject, ListObjectsV2, ObjectIdentifier,
    PutObject, UploadPart,
};
use rusty_s3::{Bucket, S3Action, UrlStyle};
use sha2::Digest;
use tokio::io::AsyncReadExt;
use url::Url;

use crate::cloudflare::client::{backoff, retry_after, verified_file_stream};
use crate::cloudflare::{Client, HashCheck, RetryPolicy};
use crate::secret::Secret;

use super::{
    unquote_etag, BucketLoc, Object, ObjectMeta, Payload, PutMode, PutOptions, StorageError,
};

/// R2's largest object (4.995 TiB; `r2/platform/limits.mdx`).
pub const S3_MAX_OBJECT_SIZE: u64 = 4_995 * 1024 * 1024 * 1024 * 1024 / 1000;
/// The largest single PutObject (4.995 GiB; `r2/platform/limits.mdx`): the most a file can be
/// when multipart cannot be used (presigned POST refused).
pub const S3_MAX_PUT_SIZE: u64 = 4_995 * 1024 * 1024 * 1024 / 1000;
/// DeleteObjects refused: single DeleteObject calls in flight at once.
const DELETES_IN_FLIGHT: usize = 8;
/// R2's smallest non-final part.
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// R2's most parts in one upload.
pub const MAX_PARTS: u64 = 10_000;
/// DeleteObjects takes at most this many keys per call (S3 API reference).
pub const DELETE_BATCH: usize = 1000;
/// How long a signed URL stays valid. Each attempt is signed afresh, just before it is sent.
const SIGNED_FOR: Duration = Duration::from_secs(15 * 60);

/// S3 keys derived from an API token. The secret is held in the redacting [`Secret`].
#[derive(Debug, Clone)]
pub struct S3Credentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
}

impl S3Credentials {
    /// Access Key ID = the token's id (from its verify call); Secret = lowercase hex SHA-256 of
    /// the token's value (docs/cloudflare-api.md §7; docs `r2/api/tokens.mdx`).
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
    pub retry: RetryPolicy,
    /// Print a note on stderr before a long retry wait.
    pub notes: bool,
    /// Print each request's method, path and status on stderr (never headers or the query).
    pub log_requests: bool,
}

impl Default for S3Options {
    fn default() -> Self {
        S3Options {
            multipart_threshold: 64 * 1024 * 1024,
            part_size: 8 * 1024 * 1024,
            parts_in_flight: 3,
            retry: RetryPolicy::default(),
            notes: true,
            log_requests: false,
        }
    }
}

impl S3Options {
    /// The retry, note and logging settings of `client`, the rest default.
    pub fn from_client(client: &Client) -> Self {
        let o = client.options();
        S3Options {
            retry: o.retry.clone(),
            notes: o.notes,
            log_requests: o.log_requests,
            ..S3Options::default()
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
    credentials: rusty_s3::Credentials,
    /// The emulator's one endpoint serves every jurisdiction and picks one by this header; the
    /// real endpoints differ per jurisdiction, so it is sent only to an overridden endpoint.
    jurisdiction_header: Option<String>,
    options: S3Options,
    /// R2 refused a presigned POST this run (its docs list only GET, HEAD, PUT and DELETE for
    /// presigned URLs; docs/cloudflare-api.md §7 "Clients"): DeleteObjects and multipart are skipped.
    post_refused: AtomicBool,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.inner.loc)
            .field("endpoint", &self.inner.bucket.base_url().as_str())
            .field("access_key_id", &self.inner.credentials.key())
            .finish_non_exhaustive()
    }
}

/// An answer before decoding.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
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
            Bucket::new(endpoint, UrlStyle::Path, loc.name.clone(), "auto").map_err(|e| {
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
                credentials: rusty_s3::Credentials::new(
                    credentials.access_key_id.clone(),
                    credentials.secret_access_key.expose(),
                ),
                loc,
                bucket,
                jurisdiction_header,
                options,
                post_refused: AtomicBool::new(false),
            }),
        })
    }

    pub fn bucket(&self) -> &BucketLoc {
        &self.inner.loc
    }

    pub fn endpoint(&self) -> &Url {
        self.inner.bucket.base_url()
    }

    pub fn options(&self) -> &S3Options {
        &self.inner.options
    }

    /// Whether R2 refused a presigned POST earlier in this run.
    pub fn presigned_post_refused(&self) -> bool {
        self.inner.post_refused.load(Ordering::SeqCst)
    }

    /// Whether `a`, the answer to a presigned POST, is R2 refusing presigned POST itself: 403
    /// AccessDenied, 400 (other than a malformed key id) or 501. If so, remembers it for the run
    /// and says so once.
    fn check_post_refusal(&self, key: &str, a: &Answer) -> bool {
        let e = self.error("POST", key, a);
        let refused = match a.status {
            403 => e.s3_code() == Some("AccessDenied"),
            400 => !e.is_s3_auth_refusal(),
            501 => true,
            _ => false,
        };
        if refused
            && !self.inner.post_refused.swap(true, Ordering::SeqCst)
            && self.inner.options.notes
        {
            let code = e.s3_code().unwrap_or("refused");
            eprintln!(
                "cfsetup: note: R2's S3 API refused a presigned POST (HTTP {} {code}); for the \
                 rest of this run deletes go one key at a time and files go up as one PUT (at \
                 most 4.995 GiB) instead of in parts",
                a.status
            );
        }
        refused
    }

    fn creds(&self) -> Option<&rusty_s3::Credentials> {
        Some(&self.inner.credentials)
    }

    /// Sends one operation with retries: 429, 503 and other 5xx, and lost connections, with
    /// exponential backoff and jitter, honouring `Retry-After`. `sign` signs each attempt afresh;
    /// `headers` are sent as they are (the signed ones among them must match what was signed).
    async fn send(
        &self,
        method: reqwest::Method,
        key: &str,
        sign: impl Fn() -> Url,
        headers: &[(&'static str, String)],
        body: &SendBody,
    ) -> Result<Answer, StorageError> {
        let policy = &self.inner.options.retry;
        let http = self.inner.client.http();
        let (mut failures, mut limited) = (0u32, 0u32);
        let mut retry = false;
        loop {
            let url = sign();
            let path = url.path().to_string();
            let mut b = http.request(method.clone(), url);
            for (name, value) in headers {
                b = b.header(*name, value.as_str());
            }
            if let Some(j) = &self.inner.jurisdiction_header {
                b = b.header("cf-r2-jurisdiction", j.as_str());
            }
            let mut timeout = Duration::from_secs(60);
            let sent = match body {
                SendBody::Empty => {
                    if method == reqwest::Method::PUT || method == reqwest::Method::POST {
                        b = b.header(reqwest::header::CONTENT_LENGTH, 0);
                    }
                    0
                }
                SendBody::Bytes(bytes) => {
                    timeout += Duration::from_secs(bytes.len() as u64 / (256 * 1024));
                    b = b
                        .header(reqwest::header::CONTENT_LENGTH, bytes.len())
                        .body(bytes.clone());
                    bytes.len() as u64
                }
                SendBody::File { path, len, check } => {
                    let file = tokio::fs::File::open(path).await.map_err(|e| {
                        StorageError::S3Transport {
                            method: method.to_string(),
                            key: key.to_string(),
                            detail: format!("cannot open {}: {e}", path.display()),
                        }
                    })?;
                    timeout += Duration::from_secs(len / (256 * 1024));
                    b = b.header(reqwest::header::CONTENT_LENGTH, *len).body(
                        reqwest::Body::wrap_stream(verified_file_stream(
                            file,
                            *len,
                            Arc::clone(check),
                        )),
                    );
                    *len
                }
            };
            self.inner.client.count_s3(sent, retry);
            let started = Instant::now();
            let answer = match b.timeout(timeout).send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    resp.bytes().await.map(|body| Answer {
                        status,
                        headers,
                        body,
                    })
                }
                Err(e) => Err(e),
            };
            if self.inner.options.log_requests {
                let status = answer
                    .as_ref()
                    .map_or_else(|_| "no answer".to_string(), |a| a.status.to_string());
                eprintln!(
                    "cfsetup: debug: S3 {method} {path} -> {status} ({} ms)",
                    started.elapsed().as_millis()
                );
            }
            let wait = match answer {
                Ok(a) if a.status == 429 && limited < policy.max_rate_limit_retries => {
                    limited += 1;
                    match retry_after(&a.headers) {
                        Some(d) if d > policy.max_retry_after => return Ok(a),
                        Some(d) => d,
                        None => backoff(policy, limited - 1),
                    }
                }
                // 501 NotImplemented is R2's answer to what it will never take (aws-chunked,
                // trailers): not worth repeating.
                Ok(a) if a.status >= 500 && a.status != 501 && failures < policy.max_retries => {
                    failures += 1;
                    retry_after(&a.headers)
                        .filter(|d| *d <= policy.max_retry_after)
                        .unwrap_or_else(|| backoff(policy, failures - 1))
                }
                Ok(a) => return Ok(a),
                Err(e) => {
                    if let SendBody::File { path, check, .. } = body {
                        if check.mismatched() {
                            return Err(StorageError::ChangedOnDisk {
                                path: path.clone(),
                                expected: check.expected().to_string(),
                            });
                        }
                    }
                    if failures >= policy.max_retries {
                        return Err(StorageError::S3Transport {
                            method: method.to_string(),
                            key: key.to_string(),
                            detail: transport_detail(&e),
                        });
                    }
                    failures += 1;
                    backoff(policy, failures - 1)
                }
            };
            if self.inner.options.notes && wait >= Duration::from_secs(2) {
                eprintln!(
                    "cfsetup: note: S3 {method} {key} will be retried in {}s",
                    wait.as_secs()
                );
            }
            retry = true;
            tokio::time::sleep(wait).await;
        }
    }

    fn error(&self, method: &str, key: &str, a: &Answer) -> StorageError {
        let parsed = parse_error(&a.body);
        let (code, message) = match parsed {
            Some(e) => (e.code, e.message.unwrap_or_default()),
            // A HEAD error has no body.
            None => {
                let key_len = self.inner.credentials.key().len();
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
        StorageError::S3 {
            method: method.to_string(),
            key: key.to_string(),
            status: a.status,
            code,
            message,
        }
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

    async fn get_inner(
        &self,
        key: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Option<Object>, StorageError> {
        let mut headers = Vec::new();
        if let Some(r) = &range {
            if r.end <= r.start {
                return Ok(None);
            }
            headers.push(("range", format!("bytes={}-{}", r.start, r.end - 1)));
        }
        let a = self
            .send(
                reqwest::Method::GET,
                key,
                || GetObject::new(&self.inner.bucket, self.creds(), key).sign(SIGNED_FOR),
                &headers,
                &SendBody::Empty,
            )
            .await?;
        match a.status {
            200 | 206 => Ok(Some(Object {
                meta: meta_from_headers(key, &a.headers, Some(a.body.len() as u64)),
                body: a.body,
            })),
            404 => Ok(None),
            _ => Err(self.error("GET", key, &a)),
        }
    }

    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        let a = self
            .send(
                reqwest::Method::HEAD,
                key,
                || HeadObject::new(&self.inner.bucket, self.creds(), key).sign(SIGNED_FOR),
                &[],
                &SendBody::Empty,
            )
            .await?;
        match a.status {
            200 => Ok(Some(meta_from_headers(key, &a.headers, None))),
            404 => Ok(None),
            _ => Err(self.error("HEAD", key, &a)),
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
        let mut headers = common_headers(&options);
        let (body, sha256) = match payload {
            Payload::Bytes(b) => {
                let sha = hex::encode(sha2::Sha256::digest(&b));
                (SendBody::Bytes(b), sha)
            }
            Payload::File { path, len, sha256 } => {
                if len > self.inner.options.multipart_threshold {
                    if !self.presigned_post_refused() {
                        match self.put_multipart(key, &path, len, &sha256, &options).await {
                            Err(_) if self.presigned_post_refused() => {}
                            done => return done,
                        }
                    }
                    if len > S3_MAX_PUT_SIZE {
                        return Err(StorageError::MultipartRefused {
                            key: key.to_string(),
                            size: len,
                        });
                    }
                }
                let check = HashCheck::new(sha256.clone());
                (SendBody::File { path, len, check }, sha256)
            }
        };
        let sha256 = sha256.to_ascii_lowercase();
        headers.push(("x-amz-content-sha256", sha256.clone()));
        let a = self
            .send(
                reqwest::Method::PUT,
                key,
                || {
                    let mut action = PutObject::new(&self.inner.bucket, self.creds(), key);
                    action
                        .headers_mut()
                        .insert("x-amz-content-sha256", sha256.as_str());
                    action.sign(SIGNED_FOR)
                },
                &headers,
                &body,
            )
            .await?;
        self.put_result("PUT", key, &a, &body)
    }

    fn put_result(
        &self,
        method: &str,
        key: &str,
        a: &Answer,
        body: &SendBody,
    ) -> Result<Option<String>, StorageError> {
        match a.status {
            200..=299 => Ok(a
                .headers
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(unquote_etag)),
            412 => Err(StorageError::PreconditionFailed {
                key: key.to_string(),
            }),
            _ => {
                let e = self.error(method, key, a);
                // The server compared the bytes with the signed hash and refused them.
                if let (StorageError::S3 { code, .. }, SendBody::File { path, check, .. }) =
                    (&e, body)
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
        let headers = common_headers(&PutOptions {
            mode: PutMode::Overwrite,
            ..options.clone()
        });
        let a = self
            .send(
                reqwest::Method::POST,
                key,
                || {
                    CreateMultipartUpload::new(&self.inner.bucket, self.creds(), key)
                        .sign(SIGNED_FOR)
                },
                &headers,
                &SendBody::Empty,
            )
            .await?;
        if a.status != 200 {
            self.check_post_refusal(key, &a);
            return Err(self.error("POST", key, &a));
        }
        let text = String::from_utf8_lossy(&a.body);
        let created = CreateMultipartUpload::parse_response(&text).map_err(|e| {
            StorageError::S3Transport {
                method: "POST".into(),
                key: key.to_string(),
                detail: format!("cannot read CreateMultipartUpload's answer: {e}"),
            }
        })?;
        let upload_id = created.upload_id().to_string();
        let result = self
            .upload_parts(key, &upload_id, path, len, sha256, part_size, options)
            .await;
        if result.is_err() {
            let aborted = self
                .send(
                    reqwest::Method::DELETE,
                    key,
                    || {
                        AbortMultipartUpload::new(&self.inner.bucket, self.creds(), key, &upload_id)
                            .sign(SIGNED_FOR)
                    },
                    &[],
                    &SendBody::Empty,
                )
                .await;
            if !matches!(&aborted, Ok(a) if (200..300).contains(&a.status) || a.status == 404) {
                // Unfinished uploads expire after 7 days (R2 limits); say so rather than hide it.
                if self.inner.options.notes {
                    eprintln!(
                        "cfsetup: note: could not abort the multipart upload of {key}; R2 \
                         removes unfinished uploads after 7 days"
                    );
                }
            }
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        path: &Path,
        len: u64,
        sha256: &str,
        part_size: u64,
        options: &PutOptions,
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
            let part_number = (n + 1) as u16;
            in_flight.push(async move {
                let part_sha = hex::encode(sha2::Sha256::digest(&buf));
                let headers = [("x-amz-content-sha256", part_sha.clone())];
                let body = SendBody::Bytes(buf);
                let a = self
                    .send(
                        reqwest::Method::PUT,
                        key,
                        || {
                            let mut action = UploadPart::new(
                                &self.inner.bucket,
                                self.creds(),
                                key,
                                part_number,
                                upload_id,
                            );
                            action
                                .headers_mut()
                                .insert("x-amz-content-sha256", part_sha.as_str());
                            action.sign(SIGNED_FOR)
                        },
                        &headers,
                        &body,
                    )
                    .await?;
                if a.status != 200 {
                    return Err(self.error("PUT", key, &a));
                }
                let etag = a
                    .headers
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .ok_or_else(|| StorageError::S3Transport {
                        method: "PUT".into(),
                        key: key.to_string(),
                        detail: format!("part {part_number} was stored without an ETag"),
                    })?;
                Ok::<_, StorageError>((n as usize, etag))
            });
        }
        while let Some(done) = in_flight.next().await {
            let (i, etag) = done?;
            etags[i] = Some(etag);
        }
        let etags: Vec<String> = etags.into_iter().map(Option::unwrap_or_default).collect();
        let body = CompleteMultipartUpload::new(
            &self.inner.bucket,
            self.creds(),
            key,
            upload_id,
            etags.iter().map(String::as_str),
        )
        .body();
        let mut headers = condition_headers(&options.mode);
        headers.push(("content-type", "application/xml".to_string()));
        let body = SendBody::Bytes(Bytes::from(body));
        let a = self
            .send(
                reqwest::Method::POST,
                key,
                || {
                    CompleteMultipartUpload::new(
                        &self.inner.bucket,
                        self.creds(),
                        key,
                        upload_id,
                        std::iter::empty(),
                    )
                    .sign(SIGNED_FOR)
                },
                &headers,
                &body,
            )
            .await?;
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
                .or_else(|| xml_field(&a.body, "ETag").map(|e| unquote_etag(&e)));
            return Ok(etag);
        }
        self.check_post_refusal(key, &a);
        self.put_result("POST", key, &a, &SendBody::Empty)
    }

    /// Deletes `key`; a missing key is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let a = self
            .send(
                reqwest::Method::DELETE,
                key,
                || DeleteObject::new(&self.inner.bucket, self.creds(), key).sign(SIGNED_FOR),
                &[],
                &SendBody::Empty,
            )
            .await?;
        match a.status {
            200..=299 | 404 => Ok(()),
            _ => Err(self.error("DELETE", key, &a)),
        }
    }

    /// Deletes every key, at most 1,000 per DeleteObjects call; missing keys are not errors.
    /// Once R2 refuses the presigned POST, one DeleteObject per key, 8 at a time.
    pub async fn delete_many(&self, keys: &[String]) -> Result<(), StorageError> {
        for chunk in keys.chunks(DELETE_BATCH) {
            if self.presigned_post_refused() {
                self.delete_each(chunk).await?;
                continue;
            }
            let objects: Vec<ObjectIdentifier> = chunk
                .iter()
                .map(|k| ObjectIdentifier::new(k.clone()))
                .collect();
            let mut action = DeleteObjects::new(&self.inner.bucket, self.creds(), objects.iter());
            action.set_quiet(true);
            let (body, md5) = action.body_with_md5();
            let headers = [
                ("content-md5", md5),
                ("content-type", "application/xml".to_string()),
            ];
            let body = SendBody::Bytes(Bytes::from(body));
            let a = self
                .send(
                    reqwest::Method::POST,
                    &chunk[0],
                    || {
                        DeleteObjects::new(&self.inner.bucket, self.creds(), objects.iter())
                            .sign(SIGNED_FOR)
                    },
                    &headers,
                    &body,
                )
                .await?;
            if a.status != 200 {
                if self.check_post_refusal(&chunk[0], &a) {
                    self.delete_each(chunk).await?;
                    continue;
                }
                return Err(self.error("POST", &chunk[0], &a));
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

    /// One DeleteObject per key, [`DELETES_IN_FLIGHT`] at a time.
    async fn delete_each(&self, keys: &[String]) -> Result<(), StorageError> {
        let mut done = futures::stream::iter(keys.iter().map(|k| self.delete(k)))
            .buffer_unordered(DELETES_IN_FLIGHT);
        while let Some(r) = done.next().await {
            r?;
        }
        Ok(())
    }

    /// Every object whose key starts with `prefix`, in key order (ListObjectsV2, following
    /// continuation tokens).
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
            let a = self
                .send(
                    reqwest::Method::GET,
                    prefix,
                    || {
                        let mut action = ListObjectsV2::new(&self.inner.bucket, self.creds());
                        action.with_prefix(prefix.to_string());
                        if let Some(d) = delimiter {
                            action.with_delimiter(d.to_string());
                        }
                        if let Some(t) = &token {
                            action.with_continuation_token(t.clone());
                        }
                        action.sign(SIGNED_FOR)
                    },
                    &[],
                    &SendBody::Empty,
                )
                .await?;
            if a.status != 200 {
                return Err(self.error("GET", prefix, &a));
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

fn transport_detail(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "the connection was closed before an answer came".to_string()
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
}

fn parse_error(body: &[u8]) -> Option<XmlError> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Error")?;
    instant_xml::from_str::<XmlError>(&text[start..]).ok()
}

/// One top-level field of a small XML answer (the ETag of CompleteMultipartUploadResult).
fn xml_field(body: &[u8], name: &str) -> Option<String> {
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
    if name != "ETag" {
        return None;
    }
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

    #[test]
    fn uploads_sign_their_payload_hash() {
        let loc = BucketLoc {
            account: "a".into(),
            name: "bucket".into(),
            jurisdiction: None,
        };
        let bucket = Bucket::new(
            Url::parse("http://127.0.0.1:9000").unwrap(),
            UrlStyle::Path,
            loc.name.clone(),
            "auto",
        )
        .unwrap();
        let creds = rusty_s3::Credentials::new("id", "secret");
        let mut put = PutObject::new(&bucket, Some(&creds), "blobs/ab");
        put.headers_mut()
            .insert("x-amz-content-sha256", "e3b0c44298fc1c149afbf4c8996fb924");
        let url = put.sign(SIGNED_FOR);
        let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let signed = q.iter().find(|(k, _)| k == "X-Amz-SignedHeaders").unwrap();
        assert_eq!(signed.1, "host;x-amz-content-sha256");
        assert!(url.path().starts_with("/bucket/blobs/ab"));
        let cred = q.iter().find(|(k, _)| k == "X-Amz-Credential").unwrap();
        assert!(cred.1.contains("/auto/s3/aws4_request"));
    }
}
