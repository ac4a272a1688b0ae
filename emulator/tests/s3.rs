//! The emulator's R2 S3-compatible API over HTTP. Requests are presigned with `rusty-s3` (the
//! crate cfsetup's client signs with, an implementation independent of the emulator's verifier)
//! or, where a hex payload hash must be signed in the `Authorization` header, with the small
//! header signer below. boto3 covers the same ground from Python in `tests/sdk/test_s3_boto3.py`.

use cfsetup_emulator::{
    s3_secret_access_key, Api, Emulator, Fault, FaultKind, Options, PresignedPost,
};
use hmac::{Hmac, Mac};
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::Method;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant, SystemTime};
use url::Url;

const R2_WRITE: &str = "bf7481a1826f439697cb59a20b22293e";
const R2_READ: &str = "b4992e1108244f5d8bfbd5744320c2e1";
const ITEM_WRITE: &str = "2efd5506f9c8494dacb1fa10a3e7d5b6";
const ACCOUNT_SETTINGS_READ: &str = "c1fde68c7bcc44588cbb6ddbc16d6480";
const MIB: usize = 1024 * 1024;
const HOUR: Duration = Duration::from_secs(3600);

struct T {
    emu: Emulator,
    http: Client,
    creds: Credentials,
    bucket: Bucket,
}

fn start() -> T {
    start_with(Options::new())
}

fn start_with(options: Options) -> T {
    let emu = Emulator::start(options).expect("emulator starts");
    let http = Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let (id, value) = emu.mint_token("s3", account_policy(&emu, &[R2_WRITE]));
    let t = T {
        creds: Credentials::new(id, s3_secret_access_key(&value)),
        bucket: bucket_of(&emu, "site"),
        emu,
        http,
    };
    t.create_bucket("site");
    t
}

fn bucket_of(emu: &Emulator, name: &str) -> Bucket {
    Bucket::new(
        Url::parse(&emu.s3_endpoint()).expect("url"),
        UrlStyle::Path,
        name.to_string(),
        "auto",
    )
    .expect("bucket")
}

fn account_policy(emu: &Emulator, groups: &[&str]) -> Value {
    let groups: Vec<Value> = groups.iter().map(|g| json!({"id": g})).collect();
    json!([{
        "effect": "allow",
        "resources": {format!("com.cloudflare.api.account.{}", emu.seed().account_id): "*"},
        "permission_groups": groups,
    }])
}

impl T {
    fn create_bucket(&self, name: &str) {
        let s = self.emu.seed();
        let resp = self
            .http
            .post(format!(
                "{}/accounts/{}/r2/buckets",
                self.emu.base_url(),
                s.account_id
            ))
            .header("X-Auth-Email", &s.email)
            .header("X-Auth-Key", &s.global_key)
            .json(&json!({"name": name}))
            .send()
            .expect("create bucket");
        assert_eq!(resp.status().as_u16(), 200);
    }

    fn req(&self, method: Method, url: Url) -> RequestBuilder {
        self.http.request(method, url)
    }

    fn put(&self, key: &str, body: &[u8]) -> Response {
        let url = self.bucket.put_object(Some(&self.creds), key).sign(HOUR);
        self.req(Method::PUT, url)
            .body(body.to_vec())
            .send()
            .expect("put")
    }

    fn get(&self, key: &str) -> Response {
        let url = self.bucket.get_object(Some(&self.creds), key).sign(HOUR);
        self.req(Method::GET, url).send().expect("get")
    }

    /// Signed in the `Authorization` header with the body's real SHA-256, the way boto3 and the
    /// AWS SDKs talk to R2 (presigned POST is refused by default).
    fn signed(&self, method: Method, url: Url, body: &[u8]) -> RequestBuilder {
        header_signed(
            self,
            method,
            url,
            &sha256_hex(body),
            SystemTime::now(),
            self.creds.secret(),
        )
        .body(body.to_vec())
    }

    fn rest_put(&self, key: &str, body: &[u8]) -> u16 {
        let s = self.emu.seed();
        self.http
            .put(format!(
                "{}/accounts/{}/r2/buckets/site/objects/{key}",
                self.emu.base_url(),
                s.account_id
            ))
            .header("X-Auth-Email", &s.email)
            .header("X-Auth-Key", &s.global_key)
            .header("content-type", "text/plain")
            .body(body.to_vec())
            .send()
            .expect("rest put")
            .status()
            .as_u16()
    }
}

/// (status, S3 error code or "") of a response.
fn code(resp: Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body = resp.text().unwrap_or_default();
    let code = body
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(c, _)| c.to_string())
        .unwrap_or_default();
    (status, code)
}

fn md5_hex(data: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(data))
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("key");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// SigV4's canonical URI: the path percent-decoded, then every byte but `A-Za-z0-9-._~` and `/`
/// percent-encoded (AWS "Signature Calculations for the Authorization Header", CanonicalURI).
fn canonical_path(path: &str) -> String {
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(path).collect();
    decoded
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Signs with the `Authorization` header (AWS SigV4, "Authenticating Requests: Using the
/// Authorization Header"), with `payload` as `x-amz-content-sha256`.
fn header_signed(
    t: &T,
    method: Method,
    url: Url,
    payload: &str,
    when: SystemTime,
    secret: &str,
) -> RequestBuilder {
    let path = canonical_path(url.path());
    header_signed_over(t, method, url, payload, when, secret, &path)
}

/// Like [`header_signed`], with `path` as the canonical URI (to sign a wrong one on purpose).
fn header_signed_over(
    t: &T,
    method: Method,
    url: Url,
    payload: &str,
    when: SystemTime,
    secret: &str,
    path: &str,
) -> RequestBuilder {
    let stamp = humantime::format_rfc3339_seconds(when)
        .to_string()
        .replace(['-', ':'], "");
    let date = &stamp[..8];
    let host = format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port().expect("port")
    );
    let mut query: Vec<(String, String)> =
        url.query_pairs().map(|(k, v)| (enc(&k), enc(&v))).collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let canonical = format!(
        "{method}\n{path}\n{query}\nhost:{host}\nx-amz-content-sha256:{payload}\nx-amz-date:{stamp}\n\nhost;x-amz-content-sha256;x-amz-date\n{payload}"
    );
    let scope = format!("{date}/auto/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in ["auto", "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}",
        t.creds.key()
    );
    t.req(method, url)
        .header("authorization", auth)
        .header("x-amz-content-sha256", payload)
        .header("x-amz-date", stamp)
}

#[test]
fn put_get_head_range_and_416() {
    let t = start();
    let body = b"0123456789abcdefghij";
    let resp = t.put("dir/file.txt", body);
    assert_eq!(resp.status().as_u16(), 200);
    let etag = format!("\"{}\"", md5_hex(body));
    assert_eq!(resp.headers()["etag"], etag.as_str());

    let resp = t.get("dir/file.txt");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["etag"], etag.as_str());
    assert_eq!(resp.headers()["accept-ranges"], "bytes");
    assert_eq!(resp.headers()["content-length"], "20");
    assert!(resp.headers().contains_key("last-modified"));
    assert_eq!(resp.bytes().expect("body").as_ref(), body);

    let url = t
        .bucket
        .get_object(Some(&t.creds), "dir/file.txt")
        .sign(HOUR);
    for (range, status, want, content_range) in [
        ("bytes=2-4", 206, &body[2..5], "bytes 2-4/20"),
        ("bytes=15-", 206, &body[15..], "bytes 15-19/20"),
        ("bytes=-3", 206, &body[17..], "bytes 17-19/20"),
    ] {
        let resp = t
            .req(Method::GET, url.clone())
            .header("range", range)
            .send()
            .expect("range");
        assert_eq!(resp.status().as_u16(), status, "{range}");
        assert_eq!(resp.headers()["content-range"], content_range);
        assert_eq!(resp.bytes().expect("body").as_ref(), want);
    }
    let resp = t
        .req(Method::GET, url.clone())
        .header("range", "bytes=20-")
        .send()
        .expect("416");
    assert_eq!(resp.headers()["content-range"], "bytes */20");
    assert_eq!(code(resp), (416, "InvalidRange".into()));

    let resp = t
        .req(Method::GET, url.clone())
        .header("if-none-match", &etag)
        .send()
        .expect("304");
    assert_eq!(resp.status().as_u16(), 304);
    let resp = t
        .req(Method::GET, url)
        .header("if-match", "\"nope\"")
        .send()
        .expect("412");
    assert_eq!(code(resp), (412, "PreconditionFailed".into()));

    let head = t
        .bucket
        .head_object(Some(&t.creds), "dir/file.txt")
        .sign(HOUR);
    let resp = t.req(Method::HEAD, head).send().expect("head");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-length"], "20");
    assert_eq!(resp.headers()["etag"], etag.as_str());
    let missing = t.bucket.head_object(Some(&t.creds), "dir/none").sign(HOUR);
    let resp = t.req(Method::HEAD, missing).send().expect("head 404");
    assert_eq!(resp.status().as_u16(), 404);
    assert!(resp.bytes().expect("body").is_empty());
    assert_eq!(code(t.get("dir/none")), (404, "NoSuchKey".into()));

    let odd = "odd dir/ü+ä=1&x;(y)!*'~.txt";
    assert_eq!(t.put(odd, b"odd").status().as_u16(), 200);
    assert_eq!(t.get(odd).bytes().expect("body").as_ref(), b"odd");
    assert!(t.emu.objects("site").iter().any(|o| o.key == odd));

    let other = bucket_of(&t.emu, "nope");
    let url = other.get_object(Some(&t.creds), "k").sign(HOUR);
    assert_eq!(
        code(t.req(Method::GET, url).send().expect("no bucket")),
        (404, "NoSuchBucket".into())
    );

    let del = t
        .bucket
        .delete_object(Some(&t.creds), "dir/file.txt")
        .sign(HOUR);
    assert_eq!(
        t.req(Method::DELETE, del.clone())
            .send()
            .expect("del")
            .status()
            .as_u16(),
        204
    );
    assert_eq!(
        t.req(Method::DELETE, del)
            .send()
            .expect("del again")
            .status()
            .as_u16(),
        204
    );
    assert_eq!(t.emu.objects("site").len(), 1, "only the odd key is left");
}

#[test]
fn auth_failures_and_bucket_scoped_permission() {
    let t = start();
    t.create_bucket("other");
    assert_eq!(t.put("k", b"v").status().as_u16(), 200);

    // Unknown access key id.
    let stranger = Credentials::new("0".repeat(32), "f".repeat(64));
    let url = t.bucket.get_object(Some(&stranger), "k").sign(HOUR);
    assert_eq!(
        code(t.req(Method::GET, url).send().expect("r")),
        (403, "InvalidAccessKeyId".into())
    );
    // The right id with the raw token value (or anything else) as the secret.
    let wrong = Credentials::new(t.creds.key().to_string(), "f".repeat(64));
    let url = t.bucket.get_object(Some(&wrong), "k").sign(HOUR);
    assert_eq!(
        code(t.req(Method::GET, url).send().expect("r")),
        (403, "SignatureDoesNotMatch".into())
    );
    // A tampered presigned URL.
    let url = t.bucket.get_object(Some(&t.creds), "k").sign(HOUR);
    let tampered = Url::parse(&url.as_str().replace("/site/k", "/site/j")).expect("url");
    assert_eq!(
        code(t.req(Method::GET, tampered).send().expect("r")),
        (403, "SignatureDoesNotMatch".into())
    );
    // No signature at all: R2 10002 Unauthorized, 401 (r2/api/error-codes.mdx).
    let anon = t.bucket.get_object(None, "k").sign(HOUR);
    assert_eq!(
        code(t.req(Method::GET, anon).send().expect("r")),
        (401, "Unauthorized".into())
    );
    // An Access Key ID of the wrong length, e.g. the 40-character token value itself.
    let long = Credentials::new("a".repeat(40), "f".repeat(64));
    let url = t.bucket.get_object(Some(&long), "k").sign(HOUR);
    let resp = t.req(Method::GET, url).send().expect("r");
    assert_eq!(resp.status().as_u16(), 400);
    let text = resp.text().expect("body");
    assert!(
        text.contains("<Code>InvalidArgument</Code>")
            && text.contains("Credential access key has length 40, should be 32"),
        "{text}"
    );
    // Expired presigned URL (R2 10018 ExpiredRequest, 400), and a header signature an hour old.
    let past = hours_ago(2);
    let url = t
        .bucket
        .get_object(Some(&t.creds), "k")
        .sign_with_time(Duration::from_secs(60), &past);
    assert_eq!(
        code(t.req(Method::GET, url).send().expect("r")),
        (400, "ExpiredRequest".into())
    );
    let url = t.bucket.object_url("k").expect("url");
    let old = SystemTime::now() - HOUR;
    let secret = t.creds.secret().to_string();
    let resp = header_signed(&t, Method::GET, url.clone(), &sha256_hex(b""), old, &secret)
        .send()
        .expect("r");
    assert_eq!(code(resp), (403, "RequestTimeTooSkewed".into()));
    let resp = header_signed(
        &t,
        Method::GET,
        url,
        &sha256_hex(b""),
        SystemTime::now(),
        &secret,
    )
    .send()
    .expect("r");
    assert_eq!(resp.status().as_u16(), 200, "the header form works");

    // A token without any R2 permission.
    let (id, value) = t
        .emu
        .mint_token("none", account_policy(&t.emu, &[ACCOUNT_SETTINGS_READ]));
    let none = Credentials::new(id, s3_secret_access_key(&value));
    let url = t.bucket.get_object(Some(&none), "k").sign(HOUR);
    assert_eq!(
        code(t.req(Method::GET, url).send().expect("r")),
        (403, "AccessDenied".into())
    );

    // Read-only: reads, lists, no writes.
    let (id, value) = t.emu.mint_token("read", account_policy(&t.emu, &[R2_READ]));
    let reader = Credentials::new(id, s3_secret_access_key(&value));
    let url = t.bucket.get_object(Some(&reader), "k").sign(HOUR);
    assert_eq!(t.req(Method::GET, url).send().expect("r").status(), 200);
    let url = t.bucket.put_object(Some(&reader), "k2").sign(HOUR);
    assert_eq!(
        code(t.req(Method::PUT, url).body("x").send().expect("r")),
        (403, "AccessDenied".into())
    );

    // Bucket Item Write on `site` only.
    let acct = t.emu.seed().account_id.clone();
    let (id, value) = t.emu.mint_token(
        "item",
        json!([{
            "effect": "allow",
            "resources": {format!("com.cloudflare.edge.r2.bucket.{acct}_default_site"): "*"},
            "permission_groups": [{"id": ITEM_WRITE}],
        }]),
    );
    let item = Credentials::new(id, s3_secret_access_key(&value));
    let url = t.bucket.put_object(Some(&item), "scoped").sign(HOUR);
    assert_eq!(
        t.req(Method::PUT, url)
            .body("x")
            .send()
            .expect("r")
            .status(),
        200
    );
    let url = t.bucket.get_object(Some(&item), "scoped").sign(HOUR);
    assert_eq!(t.req(Method::GET, url).send().expect("r").status(), 200);
    let other = bucket_of(&t.emu, "other");
    let url = other.put_object(Some(&item), "scoped").sign(HOUR);
    assert_eq!(
        code(t.req(Method::PUT, url).body("x").send().expect("r")),
        (403, "AccessDenied".into())
    );
    // ListBuckets needs the account-level groups.
    let url = Url::parse(&format!("{}/", t.emu.s3_endpoint())).expect("url");
    let resp = header_signed(
        &t,
        Method::GET,
        url,
        "UNSIGNED-PAYLOAD",
        SystemTime::now(),
        &secret,
    )
    .send()
    .expect("r");
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().expect("xml");
    assert!(text.contains("<Name>other</Name>") && text.contains("<Name>site</Name>"));
}

/// `n` hours ago, as the `jiff` time `rusty-s3`'s `sign_with_time` takes.
fn hours_ago(hours: u64) -> jiff::Timestamp {
    let t = SystemTime::now() - Duration::from_secs(hours * 3600);
    jiff::Timestamp::try_from(t).expect("timestamp")
}

/// A token that the REST API would refuse (IP condition, not yet valid, disabled) is refused over
/// S3 with 401 Unauthorized (R2 10002), or 403 AccessDenied for the IP condition, even with a
/// correct signature.
#[test]
fn unusable_tokens_are_access_denied() {
    let t = start();
    t.put("k", b"v");
    let s = t.emu.seed();
    let acct = s.account_id.clone();
    let create = |extra: Value| -> (String, String) {
        let mut body = json!({"name": "limited", "policies": [{
            "effect": "allow",
            "resources": {format!("com.cloudflare.api.account.{acct}"): "*"},
            "permission_groups": [{"id": R2_WRITE}],
        }]});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        let v: Value = t
            .http
            .post(format!("{}/user/tokens", t.emu.base_url()))
            .header("X-Auth-Email", &s.email)
            .header("X-Auth-Key", &s.global_key)
            .json(&body)
            .send()
            .expect("create token")
            .json()
            .expect("json");
        let r = &v["result"];
        (
            r["id"].as_str().expect("id").to_string(),
            r["value"].as_str().expect("value").to_string(),
        )
    };
    let get_with = |(id, value): (String, String)| {
        let creds = Credentials::new(id, s3_secret_access_key(&value));
        let url = t.bucket.get_object(Some(&creds), "k").sign(HOUR);
        code(t.req(Method::GET, url).send().expect("r"))
    };
    let denied = (401, "Unauthorized".to_string());
    let elsewhere = create(json!({"condition": {"request.ip": {"in": ["10.0.0.0/8"]}}}));
    assert_eq!(get_with(elsewhere), (403, "AccessDenied".to_string()));
    let later = create(json!({"not_before": "2099-01-01T00:00:00Z"}));
    assert_eq!(get_with(later), denied);
    let (id, value) = create(json!({}));
    assert_eq!(get_with((id.clone(), value.clone())).0, 200);
    let resp = t
        .http
        .put(format!("{}/user/tokens/{id}", t.emu.base_url()))
        .header("X-Auth-Email", &s.email)
        .header("X-Auth-Key", &s.global_key)
        .json(
            &json!({"name": "limited", "status": "disabled", "policies": [{
                "effect": "allow",
                "resources": {format!("com.cloudflare.api.account.{acct}"): "*"},
                "permission_groups": [{"id": R2_WRITE}],
            }]}),
        )
        .send()
        .expect("disable");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(get_with((id, value)), denied);
}

#[test]
fn payload_hash_content_length_and_streaming_are_checked() {
    let t = start();
    let secret = t.creds.secret().to_string();
    let url = t.bucket.object_url("hashed").expect("url");
    // The right hash is accepted, a wrong one refused (the key is not written).
    let resp = header_signed(
        &t,
        Method::PUT,
        url.clone(),
        &sha256_hex(b"good"),
        SystemTime::now(),
        &secret,
    )
    .body("good")
    .send()
    .expect("r");
    assert_eq!(resp.status().as_u16(), 200);
    let resp = header_signed(
        &t,
        Method::PUT,
        url.clone(),
        &sha256_hex(b"good"),
        SystemTime::now(),
        &secret,
    )
    .body("evil")
    .send()
    .expect("r");
    assert_eq!(code(resp), (400, "XAmzContentSHA256Mismatch".into()));
    assert_eq!(t.emu.objects("site")[0].body, b"good");

    // UNSIGNED-PAYLOAD in the header form is accepted (the body is not checked).
    let resp = header_signed(
        &t,
        Method::PUT,
        url.clone(),
        "UNSIGNED-PAYLOAD",
        SystemTime::now(),
        &secret,
    )
    .body("unsigned")
    .send()
    .expect("r");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(t.emu.objects("site")[0].body, b"unsigned");
    let presigned = t.bucket.put_object(Some(&t.creds), "hashed").sign(HOUR);

    // aws-chunked / streaming payloads: 501, as R2.
    for (name, value) in [
        ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        ("content-encoding", "aws-chunked"),
        ("x-amz-trailer", "x-amz-checksum-crc32"),
    ] {
        let resp = t
            .req(Method::PUT, presigned.clone())
            .header(name, value)
            .body("x")
            .send()
            .expect("r");
        assert_eq!(code(resp), (501, "NotImplemented".into()), "{name}");
    }

    // No Content-Length (chunked transfer encoding): 411.
    let reader = std::io::Cursor::new(b"chunked body".to_vec());
    let resp = t
        .req(Method::PUT, presigned)
        .body(reqwest::blocking::Body::new(reader))
        .send()
        .expect("r");
    assert_eq!(code(resp), (411, "MissingContentLength".into()));

    // A wrong Content-MD5.
    let url = t.bucket.put_object(Some(&t.creds), "md5").sign(HOUR);
    let resp = t
        .req(Method::PUT, url)
        .header("content-md5", "AAAAAAAAAAAAAAAAAAAAAA==")
        .body("x")
        .send()
        .expect("r");
    assert_eq!(code(resp), (400, "BadDigest".into()));
}

#[test]
fn conditional_put_and_a_race_of_if_none_match() {
    let t = start();
    let url = |key: &str, header: Option<(&'static str, String)>| {
        let mut a = t.bucket.put_object(Some(&t.creds), key);
        if let Some((n, v)) = header {
            a.headers_mut().insert(n, v);
        }
        a.sign(HOUR)
    };
    let u = url("lock", Some(("if-none-match", "*".into())));
    let first = t
        .req(Method::PUT, u.clone())
        .header("if-none-match", "*")
        .body("v1")
        .send()
        .expect("r");
    assert_eq!(first.status().as_u16(), 200);
    let etag = first.headers()["etag"].to_str().expect("etag").to_string();
    let again = t
        .req(Method::PUT, u)
        .header("if-none-match", "*")
        .body("v2")
        .send()
        .expect("r");
    assert_eq!(code(again), (412, "PreconditionFailed".into()));

    let u = url("lock", Some(("if-match", etag.clone())));
    let swap = t
        .req(Method::PUT, u.clone())
        .header("if-match", &etag)
        .body("v2")
        .send()
        .expect("r");
    assert_eq!(swap.status().as_u16(), 200);
    let stale = t
        .req(Method::PUT, u)
        .header("if-match", &etag)
        .body("v3")
        .send()
        .expect("r");
    assert_eq!(code(stale), (412, "PreconditionFailed".into()));
    let u = url("missing", Some(("if-match", etag.clone())));
    let missing = t
        .req(Method::PUT, u)
        .header("if-match", &etag)
        .body("v")
        .send()
        .expect("r");
    assert_eq!(code(missing), (412, "PreconditionFailed".into()));
    assert_eq!(t.get("lock").bytes().expect("b").as_ref(), b"v2");

    // Date conditions: the object was written just now.
    let long_ago = "Mon, 01 Jan 2001 00:00:00 GMT";
    let far_ahead = "Fri, 01 Jan 2100 00:00:00 GMT";
    for (name, date, status) in [
        ("if-unmodified-since", long_ago, 412),
        ("if-modified-since", far_ahead, 412),
        ("if-unmodified-since", far_ahead, 200),
        ("if-modified-since", long_ago, 200),
    ] {
        let u = url("lock", Some((name, date.into())));
        let resp = t
            .req(Method::PUT, u)
            .header(name, date)
            .body("v4")
            .send()
            .expect("r");
        assert_eq!(resp.status().as_u16(), status, "{name}: {date}");
    }
    let get = t.bucket.get_object(Some(&t.creds), "lock").sign(HOUR);
    let resp = t
        .req(Method::GET, get.clone())
        .header("if-modified-since", far_ahead)
        .send()
        .expect("r");
    assert_eq!(resp.status().as_u16(), 304);
    let resp = t
        .req(Method::GET, get)
        .header("if-unmodified-since", long_ago)
        .send()
        .expect("r");
    assert_eq!(code(resp), (412, "PreconditionFailed".into()));

    // Racing writers of one new key: exactly one wins.
    for round in 0..5 {
        let key = format!("race-{round}");
        let u = url(&key, Some(("if-none-match", "*".into())));
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (u, http) = (u.clone(), t.http.clone());
                    s.spawn(move || {
                        http.put(u)
                            .header("if-none-match", "*")
                            .body(format!("writer {i}"))
                            .send()
                            .expect("r")
                            .status()
                            .as_u16()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 412).count(),
            7,
            "{statuses:?}"
        );
    }
}

#[test]
fn list_with_continuation_over_thousands_of_keys() {
    let t = start();
    let mut keys: Vec<String> = (0..2500).map(|i| format!("k/{i:05}")).collect();
    for k in &keys {
        assert_eq!(t.put(k, b"x").status().as_u16(), 200);
    }
    t.put("k/sub/a", b"y");
    t.put("k/sub/b", b"y");
    t.put("other", b"z");

    let list = |prefix: &str, delimiter: Option<&str>, token: Option<&str>, max: usize| {
        let mut a = t.bucket.list_objects_v2(Some(&t.creds));
        a.with_prefix(prefix.to_string());
        if let Some(d) = delimiter {
            a.with_delimiter(d.to_string());
        }
        if let Some(tok) = token {
            a.with_continuation_token(tok.to_string());
        }
        a.with_max_keys(max);
        let url = a.sign(HOUR);
        let resp = t.req(Method::GET, url).send().expect("list");
        assert_eq!(resp.status().as_u16(), 200);
        let text = resp.text().expect("xml");
        rusty_s3::actions::ListObjectsV2::parse_response(&text).expect("parses")
    };
    let mut seen = Vec::new();
    let mut prefixes = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = list("k/", Some("/"), token.as_deref(), 1000);
        pages += 1;
        assert!(page.contents.len() + page.common_prefixes.len() <= 1000);
        seen.extend(page.contents.iter().map(|c| c.key.clone()));
        prefixes.extend(page.common_prefixes.iter().map(|p| p.prefix.clone()));
        match page.next_continuation_token {
            Some(n) => token = Some(n),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    keys.sort();
    assert_eq!(seen, keys);
    assert_eq!(prefixes, ["k/sub/"]);

    // The REST listing pages through the same keys (cursor paging, docs/cloudflare-api.md §7).
    let s = t.emu.seed();
    let mut rest_keys = Vec::new();
    let mut delimited = Vec::new();
    let mut cursor = String::new();
    loop {
        let v: Value = t
            .http
            .get(format!(
                "{}/accounts/{}/r2/buckets/site/objects?prefix=k/&delimiter=/&cursor={cursor}",
                t.emu.base_url(),
                s.account_id
            ))
            .header("X-Auth-Email", &s.email)
            .header("X-Auth-Key", &s.global_key)
            .send()
            .expect("rest list")
            .json()
            .expect("json");
        for item in v["result"].as_array().expect("array") {
            rest_keys.push(item["key"].as_str().expect("key").to_string());
        }
        for p in v["result_info"]["delimited"].as_array().expect("delimited") {
            delimited.push(p.as_str().expect("prefix").to_string());
        }
        match v["result_info"]["cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(rest_keys, keys);
    assert_eq!(delimited, ["k/sub/"]);

    // max-keys above 1000 is capped.
    let page = list("k/", Some("/"), None, 2500);
    assert_eq!(page.contents.len(), 1000, "max-keys is capped at 1000");
    let all = list("", None, None, 1000);
    assert_eq!(all.contents[0].key, "k/00000");
    assert_eq!(all.contents[0].etag, format!("\"{}\"", md5_hex(b"x")));
    assert_eq!(all.contents[0].size, 1);
    let tail = list("k/sub/", None, None, 1);
    let tail2 = list("k/sub/", None, tail.next_continuation_token.as_deref(), 1);
    assert_eq!(tail.contents[0].key, "k/sub/a");
    assert_eq!(tail2.contents[0].key, "k/sub/b");
    assert!(tail2.next_continuation_token.is_none());
}

/// 50,000 keys loaded from a state file: 50 pages follow each other in well under a second
/// each, because a continuation token starts a `BTreeMap` range instead of a scan.
#[test]
fn continuation_is_efficient_on_a_large_bucket() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("state.json");
    let mut objects = serde_json::Map::new();
    for i in 0..50_000 {
        objects.insert(
            format!("blobs/{i:06}"),
            json!({"body": "78", "content_type": null, "cache_control": null,
                   "etag": md5_hex(b"x"), "uploaded": "2026-12-01T00:00:00Z", "version": "v"}),
        );
    }
    let state = json!({"buckets": [{"name": "big", "jurisdiction": "default", "location": "enam",
        "storage_class": "Standard", "creation_date": "2026-12-01T00:00:00Z", "objects": objects}]});
    std::fs::write(&path, serde_json::to_vec(&state).expect("json")).expect("write");
    let mut options = Options::new();
    options.state_file = Some(path);
    let t = start_with(options);
    let big = bucket_of(&t.emu, "big");
    let mut token: Option<String> = None;
    let mut count = 0;
    let mut slowest = Duration::ZERO;
    loop {
        let mut a = big.list_objects_v2(Some(&t.creds));
        if let Some(tok) = &token {
            a.with_continuation_token(tok.clone());
        }
        let url = a.sign(HOUR);
        let began = Instant::now();
        let text = t
            .req(Method::GET, url)
            .send()
            .expect("list")
            .text()
            .expect("xml");
        slowest = slowest.max(began.elapsed());
        let page = rusty_s3::actions::ListObjectsV2::parse_response(&text).expect("parses");
        count += page.contents.len();
        match page.next_continuation_token {
            Some(n) => token = Some(n),
            None => break,
        }
    }
    assert_eq!(count, 50_000);
    assert!(slowest < Duration::from_secs(2), "slowest page {slowest:?}");
}

fn create_upload(t: &T, key: &str) -> String {
    create_upload_in(t, &t.bucket, key)
}

fn create_upload_in(t: &T, bucket: &Bucket, key: &str) -> String {
    let mut url = bucket.object_url(key).expect("url");
    url.set_query(Some("uploads"));
    let text = t
        .signed(Method::POST, url, b"")
        .send()
        .expect("create")
        .text()
        .expect("xml");
    rusty_s3::actions::CreateMultipartUpload::parse_response(&text)
        .expect("parses")
        .upload_id()
        .to_string()
}

fn upload_part(t: &T, key: &str, id: &str, n: u16, data: &[u8]) -> Response {
    let url = t.bucket.upload_part(Some(&t.creds), key, n, id).sign(HOUR);
    t.req(Method::PUT, url)
        .body(data.to_vec())
        .send()
        .expect("part")
}

fn complete(t: &T, key: &str, id: &str, etags: &[String]) -> Response {
    let action = t.bucket.complete_multipart_upload(
        Some(&t.creds),
        key,
        id,
        etags.iter().map(String::as_str),
    );
    let body = action.body();
    t.signed(Method::POST, upload_url(t, key, id), body.as_bytes())
        .send()
        .expect("complete")
}

/// `/{bucket}/{key}?uploadId={id}`, unsigned (to be header-signed).
fn upload_url(t: &T, key: &str, id: &str) -> Url {
    let mut url = t.bucket.object_url(key).expect("url");
    url.query_pairs_mut().append_pair("uploadId", id);
    url
}

fn etag_of(resp: Response) -> String {
    assert_eq!(resp.status().as_u16(), 200);
    resp.headers()["etag"].to_str().expect("etag").to_string()
}

#[test]
fn multipart_rules_success_and_abort() {
    let t = start();
    let big: Vec<u8> = (0..5 * MIB + 1).map(|i| (i % 251) as u8).collect();

    // Success: 5 MiB + 1 byte.
    let id = create_upload(&t, "big.bin");
    let e1 = etag_of(upload_part(&t, "big.bin", &id, 1, &big[..5 * MIB]));
    let e2 = etag_of(upload_part(&t, "big.bin", &id, 2, &big[5 * MIB..]));
    assert_eq!(t.emu.pending_uploads()[0].parts, [1, 2]);
    let resp = complete(&t, "big.bin", &id, &[e1.clone(), e2.clone()]);
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().expect("xml");
    let mut md5s = Vec::new();
    for part in [&big[..5 * MIB], &big[5 * MIB..]] {
        use md5::Digest as _;
        md5s.extend_from_slice(&md5::Md5::digest(part));
    }
    let want = format!("{}-2", md5_hex(&md5s));
    assert!(
        text.contains(&format!("<ETag>&quot;{want}&quot;</ETag>")),
        "{text}"
    );
    assert_eq!(t.get("big.bin").bytes().expect("body").as_ref(), &big[..]);
    assert_eq!(t.emu.objects("site")[0].etag, want);
    assert!(t.emu.pending_uploads().is_empty());
    // Completing again: the upload is gone.
    assert_eq!(
        code(complete(&t, "big.bin", &id, &[e1, e2])),
        (404, "NoSuchUpload".into())
    );

    // EntityTooSmall: a non-final part under 5 MiB.
    let id = create_upload(&t, "small.bin");
    let a = etag_of(upload_part(&t, "small.bin", &id, 1, b"aaaa"));
    let b = etag_of(upload_part(&t, "small.bin", &id, 2, b"bb"));
    assert_eq!(
        code(complete(&t, "small.bin", &id, &[a.clone(), b.clone()])),
        (400, "EntityTooSmall".into())
    );
    // A single small part is fine (it is the last one).
    assert_eq!(complete(&t, "small.bin", &id, &[a]).status().as_u16(), 200);

    // InvalidPart: non-final parts of different sizes, and a wrong ETag.
    let id = create_upload(&t, "uneven.bin");
    let p1 = etag_of(upload_part(&t, "uneven.bin", &id, 1, &big[..5 * MIB]));
    let p2 = etag_of(upload_part(&t, "uneven.bin", &id, 2, &big));
    let p3 = etag_of(upload_part(&t, "uneven.bin", &id, 3, b"tail"));
    assert_eq!(
        code(complete(
            &t,
            "uneven.bin",
            &id,
            &[p1.clone(), p2, p3.clone()]
        )),
        (400, "InvalidPart".into())
    );
    assert_eq!(
        code(complete(&t, "uneven.bin", &id, &[p1, "\"0000\"".into()])),
        (400, "InvalidPart".into())
    );
    // InvalidPartOrder (hand-written body: rusty-s3 numbers parts itself).
    let url = upload_url(&t, "uneven.bin", &id);
    let body = format!(
        "<CompleteMultipartUpload><Part><PartNumber>3</PartNumber><ETag>{p3}</ETag></Part><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>"
    );
    assert_eq!(
        code(
            t.signed(Method::POST, url, body.as_bytes())
                .send()
                .expect("r")
        ),
        (400, "InvalidPartOrder".into())
    );
    // Part numbers are 1..=10000.
    assert_eq!(
        code(upload_part(&t, "uneven.bin", &id, 10_001, b"x")),
        (400, "InvalidArgument".into())
    );
    // Abort: the upload and its parts are gone.
    let url = t
        .bucket
        .abort_multipart_upload(Some(&t.creds), "uneven.bin", &id)
        .sign(HOUR);
    assert_eq!(t.req(Method::DELETE, url).send().expect("r").status(), 204);
    assert!(t.emu.pending_uploads().is_empty());
    assert_eq!(
        code(upload_part(&t, "uneven.bin", &id, 4, b"x")),
        (404, "NoSuchUpload".into())
    );
    assert_eq!(
        code(upload_part(&t, "uneven.bin", "no-such-upload", 1, b"x")),
        (404, "NoSuchUpload".into())
    );
}

#[test]
fn rest_and_s3_share_one_bucket_and_the_state_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("state.json");
    let mut options = Options::new();
    options.state_file = Some(path.clone());
    let t = start_with(options.clone());
    assert_eq!(t.rest_put("from-rest.txt", b"hello rest"), 200);
    let resp = t.get("from-rest.txt");
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert_eq!(
        resp.headers()["etag"],
        format!("\"{}\"", md5_hex(b"hello rest")).as_str()
    );
    assert_eq!(resp.bytes().expect("b").as_ref(), b"hello rest");

    let url = t
        .bucket
        .put_object(Some(&t.creds), "from-s3.html")
        .sign(HOUR);
    let resp = t
        .req(Method::PUT, url)
        .header("content-type", "text/html")
        .header("cache-control", "max-age=60")
        .body("<p>s3</p>")
        .send()
        .expect("r");
    assert_eq!(resp.status().as_u16(), 200);
    let s = t.emu.seed();
    let rest = t
        .http
        .get(format!(
            "{}/accounts/{}/r2/buckets/site/objects/from-s3.html",
            t.emu.base_url(),
            s.account_id
        ))
        .header("X-Auth-Email", &s.email)
        .header("X-Auth-Key", &s.global_key)
        .send()
        .expect("rest get");
    assert_eq!(rest.status().as_u16(), 200);
    assert_eq!(rest.headers()["cache-control"], "max-age=60");
    assert_eq!(rest.bytes().expect("b").as_ref(), b"<p>s3</p>");

    // The REST bucket delete refuses while a multipart upload is in progress.
    t.create_bucket("empty");
    let empty = bucket_of(&t.emu, "empty");
    create_upload_in(&t, &empty, "pending");
    let delete = || {
        t.http
            .delete(format!(
                "{}/accounts/{}/r2/buckets/empty",
                t.emu.base_url(),
                s.account_id
            ))
            .header("X-Auth-Email", &s.email)
            .header("X-Auth-Key", &s.global_key)
            .send()
            .expect("rest delete")
            .status()
            .as_u16()
    };
    assert_eq!(delete(), 409);
    let id = t.emu.pending_uploads()[0].upload_id.clone();
    let url = empty
        .abort_multipart_upload(Some(&t.creds), "pending", &id)
        .sign(HOUR);
    assert_eq!(t.req(Method::DELETE, url).send().expect("r").status(), 204);
    assert_eq!(delete(), 200);
    let id = create_upload(&t, "pending");
    assert!(!id.is_empty());

    // A restart with the same state file keeps what both APIs wrote; the upload is forgotten.
    let creds = (t.creds.key().to_string(), t.creds.secret().to_string());
    drop(t);
    let emu = Emulator::start(options).expect("restart");
    let keys: Vec<String> = emu.objects("site").into_iter().map(|o| o.key).collect();
    assert_eq!(keys, ["from-rest.txt", "from-s3.html"]);
    assert!(emu.pending_uploads().is_empty());
    let creds = Credentials::new(creds.0, creds.1);
    let url = bucket_of(&emu, "site")
        .get_object(Some(&creds), "from-s3.html")
        .sign(HOUR);
    let resp = Client::new().get(url).send().expect("r");
    assert_eq!(resp.status().as_u16(), 200, "the token survives too");
}

#[test]
fn injected_faults_on_s3_and_the_request_log() {
    let t = start();
    t.emu.inject_for(
        Api::S3,
        Fault {
            method: Some("PUT".into()),
            path_contains: Some("/site/".into()),
            kind: FaultKind::RateLimit {
                retry_after_secs: 3,
            },
            times: 1,
        },
    );
    let resp = t.put("a", b"1");
    assert_eq!(resp.headers()["retry-after"], "3");
    assert_eq!(code(resp), (429, "TooManyRequests".into()));
    t.emu.inject_for(
        Api::S3,
        Fault {
            method: None,
            path_contains: None,
            kind: FaultKind::ServerError { status: 503 },
            times: 1,
        },
    );
    // R2 10043 ServiceUnavailable (r2/api/error-codes.mdx).
    assert_eq!(code(t.put("a", b"1")), (503, "ServiceUnavailable".into()));
    t.emu.inject(Fault {
        method: None,
        path_contains: Some("/site/a".into()),
        kind: FaultKind::ServerError { status: 500 },
        times: 1,
    });
    assert_eq!(code(t.get("a")), (500, "InternalError".into()));
    t.emu.inject(Fault {
        method: None,
        path_contains: None,
        kind: FaultKind::Drop,
        times: 1,
    });
    let url = t.bucket.get_object(Some(&t.creds), "a").sign(HOUR);
    assert!(t.req(Method::GET, url).send().is_err(), "dropped");
    // A REST-only fault leaves S3 alone.
    t.emu.inject_for(
        Api::Rest,
        Fault {
            method: None,
            path_contains: None,
            kind: FaultKind::ServerError { status: 503 },
            times: 1,
        },
    );
    assert_eq!(t.put("a", b"1").status().as_u16(), 200);
    assert_eq!(t.rest_put("b", b"2"), 503);
    t.emu.inject_for(
        Api::S3,
        Fault {
            method: None,
            path_contains: None,
            kind: FaultKind::Latency(Duration::from_millis(300)),
            times: 1,
        },
    );
    let began = Instant::now();
    assert_eq!(t.get("a").status().as_u16(), 200);
    assert!(began.elapsed() >= Duration::from_millis(300));

    let log = t.emu.requests();
    let s3: Vec<_> = log.iter().filter(|r| r.api == Api::S3).collect();
    assert!(s3.iter().all(|r| r.auth == "presigned"));
    assert!(s3.iter().all(|r| r
        .query
        .as_deref()
        .is_some_and(|q| q.contains("X-Amz-Signature=REDACTED"))));
    assert!(s3
        .iter()
        .any(|r| r.method == "PUT" && r.path == "/site/a" && r.status == 429));
    assert!(s3.iter().any(|r| r.status == 0), "the dropped one");
    assert!(log
        .iter()
        .any(|r| r.api == Api::Rest && r.method == "PUT" && r.status == 503));
    // Over HTTP: the inspection endpoint shows the API, and faults can be aimed with "api".
    let http = &t.http;
    let origin = t.emu.s3_endpoint();
    let v: Value = http
        .get(format!("{origin}/__emulator/requests"))
        .send()
        .expect("r")
        .json()
        .expect("json");
    assert!(v["result"]
        .as_array()
        .expect("array")
        .iter()
        .any(|r| r["api"] == "s3"));
    let resp = http
        .post(format!("{origin}/__emulator/faults"))
        .json(&json!({"api": "s3", "kind": "server_error", "status": 503}))
        .send()
        .expect("r");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(t.rest_put("b", b"2"), 200);
    assert_eq!(code(t.put("a", b"1")), (503, "ServiceUnavailable".into()));
}

#[test]
fn write_limit_per_key_is_optional() {
    let mut options = Options::new();
    options.s3_write_limit_per_key = true;
    let t = start_with(options);
    assert_eq!(t.put("k", b"1").status().as_u16(), 200);
    let resp = t.put("k", b"2");
    assert_eq!(code(resp), (429, "TooManyRequests".into()));
    assert_eq!(t.put("other", b"2").status().as_u16(), 200);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(t.put("k", b"3").status().as_u16(), 200);
    // Off by default.
    let t = start();
    assert_eq!(t.put("k", b"1").status().as_u16(), 200);
    assert_eq!(t.put("k", b"2").status().as_u16(), 200);
}

#[test]
fn delete_objects_and_bucket_level_calls() {
    let t = start();
    for k in ["a", "b", "c"] {
        t.put(k, b"x");
    }
    let objects = [
        rusty_s3::actions::ObjectIdentifier::new("a".into()),
        rusty_s3::actions::ObjectIdentifier::new("c".into()),
        rusty_s3::actions::ObjectIdentifier::new("zzz".into()),
    ];
    let action = t.bucket.delete_objects(Some(&t.creds), objects.iter());
    let (body, md5) = action.body_with_md5();
    let mut url = t.bucket.base_url().clone();
    url.set_query(Some("delete"));
    let resp = t
        .signed(Method::POST, url, body.as_bytes())
        .header("content-md5", md5)
        .send()
        .expect("r");
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().expect("xml");
    assert!(text.contains("<Deleted><Key>a</Key></Deleted>"), "{text}");
    assert!(text.contains("<Deleted><Key>zzz</Key></Deleted>"), "{text}");
    let keys: Vec<String> = t.emu.objects("site").into_iter().map(|o| o.key).collect();
    assert_eq!(keys, ["b"]);

    let url = t.bucket.head_bucket(Some(&t.creds)).sign(HOUR);
    assert_eq!(t.req(Method::HEAD, url).send().expect("r").status(), 200);
    let nope = bucket_of(&t.emu, "nope");
    let url = nope.head_bucket(Some(&t.creds)).sign(HOUR);
    let resp = t.req(Method::HEAD, url).send().expect("r");
    assert_eq!(resp.status().as_u16(), 404);
    assert!(resp.bytes().expect("b").is_empty());
}

/// A single S3 PUT may be larger than the REST API's 300 MiB (R2 allows 5 GiB per PUT,
/// docs/cloudflare-api.md §7 "Limits"); the REST path keeps its limit and its 413 / 10011.
#[test]
fn s3_takes_bodies_over_the_rest_limit() {
    let t = start();
    let big = vec![7u8; 300 * MIB + 1];
    let s = t.emu.seed();
    let resp = t
        .http
        .put(format!(
            "{}/accounts/{}/r2/buckets/site/objects/too-big",
            t.emu.base_url(),
            s.account_id
        ))
        .header("X-Auth-Email", &s.email)
        .header("X-Auth-Key", &s.global_key)
        .body(big.clone())
        .send()
        .expect("rest put");
    assert_eq!(resp.status().as_u16(), 413);
    let v: Value = resp.json().expect("json");
    assert_eq!(v["errors"][0]["code"], 10011);

    assert_eq!(t.put("big", &big).status().as_u16(), 200);
    let url = t.bucket.get_object(Some(&t.creds), "big").sign(HOUR);
    let resp = t
        .req(Method::GET, url)
        .header("range", "bytes=-2")
        .send()
        .expect("range");
    assert_eq!(resp.status().as_u16(), 206);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes {}-{}/{}", 300 * MIB - 1, 300 * MIB, 300 * MIB + 1).as_str()
    );
    assert_eq!(t.emu.objects("site")[0].body.len(), 300 * MIB + 1);
}

/// The canonical URI is URI-encode(percent-decode(path)) (AWS SigV4 CanonicalURI): a correct
/// signer is accepted whatever it puts on the wire, and one that signs the raw wire form of a
/// key with sub-delimiters is refused, as R2 refused a raw `!` (openclaw/clawhub PR #2723).
#[test]
fn sigv4_canonical_uri_is_re_encoded_from_the_decoded_path() {
    let t = start();
    let secret = t.creds.secret().to_string();
    let key = "odd/a!'()*+=@:.txt";
    // Raw on the wire (the url crate leaves these characters as they are in a path).
    let raw_url = Url::parse(&format!("{}/site/{key}", t.emu.s3_endpoint())).expect("url");
    assert!(raw_url.path().contains("!'()*+=@:"), "{}", raw_url.path());
    let body = b"sub-delims";
    let resp = header_signed(
        &t,
        Method::PUT,
        raw_url.clone(),
        &sha256_hex(body),
        SystemTime::now(),
        &secret,
    )
    .body(body.to_vec())
    .send()
    .expect("put");
    assert_eq!(resp.status().as_u16(), 200, "a correct signer passes");
    assert!(t.emu.objects("site").iter().any(|o| o.key == key));
    // Fully percent-encoded on the wire: the same canonical URI, the same object.
    let encoded = Url::parse(&format!(
        "{}/site/odd/a%21%27%28%29%2A%2B%3D%40%3A.txt",
        t.emu.s3_endpoint()
    ))
    .expect("url");
    let resp = header_signed(
        &t,
        Method::GET,
        encoded,
        &sha256_hex(b""),
        SystemTime::now(),
        &secret,
    )
    .send()
    .expect("get");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.bytes().expect("b").as_ref(), body);
    // Signed over the raw path as sent: refused.
    let resp = header_signed_over(
        &t,
        Method::GET,
        raw_url.clone(),
        &sha256_hex(b""),
        SystemTime::now(),
        &secret,
        raw_url.path(),
    )
    .send()
    .expect("get");
    assert_eq!(code(resp), (403, "SignatureDoesNotMatch".into()));
}

#[test]
fn signature_case_and_two_auth_forms() {
    let t = start();
    t.put("k", b"v");
    let secret = t.creds.secret().to_string();
    let url = t.bucket.object_url("k").expect("url");
    let req = header_signed(
        &t,
        Method::GET,
        url.clone(),
        &sha256_hex(b""),
        SystemTime::now(),
        &secret,
    )
    .build()
    .expect("req");
    let auth = req.headers()["authorization"]
        .to_str()
        .expect("a")
        .to_string();
    let (head, sig) = auth.rsplit_once("Signature=").expect("sig");
    let upper = format!("{head}Signature={}", sig.to_ascii_uppercase());
    let mut req = req.try_clone().expect("clone");
    req.headers_mut()
        .insert("authorization", upper.parse().expect("hv"));
    let resp = t.http.execute(req).expect("r");
    assert_eq!(code(resp), (403, "SignatureDoesNotMatch".into()));
    // A header signature and a presigned query at once: 400 InvalidArgument.
    let presigned = t.bucket.get_object(Some(&t.creds), "k").sign(HOUR);
    let resp = t
        .req(Method::GET, presigned)
        .header("authorization", auth)
        .send()
        .expect("r");
    assert_eq!(code(resp), (400, "InvalidArgument".into()));
}

/// s3-tests `test_bucket_list_delimiter_prefix` (V1 marker equal to a common prefix) and
/// `test_bucket_list[v2]_maxkeys_zero`.
#[test]
fn list_marker_on_a_common_prefix_and_max_keys_zero() {
    let t = start();
    for k in [
        "asdf",
        "boo/bar",
        "boo/baz/xyzzy",
        "cquux/thud",
        "cquux/bla",
    ] {
        assert_eq!(t.put(k, b"x").status().as_u16(), 200);
    }
    let secret = t.creds.secret().to_string();
    let list = |query: &str| -> String {
        let mut url = Url::parse(&format!("{}/site", t.emu.s3_endpoint())).expect("url");
        url.set_query(Some(query));
        let resp = header_signed(
            &t,
            Method::GET,
            url,
            &sha256_hex(b""),
            SystemTime::now(),
            &secret,
        )
        .send()
        .expect("list");
        assert_eq!(resp.status().as_u16(), 200);
        resp.text().expect("xml")
    };
    let between = |text: &str, tag: &str| -> Vec<String> {
        text.split(&format!("<{tag}>"))
            .skip(1)
            .map(|s| {
                s.split(&format!("</{tag}>"))
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    let page = |query: &str| {
        let text = list(query);
        let keys: Vec<String> = between(&text, "Contents")
            .iter()
            .flat_map(|c| between(c, "Key"))
            .collect();
        let prefixes: Vec<String> = between(&text, "CommonPrefixes")
            .iter()
            .flat_map(|c| between(c, "Prefix"))
            .collect();
        let truncated = between(&text, "IsTruncated") == ["true"];
        let next = between(&text, "NextMarker").into_iter().next();
        (keys, prefixes, truncated, next)
    };
    let p1 = page("delimiter=%2F&max-keys=1");
    assert_eq!(p1, (vec!["asdf".into()], vec![], true, Some("asdf".into())));
    let p2 = page("delimiter=%2F&max-keys=1&marker=asdf");
    assert_eq!(p2, (vec![], vec!["boo/".into()], true, Some("boo/".into())));
    let p3 = page("delimiter=%2F&max-keys=1&marker=boo%2F");
    assert_eq!(p3, (vec![], vec!["cquux/".into()], false, None));
    // V2 start-after equal to a prefix resumes after it too.
    let text = list("list-type=2&delimiter=%2F&start-after=boo%2F");
    assert_eq!(
        between(&text, "Prefix").last().map(String::as_str),
        Some("cquux/")
    );
    assert!(!text.contains("<Prefix>boo/</Prefix>"), "{text}");
    // max-keys=0: nothing, not truncated, no token.
    for q in ["max-keys=0", "list-type=2&max-keys=0"] {
        let text = list(q);
        assert!(
            text.contains("<IsTruncated>false</IsTruncated>"),
            "{q}: {text}"
        );
        assert!(!text.contains("<Contents>") && !text.contains("NextContinuationToken"));
    }
}

#[test]
fn head_ignores_range_and_system_metadata_is_kept() {
    let t = start();
    let url = t.bucket.put_object(Some(&t.creds), "a.css").sign(HOUR);
    let resp = t
        .req(Method::PUT, url)
        .header("content-type", "text/css")
        .header("content-encoding", "br")
        .header("content-disposition", "inline")
        .header("content-language", "de")
        .header("expires", "Wed, 21 Oct 2037 07:28:00 GMT")
        .body("0123456789")
        .send()
        .expect("put");
    assert_eq!(resp.status().as_u16(), 200);
    // HEAD with Range: R2 ignores the range (r2/api/s3/api.mdx HeadObject).
    let url = t.bucket.head_object(Some(&t.creds), "a.css").sign(HOUR);
    let resp = t
        .req(Method::HEAD, url)
        .header("range", "bytes=0-3")
        .send()
        .expect("head");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-length"], "10");
    assert!(resp.headers().get("content-range").is_none());
    // GET with Range still answers 206.
    let url = t.bucket.get_object(Some(&t.creds), "a.css").sign(HOUR);
    let resp = t
        .req(Method::GET, url)
        .header("range", "bytes=0-3")
        .send()
        .expect("get");
    assert_eq!(resp.status().as_u16(), 206);
    for (name, value) in [
        ("content-encoding", "br"),
        ("content-disposition", "inline"),
        ("content-language", "de"),
        ("expires", "Wed, 21 Oct 2037 07:28:00 GMT"),
    ] {
        assert_eq!(resp.headers()[name], value, "{name}");
    }
    // The REST API sees the same metadata.
    let s = t.emu.seed();
    let rest = t
        .http
        .get(format!(
            "{}/accounts/{}/r2/buckets/site/objects/a.css",
            t.emu.base_url(),
            s.account_id
        ))
        .header("X-Auth-Email", &s.email)
        .header("X-Auth-Key", &s.global_key)
        .send()
        .expect("rest get");
    assert_eq!(rest.headers()["content-encoding"], "br");
}

#[test]
fn a_last_part_larger_than_the_others_is_invalid() {
    let t = start();
    let data: Vec<u8> = (0..10 * MIB + 2).map(|i| (i % 251) as u8).collect();
    let id = create_upload(&t, "grow.bin");
    let a = etag_of(upload_part(&t, "grow.bin", &id, 1, &data[..5 * MIB]));
    let b = etag_of(upload_part(&t, "grow.bin", &id, 2, &data[5 * MIB..]));
    assert_eq!(
        code(complete(&t, "grow.bin", &id, &[a, b])),
        (400, "InvalidPart".into())
    );
}

/// R2 `presigned-urls.mdx`: presigned POST "is not currently supported". By default (both
/// `Options::default()` and `Options::new()`) rusty-s3's presigned CreateMultipartUpload,
/// CompleteMultipartUpload and DeleteObjects get 403 SignatureDoesNotMatch; the status is a knob;
/// the same calls signed in the Authorization header work.
#[test]
fn presigned_post_is_refused_by_default_and_the_status_is_a_knob() {
    assert_eq!(
        Options::default().s3_presigned_post,
        PresignedPost::Refuse403SignatureDoesNotMatch
    );
    let presigned_posts = |t: &T| -> Vec<(u16, String)> {
        let create = t
            .bucket
            .create_multipart_upload(Some(&t.creds), "m.bin")
            .sign(HOUR);
        let complete = t.bucket.complete_multipart_upload(
            Some(&t.creds),
            "m.bin",
            "some-upload",
            ["\"etag\""].into_iter(),
        );
        let objects = [rusty_s3::actions::ObjectIdentifier::new("k".into())];
        let delete = t.bucket.delete_objects(Some(&t.creds), objects.iter());
        vec![
            code(t.req(Method::POST, create).send().expect("r")),
            code(
                t.req(Method::POST, complete.sign(HOUR))
                    .body(complete.body())
                    .send()
                    .expect("r"),
            ),
            code(
                t.req(Method::POST, delete.sign(HOUR))
                    .body(delete.body_with_md5().0)
                    .send()
                    .expect("r"),
            ),
        ]
    };
    for (answer, want) in [
        (
            PresignedPost::Refuse403SignatureDoesNotMatch,
            (403, "SignatureDoesNotMatch"),
        ),
        (PresignedPost::Refuse403AccessDenied, (403, "AccessDenied")),
        (PresignedPost::Refuse401, (401, "Unauthorized")),
        (PresignedPost::Refuse501, (501, "NotImplemented")),
    ] {
        let t = start_with(Options::new().with_s3_presigned_post(answer));
        t.put("k", b"v");
        for got in presigned_posts(&t) {
            assert_eq!(got, (want.0, want.1.to_string()), "{answer:?}");
        }
        assert!(t.emu.pending_uploads().is_empty(), "{answer:?}");
        assert_eq!(
            t.emu.objects("site").len(),
            1,
            "{answer:?}: nothing deleted"
        );
    }
    // Accept: the old behaviour, for a client that presigns everything.
    let t = start_with(Options::new().with_s3_presigned_post(PresignedPost::Accept));
    t.put("k", b"v");
    let got = presigned_posts(&t);
    assert_eq!(got[0].0, 200);
    assert_eq!(got[1], (404, "NoSuchUpload".into()));
    assert_eq!(got[2].0, 200);
    assert_eq!(t.emu.pending_uploads().len(), 1);
    assert!(t.emu.objects("site").is_empty());
    // The flag values round-trip.
    for p in PresignedPost::ALL {
        assert_eq!(p.as_str().parse::<PresignedPost>(), Ok(p));
    }
    assert!("refuse-999".parse::<PresignedPost>().is_err());

    let t = start();
    let mut url = t.bucket.object_url("m.bin").expect("url");
    url.set_query(Some("uploads"));
    let resp = header_signed(
        &t,
        Method::POST,
        url,
        &sha256_hex(b""),
        SystemTime::now(),
        t.creds.secret(),
    )
    .send()
    .expect("r");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(t.emu.pending_uploads().len(), 1);
    // Presigned GET / PUT / DELETE still work.
    assert_eq!(t.put("k", b"v").status().as_u16(), 200);
    assert_eq!(t.get("k").status().as_u16(), 200);
}

/// docs/cloudflare-api.md §7: unconfirmed whether R2 derives S3 keys from prefixed tokens. With the
/// switch on they are refused and a legacy 40-character token still works.
#[test]
fn prefixed_token_keys_can_be_refused() {
    let mut options = Options::new();
    options.s3_refuses_prefixed_tokens = true;
    let t = start_with(options);
    assert_eq!(
        code(t.put("k", b"v")),
        (403, "SignatureDoesNotMatch".into())
    );
    let (id, value) = t
        .emu
        .mint_legacy_token("legacy", account_policy(&t.emu, &[R2_WRITE]));
    assert_eq!(value.len(), 40);
    assert!(value.bytes().all(|b| b.is_ascii_alphanumeric()));
    let legacy = Credentials::new(id, s3_secret_access_key(&value));
    let url = t.bucket.put_object(Some(&legacy), "k").sign(HOUR);
    assert_eq!(
        t.req(Method::PUT, url)
            .body("v")
            .send()
            .expect("put")
            .status()
            .as_u16(),
        200
    );
}

/// The S3 API reads no jurisdiction header: an eu bucket is found by its name alone.
#[test]
fn an_eu_bucket_is_found_by_name() {
    let t = start();
    let s = t.emu.seed();
    let resp = t
        .http
        .post(format!(
            "{}/accounts/{}/r2/buckets",
            t.emu.base_url(),
            s.account_id
        ))
        .header("X-Auth-Email", &s.email)
        .header("X-Auth-Key", &s.global_key)
        .header("cf-r2-jurisdiction", "eu")
        .json(&json!({"name": "eu-only"}))
        .send()
        .expect("create");
    assert_eq!(resp.status().as_u16(), 200);
    let eu = bucket_of(&t.emu, "eu-only");
    let url = eu.put_object(Some(&t.creds), "k").sign(HOUR);
    let resp = t.req(Method::PUT, url).body("v").send().expect("put");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(t.emu.objects("eu-only").len(), 1);
    // CreateBucket and ListBuckets stay in the default jurisdiction: the same name is created
    // there, and from then on that one wins.
    let url = eu.create_bucket(&t.creds).sign(HOUR);
    assert_eq!(
        t.req(Method::PUT, url).send().expect("create").status(),
        200
    );
    let url = eu.get_object(Some(&t.creds), "k").sign(HOUR);
    assert_eq!(
        code(t.req(Method::GET, url).send().expect("get")),
        (404, "NoSuchKey".into())
    );
}

/// `X-Amz-Signature` is redacted from the log also when its name is percent-encoded.
#[test]
fn an_encoded_signature_name_is_redacted() {
    let t = start();
    t.put("k", b"v");
    let url = t.bucket.get_object(Some(&t.creds), "k").sign(HOUR);
    let sneaky =
        Url::parse(&url.as_str().replace("X-Amz-Signature", "X-Amz-%53ignature")).expect("url");
    t.emu.clear_requests();
    assert_eq!(t.req(Method::GET, sneaky).send().expect("r").status(), 200);
    let logged = t.emu.requests()[0].query.clone().unwrap_or_default();
    assert!(logged.contains("X-Amz-%53ignature=REDACTED"), "{logged}");
}

/// A presigned URL signed by hand (AWS "Authenticating Requests: Using Query Parameters"), with
/// `payload` as the canonical request's last line and, when `in_query`, an
/// `X-Amz-Content-Sha256` query parameter (signed, as every query parameter is). Signs `host`
/// only. This is how aws-sdk-go presigns a request whose body hash it knows.
fn query_signed(t: &T, method: &Method, url: &Url, payload: &str, in_query: Option<&str>) -> Url {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace(['-', ':'], "");
    let date = &stamp[..8];
    let scope = format!("{date}/auto/s3/aws4_request");
    let host = format!(
        "{}:{}",
        url.host_str().expect("host"),
        url.port().expect("port")
    );
    let mut params: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    params.extend([
        ("X-Amz-Algorithm".into(), "AWS4-HMAC-SHA256".into()),
        (
            "X-Amz-Credential".into(),
            format!("{}/{scope}", t.creds.key()),
        ),
        ("X-Amz-Date".into(), stamp.clone()),
        ("X-Amz-Expires".into(), "600".into()),
        ("X-Amz-SignedHeaders".into(), "host".into()),
    ]);
    if let Some(h) = in_query {
        params.push(("X-Amz-Content-Sha256".into(), h.into()));
    }
    let mut encoded: Vec<(String, String)> = params.iter().map(|(k, v)| (enc(k), enc(v))).collect();
    encoded.sort();
    let query = encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let canonical = format!(
        "{method}\n{}\n{query}\nhost:{host}\n\nhost\n{payload}",
        canonical_path(url.path())
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let mut key = hmac(
        format!("AWS4{}", t.creds.secret()).as_bytes(),
        date.as_bytes(),
    );
    for part in ["auto", "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
    let mut out = url.clone();
    out.set_query(Some(&format!("{query}&X-Amz-Signature={signature}")));
    out
}

/// The text of one element of an XML error body.
fn element(body: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let (_, rest) = body.split_once(&open)?;
    let (text, _) = rest.split_once(&close)?;
    Some(
        text.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

/// Issue 16 item 7: a presigned request's payload line is `X-Amz-Content-Sha256` (query
/// parameter, then header), else UNSIGNED-PAYLOAD, as aws-sdk-go `buildBodyDigest`, aws4fetch
/// and MinIO read it. s3s' reading (always UNSIGNED-PAYLOAD) is the lenient knob.
#[test]
fn presigned_payload_line_comes_from_x_amz_content_sha256() {
    let t = start();
    let url = t.bucket.object_url("p").expect("url");
    let good = sha256_hex(b"good");

    // rusty-s3's form: UNSIGNED-PAYLOAD signed, a hex header sent. Refused: the server's
    // canonical request ends with the header's hash, which the body shows.
    let presigned = t.bucket.put_object(Some(&t.creds), "p").sign(HOUR);
    let resp = t
        .req(Method::PUT, presigned.clone())
        .header("x-amz-content-sha256", &good)
        .body("good")
        .send()
        .expect("r");
    assert_eq!(resp.status().as_u16(), 403);
    let text = resp.text().expect("body");
    assert_eq!(
        element(&text, "Code").as_deref(),
        Some("SignatureDoesNotMatch")
    );
    let canonical = element(&text, "CanonicalRequest").expect("canonical request");
    assert!(canonical.ends_with(&format!("\n{good}")), "{canonical}");
    assert!(t.emu.objects("site").is_empty());
    // Without the header the same URL is UNSIGNED-PAYLOAD, and works.
    let resp = t
        .req(Method::PUT, presigned.clone())
        .body("plain")
        .send()
        .expect("r");
    assert_eq!(resp.status().as_u16(), 200);

    // aws-sdk-go's form: the hash signed as the payload line and sent as a header.
    let signed = query_signed(&t, &Method::PUT, &url, &good, None);
    let put = |u: &Url, header: Option<&str>, body: &'static str| {
        let mut r = t.req(Method::PUT, u.clone());
        if let Some(h) = header {
            r = r.header("x-amz-content-sha256", h);
        }
        code(r.body(body).send().expect("r"))
    };
    assert_eq!(put(&signed, Some(&good), "good"), (200, String::new()));
    assert_eq!(
        put(&signed, Some(&good), "evil"),
        (400, "XAmzContentSHA256Mismatch".into())
    );
    // Without the header the server signs UNSIGNED-PAYLOAD: mismatch.
    assert_eq!(
        put(&signed, None, "good"),
        (403, "SignatureDoesNotMatch".into())
    );
    // The query parameter first: signed and sent there, no header needed; checked against the
    // body too.
    let in_query = query_signed(&t, &Method::PUT, &url, &good, Some(&good));
    assert_eq!(put(&in_query, None, "good"), (200, String::new()));
    assert_eq!(
        put(&in_query, None, "evil"),
        (400, "XAmzContentSHA256Mismatch".into())
    );
    // The parameter wins over a header that says something else.
    assert_eq!(
        put(&in_query, Some("UNSIGNED-PAYLOAD"), "good"),
        (200, String::new())
    );
    // A query parameter of UNSIGNED-PAYLOAD is the payload line.
    let unsigned = query_signed(
        &t,
        &Method::PUT,
        &url,
        "UNSIGNED-PAYLOAD",
        Some("UNSIGNED-PAYLOAD"),
    );
    assert_eq!(put(&unsigned, None, "anything"), (200, String::new()));
    // Garbage is refused before the signature is looked at.
    let garbage = query_signed(&t, &Method::PUT, &url, "nope", Some("nope"));
    assert_eq!(put(&garbage, None, "x"), (400, "InvalidArgument".into()));

    // The lenient knob: rusty-s3's form works, and the header is still checked.
    let mut options = Options::new();
    options.s3_presigned_payload_lenient = true;
    let t = start_with(options);
    let presigned = t.bucket.put_object(Some(&t.creds), "p").sign(HOUR);
    let send = |body: &'static str| {
        code(
            t.req(Method::PUT, presigned.clone())
                .header("x-amz-content-sha256", &good)
                .body(body)
                .send()
                .expect("r"),
        )
    };
    assert_eq!(send("good"), (200, String::new()));
    assert_eq!(send("evil"), (400, "XAmzContentSHA256Mismatch".into()));
    assert_eq!(t.emu.objects("site")[0].body, b"good");
}

/// Issue 16 item 7: SignatureDoesNotMatch carries what the server computed, as R2's does
/// (WWBN/AVideo#9667) and AWS's: the canonical request (whose last line is the payload hash
/// used), the string to sign, the access key id and the signature provided. Never the secret.
#[test]
fn signature_does_not_match_shows_the_canonical_request_never_the_secret() {
    let t = start();
    let url = t.bucket.object_url("k").expect("url");
    let wrong_secret = "f".repeat(64);
    let resp = header_signed(
        &t,
        Method::PUT,
        url.clone(),
        &sha256_hex(b"v"),
        SystemTime::now(),
        &wrong_secret,
    )
    .body("v")
    .send()
    .expect("r");
    assert_eq!(resp.status().as_u16(), 403);
    let sent_auth = resp.url().clone();
    let text = resp.text().expect("body");
    assert_eq!(
        element(&text, "Code").as_deref(),
        Some("SignatureDoesNotMatch")
    );
    assert_eq!(
        element(&text, "AWSAccessKeyId").as_deref(),
        Some(t.creds.key())
    );
    let canonical = element(&text, "CanonicalRequest").expect("canonical");
    let lines: Vec<&str> = canonical.split('\n').collect();
    assert_eq!(lines[0], "PUT");
    assert_eq!(lines[1], "/site/k");
    assert_eq!(
        lines[lines.len() - 2],
        "host;x-amz-content-sha256;x-amz-date"
    );
    assert_eq!(lines[lines.len() - 1], sha256_hex(b"v"));
    let to_sign = element(&text, "StringToSign").expect("string to sign");
    let sts: Vec<&str> = to_sign.split('\n').collect();
    assert_eq!(sts.len(), 4);
    assert_eq!(sts[0], "AWS4-HMAC-SHA256");
    assert!(sts[2].ends_with("/auto/s3/aws4_request"), "{to_sign}");
    assert_eq!(sts[3], sha256_hex(canonical.as_bytes()));
    let provided = element(&text, "SignatureProvided").expect("signature");
    assert_eq!(provided.len(), 64);
    assert!(!text.contains(t.creds.secret()), "never the secret");
    assert!(!text.contains(&wrong_secret));
    assert_eq!(sent_auth.path(), "/site/k");
    // A HEAD's error has no body, the status only.
    let resp = header_signed(
        &t,
        Method::HEAD,
        url,
        &sha256_hex(b""),
        SystemTime::now(),
        &wrong_secret,
    )
    .send()
    .expect("r");
    assert_eq!(resp.status().as_u16(), 403);
}

/// Issue 16 item 7 / §7: in the header form `x-amz-content-sha256` must be signed (AWS's SigV4
/// page; strict side), unless `s3_unsigned_content_sha256_lenient`.
#[test]
fn header_form_needs_x_amz_content_sha256_signed() {
    let unsigned_header_put = |t: &T| {
        let url = t.bucket.object_url("k").expect("url");
        let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
            .to_string()
            .replace(['-', ':'], "");
        let date = &stamp[..8];
        let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
        let payload = sha256_hex(b"v");
        let canonical = format!(
            "PUT\n/site/k\n\nhost:{host}\nx-amz-date:{stamp}\n\nhost;x-amz-date\n{payload}"
        );
        let scope = format!("{date}/auto/s3/aws4_request");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            sha256_hex(canonical.as_bytes())
        );
        let mut key = hmac(
            format!("AWS4{}", t.creds.secret()).as_bytes(),
            date.as_bytes(),
        );
        for part in ["auto", "s3", "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        let sig = hex::encode(hmac(&key, to_sign.as_bytes()));
        let resp = t
            .req(Method::PUT, url)
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;x-amz-date, Signature={sig}",
                    t.creds.key()
                ),
            )
            .header("x-amz-date", &stamp)
            .header("x-amz-content-sha256", &payload)
            .body("v")
            .send()
            .expect("r");
        let status = resp.status().as_u16();
        (status, resp.text().expect("body"))
    };
    let t = start();
    let (status, text) = unsigned_header_put(&t);
    assert_eq!(status, 403, "{text}");
    assert_eq!(element(&text, "Code").as_deref(), Some("AccessDenied"));
    assert_eq!(
        element(&text, "HeadersNotSigned").as_deref(),
        Some("x-amz-content-sha256")
    );
    assert!(t.emu.objects("site").is_empty());
    let mut options = Options::new();
    options.s3_unsigned_content_sha256_lenient = true;
    let t = start_with(options);
    let (status, text) = unsigned_header_put(&t);
    assert_eq!(status, 200, "{text}");
}

/// Issue 16 item 7 / §7 "Times": upload times in milliseconds. Listings (V2, V1, REST) show the
/// fraction; HEAD / GET `Last-Modified` is the truncated HTTP date; two uploads in a row get
/// different times; date conditions compare whole seconds; the state file keeps milliseconds
/// and an old one with whole seconds still loads.
#[test]
fn upload_times_are_milliseconds_and_last_modified_is_truncated() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("state.json");
    let mut options = Options::new();
    options.state_file = Some(path.clone());
    let t = start_with(options.clone());
    assert_eq!(t.put("a", b"1").status().as_u16(), 200);
    assert_eq!(t.put("b", b"2").status().as_u16(), 200);
    assert_eq!(t.rest_put("c", b"3"), 200);

    let list = |v2: bool| -> Vec<String> {
        let mut action = t.bucket.list_objects_v2(Some(&t.creds));
        if !v2 {
            action.query_mut().remove("list-type");
        }
        let url = action.sign(HOUR);
        let text = t
            .req(Method::GET, url)
            .send()
            .expect("r")
            .text()
            .expect("b");
        text.split("<LastModified>")
            .skip(1)
            .map(|s| {
                s.split_once("</LastModified>")
                    .expect("closed")
                    .0
                    .to_string()
            })
            .collect()
    };
    let times = list(true);
    assert_eq!(times, list(false), "V1 shows the same times");
    assert_eq!(times.len(), 3);
    for t in &times {
        // 2026-12-06T04:05:06.789Z
        assert_eq!(t.len(), 24, "{t}");
        assert_eq!(&t[19..20], ".", "{t}");
        assert!(t.ends_with('Z'), "{t}");
    }
    let parsed: Vec<SystemTime> = times
        .iter()
        .map(|s| humantime::parse_rfc3339(s).expect("rfc3339"))
        .collect();
    assert!(parsed[0] < parsed[1] && parsed[1] < parsed[2], "{times:?}");

    // The REST listing shows the same milliseconds.
    let s = t.emu.seed();
    let rest: Value = t
        .http
        .get(format!(
            "{}/accounts/{}/r2/buckets/site/objects",
            t.emu.base_url(),
            s.account_id
        ))
        .header("X-Auth-Email", &s.email)
        .header("X-Auth-Key", &s.global_key)
        .send()
        .expect("r")
        .json()
        .expect("json");
    let rest_times: Vec<&str> = rest["result"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["last_modified"].as_str().expect("last_modified"))
        .collect();
    assert_eq!(rest_times, times);
    let stored: Vec<String> = t
        .emu
        .objects("site")
        .into_iter()
        .map(|o| o.uploaded)
        .collect();
    assert_eq!(stored, times, "Emulator::objects shows the same time");

    // HEAD: whole seconds; never equal to the listing's time as a string or an instant.
    let head_url = t.bucket.head_object(Some(&t.creds), "a").sign(HOUR);
    let head = t.req(Method::HEAD, head_url).send().expect("r");
    let last_modified = head.headers()["last-modified"]
        .to_str()
        .expect("ascii")
        .to_string();
    let http_time = httpdate::parse_http_date(&last_modified).expect("http date");
    let listed = parsed[0];
    let truncated = SystemTime::UNIX_EPOCH
        + Duration::from_secs(
            listed
                .duration_since(SystemTime::UNIX_EPOCH)
                .expect("after epoch")
                .as_secs(),
        );
    assert_eq!(http_time, truncated);
    // Conditions compare whole seconds: the Last-Modified read back is not "modified since".
    let get = t.bucket.get_object(Some(&t.creds), "a").sign(HOUR);
    let resp = t
        .req(Method::GET, get.clone())
        .header("if-unmodified-since", &last_modified)
        .send()
        .expect("r");
    assert_eq!(resp.status().as_u16(), 200);
    let resp = t
        .req(Method::GET, get)
        .header("if-modified-since", &last_modified)
        .send()
        .expect("r");
    assert_eq!(resp.status().as_u16(), 304);

    // The state file keeps the milliseconds.
    drop(t);
    let saved = std::fs::read_to_string(&path).expect("state file");
    assert!(saved.contains(&times[0]), "{saved}");
    // An older state file with whole seconds loads; its time is listed with .000.
    let old = saved.replace(&times[0], "2026-01-02T03:04:05Z");
    std::fs::write(&path, old).expect("write");
    let emu = Emulator::start(options).expect("restart");
    assert_eq!(emu.objects("site").len(), 3);
    let state: Value = Client::new()
        .get(format!("{}/__emulator/state", emu.s3_endpoint()))
        .send()
        .expect("r")
        .json()
        .expect("json");
    assert_eq!(state["result"]["buckets"][0]["objects"][0]["key"], "a");
    let s = emu.seed();
    let rest: Value = Client::new()
        .get(format!(
            "{}/accounts/{}/r2/buckets/site/objects",
            emu.base_url(),
            s.account_id
        ))
        .header("X-Auth-Email", &s.email)
        .header("X-Auth-Key", &s.global_key)
        .send()
        .expect("r")
        .json()
        .expect("json");
    assert_eq!(
        rest["result"][0]["last_modified"], "2026-01-02T03:04:05Z",
        "stored as it was"
    );
}

/// Issue 16 item 7 / §7 "A conditional write that races another": under `s3_conflict_409`, a
/// conditional PUT whose condition fails answers 409 ConditionalRequestConflict, and so does one
/// that overlaps another conditional PUT of the same key.
#[test]
fn conflict_409_replaces_412_for_a_lost_conditional_put() {
    let t = start_with(Options::new().with_s3_conflict_409(true));
    let put = |key: &str, header: (&'static str, &str), body: &'static str| {
        let mut a = t.bucket.put_object(Some(&t.creds), key);
        a.headers_mut().insert(header.0, header.1.to_string());
        let url = a.sign(HOUR);
        t.req(Method::PUT, url)
            .header(header.0, header.1)
            .body(body)
            .send()
            .expect("r")
    };
    let first = put("lock", ("if-none-match", "*"), "v1");
    assert_eq!(first.status().as_u16(), 200);
    let etag = first.headers()["etag"].to_str().expect("etag").to_string();
    let resp = put("lock", ("if-none-match", "*"), "v2");
    assert_eq!(resp.status().as_u16(), 409);
    let text = resp.text().expect("body");
    assert_eq!(
        element(&text, "Code").as_deref(),
        Some("ConditionalRequestConflict")
    );
    assert_eq!(
        code(put("lock", ("if-match", "\"0000\""), "v2")),
        (409, "ConditionalRequestConflict".into())
    );
    assert_eq!(
        put("lock", ("if-match", &etag), "v2").status().as_u16(),
        200
    );
    // Unconditional PUTs are untouched.
    assert_eq!(t.put("lock", b"v3").status().as_u16(), 200);

    // (b) Overlap: the first is held by injected latency; the second arrives while it is in
    // flight and gets 409, though its own condition would pass; the first then lands.
    t.emu.inject_for(
        Api::S3,
        Fault {
            method: Some("PUT".into()),
            path_contains: Some("/site/held".into()),
            // Long enough for the second request to arrive on a busy machine.
            kind: FaultKind::Latency(Duration::from_secs(4)),
            times: 1,
        },
    );
    std::thread::scope(|s| {
        let held = s.spawn(|| {
            put("held", ("if-none-match", "*"), "first")
                .status()
                .as_u16()
        });
        // A bounded wait for the first to arrive (a safety net, not an assertion on time).
        let deadline = Instant::now() + Duration::from_secs(60);
        while t.emu.conditional_puts_in_flight() == 0 {
            assert!(Instant::now() < deadline, "the first PUT never arrived");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            code(put("held", ("if-none-match", "\"0000\""), "second")),
            (409, "ConditionalRequestConflict".into())
        );
        assert_eq!(held.join().expect("thread"), 200);
    });
    assert_eq!(t.emu.conditional_puts_in_flight(), 0);
    let held = t.emu.objects("site");
    assert_eq!(
        held.iter().find(|o| o.key == "held").expect("held").body,
        b"first"
    );

    // Racing writers of one new key: one 200, every other 409.
    for round in 0..3 {
        let key = format!("race-{round}");
        let statuses: Vec<u16> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let key = key.clone();
                    let put = &put;
                    s.spawn(move || {
                        let body: &'static str =
                            ["w0", "w1", "w2", "w3", "w4", "w5", "w6", "w7"][i];
                        put(&key, ("if-none-match", "*"), body).status().as_u16()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("t")).collect()
        });
        assert_eq!(
            statuses.iter().filter(|s| **s == 200).count(),
            1,
            "{statuses:?}"
        );
        assert_eq!(
            statuses.iter().filter(|s| **s == 409).count(),
            7,
            "{statuses:?}"
        );
    }

    // Off (the default): 412, also for an overlapping one.
    let t = start();
    let mut a = t.bucket.put_object(Some(&t.creds), "lock");
    a.headers_mut().insert("if-none-match", "*".to_string());
    let url = a.sign(HOUR);
    let send = || {
        code(
            t.req(Method::PUT, url.clone())
                .header("if-none-match", "*")
                .body("v")
                .send()
                .expect("r"),
        )
    };
    assert_eq!(send().0, 200);
    assert_eq!(send(), (412, "PreconditionFailed".into()));
    assert_eq!(
        t.emu.conditional_puts_in_flight(),
        0,
        "not tracked when off"
    );
}

/// Issue 16 item 7 / §7 "Limits": R2's one write per second per key covers PutObject and
/// CompleteMultipartUpload, answers 429 TooManyRequests with `Retry-After` in seconds, and makes
/// racing lock writers see 429 rather than 412.
#[test]
fn write_limit_covers_put_and_complete_with_retry_after() {
    let t = start_with(Options::new().with_s3_write_limit_per_key(true));
    // The upload is prepared first, so that the PUT and the Complete are back to back.
    let id = create_upload(&t, "obj");
    let e = etag_of(upload_part(&t, "obj", &id, 1, b"part"));
    assert_eq!(t.put("obj", b"1").status().as_u16(), 200);
    // A CompleteMultipartUpload of the same key within the second: 429, the upload stays.
    let resp = complete(&t, "obj", &id, std::slice::from_ref(&e));
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(code(resp), (429, "TooManyRequests".into()));
    assert_eq!(t.emu.pending_uploads().len(), 1);
    let resp = t.put("obj", b"2");
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(code(resp), (429, "TooManyRequests".into()));
    // A completed upload counts as a write: a PUT right after it is refused.
    let id = create_upload(&t, "mp");
    let e = etag_of(upload_part(&t, "mp", &id, 1, b"part"));
    assert_eq!(complete(&t, "mp", &id, &[e]).status().as_u16(), 200);
    assert_eq!(code(t.put("mp", b"x")), (429, "TooManyRequests".into()));

    // Racing lock writers: one lands, the others see 429 (docs/cloudflare-api.md §7: "treat 429 on
    // a lock key as contended").
    let mut a = t.bucket.put_object(Some(&t.creds), "lock");
    a.headers_mut().insert("if-none-match", "*".to_string());
    let url = a.sign(HOUR);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (u, http) = (url.clone(), t.http.clone());
                s.spawn(move || {
                    http.put(u)
                        .header("if-none-match", "*")
                        .body("w")
                        .send()
                        .expect("r")
                        .status()
                        .as_u16()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("t")).collect()
    });
    // One lands; the others are refused, with 429 while they come within its second (all of
    // them, unless the machine stalls for a second: then 412).
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 429, 412].contains(s)),
        "{statuses:?}"
    );
    assert!(statuses.contains(&429), "{statuses:?}");
}

/// Issue 16 item 7 / §7: R2 documents no conditional headers on CompleteMultipartUpload. By
/// default they are refused (501 NotImplemented, nothing completed); the knob honours them.
#[test]
fn conditions_on_complete_multipart_upload_are_refused_by_default() {
    let complete_with = |t: &T, key: &str, header: (&str, &str)| {
        let id = create_upload(t, key);
        let e = etag_of(upload_part(t, key, &id, 1, b"part"));
        let body = format!(
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{e}</ETag></Part></CompleteMultipartUpload>"
        );
        code(
            t.signed(Method::POST, upload_url(t, key, &id), body.as_bytes())
                .header(header.0, header.1)
                .send()
                .expect("r"),
        )
    };
    let t = start();
    let long_ago = "Mon, 01 Jan 2001 00:00:00 GMT";
    for (h, value) in [
        ("if-match", "*"),
        ("if-none-match", "*"),
        ("if-modified-since", long_ago),
        ("if-unmodified-since", long_ago),
    ] {
        assert_eq!(
            complete_with(&t, "m", (h, value)),
            (501, "NotImplemented".into()),
            "{h}"
        );
    }
    assert!(t.emu.objects("site").is_empty());
    assert_eq!(t.emu.pending_uploads().len(), 4, "nothing completed");

    let mut options = Options::new();
    options.s3_complete_honours_conditions = true;
    let t = start_with(options);
    assert_eq!(complete_with(&t, "m", ("if-none-match", "*")).0, 200);
    assert_eq!(
        complete_with(&t, "m", ("if-none-match", "*")),
        (412, "PreconditionFailed".into())
    );
}

/// Issue 16 item 9: every S3 request is logged with its operation, so tests can count e.g. "how
/// many S3 PUTs" or "how many PutObjects".
#[test]
fn the_request_log_names_the_s3_operation() {
    let t = start();
    t.put("a", b"1");
    t.put("b", b"2");
    t.get("a");
    let id = create_upload(&t, "m");
    upload_part(&t, "m", &id, 1, b"p");
    let url = t.bucket.list_objects_v2(Some(&t.creds)).sign(HOUR);
    t.req(Method::GET, url).send().expect("r");
    // A refused one is still named (after routing).
    let stranger = Credentials::new("0".repeat(32), "f".repeat(64));
    let url = t.bucket.put_object(Some(&stranger), "c").sign(HOUR);
    t.req(Method::PUT, url).body("x").send().expect("r");

    assert_eq!(t.emu.count_s3_op("PutObject"), 3);
    assert_eq!(t.emu.count_s3_op("UploadPart"), 1);
    assert_eq!(t.emu.count_s3_op("CreateMultipartUpload"), 1);
    assert_eq!(t.emu.count_s3_op("GetObject"), 1);
    assert_eq!(t.emu.count_s3_op("ListObjectsV2"), 1);
    assert_eq!(t.emu.count_requests(Api::S3, "PUT"), 4);
    assert_eq!(t.emu.count_requests(Api::S3, "POST"), 1);
    // Bucket creation went over REST.
    assert_eq!(t.emu.count_requests(Api::Rest, "POST"), 1);
    let log = t.emu.requests();
    assert!(log.iter().all(|r| r.api == Api::Rest || r.op.is_some()));
    assert!(log
        .iter()
        .filter(|r| r.op == Some("CreateMultipartUpload"))
        .all(|r| r.auth == "sigv4"));
    assert!(log
        .iter()
        .any(|r| r.op == Some("PutObject") && r.status == 403));
    for op in log.iter().filter_map(|r| r.op) {
        assert!(cfsetup_emulator::S3_OPS.contains(&op), "{op}");
    }
    // Over HTTP too.
    let v: Value = t
        .http
        .get(format!("{}/__emulator/requests", t.emu.s3_endpoint()))
        .send()
        .expect("r")
        .json()
        .expect("json");
    let ops: Vec<&str> = v["result"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|r| r["op"].as_str())
        .collect();
    assert_eq!(ops.iter().filter(|o| **o == "PutObject").count(), 3);
}
