//! The one HTTP transport under both of cfsetup's APIs: the Cloudflare REST API
//! ([`crate::cloudflare::Client`]) and R2's S3 API ([`crate::storage::s3`]).
//!
//! It owns the connection pool, the retry loop ([`Transport::send_retry`]: backoff with jitter,
//! `Retry-After` on 429 and on 5xx, one rule for which requests may be repeated), the verified
//! file stream ([`verified_file_stream`]) and the request log of `-v`. Each API puts its own
//! envelope, signing and errors on top: the REST client adds auth headers, pacing and the v4
//! envelope; the S3 store adds SigV4 and the S3 XML errors. The shape follows object_store's
//! `client/retry.rs` (`RetryExt::send_retry`), apache/arrow-rs-object-store.
//!
//! Retry rules (one set for both APIs; docs/cloudflare-api.md §1 "Rate limit" and §7 "Limits"):
//! - 429: always safe to repeat (the server did nothing and said when to come back): waits
//!   `Retry-After` (or backoff), up to [`RetryPolicy::max_rate_limit_retries`] times; a wait
//!   longer than [`RetryPolicy::max_retry_after`] ends the call with [`Failure::WaitTooLong`].
//! - 5xx other than 501: repeated when the request is idempotent, after `Retry-After` when the
//!   server sent one no longer than `max_retry_after`, else backoff. 501 means "never".
//! - No answer: repeated when the request is idempotent or the connection was never made
//!   (`is_connect`: DNS, refused, TLS), unless the streamed file changed on disk (sending it
//!   again cannot help) or the caller asked for no retries ([`Call::fail_fast`]).
//!
//! This module must not import the API modules, commands, reports or output.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use rand::Rng;
use reqwest::header::HeaderMap;
use reqwest::Method;

/// Retries for 429, 5xx and connection failures: exponential backoff with jitter, honouring
/// `Retry-After`.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after a 5xx or a lost connection.
    pub max_retries: u32,
    /// Retries after a 429, each after the wait the API asked for.
    pub max_rate_limit_retries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// The longest `Retry-After` we are willing to sleep; a longer one fails the request.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            max_rate_limit_retries: 12,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

/// An answer before any API decodes it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Why [`Transport::send_retry`] gave up without an answer to return.
#[derive(Debug)]
pub enum Failure {
    /// No answer, after the retries allowed (`source` says whether the connection was never
    /// made or the request timed out).
    NoAnswer {
        detail: String,
        source: reqwest::Error,
    },
    /// A 429 whose `Retry-After` is longer than the policy allows: the answer, and the wait the
    /// server asked for.
    WaitTooLong { answer: Answer, wait: Duration },
    /// The streamed file no longer hashes to the name it was uploaded under; nothing was stored.
    ChangedOnDisk,
    /// The request could not be built (a file that cannot be opened, a header that is not one).
    Build(String),
}

/// One logical call, for the retry rules and the log.
pub struct Call<'a> {
    /// `""` for REST, `"S3 "` for the S3 API: the log line's prefix.
    pub api: &'static str,
    pub method: &'a Method,
    /// What the log and the notes name: a REST path, or an S3 key. Never a query (a presigned
    /// URL's query is a credential) and never a header.
    pub what: &'a str,
    /// Whether the request may be repeated after a 5xx or a lost answer.
    pub idempotent: bool,
    /// The hash the streamed body must have, if it is a file.
    pub check: Option<&'a HashCheck>,
    /// No retries after a failure without an answer: the first S3 call in `auto` falls back to
    /// REST at once when R2's S3 host cannot be reached.
    pub fail_fast: bool,
}

/// The connection pool and the retry policy. Notes (a wait of 2 s or more) and the request log
/// (each attempt's method, path and status; never headers, bodies or queries) go through the
/// `log` facade: `info` and `debug`, which `-q` and `-v` turn off and on ([`crate::output`]).
#[derive(Debug, Clone)]
pub struct Transport {
    http: reqwest::Client,
    retry: RetryPolicy,
}

impl Transport {
    /// `connect_timeout` bounds DNS + TCP + TLS of a new connection.
    pub fn new(retry: RetryPolicy, connect_timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("cfsetup/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Transport { http, retry })
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The `-v` line of one attempt: `<api><method> <what> -> <status> (<ms> ms)`.
    pub fn log(&self, api: &str, method: &Method, what: &str, status: Option<u16>, t: Instant) {
        if log::log_enabled!(log::Level::Debug) {
            let status = status.map_or_else(|| "no answer".to_string(), |s| s.to_string());
            log::debug!(
                "{api}{method} {what} -> {status} ({} ms)",
                t.elapsed().as_millis()
            );
        }
    }

    /// Sends `call` until it has an answer that is not retried, by the rules in the module doc.
    ///
    /// `attempt(n)` makes attempt `n` (0 first): it builds the request afresh (a body stream, a
    /// signature and pacing are per attempt), sends it, and reads the answer. It returns
    /// `Err(Ok(e))` when no answer came and `Err(Err(text))` when the request could not be built.
    pub async fn send_retry<F, Fut>(
        &self,
        call: &Call<'_>,
        mut attempt: F,
    ) -> Result<Answer, Failure>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<Answer, Result<reqwest::Error, String>>>,
    {
        let policy = &self.retry;
        let (mut failures, mut limited, mut n) = (0u32, 0u32, 0u32);
        loop {
            let started = Instant::now();
            let answer = attempt(n).await;
            n += 1;
            self.log(
                call.api,
                call.method,
                call.what,
                answer.as_ref().ok().map(|a| a.status),
                started,
            );
            let wait = match answer {
                Ok(a) if a.status == 429 && limited < policy.max_rate_limit_retries => {
                    limited += 1;
                    match retry_after(&a.headers) {
                        Some(d) if d > policy.max_retry_after => {
                            return Err(Failure::WaitTooLong { answer: a, wait: d })
                        }
                        Some(d) => d,
                        None => backoff(policy, limited - 1),
                    }
                }
                // 501 NotImplemented is what R2 answers to what it will never take
                // (aws-chunked bodies, trailers): not worth repeating.
                Ok(a)
                    if a.status >= 500
                        && a.status != 501
                        && call.idempotent
                        && failures < policy.max_retries =>
                {
                    failures += 1;
                    retry_after(&a.headers)
                        .filter(|d| *d <= policy.max_retry_after)
                        .unwrap_or_else(|| backoff(policy, failures - 1))
                }
                Ok(a) => return Ok(a),
                Err(Err(detail)) => return Err(Failure::Build(detail)),
                Err(Ok(_)) if call.check.is_some_and(|c| c.mismatched()) => {
                    return Err(Failure::ChangedOnDisk)
                }
                Err(Ok(e))
                    if !call.fail_fast
                        && (call.idempotent || e.is_connect())
                        && failures < policy.max_retries =>
                {
                    failures += 1;
                    backoff(policy, failures - 1)
                }
                Err(Ok(e)) => {
                    return Err(Failure::NoAnswer {
                        detail: describe(&e),
                        source: e.without_url(),
                    })
                }
            };
            if wait >= Duration::from_secs(2) {
                log::info!(
                    "{}{} {} will be retried in {}s",
                    call.api,
                    call.method,
                    call.what,
                    wait.as_secs()
                );
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// Sends a built request and reads the whole answer: the usual body of an `attempt`.
pub async fn fetch(b: reqwest::RequestBuilder) -> Result<Answer, Result<reqwest::Error, String>> {
    let resp = b.send().await.map_err(Ok)?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map_err(Ok)?;
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// A few words on a failure without an answer, for error messages.
pub fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        // The source chain says which: DNS, refused, TLS.
        let mut cause = String::new();
        let mut s: Option<&dyn std::error::Error> = std::error::Error::source(e);
        while let Some(inner) = s {
            cause = inner.to_string();
            s = inner.source();
        }
        if cause.is_empty() {
            "connection failed".to_string()
        } else {
            format!("connection failed: {cause}")
        }
    } else {
        "the connection was closed before an answer came".to_string()
    }
}

/// Exponential backoff with jitter: a random delay in `[d/2, d]`, `d = base * 2^attempt`, capped.
pub fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = policy
        .base_delay
        .saturating_mul(2u32.saturating_pow(attempt.min(16)));
    let capped = exp.min(policy.max_delay);
    let jitter = rand::thread_rng().gen_range(0.5..=1.0);
    capped.mul_f64(jitter)
}

/// `retry-after-ms`, then `Retry-After` in seconds or as an HTTP date (as the TS SDK and wrangler
/// `parseRetryAfterValue` read them; docs/cloudflare-api.md §1 "Rate limit").
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(Duration::from_millis(ms.max(0.0) as u64));
    }
    let v = get("retry-after")?;
    if let Ok(secs) = v.parse::<f64>() {
        return Some(Duration::from_millis((secs.max(0.0) * 1000.0) as u64));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// The SHA-256 a streamed file must have, and whether a stream found it did not.
#[derive(Debug)]
pub struct HashCheck {
    expected: String,
    mismatched: AtomicBool,
}

impl HashCheck {
    /// `expected` is lowercase hex.
    pub fn new(expected: impl Into<String>) -> Arc<Self> {
        Arc::new(HashCheck {
            expected: expected.into().to_ascii_lowercase(),
            mismatched: AtomicBool::new(false),
        })
    }

    pub fn expected(&self) -> &str {
        &self.expected
    }

    /// Whether a stream read bytes that did not hash to the expected value.
    pub fn mismatched(&self) -> bool {
        self.mismatched.load(Ordering::SeqCst)
    }

    fn set_mismatched(&self) {
        self.mismatched.store(true, Ordering::SeqCst);
    }
}

/// Streams `len` bytes of `file`, hashing them on the way. The chunk that completes the length
/// is yielded only after the hash has been compared, so when the bytes on disk are not the ones
/// that were hashed (or the file grew or shrank) the stream fails *before its end*: the request
/// is cut short, and with its Content-Length unmet no server stores it.
pub fn verified_file_stream(
    file: tokio::fs::File,
    len: u64,
    check: Arc<HashCheck>,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    use futures::StreamExt;
    use sha2::Digest;
    let reader = tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024);
    let state = (reader, sha2::Sha256::new(), 0u64, false);
    futures::stream::unfold(state, move |(mut reader, mut hasher, mut seen, done)| {
        let check = Arc::clone(&check);
        async move {
            if done {
                return None;
            }
            let fail = |why: &str| {
                check.set_mismatched();
                std::io::Error::other(format!("the file changed on disk: {why}"))
            };
            match reader.next().await {
                Some(Ok(chunk)) => {
                    seen += chunk.len() as u64;
                    if seen > len {
                        let e = fail("it is longer than when it was hashed");
                        return Some((Err(e), (reader, hasher, seen, true)));
                    }
                    hasher.update(&chunk);
                    if seen == len {
                        let got = hex::encode(std::mem::take(&mut hasher).finalize());
                        if got != check.expected {
                            let e = fail("its bytes no longer hash to its name");
                            return Some((Err(e), (reader, hasher, seen, true)));
                        }
                    }
                    Some((Ok(chunk), (reader, hasher, seen, false)))
                }
                Some(Err(e)) => Some((Err(e), (reader, hasher, seen, true))),
                None if seen < len => {
                    let e = fail("it is shorter than when it was hashed");
                    Some((Err(e), (reader, hasher, seen, true)))
                }
                None => {
                    if len == 0 {
                        let got = hex::encode(hasher.finalize_reset());
                        if got != check.expected {
                            let e = fail("its bytes no longer hash to its name");
                            return Some((Err(e), (reader, hasher, seen, true)));
                        }
                    }
                    None
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for attempt in 0..10 {
            let d = backoff(&p, attempt);
            let full = p.base_delay.saturating_mul(1 << attempt).min(p.max_delay);
            assert!(d <= full && d >= full / 2, "{attempt}: {d:?}");
        }
    }

    fn answer(status: u16, retry_after: Option<&str>) -> Answer {
        let mut headers = HeaderMap::new();
        if let Some(v) = retry_after {
            headers.insert("retry-after", v.parse().unwrap());
        }
        Answer {
            status,
            headers,
            body: Bytes::new(),
        }
    }

    fn quick() -> Transport {
        let retry = RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            max_retry_after: Duration::from_secs(5),
            ..RetryPolicy::default()
        };
        Transport::new(retry, Duration::from_secs(1)).unwrap()
    }

    fn call<'a>(method: &'a Method, idempotent: bool) -> Call<'a> {
        Call {
            api: "",
            method,
            what: "/x",
            idempotent,
            check: None,
            fail_fast: false,
        }
    }

    /// Runs `send_retry` over a scripted list of answers; returns the outcome and the attempts.
    async fn scripted(c: &Call<'_>, answers: Vec<Answer>) -> (Result<Answer, Failure>, usize) {
        let t = quick();
        let script = std::sync::Mutex::new(answers.into_iter());
        let count = std::sync::atomic::AtomicUsize::new(0);
        let out = t
            .send_retry(c, |_| {
                count.fetch_add(1, Ordering::SeqCst);
                let next = script
                    .lock()
                    .unwrap()
                    .next()
                    .expect("an answer is scripted");
                async move { Ok(next) }
            })
            .await;
        (out, count.load(Ordering::SeqCst))
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_on_429_and_on_5xx_alike() {
        let get = Method::GET;
        let (out, n) = scripted(
            &call(&get, true),
            vec![
                answer(429, Some("1")),
                answer(503, Some("1")),
                answer(200, None),
            ],
        )
        .await;
        assert_eq!(out.unwrap().status, 200);
        assert_eq!(n, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_post_is_not_repeated_after_a_5xx_but_is_after_a_429() {
        let post = Method::POST;
        let (out, n) = scripted(&call(&post, false), vec![answer(500, None)]).await;
        assert_eq!(out.unwrap().status, 500);
        assert_eq!(n, 1);
        let (out, n) = scripted(
            &call(&post, false),
            vec![answer(429, Some("1")), answer(201, None)],
        )
        .await;
        assert_eq!(out.unwrap().status, 201);
        assert_eq!(n, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_longer_than_the_policy_is_a_typed_failure() {
        let get = Method::GET;
        let (out, n) = scripted(&call(&get, true), vec![answer(429, Some("400"))]).await;
        match out {
            Err(Failure::WaitTooLong { wait, answer }) => {
                assert_eq!(wait, Duration::from_secs(400));
                assert_eq!(answer.status, 429);
            }
            other => panic!("expected WaitTooLong, got {other:?}"),
        }
        assert_eq!(n, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn not_implemented_is_never_repeated() {
        let put = Method::PUT;
        let (out, n) = scripted(&call(&put, true), vec![answer(501, None)]).await;
        assert_eq!(out.unwrap().status, 501);
        assert_eq!(n, 1);
    }
}
