//! End-to-end tests of the emulator over HTTP, with reqwest as the client.
//!
//! Each test starts its own emulator on a free port; the blocking client keeps them simple.

use cfsetup_emulator::{Emulator, Fault, FaultKind, Options};
use reqwest::blocking::{multipart, Client, RequestBuilder};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const ACCOUNT_SETTINGS_READ: &str = "c1fde68c7bcc44588cbb6ddbc16d6480";
const R2_WRITE: &str = "bf7481a1826f439697cb59a20b22293e";
const SCRIPTS_WRITE: &str = "e086da7e2179491d91ee5f35b3ca210a";
const ROUTES_WRITE: &str = "28f4b596e7d643029c524985477ae49a";
const ZONE_READ: &str = "c8fed203ed3043cba015a93ad1616f1f";
const SSL_WRITE: &str = "c03055bc037c4ea9afb9a9f104b7b721";
const ITEM_READ: &str = "6a018a9f2fc74eb6b293b0c548f38b39";

struct T {
    emu: Emulator,
    http: Client,
}

fn start() -> T {
    start_with(Options::new())
}

fn start_with(options: Options) -> T {
    let emu = Emulator::start(options).expect("emulator starts");
    T {
        emu,
        http: Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client"),
    }
}

impl T {
    fn url(&self, path: &str) -> String {
        format!("{}{}", self.emu.base_url(), path)
    }
    fn anon(&self, method: &str, path: &str) -> RequestBuilder {
        self.http.request(
            Method::from_bytes(method.as_bytes()).expect("method"),
            self.url(path),
        )
    }
    fn global(&self, method: &str, path: &str) -> RequestBuilder {
        let s = self.emu.seed();
        self.anon(method, path)
            .header("X-Auth-Email", &s.email)
            .header("X-Auth-Key", &s.global_key)
    }
    fn bearer(&self, method: &str, path: &str, token: &str) -> RequestBuilder {
        self.anon(method, path).bearer_auth(token)
    }
    fn acct(&self) -> String {
        self.emu.seed().account_id.clone()
    }
    fn zone(&self) -> String {
        self.emu.seed().zone_id.clone()
    }
    /// A token with everything the platform needs.
    fn admin_token(&self) -> String {
        let (a, z) = (self.acct(), self.zone());
        self.emu
            .mint_token(
                "admin",
                json!([
                    {"effect": "allow",
                     "resources": {format!("com.cloudflare.api.account.{a}"): "*"},
                     "permission_groups": [{"id": R2_WRITE}, {"id": SCRIPTS_WRITE}, {"id": ACCOUNT_SETTINGS_READ}]},
                    {"effect": "allow",
                     "resources": {format!("com.cloudflare.api.account.zone.{z}"): "*"},
                     "permission_groups": [{"id": ROUTES_WRITE}, {"id": ZONE_READ}, {"id": SSL_WRITE}]}
                ]),
            )
            .1
    }
}

fn call(rb: RequestBuilder) -> (u16, Value) {
    let resp = rb.send().expect("response");
    let status = resp.status().as_u16();
    let text = resp.text().expect("body");
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

fn code(v: &Value) -> i64 {
    v["errors"][0]["code"].as_i64().unwrap_or(-1)
}

#[test]
fn global_key_token_reads_exactly_what_its_policies_allow() {
    let t = start();
    let (a, z) = (t.acct(), t.zone());
    let body = json!({
        "name": "deployer",
        "policies": [
            {"effect": "allow",
             "resources": {format!("com.cloudflare.api.account.{a}"): "*"},
             // Workers Routes Write is zone-scoped: on an account resource it grants nothing.
             "permission_groups": [{"id": ACCOUNT_SETTINGS_READ}, {"id": R2_WRITE}, {"id": ROUTES_WRITE}]},
            {"effect": "allow",
             "resources": {format!("com.cloudflare.api.account.zone.{z}"): "*"},
             "permission_groups": [{"id": ZONE_READ}]}
        ],
        "condition": {"request.ip": {"in": ["127.0.0.0/8"]}},
        "expires_on": "2099-01-01T00:00:00Z"
    });
    let (s, v) = call(t.global("POST", "/user/tokens").json(&body));
    assert_eq!(s, 200, "{v}");
    let value = v["result"]["value"].as_str().expect("value").to_string();
    assert!(
        value.starts_with("cfut_") && value.len() == 5 + 40 + 6,
        "{value}"
    );
    let id = v["result"]["id"].as_str().expect("id").to_string();
    assert_eq!(
        v["result"]["policies"][0]["permission_groups"][0]["name"],
        "Account Settings Read"
    );
    assert_eq!(
        v["result"]["policies"][0]["id"].as_str().map(str::len),
        Some(32)
    );
    assert_eq!(
        v["result"]["condition"],
        json!({"request.ip": {"in": ["127.0.0.0/8"]}})
    );

    let (s, v) = call(t.bearer("GET", "/user/tokens/verify", &value));
    assert_eq!(s, 200);
    assert_eq!(v["result"]["id"], id.as_str());
    assert_eq!(v["result"]["status"], "active");
    assert_eq!(v["messages"][0]["code"], 10000);

    let ok = |m: &str, p: String| {
        let (s, v) = call(t.bearer(m, &p, &value));
        assert_eq!(s, 200, "{m} {p}: {v}");
    };
    ok("GET", format!("/accounts/{a}"));
    ok("GET", format!("/zones/{z}"));
    ok("GET", format!("/accounts/{a}/r2/buckets"));
    ok("GET", "/zones".into());
    ok("GET", "/accounts".into());

    let denied = |m: &str, p: String, body: &str| {
        let (s, v) = call(t.bearer(m, &p, &value).body(body.to_string()));
        assert_eq!((s, code(&v)), (403, 10000), "{m} {p}: {v}");
        assert_eq!(v["errors"][0]["message"], "Authentication error");
    };
    denied("GET", format!("/zones/{z}/workers/routes"), "");
    denied("POST", format!("/zones/{z}/workers/routes"), "junk{");
    denied("GET", format!("/accounts/{a}/workers/scripts"), "");
    denied("PUT", format!("/accounts/{a}/workers/scripts/x"), "junk");
    denied("POST", format!("/zones/{z}/custom_hostnames"), "junk");
    denied("GET", "/user/tokens".into(), "");

    // With the permission, the same junk reaches product validation.
    let (s, v) = call(
        t.bearer("POST", &format!("/accounts/{a}/r2/buckets"), &value)
            .body("junk"),
    );
    assert_eq!((s, code(&v)), (400, 10005), "{v}");
    let admin = t.admin_token();
    let (s, v) = call(
        t.bearer("POST", &format!("/zones/{z}/workers/routes"), &admin)
            .body("junk{"),
    );
    assert_eq!((s, code(&v)), (400, 10026), "{v}");

    // GET /user needs User Details Read: 9109.
    let (s, v) = call(t.bearer("GET", "/user", &value));
    assert_eq!((s, code(&v)), (403, 9109));

    // GET and list never show the value.
    let (s, v) = call(t.global("GET", &format!("/user/tokens/{id}")));
    assert_eq!(s, 200);
    assert!(v["result"].get("value").is_none());
    assert_eq!(
        t.emu.token_names(),
        vec!["deployer".to_string(), "admin".to_string()]
    );
}

#[test]
fn nested_resources_and_deny() {
    let t = start();
    let (a, z) = (t.acct(), t.zone());
    // All zones of the account, nested; deny beats allow on the same zone for SSL.
    let (_, value) = t.emu.mint_token(
        "nested",
        json!([
            {"effect": "allow",
             "resources": {format!("com.cloudflare.api.account.{a}"): {"com.cloudflare.api.account.zone.*": "*"}},
             "permission_groups": [{"id": ROUTES_WRITE}, {"id": SSL_WRITE}]},
            {"effect": "deny",
             "resources": {format!("com.cloudflare.api.account.zone.{z}"): "*"},
             "permission_groups": [{"id": SSL_WRITE}]}
        ]),
    );
    assert_eq!(
        call(t.bearer("GET", &format!("/zones/{z}/workers/routes"), &value)).0,
        200
    );
    let (s, v) = call(t.bearer("GET", &format!("/zones/{z}/custom_hostnames"), &value));
    assert_eq!((s, code(&v)), (403, 10000));
    // No zone permission at all: listing zones is the gateway's code-0 refusal.
    let (s, v) = call(t.bearer("GET", "/zones", &value));
    assert_eq!((s, code(&v)), (403, 0));
    // Nested all-buckets key grants account-level R2 groups? No: it names buckets, and the
    // account-scoped group needs the account resource.
    let (_, bucket_tok) = t.emu.mint_token(
        "buckets",
        json!([{"effect": "allow",
                "resources": {format!("com.cloudflare.api.account.{a}"): {"com.cloudflare.edge.r2.bucket.*": "*"}},
                "permission_groups": [{"id": ITEM_READ}]}]),
    );
    t.global("POST", &format!("/accounts/{a}/r2/buckets"))
        .json(&json!({"name": "bkt1"}))
        .send()
        .expect("create");
    // Bucket-scoped groups do not reach the REST object endpoints (workers-sdk #9235).
    let (s, v) = call(t.bearer(
        "GET",
        &format!("/accounts/{a}/r2/buckets/bkt1/objects"),
        &bucket_tok,
    ));
    assert_eq!((s, code(&v)), (403, 10000));
    assert_eq!(
        call(t.bearer("GET", &format!("/accounts/{a}/r2/buckets"), &bucket_tok)).0,
        403
    );
    // A non-member account is 9109.
    let (s, v) = call(t.global("GET", "/accounts/0123456789abcdef0123456789abcdef"));
    assert_eq!((s, code(&v)), (403, 9109));
}

#[test]
fn token_validation_errors() {
    let t = start();
    let bad = [
        json!({"policies": [{"effect":"allow","resources":{"com.cloudflare.api.account.*":"*"},"permission_groups":[{"id":R2_WRITE}]}]}),
        json!({"name": "x", "policies": []}),
        json!({"name": "x", "policies": [{"effect":"allow","resources":{"com.cloudflare.api.account.*":"*"},"permission_groups":[{"id":"00000000000000000000000000000000"}]}]}),
        json!({"name": "x", "policies": [{"effect":"maybe","resources":{"com.cloudflare.api.account.*":"*"},"permission_groups":[{"id":R2_WRITE}]}]}),
        json!({"name": "x", "policies": [{"effect":"allow","resources":{},"permission_groups":[{"id":R2_WRITE}]}]}),
        json!({"name": "x", "expires_on": "tomorrow", "policies": [{"effect":"allow","resources":{"com.cloudflare.api.account.*":"*"},"permission_groups":[{"id":R2_WRITE}]}]}),
        json!({"name": "x", "condition": {"request_ip": {"in": ["300.1.1.1/8"]}}, "policies": [{"effect":"allow","resources":{"com.cloudflare.api.account.*":"*"},"permission_groups":[{"id":R2_WRITE}]}]}),
    ];
    for b in bad {
        let (s, v) = call(t.global("POST", "/user/tokens").json(&b));
        assert_eq!(s, 400, "{b} -> {v}");
    }
    let (_, v) = call(t.global("POST", "/user/tokens").json(&json!({"name": "x", "policies": [{"effect":"allow","resources":{"com.cloudflare.api.account.*":"*"},"permission_groups":[{"id":"00000000000000000000000000000000"}]}]})));
    assert!(v["errors"][0]["message"]
        .as_str()
        .unwrap_or("")
        .contains("00000000000000000000000000000000"));
}

#[test]
fn auth_error_codes() {
    let t = start();
    let (s, v) = call(t.anon("GET", "/user"));
    assert_eq!((s, code(&v)), (400, 9106));
    let (s, v) = call(t.anon("GET", "/user").header("Authorization", "Token abc"));
    assert_eq!((s, code(&v)), (400, 6003));
    assert_eq!(v["errors"][0]["error_chain"][0]["code"], 6111);
    let (s, v) = call(t.anon("GET", "/user").header("Authorization", "Bearer a b"));
    assert_eq!((s, code(&v)), (400, 6003));
    let (s, v) = call(t.bearer("GET", "/user", "cfut_doesnotexist"));
    assert_eq!((s, code(&v)), (401, 1000));
    assert_eq!(v["errors"][0]["message"], "Invalid API Token");
    let (s, v) = call(
        t.anon("GET", "/user")
            .header("X-Auth-Email", "admin@getai.page"),
    );
    assert_eq!((s, code(&v)), (400, 6003));
    assert_eq!(v["errors"][0]["error_chain"][0]["code"], 6103);
    let (s, v) = call(
        t.anon("GET", "/user")
            .header("X-Auth-Key", &t.emu.seed().global_key),
    );
    assert_eq!(v["errors"][0]["error_chain"][0]["code"], 6102, "{s} {v}");
    let (s, v) = call(
        t.anon("GET", "/user")
            .header("X-Auth-Email", "admin@getai.page")
            .header("X-Auth-Key", "0123456789abcdef0123456789abcdef01234"),
    );
    assert_eq!((s, code(&v)), (403, 9103));
    let (s, v) = call(t.global("GET", "/user"));
    assert_eq!(s, 200);
    assert_eq!(v["result"]["email"], "admin@getai.page");

    // Both fail routing before auth: a malformed id is 400 / 7003, an unknown route 404 / 7000
    // "No route for that URI" (docs/cloudflare-api.md §1 table).
    let (s, v) = call(t.anon("GET", "/zones/not-a-zone"));
    assert_eq!((s, code(&v)), (400, 7003));
    let (s, v) = call(t.anon("PATCH", "/nothing/here"));
    assert_eq!((s, code(&v)), (404, 7000));
    assert_eq!(v["errors"][0]["message"], "No route for that URI");
    let (s, v) = call(t.anon("GET", &format!("/accounts/{}/workers/nope", t.acct())));
    assert_eq!((s, code(&v)), (404, 7000));
    let (s, v) = call(t.anon("GET", "/user/tokens/not-hex"));
    assert_eq!((s, code(&v)), (400, 7003));

    // Gateway headers.
    let resp = t.global("GET", "/user").send().expect("response");
    let h = resp.headers();
    assert!(h["cf-ray"].to_str().unwrap_or("").ends_with("-EMU"));
    assert!(h["ratelimit"]
        .to_str()
        .unwrap_or("")
        .starts_with("\"default\";r="));
    assert_eq!(h["ratelimit-policy"], "\"burst\";q=1200;w=300");

    // Account-owned tokens verify only on the account endpoint.
    let (_, acct_value) = t.emu.mint_account_token(
        "acct",
        json!([{"effect":"allow","resources":{format!("com.cloudflare.api.account.{}", t.acct()):"*"},"permission_groups":[{"id":R2_WRITE}]}]),
    );
    assert!(acct_value.starts_with("cfat_"));
    let (s, v) = call(t.bearer("GET", "/user/tokens/verify", &acct_value));
    assert_eq!((s, code(&v)), (401, 1000));
    let (s, _) = call(t.bearer(
        "GET",
        &format!("/accounts/{}/tokens/verify", t.acct()),
        &acct_value,
    ));
    assert_eq!(s, 200);
    let (s, _) = call(t.bearer(
        "GET",
        &format!("/accounts/{}/r2/buckets", t.acct()),
        &acct_value,
    ));
    assert_eq!(s, 200);
}

#[test]
fn permission_groups_catalog() {
    let t = start();
    let (s, v) = call(t.global("GET", "/user/tokens/permission_groups"));
    assert_eq!(s, 200);
    let all = v["result"].as_array().expect("array");
    assert!(all.len() >= 20);
    assert!(v.get("result_info").is_none());
    let (_, v) = call(t.global(
        "GET",
        "/user/tokens/permission_groups?name=Access%3A%20Apps%20and%20Policies%20Read",
    ));
    let twins = v["result"].as_array().expect("array");
    assert_eq!(twins.len(), 2);
    assert_ne!(twins[0]["id"], twins[1]["id"]);
    let (_, v) = call(t.global("GET", "/user/tokens/permission_groups?name=Workers%20Routes%20Write&scope=com.cloudflare.api.account.zone"));
    assert_eq!(v["result"][0]["id"], ROUTES_WRITE);
    assert_eq!(
        t.emu
            .permission_group_id("Workers Routes Write", "com.cloudflare.api.account.zone")
            .as_deref(),
        Some(ROUTES_WRITE)
    );
    assert_eq!(
        t.emu
            .permission_group_id("Workers Routes Write", "com.cloudflare.api.account"),
        None
    );
}

#[test]
fn pagination_stops_with_an_empty_page() {
    let t = start();
    for i in 0..5 {
        t.emu.mint_token(
            &format!("t{i}"),
            json!([{"effect":"allow","resources":{"com.cloudflare.api.account.*":"*"},"permission_groups":[{"id":R2_WRITE}]}]),
        );
    }
    let mut seen = 0;
    for page in 1.. {
        let (s, v) = call(t.global("GET", &format!("/user/tokens?page={page}&per_page=2")));
        assert_eq!(s, 200);
        let n = v["result"].as_array().map(Vec::len).unwrap_or(0);
        assert_eq!(v["result_info"]["total_count"], 5);
        assert_eq!(v["result_info"]["total_pages"], 3);
        if n == 0 {
            assert_eq!(page, 4);
            break;
        }
        seen += n;
        assert!(page < 10, "paging does not stop");
    }
    assert_eq!(seen, 5);
    let (_, v) = call(t.global("GET", "/zones?page=2"));
    assert_eq!(v["result"], json!([]));
    let (_, v) = call(t.global("GET", "/zones?name=getai.page"));
    assert_eq!(v["result"][0]["name"], "getai.page");
    assert_eq!(v["result"][0]["account"]["name"], "Getai Platform");
}

#[test]
fn faults_and_rate_limit() {
    let t = start();
    t.emu.inject(Fault {
        method: Some("GET".into()),
        path_contains: Some("/user".into()),
        kind: FaultKind::RateLimit {
            retry_after_secs: 7,
        },
        times: 1,
    });
    let resp = t.global("GET", "/user").send().expect("response");
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    let v: Value = resp.json().expect("json");
    assert_eq!(code(&v), 971);
    // Consumed: the next one succeeds. Faults come before auth.
    let (s, _) = call(t.global("GET", "/user"));
    assert_eq!(s, 200);

    t.emu.inject(Fault {
        method: None,
        path_contains: None,
        kind: FaultKind::ServerError { status: 503 },
        times: 2,
    });
    let (s, v) = call(t.anon("GET", "/user"));
    assert_eq!((s, v["success"].clone()), (503, json!(false)));
    let (s, _) = call(t.anon("GET", "/user"));
    assert_eq!(s, 503);

    t.emu.inject(Fault {
        method: None,
        path_contains: None,
        kind: FaultKind::Drop,
        times: 1,
    });
    assert!(
        t.global("GET", "/user").send().is_err(),
        "dropped connection is an error"
    );
    let (s, _) = call(t.global("GET", "/user"));
    assert_eq!(s, 200);

    t.emu.inject(Fault {
        method: None,
        path_contains: None,
        kind: FaultKind::Latency(Duration::from_millis(300)),
        times: 1,
    });
    let began = Instant::now();
    let (s, _) = call(t.global("GET", "/user"));
    assert_eq!(s, 200);
    assert!(began.elapsed() >= Duration::from_millis(300));

    // Over HTTP.
    let inspect = format!("http://{}/__emulator/faults", t.emu.addr());
    let r = t
        .http
        .post(&inspect)
        .json(&json!({"kind": "server_error", "status": 502, "times": 1}))
        .send()
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    let (s, v) = call(t.global("GET", "/user"));
    assert_eq!((s, code(&v)), (502, 10001));
    t.http
        .post(&inspect)
        .json(&json!({"kind": "rate_limit", "times": 5}))
        .send()
        .expect("post");
    t.http.delete(&inspect).send().expect("delete");
    let (s, _) = call(t.global("GET", "/user"));
    assert_eq!(s, 200);

    // The request log records what happened, without secrets.
    let log = t.emu.requests();
    assert!(log.iter().any(|r| r.status == 0 && r.path == "/user"));
    assert!(log.iter().all(|r| r.path.starts_with('/')));
    let text = t
        .http
        .get(format!("http://{}/__emulator/requests", t.emu.addr()))
        .send()
        .expect("get")
        .text()
        .expect("text");
    assert!(!text.contains(&t.emu.seed().global_key));

    // The sliding window.
    let mut o = Options::new();
    o.rate_limit = Some((3, Duration::from_secs(60)));
    let t = start_with(o);
    for _ in 0..3 {
        assert_eq!(call(t.global("GET", "/user")).0, 200);
    }
    let resp = t.global("GET", "/user").send().expect("response");
    assert_eq!(resp.status().as_u16(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap_or("")
        .parse()
        .unwrap_or(0);
    assert!((1..=60).contains(&retry));
    // Another credential has its own window.
    assert_eq!(call(t.anon("GET", "/user")).0, 400);
}

fn upload_python_style(t: &T, token: &str, name: &str, meta: Value) -> (u16, Value) {
    let form = multipart::Form::new()
        .part(
            "files",
            multipart::Part::bytes(
                b"export default { fetch() { return new Response('hi') } }".to_vec(),
            )
            .file_name("index.js")
            .mime_str("application/javascript+module")
            .expect("mime"),
        )
        .part(
            "metadata",
            multipart::Part::text(meta.to_string())
                .mime_str("application/json")
                .expect("mime"),
        );
    call(
        t.bearer(
            "PUT",
            &format!("/accounts/{}/workers/scripts/{name}", t.acct()),
            token,
        )
        .multipart(form),
    )
}

#[test]
fn worker_upload_by_filename_and_by_part_name() {
    let t = start();
    let tok = t.admin_token();
    let a = t.acct();
    let (s, _) = call(
        t.bearer("POST", &format!("/accounts/{a}/r2/buckets"), &tok)
            .header("content-type", "text/plain;charset=UTF-8")
            .body(r#"{"name":"sites"}"#),
    );
    assert_eq!(s, 200);
    let meta = json!({"main_module": "index.js", "compatibility_date": "2025-01-01",
        "bindings": [{"type": "r2_bucket", "name": "SITES", "bucket_name": "sites"},
                     {"type": "secret_text", "name": "KEY", "text": "s3cret"}]});
    let (s, v) = upload_python_style(&t, &tok, "router", meta);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"]["id"], "router");
    assert_eq!(v["result"]["etag"].as_str().map(str::len), Some(64));

    // wrangler style: metadata without filename or content type, module named by part name.
    let form = multipart::Form::new()
        .text(
            "metadata",
            json!({"main_module": "index.js", "compatibility_date": "2025-01-01",
            "bindings": [{"type": "plain_text", "name": "MODE", "text": "x"}],
            "keep_bindings": ["secret_text"]})
            .to_string(),
        )
        .part(
            "index.js",
            multipart::Part::bytes(b"export default {}".to_vec())
                .file_name("index.js")
                .mime_str("application/javascript+module")
                .expect("mime"),
        );
    let (s, v) = call(
        t.bearer(
            "PUT",
            &format!(
                "/accounts/{a}/workers/scripts/router?excludeScript=true&bindings_inherit=strict"
            ),
            &tok,
        )
        .multipart(form),
    );
    assert_eq!(s, 200, "{v}");
    let form = multipart::Form::new()
        .text("metadata", json!({"main_module": "worker.js"}).to_string())
        .part(
            "worker.js",
            multipart::Part::bytes(b"export default {}".to_vec())
                .mime_str("application/javascript+module")
                .expect("mime"),
        );
    let (s, v) = call(
        t.bearer("PUT", &format!("/accounts/{a}/workers/scripts/other"), &tok)
            .multipart(form),
    );
    assert_eq!(s, 200, "{v}");

    // Settings: the secret survived (keep_bindings) and is shown without its text.
    let (_, v) = call(t.bearer(
        "GET",
        &format!("/accounts/{a}/workers/scripts/router/settings"),
        &tok,
    ));
    let bindings = v["result"]["bindings"].as_array().expect("bindings");
    assert!(bindings
        .iter()
        .any(|b| b["name"] == "KEY" && b.get("text").is_none()));
    assert!(bindings.iter().any(|b| b["name"] == "MODE"));
    assert!(!bindings.iter().any(|b| b["name"] == "SITES"));

    let resp = t
        .bearer(
            "GET",
            &format!("/accounts/{a}/workers/scripts/router/content/v2"),
            &tok,
        )
        .send()
        .expect("get");
    // The entry module is named by `cf-entrypoint` (wrangler `versions/secrets/index.ts`), and
    // the request-header names of `content.ts` are not sent back.
    assert_eq!(resp.headers()["cf-entrypoint"], "index.js");
    assert!(resp.headers().get("cf-worker-main-module-part").is_none());
    // A module Worker comes back as multipart/form-data, one part per module (docs/cloudflare-api.md
    // §8 "Reading a script back"), never as the bare module.
    let ct = resp.headers()["content-type"]
        .to_str()
        .expect("ct")
        .to_string();
    let boundary = ct
        .strip_prefix("multipart/form-data; boundary=")
        .unwrap_or_else(|| panic!("not multipart: {ct}"))
        .to_string();
    let body = resp.text().expect("text");
    assert!(body.starts_with(&format!("--{boundary}\r\n")), "{body}");
    assert!(body.ends_with(&format!("--{boundary}--\r\n")), "{body}");
    assert!(
        body.contains("Content-Disposition: form-data; name=\"index.js\"; filename=\"index.js\"\r\nContent-Type: application/javascript+module\r\n\r\nexport default {}\r\n"),
        "{body}"
    );

    let (_, v) = call(t.bearer("GET", &format!("/accounts/{a}/workers/scripts"), &tok));
    assert_eq!(v["result"].as_array().map(Vec::len), Some(2));
    assert_eq!(t.emu.scripts().len(), 2);

    // Errors: missing main module, missing bucket, bad name, missing script.
    let form = multipart::Form::new()
        .text("metadata", json!({"main_module": "nope.js"}).to_string())
        .part(
            "files",
            multipart::Part::bytes(b"x".to_vec()).file_name("index.js"),
        );
    let (s, v) = call(
        t.bearer("PUT", &format!("/accounts/{a}/workers/scripts/bad"), &tok)
            .multipart(form),
    );
    assert_eq!((s, code(&v)), (400, 10021));
    let (s, v) = upload_python_style(
        &t,
        &tok,
        "bad",
        json!({"main_module": "index.js",
        "bindings": [{"type": "r2_bucket", "name": "MISSING", "bucket_name": "ghost"}]}),
    );
    assert_eq!((s, code(&v)), (400, 10021));
    assert!(v["errors"][0]["message"]
        .as_str()
        .unwrap_or("")
        .contains("MISSING"));
    let (s, v) = upload_python_style(&t, &tok, "9bad", json!({"main_module": "index.js"}));
    assert_eq!((s, code(&v)), (400, 10021));
    let (s, v) = call(t.bearer(
        "GET",
        &format!("/accounts/{a}/workers/scripts/ghost/settings"),
        &tok,
    ));
    assert_eq!((s, code(&v)), (404, 10007));
    let (s, v) = call(t.bearer(
        "DELETE",
        &format!("/accounts/{a}/workers/scripts/other?force=true"),
        &tok,
    ));
    assert_eq!((s, v["result"].clone()), (200, Value::Null));
}

#[test]
fn worker_routes() {
    let t = start();
    let tok = t.admin_token();
    let z = t.zone();
    let path = format!("/zones/{z}/workers/routes");
    let (s, v) = call(
        t.bearer("POST", &path, &tok)
            .json(&json!({"pattern": "*/*"})),
    );
    assert_eq!(s, 200, "{v}");
    let id = v["result"]["id"].as_str().expect("id").to_string();
    assert_eq!(v["result"]["script"], Value::Null);
    let (s, v) = call(
        t.bearer("POST", &path, &tok)
            .json(&json!({"pattern": "*/*"})),
    );
    assert_eq!((s, code(&v)), (409, 10020));
    for good in [
        "*.getai.page/*",
        "*getai.page/*",
        "shop.getai.page/assets/*",
    ] {
        let (s, v) = call(
            t.bearer("POST", &path, &tok)
                .json(&json!({"pattern": good})),
        );
        assert_eq!(s, 200, "{good}: {v}");
    }
    for bad in [
        "other.com/*",
        "https://getai.page/*",
        "getai.page/?a=1",
        "a.*.getai.page/*",
        "getai.page/*/x",
    ] {
        let (s, v) = call(t.bearer("POST", &path, &tok).json(&json!({"pattern": bad})));
        assert_eq!((s, code(&v)), (400, 10022), "{bad}");
    }
    let (s, v) = call(
        t.bearer("POST", &path, &tok)
            .json(&json!({"pattern": "x.getai.page/*", "script": "ghost"})),
    );
    assert_eq!((s, code(&v)), (400, 10019));
    let (s, v) = call(t.bearer("DELETE", &format!("{path}/{id}"), &tok));
    assert_eq!((s, v["result"]["id"].as_str()), (200, Some(id.as_str())));
    let (s, v) = call(t.bearer("GET", &format!("{path}/{id}"), &tok));
    assert_eq!((s, code(&v)), (404, 10005));
    assert_eq!(t.emu.routes().len(), 3);
}

#[test]
fn custom_hostname_post_then_get_quirk_and_activation() {
    let t = start();
    let tok = t.admin_token();
    let z = t.zone();
    let path = format!("/zones/{z}/custom_hostnames");
    let body = json!({"hostname": "shop.customer.com", "ssl": {"method": "http", "type": "dv", "settings": {"min_tls_version": "1.2"}}, "custom_metadata": {"tenant": "t1"}});
    let (s, v) = call(t.bearer("POST", &path, &tok).json(&body));
    assert_eq!(s, 201, "{v}");
    let r = &v["result"];
    assert_eq!(r["status"], "pending");
    assert_eq!(r["ssl"]["status"], "initializing");
    assert!(r["ssl"].get("validation_records").is_none());
    assert_eq!(
        r["ownership_verification"]["name"],
        "_cf-custom-hostname.shop.customer.com"
    );
    let id = r["id"].as_str().expect("id").to_string();

    let (s, v) = call(t.bearer("POST", &path, &tok).json(&body));
    assert_eq!((s, code(&v)), (409, 1406));
    for (host, c) in [
        ("a.example.com", 1411),
        ("bad_host", 1407),
        ("x.getai.page", 1409),
    ] {
        let (s, v) = call(
            t.bearer("POST", &path, &tok)
                .json(&json!({"hostname": host})),
        );
        assert_eq!((s, code(&v)), (400, c), "{host}");
    }
    let (s, v) = call(
        t.bearer("POST", &path, &tok)
            .json(&json!({"hostname": "b.customer.com", "ssl": {"method": "fax", "type": "dv"}})),
    );
    assert_eq!((s, code(&v)), (400, 1432));
    let (s, v) = call(t.bearer("POST", &path, &tok).body("{"));
    assert_eq!((s, code(&v)), (400, 1400));

    // Two reads pending with records, then active (activate_custom_hostnames_after = 2).
    for _ in 0..2 {
        let (s, v) = call(t.bearer("GET", &format!("{path}/{id}"), &tok));
        assert_eq!(s, 200);
        assert_eq!(v["result"]["ssl"]["status"], "pending_validation");
        assert_eq!(
            v["result"]["ssl"]["validation_records"][0]["status"],
            "pending"
        );
        assert!(v["result"]["ssl"]["validation_records"][0]["http_url"].is_string());
    }
    let (_, v) = call(t.bearer("GET", &format!("{path}?hostname=shop.customer.com"), &tok));
    assert_eq!(v["result"][0]["status"], "active");
    assert_eq!(v["result"][0]["ssl"]["status"], "active");
    assert!(v["result"][0]["ssl"].get("validation_records").is_none());
    assert_eq!(v["result_info"]["total_count"], 1);

    let (s, v) = call(t.bearer(
        "GET",
        &format!("{path}?id={id}&hostname=shop.customer.com"),
        &tok,
    ));
    assert_eq!((s, code(&v)), (400, 1438));
    let (s, _) = call(
        t.bearer("PATCH", &format!("{path}/{id}"), &tok)
            .json(&json!({"custom_metadata": {"tenant": "t2"}})),
    );
    assert_eq!(s, 202);
    let (s, v) = call(t.bearer("DELETE", &format!("{path}/{id}"), &tok));
    assert_eq!((s, v), (200, json!({"id": id})));
    let (s, v) = call(t.bearer("GET", &format!("{path}/{id}"), &tok));
    assert_eq!((s, code(&v)), (404, 1436));

    // Fallback origin.
    let fo = format!("{path}/fallback_origin");
    let (s, v) = call(t.bearer("GET", &fo, &tok));
    assert_eq!((s, code(&v)), (404, 1551));
    let (s, v) = call(
        t.bearer("PUT", &fo, &tok)
            .json(&json!({"origin": "other.com"})),
    );
    assert_eq!(s, 400, "{v}");
    let (s, v) = call(
        t.bearer("PUT", &fo, &tok)
            .json(&json!({"origin": "service.getai.page"})),
    );
    assert_eq!(
        (s, v["result"]["status"].clone()),
        (200, json!("pending_deployment"))
    );
    let (_, v) = call(t.bearer("GET", &fo, &tok));
    let (_, v2) = call(t.bearer("GET", &fo, &tok));
    assert_eq!(v["result"]["origin"], "service.getai.page");
    assert_eq!(v2["result"]["status"], "active");
}

#[test]
fn r2_objects_round_trip() {
    let t = start();
    let tok = t.admin_token();
    let a = t.acct();
    let b = format!("/accounts/{a}/r2/buckets");
    assert_eq!(
        call(t.bearer("POST", &b, &tok).json(&json!({"name": "sites"}))).0,
        200
    );
    let (s, v) = call(t.bearer("POST", &b, &tok).json(&json!({"name": "sites"})));
    assert_eq!((s, code(&v)), (409, 10004));
    let (s, v) = call(
        t.bearer("POST", &b, &tok)
            .json(&json!({"name": "Bad_Name"})),
    );
    assert_eq!((s, code(&v)), (400, 10005));
    let (s, v) = call(t.bearer("GET", &format!("{b}/ghost"), &tok));
    assert_eq!((s, code(&v)), (404, 10006));
    // A jurisdiction is part of the bucket's identity.
    let (s, v) = call(
        t.bearer("GET", &format!("{b}/sites"), &tok)
            .header("cf-r2-jurisdiction", "eu"),
    );
    assert_eq!((s, code(&v)), (404, 10006));

    let o = format!("{b}/sites/objects");
    let (s, v) = call(
        t.bearer("PUT", &format!("{o}/sites/t1/index.html"), &tok)
            .header("content-type", "text/html; charset=utf-8")
            .header("cache-control", "public, max-age=60")
            .body("<h1>hi</h1>"),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"]["size"], "11");
    assert_eq!(v["result"]["key"], "sites/t1/index.html");
    let (s, _) = call(
        t.bearer("PUT", &format!("{o}/sites%2Ft1%2Fa%20b%.css"), &tok)
            .body("body{}"),
    );
    assert_eq!(s, 200);
    let (s, _) = call(
        t.bearer("PUT", &format!("{o}/hosts/shop.customer.com.json"), &tok)
            .body("{}"),
    );
    assert_eq!(s, 200);

    let resp = t
        .bearer("GET", &format!("{o}/sites%2Ft1%2Findex.html"), &tok)
        .send()
        .expect("get");
    assert_eq!(resp.status().as_u16(), 200);
    let etag = resp.headers()["etag"].to_str().unwrap_or("").to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    assert!(resp.headers().contains_key("last-modified"));
    assert_eq!(resp.text().expect("text"), "<h1>hi</h1>");
    let resp = t
        .bearer("GET", &format!("{o}/sites/t1/index.html"), &tok)
        .header("if-none-match", &etag)
        .send()
        .expect("get");
    assert_eq!(resp.status().as_u16(), 304);
    let (s, v) = call(t.bearer("GET", &format!("{o}/nope"), &tok));
    assert_eq!((s, code(&v)), (404, 10007));

    let keys: Vec<String> = t.emu.objects("sites").into_iter().map(|o| o.key).collect();
    assert_eq!(
        keys,
        vec![
            "hosts/shop.customer.com.json",
            "sites/t1/a b%.css",
            "sites/t1/index.html"
        ]
    );

    // Listing: delimiter, then paging with the cursor.
    let (_, v) = call(t.bearer("GET", &format!("{o}?delimiter=/"), &tok));
    assert_eq!(v["result"], json!([]));
    assert_eq!(v["result_info"]["delimited"], json!(["hosts/", "sites/"]));
    let (_, v) = call(t.bearer("GET", &format!("{o}?prefix=sites/&per_page=1"), &tok));
    assert_eq!(v["result"][0]["key"], "sites/t1/a b%.css");
    assert_eq!(v["result"][0]["size"], 6);
    assert_eq!(v["result_info"]["is_truncated"], true);
    let cursor = v["result_info"]["cursor"]
        .as_str()
        .expect("cursor")
        .to_string();
    let (_, v) = call(t.bearer(
        "GET",
        &format!("{o}?prefix=sites/&per_page=1&cursor={cursor}"),
        &tok,
    ));
    assert_eq!(v["result"][0]["key"], "sites/t1/index.html");
    assert_eq!(
        v["result"][0]["http_metadata"]["cacheControl"],
        "public, max-age=60"
    );
    assert_eq!(v["result_info"]["is_truncated"], false);

    let (s, v) = call(t.bearer("DELETE", &format!("{b}/sites"), &tok));
    assert_eq!((s, code(&v)), (409, 10008));
    let (s, v) = call(t.bearer("DELETE", &format!("{o}/hosts/shop.customer.com.json"), &tok));
    assert_eq!(
        (s, v["result"]["key"].clone()),
        (200, json!("hosts/shop.customer.com.json"))
    );

    // A token holding only the bucket-scoped item groups, even on this very bucket, is refused
    // every REST object call with 403 / 10000 (workers-sdk #9235, docs/cloudflare-api.md §7); the
    // account-level Workers R2 Storage Write (`tok`) works.
    t.global("POST", &b)
        .json(&json!({"name": "other"}))
        .send()
        .expect("create");
    let item_write = "2efd5506f9c8494dacb1fa10a3e7d5b6";
    let (_, item) = t.emu.mint_token(
        "item",
        json!([{"effect": "allow",
        "resources": {format!("com.cloudflare.edge.r2.bucket.{a}_default_sites"): "*"},
        "permission_groups": [{"id": ITEM_READ}, {"id": item_write}]}]),
    );
    for req in [
        t.bearer("GET", &format!("{o}/sites/t1/index.html"), &item),
        t.bearer("PUT", &format!("{o}/x"), &item).body("x"),
        t.bearer("DELETE", &format!("{o}/sites/t1/index.html"), &item),
        t.bearer("GET", &format!("{b}/sites/objects"), &item),
        t.bearer("GET", &format!("{b}/other/objects"), &item),
        t.bearer("GET", &b, &item),
    ] {
        let (s, v) = call(req);
        assert_eq!((s, code(&v)), (403, 10000), "{v}");
    }
    assert_eq!(
        call(t.bearer("GET", &format!("{o}/sites/t1/index.html"), &tok)).0,
        200
    );

    let (_, v) = call(t.bearer("GET", &format!("{b}?per_page=1"), &tok));
    assert_eq!(v["result"]["buckets"][0]["name"], "other");
    assert!(v["result_info"]["cursor"].is_string());
}

#[test]
fn roll_invalidates_the_old_value() {
    let t = start();
    let (id, old) = t.emu.mint_token("ci", json!([{"effect":"allow","resources":{"com.cloudflare.api.account.*":"*"},"permission_groups":[{"id":ACCOUNT_SETTINGS_READ}]}]));
    assert_eq!(call(t.bearer("GET", "/user/tokens/verify", &old)).0, 200);
    let (s, v) = call(t.global("PUT", &format!("/user/tokens/{id}/value")));
    assert_eq!(s, 200);
    let new = v["result"].as_str().expect("bare string").to_string();
    assert_ne!(new, old);
    let (s, v) = call(t.bearer("GET", "/user/tokens/verify", &old));
    assert_eq!((s, code(&v)), (401, 1000));
    assert_eq!(
        call(t.bearer("GET", &format!("/accounts/{}", t.acct()), &new)).0,
        200
    );
    let (s, _) = call(t.global("DELETE", &format!("/user/tokens/{id}")));
    assert_eq!(s, 200);
    assert_eq!(call(t.bearer("GET", "/user/tokens/verify", &new)).0, 401);
}

#[test]
fn ip_condition_and_status_deny() {
    let t = start();
    let a = t.acct();
    let policies = json!([{"effect":"allow","resources":{format!("com.cloudflare.api.account.{a}"):"*"},"permission_groups":[{"id":ACCOUNT_SETTINGS_READ}]}]);
    for (cond, allowed) in [
        (json!({"request.ip": {"in": ["10.0.0.0/8"]}}), false),
        (json!({"request.ip": {"not_in": ["127.0.0.1/32"]}}), false),
        (json!({"request_ip": {"in": ["127.0.0.1/32"]}}), true),
    ] {
        let (s, v) = call(
            t.global("POST", "/user/tokens")
                .json(&json!({"name": "ip", "policies": policies, "condition": cond})),
        );
        assert_eq!(s, 200, "{v}");
        let value = v["result"]["value"].as_str().expect("value").to_string();
        let (s, v) = call(t.bearer("GET", &format!("/accounts/{a}"), &value));
        if allowed {
            assert_eq!(s, 200);
        } else {
            // 403 / 9109 naming the address, on every call, verify included
            // (docs/cloudflare-api.md §4 "IP-restricted tokens").
            let denied = json!([{"code": 9109, "message": "Cannot use the access token from location: 127.0.0.1"}]);
            assert_eq!((s, v["errors"].clone()), (403, denied.clone()), "{cond}");
            let (s, v) = call(t.bearer("GET", "/user/tokens/verify", &value));
            assert_eq!((s, v["errors"].clone()), (403, denied), "{cond}");
        }
    }
    // A disabled token is refused everywhere but verify, which reports the status.
    let (id, value) = t.emu.mint_token("d", policies.clone());
    let (s, _) = call(
        t.global("PUT", &format!("/user/tokens/{id}"))
            .json(&json!({"name": "d", "policies": policies, "status": "disabled"})),
    );
    assert_eq!(s, 200);
    // 401 / 1000: the status docs/cloudflare-api.md §1 lists for 1000 (never 403).
    let (s, v) = call(t.bearer("GET", &format!("/accounts/{a}"), &value));
    assert_eq!((s, code(&v)), (401, 1000), "{v}");
    let (_, v) = call(t.bearer("GET", "/user/tokens/verify", &value));
    assert_eq!(v["result"]["status"], "disabled");
}

#[test]
fn state_file_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("state.json");
    let mut o = Options::new();
    o.state_file = Some(file.clone());
    let value;
    {
        let t = start_with(o.clone());
        let b = format!("/accounts/{}/r2/buckets", t.acct());
        assert_eq!(
            call(t.global("POST", &b).json(&json!({"name": "kept"}))).0,
            200
        );
        assert_eq!(
            call(
                t.global("PUT", &format!("{b}/kept/objects/a/b.txt"))
                    .body("hello")
            )
            .0,
            200
        );
        value = t.admin_token();
    }
    let text = std::fs::read_to_string(&file).expect("state file");
    assert!(!text.contains(&value), "token values are never stored");
    let t = start_with(o);
    assert_eq!(t.emu.buckets(), vec!["kept".to_string()]);
    assert_eq!(t.emu.objects("kept")[0].body, b"hello");
    assert_eq!(call(t.bearer("GET", "/user/tokens/verify", &value)).0, 200);
    let state: Value = t
        .http
        .get(format!("http://{}/__emulator/state", t.emu.addr()))
        .send()
        .expect("get")
        .json()
        .expect("json");
    assert_eq!(
        state["result"]["buckets"][0]["objects"][0]["key"],
        "a/b.txt"
    );
    assert!(!state.to_string().contains(&t.emu.seed().global_key));
}

/// The IP condition key is an open question (docs/cloudflare-api.md §4): by default both keys are
/// stored and echoed as sent; `Options::condition_keys` makes the emulator honour only one and
/// drop the other silently, storing no condition.
#[test]
fn condition_keys_can_be_limited_to_one() {
    use cfsetup_emulator::ConditionKeys;
    for (keys, key, kept) in [
        (ConditionKeys::Both, "request_ip", true),
        (ConditionKeys::Both, "request.ip", true),
        (ConditionKeys::UnderscoreOnly, "request_ip", true),
        (ConditionKeys::UnderscoreOnly, "request.ip", false),
        (ConditionKeys::DottedOnly, "request.ip", true),
        (ConditionKeys::DottedOnly, "request_ip", false),
    ] {
        let t = start_with(Options {
            condition_keys: keys,
            ..Options::new()
        });
        let a = t.acct();
        let cond = json!({key: {"in": ["10.0.0.0/8"]}});
        let (s, v) = call(t.global("POST", "/user/tokens").json(&json!({
            "name": "ip",
            "policies": [{"effect":"allow","resources":{format!("com.cloudflare.api.account.{a}"):"*"},"permission_groups":[{"id":ACCOUNT_SETTINGS_READ}]}],
            "condition": cond,
        })));
        assert_eq!(s, 200, "{v}");
        let id = v["result"]["id"].as_str().expect("id").to_string();
        let value = v["result"]["value"].as_str().expect("value").to_string();
        let echoed = v["result"].get("condition").cloned();
        let (_, got) = call(t.global("GET", &format!("/user/tokens/{id}")));
        let stored = got["result"].get("condition").cloned();
        let (s, _) = call(t.bearer("GET", &format!("/accounts/{a}"), &value));
        if kept {
            assert_eq!(echoed.as_ref(), Some(&cond), "{keys:?} {key}");
            assert_eq!(stored.as_ref(), Some(&cond), "{keys:?} {key}");
            assert_eq!(s, 403, "{keys:?} {key}: restricted to 10/8");
        } else {
            assert_eq!((echoed, stored), (None, None), "{keys:?} {key}");
            assert_eq!(s, 200, "{keys:?} {key}: unrestricted");
        }
    }
}

/// `Options.r2_rest_accepts_bucket_tokens`: the other answer to the unconfirmed read paths
/// (docs/cloudflare-api.md §7 "Object REST endpoints"), so a client's reads can be tried both ways.
#[test]
fn rest_objects_can_accept_bucket_scoped_tokens() {
    let mut o = Options::new();
    o.r2_rest_accepts_bucket_tokens = true;
    let t = start_with(o);
    let a = t.acct();
    let b = format!("/accounts/{a}/r2/buckets");
    for name in ["sites", "other"] {
        assert_eq!(
            call(t.global("POST", &b).json(&json!({"name": name}))).0,
            200
        );
    }
    assert_eq!(
        call(t.global("PUT", &format!("{b}/sites/objects/k")).body("v")).0,
        200
    );
    let (_, reader) = t.emu.mint_token(
        "item read",
        json!([{"effect": "allow",
        "resources": {format!("com.cloudflare.edge.r2.bucket.{a}_default_sites"): "*"},
        "permission_groups": [{"id": ITEM_READ}]}]),
    );
    let resp = t
        .bearer("GET", &format!("{b}/sites/objects/k"), &reader)
        .send()
        .expect("get");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.text().expect("body"), "v");
    let (s, v) = call(t.bearer("GET", &format!("{b}/sites/objects"), &reader));
    assert_eq!((s, v["result"][0]["key"].clone()), (200, json!("k")));
    // Only on its own bucket, and a read group does not write.
    let (s, v) = call(t.bearer("GET", &format!("{b}/other/objects"), &reader));
    assert_eq!((s, code(&v)), (403, 10000));
    let (s, v) = call(
        t.bearer("PUT", &format!("{b}/sites/objects/x"), &reader)
            .body("x"),
    );
    assert_eq!((s, code(&v)), (403, 10000));
}

/// The REST listing shares the S3 walk: `start_after` equal to a common prefix resumes after it
/// (s3-tests `test_bucket_list_delimiter_prefix`), and a page never repeats a prefix.
#[test]
fn rest_listing_start_after_a_common_prefix() {
    let t = start();
    let a = t.acct();
    let b = format!("/accounts/{a}/r2/buckets");
    assert_eq!(
        call(t.global("POST", &b).json(&json!({"name": "lst"}))).0,
        200
    );
    for k in [
        "asdf",
        "boo/bar",
        "boo/baz/xyzzy",
        "cquux/thud",
        "cquux/bla",
    ] {
        assert_eq!(
            call(t.global("PUT", &format!("{b}/lst/objects/{k}")).body("x")).0,
            200
        );
    }
    let (s, v) = call(t.global(
        "GET",
        &format!("{b}/lst/objects?delimiter=/&start_after=boo/"),
    ));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"], json!([]));
    assert_eq!(v["result_info"]["delimited"], json!(["cquux/"]));
    // Paging one entry at a time visits each prefix once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let q = match &cursor {
            Some(c) => format!("{b}/lst/objects?delimiter=/&per_page=1&cursor={c}"),
            None => format!("{b}/lst/objects?delimiter=/&per_page=1"),
        };
        let (_, v) = call(t.global("GET", &q));
        for k in v["result"].as_array().expect("array") {
            seen.push(k["key"].as_str().expect("key").to_string());
        }
        for p in v["result_info"]["delimited"].as_array().expect("array") {
            seen.push(p.as_str().expect("prefix").to_string());
        }
        match v["result_info"]["cursor"].as_str() {
            Some(c) if v["result_info"]["is_truncated"] == json!(true) => cursor = Some(c.into()),
            _ => break,
        }
    }
    assert_eq!(seen, ["asdf", "boo/", "cquux/"]);
}

#[test]
fn custom_hostname_quota_hard_cap_txt_validation_and_restart() {
    let t = start();
    let tok = t.admin_token();
    let z = t.zone();
    let path = format!("/zones/{z}/custom_hostnames");
    let (s, v) = call(t.bearer("GET", &format!("{path}/quota"), &tok));
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["result"],
        json!({"allocated": 100, "exceeded": false, "hard_cap": 50000, "used": 0})
    );
    t.emu.set_custom_hostname_quota(1, 2);
    let txt = json!({"hostname": "a.customer.com", "ssl": {"method": "txt", "type": "dv"}});
    let (s, v) = call(t.bearer("POST", &path, &tok).json(&txt));
    assert_eq!(s, 201, "{v}");
    let id = v["result"]["id"].as_str().expect("id").to_string();
    let (s, _) = call(
        t.bearer("POST", &path, &tok)
            .json(&json!({"hostname": "b.customer.com"})),
    );
    assert_eq!(s, 201);
    let (_, v) = call(t.bearer("GET", &format!("{path}/quota"), &tok));
    assert_eq!(
        v["result"],
        json!({"allocated": 1, "exceeded": true, "hard_cap": 2, "used": 2})
    );
    // At the hard cap a create is refused, and nothing is created.
    let (s, v) = call(
        t.bearer("POST", &path, &tok)
            .json(&json!({"hostname": "c.customer.com"})),
    );
    assert_eq!((s, code(&v)), (403, 1405), "{v}");
    assert_eq!(t.emu.custom_hostnames().len(), 2);

    // TXT validation: the _acme-challenge record, then active.
    let (_, v) = call(t.bearer("GET", &format!("{path}/{id}"), &tok));
    let rec = &v["result"]["ssl"]["validation_records"][0];
    assert_eq!(rec["txt_name"], "_acme-challenge.a.customer.com");
    assert!(rec["txt_value"].is_string());
    let old_value = rec["txt_value"].clone();
    call(t.bearer("GET", &format!("{path}/{id}"), &tok));
    let (_, v) = call(t.bearer("GET", &format!("{path}/{id}"), &tok));
    assert_eq!(v["result"]["status"], "active");
    assert_eq!(v["result"]["ssl"]["status"], "active");
    assert!(v["result"]["ssl"]["expires_on"].is_string());
    // A PATCH with ssl restarts validation with new tokens; the hostname stays active.
    let (s, v) = call(
        t.bearer("PATCH", &format!("{path}/{id}"), &tok)
            .json(&json!({"ssl": {"method": "txt", "type": "dv"}})),
    );
    assert_eq!(s, 202, "{v}");
    let (_, v) = call(t.bearer("GET", &format!("{path}/{id}"), &tok));
    assert_eq!(v["result"]["status"], "active");
    assert_eq!(v["result"]["ssl"]["status"], "pending_validation");
    assert_ne!(
        v["result"]["ssl"]["validation_records"][0]["txt_value"],
        old_value
    );
    // Moving to HTTP validation.
    call(
        t.bearer("PATCH", &format!("{path}/{id}"), &tok)
            .json(&json!({"ssl": {"method": "http", "type": "dv"}})),
    );
    let (_, v) = call(t.bearer("GET", &format!("{path}/{id}"), &tok));
    assert_eq!(v["result"]["ssl"]["method"], "http");
    assert!(v["result"]["ssl"]["validation_records"][0]["http_url"].is_string());

    // A test can force any state, over HTTP too.
    let r = t
        .http
        .post(format!(
            "{}/__emulator/custom_hostnames/b.customer.com",
            t.emu.s3_endpoint()
        ))
        .json(&json!({"status": "moved", "verification_errors": ["custom hostname does not CNAME to this zone."]}))
        .send()
        .expect("inspect");
    assert_eq!(r.status(), 200);
    let (_, v) = call(t.bearer("GET", &format!("{path}?hostname=b.customer.com"), &tok));
    assert_eq!(v["result"][0]["status"], "moved");
    assert_eq!(
        v["result"][0]["verification_errors"][0],
        "custom hostname does not CNAME to this zone."
    );
}

#[test]
fn the_dns_server_answers_what_tests_load() {
    use std::net::UdpSocket;
    let t = start();
    t.emu
        .dns_set("shop.customer.com", "CNAME", &["edge.getai.page"]);
    t.emu.dns_set("edge.getai.page", "A", &["192.0.2.1"]);
    // A hand-made query: id 7, RD, one question `shop.customer.com A IN`.
    let mut q = vec![0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["shop", "customer", "com"] {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    sock.send_to(&q, t.emu.dns_addr()).expect("send");
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("an answer");
    assert_eq!(&buf[..2], &[0, 7], "same id");
    assert_eq!(buf[3] & 0x0f, 0, "NOERROR");
    assert_eq!(u16::from_be_bytes([buf[6], buf[7]]), 2, "CNAME + A");
    assert!(n > q.len());
    // An unknown name is NXDOMAIN.
    let mut q2 = q.clone();
    q2[13] = b'x';
    sock.send_to(&q2, t.emu.dns_addr()).expect("send");
    let _ = sock.recv(&mut buf).expect("an answer");
    assert_eq!(buf[3] & 0x0f, 3, "NXDOMAIN");
}

#[test]
fn round_trips_counts_requests_sent_together_once() {
    let t = start_with(Options {
        latency: Duration::from_millis(40),
        ..Options::new()
    });
    // Two at once (threads), then one after both were answered: two round trips, three requests.
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| call(t.global("GET", "/user")));
        }
    });
    assert_eq!(call(t.global("GET", "/user")).0, 200);
    assert_eq!(t.emu.requests().len(), 3);
    assert_eq!(t.emu.round_trips(), 2);
    t.emu.clear_requests();
    assert_eq!(t.emu.round_trips(), 0);
}
