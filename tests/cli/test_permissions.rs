//! `cfsetup test-permissions`: verify, the 8 concurrent checks, the table and exit status, and
//! that nothing is ever left behind in the emulator.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cfsetup::cloudflare::r2::BucketRef;
use cfsetup::cloudflare::tokens::{NewToken, Policy};
use cfsetup::cloudflare::workers::ScriptUpload;
use cfsetup::cloudflare::{Auth, Client, ClientOptions};
use cfsetup::secret::Secret;
use cfsetup_emulator::{Fault, FaultKind};
use serde_json::{json, Value};
use url::Url;

use crate::common::{World, ACCOUNT_SCOPE, EIGHT, ZONE_SCOPE};

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub fn global_client(w: &World) -> Client {
    let auth = Auth::GlobalKey {
        email: w.emu.seed().email.clone(),
        key: Secret::new(w.emu.seed().global_key.clone()),
    };
    let options = ClientOptions {
        ..ClientOptions::default()
    };
    Client::new(&Url::parse(&w.emu.base_url()).unwrap(), auth, options).unwrap()
}

/// Asserts the emulator holds no temporary bucket, script or route.
pub fn nothing_left_behind(w: &World) {
    let temp = |n: &str| n.starts_with("cfsetup-check-");
    assert!(
        !w.emu.buckets().iter().any(|b| temp(b)),
        "buckets: {:?}",
        w.emu.buckets()
    );
    assert!(
        !w.emu.scripts().iter().any(|s| temp(&s.name)),
        "scripts: {:?}",
        w.emu.scripts().iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    assert!(
        !w.emu.routes().iter().any(|r| temp(&r.pattern)),
        "routes: {:?}",
        w.emu.routes()
    );
    assert!(w.emu.custom_hostnames().is_empty());
}

/// The `result` of each check, by permission name, in table order.
pub fn results(json: &Value) -> Vec<(String, String)> {
    json["checks"]
        .as_array()
        .expect("a checks array")
        .iter()
        .map(|c| {
            (
                c["permission"].as_str().unwrap().to_string(),
                c["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn all_passed() -> Vec<(String, String)> {
    EIGHT
        .iter()
        .map(|(n, _)| (n.to_string(), "passed".to_string()))
        .collect()
}

#[test]
fn a_full_token_passes_8_of_8_and_leaves_nothing_behind() {
    let w = World::new();
    let token = w.full_token();
    let run = w
        .run(w.with_token(&token).arg("test-permissions"))
        .success();
    let out = run.stdout();
    assert!(out.ends_with("8/8 checks passed\n"), "{out}");
    for (name, _) in EIGHT {
        assert!(out.contains(name), "{name} missing from the table:\n{out}");
    }
    assert!(
        out.contains("probe"),
        "the SSL write check says it is a probe:\n{out}"
    );
    assert!(run.stderr().is_empty(), "{}", run.stderr());
    nothing_left_behind(&w);

    // Each write check really wrote: a bucket, a script and a route were created and deleted.
    let writes: Vec<(String, String, u16)> = w
        .writes()
        .into_iter()
        .map(|r| (r.method, r.path, r.status))
        .collect();
    let acct = w.account_id();
    let zone = w.zone_id();
    let has = |m: &str, prefix: &str, status: u16| {
        writes
            .iter()
            .any(|(wm, wp, ws)| wm == m && wp.starts_with(prefix) && *ws == status)
    };
    assert!(
        has("POST", &format!("/accounts/{acct}/r2/buckets"), 200),
        "{writes:?}"
    );
    assert!(has(
        "DELETE",
        &format!("/accounts/{acct}/r2/buckets/cfsetup-check-"),
        200
    ));
    assert!(has(
        "PUT",
        &format!("/accounts/{acct}/workers/scripts/cfsetup-check-"),
        200
    ));
    assert!(has(
        "DELETE",
        &format!("/accounts/{acct}/workers/scripts/cfsetup-check-"),
        200
    ));
    assert!(has("POST", &format!("/zones/{zone}/workers/routes"), 200));
    assert!(has(
        "DELETE",
        &format!("/zones/{zone}/workers/routes/"),
        200
    ));
    assert!(
        has("POST", &format!("/zones/{zone}/custom_hostnames"), 400),
        "the probe is refused"
    );
    // The zone is read once, shared by Zone Read and the route's pattern.
    let zone_gets = w
        .emu
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path == format!("/zones/{zone}"))
        .count();
    assert_eq!(zone_gets, 1);

    let run = w
        .run(w.with_token(&token).args(["--json", "test-permissions"]))
        .success();
    let j = run.json();
    assert_eq!(results(&j), all_passed());
    assert_eq!(j["summary"], "8/8 checks passed");
    assert_eq!(j["passed"], 8);
    assert_eq!(j["credential"]["kind"], "user token");
    assert_eq!(j["credential"]["status"], "active");
    nothing_left_behind(&w);
}

/// The two read permissions whose Write twin is also accepted for the same read call: the API
/// reference lists Workers Scripts Write (and Tail Read) as accepted for reading scripts
/// (docs/cloudflare-api.md §8), and the emulator accepts SSL and Certificates Write for listing custom
/// hostnames. A token missing only the Read group can still read, so no API call can tell.
const READ_IMPLIED_BY_WRITE: [(&str, &str); 2] = [
    ("Workers Scripts Read", "Workers Scripts Write"),
    ("SSL and Certificates Read", "SSL and Certificates Write"),
];

#[test]
fn a_token_missing_any_one_permission_fails_exactly_that_check() {
    let w = World::new();
    for (missing, scope) in EIGHT {
        let token = match READ_IMPLIED_BY_WRITE.iter().find(|(r, _)| *r == missing) {
            // Without its Write twin too, so that the read is really refused; the Write twin
            // is checked as failed below.
            Some((read, write)) => {
                let perms: Vec<_> = EIGHT
                    .iter()
                    .copied()
                    .filter(|(n, _)| n != read && n != write)
                    .collect();
                w.mint(&perms)
            }
            None => w.token_without(missing),
        };
        let twin = READ_IMPLIED_BY_WRITE
            .iter()
            .find(|(r, _)| *r == missing)
            .map(|(_, wr)| *wr);
        let run = w
            .run(
                w.with_token(&token)
                    .env("PLATFORM_DOMAIN", w.zone_name())
                    .args(["--json", "test-permissions"]),
            )
            .expect_code(3);
        let j = run.json();
        let expected: Vec<(String, String)> = EIGHT
            .iter()
            .map(|(n, _)| {
                let r = if *n == missing || Some(*n) == twin {
                    "failed"
                } else {
                    "passed"
                };
                (n.to_string(), r.to_string())
            })
            .collect();
        assert_eq!(results(&j), expected, "without {missing}");
        let passed = if twin.is_some() { 6 } else { 7 };
        assert_eq!(j["summary"], format!("{passed}/8 checks passed").as_str());
        let failed = j["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["permission"] == missing)
            .unwrap();
        let resource = if scope == ACCOUNT_SCOPE {
            format!("account {}", w.account_id())
        } else {
            format!("zone {}", w.zone_id())
        };
        assert_eq!(failed["fix"]["resource"], resource.as_str());
        assert!(
            failed["fix"]["text"]
                .as_str()
                .unwrap()
                .starts_with(&format!("add {missing} on {resource}")),
            "{failed}"
        );
        assert!(failed["fix"]["dashboard_url"]
            .as_str()
            .unwrap()
            .starts_with("https://dash.cloudflare.com/profile/api-tokens?permissionGroupKeys="));
        nothing_left_behind(&w);
    }

    // The table says the same, and says what to add where.
    let token = w.token_without("Workers Scripts Write");
    let run = w
        .run(w.with_token(&token).arg("test-permissions"))
        .expect_code(3);
    let out = run.stdout();
    assert!(out.contains(&format!(
        "add Workers Scripts Write on account {}",
        w.account_id()
    )));
    assert!(out.contains("https://dash.cloudflare.com/profile/api-tokens?permissionGroupKeys="));
    assert!(out.ends_with("7/8 checks passed\n"), "{out}");
}

#[test]
fn a_read_permission_held_through_its_write_twin_passes() {
    // What the API does, so what the checks report: the read call succeeds.
    let w = World::new();
    for (read, _) in READ_IMPLIED_BY_WRITE {
        let token = w.token_without(read);
        let run = w
            .run(w.with_token(&token).args(["--json", "test-permissions"]))
            .success();
        assert_eq!(results(&run.json()), all_passed(), "without {read}");
    }
}

#[test]
fn without_zone_read_or_a_platform_domain_the_routes_check_is_not_run() {
    let w = World::new();
    let token = w.token_without("Zone Read");
    let run = w
        .run(w.with_token(&token).args(["--json", "test-permissions"]))
        .expect_code(3);
    let j = run.json();
    let r = results(&j);
    assert_eq!(r[4], ("Workers Routes Write".into(), "not run".into()));
    assert_eq!(r[5], ("Zone Read".into(), "failed".into()));
    let others: Vec<_> = r
        .iter()
        .filter(|(n, _)| n != "Workers Routes Write" && n != "Zone Read")
        .map(|(_, res)| res.as_str())
        .collect();
    assert_eq!(others, ["passed"; 6]);
    let detail = j["checks"][4]["detail"].as_str().unwrap();
    assert!(
        detail.contains("Zone Read") && detail.contains("PLATFORM_DOMAIN"),
        "{detail}"
    );
    assert!(
        j["checks"][4].get("fix").is_none(),
        "not run is not a permission failure"
    );
    assert_eq!(j["summary"], "6/8 checks passed");
    // No route was attempted.
    assert!(!w
        .writes()
        .iter()
        .any(|r| r.path.contains("/workers/routes")));
    nothing_left_behind(&w);
}

#[test]
fn workers_routes_write_on_the_account_fails_the_routes_check() {
    let w = World::new();
    let mut policies = w.policies(&EIGHT);
    // Move Workers Routes Write from the zone policy to the account policy.
    let routes_id = w
        .emu
        .permission_group_id("Workers Routes Write", ZONE_SCOPE)
        .unwrap();
    let zone_groups = policies[1]["permission_groups"].as_array_mut().unwrap();
    zone_groups.retain(|g| g["id"] != routes_id.as_str());
    policies[0]["permission_groups"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "id": routes_id }));
    let (_, token) = w.emu.mint_token("routes on the account", policies);
    w.secret(&token);
    let run = w
        .run(w.with_token(&token).args(["--json", "test-permissions"]))
        .expect_code(3);
    let j = run.json();
    let r = results(&j);
    assert_eq!(r[4], ("Workers Routes Write".into(), "failed".into()));
    assert_eq!(r.iter().filter(|(_, x)| x == "passed").count(), 7);
    let text = j["checks"][4]["fix"]["text"].as_str().unwrap();
    assert!(text.contains(&format!("on zone {}", w.zone_id())), "{text}");
    assert!(text.contains("zone-scoped"), "{text}");
    nothing_left_behind(&w);
}

#[test]
fn leftovers_of_an_old_crash_are_swept_and_recent_ones_are_not() {
    let w = World::new();
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let old = format!("cfsetup-check-{}-dead", secs - 3600);
    let recent = format!("cfsetup-check-{}-beef", secs - 60);
    let client = global_client(&w);
    let acct = w.account_id();
    let zone = w.zone_id();
    let zone_name = w.zone_name();
    rt().block_on(async {
        for name in [&old, &recent] {
            let b = BucketRef {
                account: &acct,
                name,
                jurisdiction: None,
            };
            client.create_bucket(b, None).await.unwrap();
            let upload = ScriptUpload {
                metadata: json!({ "main_module": "m.js", "compatibility_date": "2025-01-01" }),
                main_module: "m.js".into(),
                source: bytes::Bytes::from_static(b"export default {}"),
            };
            client.upload_script(&acct, name, &upload).await.unwrap();
            client
                .create_route(&zone, &format!("{name}.{zone_name}/*"), None)
                .await
                .unwrap();
        }
    });
    let token = w.full_token();
    let run = w
        .run(w.with_token(&token).args(["--json", "test-permissions"]))
        .success();
    let j = run.json();
    let mut swept: Vec<String> = j["swept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    swept.sort();
    assert_eq!(
        swept,
        [
            format!("bucket {old}"),
            format!("route {old}.{zone_name}/*"),
            format!("script {old}"),
        ]
    );
    assert_eq!(w.emu.buckets(), std::slice::from_ref(&recent));
    let scripts: Vec<String> = w.emu.scripts().into_iter().map(|s| s.name).collect();
    assert_eq!(scripts, std::slice::from_ref(&recent));
    let routes: Vec<String> = w.emu.routes().into_iter().map(|r| r.pattern).collect();
    assert_eq!(routes, [format!("{recent}.{zone_name}/*")]);

    // The table lists what was swept.
    rt().block_on(async {
        let b = BucketRef {
            account: &acct,
            name: &old,
            jurisdiction: None,
        };
        client.create_bucket(b, None).await.unwrap();
    });
    let run = w
        .run(w.with_token(&token).arg("test-permissions"))
        .success();
    assert!(
        run.stdout().contains(&format!("  - bucket {old}\n")),
        "{}",
        run.stdout()
    );
}

#[test]
fn read_only_skips_the_writes_and_sends_none() {
    let w = World::new();
    let token = w.full_token();
    let run = w
        .run(
            w.with_token(&token)
                .args(["--json", "test-permissions", "--read-only"]),
        )
        .success();
    let j = run.json();
    let r: Vec<String> = results(&j).into_iter().map(|(_, x)| x).collect();
    assert_eq!(
        r,
        ["passed", "skipped", "passed", "skipped", "skipped", "passed", "passed", "skipped"]
    );
    assert_eq!(j["summary"], "4/8 checks passed");
    assert!(w.writes().is_empty(), "{:?}", w.writes());

    // A missing read permission still fails with --read-only.
    let token = w.token_without("Zone Read");
    w.run(
        w.with_token(&token)
            .args(["test-permissions", "--read-only"]),
    )
    .expect_code(3);
}

#[test]
fn the_global_api_key_has_nothing_to_verify_and_passes() {
    let w = World::new();
    let run = w.run(w.with_global_key().arg("test-permissions")).success();
    assert!(
        run.stderr().contains("nothing to verify"),
        "{}",
        run.stderr()
    );
    assert!(run.stdout().ends_with("8/8 checks passed\n"));
    assert!(!w
        .emu
        .requests()
        .iter()
        .any(|r| r.path.ends_with("/tokens/verify")));
    nothing_left_behind(&w);
}

#[test]
fn an_account_token_is_verified_at_the_account_endpoint() {
    let w = World::new();
    let (_, token) = w
        .emu
        .mint_account_token("account-owned", w.policies(&EIGHT));
    w.secret(&token);
    assert!(token.starts_with("cfat_"));
    let run = w
        .run(w.with_token(&token).args(["--json", "test-permissions"]))
        .success();
    assert_eq!(run.json()["credential"]["kind"], "account token");
    let verify_paths: Vec<String> = w
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/tokens/verify"))
        .map(|r| r.path)
        .collect();
    assert_eq!(
        verify_paths,
        [format!("/accounts/{}/tokens/verify", w.account_id())]
    );
}

/// Creates a token through the API with the Global API Key, with extra fields.
pub fn create_with(
    w: &World,
    expires_on: Option<String>,
    not_before: Option<String>,
    condition: Option<Value>,
) -> String {
    let policies: Vec<Policy> = serde_json::from_value(w.policies(&EIGHT)).unwrap();
    let body = NewToken {
        name: "special".into(),
        policies,
        expires_on,
        not_before,
        condition,
    };
    let created = rt().block_on(global_client(w).create_token(&body)).unwrap();
    let value = created.value.expose().to_string();
    w.secret(&value);
    value
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[test]
fn expired_not_yet_valid_and_nearly_expired_tokens() {
    let w = World::new();
    let now = SystemTime::now();
    let expired = create_with(
        &w,
        Some(rfc3339(now - Duration::from_secs(86_400))),
        None,
        None,
    );
    let run = w
        .run(w.with_token(&expired).arg("test-permissions"))
        .expect_code(1);
    assert!(run.stderr().contains("has expired"), "{}", run.stderr());
    assert!(run.stdout().is_empty());

    let later = create_with(
        &w,
        None,
        Some(rfc3339(now + Duration::from_secs(86_400))),
        None,
    );
    let run = w
        .run(w.with_token(&later).arg("test-permissions"))
        .expect_code(1);
    assert!(
        run.stderr().contains("is not valid yet"),
        "{}",
        run.stderr()
    );

    let soon = create_with(
        &w,
        Some(rfc3339(now + Duration::from_secs(5 * 86_400))),
        None,
        None,
    );
    let run = w.run(w.with_token(&soon).arg("test-permissions")).success();
    assert!(
        run.stderr().contains("cfsetup: warning: the user token")
            && run.stderr().contains("(in 4 days)"),
        "{}",
        run.stderr()
    );
    assert!(run.stdout().ends_with("8/8 checks passed\n"));
    // Nothing was attempted with the unusable tokens.
    nothing_left_behind(&w);
}

#[test]
fn an_ip_restricted_token_works_only_from_its_ranges() {
    let w = World::new();
    let elsewhere = create_with(
        &w,
        None,
        None,
        Some(json!({ "request.ip": { "in": ["203.0.113.0/24"] } })),
    );
    let run = w
        .run(w.with_token(&elsewhere).arg("test-permissions"))
        .expect_code(1);
    let err = run.stderr();
    assert!(err.contains("verifying the API token"), "{err}");
    // One clear error: the address is named, the fix is --allow-ip or the dashboard, and
    // nothing sends the user after account or zone IDs or permissions.
    assert!(
        err.contains("Cannot use the access token from location: 127.0.0.1 (code 9109)"),
        "{err}"
    );
    assert!(
        err.contains("the token works only from its allowed IP addresses, and this machine's address, 127.0.0.1, is not one of them"),
        "{err}"
    );
    assert!(err.contains("--allow-ip 127.0.0.1"), "{err}");
    assert!(err.contains("dashboard"), "{err}");
    assert!(!err.contains("CLOUDFLARE_ACCOUNT_ID"), "{err}");
    assert_eq!(err.matches("hint:").count(), 1, "{err}");
    nothing_left_behind(&w);

    let here = create_with(
        &w,
        None,
        None,
        Some(json!({ "request.ip": { "in": ["127.0.0.1/32"] } })),
    );
    w.run(w.with_token(&here).arg("test-permissions")).success();
}

#[test]
fn bad_configuration_exits_2_before_any_request_and_a_bad_token_exits_1() {
    let w = World::new();
    let token = w.full_token();
    let run = w
        .run(
            w.bare()
                .env("CLOUDFLARE_API_TOKEN", &token)
                .env("CLOUDFLARE_ZONE_ID", w.zone_id())
                .arg("test-permissions"),
        )
        .expect_code(2);
    assert!(run.stderr().contains("no account ID"), "{}", run.stderr());
    let run = w
        .run(
            w.bare()
                .env("CLOUDFLARE_API_TOKEN", &token)
                .env("CLOUDFLARE_ACCOUNT_ID", w.account_id())
                .arg("test-permissions"),
        )
        .expect_code(2);
    assert!(run.stderr().contains("no zone ID"), "{}", run.stderr());
    let run = w
        .run(
            w.with_token(&token)
                .args(["test-permissions", "--platform-domain", "not a domain"]),
        )
        .expect_code(2);
    assert!(run.stderr().contains("platform domain"), "{}", run.stderr());
    assert!(w.emu.requests().is_empty());

    let run = w
        .run(
            w.with_token("cfut_thisisnotarealtoken0000000000000000000000")
                .arg("test-permissions"),
        )
        .expect_code(1);
    assert!(
        run.stderr().contains("verifying the API token"),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains("hint:"), "{}", run.stderr());
}

#[test]
fn a_check_that_errors_still_cleans_up_and_exits_1() {
    let w = World::new();
    let token = w.full_token();
    // The route create fails with a 500 (a POST is not retried): the route check errors, the
    // others pass, and the route registered before the create is looked for and not found.
    w.emu.inject(Fault {
        method: Some("POST".into()),
        path_contains: Some("/workers/routes".into()),
        kind: FaultKind::ServerError { status: 500 },
        times: 1,
    });
    let run = w
        .run(w.with_token(&token).args(["--json", "test-permissions"]))
        .expect_code(1);
    let j = run.json();
    let r = results(&j);
    assert_eq!(r[4], ("Workers Routes Write".into(), "error".into()));
    assert_eq!(r.iter().filter(|(_, x)| x == "passed").count(), 7);
    assert!(j["checks"][4]["detail"]
        .as_str()
        .unwrap()
        .starts_with("HTTP 500"));
    // Cleanup looked for the route by its pattern.
    let zone = w.zone_id();
    assert!(w
        .emu
        .requests()
        .iter()
        .any(|r| r.method == "GET" && r.path == format!("/zones/{zone}/workers/routes")));
    nothing_left_behind(&w);
}

#[test]
fn an_ip_refusal_met_by_a_check_is_not_a_missing_permission() {
    let w = World::new();
    let token = w.full_token();
    // Verify passes; then the scripts call is refused for the address (as when the machine's
    // address changes mid-run).
    w.emu.inject(Fault {
        method: Some("GET".into()),
        path_contains: Some("/workers/scripts".into()),
        kind: FaultKind::ApiError {
            status: 403,
            code: 9109,
            message: "Cannot use the access token from location: 198.51.100.7".into(),
        },
        // The check and the sweep of leftovers both list scripts, in either order.
        times: 10,
    });
    let run = w
        .run(w.with_token(&token).args(["--json", "test-permissions"]))
        .expect_code(1);
    let err = run.stderr();
    assert!(err.contains("the permission checks could not run"), "{err}");
    assert!(err.contains("--allow-ip 198.51.100.7"), "{err}");
    assert!(!err.contains("add Workers Scripts Read"), "{err}");
    assert!(!run.stdout().contains("\"failed\""), "{}", run.stdout());
    nothing_left_behind(&w);
}

/// SIGTERM (a cancelled CI job) stops the checks as Ctrl-C does: the temporary resources are
/// removed, the table says by what each check was stopped, and the exit status is 130.
#[cfg(unix)]
#[test]
fn sigterm_stops_the_checks_and_leaves_nothing_behind() {
    use assert_cmd::cargo::CommandCargoExt;
    use std::process::{Command as Std, Stdio};
    let w = World::new();
    let token = w.full_token();
    // Account Settings Read is held back, so the run is still going when the signal comes.
    w.emu.inject(Fault {
        method: Some("GET".into()),
        path_contains: Some(format!("/accounts/{}", w.account_id())),
        kind: FaultKind::Latency(Duration::from_secs(20)),
        times: 1,
    });
    w.secret(&token);
    let child = Std::cargo_bin("cfsetup")
        .unwrap()
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", w.path())
        .env("NO_COLOR", "1")
        .env("CLOUDFLARE_API_BASE_URL", w.emu.base_url())
        .env("R2_S3_ENDPOINT", w.emu.s3_endpoint())
        .env("CLOUDFLARE_ACCOUNT_ID", w.account_id())
        .env("CLOUDFLARE_ZONE_ID", w.zone_id())
        .env("CLOUDFLARE_API_TOKEN", &token)
        .current_dir(w.path())
        .arg("test-permissions")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let killed = Std::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("interrupted (SIGTERM)"), "{stdout}");
    nothing_left_behind(&w);
}

/// Issue 20's target: at most 3 round trips in sequence. The verify runs beside the checks; the
/// longest check, R2's, is create the bucket (beside the verify), list it over S3, delete it.
/// With the platform domain given, the Routes check needs no zone read first either. Counted with
/// the emulator's `round_trips()` under a latency, never timed.
#[test]
fn test_permissions_takes_three_round_trips() {
    let w = World::with_options(cfsetup_emulator::Options {
        latency: Duration::from_millis(100),
        ..cfsetup_emulator::Options::new()
    });
    let token = w.full_token();
    w.emu.clear_requests();
    let run = w.run(
        w.with_token(&token)
            .env("PLATFORM_DOMAIN", w.zone_name())
            .arg("test-permissions"),
    );
    assert!(
        run.stdout().ends_with("8/8 checks passed\n"),
        "{}",
        run.stdout()
    );
    let trips = w.emu.round_trips();
    assert!(trips <= 3, "{trips} round trips");
    nothing_left_behind(&w);

    // Without the platform domain the Routes check reads the zone's name first (that read is
    // also Zone Read's check): still three.
    w.emu.clear_requests();
    let run = w.run(w.with_token(&token).arg("test-permissions"));
    assert!(
        run.stdout().ends_with("8/8 checks passed\n"),
        "{}",
        run.stdout()
    );
    let trips = w.emu.round_trips();
    assert!(trips <= 3, "{trips} round trips");
}
