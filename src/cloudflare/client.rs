//! Transport: the one place that speaks HTTP to the Cloudflare API.
//!
//! It owns auth headers, the v4 envelope, errors, retries, pacing, bounded concurrency and
//! pagination. The per-area files (`tokens.rs`, `r2.rs`, …) only build [`Req`] values and name
//! result types. The base URL is the only seam for tests: the client never knows whether it talks
//! to Cloudflare or to the emulator.
//!
//! Facts used here (docs/cloudflare-api.md §1):
//! - envelope `{success, errors[{code,message,error_chain?}], messages, result, result_info}`;
//!   only `errors` carries failures;
//! - page paging `result_info {page, per_page, count, total_count}`; cursor paging
//!   `result_info.cursor`;
//! - 204/205 with no body is a success (wrangler `fetchInternalBase`);
//! - a non-JSON body is reported with its `cf-ray`; `cf-mitigated: challenge` marks a WAF challenge;
//! - the limit is 1,200 requests per 5 minutes per user; `Retry-After` (seconds or HTTP date) comes
//!   only with 429; `Ratelimit: "default";r=<remaining>;t=<secs>` may come on any REST answer.
//!
//! It owns the REST envelope over the one transport (`crate::transport`) and the secrets' headers;
//! it must not import commands, storage, site or output.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Semaphore;
use url::Url;

use super::error::{ApiMessage, Error};
use crate::secret::Secret;
use crate::transport::{fetch, Call, Failure, Transport};
pub use crate::transport::{verified_file_stream, HashCheck, RetryPolicy};

/// How the client proves who it is (docs/cloudflare-api.md §1 "Auth headers"). Exactly one scheme is
/// sent, never both (as wrangler `addAuthorizationHeader`).
#[derive(Debug, Clone)]
pub enum Auth {
    /// `Authorization: Bearer <token>`
    Token(Secret),
    /// `X-Auth-Email` + `X-Auth-Key`
    GlobalKey { email: String, key: Secret },
}

impl Auth {
    pub fn describe(&self) -> &'static str {
        match self {
            Auth::Token(_) => "API token",
            Auth::GlobalKey { .. } => "Global API Key",
        }
    }
}

/// The sliding window that keeps a run under the API's global limit.
///
/// Cloudflare allows 1,200 requests per 5 minutes per user, and going over blocks *every* call for
/// the next 5 minutes (docs/cloudflare-api.md §1 "Rate limit"). The pacer remembers when each of the
/// last `window_limit` requests started and lets a new one start only when fewer than
/// `window_limit` started in the `window` before it. So no 300 s window ever holds more than
/// 1,200, yet a long run sustains 1,200 / 300 s = 4 requests/s (a token bucket with a 1,050 burst
/// refills at only 0.5/s; issue #9). When the API reports fewer remaining requests
/// (`Ratelimit: "default";r=N;t=S`), at most N more start until S seconds have passed, because
/// the budget is shared with the dashboard and other tools.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    pub window_limit: u32,
    pub window: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            window_limit: 1200,
            window: Duration::from_secs(300),
        }
    }
}

impl Pacing {
    /// The least time the pacer alone makes `requests` REST requests take, starting from a fresh
    /// window: the first `window_limit` start at once, each next `window_limit` one window (and
    /// a 2 s margin for arrival) later. Latency and concurrency come on top. For `--dry-run`.
    pub fn estimate(&self, requests: u64) -> Duration {
        let limit = u64::from(self.window_limit.max(1));
        if requests <= limit {
            return Duration::ZERO;
        }
        let windows = (requests - 1) / limit;
        (self.window + ARRIVAL_MARGIN).saturating_mul(windows.min(u64::from(u32::MAX)) as u32)
    }
}

/// How long `requests` REST requests take at least under the default pacing (1,200 per 300 s),
/// from a fresh window. See [`Pacing::estimate`].
pub fn estimate_rest_duration(requests: u64) -> Duration {
    Pacing::default().estimate(requests)
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Requests in flight at once, across every task that shares this client.
    pub max_in_flight: usize,
    pub retry: RetryPolicy,
    pub pacing: Pacing,
    /// Time allowed for a JSON call; uploads get more in proportion to their size.
    pub timeout: Duration,
    /// Time allowed to open a connection (DNS, TCP, TLS).
    pub connect_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            max_in_flight: 16,
            retry: RetryPolicy::default(),
            pacing: Pacing::default(),
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Counters for the report and the benchmarks. Every attempt counts, retries included.
#[derive(Debug, Default)]
struct Stats {
    requests: AtomicU64,
    retries: AtomicU64,
    bytes_sent: AtomicU64,
    s3_requests: AtomicU64,
    s3_retries: AtomicU64,
}

/// `requests` and `retries` count the REST API (the paced one); `s3_requests` and `s3_retries`
/// count R2's S3 API, which shares the connection pool but not the REST limit. `bytes_sent` is
/// both.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub requests: u64,
    pub retries: u64,
    pub bytes_sent: u64,
    pub s3_requests: u64,
    pub s3_retries: u64,
}

/// A request body. Bodies are rebuilt on every attempt, so a retry resends the same bytes and a
/// file is streamed from disk again rather than held in memory.
pub(crate) enum Body {
    Empty,
    Json(Bytes),
    Raw {
        bytes: Bytes,
        content_type: Option<String>,
    },
    File {
        path: PathBuf,
        len: u64,
        content_type: Option<String>,
        /// When set, the bytes streamed must hash to `check.expected`, or the body stream fails
        /// before its last byte (so the server stores nothing) and the request is not retried.
        check: Option<Arc<HashCheck>>,
    },
    Multipart(MultipartFactory),
    /// A body that could not be made (a serialisation failure): the request is never sent and
    /// fails with [`Error::Request`].
    Unbuildable(String),
}

pub(crate) type MultipartFactory =
    Arc<dyn Fn() -> Result<reqwest::multipart::Form, String> + Send + Sync>;

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Empty | Body::Multipart(_) | Body::Unbuildable(_) => 0,
            Body::Json(b) | Body::Raw { bytes: b, .. } => b.len() as u64,
            Body::File { len, .. } => *len,
        }
    }
}

/// One API call: method, path below the base URL, query, body, extra headers.
pub(crate) struct Req {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

impl Req {
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Req {
            method,
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Body::Empty,
        }
    }
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::GET, path)
    }
    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::POST, path)
    }
    pub fn put(path: impl Into<String>) -> Self {
        Self::new(Method::PUT, path)
    }
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::DELETE, path)
    }
    pub fn query(mut self, k: &str, v: impl ToString) -> Self {
        self.query.push((k.to_string(), v.to_string()));
        self
    }
    pub fn query_opt(self, k: &str, v: Option<impl ToString>) -> Self {
        match v {
            Some(v) => self.query(k, v),
            None => self,
        }
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    /// A JSON body. Serialising our own types cannot fail; if it ever did, the error surfaces as a
    /// request error rather than a panic.
    pub fn json(mut self, value: &impl serde::Serialize) -> Self {
        self.body = match serde_json::to_vec(value) {
            Ok(v) => Body::Json(Bytes::from(v)),
            Err(e) => Body::Unbuildable(format!("the JSON body cannot be written: {e}")),
        };
        self
    }
    pub fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }
    /// A create (POST) is retried only when the API certainly did not act on it: a 429, or a
    /// failure to connect. Anything else is left to the command, which looks before it creates.
    fn idempotent(&self) -> bool {
        self.method != Method::POST
    }
}

/// An answer before decoding.
pub(crate) type RawResponse = crate::transport::Answer;

/// `result_info` of either paging style.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResultInfo {
    /// The page size the server used, which may be less than the one asked for.
    pub per_page: Option<u64>,
    pub total_pages: Option<u64>,
    pub total_count: Option<u64>,
    pub cursor: Option<String>,
    pub is_truncated: Option<bool>,
}

/// The Cloudflare API client. Cheap to clone; clones, and clients made with
/// [`Client::with_auth`], share the connection pool, the pacing bucket, the concurrency limit and
/// the counters: the rate limit is per user, whichever of the user's credentials is used.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    auth: Arc<Auth>,
}

/// What every client of one run shares.
struct Inner {
    transport: Transport,
    base: String,
    options: ClientOptions,
    pacer: Pacer,
    in_flight: Semaphore,
    stats: Stats,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.inner.base)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// Characters to escape in one path segment (a bucket, script or object key segment).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']');

/// Escapes one path segment, e.g. a bucket or script name.
pub(crate) fn seg(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Escapes an R2 object key, keeping `/` as is. wrangler sends keys with raw slashes and real R2
/// accepts them; the SDKs encode `/` too. Either way, other reserved characters must be encoded
/// (docs/cloudflare-api.md §7 "Key in the path").
pub(crate) fn object_key(key: &str) -> String {
    key.split('/').map(seg).collect::<Vec<_>>().join("/")
}

impl Client {
    pub fn new(base_url: &Url, auth: Auth, options: ClientOptions) -> Result<Self, Error> {
        let transport =
            Transport::new(options.retry.clone(), options.connect_timeout).map_err(|detail| {
                Error::Request {
                    method: "-".into(),
                    path: "-".into(),
                    detail,
                }
            })?;
        let base = base_url.as_str().trim_end_matches('/').to_string();
        let pacer = Pacer::new(options.pacing);
        let in_flight = Semaphore::new(options.max_in_flight.max(1));
        Ok(Client {
            inner: Arc::new(Inner {
                transport,
                base,
                options,
                pacer,
                in_flight,
                stats: Stats::default(),
            }),
            auth: Arc::new(auth),
        })
    }

    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// The same connection pool, pacing bucket and counters, with other credentials of the same
    /// user (e.g. a token just created or rolled).
    pub fn with_auth(&self, auth: Auth) -> Self {
        Client {
            inner: Arc::clone(&self.inner),
            auth: Arc::new(auth),
        }
    }

    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.inner.stats;
        StatsSnapshot {
            requests: s.requests.load(Ordering::Relaxed),
            retries: s.retries.load(Ordering::Relaxed),
            bytes_sent: s.bytes_sent.load(Ordering::Relaxed),
            s3_requests: s.s3_requests.load(Ordering::Relaxed),
            s3_retries: s.s3_retries.load(Ordering::Relaxed),
        }
    }

    /// The one transport (connection pool and retry loop), for R2's S3 API (`storage::s3`): S3
    /// requests are signed there and sent here, outside the REST pacing and in-flight limit, but
    /// counted in [`Client::stats`] through [`Client::count_s3`].
    pub fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    /// Counts one S3 attempt of `bytes` sent; `retry` when it repeats an earlier attempt.
    pub fn count_s3(&self, bytes: u64, retry: bool) {
        let s = &self.inner.stats;
        s.s3_requests.fetch_add(1, Ordering::Relaxed);
        s.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
        if retry {
            s.s3_retries.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Sends a call and decodes `result` into `T`.
    pub(crate) async fn call<T: DeserializeOwned>(&self, req: Req) -> Result<T, Error> {
        Ok(self.call_with_info(req).await?.0)
    }

    /// Sends a call and decodes `result` into `T`, and returns `result_info` too.
    pub(crate) async fn call_with_info<T: DeserializeOwned>(
        &self,
        req: Req,
    ) -> Result<(T, Option<ResultInfo>), Error> {
        let method = req.method.to_string();
        let path = req.path.clone();
        let raw = self.execute(&req).await?;
        let envelope = parse_envelope(&method, &path, &raw).map_err(|e| self.qualify(e, &path))?;
        let result = decode::<T>(&method, &path, "result", envelope.result)?;
        let info = match envelope.result_info {
            Some(v) if !v.is_null() => {
                Some(decode::<ResultInfo>(&method, &path, "result_info", v)?)
            }
            _ => None,
        };
        Ok((result, info))
    }

    /// Like [`Client::call`], but a 404 is `Ok(None)`.
    pub(crate) async fn call_optional<T: DeserializeOwned>(
        &self,
        req: Req,
    ) -> Result<Option<T>, Error> {
        match self.call(req).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A call whose answer is not an envelope (R2 object bytes, Worker content). A 404 is `None`,
    /// unless its envelope says the route is unknown ([`Error::is_not_found`]).
    pub(crate) async fn call_raw(&self, req: Req) -> Result<Option<RawResponse>, Error> {
        let method = req.method.to_string();
        let path = req.path.clone();
        let raw = self.execute(&req).await?;
        if raw.status == 404 {
            return match parse_envelope(&method, &path, &raw) {
                Err(e) if !e.is_not_found() => Err(e),
                _ => Ok(None),
            };
        }
        if !(200..300).contains(&raw.status) && raw.status != 304 {
            // Decode the error envelope if there is one.
            parse_envelope(&method, &path, &raw).map_err(|e| self.qualify(e, &path))?;
        }
        Ok(Some(raw))
    }

    /// Says what an error means for the credentials in use: an R2 refusal of the Global API Key
    /// becomes [`Error::R2NeedsToken`].
    fn qualify(&self, e: Error, path: &str) -> Error {
        match self.auth.as_ref() {
            Auth::GlobalKey { .. } => e.for_global_key(path),
            Auth::Token(_) => e,
        }
    }

    /// Every item of a page-paginated list: asks for `page=1,2,…` until the server's own
    /// `result_info` says the items ran out, or a page comes back empty.
    ///
    /// The server may cap `per_page` below what was asked, and says so in `result_info.per_page`,
    /// so a page shorter than the *requested* size proves nothing. In order (docs/cloudflare-api.md §1
    /// "`result_info`, page-based"): `total_pages` when present (`page < total_pages`), else
    /// `total_count` against the items seen so far (wrangler `hasMorePages`, `page*per_page <
    /// total_count`, with the returned `per_page`), else an empty page ends the list, as the SDKs'
    /// auto-pagination does (docs/peers.md §5).
    pub(crate) async fn paged<T: DeserializeOwned>(
        &self,
        make: impl Fn() -> Req,
        per_page: u64,
    ) -> Result<Vec<T>, Error> {
        let mut all = Vec::new();
        for page in 1u64.. {
            let req = make().query("page", page).query("per_page", per_page);
            let (items, info): (Vec<T>, _) = self.call_with_info(req).await?;
            let n = items.len() as u64;
            all.extend(items);
            let info = info.unwrap_or_default();
            let more = n > 0
                && match (info.total_pages, info.total_count) {
                    (Some(pages), _) => page < pages,
                    (None, Some(total)) => {
                        let served = info.per_page.unwrap_or(n).max(1);
                        page.saturating_mul(served) < total && (all.len() as u64) < total
                    }
                    (None, None) => true,
                };
            if !more || page >= 10_000 {
                break;
            }
        }
        Ok(all)
    }

    /// Every page of a cursor-paginated list: `make(cursor)` builds each request; `items` takes
    /// the page's items out of its `result`.
    pub(crate) async fn cursor_paged<R: DeserializeOwned, T>(
        &self,
        make: impl Fn(Option<&str>) -> Req,
        mut items: impl FnMut(R) -> Vec<T>,
    ) -> Result<Vec<T>, Error> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100_000 {
            let (result, info): (R, _) = self.call_with_info(make(cursor.as_deref())).await?;
            all.extend(items(result));
            let next = info.and_then(|i| {
                if i.is_truncated == Some(false) {
                    None
                } else {
                    i.cursor.filter(|c| !c.is_empty())
                }
            });
            if next.is_none() || next == cursor {
                break;
            }
            cursor = next;
        }
        Ok(all)
    }

    /// Sends with pacing, the in-flight limit and the transport's retries. Returns any answer
    /// that is not retried, successful or not; the caller decodes it.
    async fn execute(&self, req: &Req) -> Result<RawResponse, Error> {
        let inner = &self.inner;
        let method = req.method.to_string();
        let check = match &req.body {
            Body::File { check, .. } => check.as_deref(),
            _ => None,
        };
        let call = Call {
            api: "",
            method: &req.method,
            what: &req.path,
            // A create (POST) is retried only when the API certainly did not act on it: a 429,
            // or a failure to connect. The command looks before it creates.
            idempotent: req.idempotent(),
            check,
            fail_fast: false,
        };
        let sent = inner
            .transport
            .send_retry(&call, |n| async move {
                // Every attempt is paced and counted: the API counts retries too.
                inner.pacer.acquire().await;
                let _permit = inner.in_flight.acquire().await;
                let builder = self.build(req).map_err(|e| match e {
                    Error::Request { detail, .. } => Err(detail),
                    other => Err(other.to_string()),
                })?;
                inner.stats.requests.fetch_add(1, Ordering::Relaxed);
                if n > 0 {
                    inner.stats.retries.fetch_add(1, Ordering::Relaxed);
                }
                inner
                    .stats
                    .bytes_sent
                    .fetch_add(req.body.len(), Ordering::Relaxed);
                let answer = fetch(builder).await;
                if let Ok(a) = &answer {
                    inner.pacer.observe(&a.headers);
                }
                answer
            })
            .await;
        sent.map_err(|f| match f {
            Failure::NoAnswer { detail, source, .. } => Error::Transport {
                method: method.clone(),
                path: req.path.clone(),
                detail,
                source,
            },
            Failure::ChangedOnDisk => Error::Request {
                method: method.clone(),
                path: req.path.clone(),
                detail: "the file changed on disk while it was being uploaded (it no longer \
                         hashes to its name); nothing was stored"
                    .into(),
            },
            Failure::WaitTooLong { answer, wait } => Error::RateLimited {
                method: method.clone(),
                path: req.path.clone(),
                wait,
                ray: ray(&answer.headers),
            },
            Failure::Build(detail) => Error::Request {
                method: method.clone(),
                path: req.path.clone(),
                detail,
            },
        })
    }

    fn build(&self, req: &Req) -> Result<reqwest::RequestBuilder, Error> {
        let inner = &self.inner;
        let bad = |detail: String| Error::Request {
            method: req.method.to_string(),
            path: req.path.clone(),
            detail,
        };
        let mut url =
            Url::parse(&format!("{}{}", inner.base, req.path)).map_err(|e| bad(e.to_string()))?;
        if !req.query.is_empty() {
            url.query_pairs_mut().extend_pairs(req.query.iter());
        }
        let mut timeout = inner.options.timeout;
        let mut b = inner.transport.http().request(req.method.clone(), url);
        b = match self.auth.as_ref() {
            Auth::Token(t) => b.header(
                reqwest::header::AUTHORIZATION,
                sensitive(&format!("Bearer {}", t.expose())).map_err(bad)?,
            ),
            Auth::GlobalKey { email, key } => b
                .header("X-Auth-Email", sensitive(email).map_err(bad)?)
                .header("X-Auth-Key", sensitive(key.expose()).map_err(bad)?),
        };
        for (name, value) in &req.headers {
            let name = HeaderName::from_static(name);
            let value = HeaderValue::from_str(value).map_err(|e| bad(e.to_string()))?;
            b = b.header(name, value);
        }
        b = match &req.body {
            Body::Empty => b,
            Body::Json(bytes) => b
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes.clone()),
            Body::Raw {
                bytes,
                content_type,
            } => {
                let b = match content_type {
                    Some(ct) => b.header(reqwest::header::CONTENT_TYPE, ct.as_str()),
                    None => b,
                };
                b.body(bytes.clone())
            }
            Body::File {
                path,
                len,
                content_type,
                check,
            } => {
                // Opened fresh on each attempt and streamed: the file is never held in memory.
                let file = std::fs::File::open(path)
                    .map_err(|e| bad(format!("cannot open {}: {e}", path.display())))?;
                let file = tokio::fs::File::from_std(file);
                timeout += Duration::from_secs(len / (256 * 1024));
                let b = match content_type {
                    Some(ct) => b.header(reqwest::header::CONTENT_TYPE, ct.as_str()),
                    None => b,
                };
                let body = match check {
                    Some(check) => reqwest::Body::wrap_stream(verified_file_stream(
                        file,
                        *len,
                        Arc::clone(check),
                    )),
                    None => reqwest::Body::wrap_stream(
                        tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024),
                    ),
                };
                b.header(reqwest::header::CONTENT_LENGTH, *len).body(body)
            }
            Body::Multipart(make) => b.multipart(make().map_err(bad)?),
            Body::Unbuildable(why) => return Err(bad(why.clone())),
        };
        Ok(b.timeout(timeout))
    }
}

fn sensitive(value: &str) -> Result<HeaderValue, String> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| "a credential contains characters that cannot go in a header".to_string())?;
    v.set_sensitive(true);
    Ok(v)
}

fn ray(headers: &HeaderMap) -> Option<String> {
    headers
        .get("cf-ray")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The parts of the envelope the client reads.
struct Envelope {
    result: Value,
    result_info: Option<Value>,
}

/// Decodes the v4 envelope once. A non-2xx status or `success: false` is an [`Error::Api`].
/// A body without an envelope (custom-hostname DELETE answers a bare `{"id": …}`,
/// docs/cloudflare-api.md §10) is taken as the result itself.
fn parse_envelope(method: &str, path: &str, raw: &RawResponse) -> Result<Envelope, Error> {
    let ok_status = (200..300).contains(&raw.status);
    let json: Value = if raw.body.iter().all(u8::is_ascii_whitespace) {
        if ok_status {
            Value::Null
        } else {
            return Err(Error::Api {
                method: method.into(),
                path: path.into(),
                status: raw.status,
                errors: vec![],
                ray: ray(&raw.headers),
            });
        }
    } else {
        serde_json::from_slice(&raw.body).map_err(|_| Error::NotJson {
            method: method.into(),
            path: path.into(),
            status: raw.status,
            ray: ray(&raw.headers),
            challenge: raw
                .headers
                .get("cf-mitigated")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"challenge")),
        })?
    };
    let obj = json.as_object();
    let success = obj.and_then(|o| o.get("success")).and_then(Value::as_bool);
    if !ok_status || success == Some(false) {
        let errors = obj
            .and_then(|o| o.get("errors"))
            .and_then(|e| serde_json::from_value::<Vec<ApiMessage>>(e.clone()).ok())
            .unwrap_or_default();
        return Err(Error::Api {
            method: method.into(),
            path: path.into(),
            status: raw.status,
            errors,
            ray: ray(&raw.headers),
        });
    }
    let is_envelope = obj.is_some_and(|o| {
        o.contains_key("result") || o.contains_key("success") || o.contains_key("errors")
    });
    if is_envelope {
        let mut o = json.as_object().cloned().unwrap_or_default();
        Ok(Envelope {
            result: o.remove("result").unwrap_or(Value::Null),
            result_info: o.remove("result_info"),
        })
    } else {
        Ok(Envelope {
            result: json,
            result_info: None,
        })
    }
}

/// Decodes a JSON value, naming the JSON path of the first problem (`result.policies[0].id`).
fn decode<T: DeserializeOwned>(method: &str, path: &str, root: &str, v: Value) -> Result<T, Error> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let inner = e.path().to_string();
        let at = if inner == "." {
            root.to_string()
        } else {
            format!("{root}.{inner}")
        };
        Error::Decode {
            method: method.into(),
            path: path.into(),
            at,
            detail: e.into_inner().to_string(),
        }
    })
}

/// The sliding window described on [`Pacing`]. Uses tokio's clock, so tests can pause time.
struct Pacer {
    limit: usize,
    window: Duration,
    state: Mutex<PacerState>,
    noted: std::sync::atomic::AtomicBool,
}

struct PacerState {
    /// Start times of the requests in the current window, oldest first.
    sent: std::collections::VecDeque<tokio::time::Instant>,
    /// What the API said is left (`Ratelimit: r=`), and until when that holds.
    server: Option<(u64, tokio::time::Instant)>,
}

/// Added to the window: the API counts requests as they arrive, up to a round trip after they
/// started here, so a start is remembered a little longer than the window it counts against.
const ARRIVAL_MARGIN: Duration = Duration::from_secs(2);

impl Pacer {
    fn new(p: Pacing) -> Self {
        Pacer {
            limit: p.window_limit.max(1) as usize,
            window: p.window.max(Duration::from_millis(1)) + ARRIVAL_MARGIN,
            state: Mutex::new(PacerState {
                sent: std::collections::VecDeque::new(),
                server: None,
            }),
            noted: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// `Ok` when a request may start now (and counts it), else how long to wait.
    fn try_take(&self, now: tokio::time::Instant) -> Result<(), Duration> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        while s.sent.front().is_some_and(|t| now >= *t + self.window) {
            s.sent.pop_front();
        }
        if let Some((_, until)) = s.server {
            if now >= until {
                s.server = None;
            }
        }
        let window_wait = (s.sent.len() >= self.limit)
            .then(|| *s.sent.front().expect("the window is full") + self.window - now);
        let server_wait = match s.server {
            Some((0, until)) => Some(until - now),
            _ => None,
        };
        match window_wait.max(server_wait) {
            Some(wait) => Err(wait.max(Duration::from_millis(1))),
            None => {
                s.sent.push_back(now);
                if let Some((left, _)) = s.server.as_mut() {
                    *left -= 1;
                }
                Ok(())
            }
        }
    }

    /// Waits until a request may start. Says so once per run, with the expected wait.
    async fn acquire(&self) {
        loop {
            let wait = match self.try_take(tokio::time::Instant::now()) {
                Ok(()) => return,
                Err(wait) => wait,
            };
            if wait > Duration::from_secs(1) && !self.noted.swap(true, Ordering::Relaxed) {
                log::info!(
                    "pacing REST requests to stay under 1,200 per 5 minutes: \
                     the next starts in {}s, then they go as earlier ones leave the window \
                     (4 a second on average; --via s3 is not paced)",
                    wait.as_secs().max(1)
                );
            }
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes in what the API says is left (`Ratelimit: "default";r=<remaining>;t=<secs>`).
    fn observe(&self, headers: &HeaderMap) {
        let Some(v) = headers.get("ratelimit").and_then(|v| v.to_str().ok()) else {
            return;
        };
        let field = |name: &str| {
            v.split(';')
                .find_map(|p| p.trim().strip_prefix(name))
                .and_then(|n| n.trim().parse::<f64>().ok())
        };
        let Some(remaining) = field("r=") else {
            return;
        };
        let reset = field("t=").map_or(self.window, |t| {
            Duration::from_secs_f64(t.clamp(0.0, self.window.as_secs_f64()))
        });
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        // Only a tighter budget than our own window's is worth following.
        let ours = self.limit.saturating_sub(s.sent.len()) as f64;
        if remaining < ours {
            s.server = Some((
                remaining.max(0.0) as u64,
                tokio::time::Instant::now() + reset,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status,
            headers: HeaderMap::new(),
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn envelope_errors_come_only_from_errors() {
        let ok = raw(
            200,
            r#"{"success":true,"errors":[],"messages":[{"code":10000,"message":"This API Token is valid and active","type":null}],"result":{"id":"x","status":"active"}}"#,
        );
        let env = parse_envelope("GET", "/user/tokens/verify", &ok).unwrap();
        assert_eq!(env.result["status"], "active");

        let bad = raw(
            403,
            r#"{"success":false,"errors":[{"code":10000,"message":"Authentication error"}],"messages":[],"result":null}"#,
        );
        let e = parse_envelope("GET", "/accounts/a", &bad).err().unwrap();
        assert!(e.is_permission_denied());

        let false_200 = raw(
            200,
            r#"{"success":false,"errors":[{"code":7,"message":"x"}]}"#,
        );
        assert!(parse_envelope("GET", "/x", &false_200).is_err());
    }

    #[test]
    fn bare_bodies_and_empty_bodies() {
        let env = parse_envelope("DELETE", "/x", &raw(200, r#"{"id":"abc"}"#)).unwrap();
        assert_eq!(env.result["id"], "abc");
        let env = parse_envelope("DELETE", "/x", &raw(204, "")).unwrap();
        assert!(env.result.is_null());
        let e = parse_envelope("GET", "/x", &raw(502, "<html>bad gateway</html>"))
            .err()
            .unwrap();
        assert!(matches!(e, Error::NotJson { status: 502, .. }));
    }

    #[test]
    fn decode_errors_name_the_json_path() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct P {
            id: String,
        }
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct T {
            policies: Vec<P>,
        }
        let v: Value = serde_json::json!({"policies":[{"id":"a"},{"id":5}]});
        let e = decode::<T>("GET", "/user/tokens/x", "result", v).unwrap_err();
        match e {
            Error::Decode { at, .. } => assert_eq!(at, "result.policies[1].id"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_estimate_counts_whole_windows() {
        let p = Pacing::default();
        assert_eq!(p.estimate(0), Duration::ZERO);
        assert_eq!(p.estimate(1200), Duration::ZERO);
        assert_eq!(p.estimate(1201), Duration::from_secs(302));
        assert_eq!(p.estimate(2400), Duration::from_secs(302));
        assert_eq!(
            estimate_rest_duration(20_001),
            Duration::from_secs(16 * 302)
        );
    }

    /// Drives the pacer for 15 simulated minutes with a paused clock: no 300 s window ever holds
    /// more than 1,200 starts, and after the first window it sustains 4 a second.
    #[tokio::test(start_paused = true)]
    async fn the_window_is_never_exceeded_yet_sustains_four_a_second() {
        let pacer = Pacer::new(Pacing::default());
        let start = tokio::time::Instant::now();
        let mut starts = Vec::new();
        while start.elapsed() < Duration::from_secs(900) {
            pacer.acquire().await;
            starts.push(start.elapsed());
            // Each request takes 50 ms; one at a time is enough to hit the limit.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let window = Duration::from_secs(300);
        let mut lo = 0;
        for hi in 0..starts.len() {
            while starts[hi] - starts[lo] >= window {
                lo += 1;
            }
            assert!(
                hi - lo < 1200,
                "{} starts within 300 s at {:?}",
                hi - lo + 1,
                starts[hi]
            );
        }
        // 15 minutes = 3 windows: 3,600 requests, not 1,050 + 0.5/s.
        assert!(starts.len() >= 3590, "{} requests in 900 s", starts.len());
        let late = starts
            .iter()
            .filter(|t| **t >= Duration::from_secs(600))
            .count();
        assert!(
            late as f64 / 300.0 >= 3.9,
            "{late} requests in the last 300 s"
        );
    }

    /// 2,400 requests, 16 at a time, 50 ms each, against a server that counts arrivals in its
    /// own 300 s window and answers `Ratelimit: r=;t=` as Cloudflare does: none is refused, and
    /// the run takes about one window, not two.
    #[tokio::test(start_paused = true)]
    async fn a_long_run_against_the_server_s_own_window_takes_one_window() {
        use std::collections::VecDeque;
        let pacer = Arc::new(Pacer::new(Pacing::default()));
        let server: Arc<Mutex<VecDeque<tokio::time::Instant>>> = Arc::default();
        let refused = Arc::new(AtomicU64::new(0));
        let start = tokio::time::Instant::now();
        let next = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (pacer, server, refused, next) =
                (pacer.clone(), server.clone(), refused.clone(), next.clone());
            tasks.push(tokio::spawn(async move {
                while next.fetch_add(1, Ordering::SeqCst) < 2400 {
                    pacer.acquire().await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let now = tokio::time::Instant::now();
                    let header = {
                        let mut q = server.lock().unwrap();
                        while q
                            .front()
                            .is_some_and(|t| now - *t >= Duration::from_secs(300))
                        {
                            q.pop_front();
                        }
                        if q.len() >= 1200 {
                            refused.fetch_add(1, Ordering::SeqCst);
                        } else {
                            q.push_back(now);
                        }
                        let reset = q.front().map_or(300, |t| 300 - (now - *t).as_secs());
                        format!("\"default\";r={};t={reset}", 1200 - q.len().min(1200))
                    };
                    let mut h = HeaderMap::new();
                    h.insert("ratelimit", HeaderValue::from_str(&header).unwrap());
                    pacer.observe(&h);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let took = start.elapsed();
        assert_eq!(refused.load(Ordering::SeqCst), 0);
        assert!(took < Duration::from_secs(320), "{took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_api_s_remaining_count_tightens_the_window() {
        let pacer = Pacer::new(Pacing::default());
        let mut h = HeaderMap::new();
        h.insert(
            "ratelimit",
            HeaderValue::from_static("\"default\";r=2;t=30"),
        );
        pacer.observe(&h);
        let now = tokio::time::Instant::now();
        assert!(pacer.try_take(now).is_ok());
        assert!(pacer.try_take(now).is_ok());
        let wait = pacer.try_take(now).unwrap_err();
        assert!(wait > Duration::from_secs(29) && wait <= Duration::from_secs(30));
        assert!(pacer.try_take(now + Duration::from_secs(30)).is_ok());
    }

    /// The stream yields every byte of a file that still hashes to its name, and for one that
    /// does not, fails before the last byte (so a server never sees the whole body).
    #[tokio::test]
    async fn a_changed_file_fails_its_stream_before_the_end() {
        use futures::StreamExt;
        use sha2::Digest;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let bytes = vec![7u8; 200 * 1024];
        std::fs::write(&path, &bytes).unwrap();
        let good = HashCheck::new(hex::encode(sha2::Sha256::digest(&bytes)));
        let bad = HashCheck::new(hex::encode(sha2::Sha256::digest(b"other")));
        for (check, whole) in [(good, true), (bad, false)] {
            let file = tokio::fs::File::open(&path).await.unwrap();
            let mut stream = Box::pin(verified_file_stream(
                file,
                bytes.len() as u64,
                check.clone(),
            ));
            let (mut seen, mut failed) = (0usize, false);
            while let Some(item) = stream.next().await {
                match item {
                    Ok(chunk) => seen += chunk.len(),
                    Err(_) => failed = true,
                }
            }
            assert_eq!(failed, !whole);
            assert_eq!(check.mismatched(), !whole);
            if whole {
                assert_eq!(seen, bytes.len());
            } else {
                assert!(
                    seen < bytes.len(),
                    "{seen} of {} bytes went out",
                    bytes.len()
                );
            }
        }
        // Shorter than it was hashed: also refused.
        let check = HashCheck::new(hex::encode(sha2::Sha256::digest(&bytes)));
        let file = tokio::fs::File::open(&path).await.unwrap();
        let stream = verified_file_stream(file, bytes.len() as u64 + 1, check.clone());
        let items: Vec<_> = stream.collect().await;
        assert!(items.last().unwrap().is_err() && check.mismatched());
    }

    #[test]
    fn object_keys_keep_slashes_and_escape_the_rest() {
        assert_eq!(
            object_key("sites/acme/manifest.json"),
            "sites/acme/manifest.json"
        );
        assert_eq!(object_key("a b/c%d?#"), "a%20b/c%25d%3F%23");
        assert_eq!(seg("a/b"), "a%2Fb");
    }
}
