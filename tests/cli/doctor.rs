//! `cfsetup doctor` against the emulator: healthy, and each fault it detects.

use serde_json::Value;

use crate::common::World;

fn deploy_infra(w: &World, token: &str) {
    let zone = w.zone_name();
    w.run(w.with_token(token).args([
        "deploy-infra",
        "--fallback-origin",
        &format!("fallback.{zone}"),
    ]))
    .success();
}

fn doctor(w: &World, token: &str, extra: &[&str]) -> (i32, Value) {
    let zone = w.zone_name();
    let fallback = format!("fallback.{zone}");
    let mut args = vec!["--json", "doctor", "--fallback-origin", fallback.as_str()];
    args.extend_from_slice(extra);
    let run = w.run(w.with_token(token).args(&args));
    (run.code(), run.json())
}

/// The findings as (check, state) pairs, for readable failures.
fn states(json: &Value) -> Vec<(String, String)> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["check"].as_str().unwrap().to_string(),
                f["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn state_of(json: &Value, check: &str) -> String {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"].as_str().unwrap().starts_with(check))
        .unwrap_or_else(|| panic!("no finding {check}: {:?}", states(json)))["state"]
        .as_str()
        .unwrap()
        .to_string()
}

fn found_of(json: &Value, check: &str) -> String {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"].as_str().unwrap().starts_with(check))
        .unwrap()["found"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_healthy_platform_is_all_ok_and_doctor_leaves_nothing_behind() {
    let w = World::new();
    let token = w.full_token();
    deploy_infra(&w, &token);
    let writes_before = w.writes().len();
    let (code, json) = doctor(&w, &token, &[]);
    assert_eq!(code, 0, "{:?}", states(&json));
    assert_eq!(json["needs_action"], 0);
    for check in [
        "token",
        "S3 reachable",
        "S3 refuses a body",
        "S3 conditional writes",
        "listing time precision",
        "S3 multipart",
        "R2 bucket",
        "Worker",
        "route",
        "fallback origin",
        "custom hostname quota",
    ] {
        assert_eq!(state_of(&json, check), "ok", "{check}: {:?}", states(&json));
    }
    assert!(
        found_of(&json, "S3 refuses a body").contains("XAmzContentSHA256Mismatch"),
        "{}",
        found_of(&json, "S3 refuses a body")
    );
    // Its only writes are S3 writes of one temporary object (and one aborted upload), gone now.
    let rest_writes: Vec<_> = w.writes()[writes_before..]
        .iter()
        .filter(|r| r.api == cfsetup_emulator::Api::Rest)
        .cloned()
        .collect();
    assert!(rest_writes.is_empty(), "{rest_writes:?}");
    for b in w.emu.buckets() {
        assert!(
            w.emu
                .objects(&b)
                .iter()
                .all(|o| !o.key.starts_with("cfsetup-doctor-")),
            "the temporary object is gone"
        );
    }
    assert!(w.emu.pending_uploads().is_empty());
    // The table form says so too.
    let zone = w.zone_name();
    let run = w
        .run(w.with_token(&token).args([
            "doctor",
            "--fallback-origin",
            &format!("fallback.{zone}"),
        ]))
        .success();
    assert!(run.stdout().contains("all is well"), "{}", run.stdout());
}

#[test]
fn nothing_deployed_needs_action_and_exits_1() {
    let w = World::new();
    let token = w.full_token();
    let (code, json) = doctor(&w, &token, &[]);
    assert_eq!(code, 1);
    assert_eq!(state_of(&json, "R2 bucket"), "action");
    assert_eq!(state_of(&json, "S3 reachable"), "action");
    let found = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"].as_str().unwrap().starts_with("S3 reachable"))
        .unwrap()["cfsetup"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(found.contains("deploy-infra"), "{found}");
}

#[test]
fn an_unreachable_s3_endpoint_is_reported_quickly() {
    let w = World::new();
    let token = w.full_token();
    deploy_infra(&w, &token);
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        format!("http://127.0.0.1:{port}")
    };
    let zone = w.zone_name();
    let started = std::time::Instant::now();
    let run = w.run(w.with_token(&token).env("R2_S3_ENDPOINT", &closed).args([
        "--json",
        "doctor",
        "--fallback-origin",
        &format!("fallback.{zone}"),
    ]));
    eprintln!("took {:?}", started.elapsed());
    let json = run.json();
    assert_eq!(run.code(), 1);
    assert_eq!(state_of(&json, "S3 reachable"), "action");
    assert!(found_of(&json, "S3 reachable").contains(&closed));
    assert_eq!(state_of(&json, "S3 multipart"), "skipped");
    // The platform half still ran.
    assert_eq!(state_of(&json, "Worker"), "ok");
}

#[test]
fn a_different_worker_and_a_token_without_r2_are_reported() {
    let w = World::new();
    let token = w.full_token();
    deploy_infra(&w, &token);
    // Another build of the router: the deployed module differs from this binary's.
    let zone = w.zone_name();
    w.run(w.with_token(&token).args([
        "deploy-infra",
        "--fallback-origin",
        &format!("fallback.{zone}"),
    ]))
    .success();
    let scripts = w.emu.scripts();
    assert_eq!(scripts.len(), 1);
    w.emu
        .replace_script_module(&scripts[0].name, b"export default {};\n");
    let (code, json) = doctor(&w, &token, &[]);
    assert_eq!(code, 1);
    assert_eq!(state_of(&json, "Worker"), "action", "{:?}", states(&json));
    assert!(found_of(&json, "Worker").contains("differs"));

    let no_r2 = w.token_without("Workers R2 Storage Write");
    let (code, json) = doctor(&w, &no_r2, &[]);
    assert_eq!(code, 1);
    assert_eq!(state_of(&json, "S3 reachable"), "action");
}

#[test]
fn bad_settings_are_exit_2_before_any_request() {
    let w = World::new();
    let token = w.full_token();
    let before = w.emu.requests().len();
    w.run(
        w.with_token(&token)
            .args(["doctor", "--bucket", "Not_A_Bucket"]),
    )
    .expect_code(2);
    assert_eq!(w.emu.requests().len(), before);
}

#[test]
fn the_quota_is_reported_billed_past_the_allocation_and_refusing_at_the_cap() {
    let w = World::new();
    let token = w.full_token();
    deploy_infra(&w, &token);
    // No custom hostname yet: within the allocation.
    w.emu.set_custom_hostname_quota(0, 100);
    let (code, json) = doctor(&w, &token, &[]);
    assert_eq!(
        state_of(&json, "custom hostname quota"),
        "ok",
        "{:?}",
        states(&json)
    );
    assert_eq!(code, 0);
    let zone = w.zone_name();
    std::fs::create_dir_all(w.file("site")).unwrap();
    std::fs::write(w.file("site/index.html"), "hi").unwrap();
    w.run(w.with_token(&token).env("PLATFORM_DOMAIN", &zone).args([
        "deploy-site",
        "--no-dns",
        "site",
        "acme",
        "shop.acme-store.com",
    ]))
    .success();
    // One hostname, none allocated: billed.
    let (_, json) = doctor(&w, &token, &[]);
    assert_eq!(state_of(&json, "custom hostname quota"), "warning");
    assert!(found_of(&json, "custom hostname quota").starts_with("1 used of 0 allocated"));
    w.emu.set_custom_hostname_quota(0, 1);
    let (code, json) = doctor(&w, &token, &[]);
    assert_eq!(state_of(&json, "custom hostname quota"), "action");
    assert_eq!(code, 1);
}

/// The two R2 behaviours cfsetup's safety rests on, broken on purpose in the emulator: a store
/// that keeps a body whatever hash it was signed with, and one that ignores write conditions.
/// doctor names each as needing action, and still leaves nothing behind.
#[test]
fn a_store_that_trusts_claimed_hashes_or_ignores_conditions_needs_action() {
    for (trusts, ignores) in [(true, false), (false, true)] {
        let options = cfsetup_emulator::Options {
            s3_fault_trusts_claimed_sha256: trusts,
            s3_fault_ignores_conditions: ignores,
            ..cfsetup_emulator::Options::new()
        };
        let w = World::with_options(options);
        let token = w.full_token();
        deploy_infra(&w, &token);
        let (code, json) = doctor(&w, &token, &[]);
        assert_eq!(code, 1, "{:?}", states(&json));
        let (bad, good) = if trusts {
            ("S3 refuses a body", "S3 conditional writes")
        } else {
            ("S3 conditional writes", "S3 refuses a body")
        };
        assert_eq!(state_of(&json, bad), "action", "{:?}", states(&json));
        assert_eq!(state_of(&json, good), "ok", "{:?}", states(&json));
        for b in w.emu.buckets() {
            assert!(w
                .emu
                .objects(&b)
                .iter()
                .all(|o| !o.key.starts_with("cfsetup-doctor-")));
        }
    }
}
