//! Issue 17, "What a platform engineer's trial broke": each item's test, written to fail before
//! its fix. The emulator stands in for Cloudflare; every run goes through [`World::run`], so no
//! secret reaches stderr.

use cfsetup_emulator::{Fault, FaultKind};

use crate::common::{World, EIGHT};
use crate::deploy_site::Site;

const DOMAIN: &str = "shop.acme-store.com";
const WWW: &str = "www.acme-store.com";

fn basic(s: &Site) {
    s.write("index.html", b"<h1>Acme</h1>");
    s.write("about.html", b"<h1>About</h1>");
}

/// HIGH 1: everything a tenant's files put into the head is bounded, and a site past a bound is
/// exit 2 naming the file and the limit, before any request, in --dry-run too.
#[test]
fn a_site_past_a_head_bound_is_refused_before_any_request() {
    let s = Site::new();
    basic(&s);
    // One rule with 101 header lines (each short: the old limits let 30,000 through).
    let mut many = String::from("/*\n");
    for i in 0..101 {
        many.push_str(&format!("  X-H{i}: v\n"));
    }
    // 40 rules of one 1,900-byte line each: 76 KB of `_headers`.
    let mut big_headers = String::new();
    for i in 0..40 {
        big_headers.push_str(&format!("/p{i}/*\n  X-Big: {}\n", "v".repeat(1_900)));
    }
    // 2,000 static redirects of 150 bytes: 300 KB of `_redirects`.
    let mut big_redirects = String::new();
    for i in 0..2_000 {
        big_redirects.push_str(&format!("/old/{i:05}/{} /new 301\n", "a".repeat(130)));
    }
    let cases: [(&str, &str, &str); 3] = [
        ("_headers", &many, "100 header lines"),
        ("_headers", &big_headers, "65,536 bytes"),
        ("_redirects", &big_redirects, "262,144 bytes"),
    ];
    for (file, text, limit) in cases {
        s.write("_headers", b"");
        s.write("_redirects", b"");
        s.write(file, text.as_bytes());
        for dry in [false, true] {
            s.w.emu.clear_requests();
            let extra: &[&str] = if dry { &["--dry-run"] } else { &[] };
            let out = s.deploy(extra).expect_code(2);
            let err = out.stderr();
            assert!(err.contains(file), "{file}: {err}");
            assert!(err.contains(limit), "{file} {limit}: {err}");
            assert!(s.w.emu.requests().is_empty(), "{file}: a request was sent");
            assert_eq!(out.json()["error"]["exit_code"], 2);
        }
    }
    // Within the bounds is fine: 100 header lines in a rule.
    let mut hundred = String::from("/*\n");
    for i in 0..100 {
        hundred.push_str(&format!("  X-H{i}: v\n"));
    }
    s.write("_headers", hundred.as_bytes());
    s.write("_redirects", b"");
    s.deploy(&[]).success();
}

/// HIGH 1: 404 pages are part of the Route too; thousands of them are refused before any request.
#[test]
fn thousands_of_404_pages_are_refused_before_any_request() {
    let s = Site::new();
    basic(&s);
    let deep = "d".repeat(200);
    for i in 0..3_000 {
        s.write(&format!("{deep}/{i}/404.html"), b"gone");
    }
    s.w.emu.clear_requests();
    let out = s.deploy(&["--dry-run"]).expect_code(2);
    assert!(out.stderr().contains("404.html"), "{}", out.stderr());
    assert!(out.stderr().contains("524,288 bytes"), "{}", out.stderr());
    assert!(s.w.emu.requests().is_empty());
}

/// HIGH 1: the head itself never passes 1 MiB: previews that would push it over are shed, oldest
/// first, with a warning, and the head written stays within the bound.
#[test]
fn the_head_never_passes_one_mib_however_many_previews() {
    let s = Site::new();
    basic(&s);
    // ~250 KB of `_redirects`, within its bound: a Route of ~330 KB.
    let mut red = String::new();
    for i in 0..1_900 {
        red.push_str(&format!("/old/{i:05}/{} /new 301\n", "a".repeat(110)));
    }
    s.write("_redirects", red.as_bytes());
    s.deploy(&[]).success();
    let mut shed = false;
    for n in 0..4 {
        s.write("index.html", format!("<h1>preview {n}</h1>").as_bytes());
        let name = format!("p{n}");
        let out = s.deploy(&["--preview", &name]).success();
        shed |= out.stderr().contains("1 MiB");
        let head = &s.objects()["sites/acme/manifest.json"];
        assert!(head.len() <= 1_048_576, "the head is {} bytes", head.len());
        assert!(
            s.live()["previews"].get(&name).is_some(),
            "the new preview is in the head"
        );
    }
    assert!(
        shed,
        "a preview was shed with a note naming the 1 MiB bound"
    );
}

/// LOW: a tenant's `_headers` cannot set the platform's `x-tenant` or the `etag`.
#[test]
fn headers_cannot_set_x_tenant_or_etag() {
    let s = Site::new();
    basic(&s);
    for name in ["X-Tenant", "ETag"] {
        s.write("_headers", format!("/*\n  {name}: other\n").as_bytes());
        s.w.emu.clear_requests();
        let out = s.deploy(&[]).expect_code(2);
        assert!(
            out.stderr().contains(&name.to_ascii_lowercase()),
            "{}",
            out.stderr()
        );
        assert!(s.w.emu.requests().is_empty());
    }
}

/// LOW: a UTF-8 byte-order mark at the start of `_redirects` or `_headers` is not an error.
#[test]
fn a_byte_order_mark_in_rule_files_is_ignored() {
    let s = Site::new();
    basic(&s);
    s.write("_redirects", "\u{feff}/old /new 301\n".as_bytes());
    s.write(
        "_headers",
        "\u{feff}/*\n  X-Frame-Options: DENY\n".as_bytes(),
    );
    s.deploy(&[]).success();
    assert_eq!(
        s.live()["live"]["redirects"]["static"]["/old"]["to"],
        "/new"
    );
}

/// A fault on the DELETE of the custom hostname of `host` (by its id), once.
fn fail_delete_of(s: &Site, host: &str) {
    let id =
        s.w.emu
            .custom_hostnames()
            .into_iter()
            .find(|c| c["hostname"] == host)
            .map(|c| c["id"].as_str().unwrap().to_string())
            .expect("the custom hostname exists");
    s.w.emu.inject(Fault {
        method: Some("DELETE".into()),
        path_contains: Some(format!("/custom_hostnames/{id}")),
        kind: FaultKind::ApiError {
            status: 400,
            code: 1400,
            message: "injected".into(),
        },
        times: 1,
    });
}

fn hostnames(s: &Site) -> Vec<String> {
    let mut v: Vec<String> =
        s.w.emu
            .custom_hostnames()
            .into_iter()
            .map(|c| c["hostname"].as_str().unwrap().to_string())
            .collect();
    v.sort();
    v
}

/// HIGH 3: a remove-site whose custom hostname delete fails says what it already removed, and a
/// re-run finishes the job: no custom hostname is orphaned. LOW: a run with nothing left is exit
/// 0 with a note.
#[test]
fn a_failed_remove_site_is_finished_by_a_rerun_and_orphans_no_hostname() {
    let s = Site::new();
    basic(&s);
    s.deploy(&[DOMAIN, WWW]).success();
    assert_eq!(hostnames(&s).len(), 2);
    // The second domain (in host order: shop, www) fails.
    fail_delete_of(&s, WWW);
    let out = s.run(&["remove-site", "acme", "--yes"]).expect_code(1);
    let j = out.json();
    assert!(j["error"].is_object(), "{j:#}");
    let err = out.stderr();
    assert!(err.contains("already removed"), "{err}");
    assert!(err.contains(DOMAIN), "names what was removed: {err}");
    assert_eq!(hostnames(&s), [WWW], "the failed one is still there");

    let j = s.run(&["remove-site", "acme", "--yes"]).success().json();
    assert_eq!(j["custom_hostnames"], serde_json::json!([WWW]), "{j:#}");
    assert!(hostnames(&s).is_empty(), "no custom hostname is orphaned");
    let objects = s.objects();
    assert!(!objects.keys().any(|k| k.starts_with("hosts/")));
    assert!(!objects.contains_key("sites/acme/manifest.json"));

    // Nothing left: exit 0, with a note.
    let out = s.run(&["remove-site", "acme", "--yes"]).success();
    assert!(out.stderr().contains("already removed"), "{}", out.stderr());
    assert_eq!(out.json()["already_removed"], true);
}

/// HIGH 3: the same for remove-domain.
#[test]
fn a_failed_remove_domain_is_finished_by_a_rerun() {
    let s = Site::new();
    basic(&s);
    s.deploy(&[DOMAIN]).success();
    fail_delete_of(&s, DOMAIN);
    s.run(&["remove-domain", "acme", DOMAIN]).expect_code(1);
    assert_eq!(hostnames(&s), [DOMAIN]);
    let j = s.run(&["remove-domain", "acme", DOMAIN]).success().json();
    assert_eq!(j["custom_hostname"], true, "{j:#}");
    assert!(hostnames(&s).is_empty());
    assert!(!s.objects().contains_key(&format!("hosts/{DOMAIN}.json")));
    let out = s.run(&["remove-domain", "acme", DOMAIN]).success();
    assert!(out.stderr().contains("already"), "{}", out.stderr());
}

/// HIGH 4: `create-token --write-env` keeps the token it replaces in `.env` (here the Method 2
/// token that created the new one) as a commented, dated line naming its id, says so on stderr,
/// and never prints the value.
#[test]
fn create_token_write_env_keeps_the_replaced_token_commented_and_dated() {
    let w = World::new();
    let group = w
        .emu
        .permission_group_id("API Tokens Write", "com.cloudflare.api.user")
        .unwrap();
    let (old_id, old) = w.emu.mint_token(
        "writer",
        serde_json::json!([{
            "effect": "allow",
            "resources": { format!("com.cloudflare.api.user.{}", w.emu.seed().user_id): "*" },
            "permission_groups": [{ "id": group }],
        }]),
    );
    w.secret(&old);
    let env = w.file(".env");
    std::fs::write(
        &env,
        format!("CLOUDFLARE_API_TOKEN={old}\nCLOUDFLARE_API_TOKEN_ID={old_id}\nX=1\n"),
    )
    .unwrap();
    let run = w
        .run(w.ids().args([
            "create-token",
            "--name",
            "platform",
            "--write-env",
            "--no-test",
        ]))
        .success();
    assert!(!run.stdout().contains(&old));
    let err = run.stderr();
    assert!(err.contains(&old_id), "names the old token's id: {err}");
    assert!(err.contains("kept"), "{err}");
    let text = std::fs::read_to_string(&env).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("# cfsetup 20"), "dated: {text}");
    assert!(lines[0].contains(&old_id), "{text}");
    assert_eq!(lines[1], format!("# CLOUDFLARE_API_TOKEN={old}"));
    let new = lines[2].strip_prefix("CLOUDFLARE_API_TOKEN=").unwrap();
    w.secret(new);
    assert_ne!(new, old);
    assert!(lines[3].starts_with("CLOUDFLARE_API_TOKEN_ID="));
    assert_ne!(lines[3], format!("CLOUDFLARE_API_TOKEN_ID={old_id}"));
    assert_eq!(lines[4], "X=1");
    // The file still reads as one value.
    w.run(w.ids().arg("test-permissions")).expect_code(0);
}

/// HIGH 4: the same for `rotate-token --write-env`.
#[test]
fn rotate_token_write_env_keeps_the_replaced_value() {
    let w = World::new();
    let (id, old) = w.emu.mint_token("platform", w.policies(&EIGHT));
    w.secret(&old);
    std::fs::write(w.file("ci.env"), format!("CLOUDFLARE_API_TOKEN={old}\n")).unwrap();
    let run = w
        .run(
            w.with_global_key()
                .args(["rotate-token", "--id", &id, "--write-env", "ci.env"]),
        )
        .success();
    assert!(run.stderr().contains("kept"), "{}", run.stderr());
    let text = std::fs::read_to_string(w.file("ci.env")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("# cfsetup 20"), "{text}");
    assert_eq!(lines[1], format!("# CLOUDFLARE_API_TOKEN={old}"));
    let new = lines[2].strip_prefix("CLOUDFLARE_API_TOKEN=").unwrap();
    w.secret(new);
}

/// HIGH 2: two tenants deploying one new domain at once: exactly one wins the host entry, and the
/// other exits 1 saying who holds it and naming --take-over-domain. The host entry's write is
/// delayed (fixed, bounded), so both runs read "no entry" before either writes.
#[test]
fn two_tenants_claiming_one_domain_at_once_exactly_one_wins() {
    let s = Site::new();
    basic(&s);
    for round in 0..3 {
        let domain = format!("d{round}.acme-store.com");
        s.w.emu.inject(Fault {
            method: Some("PUT".into()),
            path_contains: Some(format!("hosts/{domain}")),
            kind: FaultKind::Latency(std::time::Duration::from_millis(1_500)),
            times: 2,
        });
        let outs: Vec<crate::common::Run> = std::thread::scope(|scope| {
            let runs: Vec<_> = ["acme", "globex"]
                .into_iter()
                .map(|tenant| {
                    let s = &s;
                    let domain = domain.clone();
                    scope.spawn(move || {
                        let mut cmd = s.cmd();
                        cmd.args(["--json", "deploy-site", "site", tenant, &domain]);
                        s.w.run(&mut cmd)
                    })
                })
                .collect();
            runs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let codes: Vec<i32> = outs.iter().map(|o| o.code()).collect();
        let winners = codes.iter().filter(|c| **c == 0).count();
        assert_eq!(winners, 1, "round {round}: exactly one wins: {codes:?}");
        let loser = outs.iter().find(|o| o.code() != 0).unwrap();
        assert_eq!(loser.code(), 1, "{}", loser.stderr());
        let err = loser.stderr();
        assert!(err.contains("attached to tenant"), "{err}");
        assert!(err.contains("--take-over-domain"), "{err}");
        let winner = if codes[0] == 0 { "acme" } else { "globex" };
        assert_eq!(
            s.objects()[&format!("hosts/{domain}.json")],
            format!("{{\"tenant\":\"{winner}\"}}").into_bytes(),
        );
        // The loser's report says its entry was lost, with an error object.
        let j = loser.json();
        assert!(j["error"].is_object(), "{j:#}");
    }
}

/// MEDIUM 6 and 11: a refused domain is a partial failure with an `error` object in JSON and an
/// error line at the end of the text output; it is listed apart, never as one of the site's URLs.
#[test]
fn a_refused_domain_is_an_error_object_and_not_a_url() {
    let s = Site::new();
    basic(&s);
    // 1411: example.com names are refused by the API.
    let out = s.deploy(&["shop.example.com"]).expect_code(1);
    let j = out.json();
    assert_eq!(j["error"]["kind"], "partial", "{j:#}");
    assert_eq!(j["error"]["exit_code"], 1);
    assert!(j["error"]["message"]
        .as_str()
        .unwrap()
        .contains("shop.example.com"));
    let urls: Vec<&str> = j["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert!(
        !urls.iter().any(|u| u.contains("shop.example.com")),
        "{urls:?}"
    );
    assert_eq!(
        j["refused_domains"],
        serde_json::json!(["shop.example.com"])
    );

    let mut cmd = s.cmd();
    cmd.args(["deploy-site", "site", "acme", "shop.example.com"]);
    let out = s.w.run(&mut cmd).expect_code(1);
    assert!(
        !out.stdout().contains("https://shop.example.com/"),
        "{}",
        out.stdout()
    );
    let last = out.stderr().lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("cfsetup: error:"), "{}", out.stderr());
}

/// MEDIUM 6: a --wait timeout and a partial deploy-infra carry an `error` object too.
#[test]
fn a_wait_timeout_carries_an_error_object() {
    let mut options = cfsetup_emulator::Options::new();
    options.activate_custom_hostnames_after = None;
    let s = Site::with_options(options);
    basic(&s);
    let j = s.deploy(&[DOMAIN, "--wait", "1s"]).expect_code(1).json();
    assert_eq!(j["error"]["kind"], "partial", "{j:#}");
    assert!(j["error"]["message"].as_str().unwrap().contains("--wait"));
}

/// MEDIUM 14: gc's "freed" counts everything it deleted (deploy copies and shards too), and LOW:
/// a removed tenant is not counted as a tenant.
#[test]
fn gc_freed_counts_everything_deleted_and_removed_tenants_are_not_tenants() {
    let s = Site::new();
    basic(&s);
    s.deploy(&[]).success();
    s.run(&["deploy-site", "site", "globex"]).success();
    s.run(&["remove-site", "globex", "--yes"]).success();
    let before: u64 = s.objects().values().map(|b| b.len() as u64).sum();
    let j = s.run(&["gc", "--grace", "0s"]).success().json();
    let after: u64 = s.objects().values().map(|b| b.len() as u64).sum();
    assert_eq!(j["tenants"], 1, "{j:#}");
    assert_eq!(j["bytes_freed"], before - after, "{j:#}");
    assert!(j["copies_deleted"].as_u64().unwrap() >= 1);
}

/// LOW: a corrupt head stops gc with a hint saying how to unblock it.
#[test]
fn a_corrupt_head_stops_gc_with_a_hint() {
    let s = Site::new();
    basic(&s);
    s.deploy(&[]).success();
    s.put("sites/broken/manifest.json", b"{not json");
    let out = s.run(&["gc", "--grace", "0s"]).expect_code(1);
    assert!(
        out.stderr().contains("remove-site broken"),
        "{}",
        out.stderr()
    );
}

/// MEDIUM 5: the wait note names the marker and `gc --unlock`, which deletes a dead marker so
/// the next deploy does not wait.
#[test]
fn the_wait_note_names_the_marker_and_gc_unlock_clears_it() {
    let s = Site::new();
    basic(&s);
    let marker = "locks/gc/dead.json";
    s.put(
        marker,
        br#"{"owner":"x","started_at":"","refreshed_at":""}"#,
    );
    let out = s.deploy(&["--lock-stale", "1s"]).success();
    assert!(out.stderr().contains(marker), "{}", out.stderr());
    assert!(out.stderr().contains("gc --unlock"), "{}", out.stderr());

    s.put(
        marker,
        br#"{"owner":"x","started_at":"","refreshed_at":""}"#,
    );
    let j = s.run(&["gc", "--unlock"]).success().json();
    assert_eq!(j["unlocked"], serde_json::json!([marker]));
    assert!(!s.objects().contains_key(marker));
    s.write("index.html", b"<h1>v2</h1>");
    let j = s.deploy(&[]).success().json();
    assert!(j["waited_for_gc_secs"].is_null(), "{j:#}");
}

/// MEDIUM 5: gc handles SIGTERM (and SIGINT) as deploy-site does: it stops, removes its sweep
/// marker, and reports what it did, as JSON with an `error` object, exit 130.
#[cfg(unix)]
#[test]
fn gc_stopped_by_sigterm_removes_its_marker_and_reports() {
    let s = Site::new();
    basic(&s);
    s.deploy(&[]).success();
    // The head read stalls, so the gc is mid-run (its marker written) when the signal comes.
    s.w.emu.inject(Fault {
        method: Some("GET".into()),
        path_contains: Some("sites/acme/manifest.json".into()),
        kind: FaultKind::Latency(std::time::Duration::from_secs(20)),
        times: 1,
    });
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("cfsetup"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", s.w.path())
        .env("NO_COLOR", "1")
        .env("CLOUDFLARE_API_BASE_URL", s.w.emu.base_url())
        .env("R2_S3_ENDPOINT", s.w.emu.s3_endpoint())
        .env("CLOUDFLARE_ACCOUNT_ID", s.w.account_id())
        .env("CLOUDFLARE_ZONE_ID", s.w.zone_id())
        .env("CLOUDFLARE_API_TOKEN", &s.token)
        .current_dir(s.w.path())
        .args(["--json", "gc", "--grace", "0s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    let has_marker = || s.objects().keys().any(|k| k.starts_with("locks/gc/"));
    let mut tries = 0;
    while !has_marker() {
        tries += 1;
        assert!(tries < 400, "the gc never wrote its marker");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(!has_marker(), "the marker is removed");
    let j: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(j["interrupted"], true);
    assert_eq!(j["objects_deleted"], 0);
    assert_eq!(j["error"]["kind"], "interrupted", "{j:#}");
    assert_eq!(j["error"]["exit_code"], 130);
    assert!(stderr.contains("SIGTERM"), "{stderr}");
}

/// MEDIUM 9: over REST, deploys and rollbacks warn once that concurrent runs of one tenant are
/// unsafe; over S3 they do not; the Global API Key's note says objects go over paced REST.
#[test]
fn rest_switches_warn_that_concurrent_runs_are_unsafe() {
    let s = Site::new();
    basic(&s);
    let out = s.deploy(&[]).success();
    assert!(!out.stderr().contains("at once"), "{}", out.stderr());
    s.write("index.html", b"<h1>v2</h1>");
    let out = s.deploy(&["--via", "rest"]).success();
    assert_eq!(
        out.stderr().matches("at once").count(),
        1,
        "{}",
        out.stderr()
    );
    let out = s.run(&["rollback", "acme", "--via", "rest"]);
    assert!(out.stderr().contains("at once"), "{}", out.stderr());

    let mut cmd = s.w.with_global_key();
    cmd.env("PLATFORM_DOMAIN", s.w.zone_name());
    s.write("index.html", b"<h1>v3</h1>");
    cmd.args(["deploy-site", "site", "acme"]);
    let out = s.w.run(&mut cmd).success();
    assert!(
        out.stderr().contains("1,200 requests per 5 minutes"),
        "{}",
        out.stderr()
    );
}

/// MEDIUM 10: a wrong account ID (9109: no access to this account) points to
/// CLOUDFLARE_ACCOUNT_ID, not to adding permissions.
#[test]
fn a_wrong_account_id_points_to_cloudflare_account_id() {
    let w = World::new();
    let token = w.full_token();
    let mut cmd = w.with_token(&token);
    cmd.env("CLOUDFLARE_ACCOUNT_ID", "0123456789abcdef0123456789abcdef")
        .args(["test-permissions"]);
    let out = w.run(&mut cmd);
    assert_ne!(out.code(), 0);
    let all = format!("{}{}", out.stdout(), out.stderr());
    assert!(all.contains("CLOUDFLARE_ACCOUNT_ID"), "{all}");
    assert!(!all.contains("add Account Settings Read"), "{all}");
    assert!(!all.contains("To fix"), "{all}");
}

/// MEDIUM 15: test-permissions sweeps a leftover check bucket that still holds its object
/// (emptied, then deleted), instead of ignoring the 409.
#[test]
fn a_leftover_check_bucket_holding_an_object_is_swept() {
    use cfsetup::cloudflare::r2::BucketRef;
    let w = World::new();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let old = format!("cfsetup-check-{}-dead", secs - 3600);
    let client = crate::test_permissions::global_client(&w);
    let acct = w.account_id();
    crate::deploy_site::rt().block_on(async {
        let b = BucketRef {
            account: &acct,
            name: &old,
            jurisdiction: None,
        };
        client.create_bucket(b, None).await.unwrap();
        client
            .put_object(
                b,
                &format!("{old}.txt"),
                cfsetup::cloudflare::r2::ObjectBody::Bytes(bytes::Bytes::from_static(b"x")),
                "text/plain",
            )
            .await
            .unwrap();
    });
    let token = w.full_token();
    let j = w
        .run(w.with_token(&token).args(["--json", "test-permissions"]))
        .success()
        .json();
    assert_eq!(
        j["swept"],
        serde_json::json!([format!("bucket {old}")]),
        "{j:#}"
    );
    assert_eq!(j["left_behind"], serde_json::json!([]));
    assert!(w.emu.buckets().is_empty(), "{:?}", w.emu.buckets());
}

/// MEDIUM 7: a refusal on an object call names the permission and the account; on a custom
/// hostname, SSL and Certificates Write on the zone (and it is not a "verification error").
#[test]
fn permission_refusals_on_objects_and_custom_hostnames_name_the_permission() {
    let s = Site::new();
    basic(&s);
    let no_r2 = s.w.token_without("Workers R2 Storage Write");
    for via in ["s3", "rest", "auto"] {
        let mut cmd = s.w.with_token(&no_r2);
        cmd.env("PLATFORM_DOMAIN", s.w.zone_name()).args([
            "deploy-site",
            "site",
            "acme",
            "--via",
            via,
        ]);
        let out = s.w.run(&mut cmd).expect_code(1);
        let want = format!("Workers R2 Storage Write on account {}", s.w.account_id());
        assert!(out.stderr().contains(&want), "{via}: {}", out.stderr());
    }
    let no_ssl = s.w.token_without("SSL and Certificates Write");
    let mut cmd = s.w.with_token(&no_ssl);
    cmd.env("PLATFORM_DOMAIN", s.w.zone_name()).args([
        "--json",
        "deploy-site",
        "site",
        "acme",
        DOMAIN,
    ]);
    let out = s.w.run(&mut cmd).expect_code(1);
    let want = format!("SSL and Certificates Write on zone {}", s.w.zone_id());
    assert!(out.stderr().contains(&want), "{}", out.stderr());
    let j = out.json();
    assert_eq!(
        j["custom_hostnames"][0]["verification_errors"],
        serde_json::json!([]),
        "{j:#}"
    );
}

/// MEDIUM 12: deploy-infra says, in the plan and the report, that `*/*` captures the zone's
/// other proxied hostnames, and that the token cannot list them (no DNS Read).
#[test]
fn deploy_infra_says_what_the_catch_all_route_captures() {
    let w = World::new();
    let token = w.full_token();
    for dry in [true, false] {
        let mut cmd = w.with_token(&token);
        cmd.args(["--json", "deploy-infra"]);
        if dry {
            cmd.arg("--dry-run");
        }
        let out = w.run(&mut cmd);
        let j = out.json();
        assert_eq!(j["route_capture"]["pattern"], "*/*", "{j:#}");
        let note = j["route_capture"]["note"].as_str().unwrap();
        assert!(note.contains("proxied hostname"), "{note}");
        assert!(note.contains("DNS Read"), "{note}");
        assert!(out.stderr().contains("*/*"), "{}", out.stderr());
    }
}

/// MEDIUM 8: a CLOUDFLARE_API_TOKEN_ID in `.env` is not paired with a token from the environment
/// (it may be another token's): the token is verified instead, S3 works, and a note says so.
#[test]
fn a_token_id_from_env_file_is_not_paired_with_a_token_from_the_environment() {
    let s = Site::new();
    basic(&s);
    std::fs::write(
        s.w.file(".env"),
        "CLOUDFLARE_API_TOKEN_ID=0123456789abcdef0123456789abcdef\n",
    )
    .unwrap();
    let out = s.deploy(&["--via", "s3"]).success();
    let err = out.stderr();
    assert!(
        err.contains("CLOUDFLARE_API_TOKEN_ID comes from the .env file"),
        "{err}"
    );
    assert!(
        s.w.emu
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/tokens/verify")),
        "the token was verified to learn its id"
    );
}

/// LOW: `--not-found 404` with no 404.html warns; a default preview name that cannot fit blames
/// the tenant's length, not the user's --preview, before any request; `--include-hidden` never
/// publishes secret files, in any letter case.
#[test]
fn small_deploy_site_lows() {
    let s = Site::new();
    basic(&s);
    let out = s.deploy(&["--not-found", "404"]).success();
    assert!(out.stderr().contains("has none"), "{}", out.stderr());

    let long = "a".repeat(60);
    s.w.emu.clear_requests();
    let mut cmd = s.cmd();
    cmd.args(["deploy-site", "site", &long, "--preview"]);
    let out = s.w.run(&mut cmd).expect_code(2);
    assert!(
        out.stderr().contains("too long for a preview"),
        "{}",
        out.stderr()
    );
    assert!(s.w.emu.requests().is_empty());

    s.write(".ENV", b"SECRET=1");
    s.write(".npmrc", b"//registry:_authToken=x");
    s.write(".ssh/id_ed25519", b"key");
    s.deploy(&["--include-hidden"]).success();
    let paths = s.live_paths();
    assert!(
        !paths
            .iter()
            .any(|p| p.contains(".ENV") || p.contains(".npmrc") || p.contains(".ssh")),
        "{paths:?}"
    );
}

/// LOW: a file that changes on disk during the upload is said so, not "upload interrupted". The
/// token verification (before any upload) is held for 2 s while the file is rewritten.
#[test]
fn a_file_changed_during_upload_is_not_called_an_interruption() {
    let s = Site::new();
    basic(&s);
    s.w.emu.inject(Fault {
        method: None,
        path_contains: Some("/tokens/verify".into()),
        kind: FaultKind::Latency(std::time::Duration::from_secs(2)),
        times: 1,
    });
    let out = std::thread::scope(|scope| {
        let run = scope.spawn(|| s.deploy(&["--via", "s3"]));
        // The walk (which hashes) is done long before the verification answers.
        std::thread::sleep(std::time::Duration::from_millis(800));
        s.write("index.html", b"<h1>rewritten by a build still running</h1>");
        run.join().unwrap()
    });
    let out = out.expect_code(1);
    assert!(out.stderr().contains("changed on disk"), "{}", out.stderr());
    assert!(
        !out.stderr().contains("upload interrupted"),
        "{}",
        out.stderr()
    );
}

/// LOW: a dry run says what it would send (`bytes_to_send`), and `bytes_sent` is 0.
#[test]
fn a_dry_run_sends_nothing_and_says_what_it_would() {
    let s = Site::new();
    basic(&s);
    let j = s.deploy(&["--dry-run"]).success().json();
    assert_eq!(j["bytes_sent"], 0, "{j:#}");
    assert_eq!(j["bytes_to_send"], 13 + 14, "{j:#}");
}

/// LOW: `rollback --list` is newest first with previews among the rest, a promoted preview is
/// listed once (there and in `sites TENANT`), and an unknown VERSION's headline is the problem.
#[test]
fn rollback_list_and_sites_history_are_newest_first_and_list_a_promoted_preview_once() {
    let s = Site::new();
    basic(&s);
    s.deploy(&[]).success();
    s.write("index.html", b"<h1>p</h1>");
    s.deploy(&["--preview", "p1"]).success();
    s.write("index.html", b"<h1>v2</h1>");
    s.deploy(&[]).success();
    s.run(&["rollback", "acme", "p1"]).success();
    for args in [&["rollback", "acme", "--list"][..], &["sites", "acme"][..]] {
        let j = s.run(args).success().json();
        let rows = j
            .get("deploys")
            .or_else(|| j.get("history"))
            .and_then(|v| v.as_array())
            .unwrap_or_else(|| panic!("{j:#}"))
            .clone();
        let ids: Vec<&str> = rows
            .iter()
            .map(|r| r["deploy_id"].as_str().unwrap())
            .collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        sorted.dedup();
        assert_eq!(ids, sorted, "{args:?}: newest first, each once: {j:#}");
    }
    let out = s.run(&["rollback", "acme", "20990101"]).expect_code(1);
    let first = out.stderr().lines().next().unwrap_or_default().to_string();
    assert!(first.contains("has no kept deploy"), "{}", out.stderr());
}

/// LOW: `emulator --help` describes fault injection.
#[test]
fn emulator_help_describes_fault_injection() {
    let w = World::new();
    let out = w.run(w.bare().args(["emulator", "--help"])).success();
    assert!(
        out.stdout().contains("/__emulator/faults"),
        "{}",
        out.stdout()
    );
    assert!(out.stdout().contains("server_error"), "{}", out.stdout());
}

/// LOW: `--write-env` leaves no `.env.cfsetup-lock` in the project folder (on Unix the folder
/// itself is locked).
#[cfg(unix)]
#[test]
fn write_env_leaves_no_lock_file_behind() {
    let w = World::new();
    w.run(w.with_global_key().args([
        "create-token",
        "--name",
        "nolock",
        "--expires-in",
        "1d",
        "--write-env",
        "--no-test",
    ]))
    .success();
    let names: Vec<String> = std::fs::read_dir(w.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains("cfsetup-lock")),
        "{names:?}"
    );
    let text = std::fs::read_to_string(w.file(".env")).unwrap();
    for word in text.split(['=', '\n']) {
        if word.starts_with("cfut_") {
            w.secret(word);
        }
    }
}

/// LOW: `sites` does not count a removed tenant (its copies wait for gc).
#[test]
fn sites_leaves_out_removed_tenants() {
    let s = Site::new();
    basic(&s);
    s.deploy(&[]).success();
    s.run(&["deploy-site", "site", "globex"]).success();
    s.run(&["remove-site", "globex", "--yes"]).success();
    let j = s.run(&["sites"]).success().json();
    let tenants: Vec<&str> = j["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(tenants, ["acme"], "{j:#}");
}

/// LOW: with stderr not a terminal (CI), a long upload prints a progress line every few seconds
/// (the interval lowered here; the uploads are held 1 s each by the emulator).
#[test]
fn progress_lines_when_stderr_is_not_a_terminal() {
    let s = Site::new();
    basic(&s);
    s.w.emu.inject(Fault {
        method: Some("PUT".into()),
        path_contains: Some("/blobs/".into()),
        kind: FaultKind::Latency(std::time::Duration::from_secs(1)),
        times: 2,
    });
    let mut cmd = s.cmd();
    cmd.env("CFSETUP_PROGRESS_SECS", "0.2")
        .args(["deploy-site", "site", "acme"]);
    let out = s.w.run(&mut cmd).success();
    assert!(
        out.stderr()
            .contains("cfsetup: progress: checking and uploading: "),
        "{}",
        out.stderr()
    );
}

/// LOW: an optional-value option that swallowed the next argument is refused with a hint to use
/// `=` or reorder, before any request.
#[test]
fn an_option_that_swallowed_a_domain_says_so() {
    let s = Site::new();
    basic(&s);
    s.w.emu.clear_requests();
    let out = s.deploy(&["--wait", DOMAIN]).expect_code(2);
    assert!(out.stderr().contains("--wait=10m"), "{}", out.stderr());
    let out = s.deploy(&["--preview", DOMAIN]).expect_code(2);
    assert!(
        out.stderr().contains("--preview=feature-x"),
        "{}",
        out.stderr()
    );
    assert!(s.w.emu.requests().is_empty());
}

/// LOW: the README's request counts for an unchanged deploy are what a run makes: over REST the
/// head alone; with a DOMAIN whose hostname is pending, its host entry, the custom hostname
/// lookup and the fallback origin (the CNAME target) besides.
#[test]
fn an_unchanged_deploy_makes_the_requests_the_readme_says() {
    let s = Site::new();
    basic(&s);
    s.deploy(&["--via", "rest"]).success();
    s.w.emu.clear_requests();
    s.deploy(&["--via", "rest"]).success();
    let paths: Vec<String> =
        s.w.emu
            .requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
    assert_eq!(paths.len(), 1, "{paths:#?}");

    s.deploy(&["--via", "rest", DOMAIN]).success();
    s.w.emu.clear_requests();
    s.deploy(&["--via", "rest", DOMAIN]).success();
    let paths: Vec<String> =
        s.w.emu
            .requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
    assert_eq!(paths.len(), 4, "{paths:#?}");
}

/// LOW: `demo --serve` prints its report before serving, and a SIGTERM to cfsetup alone stops
/// node and workerd too (the port is free afterwards) and ends with "Stopped serving".
#[cfg(unix)]
#[test]
fn demo_serve_reports_first_and_sigterm_leaves_no_workerd() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("worker/node_modules").is_dir(),
        "worker/node_modules is missing: run `npm ci --prefix worker` first"
    );
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("out.txt");
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("cfsetup"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.path())
        .env("NO_COLOR", "1")
        .current_dir(&root)
        .args(["demo", "--serve", "--port", &port.to_string()])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Bounded wait until the site answers on the port.
    let mut up = false;
    for _ in 0..600 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let report_before = std::fs::read_to_string(&out_path).unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(up, "the demo never served on {port}");
    assert!(
        report_before.contains("Step 1/5"),
        "the report came first: {report_before}"
    );
    assert!(status.success(), "{status}");
    let out = std::fs::read_to_string(&out_path).unwrap();
    assert!(out.contains("Stopped serving"), "{out}");
    // workerd went with node: nothing listens on the port any more.
    let mut free = false;
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            free = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        free,
        "something still listens on {port}: workerd was orphaned"
    );
}
