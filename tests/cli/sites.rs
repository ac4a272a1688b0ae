//! A tenant's life after its first deploy: `sites`, several domains, `--take-over-domain`,
//! `remove-domain`, `remove-site`, previews and `--not-found`, a lost compare-and-swap, Ctrl-C,
//! refused domains and reserved slugs.

use std::process::{Command, Stdio};
use std::time::Duration;

use cfsetup_emulator::{Fault, FaultKind};

use crate::deploy_site::{sha, Site, BUCKET};

const DOMAIN: &str = "shop.acme-store.com";

fn basic(s: &Site) {
    s.write("index.html", b"<h1>Acme</h1>");
    s.write("about.html", b"<h1>About</h1>");
}

fn custom_hostname_lists(s: &Site) -> usize {
    s.w.emu
        .requests()
        .iter()
        .filter(|r| r.method == "GET" && r.path.ends_with("/custom_hostnames"))
        .count()
}

#[test]
fn sites_lists_every_tenant_with_one_listing_of_custom_hostnames() {
    let s = Site::new();
    basic(&s);
    s.deploy(&[DOMAIN, "www.acme-store.com"]).success();
    s.run(&["deploy-site", "site", "globex"]).success();
    s.write("index.html", b"<h1>Acme 2</h1>");
    let second = s.deploy(&[]).success().json();

    s.w.emu.clear_requests();
    let j = s.run(&["sites"]).success().json();
    assert_eq!(
        custom_hostname_lists(&s),
        1,
        "one paged listing, not one per tenant"
    );
    let sites = j["sites"].as_array().unwrap();
    assert_eq!(sites.len(), 2);
    assert_eq!(sites[0]["tenant"], "acme");
    assert_eq!(sites[0]["live"], second["deploy_id"]);
    assert_eq!(sites[0]["files"], 2);
    assert_eq!(sites[0]["kept"], 2);
    let domains: Vec<&str> = sites[0]["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["domain"].as_str().unwrap())
        .collect();
    assert_eq!(domains, [DOMAIN, "www.acme-store.com"]);
    assert!(sites[0]["domains"][0]["status"].is_string());
    assert_eq!(sites[1]["tenant"], "globex");
    assert_eq!(sites[1]["domains"], serde_json::json!([]));

    let one = s.run(&["sites", "acme"]).success().json();
    let history = one["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["deploy_id"], second["deploy_id"]);
    assert_eq!(history[0]["live"], true);
    assert_eq!(history[1]["live"], false);

    let mut cmd = s.cmd();
    cmd.args(["sites"]);
    let out = s.w.run(&mut cmd).success();
    assert!(out.stdout().contains("globex"), "{}", out.stdout());
    let mut cmd = s.cmd();
    cmd.args(["sites", "acme"]);
    let out = s.w.run(&mut cmd).success();
    assert!(out.stdout().contains("live"), "{}", out.stdout());
    s.run(&["sites", "nobody"]).expect_code(1);
    s.run(&["sites", "Bad!"]).expect_code(2);
}

#[test]
fn a_domain_moves_only_with_take_over_domain() {
    let s = Site::new();
    basic(&s);
    s.deploy(&[DOMAIN]).success();
    let out = s
        .run(&["deploy-site", "site", "globex", DOMAIN])
        .expect_code(1);
    assert!(
        out.stderr().contains("--take-over-domain"),
        "{}",
        out.stderr()
    );
    let j = s
        .run(&[
            "deploy-site",
            "site",
            "globex",
            DOMAIN,
            "--take-over-domain",
        ])
        .success()
        .json();
    assert_eq!(j["host_entries"][0]["action"], "moved from acme");
    assert_eq!(
        s.objects()[&format!("hosts/{DOMAIN}.json")],
        br#"{"tenant":"globex"}"#
    );
}

#[test]
fn remove_domain_detaches_one_domain() {
    let s = Site::new();
    basic(&s);
    s.deploy(&[DOMAIN, "www.acme-store.com"]).success();
    assert_eq!(s.w.emu.custom_hostnames().len(), 2);

    s.w.emu.clear_requests();
    let dry = s
        .run(&["remove-domain", "acme", DOMAIN, "--dry-run"])
        .success()
        .json();
    assert_eq!(dry["host_entry"], true);
    assert_eq!(dry["custom_hostname"], true);
    assert!(s.w.writes().is_empty());

    s.run(&["remove-domain", "globex", DOMAIN]).expect_code(1);
    let j = s.run(&["remove-domain", "acme", DOMAIN]).success().json();
    assert_eq!(j["dry_run"], false);
    assert!(!s.objects().contains_key(&format!("hosts/{DOMAIN}.json")));
    assert!(s.objects().contains_key("hosts/www.acme-store.com.json"));
    assert_eq!(s.w.emu.custom_hostnames().len(), 1);
    // Nothing left: "already detached", exit 0 (issue 17).
    s.run(&["remove-domain", "acme", DOMAIN]).success();
    s.run(&["remove-domain", "acme", "not a host"])
        .expect_code(2);
}

/// With no host entry naming the tenant, the custom hostname may be another tenant's (whose
/// deploy has not written its entry yet): remove-domain leaves it alone.
#[test]
fn remove_domain_leaves_a_custom_hostname_no_entry_ties_to_the_tenant() {
    let s = Site::new();
    basic(&s);
    s.run(&["deploy-site", "site", "globex", DOMAIN]).success();
    s.delete(&format!("hosts/{DOMAIN}.json"));
    let out = s.run(&["remove-domain", "acme", DOMAIN]).expect_code(1);
    assert!(
        out.stderr().contains("may belong to another tenant"),
        "{}",
        out.stderr()
    );
    assert_eq!(s.w.emu.custom_hostnames().len(), 1);
}

#[test]
fn remove_site_needs_yes_off_a_terminal_and_leaves_copies_to_gc() {
    let s = Site::new();
    basic(&s);
    s.deploy(&[DOMAIN]).success();
    s.w.emu.clear_requests();
    let out = s.run(&["remove-site", "acme"]).expect_code(2);
    assert!(out.stderr().contains("pass --yes"), "{}", out.stderr());
    assert!(s.w.emu.requests().is_empty(), "refused before any request");

    let dry = s
        .run(&["remove-site", "acme", "--dry-run"])
        .success()
        .json();
    assert_eq!(dry["host_entries"], serde_json::json!([DOMAIN]));
    assert_eq!(dry["custom_hostnames"], serde_json::json!([DOMAIN]));
    assert!(s.w.writes().is_empty());

    s.w.emu.clear_requests();
    let j = s.run(&["remove-site", "acme", "--yes"]).success().json();
    assert_eq!(j["head"], true);
    // The order a re-run always finishes: custom hostname, host entry, head.
    let deletes: Vec<String> =
        s.w.emu
            .requests()
            .iter()
            .filter(|r| r.method == "DELETE")
            .map(|r| r.path.clone())
            .collect();
    assert_eq!(deletes.len(), 3, "{deletes:#?}");
    assert!(deletes[0].contains("/custom_hostnames/"));
    assert!(deletes[1].ends_with(&format!("hosts/{DOMAIN}.json")));
    assert!(deletes[2].ends_with("sites/acme/manifest.json"));
    let objects = s.objects();
    assert!(objects.keys().any(|k| k.starts_with("sites/acme/deploys/")));
    assert!(s.w.emu.custom_hostnames().is_empty());

    let gc = s.run(&["gc", "--grace", "0s"]).success().json();
    assert_eq!(gc["copies_deleted"], 1);
    assert_eq!(gc["blobs_deleted"], 2);
    assert!(s.objects().is_empty(), "{:?}", s.objects().keys());
    // Nothing left: "already removed", exit 0 (issue 17).
    s.run(&["remove-site", "acme", "--yes"]).success();
}

#[test]
fn a_refused_domain_gets_no_host_entry_and_the_site_stays_live() {
    let s = Site::new();
    basic(&s);
    // 1411: example.com names are refused by the API.
    let out = s.deploy(&["shop.example.com"]).expect_code(1);
    assert!(
        out.stderr().contains("attaching shop.example.com failed"),
        "{}",
        out.stderr()
    );
    let j = out.json();
    assert_eq!(j["custom_hostnames"][0]["action"], "refused");
    assert_eq!(j["host_entries"][0]["action"], "not created");
    assert!(!s.objects().contains_key("hosts/shop.example.com.json"));
    assert!(
        s.live()["live"]["deploy_id"].is_string(),
        "the site is live"
    );

    // 1409: the zone's own apex, when the platform domain is another one.
    let zone = s.w.zone_name();
    let mut cmd = s.cmd();
    cmd.env("PLATFORM_DOMAIN", "platform.example.net").args([
        "--json",
        "deploy-site",
        "site",
        "acme",
        &zone,
    ]);
    let out = s.w.run(&mut cmd).expect_code(1);
    assert_eq!(out.json()["custom_hostnames"][0]["action"], "refused");
    assert!(!s.objects().contains_key(&format!("hosts/{zone}.json")));
    // Another tenant can still take the (free) domain name later: nothing reserved it.
    assert!(!s.objects().keys().any(|k| k.starts_with("hosts/")));
}

#[test]
fn reserved_slugs_are_refused_before_any_request() {
    let s = Site::new();
    basic(&s);
    for slug in ["www", "api", "fallback", "xn--80ak6aa92e", "a--b"] {
        s.w.emu.clear_requests();
        let out = s.run(&["deploy-site", "site", slug]).expect_code(2);
        assert!(out.stderr().contains(slug), "{slug}: {}", out.stderr());
        assert!(s.w.emu.requests().is_empty(), "{slug}");
    }
    let mut cmd = s.cmd();
    cmd.env("SAAS_FALLBACK_ORIGIN", format!("edge.{}", s.w.zone_name()))
        .args(["deploy-site", "site", "edge"]);
    let out = s.w.run(&mut cmd).expect_code(2);
    assert!(out.stderr().contains("is reserved"), "{}", out.stderr());
}

#[test]
fn a_preview_leaves_live_alone_and_rollback_promotes_it() {
    let s = Site::new();
    basic(&s);
    let out = s.deploy(&["--preview", "early"]).expect_code(1);
    assert!(
        out.stderr().contains("has no live deploy"),
        "{}",
        out.stderr()
    );
    assert!(!s.objects().contains_key("sites/acme/manifest.json"));
    let live = s.deploy(&[]).success().json();
    s.write("index.html", b"<h1>Next</h1>");
    let p = s.deploy(&["--preview", "feature-x"]).success().json();
    assert_eq!(p["preview"], "feature-x");
    assert_eq!(
        p["preview_url"],
        format!("https://feature-x--acme.{}/", s.w.zone_name())
    );
    let head = s.live();
    assert_eq!(head["live"]["deploy_id"], live["deploy_id"]);
    assert_eq!(head["previews"]["feature-x"]["deploy_id"], p["deploy_id"]);

    // The default name is the deploy id's short hash.
    s.write("index.html", b"<h1>Other</h1>");
    let d = s.deploy(&["--preview"]).success().json();
    let id = d["deploy_id"].as_str().unwrap();
    assert_eq!(d["preview"], &id[17..]);
    s.deploy(&["--preview", "a--b"]).expect_code(2);
    s.deploy(&["--preview", "x", DOMAIN]).expect_code(2);

    let mut cmd = s.cmd();
    cmd.args(["rollback", "acme", "feature-x"]);
    let out = s.w.run(&mut cmd).success();
    assert!(
        out.stdout()
            .starts_with("Promoted preview feature-x of acme to live"),
        "{}",
        out.stdout()
    );
    assert_eq!(s.live()["live"]["deploy_id"], p["deploy_id"]);
}

#[test]
fn not_found_and_rule_files() {
    let s = Site::new();
    basic(&s);
    s.write("404.html", b"gone");
    s.write("_redirects", b"/old /new 301\n");
    let j = s.deploy(&[]).success().json();
    assert_eq!(j["not_found"], "404");
    assert_eq!(
        s.live()["live"]["not_found_pages"],
        serde_json::json!(["/404.html"])
    );
    assert!(!s.live_paths().contains(&"/_redirects".to_string()));
    assert!(!s
        .objects()
        .contains_key(&format!("blobs/{}", sha(b"/old /new 301\n"))));
    assert_eq!(
        s.live()["live"]["redirects"]["static"]["/old"],
        serde_json::json!({"to": "/new", "status": 301, "line": 1}),
        "the rules are in the Route"
    );
    let j = s.deploy(&["--not-found", "spa"]).success().json();
    assert_eq!(j["not_found"], "spa");
    assert_eq!(j["changed"], true, "the mode is part of the digest");
    assert_eq!(s.live()["live"]["not_found"], "spa");
    s.deploy(&["--not-found", "maybe"]).expect_code(2);

    // A bad rule is exit 2 with file:line, before any request.
    s.write("_headers", b"/assets/*\n  X-Frame-Options DENY\n");
    s.w.emu.clear_requests();
    let out = s.deploy(&[]).expect_code(2);
    assert!(out.stderr().contains("_headers:2"), "{}", out.stderr());
    assert!(s.w.emu.requests().is_empty());
    s.write("_headers", b"");
    s.write("_redirects", b"/a /b 418\n");
    let out = s.deploy(&[]).expect_code(2);
    assert!(out.stderr().contains("_redirects:1"), "{}", out.stderr());
}

/// A deploy whose head read is overtaken by another deploy's switch: exit 1 naming what landed;
/// with --force it switches over it.
#[test]
fn a_lost_switch_is_exit_1_naming_the_deploy_that_landed_unless_force() {
    // With R2's one write per second per key, as the racing writers meet on the head.
    lost_switch(Site::with_options(
        cfsetup_emulator::Options::new().with_s3_write_limit_per_key(true),
    ));
}

/// The same race when the store answers the losing compare-and-swap with 409
/// ConditionalRequestConflict (AWS's answer; R2's is undocumented, cloudflare-docs#32793): a lost
/// race, reported exactly as for 412.
#[test]
fn a_lost_switch_answered_409_is_reported_as_a_lost_race() {
    let mut options = cfsetup_emulator::Options::new();
    options.s3_conflict_409 = true;
    lost_switch(Site::with_options(options));
}

fn lost_switch(s: Site) {
    basic(&s);
    s.deploy(&[]).success();
    for force in [false, true] {
        s.write("index.html", format!("<h1>slow {force}</h1>").as_bytes());
        // The slow deploy stalls on its shard write while a quick one lands.
        s.w.emu.inject(Fault {
            method: Some("PUT".into()),
            path_contains: Some("/shards/".into()),
            kind: FaultKind::Latency(Duration::from_secs(3)),
            times: 1,
        });
        let mut slow = spawn_deploy(&s, if force { &["--force"] } else { &[] });
        std::thread::sleep(Duration::from_millis(1500));
        std::fs::create_dir_all(s.w.file("quick")).unwrap();
        std::fs::write(s.w.file("quick/index.html"), format!("quick {force}")).unwrap();
        let quick = s.run(&["deploy-site", "quick", "acme"]).success().json();
        let status = slow.wait().unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(slow.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        let landed = quick["deploy_id"].as_str().unwrap();
        if force {
            assert_eq!(status.code(), Some(0), "{stderr}");
            assert!(
                stderr.contains("--force: switching on top of it"),
                "{stderr}"
            );
            assert_ne!(s.live()["live"]["deploy_id"], landed);
        } else {
            assert_eq!(status.code(), Some(1), "{stderr}");
            assert!(stderr.contains("another run switched acme"), "{stderr}");
            assert!(
                stderr.contains(landed),
                "names the deploy that landed: {stderr}"
            );
            assert_eq!(s.live()["live"]["deploy_id"], landed);
        }
    }
}

fn spawn_deploy(s: &Site, extra: &[&str]) -> std::process::Child {
    Command::new(assert_cmd::cargo::cargo_bin("cfsetup"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", s.w.path())
        .env("NO_COLOR", "1")
        .env("CLOUDFLARE_API_BASE_URL", s.w.emu.base_url())
        .env("R2_S3_ENDPOINT", s.w.emu.s3_endpoint())
        .env("CLOUDFLARE_ACCOUNT_ID", s.w.account_id())
        .env("CLOUDFLARE_ZONE_ID", s.w.zone_id())
        .env("CLOUDFLARE_API_TOKEN", &s.token)
        .env("PLATFORM_DOMAIN", s.w.zone_name())
        .current_dir(s.w.path())
        .args(["deploy-site", "site", "acme"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[cfg(unix)]
#[test]
fn ctrl_c_exits_130_and_says_the_old_deploy_is_still_live() {
    let s = Site::new();
    basic(&s);
    let first = s.deploy(&[]).success().json();
    s.write("index.html", b"<h1>never switched</h1>");
    s.w.emu.inject(Fault {
        method: Some("PUT".into()),
        path_contains: Some("/blobs/".into()),
        kind: FaultKind::Latency(Duration::from_secs(5)),
        times: 1,
    });
    let child = spawn_deploy(&s, &[]);
    std::thread::sleep(Duration::from_millis(1200));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let id = first["deploy_id"].as_str().unwrap();
    assert!(
        stderr.contains(&format!(
            "interrupted (Ctrl-C): nothing was switched: {id} is still live"
        )),
        "{stderr}"
    );
    assert_eq!(s.live()["live"]["deploy_id"], id);
    assert!(
        !s.objects().keys().any(|k| k.starts_with("locks/")),
        "the intent was deleted"
    );
    let _ = BUCKET;
}

/// A bucket damaged by cfsetup 0.1's prune (a live blob gone): an unchanged re-deploy says "up to
/// date" (it trusts the invariant), and `--force` checks every blob and puts the missing one back.
#[test]
fn force_repairs_a_live_deploy_whose_blob_was_lost() {
    let s = Site::new();
    basic(&s);
    s.deploy(&[]).success();
    let key = format!("blobs/{}", sha(b"<h1>About</h1>"));
    s.delete(&key);
    assert_eq!(s.deploy(&[]).success().json()["changed"], false);
    let j = s.deploy(&["--force"]).success().json();
    assert_eq!(j["checked"], 2);
    assert_eq!(j["uploaded"], 1);
    assert!(s.objects().contains_key(&key));
}

/// A command that uses only the bucket reads only the bucket's settings: a bad platform setting
/// it does not use (a Worker name, a fallback origin) does not stop `sites` or `gc`, while the
/// commands that use it refuse it before any request.
#[test]
fn a_bad_setting_stops_only_the_commands_that_use_it() {
    let s = Site::new();
    basic(&s);
    s.deploy(&[]).success();
    let bad = |cmd: &mut assert_cmd::Command| {
        cmd.env("WORKER_SCRIPT_NAME", "1-not-a-worker")
            .env("SAAS_FALLBACK_ORIGIN", "not a host");
    };
    let mut cmd = s.cmd();
    bad(&mut cmd);
    s.w.run(cmd.args(["sites"])).success();
    let mut cmd = s.cmd();
    bad(&mut cmd);
    s.w.run(cmd.args(["gc", "--dry-run"])).success();
    s.w.emu.clear_requests();
    let mut cmd = s.cmd();
    bad(&mut cmd);
    let out = s.w.run(cmd.args(["deploy-infra"])).expect_code(2);
    assert!(
        out.stderr().contains("SAAS_FALLBACK_ORIGIN"),
        "{}",
        out.stderr()
    );
    assert!(s.w.emu.requests().is_empty());
}
