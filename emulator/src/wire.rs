//! The wire format shared by every endpoint: the v4 envelope, API errors, replies and time stamps.
//!
//! Handlers build a [`Reply`] (status, headers, body) and never touch hyper types; the server turns
//! it into an HTTP response and adds the gateway headers (`cf-ray`, rate-limit headers). See
//! docs/cloudflare-api.md §1 "Response envelope".

use bytes::Bytes;
use serde_json::{json, Value};
use std::time::SystemTime;

/// A finished answer, before the gateway headers are added.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Reply {
    /// A JSON body with the given status.
    pub fn json(status: u16, body: &Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from(body.to_string()),
        }
    }

    /// `{"success":true,"errors":[],"messages":[],"result":…}` with status 200.
    pub fn ok(result: Value) -> Reply {
        Reply::ok_status(200, result)
    }

    /// A success envelope with another status (201 for custom hostname create, 202 for PATCH).
    pub fn ok_status(status: u16, result: Value) -> Reply {
        Reply::json(status, &envelope(result, None))
    }

    /// A success envelope carrying `result_info` (lists).
    pub fn list(result: Value, result_info: Value) -> Reply {
        Reply::json(200, &envelope(result, Some(result_info)))
    }

    /// Raw bytes (R2 object and Worker content downloads).
    pub fn raw(status: u16, headers: Vec<(String, String)>, body: Bytes) -> Reply {
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Reply {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// The success envelope (docs/cloudflare-api.md §1).
pub fn envelope(result: Value, result_info: Option<Value>) -> Value {
    let mut v = json!({"success": true, "errors": [], "messages": [], "result": result});
    if let Some(info) = result_info {
        v["result_info"] = info;
    }
    v
}

/// A Cloudflare API error: HTTP status, code, message and an optional `error_chain`.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: u16,
    pub code: i64,
    pub message: String,
    pub chain: Vec<(i64, String)>,
}

impl ApiError {
    pub fn new(status: u16, code: i64, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            chain: Vec::new(),
        }
    }

    pub fn chained(mut self, code: i64, message: impl Into<String>) -> ApiError {
        self.chain.push((code, message.into()));
        self
    }

    /// 403 / 10000 "Authentication error": a valid credential lacking the permission
    /// (docs/cloudflare-api.md §1 table).
    pub fn forbidden() -> ApiError {
        ApiError::new(403, 10000, "Authentication error")
    }

    /// 403 / 9109: not a member of that account or zone (docs/cloudflare-api.md §1, §6).
    pub fn unauthorized_resource() -> ApiError {
        ApiError::new(403, 9109, "Unauthorized to access requested resource")
    }

    /// 404 / 7000 "No route for that URI": no endpoint has this method and path
    /// (docs/cloudflare-api.md §1 table; HTTP 404 in the fake built from the docs, 400 in one capture).
    /// The message is Cloudflare's, word for word; the request log names the method and path.
    pub fn no_route() -> ApiError {
        ApiError::new(404, 7000, "No route for that URI")
    }

    /// 400 / 7003 for a route whose object identifier is malformed (docs/cloudflare-api.md §1 table:
    /// "Could not route to …, perhaps your object identifier is invalid?").
    pub fn bad_identifier(path: &str) -> ApiError {
        ApiError::new(
            400,
            7003,
            format!("Could not route to {path}, perhaps your object identifier is invalid?"),
        )
    }

    pub fn to_json(&self) -> Value {
        let mut err = json!({"code": self.code, "message": self.message});
        if !self.chain.is_empty() {
            err["error_chain"] = Value::Array(
                self.chain
                    .iter()
                    .map(|(c, m)| json!({"code": c, "message": m}))
                    .collect(),
            );
        }
        json!({"success": false, "errors": [err], "messages": [], "result": null})
    }

    pub fn reply(&self) -> Reply {
        Reply::json(self.status, &self.to_json())
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Reply {
        e.reply()
    }
}

/// What every handler returns.
pub type Outcome = Result<Reply, ApiError>;

/// RFC 3339 UTC time stamp with second precision, e.g. `2018-07-01T05:20:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// The upload time of a new object version, `2026-12-06T04:05:06.789Z`: R2 keeps upload times
/// in milliseconds (workerd `src/workerd/api/r2-bucket.c++`,
/// `getUploadedMillisecondsSinceEpoch`; docs/cloudflare-api.md §7 "Times"), so listings show the
/// fraction while `Last-Modified` (an HTTP date) cannot. The real clock is read in milliseconds,
/// and each call returns a later millisecond than the one before (process-wide), so two
/// uploads never share a time even within one millisecond: a client that compares a listing's
/// time with a HEAD's, or two uploads' times, sees the difference R2 would show. The state file
/// keeps this string; a time stored in whole seconds by an older emulator still parses.
pub fn upload_time() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_MS: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut prev = LAST_MS.load(Ordering::Relaxed);
    let ms = loop {
        let next = now.max(prev + 1);
        match LAST_MS.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => break next,
            Err(seen) => prev = seen,
        }
    };
    let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Parses an RFC 3339 time stamp as the token API accepts it (`Z` suffix, optional fraction).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(s).ok()
}

/// `n` random lowercase hex characters.
pub fn random_hex(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from_digit(rng.gen_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// True for the 32-lowercase-hex identifiers Cloudflare uses for accounts, zones, tokens, routes.
pub fn is_hex32(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Parses a request body as JSON whatever its Content-Type says (wrangler sends
/// `text/plain;charset=UTF-8`, docs/peers.md §3). An empty body is `None`.
pub fn parse_json(body: &[u8]) -> Result<Option<Value>, serde_json::Error> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some)
}

/// Like [`paginate`], for `total` items of which only the page's are built: `page(range)` returns
/// the items at those positions. A list of thousands then costs one page of work per request.
pub fn paginate_lazy(
    total: usize,
    query: &Query,
    default_per_page: usize,
    max: usize,
    page_items: impl FnOnce(std::ops::Range<usize>) -> Vec<Value>,
) -> Reply {
    let page = query
        .get("page")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let per_page = query
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(default_per_page)
        .min(max);
    let total_pages = total.div_ceil(per_page);
    let start = (page - 1).saturating_mul(per_page).min(total);
    let end = start.saturating_add(per_page).min(total);
    let slice = page_items(start..end);
    let info = json!({
        "page": page,
        "per_page": per_page,
        "count": slice.len(),
        "total_count": total,
        "total_pages": total_pages,
    });
    Reply::list(Value::Array(slice), info)
}

/// Page-based paging (`page`, `per_page`) with `result_info {page, per_page, count, total_count,
/// total_pages}` (docs/cloudflare-api.md §1). An out-of-range page yields an empty array, so SDK
/// auto-iteration that stops on an empty page terminates (docs/peers.md §5).
pub fn paginate(items: Vec<Value>, query: &Query, default_per_page: usize, max: usize) -> Reply {
    let total = items.len();
    paginate_lazy(total, query, default_per_page, max, |range| {
        items
            .into_iter()
            .skip(range.start)
            .take(range.len())
            .collect()
    })
}

/// Decoded query parameters, in order.
#[derive(Debug, Clone, Default)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let Some(raw) = raw else {
            return Query::default();
        };
        let pairs = raw
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (form_decode(k), form_decode(v))
            })
            .collect();
        Query(pairs)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn form_decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// Lower-case hex MD5 (the ETag of a single-part object, as S3 and R2 compute it).
pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(data))
}

/// Returned by the service to make hyper close the connection without a response.
#[derive(Debug)]
pub struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for Dropped {}

/// Rate-limit header values for one response.
pub(crate) struct RateHeaders {
    pub(crate) remaining: u32,
    pub(crate) reset_secs: u64,
    pub(crate) quota: u32,
    pub(crate) window_secs: u64,
}

/// The hyper response for a [`Reply`], with its `cf-ray` and, for REST, the rate-limit headers.
pub(crate) fn finish(
    reply: Reply,
    ray: &str,
    rate: Option<&RateHeaders>,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let mut resp = hyper::Response::new(http_body_util::Full::new(reply.body));
    *resp.status_mut() = hyper::StatusCode::from_u16(reply.status)
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = resp.headers_mut();
    let mut put = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(value),
        ) {
            headers.append(n, v);
        }
    };
    for (n, v) in &reply.headers {
        put(n, v);
    }
    put("cf-ray", ray);
    if let Some(r) = rate {
        put(
            "ratelimit",
            &format!("\"default\";r={};t={}", r.remaining, r.reset_secs),
        );
        put(
            "ratelimit-policy",
            &format!("\"burst\";q={};w={}", r.quota, r.window_secs),
        );
    }
    resp
}
