//! `cfsetup deploy-infra` against the emulator: a first run creates everything, a second run
//! changes nothing and sends no write, routes held by other Workers are left alone unless taken
//! over, dry runs write nothing, a 429 storm still converges, the jurisdiction reaches both the
//! header and the binding, a partial failure is reported and finished by a re-run, and bad input
//! exits 2 before any request.

use cfsetup::cloudflare::r2::BucketRef;
use cfsetup::cloudflare::workers::ScriptUpload;
use cfsetup::cloudflare::{Auth, Client, ClientOptions};
use cfsetup::platform;
use cfsetup::secret::Secret;
use cfsetup_emulator::{Fault, FaultKind};
use serde_json::{json, Value};
use url::Url;

use crate::common::World;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A client of our own, for setting the scene and reading state back the way the API shows it.
fn client(w: &World, token: &str) -> Client {
    let options = ClientOptions {
        ..ClientOptions::default()
    };
    Client::new(
        &Url::parse(&w.emu.base_url()).unwrap(),
        Auth::Token(Secret::new(token)),
        options,
    )
    .unwrap()
}

fn deploy(w: &World, token: &str, args: &[&str]) -> crate::common::Run {
    let mut cmd = w.with_token(token);
    cmd.arg("deploy-infra").args(args);
    w.run(&mut cmd)
}

/// (resource, name, action) of every row.
fn rows(json: &Value) -> Vec<(String, String, String)> {
    json["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|r| {
            (
                r["resource"].as_str().unwrap().to_string(),
                r["name"].as_str().unwrap().to_string(),
                r["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn row(resource: &str, name: &str, action: &str) -> (String, String, String) {
    (resource.into(), name.into(), action.into())
}

fn detail<'a>(json: &'a Value, name: &str) -> &'a str {
    json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .and_then(|r| r["detail"].as_str())
        .unwrap_or_else(|| panic!("no row {name}"))
}

/// The rows of a complete first run with the defaults.
fn all_created(w: &World) -> Vec<(String, String, String)> {
    vec![
        row("bucket", "cfsetup-sites", "created"),
        row("worker", "cfsetup-router", "created"),
        row("route", &format!("*.{}/*", w.zone_name()), "created"),
        row("route", "*/*", "created"),
        row("fallback_origin", "(none)", "skipped"),
    ]
}

fn all_unchanged(w: &World) -> Vec<(String, String, String)> {
    vec![
        row("bucket", "cfsetup-sites", "unchanged"),
        row("worker", "cfsetup-router", "unchanged"),
        row("route", &format!("*.{}/*", w.zone_name()), "unchanged"),
        row("route", "*/*", "unchanged"),
        row("fallback_origin", "(none)", "skipped"),
    ]
}

/// (pattern, script) of every route in the zone, sorted.
fn routes(w: &World) -> Vec<(String, Option<String>)> {
    let mut r: Vec<_> = w
        .emu
        .routes()
        .into_iter()
        .map(|r| (r.pattern, r.script))
        .collect();
    r.sort();
    r
}

fn upload_other_worker(w: &World, c: &Client, name: &str) {
    let upload = ScriptUpload {
        metadata: json!({ "main_module": "index.js", "compatibility_date": "2024-01-01" }),
        main_module: "index.js".into(),
        source: bytes::Bytes::from_static(
            b"export default { fetch() { return new Response('x') } }",
        ),
    };
    rt().block_on(c.upload_script(&w.account_id(), name, &upload))
        .unwrap();
}

#[test]
fn a_first_run_creates_everything_and_a_second_run_writes_nothing() {
    let w = World::new();
    let token = w.full_token();
    let first = deploy(&w, &token, &["--json"]).success();
    let json = first.json();
    assert_eq!(rows(&json), all_created(&w));
    assert_eq!(json["dry_run"], false);
    assert_eq!(json["ok"], true);
    assert_eq!(
        json["platform_domain"],
        w.zone_name(),
        "defaults to the zone's name"
    );
    assert_eq!(json["bucket"], "cfsetup-sites");
    assert_eq!(json["worker"], "cfsetup-router");
    assert_eq!(json["account"]["name"], w.emu.seed().account_name);
    assert_eq!(json["zone"]["name"], w.zone_name());
    assert_eq!(json["jurisdiction"], Value::Null);

    // The state, as the emulator holds it.
    assert_eq!(w.emu.buckets(), ["cfsetup-sites"]);
    let scripts = w.emu.scripts();
    assert_eq!(scripts.len(), 1);
    let s = &scripts[0];
    assert_eq!(s.name, "cfsetup-router");
    assert_eq!(s.metadata["main_module"], "router.js");
    assert_eq!(
        s.metadata["compatibility_date"],
        platform::COMPATIBILITY_DATE
    );
    assert_eq!(
        s.metadata["bindings"],
        json!([
            {"type": "r2_bucket", "name": "SITES", "bucket_name": "cfsetup-sites"},
            {"type": "plain_text", "name": "PLATFORM_DOMAIN", "text": w.zone_name()},
        ])
    );
    let keep = s.metadata["keep_bindings"].as_array().unwrap();
    assert!(keep.contains(&json!("secret_text")) && keep.contains(&json!("secret_key")));
    assert_eq!(s.modules.len(), 1);
    assert_eq!(s.modules[0].0, "router.js");
    assert_eq!(s.modules[0].1, "application/javascript+module");
    assert_eq!(s.modules[0].2, platform::WORKER_SOURCE.as_bytes());
    assert_eq!(
        routes(&w),
        [
            (
                format!("*.{}/*", w.zone_name()),
                Some("cfsetup-router".to_string())
            ),
            ("*/*".to_string(), Some("cfsetup-router".to_string())),
        ]
    );

    // Second run: everything unchanged, and the request log holds no write at all.
    w.emu.clear_requests();
    let second = deploy(&w, &token, &[]).success();
    assert_eq!(w.writes().len(), 0, "writes: {:?}", w.writes());
    let out = second.stdout();
    assert!(out.contains("unchanged"), "{out}");
    assert!(!out.contains("created"), "{out}");
    assert!(
        out.contains("The platform's Cloudflare side is in place: 4 unchanged, 1 skipped."),
        "{out}"
    );
    assert!(out.contains("fallback.getai.page AAAA 100::"), "{out}");
    let third = deploy(&w, &token, &["--json"]).success();
    assert_eq!(rows(&third.json()), all_unchanged(&w));
    assert_eq!(w.writes().len(), 0);
}

#[test]
fn a_secret_and_a_var_added_in_the_dashboard_survive_a_redeploy() {
    let w = World::new();
    let token = w.full_token();
    deploy(&w, &token, &[]).success();

    // "The dashboard": a new version with a secret and a var, on an older compatibility date,
    // which makes the next deploy-infra upload again.
    let c = client(&w, &token);
    let secret = "s3cret-value-for-the-test";
    w.secret(secret);
    let upload = ScriptUpload {
        metadata: json!({
            "main_module": "router.js",
            "compatibility_date": "2024-06-01",
            "bindings": [
                {"type": "r2_bucket", "name": "SITES", "bucket_name": "cfsetup-sites"},
                {"type": "plain_text", "name": "PLATFORM_DOMAIN", "text": w.zone_name()},
                {"type": "plain_text", "name": "MANIFEST_TTL_MS", "text": "100"},
                {"type": "secret_text", "name": "API_KEY", "text": secret},
            ],
        }),
        main_module: "router.js".into(),
        source: bytes::Bytes::from_static(platform::WORKER_SOURCE.as_bytes()),
    };
    rt().block_on(c.upload_script(&w.account_id(), "cfsetup-router", &upload))
        .unwrap();

    let run = deploy(&w, &token, &["--json"]).success();
    let json = run.json();
    assert_eq!(rows(&json)[1], row("worker", "cfsetup-router", "updated"));
    assert_eq!(
        detail(&json, "cfsetup-router"),
        "compatibility date 2024-06-01, wanted 2025-01-01"
    );
    assert!(!run.stdout().contains(secret));

    let settings = rt()
        .block_on(c.script_settings(&w.account_id(), "cfsetup-router"))
        .unwrap()
        .unwrap();
    assert_eq!(
        settings.compatibility_date.as_deref(),
        Some(platform::COMPATIBILITY_DATE)
    );
    let mut names: Vec<(String, String)> = settings
        .bindings
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap().to_string(),
                b["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("API_KEY".to_string(), "secret_text".to_string()),
            ("MANIFEST_TTL_MS".into(), "plain_text".into()),
            ("PLATFORM_DOMAIN".into(), "plain_text".into()),
            ("SITES".into(), "r2_bucket".into()),
        ]
    );
    let ttl = settings
        .bindings
        .iter()
        .find(|b| b["name"] == "MANIFEST_TTL_MS")
        .unwrap();
    assert_eq!(ttl["text"], "100");

    // And the deploy after that is quiet again.
    w.emu.clear_requests();
    deploy(&w, &token, &[]).success();
    assert_eq!(w.writes().len(), 0);
}

#[test]
fn a_route_held_by_another_worker_is_left_alone_unless_taken_over() {
    let w = World::new();
    let token = w.full_token();
    let c = client(&w, &token);
    let zone = w.zone_id();
    upload_other_worker(&w, &c, "other-worker");
    let rt = rt();
    let held = rt
        .block_on(c.create_route(&zone, "*/*", Some("other-worker")))
        .unwrap();
    rt.block_on(c.create_route(&zone, "shop.getai.page/*", None))
        .unwrap();
    rt.block_on(c.create_route(&zone, "blog.getai.page/*", Some("other-worker")))
        .unwrap();
    w.emu.clear_requests();

    let run = deploy(&w, &token, &["--json", "--route", "shop.getai.page/*"]).expect_code(1);
    let json = run.json();
    assert_eq!(
        rows(&json),
        [
            row("bucket", "cfsetup-sites", "created"),
            row("worker", "cfsetup-router", "created"),
            row("route", "*.getai.page/*", "created"),
            row("route", "*/*", "conflict"),
            row("route", "shop.getai.page/*", "conflict"),
            row("fallback_origin", "(none)", "skipped"),
        ]
    );
    assert_eq!(json["ok"], false);
    assert_eq!(
        detail(&json, "*/*"),
        "held by Worker other-worker; left as it is (--take-over-routes points it at cfsetup-router)"
    );
    assert!(detail(&json, "shop.getai.page/*")
        .starts_with("held by a placeholder route that runs no Worker"));
    let routes_before = routes(&w);
    assert!(routes_before.contains(&("*/*".into(), Some("other-worker".into()))));
    assert!(routes_before.contains(&("shop.getai.page/*".into(), None)));
    assert!(
        !w.writes()
            .iter()
            .any(|r| r.method == "PUT" && r.path.contains("/workers/routes/")),
        "no route was updated: {:?}",
        w.writes()
    );

    // The table says the same.
    let table = deploy(&w, &token, &["--route", "shop.getai.page/*"])
        .expect_code(1)
        .stdout();
    assert!(
        table.contains("conflict") && table.contains("Not finished"),
        "{table}"
    );

    let taken = deploy(
        &w,
        &token,
        &[
            "--json",
            "--route",
            "shop.getai.page/*",
            "--take-over-routes",
        ],
    )
    .success();
    let json = taken.json();
    assert_eq!(rows(&json)[3], row("route", "*/*", "updated"));
    assert_eq!(rows(&json)[4], row("route", "shop.getai.page/*", "updated"));
    assert_eq!(
        detail(&json, "*/*"),
        "-> cfsetup-router (taken over from Worker other-worker)"
    );
    assert_eq!(
        routes(&w),
        [
            (
                "*.getai.page/*".to_string(),
                Some("cfsetup-router".to_string())
            ),
            ("*/*".into(), Some("cfsetup-router".into())),
            ("blog.getai.page/*".into(), Some("other-worker".into())),
            ("shop.getai.page/*".into(), Some("cfsetup-router".into())),
        ],
        "routes nobody asked for stay with their Worker"
    );
    let now = w.emu.routes();
    assert!(now
        .iter()
        .any(|r| r.id == held.id && r.script.as_deref() == Some("cfsetup-router")));
}

#[test]
fn a_dry_run_reads_but_never_writes() {
    let w = World::new();
    let token = w.full_token();
    let run = deploy(
        &w,
        &token,
        &[
            "--dry-run",
            "--json",
            "--fallback-origin",
            "fallback.getai.page",
        ],
    )
    .success();
    let json = run.json();
    assert_eq!(json["dry_run"], true);
    assert_eq!(
        rows(&json),
        [
            row("bucket", "cfsetup-sites", "would create"),
            row("worker", "cfsetup-router", "would create"),
            row("route", "*.getai.page/*", "would create"),
            row("route", "*/*", "would create"),
            row("fallback_origin", "fallback.getai.page", "would create"),
        ]
    );
    assert!(!w.emu.requests().is_empty(), "it did read");
    assert_eq!(w.writes().len(), 0, "{:?}", w.writes());
    assert!(w.emu.buckets().is_empty() && w.emu.scripts().is_empty() && w.emu.routes().is_empty());

    // After a real run, a dry run with a different platform domain plans one update.
    deploy(&w, &token, &[]).success();
    w.emu.clear_requests();
    let run = deploy(
        &w,
        &token,
        &["--dry-run", "--platform-domain", "sites.getai.page"],
    )
    .success();
    let out = run.stdout();
    assert!(
        out.contains("would update") && out.contains("binding PLATFORM_DOMAIN differs"),
        "{out}"
    );
    assert!(out.contains("Dry run, nothing was changed"), "{out}");
    assert_eq!(w.writes().len(), 0);
}

#[test]
fn a_rate_limit_storm_still_converges() {
    let w = World::new();
    let token = w.full_token();
    let storm = |method: Option<&str>, path: Option<&str>| Fault {
        method: method.map(str::to_string),
        path_contains: path.map(str::to_string),
        kind: FaultKind::RateLimit {
            retry_after_secs: 1,
        },
        times: 6,
    };
    // The reads, then the upload and the route creates, each rate limited 6 times in a row: a
    // storm longer than the client's retry budget for failures, within its budget for 429s.
    w.emu.inject(storm(None, None));
    w.emu.inject(storm(Some("PUT"), Some("/workers/scripts/")));
    w.emu.inject(storm(Some("POST"), Some("/workers/routes")));
    let run = deploy(&w, &token, &["--json"]).success();
    assert_eq!(rows(&run.json()), all_created(&w));
    let limited = w.emu.requests().iter().filter(|r| r.status == 429).count();
    assert_eq!(limited, 18);
    assert_eq!(w.emu.buckets(), ["cfsetup-sites"]);
    assert_eq!(w.emu.routes().len(), 2);
}

#[test]
fn the_jurisdiction_reaches_the_header_and_the_binding() {
    let w = World::new();
    let token = w.full_token();
    let run = deploy(
        &w,
        &token,
        &["--json", "--jurisdiction", "eu", "--location-hint", "WEUR"],
    )
    .success();
    let json = run.json();
    assert_eq!(json["jurisdiction"], "eu");
    assert_eq!(
        detail(&json, "cfsetup-sites"),
        "jurisdiction eu, location hint weur"
    );

    let c = client(&w, &token);
    let account = w.account_id();
    let eu = BucketRef {
        account: &account,
        name: "cfsetup-sites",
        jurisdiction: Some("eu"),
    };
    let rt = rt();
    let bucket = rt
        .block_on(c.get_bucket(eu))
        .unwrap()
        .expect("the bucket is in eu");
    assert_eq!(bucket.jurisdiction.as_deref(), Some("eu"));
    assert_eq!(bucket.location.as_deref(), Some("weur"));
    let default = BucketRef {
        jurisdiction: None,
        ..eu
    };
    assert!(rt.block_on(c.get_bucket(default)).unwrap().is_none());
    let s = &w.emu.scripts()[0];
    assert_eq!(
        s.metadata["bindings"][0],
        json!({"type": "r2_bucket", "name": "SITES", "bucket_name": "cfsetup-sites", "jurisdiction": "eu"})
    );

    // The same jurisdiction from the environment: nothing to do.
    w.emu.clear_requests();
    let mut cmd = w.with_token(&token);
    cmd.env("R2_JURISDICTION", "eu")
        .args(["deploy-infra", "--json"]);
    let json = w.run(&mut cmd).success().json();
    assert_eq!(rows(&json)[0], row("bucket", "cfsetup-sites", "unchanged"));
    assert_eq!(rows(&json)[1], row("worker", "cfsetup-router", "unchanged"));
    assert_eq!(w.writes().len(), 0);
}

#[test]
fn a_bucket_in_another_jurisdiction_is_refused() {
    let w = World::new();
    let token = w.full_token();
    let c = client(&w, &token);
    let account = w.account_id();
    let eu = BucketRef {
        account: &account,
        name: "cfsetup-sites",
        jurisdiction: Some("eu"),
    };
    rt().block_on(c.create_bucket(eu, None)).unwrap();
    w.emu.clear_requests();

    let json = deploy(&w, &token, &["--json"]).expect_code(1).json();
    assert_eq!(
        rows(&json),
        [
            row("bucket", "cfsetup-sites", "conflict"),
            row("worker", "cfsetup-router", "not run"),
            row("route", "*.getai.page/*", "not run"),
            row("route", "*/*", "not run"),
            row("fallback_origin", "(none)", "skipped"),
        ]
    );
    assert_eq!(
        detail(&json, "cfsetup-sites"),
        "a bucket of this name exists in jurisdiction eu, not default; pass --jurisdiction eu \
         (or set R2_JURISDICTION=eu) to use it, or choose another --bucket"
    );
    assert_eq!(w.writes().len(), 0, "{:?}", w.writes());
    let default = BucketRef {
        jurisdiction: None,
        ..eu
    };
    assert!(rt().block_on(c.get_bucket(default)).unwrap().is_none());
}

#[test]
fn a_partial_failure_says_what_was_done_and_a_rerun_finishes() {
    let w = World::new();
    let weak = w.token_without("Workers Scripts Write");
    let run = deploy(&w, &weak, &[]).expect_code(1);
    let out = run.stdout();
    for needle in [
        "created",
        "failed",
        "not run",
        "Workers Scripts Write",
        "Not finished",
    ] {
        assert!(out.contains(needle), "{needle} in\n{out}");
    }
    let json = deploy(&w, &weak, &["--json"]).expect_code(1).json();
    assert_eq!(
        rows(&json),
        [
            row("bucket", "cfsetup-sites", "unchanged"),
            row("worker", "cfsetup-router", "failed"),
            row("route", "*.getai.page/*", "not run"),
            row("route", "*/*", "not run"),
            row("fallback_origin", "(none)", "skipped"),
        ]
    );
    assert!(detail(&json, "cfsetup-router").contains("HTTP 403"));
    assert!(w.emu.scripts().is_empty() && w.emu.routes().is_empty());

    let token = w.full_token();
    let json = deploy(&w, &token, &["--json"]).success().json();
    let mut expected = all_created(&w);
    expected[0] = row("bucket", "cfsetup-sites", "unchanged");
    assert_eq!(rows(&json), expected);
}

#[test]
fn the_fallback_origin_is_set_once_and_then_reported() {
    let w = World::new();
    let token = w.full_token();
    let json = deploy(
        &w,
        &token,
        &["--json", "--fallback-origin", "Fallback.GetAI.page"],
    )
    .success()
    .json();
    assert_eq!(
        rows(&json)[4],
        row("fallback_origin", "fallback.getai.page", "created")
    );
    assert!(detail(&json, "fallback.getai.page").starts_with("status pending_deployment"));

    w.emu.clear_requests();
    let mut cmd = w.with_token(&token);
    cmd.env("SAAS_FALLBACK_ORIGIN", "fallback.getai.page")
        .args(["deploy-infra", "--json"]);
    let json = w.run(&mut cmd).success().json();
    assert_eq!(
        rows(&json)[4],
        row("fallback_origin", "fallback.getai.page", "unchanged")
    );
    assert_eq!(w.writes().len(), 0);

    // Without the option, the current one is reported.
    let json = deploy(&w, &token, &["--json"]).success().json();
    assert_eq!(
        rows(&json)[4],
        row("fallback_origin", "fallback.getai.page", "unchanged")
    );
    assert_eq!(detail(&json, "fallback.getai.page"), "status active");

    // Another origin replaces it.
    let json = deploy(
        &w,
        &token,
        &["--json", "--fallback-origin", "origin.getai.page"],
    )
    .success()
    .json();
    assert_eq!(
        rows(&json)[4],
        row("fallback_origin", "origin.getai.page", "updated")
    );
    assert!(detail(&json, "origin.getai.page").starts_with("was fallback.getai.page; "));
}

#[test]
fn a_platform_domain_under_the_zone_gets_its_own_route() {
    let w = World::new();
    let token = w.full_token();
    let mut cmd = w.with_token(&token);
    cmd.env("PLATFORM_DOMAIN", "Sites.GetAI.page")
        .env("R2_BUCKET_NAME", "tenants")
        .env("WORKER_SCRIPT_NAME", "edge_router")
        .args(["deploy-infra", "--json"]);
    let json = w.run(&mut cmd).success().json();
    assert_eq!(json["platform_domain"], "sites.getai.page");
    assert_eq!(
        routes(&w),
        [
            (
                "*.sites.getai.page/*".to_string(),
                Some("edge_router".to_string())
            ),
            ("*/*".into(), Some("edge_router".into())),
        ]
    );
    assert_eq!(w.emu.buckets(), ["tenants"]);
    assert_eq!(
        w.emu.scripts()[0].metadata["bindings"][1]["text"],
        "sites.getai.page"
    );

    // A domain outside the zone is refused before anything is written.
    let w = World::new();
    let token = w.full_token();
    let run = deploy(&w, &token, &["--platform-domain", "example.com"]).expect_code(1);
    assert!(
        run.stderr()
            .contains("the platform domain example.com is not in the zone getai.page"),
        "{}",
        run.stderr()
    );
    assert_eq!(w.writes().len(), 0);
}

#[test]
fn bad_input_exits_2_before_any_request() {
    let w = World::new();
    let token = w.full_token();
    let cases: [(&[&str], &str); 9] = [
        (
            &["--location-hint", "mars"],
            "--location-hint \"mars\" is not an R2 location hint",
        ),
        (
            &["--jurisdiction", "fedramp-high"],
            "is not a jurisdiction an R2 bucket can be in\n  hint: R2 buckets are in the default \
             jurisdiction, eu or fedramp; fedramp-high is known only to Worker bindings",
        ),
        (
            &["--jurisdiction", "mars"],
            "--jurisdiction \"mars\" is not an R2 jurisdiction",
        ),
        (
            &["--route", "https://shop.getai.page/*"],
            "--route \"https://shop.getai.page/*\" is not a route pattern",
        ),
        (&["--route", "shop.getai.page"], "it has no path"),
        (
            &["--route", "shop.*.getai.page/*"],
            "`*` in the host may only come first",
        ),
        (
            &["--bucket", "Bad_Bucket"],
            "--bucket \"Bad_Bucket\" is not a valid R2 bucket name",
        ),
        (
            &["--worker-name", "1router"],
            "--worker-name \"1router\" is not a valid Worker name",
        ),
        (
            &["--fallback-origin", "https://x.getai.page"],
            "--fallback-origin is not a hostname",
        ),
    ];
    for (args, message) in cases {
        let run = deploy(&w, &token, args).expect_code(2);
        assert!(run.stderr().contains(message), "{args:?}: {}", run.stderr());
        assert!(run.stdout().is_empty());
    }
    let mut cmd = w.with_token(&token);
    cmd.env("R2_BUCKET_NAME", "x").arg("deploy-infra");
    let run = w.run(&mut cmd).expect_code(2);
    assert!(
        run.stderr()
            .contains("R2_BUCKET_NAME \"x\" is not a valid R2 bucket name"),
        "{}",
        run.stderr()
    );
    let mut cmd = w.bare();
    cmd.arg("deploy-infra");
    let run = w.run(&mut cmd).expect_code(2);
    assert!(run.stderr().contains("no account ID"), "{}", run.stderr());
    assert!(w.emu.requests().is_empty(), "{:?}", w.emu.requests());
}

/// Uploads `name` as a two-module Worker straight over HTTP: `main` is the entry, `helper` a
/// second module (the emulator answers content/v2 with both, as multipart).
fn upload_two_modules(w: &World, token: &str, name: &str, main: &[u8], helper: &[u8]) {
    use reqwest::multipart::{Form, Part};
    let metadata = json!({
        "main_module": platform::WORKER_MODULE,
        "compatibility_date": platform::COMPATIBILITY_DATE,
        "bindings": [
            {"type": "r2_bucket", "name": "SITES", "bucket_name": "cfsetup-sites"},
            {"type": "plain_text", "name": "PLATFORM_DOMAIN", "text": w.zone_name()},
        ],
    });
    let module = |file: &str, body: &[u8]| {
        Part::bytes(body.to_vec())
            .file_name(file.to_string())
            .mime_str("application/javascript+module")
            .unwrap()
    };
    let form = Form::new()
        .part(
            "metadata",
            Part::text(metadata.to_string())
                .mime_str("application/json")
                .unwrap(),
        )
        .part("files", module(platform::WORKER_MODULE, main))
        .part("files", module("helper.js", helper));
    let url = format!(
        "{}/accounts/{}/workers/scripts/{name}",
        w.emu.base_url(),
        w.account_id()
    );
    let status = rt().block_on(async {
        reqwest::Client::new()
            .put(url)
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
}

#[test]
fn the_unchanged_check_compares_the_entry_module_of_the_multipart_answer() {
    let w = World::new();
    let token = w.full_token();
    deploy(&w, &token, &[]).success();

    // The router as the entry and a helper beside it: the entry is the same, so unchanged.
    upload_two_modules(
        &w,
        &token,
        "cfsetup-router",
        platform::WORKER_SOURCE.as_bytes(),
        b"export const x = 1;",
    );
    w.emu.clear_requests();
    let json = deploy(&w, &token, &["--json"]).success().json();
    assert_eq!(rows(&json)[1], row("worker", "cfsetup-router", "unchanged"));
    assert_eq!(w.writes().len(), 0, "{:?}", w.writes());

    // Another entry, with the router's source only inside the helper: that is a change.
    upload_two_modules(
        &w,
        &token,
        "cfsetup-router",
        b"export default { fetch() { return new Response('old') } }",
        platform::WORKER_SOURCE.as_bytes(),
    );
    let json = deploy(&w, &token, &["--json"]).success().json();
    assert_eq!(rows(&json)[1], row("worker", "cfsetup-router", "updated"));
    assert!(
        detail(&json, "cfsetup-router").starts_with("router.js differs"),
        "{json}"
    );
    let s = &w.emu.scripts()[0];
    assert_eq!(s.modules[0].2, platform::WORKER_SOURCE.as_bytes());
}

#[test]
fn a_content_404_while_the_settings_exist_is_an_error_not_a_create() {
    let w = World::new();
    let token = w.full_token();
    deploy(&w, &token, &[]).success();
    w.emu.inject(Fault {
        method: Some("GET".into()),
        path_contains: Some("/content/v2".into()),
        kind: FaultKind::ApiError {
            status: 404,
            code: 10007,
            message: "This Worker does not exist on your account.".into(),
        },
        times: 1,
    });
    w.emu.clear_requests();
    let json = deploy(&w, &token, &["--json"]).expect_code(1).json();
    assert_eq!(rows(&json)[1], row("worker", "cfsetup-router", "failed"));
    assert!(
        detail(&json, "cfsetup-router").contains("answered 404, yet the script's settings exist"),
        "{json}"
    );
    assert!(
        !w.writes()
            .iter()
            .any(|r| r.path.contains("/workers/scripts")),
        "{:?}",
        w.writes()
    );
}

/// Whether R2 takes the Global API Key is unconfirmed (docs/cloudflare-api.md open question 8): when
/// it refuses, the error asks for a token, never for a permission the key already has.
#[test]
fn r2_refusing_the_global_key_points_to_create_token() {
    let w = World::with_options(cfsetup_emulator::Options {
        r2_refuses_global_key: true,
        ..cfsetup_emulator::Options::new()
    });
    let json = w
        .run(w.with_global_key().args(["deploy-infra", "--json"]))
        .expect_code(1)
        .json();
    assert_eq!(rows(&json)[0], row("bucket", "cfsetup-sites", "failed"));
    let d = detail(&json, "cfsetup-sites");
    assert!(d.contains("R2 refused the Global API Key"), "{d}");
    assert!(d.contains("cfsetup create-token"), "{d}");
    assert!(!d.contains("lacks"), "{d}");
    assert!(w.emu.buckets().is_empty());

    // Where R2 takes the key (the emulator's default), the same run works.
    let w = World::new();
    w.run(w.with_global_key().arg("deploy-infra")).success();
}

/// An IP-restricted token used from outside its range (403 / 9109 on every call,
/// docs/cloudflare-api.md §4): one clear error, naming this machine's address, and no hint about IDs.
#[test]
fn an_ip_restricted_token_from_elsewhere_gets_one_clear_error() {
    let w = World::new();
    let elsewhere = crate::test_permissions::create_with(
        &w,
        None,
        None,
        Some(json!({ "request_ip": { "in": ["203.0.113.0/24"] } })),
    );
    w.emu.clear_requests();
    let run = deploy(&w, &elsewhere, &[]).expect_code(1);
    let err = run.stderr();
    assert!(
        err.contains("Cannot use the access token from location: 127.0.0.1 (code 9109)"),
        "{err}"
    );
    assert!(err.contains("this machine's address, 127.0.0.1,"), "{err}");
    assert!(err.contains("--allow-ip 127.0.0.1"), "{err}");
    assert!(!err.contains("CLOUDFLARE_ACCOUNT_ID"), "{err}");
    assert_eq!(err.matches("hint:").count(), 1, "{err}");
    assert!(w.writes().is_empty(), "{:?}", w.writes());
}
