//! `destroy-infra` against the emulator: its refusals (no `--yes` off a terminal, a live tenant),
//! a full run that leaves what it did not create, `--dry-run`, and a second run with nothing to do.

use cfsetup::cloudflare::{Auth, Client, ClientOptions};
use cfsetup::secret::Secret;
use serde_json::Value;

use crate::common::World;
use crate::deploy_site::rt;

const FALLBACK: &str = "fallback.getai.page";

/// A platform made by deploy-infra (with the fallback origin), one tenant deployed, and a route
/// of someone else's on the same zone.
fn platform() -> (World, String) {
    let w = World::new();
    let token = w.full_token();
    w.run(
        w.with_token(&token)
            .args(["deploy-infra", "--fallback-origin", FALLBACK]),
    )
    .success();
    std::fs::create_dir_all(w.file("site")).unwrap();
    std::fs::write(w.file("site/index.html"), "<h1>acme</h1>").unwrap();
    w.run(
        w.with_token(&token)
            .env("PLATFORM_DOMAIN", w.zone_name())
            .args(["deploy-site", "site", "acme"]),
    )
    .success();
    let client = Client::new(
        &url::Url::parse(&w.emu.base_url()).unwrap(),
        Auth::Token(Secret::new(token.clone())),
        ClientOptions::default(),
    )
    .unwrap();
    let zone = w.zone_id();
    let pattern = format!("other.{}/*", w.zone_name());
    rt().block_on(async { client.create_route(&zone, &pattern, None).await.unwrap() });
    w.emu.clear_requests();
    (w, token)
}

fn destroy(w: &World, token: &str, args: &[&str]) -> crate::common::Run {
    let mut cmd = w.with_token(token);
    cmd.env("SAAS_FALLBACK_ORIGIN", FALLBACK)
        .args(["--json", "destroy-infra"])
        .args(args);
    w.run(&mut cmd)
}

fn actions(json: &Value) -> Vec<(String, String)> {
    json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["resource"].as_str().unwrap().to_string(),
                s["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn without_yes_off_a_terminal_it_refuses_with_exit_2_before_any_request() {
    let (w, token) = platform();
    let out = destroy(&w, &token, &[]).expect_code(2);
    assert!(out.stdout().contains("--yes"), "{}", out.stdout());
    assert!(w.emu.requests().is_empty());
}

#[test]
fn a_live_tenant_is_refused_with_exit_1_naming_it_and_nothing_changes() {
    let (w, token) = platform();
    let out = destroy(&w, &token, &["--yes", "--delete-bucket"]).expect_code(1);
    let message = out.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("acme"), "{message}");
    assert!(message.contains("--force"), "{message}");
    assert!(w.writes().is_empty(), "{:?}", w.writes());
    assert_eq!(w.emu.scripts().len(), 1);
}

#[test]
fn dry_run_lists_what_would_go_and_writes_nothing() {
    let (w, token) = platform();
    let json = destroy(&w, &token, &["--dry-run", "--force", "--delete-bucket"])
        .success()
        .json();
    let a = actions(&json);
    assert!(
        a.contains(&("worker".into(), "would delete".into())),
        "{a:?}"
    );
    assert!(
        a.contains(&("bucket".into(), "would delete".into())),
        "{a:?}"
    );
    assert!(
        a.contains(&("objects".into(), "would delete".into())),
        "{a:?}"
    );
    assert!(w.writes().is_empty(), "{:?}", w.writes());
}

#[test]
fn a_full_run_removes_only_what_deploy_infra_made_and_a_second_finds_nothing() {
    let (w, token) = platform();
    let json = destroy(&w, &token, &["--yes", "--force", "--delete-bucket"])
        .success()
        .json();
    let a = actions(&json);
    assert!(a.contains(&("route".into(), "left alone".into())), "{a:?}");
    for resource in ["worker", "fallback origin", "objects", "bucket"] {
        assert!(a.contains(&(resource.into(), "deleted".into())), "{a:?}");
    }
    assert_eq!(json["live_tenants"][0], "acme");
    // Only the route the platform did not create remains.
    let routes = w.emu.routes();
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0].pattern, format!("other.{}/*", w.zone_name()));
    assert!(w.emu.scripts().is_empty());
    assert!(w.emu.buckets().is_empty());
    let bulk = w
        .writes()
        .iter()
        .filter(|r| r.query.as_deref().is_some_and(|q| q.contains("delete")))
        .count();
    assert!(bulk >= 1, "objects are deleted in batches");

    // Again: nothing to do, no write, exit 0.
    w.emu.clear_requests();
    let json = destroy(&w, &token, &["--yes", "--delete-bucket"])
        .success()
        .json();
    assert!(actions(&json)
        .iter()
        .all(|(_, a)| a == "absent" || a == "left alone"));
    assert!(w.writes().is_empty(), "{:?}", w.writes());
}

#[test]
fn a_script_of_that_name_that_is_not_the_router_is_left_alone() {
    let (w, token) = platform();
    // Point the Worker at another bucket by name: it is no longer this platform's router.
    let json = {
        let mut cmd = w.with_token(&token);
        cmd.env("SAAS_FALLBACK_ORIGIN", FALLBACK)
            .env("R2_BUCKET_NAME", "someone-elses")
            .args(["--json", "destroy-infra", "--yes", "--force"]);
        w.run(&mut cmd).success().json()
    };
    let a = actions(&json);
    assert!(a.contains(&("worker".into(), "left alone".into())), "{a:?}");
    assert_eq!(w.emu.scripts().len(), 1);
    // Its routes are not the platform's either.
    assert_eq!(w.emu.routes().len(), 3, "{:?}", w.emu.routes());
}
