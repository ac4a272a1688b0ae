//! R2's S3-compatible API, served on the emulator's one listener over the same buckets and
//! objects as the REST API (what REST writes, S3 reads, and back; docs/design.md "Two APIs, one
//! bucket"). Path-style only: `GET /` is ListBuckets, `/{bucket}` and `/{bucket}/{key…}` the rest;
//! any path not under `/client/v4` or `/__emulator` comes here.
//!
//! Jurisdictions: R2 has one endpoint per jurisdiction (`<acct>.eu.r2.cloudflarestorage.com`,
//! docs/cloudflare-api.md §7 "Endpoints": a jurisdictional bucket is reachable only at its own
//! endpoint), and its S3 API reads no `cf-r2-jurisdiction` header, so the emulator reads none
//! either. With one listener it finds a bucket by name: in `default` first, else the only bucket
//! of that name in any jurisdiction (a choice; a client that uses the wrong endpoint for an eu
//! bucket is not caught). ListBuckets and CreateBucket are the `default` jurisdiction's.
//!
//! Served: ListBuckets, HeadBucket, GetBucketLocation, CreateBucket, DeleteBucket,
//! ListObjectsV2 (and V1), PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects,
//! CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload, ListParts.
//! Bodies are S3 XML
//! (`application/xml`); errors are `<Error><Code/><Message/><Resource/><RequestId/></Error>`
//! (S3 API reference "Error responses"), and a HEAD error has no body.
//!
//! Pipeline (`handle`): refuse what R2 refuses before reading the body (aws-chunked and
//! `STREAMING-…` payloads and `x-amz-trailer`: 501 NotImplemented; sources: docs/cloudflare-api.md §7
//! "Checksums" for trailers, and soto-project/soto #643, where R2 answered
//! "STREAMING-AWS4-HMAC-SHA256-PAYLOAD not implemented" for a streaming payload without
//! trailers; an upload without Content-Length: 411 MissingContentLength, §7 "Limits") → read the
//! body (≤ 5 GiB, R2's single PUT / part limit, §7 "Limits"; the REST path keeps its 300 MiB) →
//! injected fault (S3 XML: 429 TooManyRequests + Retry-After, 503 ServiceUnavailable, 500
//! InternalError) → `Options.latency` → hash the body outside the lock → under the state lock:
//! route the request (`classify`: 405, 501 and InvalidObjectName come *before* authentication,
//! so an unauthenticated caller can get them: a choice, R2's order is unknown and gateways
//! usually authenticate first, docs/cloudflare-api.md §11), SigV4 (`sigv4`), token usability, payload
//! hash, permission, the operation → save the state file after a mutation, outside the lock →
//! log (`Api::S3`, auth `sigv4` / `presigned` / `none`, the operation's name once routed, e.g.
//! `PutObject`, with `X-Amz-Signature` redacted from the query, also when its name is
//! percent-encoded). Under `Options.s3_conflict_409` a conditional PutObject is marked "in
//! flight" by its path from arrival (before the body is read) to its answer. The S3 API is not
//! under the REST rate limit (§7 "Not under the REST limit").
//!
//! The strict side: where R2's documentation is silent the emulator takes the answer that is
//! hardest on a client, and each such choice has a knob in `Options` (and a `cfsetup emulator
//! --s3-…` flag) for the other side: `s3_presigned_post`, `s3_presigned_payload_lenient`,
//! `s3_unsigned_content_sha256_lenient`, `s3_conflict_409`, `s3_write_limit_per_key`,
//! `s3_complete_honours_conditions`, `s3_refuses_prefixed_tokens`.
//!
//! Errors follow R2's table (`r2/api/error-codes.mdx`) where it has a row; where it is silent,
//! AWS S3's answer is kept and marked "a choice":
//! - missing credentials, or a disabled, expired or not-yet-valid token: 401 Unauthorized
//!   (R2 10002, "Missing or invalid authentication credentials … have not expired");
//! - insufficient permissions: 403 AccessDenied (R2 10003);
//! - expired presigned URL: 400 ExpiredRequest (R2 10018);
//! - bad signature: 403 SignatureDoesNotMatch (R2 10035), whose body carries `<AWSAccessKeyId>`,
//!   `<StringToSign>`, `<SignatureProvided>` and `<CanonicalRequest>` as AWS's and R2's do (R2's
//!   capture in WWBN/AVideo#9667, §7 "Signing: use the header form"); the last line of the
//!   canonical request is the payload hash the server used. Never the secret;
//! - a presigned POST: 403 SignatureDoesNotMatch by default (`Options.s3_presigned_post`:
//!   401, 403 AccessDenied, 501 or accepted instead; R2 names no status);
//! - a header-signed request whose `x-amz-content-sha256` is not in `SignedHeaders`: 403
//!   AccessDenied "There were headers present in the request which were not signed" with
//!   `<HeadersNotSigned>` (AWS's; a choice, `Options.s3_unsigned_content_sha256_lenient`);
//! - key over 1,024 bytes: 400 InvalidObjectName (R2 10020);
//! - 503: ServiceUnavailable (R2 10043);
//! - an Access Key ID that is not 32 characters: 400 InvalidArgument "Credential access key has
//!   length N, should be 32" (the message from docs/cloudflare-api.md §7, medusa PR #10497; code and
//!   status a choice); an unknown 32-character one: 403 InvalidAccessKeyId (AWS's, a choice);
//! - a token used from outside its IP condition: 403 AccessDenied (a choice: R2 documents no IP
//!   rule for S3; the REST rule of §4 is applied);
//! - header signature too old or too new: 403 RequestTimeTooSkewed; presigned URL dated in the
//!   future: 403 AccessDenied (both AWS's, a choice);
//! - both an `Authorization` header and query authentication: 400 InvalidArgument (AWS's, a
//!   choice); an upper-case hex signature does not match (SigV4 signatures are lower-case hex).
//!
//! R2 facts emulated, with their source:
//! - Keys from tokens: Access Key ID = token id, Secret = hex SHA-256 of the token value, which is
//!   the stored `value_sha256` (§7 "S3 credentials from an API token"; docs `r2/api/tokens.mdx`).
//!   With `Options.s3_refuses_prefixed_tokens`, keys of `cfut_`/`cfat_` tokens get 403
//!   SignatureDoesNotMatch (§7: unconfirmed for the prefixed formats).
//! - Authorisation (§7 "Permissions"): writes need Workers R2 Storage Write on the account or
//!   Bucket Item Write on `com.cloudflare.edge.r2.bucket.<ACCOUNT>_<jurisdiction>_<BUCKET>`; reads
//!   also accept Workers R2 Storage Read and Bucket Item Read. ListBuckets, CreateBucket and
//!   DeleteBucket need the account groups. Otherwise 403 AccessDenied.
//! - Region `auto`, with `us-east-1` and empty as aliases (§7 "Endpoints").
//! - Presigned URLs for GET, HEAD, PUT, DELETE (R2 `r2/api/s3/presigned-urls.mdx`). R2 says
//!   presigned POST "is not currently supported" and names no status: refused by default with
//!   403 SignatureDoesNotMatch (`crate::PresignedPost` says why), a knob for 401, 403
//!   AccessDenied, 501 or acceptance.
//! - A presigned request's payload line is the `X-Amz-Content-Sha256` query parameter, else the
//!   `x-amz-content-sha256` header, else `UNSIGNED-PAYLOAD` (AWS's Go SDK `buildBodyDigest`,
//!   PR #1976; aws4fetch; MinIO `getContentSha256Cksum`; §7 "Signing: use the header form"), so
//!   a signer that signs `UNSIGNED-PAYLOAD` and sends a hex header gets 403
//!   SignatureDoesNotMatch. `Options.s3_presigned_payload_lenient` is s3s' reading (always
//!   `UNSIGNED-PAYLOAD`).
//! - A header-signed request's payload line is its `x-amz-content-sha256` header, which is
//!   required (400 InvalidRequest), must be `UNSIGNED-PAYLOAD` or hex (400 InvalidArgument) and
//!   must be signed (see the errors above).
//! - Every hex hash claimed (header or query parameter) is checked against the body (400
//!   XAmzContentSHA256Mismatch, with `<ClientComputedContentSHA256>` and
//!   `<S3ComputedContentSHA256>` as AWS's), after the signature; `UNSIGNED-PAYLOAD` is not
//!   checked. `Content-MD5` too (400 BadDigest). Checksum headers (`x-amz-checksum-*`) are
//!   accepted and not checked.
//! - Of the other headers only `host` must be signed (a choice: AWS also requires every
//!   `x-amz-*` header sent and Content-Type; R2's rule is unconfirmed).
//! - Anonymous requests are 401 Unauthorized (no public buckets on this endpoint).
//! - Conditional PutObject: `If-Match`, `If-None-Match`, `If-Modified-Since`,
//!   `If-Unmodified-Since` → 412 PreconditionFailed (§7 "Conditional writes"; docs
//!   `r2/api/s3/extensions.mdx`). The check and the write happen under one lock, so of two racing
//!   `If-None-Match: *` PUTs exactly one wins (R2 does not document this: §7). On a missing
//!   object `If-Match` fails and the others pass. Date conditions compare whole seconds (the
//!   `Last-Modified` a client read back), not the stored milliseconds.
//! - A lost conditional PutObject: 412 by default; with `Options.s3_conflict_409`, 409
//!   ConditionalRequestConflict, AWS's answer (§7 "A conditional write that races another";
//!   R2's is undocumented, cloudflare-docs#32793), when its condition fails or another
//!   conditional PutObject of the key is in flight.
//! - CompleteMultipartUpload with a conditional header: 501 NotImplemented by default, because R2
//!   documents them for PutObject only (`r2/api/s3/api.mdx`);
//!   `Options.s3_complete_honours_conditions` honours them (412), as the emulator used to.
//! - Upload times in milliseconds (workerd `getUploadedMillisecondsSinceEpoch`, §7 "Times"):
//!   ListObjectsV2 / V1 `LastModified` and the REST listing's `last_modified` show the fraction
//!   (`2026-12-06T04:05:06.789Z`), `Last-Modified` on GET / HEAD is the truncated HTTP date, and
//!   every upload gets a later millisecond than the one before (`wire::upload_time`).
//! - GetObject conditions follow RFC 9110 (If-None-Match overrides If-Modified-Since; a choice,
//!   R2 is silent and AWS documents another order).
//! - HeadObject ignores `Range` (200, the full length): R2 `r2/api/s3/api.mdx`, "Range (has no
//!   effect in HeadObject)". AWS answers 206.
//! - System metadata: Content-Type, Cache-Control, Content-Disposition, Content-Encoding,
//!   Content-Language and Expires are stored on PutObject and CreateMultipartUpload and echoed on
//!   GET / HEAD (R2 `api.mdx` PutObject and CreateMultipartUpload rows; `extensions.mdx`
//!   `httpMetadata`).
//! - Multipart (§7 "Limits"; R2 `r2/objects/multipart-objects`): part numbers 1..=10000, every
//!   part but the last ≥ 5 MiB (EntityTooSmall), all non-final parts the same size and the last
//!   no larger than them (InvalidPart, R2 10048), parts listed in ascending order
//!   (InvalidPartOrder), ETag `"<MD5 of the part MD5s>-<n>"`; unknown upload NoSuchUpload. Parts
//!   live in memory and are not persisted.
//! - Listings: `max-keys=0` / `max-parts=0` give an empty, untruncated page; a V1 `marker` or V2
//!   `start-after` equal to (or inside) a common prefix resumes after it (s3-tests
//!   `test_bucket_list_maxkeys_zero`, `test_bucket_list_delimiter_prefix`). One walk serves
//!   REST and S3 (`Bucket::walk`).
//! - ETag of a single PUT = `"<MD5 hex>"`, shared with the REST API.
//! - Optional: one write per second per key (429 TooManyRequests, R2 10058, `Retry-After: 1`)
//!   on PutObject and CompleteMultipartUpload, behind `Options.s3_write_limit_per_key`
//!   (`Options::with_s3_write_limit_per_key`, `--s3-write-limit-per-key`). It is checked before
//!   the conditions, so racing lock writers see 429 (§7: "treat 429 on a lock key as contended").
//!
//! Not emulated: virtual-hosted style, `response-*` overrides on GET, CopyObject / UploadPartCopy
//! (501), object tagging, ACLs, versioning, bucket configuration subresources (501),
//! ListMultipartUploads (501), ListBuckets paging (`extensions.mdx`), custom metadata
//! (`x-amz-meta-*` is ignored) and the 8,192-byte metadata limit (10012 MetadataTooLarge),
//! SSE-C, storage classes other than Standard, checksum validation, temporary credentials,
//! browser POST-policy forms, `Expect: 100-continue` refusal (hyper answers 100; R2 does not),
//! the 7-day expiry of unfinished uploads, and the one-minute delay of permission changes.

mod ops;
mod sigv4;
mod xml;

use crate::shared::Shared;
use crate::wire::{finish, Dropped};
use crate::wire::{random_hex, Reply};
use crate::{Api, FaultKind, RecordedRequest};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, Response};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

/// R2's largest single PUT or part: 5 GiB (docs/cloudflare-api.md §7 "Limits").
pub const MAX_S3_BODY: u64 = 5 * 1024 * 1024 * 1024;

/// An S3 error, rendered as S3 XML.
#[derive(Debug, Clone)]
pub struct S3Error {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    pub headers: Vec<(String, String)>,
    /// Elements after `<Message>`, in order (e.g. SignatureDoesNotMatch's `<CanonicalRequest>`).
    pub details: Vec<(&'static str, String)>,
}

impl S3Error {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> S3Error {
        S3Error {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
            details: Vec::new(),
        }
    }

    pub fn with_detail(mut self, element: &'static str, value: impl Into<String>) -> S3Error {
        self.details.push((element, value.into()));
        self
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> S3Error {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The XML answer; a HEAD gets the status and headers only.
    pub fn reply(&self, resource: &str, request_id: &str, head: bool) -> Reply {
        let mut headers = self.headers.clone();
        headers.push(("x-amz-request-id".into(), request_id.into()));
        if head {
            return Reply::raw(self.status, headers, Bytes::new());
        }
        let details: String = self
            .details
            .iter()
            .map(|(name, value)| xml::el(name, value))
            .collect();
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message>{details}<Resource>{}</Resource><RequestId>{}</RequestId></Error>",
            self.code,
            xml::esc(&self.message),
            xml::esc(resource),
            request_id
        );
        headers.push(("content-type".into(), "application/xml".into()));
        Reply::raw(self.status, headers, Bytes::from(body))
    }
}

/// 403 AccessDenied.
pub fn access_denied() -> S3Error {
    S3Error::new(403, "AccessDenied", "Access Denied")
}

/// A request as the operations see it.
pub struct S3Ctx<'a> {
    pub method: &'a str,
    /// Raw path as sent.
    pub path: &'a str,
    /// Query parameters, percent-decoded (`+` is kept as `+`), in order.
    pub query: Vec<(String, String)>,
    pub headers: &'a HeaderMap,
    pub client_ip: std::net::IpAddr,
    pub catalog: &'a [crate::seed::PermissionGroup],
    pub now: SystemTime,
    /// Hex SHA-256 of the body, when `x-amz-content-sha256` is a hash (checked after the
    /// signature).
    pub body_sha256: Option<String>,
    /// MD5 of the body, for uploads.
    pub body_md5: Option<[u8; 16]>,
    pub write_limit: bool,
    /// `Options.s3_presigned_post`.
    pub presigned_post: crate::PresignedPost,
    /// `Options.s3_presigned_payload_lenient`.
    pub presigned_payload_lenient: bool,
    /// `Options.s3_unsigned_content_sha256_lenient`.
    pub unsigned_content_sha256_lenient: bool,
    /// `Options.s3_conflict_409`.
    pub conflict_409: bool,
    /// Another conditional PutObject of this path was in flight when this one arrived (only
    /// tracked under `Options.s3_conflict_409`).
    pub overlapped: bool,
    /// `Options.s3_complete_honours_conditions`.
    pub complete_conditions: bool,
    /// `Options.s3_refuses_prefixed_tokens`.
    pub refuses_prefixed_tokens: bool,
    /// `Options.s3_fault_trusts_claimed_sha256`.
    pub trusts_claimed_sha256: bool,
    /// `Options.s3_fault_ignores_conditions`.
    pub ignores_conditions: bool,
}

impl S3Ctx<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn q(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, key: &str) -> bool {
        self.query.iter().any(|(k, _)| k == key)
    }
}

/// Splits a raw query into decoded pairs (no `+` → space: SigV4 clients encode a space as `%20`).
pub fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    let dec = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    raw.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

/// The query for the request log: a presigned URL is a credential until it expires, so its
/// `X-Amz-Signature` is replaced by `REDACTED`. The name is compared after percent-decoding, as
/// the verifier reads it, so `X-Amz-%53ignature=…` is redacted too.
fn redact_signature(raw: &str) -> String {
    raw.split('&')
        .map(|p| {
            let (k, _) = p.split_once('=').unwrap_or((p, ""));
            let name = percent_encoding::percent_decode_str(k).decode_utf8_lossy();
            if name.eq_ignore_ascii_case("X-Amz-Signature") {
                format!("{k}=REDACTED")
            } else {
                p.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Is this an upload with a body (PutObject or UploadPart)?
fn is_upload(method: &str, path: &str) -> bool {
    method == "PUT"
        && path
            .trim_start_matches('/')
            .split_once('/')
            .is_some_and(|(_, key)| !key.is_empty())
}

/// The conditional headers of a write (docs/cloudflare-api.md §7 "Conditional writes").
pub const WRITE_CONDITIONS: [&str; 4] = [
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
];

/// Is this a conditional PutObject (a PUT of a key, not a part or a copy, with a condition)?
fn conditional_put(
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> bool {
    is_upload(method, path)
        && !query
            .iter()
            .any(|(k, _)| k == "uploadId" || k == "partNumber")
        && !headers.contains_key("x-amz-copy-source")
        && WRITE_CONDITIONS.iter().any(|h| headers.contains_key(*h))
}

/// A conditional PutObject in flight, counted by raw path for `Options.s3_conflict_409`; the
/// count drops when the request is answered (or dropped), whatever the outcome.
struct InFlight<'a> {
    map: &'a parking_lot::Mutex<HashMap<String, usize>>,
    path: String,
}

impl<'a> InFlight<'a> {
    /// Registers the request; also returns whether another one of this path was in flight.
    fn enter(map: &'a parking_lot::Mutex<HashMap<String, usize>>, path: &str) -> (Self, bool) {
        let mut m = map.lock();
        let n = m.entry(path.to_string()).or_insert(0);
        let overlapped = *n > 0;
        *n += 1;
        (
            InFlight {
                map,
                path: path.to_string(),
            },
            overlapped,
        )
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut m = self.map.lock();
        if let Some(n) = m.get_mut(&self.path) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.path);
            }
        }
    }
}

/// What R2 refuses before the body is read.
fn precheck(method: &str, path: &str, headers: &HeaderMap) -> Result<(), S3Error> {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let streaming = h("x-amz-content-sha256").starts_with("STREAMING-")
        || h("content-encoding")
            .split(',')
            .any(|e| e.trim().eq_ignore_ascii_case("aws-chunked"))
        || headers.contains_key("x-amz-trailer")
        || headers.contains_key("x-amz-decoded-content-length");
    if streaming {
        return Err(S3Error::new(
            501,
            "NotImplemented",
            "STREAMING-* payloads, aws-chunked encoding and x-amz-trailer checksums are not implemented",
        ));
    }
    if is_upload(method, path) {
        match headers.get("content-length") {
            None => {
                return Err(S3Error::new(
                    411,
                    "MissingContentLength",
                    "You must provide the Content-Length HTTP header.",
                ))
            }
            Some(v) => {
                let n = v.to_str().ok().and_then(|s| s.parse::<u64>().ok());
                if n.is_some_and(|n| n > MAX_S3_BODY) {
                    return Err(too_large());
                }
            }
        }
    }
    Ok(())
}

pub fn too_large() -> S3Error {
    S3Error::new(
        400,
        "EntityTooLarge",
        "Your proposed upload exceeds the maximum allowed object size.",
    )
}

enum BodyError {
    TooLarge,
    Io,
}

/// Reads the body into one buffer. The unauthenticated Content-Length only sizes the first
/// allocation up to 64 MiB; past that the buffer grows as data arrives.
async fn read_body(mut body: Incoming, headers: &HeaderMap) -> Result<Vec<u8>, BodyError> {
    let hint = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0)
        .min(64 << 20);
    let mut buf = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| BodyError::Io)?;
        if let Ok(data) = frame.into_data() {
            if (buf.len() + data.len()) as u64 > MAX_S3_BODY {
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf)
}

/// Serves one S3 request, which arrived at `started`.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
    started: std::time::Instant,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().map(str::to_string);
    let query = parse_query(raw_query.as_deref());
    let ray = format!("{}-EMU", random_hex(16));
    let request_id = random_hex(16).to_ascii_uppercase();
    let head = method == "HEAD";
    let auth = sigv4::auth_kind(&parts.headers, &query).to_string();
    let logged_query = raw_query.as_deref().map(redact_signature);
    let log = |status: u16, body_len: u64, op: Option<&'static str>| {
        shared.log.lock().push(RecordedRequest {
            method: method.clone(),
            path: path.clone(),
            query: logged_query.clone(),
            status,
            auth: auth.clone(),
            body_len,
            api: Api::S3,
            op,
            started,
            ended: std::time::Instant::now(),
        });
    };
    let answer = |e: S3Error, body_len: u64| {
        let reply = e.reply(&path, &request_id, head);
        log(reply.status, body_len, None);
        Ok(finish(reply, &ray, None))
    };
    // Held from arrival to the answer, injected latency included (`Options.s3_conflict_409`).
    let (_in_flight, overlapped) = if shared.options.s3_conflict_409
        && conditional_put(&method, &path, &query, &parts.headers)
    {
        let (guard, overlapped) = InFlight::enter(&shared.in_flight, &path);
        (Some(guard), overlapped)
    } else {
        (None, false)
    };

    if let Err(e) = precheck(&method, &path, &parts.headers) {
        return answer(e, 0);
    }
    let mut body = match read_body(body, &parts.headers).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return answer(too_large(), 0),
        Err(BodyError::Io) => return Err(Dropped),
    };
    let body_len = body.len() as u64;

    // Faults come before authentication.
    let fault = shared.faults.lock().take(Api::S3, &method, &path);
    match fault {
        Some(FaultKind::Drop) => {
            log(0, body_len, None);
            return Err(Dropped);
        }
        Some(FaultKind::RateLimit { retry_after_secs }) => {
            let e = S3Error::new(
                429,
                "TooManyRequests",
                "Reduce your request rate (injected fault).",
            )
            .with_header("retry-after", retry_after_secs.to_string());
            return answer(e, body_len);
        }
        Some(FaultKind::ServerError { status }) => {
            let (code, message) = match status {
                500 => (
                    "InternalError",
                    "We encountered an internal error. Please try again.",
                ),
                501 => ("NotImplemented", "Not implemented (injected fault)."),
                // R2 `r2/api/error-codes.mdx`: 10043 ServiceUnavailable, HTTP 503.
                503 => ("ServiceUnavailable", "Please reduce your request rate."),
                _ => (
                    "ServiceUnavailable",
                    "Service unavailable (injected fault).",
                ),
            };
            return answer(S3Error::new(status, code, message), body_len);
        }
        // A REST-shaped fault aimed at S3 answers with the same status, in S3's XML.
        Some(FaultKind::ApiError {
            status, message, ..
        }) => {
            return answer(S3Error::new(status, "InjectedError", &message), body_len);
        }
        Some(FaultKind::Latency(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    if !shared.options.latency.is_zero() {
        tokio::time::sleep(shared.options.latency).await;
    }

    // Hash outside the lock: a part may be large. Only when a hash is claimed, in the header or
    // (presigned) in the `X-Amz-Content-Sha256` query parameter.
    let claims_hash = parts
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .into_iter()
        .chain(
            query
                .iter()
                .filter(|(k, _)| k == "X-Amz-Content-Sha256")
                .map(|(_, v)| v.as_str()),
        )
        .any(sigv4::is_sha256_hex);
    let body_sha256 = claims_hash.then(|| crate::wire::sha256_hex(&body));
    let body_md5 = (method == "PUT" || method == "POST").then(|| {
        use md5::Digest;
        md5::Md5::digest(&body).into()
    });
    let ctx = S3Ctx {
        method: &method,
        path: &path,
        query,
        headers: &parts.headers,
        client_ip: peer.ip(),
        catalog: &shared.catalog,
        now: SystemTime::now(),
        body_sha256,
        body_md5,
        write_limit: shared.options.s3_write_limit_per_key,
        presigned_post: shared.options.s3_presigned_post,
        presigned_payload_lenient: shared.options.s3_presigned_payload_lenient,
        unsigned_content_sha256_lenient: shared.options.s3_unsigned_content_sha256_lenient,
        conflict_409: shared.options.s3_conflict_409,
        overlapped,
        complete_conditions: shared.options.s3_complete_honours_conditions,
        refuses_prefixed_tokens: shared.options.s3_refuses_prefixed_tokens,
        trusts_claimed_sha256: shared.options.s3_fault_trusts_claimed_sha256,
        ignores_conditions: shared.options.s3_fault_ignores_conditions,
    };
    let mut op = None;
    let outcome = {
        let mut state = shared.state.lock();
        ops::run(&ctx, &mut body, &mut state, &mut op)
    };
    if let Ok((_, true)) = &outcome {
        shared.save_soon();
    }
    match outcome {
        Ok((mut reply, _)) => {
            reply
                .headers
                .push(("x-amz-request-id".into(), request_id.clone()));
            log(reply.status, body_len, op);
            Ok(finish(reply, &ray, None))
        }
        Err(e) => {
            let reply = e.reply(&path, &request_id, head);
            log(reply.status, body_len, op);
            Ok(finish(reply, &ray, None))
        }
    }
}
