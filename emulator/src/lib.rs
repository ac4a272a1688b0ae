//! A local, stateful stand-in for the parts of the Cloudflare API v4 that cfsetup uses.
//!
//! The emulator follows `docs/cloudflare-api.md` (the project's reference notes on the real API), never
//! cfsetup's client: it has its own wire types and must not depend on the `cfsetup` crate. If the
//! client and the emulator disagree, the reference decides.
//!
//! It authorises like the real gateway: the token's policies and each permission group's scope
//! decide, and a missing permission is a 403 with code 10000, given before any body validation.
//!
//! Public surface (a contract other code is written against):
//! - [`Emulator::start`] runs a server on its own thread and Tokio runtime, bound to loopback, and
//!   stops it when dropped.
//! - [`Options`] holds the knobs. Where R2's S3 documentation leaves a question open the
//!   default is the strict side, and a knob (and a `cfsetup emulator --s3-…` flag) gives the
//!   other: [`Options::s3_presigned_post`] ([`PresignedPost`]),
//!   [`Options::s3_presigned_payload_lenient`], [`Options::s3_unsigned_content_sha256_lenient`],
//!   [`Options::s3_conflict_409`], [`Options::s3_write_limit_per_key`],
//!   [`Options::s3_complete_honours_conditions`] (`docs/emulator-s3.md`).
//! - [`Emulator::seed`] is the seeded user, account and zone.
//! - [`Emulator::inject`] adds a fault; [`Emulator::requests`] is the request log (each S3
//!   request with its operation, [`RecordedRequest::op`]); [`Emulator::count_requests`] and
//!   [`Emulator::count_s3_op`] count in it; [`Emulator::round_trips`] ([`round_trips`]) is the
//!   longest chain of requests each sent after the one before was answered.
//! - [`Emulator::mint_token`] creates a token with arbitrary policies, for tests
//!   ([`Emulator::mint_legacy_token`]: one in the unprefixed 40-character format).
//! - [`Emulator::objects`], [`Emulator::scripts`], [`Emulator::routes`] and
//!   [`Emulator::custom_hostnames`] read the state, for tests and for loading it into miniflare.
//! - The same inspection is served over HTTP under `/__emulator/`, a path the real API never uses.
//! - [`Emulator::dns_addr`] is a small DNS server (UDP, 127.0.0.1) standing in for tenants' public
//!   DNS; [`Emulator::dns_set`] loads its records (module `dns`).
//! - [`Emulator::set_custom_hostname_quota`] sets the zone's custom hostname quota, and
//!   [`Emulator::force_custom_hostname`] moves a custom hostname to any state (also over HTTP,
//!   `/__emulator/quota` and `/__emulator/custom_hostnames/{hostname}`);
//!   [`Emulator::insert_custom_hostnames`] adds many at once, for benchmarks.
//! - [`Emulator::s3_endpoint`] is R2's S3-compatible API on the same listener (path-style), over
//!   the same buckets and objects; see the `s3` module. Keys come from the emulator's tokens:
//!   Access Key ID = token id, Secret Access Key = [`s3_secret_access_key`] of the token value
//!   (docs/cloudflare-api.md §7 "S3 credentials from an API token"). [`Emulator::inject_for`] aims a
//!   fault at one API; every request is logged with its [`Api`].
//!
//! Modules: `server` (thread, runtime, request pipeline), `wire` (envelope, errors, paging),
//! `auth` (credentials, token usability, permission evaluation), `seed` (identity and the
//! permission-group catalog), `state` (resources and the state file), `faults` (injected faults,
//! rate limiter), `routes` (one submodule per API area), `inspect` (`/__emulator/`) and `s3`
//! (R2's S3-compatible API: SigV4, S3 XML, objects, listings, multipart).
//!
//! Routing on the one listener: `/client/v4/…` is the REST API, `/__emulator…` the inspection
//! endpoint, and every other path is an S3 request (`GET /`, `/{bucket}`, `/{bucket}/{key…}`).

mod auth;
mod dns;
mod faults;
mod inspect;
mod routes;
mod s3;
mod seed;
mod server;
mod shared;
mod state;
mod wire;

use parking_lot::Mutex;
use server::Server;
use shared::Shared;
use state::{State, TokenOwner};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How to start an emulator.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Latency added to every API request (not to `/__emulator/` requests).
    pub latency: Duration,
    /// Load state from this JSON file at start if it exists, and save it after every mutating
    /// request (atomically, before the request is answered; the snapshot is taken under the state
    /// lock and written outside it, and concurrent saves are coalesced). `None` keeps everything
    /// in memory. The file holds every token's `value_sha256`, which is its S3 Secret Access Key:
    /// emulator-only credentials, but credentials.
    pub state_file: Option<PathBuf>,
    /// Custom hostnames become `active` (and their SSL too) after this many GETs of them.
    /// `None` means they stay `pending` forever. Default `Some(2)` is set by `Options::new()`.
    pub activate_custom_hostnames_after: Option<u32>,
    /// Per-credential sliding window: at most `.0` API requests per `.1`; past it, 429 / 971 with
    /// `Retry-After` (docs/cloudflare-api.md §1 "Rate limit"). `None` disables the limit and the
    /// `Ratelimit` headers. `Options::new()` sets `Some((1200, 300 s))`, the real quota.
    pub rate_limit: Option<(u32, Duration)>,
    /// R2's "1 concurrent write per second to the same key" on the S3 API (docs/cloudflare-api.md §7
    /// "Limits"; R2 `r2/platform/limits.mdx`): a second PutObject or CompleteMultipartUpload of
    /// one key within a second gets 429 `TooManyRequests` (R2 10058) with `Retry-After: 1`
    /// (seconds). The write is counted when it lands (a 412 or a refused request does not count).
    /// Off in `Options::new()` so that ordinary tests are not slowed; the stress and
    /// compare-and-swap tests turn it on with [`Options::with_s3_write_limit_per_key`] (or
    /// `cfsetup emulator --s3-write-limit-per-key`). The REST object PUT is not limited.
    pub s3_write_limit_per_key: bool,
    /// Which key of a token's IP `condition` the emulator honours. The default honours both.
    pub condition_keys: ConditionKeys,
    /// A lower cap on `per_page` for page-paginated lists than the emulator's own (50). Cloudflare
    /// caps `per_page` per endpoint and says so in `result_info.per_page`; this lets a test prove
    /// a client follows the returned value rather than the one it asked for.
    pub max_per_page: Option<usize>,
    /// How the S3 API answers a presigned (query-signed) POST: CreateMultipartUpload,
    /// CompleteMultipartUpload, DeleteObjects. R2 `r2/api/s3/presigned-urls.mdx` "Supported HTTP
    /// methods" lists GET, HEAD, PUT and DELETE and says "POST, which performs uploads via native
    /// HTML forms, is not currently supported"; which status refuses it is unknown
    /// (docs/cloudflare-api.md §7 "Signing: use the header form", open question 11). Refused by
    /// default (both `Options::default()` and `Options::new()`): see [`PresignedPost`].
    pub s3_presigned_post: PresignedPost,
    /// Read a presigned request's payload hash the lenient way: the canonical request always
    /// ends in `UNSIGNED-PAYLOAD` whatever `X-Amz-Content-Sha256` says (s3s' reading). Off by
    /// default: the payload line comes from the `X-Amz-Content-Sha256` query parameter, else the
    /// `x-amz-content-sha256` header, else `UNSIGNED-PAYLOAD`, as AWS's Go SDK
    /// (`aws/signer/v4/v4.go` `buildBodyDigest`, PR #1976), aws4fetch (`hexBodyHash`) and MinIO
    /// (`cmd/signature-v4-utils.go` `getContentSha256Cksum`) read it (docs/cloudflare-api.md §7
    /// "Signing: use the header form"; R2 documents neither). Under the default a client that
    /// presigns `UNSIGNED-PAYLOAD` and also sends a hex `x-amz-content-sha256` header gets 403
    /// SignatureDoesNotMatch. In both readings a hex header is then checked against the body.
    pub s3_presigned_payload_lenient: bool,
    /// Accept an `Authorization`-header request whose `x-amz-content-sha256` header is sent but
    /// not listed in `SignedHeaders`. Off by default: 403 AccessDenied "There were headers
    /// present in the request which were not signed" with `<HeadersNotSigned>`. AWS's SigV4
    /// page (docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html) requires the
    /// header and shows it signed; S3-compatible servers refuse it unsigned (bradleyg/django-s3direct
    /// #249, zengularity/benji PR #309) while AWS itself has been reported to tolerate it
    /// (demarche-numerique/ds_proxy PR #164). R2 is silent, so this is the strict side.
    pub s3_unsigned_content_sha256_lenient: bool,
    /// Answer 409 ConditionalRequestConflict instead of 412 PreconditionFailed to a conditional
    /// PutObject that loses a race. AWS answers 409 to a conditional write that raced another
    /// ("A conflicting operation occurred. If using PutObject you can retry the request";
    /// apache/james-project PR #3152, localstack PR #11402); R2's answer is undocumented
    /// (cloudflare-docs#32793), docs/cloudflare-api.md §7 "A conditional write that races another".
    /// The emulator's rule is deterministic, so a test can produce the answer on demand: under
    /// this knob, a PutObject carrying any of `If-Match`, `If-None-Match`, `If-Modified-Since`,
    /// `If-Unmodified-Since` answers 409 when (a) its condition fails (the loser of a race, which
    /// under the emulator's lock always sees the winner's object), or (b) another conditional
    /// PutObject of the same key is in flight (from the moment it arrived, through injected
    /// latency, to its answer), as AWS's "conflicting operation". Off by default (412 only).
    pub s3_conflict_409: bool,
    /// Honour `If-Match`, `If-None-Match`, `If-Modified-Since` and `If-Unmodified-Since` on
    /// CompleteMultipartUpload (412 when they fail), as the emulator used to. Off by default:
    /// R2 documents conditional headers for PutObject only (`r2/api/s3/api.mdx`,
    /// `r2/api/s3/extensions.mdx`; docs/cloudflare-api.md §7 "A conditional write that races
    /// another"), so a CompleteMultipartUpload carrying one is refused with 501 NotImplemented
    /// (a choice: R2's answer to headers and features it does not implement, e.g. aws-chunked
    /// trailers, §7 "Checksums"; a 501 cannot be mistaken for a problem with the parts, which
    /// are 400s). Silently ignoring them would let a multipart "lock" look atomic here and race
    /// on R2.
    pub s3_complete_honours_conditions: bool,
    /// A broken store, for tests of what notices one (`cfsetup doctor`): S3 PutObject and
    /// UploadPart store the body without checking it against the `x-amz-content-sha256` the
    /// request claims and signed. No documented R2 behaviour; off by default.
    pub s3_fault_trusts_claimed_sha256: bool,
    /// A broken store, likewise: S3 PutObject ignores `If-Match`, `If-None-Match` and the date
    /// conditions and always writes. No documented R2 behaviour; off by default.
    pub s3_fault_ignores_conditions: bool,
    /// Refuse S3 keys derived from prefixed (`cfut_`/`cfat_`) tokens with 403
    /// SignatureDoesNotMatch. docs/cloudflare-api.md §7: whether R2 derives S3 keys from the 2026
    /// prefixed formats is unconfirmed (one report, jikig-ai/soleur PR #3969, saw
    /// SignatureDoesNotMatch). Off by default; [`Emulator::mint_legacy_token`] mints a token
    /// whose keys still work.
    pub s3_refuses_prefixed_tokens: bool,
    /// Refuse the Global API Key on every R2 REST endpoint with 403 / 10000. Whether R2 accepts
    /// the key is unconfirmed (docs/cloudflare-api.md §7 and open question 8: the API reference lists
    /// only API-token security for R2), so by default the emulator accepts it and tests switch
    /// this on to prove a client handles the other answer.
    pub r2_refuses_global_key: bool,
    /// Let the REST object endpoints (GET, PUT, DELETE, list) accept a token holding only the
    /// bucket-scoped "Workers R2 Storage Bucket Item Read/Write" groups on that bucket. Off by
    /// default: they are refused with 403 / 10000, the answer workers-sdk #9235 reports for a
    /// PUT (docs/cloudflare-api.md §7 "Object REST endpoints"; the reads are "unconfirmed either
    /// way"). Tests switch it on so the read paths are tried against both answers.
    pub r2_rest_accepts_bucket_tokens: bool,
}

/// The IP condition key of `POST /user/tokens` is an open question (docs/cloudflare-api.md §4 "The
/// condition key is disputed", open question 1): the prose docs (`create-via-api.mdx`) and the
/// cf-go v0 fixture show `request.ip`; the SDKs generated from the current schema (cloudflare-go
/// `json:"request_ip"`, Python `token_create_params.py`, TS `tokens.ts`) and terraform v5's
/// acceptance test (`api_token/resource_test.go`, which reads `condition.request_ip.in[0]` back)
/// use `request_ip`. Until one is confirmed live, the emulator stores and echoes whichever it is
/// sent, and tests can make it honour only one of them, to prove that a client never reports a
/// restriction the server dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConditionKeys {
    /// Both keys are honoured, stored and echoed as sent.
    #[default]
    Both,
    /// Only the documented `request.ip`; `request_ip` is ignored silently and not stored.
    DottedOnly,
    /// Only the SDKs' `request_ip`; `request.ip` is ignored silently and not stored.
    UnderscoreOnly,
}

impl ConditionKeys {
    /// Whether a condition key is honoured (an unknown key is left to validation).
    pub(crate) fn ignores(self, key: &str) -> bool {
        matches!(
            (self, key),
            (ConditionKeys::DottedOnly, "request_ip")
                | (ConditionKeys::UnderscoreOnly, "request.ip")
        )
    }
}

/// The answer to a presigned (query-signed) POST on the S3 API ([`Options::s3_presigned_post`]).
/// R2 documents presigned URLs for GET, HEAD, PUT and DELETE only and names no status for the
/// refusal (`r2/api/s3/presigned-urls.mdx`; docs/cloudflare-api.md §7 "Signing: use the header form").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PresignedPost {
    /// 401 Unauthorized (R2 10002, "Missing or invalid authentication credentials").
    Refuse401,
    /// 403 SignatureDoesNotMatch (R2 10035), with the canonical request and string to sign in
    /// the body as for any mismatch. **The default**, because it is the strict side: it looks
    /// exactly like a wrong key or a wrong signing method, so a client that falls back only on
    /// "POST refused" answers (403 AccessDenied, 400, 501) is caught out, which is how a client
    /// built on presigned POST would fail on R2 (issue 16 item 2). AWS S3 itself answers a
    /// presigned CompleteMultipartUpload with SignatureDoesNotMatch when the body is not what the
    /// signer expected (aws/aws-sdk-java-v2 #4196, aws/aws-sdk-php #1078).
    #[default]
    Refuse403SignatureDoesNotMatch,
    /// 403 AccessDenied "Presigned URLs do not support the POST method.", the emulator's answer
    /// before the strict default (kept for the client tests written against it).
    Refuse403AccessDenied,
    /// 501 NotImplemented, R2's answer to features it does not implement.
    Refuse501,
    /// Accepted like any presigned request (rusty-s3 presigns every request, POST included).
    Accept,
}

impl PresignedPost {
    /// The flag value of `cfsetup emulator --s3-presigned-post`.
    pub fn as_str(self) -> &'static str {
        match self {
            PresignedPost::Refuse401 => "refuse-401",
            PresignedPost::Refuse403SignatureDoesNotMatch => "refuse-403",
            PresignedPost::Refuse403AccessDenied => "refuse-403-access-denied",
            PresignedPost::Refuse501 => "refuse-501",
            PresignedPost::Accept => "accept",
        }
    }

    /// Every value, for flag parsing and help.
    pub const ALL: [PresignedPost; 5] = [
        PresignedPost::Refuse403SignatureDoesNotMatch,
        PresignedPost::Refuse403AccessDenied,
        PresignedPost::Refuse401,
        PresignedPost::Refuse501,
        PresignedPost::Accept,
    ];
}

impl std::str::FromStr for PresignedPost {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        PresignedPost::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = PresignedPost::ALL.iter().map(|p| p.as_str()).collect();
                format!("expected one of {}", names.join(", "))
            })
    }
}

/// Which of the emulator's two APIs a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    /// The REST API under `/client/v4`.
    Rest,
    /// R2's S3-compatible API (every path not under `/client/v4` or `/__emulator`).
    S3,
}

impl Api {
    /// `"rest"` or `"s3"`, as in `GET /__emulator/requests`.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Rest => "rest",
            Api::S3 => "s3",
        }
    }
}

/// The Secret Access Key R2 derives from an API token: the lowercase hex SHA-256 of its value
/// (docs/cloudflare-api.md §7 "S3 credentials from an API token"). The Access Key ID is the token id.
pub fn s3_secret_access_key(token_value: &str) -> String {
    wire::sha256_hex(token_value.as_bytes())
}

/// The seeded identity. Stable across runs so that docs and scripts can show them.
#[derive(Debug, Clone)]
pub struct Seed {
    pub user_id: String,
    pub email: String,
    pub global_key: String,
    pub account_id: String,
    pub account_name: String,
    pub zone_id: String,
    pub zone_name: String,
}

/// A fault to inject. It applies to the next `times` requests that match.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Only requests with this method (e.g. "PUT"); `None` matches any.
    pub method: Option<String>,
    /// Only requests whose path contains this substring; `None` matches any. For the REST API the
    /// path is below the base URL (e.g. `/accounts/.../r2/buckets/b/objects/k`); for the S3 API it
    /// is the raw request path (e.g. `/bucket/key`). [`Emulator::inject`] matches both APIs;
    /// [`Emulator::inject_for`] only one.
    pub path_contains: Option<String>,
    pub kind: FaultKind,
    /// How many matching requests it applies to.
    pub times: u32,
}

#[derive(Debug, Clone)]
pub enum FaultKind {
    /// 429, code 971, with `Retry-After: <secs>` (S3: 429 `TooManyRequests`, same header).
    RateLimit { retry_after_secs: u64 },
    /// The given 5xx status with a Cloudflare error envelope (S3: XML; 500 `InternalError`,
    /// 501 `NotImplemented`, 503 `SlowDown`, others `ServiceUnavailable`).
    ServerError { status: u16 },
    /// An error envelope with this status and code, e.g. a 404 that a real server could give on
    /// one path while another says the resource exists.
    ApiError {
        status: u16,
        code: i64,
        message: String,
    },
    /// Close the connection without answering.
    Drop,
    /// Sleep this long before handling.
    Latency(Duration),
}

/// One request, as the emulator saw it. Secrets are never recorded.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// REST: the path below the base URL, e.g. `/user/tokens`. S3: the raw request path, e.g.
    /// `/bucket/key`.
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    /// REST: "token", "global-key" or "none". S3: "sigv4" (Authorization header), "presigned"
    /// (query string) or "none".
    pub auth: String,
    /// Length of the request body in bytes.
    pub body_len: u64,
    /// Which API the request used.
    pub api: Api,
    /// S3: the operation the request was routed to, named as in the Amazon S3 API reference
    /// (`PutObject`, `UploadPart`, `CreateMultipartUpload`, `CompleteMultipartUpload`,
    /// `DeleteObjects`, `ListObjectsV2`, …; see [`S3_OPS`]), also when it then failed
    /// (authentication, a condition). `None` for REST requests and for S3 requests refused before
    /// routing (a streaming payload, a missing Content-Length, an injected fault, 405 / 501).
    pub op: Option<&'static str>,
    /// When the request arrived (its head was read), on the monotonic clock.
    pub started: Instant,
    /// When its answer was produced (after any injected latency), or when it was dropped.
    pub ended: Instant,
}

/// How many round trips `requests` took: the length of the longest chain of requests in which
/// each one started after the one before it ended. `depth(r) = 1 + max(depth(q))` over the
/// requests `q` that ended strictly before `r` started (0 when there is none), and the answer is
/// the largest depth (0 for no request). Requests that overlap in time count as one round trip:
/// a client that sends them together waits once.
///
/// It measures a client's critical path without timing assertions: with [`Options::latency`]
/// of a few tens of milliseconds, requests sent together overlap robustly and requests sent one
/// after another never do, so the count does not depend on the machine's speed.
pub fn round_trips(requests: &[RecordedRequest]) -> usize {
    let n = requests.len();
    let mut by_start: Vec<usize> = (0..n).collect();
    by_start.sort_by_key(|&i| (requests[i].started, requests[i].ended));
    let mut by_end: Vec<usize> = (0..n).collect();
    by_end.sort_by_key(|&i| requests[i].ended);
    let mut depth = vec![0usize; n];
    // The deepest request among those that ended before the current one started. A request
    // that ended strictly before `r` started also started before it, so its depth is known.
    let (mut next_end, mut deepest, mut most) = (0, 0, 0);
    for &i in &by_start {
        while next_end < n && requests[by_end[next_end]].ended < requests[i].started {
            deepest = deepest.max(depth[by_end[next_end]]);
            next_end += 1;
        }
        depth[i] = deepest + 1;
        most = most.max(depth[i]);
    }
    most
}

/// The S3 operation names [`RecordedRequest::op`] can hold.
pub const S3_OPS: [&str; 17] = [
    "ListBuckets",
    "CreateBucket",
    "DeleteBucket",
    "HeadBucket",
    "GetBucketLocation",
    "ListObjects",
    "ListObjectsV2",
    "DeleteObjects",
    "PutObject",
    "UploadPart",
    "GetObject",
    "HeadObject",
    "DeleteObject",
    "CreateMultipartUpload",
    "CompleteMultipartUpload",
    "AbortMultipartUpload",
    "ListParts",
];

/// An R2 object in the emulator's state.
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub bucket: String,
    pub key: String,
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    /// Unquoted (MD5 hex, or `<hex>-<parts>` after a multipart upload).
    pub etag: String,
    /// The upload time as stored and listed: RFC 3339 with milliseconds
    /// (`2026-12-06T04:05:06.789Z`; whole seconds only from an old state file).
    pub uploaded: String,
}

/// An S3 multipart upload in progress.
#[derive(Debug, Clone)]
pub struct PendingUpload {
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    /// Part numbers uploaded so far, ascending.
    pub parts: Vec<u32>,
    /// When it was created (RFC 3339).
    pub initiated: String,
}

/// An uploaded Worker script in the emulator's state.
#[derive(Debug, Clone)]
pub struct StoredScript {
    pub name: String,
    /// The `metadata` part, as the JSON that was sent.
    pub metadata: serde_json::Value,
    /// Module parts: (file name, content type, bytes).
    pub modules: Vec<(String, String, Vec<u8>)>,
}

/// A Worker route in the emulator's state.
#[derive(Debug, Clone)]
pub struct StoredRoute {
    pub id: String,
    pub zone_id: String,
    pub pattern: String,
    pub script: Option<String>,
}

/// A running emulator. Dropping it shuts the server down.
pub struct Emulator {
    seed: Seed,
    shared: Arc<Shared>,
    server: Server,
    dns: dns::DnsServer,
}

impl Options {
    pub fn new() -> Self {
        Options {
            activate_custom_hostnames_after: Some(2),
            rate_limit: Some((1200, Duration::from_secs(300))),
            ..Options::default()
        }
    }

    /// Turns R2's one write per second per key on or off ([`Options::s3_write_limit_per_key`]).
    pub fn with_s3_write_limit_per_key(mut self, on: bool) -> Self {
        self.s3_write_limit_per_key = on;
        self
    }

    /// Sets the answer to a presigned POST ([`Options::s3_presigned_post`]).
    pub fn with_s3_presigned_post(mut self, answer: PresignedPost) -> Self {
        self.s3_presigned_post = answer;
        self
    }

    /// Turns the 409 answer to a lost conditional PUT on or off ([`Options::s3_conflict_409`]).
    pub fn with_s3_conflict_409(mut self, on: bool) -> Self {
        self.s3_conflict_409 = on;
        self
    }
}

impl Emulator {
    /// Starts a server on 127.0.0.1 on its own thread and runtime.
    pub fn start(options: Options) -> std::io::Result<Emulator> {
        let state = match &options.state_file {
            Some(path) => State::load(path)?,
            None => State::default(),
        };
        let port = options.port;
        let dns = dns::DnsServer::start()?;
        let shared = Arc::new(Shared {
            dns: dns.table.clone(),
            options,
            catalog: seed::permission_groups(),
            withdrawn: Mutex::new(Vec::new()),
            state: Mutex::new(state),
            faults: Mutex::new(faults::Faults::default()),
            log: Mutex::new(Vec::new()),
            limiter: Mutex::new(faults::Limiter::default()),
            saver: shared::Saver::default(),
            in_flight: Mutex::new(Default::default()),
        });
        let server = server::start(shared.clone(), port)?;
        Ok(Emulator {
            seed: Seed {
                user_id: seed::USER_ID.into(),
                email: seed::EMAIL.into(),
                global_key: seed::GLOBAL_KEY.into(),
                account_id: seed::ACCOUNT_ID.into(),
                account_name: seed::ACCOUNT_NAME.into(),
                zone_id: seed::ZONE_ID.into(),
                zone_name: seed::ZONE_NAME.into(),
            },
            shared,
            server,
            dns,
        })
    }
    /// The DNS server's address (UDP on 127.0.0.1), for `CFSETUP_DNS_SERVER`.
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns.addr
    }
    /// Sets the records of `name` and `kind` (A, AAAA, CNAME or TXT) on the DNS server; an empty
    /// `values` removes them.
    ///
    /// # Panics
    /// On an unknown type or a malformed value.
    pub fn dns_set(&self, name: &str, kind: &str, values: &[&str]) {
        let kind = kind.to_ascii_uppercase();
        for v in values {
            if let Err(e) = dns::check(&kind, v) {
                panic!("dns_set {name} {kind}: {e}");
            }
        }
        let mut table = self.shared.dns.lock();
        let k = (dns::key(name), kind);
        if values.is_empty() {
            table.remove(&k);
        } else {
            table.insert(k, values.iter().map(|v| v.to_string()).collect());
        }
    }
    /// Sets the custom hostname quota every zone answers (`allocated` is the soft limit,
    /// `hard_cap` where creates are refused with 403 / 1405).
    pub fn set_custom_hostname_quota(&self, allocated: u64, hard_cap: u64) {
        self.shared.state.lock().hostname_quota = state::HostnameQuota {
            allocated,
            hard_cap,
        };
        self.shared.save_soon();
    }
    /// Forces fields of a custom hostname's answers (e.g. `{"status": "active", "ssl": {"status":
    /// "pending_validation", "validation_errors": [{"message": "…"}]}}`, or `created_at`): top-level
    /// keys replace, `ssl` merges one level deep, and `null` removes the forcing. Returns whether
    /// the hostname exists.
    pub fn force_custom_hostname(&self, hostname: &str, fields: serde_json::Value) -> bool {
        let found = inspect::force_hostname(&mut self.shared.state.lock(), hostname, fields);
        self.shared.save_soon();
        found
    }
    /// Adds custom hostnames to the seeded zone without a request each (method `http`, pending),
    /// for benchmarks. The quota's hard cap is not applied.
    pub fn insert_custom_hostnames(&self, hostnames: impl IntoIterator<Item = String>) {
        let mut state = self.shared.state.lock();
        for h in hostnames {
            let ch = routes::new_hostname(
                seed::ZONE_ID,
                h.to_ascii_lowercase(),
                "http".into(),
                "dv".into(),
                serde_json::json!({}),
                None,
            );
            state.custom_hostnames.push(ch);
        }
        drop(state);
        self.shared.save_soon();
    }
    /// `http://127.0.0.1:PORT/client/v4`
    pub fn base_url(&self) -> String {
        format!("http://{}/client/v4", self.server.addr)
    }
    /// `http://127.0.0.1:PORT`: R2's S3-compatible API, path-style, region `auto`.
    pub fn s3_endpoint(&self) -> String {
        format!("http://{}", self.server.addr)
    }
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }
    pub fn seed(&self) -> &Seed {
        &self.seed
    }
    /// Adds a fault for requests of either API.
    pub fn inject(&self, fault: Fault) {
        self.shared.faults.lock().add(None, fault);
    }
    /// Adds a fault for requests of one API only.
    pub fn inject_for(&self, api: Api, fault: Fault) {
        self.shared.faults.lock().add(Some(api), fault);
    }
    pub fn clear_faults(&self) {
        self.shared.faults.lock().clear();
    }
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log.lock().clone()
    }
    pub fn clear_requests(&self) {
        self.shared.log.lock().clear();
    }
    /// [`round_trips`] over the request log: the longest chain of logged requests each sent
    /// after the one before it was answered. Clear the log first to measure one run.
    pub fn round_trips(&self) -> usize {
        round_trips(&self.shared.log.lock())
    }
    /// How many logged requests used this API and HTTP method (any status), e.g. "how many S3
    /// PUTs" with `(Api::S3, "PUT")` (PutObject and UploadPart alike).
    pub fn count_requests(&self, api: Api, method: &str) -> usize {
        self.shared
            .log
            .lock()
            .iter()
            .filter(|r| r.api == api && r.method.eq_ignore_ascii_case(method))
            .count()
    }
    /// How many conditional S3 PutObjects are in flight now (tracked only under
    /// [`Options::s3_conflict_409`]): lets a test send a second one while the first is held by
    /// injected latency, without guessing with a sleep.
    pub fn conditional_puts_in_flight(&self) -> usize {
        self.shared.in_flight.lock().values().sum()
    }
    /// How many logged S3 requests were routed to this operation (any status), e.g.
    /// `"PutObject"` or `"CompleteMultipartUpload"` ([`S3_OPS`]).
    pub fn count_s3_op(&self, op: &str) -> usize {
        self.shared
            .log
            .lock()
            .iter()
            .filter(|r| r.op == Some(op))
            .count()
    }
    /// Creates a user token directly (not through the API) with these policies, given in the API's
    /// wire form (`[{"effect":"allow","resources":{...},"permission_groups":[{"id":...}]}]`).
    /// Returns (token id, token value).
    ///
    /// # Panics
    /// If the policies are invalid (an unknown permission group, an empty list, …).
    pub fn mint_token(&self, name: &str, policies: serde_json::Value) -> (String, String) {
        self.mint(TokenOwner::User, name, policies)
    }
    /// Like [`Emulator::mint_token`], for an account-owned token (`cfat_…`) of the seeded account.
    ///
    /// # Panics
    /// If the policies are invalid.
    pub fn mint_account_token(&self, name: &str, policies: serde_json::Value) -> (String, String) {
        self.mint(TokenOwner::Account(seed::ACCOUNT_ID.into()), name, policies)
    }
    /// Like [`Emulator::mint_token`], but the value has the legacy format: 40 alphanumerics and
    /// no `cfut_` prefix (docs/cloudflare-api.md §1 "Token formats"). Its S3 keys are accepted even
    /// with [`Options::s3_refuses_prefixed_tokens`], so a test can hold one token of each kind.
    ///
    /// # Panics
    /// If the policies are invalid.
    pub fn mint_legacy_token(&self, name: &str, policies: serde_json::Value) -> (String, String) {
        let out = {
            let mut state = self.shared.state.lock();
            routes::mint_legacy(&mut state, &self.shared.catalog, name, policies)
        };
        self.shared.save_soon();
        out
    }
    fn mint(&self, owner: TokenOwner, name: &str, policies: serde_json::Value) -> (String, String) {
        let out = {
            let mut state = self.shared.state.lock();
            routes::mint(&mut state, &self.shared.catalog, owner, name, policies)
        };
        self.shared.save_soon();
        out
    }
    /// Looks up a seeded permission group's id by name and scope
    /// (`com.cloudflare.api.account` etc.).
    pub fn permission_group_id(&self, name: &str, scope: &str) -> Option<String> {
        self.shared
            .catalog
            .iter()
            .find(|g| g.name == name && g.scope == scope)
            .map(|g| g.id.to_string())
    }
    /// Takes a permission group out of `GET /user/tokens/permission_groups`, as if Cloudflare had
    /// renamed or retired it. Returns whether such a group existed. For tests of clients that must
    /// refuse to create a token when a group is missing.
    pub fn remove_permission_group(&self, name: &str, scope: &str) -> bool {
        match self.permission_group_id(name, scope) {
            Some(id) => {
                self.shared.withdrawn.lock().push(id);
                true
            }
            None => false,
        }
    }
    /// Bucket names (all jurisdictions), sorted.
    pub fn buckets(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .shared
            .state
            .lock()
            .buckets
            .iter()
            .map(|b| b.name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    }
    /// The objects of every bucket with this name (any jurisdiction), in key order.
    pub fn objects(&self, bucket: &str) -> Vec<StoredObject> {
        let state = self.shared.state.lock();
        state
            .buckets
            .iter()
            .filter(|b| b.name == bucket)
            .flat_map(|b| {
                b.objects.iter().map(|(k, o)| StoredObject {
                    bucket: b.name.clone(),
                    key: k.clone(),
                    body: o.body.clone(),
                    content_type: o.content_type.clone(),
                    cache_control: o.cache_control.clone(),
                    etag: o.etag.clone(),
                    uploaded: o.uploaded.clone(),
                })
            })
            .collect()
    }
    /// Puts objects straight into the state of the default-jurisdiction bucket `bucket`, as if
    /// each had been PUT (MD5 ETag, now as its upload time), without a request each: for tests
    /// that need a large bucket. Returns `false` (and stores nothing) when the bucket does not
    /// exist.
    pub fn insert_objects(
        &self,
        bucket: &str,
        objects: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> bool {
        use md5::Digest;
        let mut state = self.shared.state.lock();
        let Some(b) = state.bucket_mut("default", bucket) else {
            return false;
        };
        let uploaded = wire::upload_time();
        for (key, body) in objects {
            let etag = hex::encode(md5::Md5::digest(&body));
            b.objects.insert(
                key,
                state::Object {
                    body,
                    content_type: Some("application/octet-stream".into()),
                    cache_control: None,
                    etag,
                    uploaded: uploaded.clone(),
                    version: wire::random_hex(32),
                    http_extra: Default::default(),
                },
            );
        }
        true
    }

    /// The S3 multipart uploads not yet completed or aborted, by upload id.
    pub fn pending_uploads(&self) -> Vec<PendingUpload> {
        let state = self.shared.state.lock();
        state
            .uploads
            .iter()
            .map(|(id, u)| PendingUpload {
                upload_id: id.clone(),
                bucket: u.bucket.clone(),
                key: u.key.clone(),
                parts: u.parts.keys().copied().collect(),
                initiated: u.initiated.clone(),
            })
            .collect()
    }
    pub fn scripts(&self) -> Vec<StoredScript> {
        let state = self.shared.state.lock();
        state
            .scripts
            .values()
            .map(|s| StoredScript {
                name: s.name.clone(),
                metadata: s.metadata.clone(),
                modules: s
                    .modules
                    .iter()
                    .map(|m| (m.name.clone(), m.content_type.clone(), m.body.clone()))
                    .collect(),
            })
            .collect()
    }
    /// Replaces the main module's bytes of a deployed script, as another build of it would: for
    /// tests of what notices a Worker that differs from the one a client would upload.
    pub fn replace_script_module(&self, name: &str, body: &[u8]) -> bool {
        let mut state = self.shared.state.lock();
        let Some(script) = state.scripts.get_mut(name) else {
            return false;
        };
        let main = script.main_module.clone();
        match script.modules.iter_mut().find(|m| m.name == main) {
            Some(m) => {
                m.body = body.to_vec();
                true
            }
            None => false,
        }
    }

    pub fn routes(&self) -> Vec<StoredRoute> {
        let state = self.shared.state.lock();
        state
            .routes
            .iter()
            .map(|r| StoredRoute {
                id: r.id.clone(),
                zone_id: r.zone_id.clone(),
                pattern: r.pattern.clone(),
                script: r.script.clone(),
            })
            .collect()
    }
    /// The custom hostnames as the API would return them (wire JSON). Reading them here does not
    /// count as a GET.
    pub fn custom_hostnames(&self) -> Vec<serde_json::Value> {
        let after = self.shared.options.activate_custom_hostnames_after;
        let state = self.shared.state.lock();
        state
            .custom_hostnames
            .iter()
            .map(|c| routes::render_hostname(c, routes::current_phase(c, after)))
            .collect()
    }
    /// Token names currently held by the seeded user.
    pub fn token_names(&self) -> Vec<String> {
        let state = self.shared.state.lock();
        state
            .tokens
            .iter()
            .filter(|t| t.owner == TokenOwner::User)
            .map(|t| t.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod round_trip_tests {
    use super::*;

    /// A request from `start` to `end` milliseconds after `t0`.
    fn req(t0: Instant, start: u64, end: u64) -> RecordedRequest {
        RecordedRequest {
            method: "GET".into(),
            path: "/".into(),
            query: None,
            status: 200,
            auth: "none".into(),
            body_len: 0,
            api: Api::S3,
            op: None,
            started: t0 + Duration::from_millis(start),
            ended: t0 + Duration::from_millis(end),
        }
    }

    #[test]
    fn round_trips_is_the_longest_chain_of_requests_each_after_the_last() {
        let t0 = Instant::now();
        assert_eq!(round_trips(&[]), 0);
        assert_eq!(round_trips(&[req(t0, 0, 50)]), 1);
        // Two at once, then one: two round trips.
        let rs = [req(t0, 0, 50), req(t0, 1, 52), req(t0, 53, 100)];
        assert_eq!(round_trips(&rs), 2);
        // Order of the log does not matter.
        let rs = [req(t0, 53, 100), req(t0, 1, 52), req(t0, 0, 50)];
        assert_eq!(round_trips(&rs), 2);
        // A request that starts while another is still in flight does not wait for it.
        let rs = [req(t0, 0, 50), req(t0, 49, 99), req(t0, 51, 101)];
        assert_eq!(round_trips(&rs), 2);
        // A long request overlapping a chain of three: the chain decides.
        let rs = [
            req(t0, 0, 400),
            req(t0, 0, 50),
            req(t0, 60, 110),
            req(t0, 120, 170),
        ];
        assert_eq!(round_trips(&rs), 3);
        // Something after all of them: one more than the longest chain before it.
        let rs = [
            req(t0, 0, 400),
            req(t0, 0, 50),
            req(t0, 60, 110),
            req(t0, 120, 170),
            req(t0, 401, 450),
        ];
        assert_eq!(round_trips(&rs), 4);
        // Requests ending exactly when another starts are not counted as waited for.
        assert_eq!(round_trips(&[req(t0, 0, 50), req(t0, 50, 100)]), 1);
        // A staircase of uploads at a concurrency of 2: four requests, two round trips.
        let rs = [
            req(t0, 0, 50),
            req(t0, 0, 50),
            req(t0, 51, 101),
            req(t0, 51, 101),
        ];
        assert_eq!(round_trips(&rs), 2);
    }
}
