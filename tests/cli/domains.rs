//! Tenants' domains at scale (#18): `domains` and who must act (with DNS lookups against the
//! emulator's DNS server), `--json`, filters and `--check`; `deploy-site --prevalidate` end to
//! end; the quota's warnings and hard cap; `domains prune`.

use std::collections::BTreeMap;

use cfsetup::cloudflare::{Auth, Client, ClientOptions};
use cfsetup::secret::Secret;
use cfsetup_emulator::{Fault, FaultKind, Options};
use serde_json::{json, Value};

use crate::deploy_site::{rt, short, Site};

fn basic(s: &Site) {
    s.write("index.html", b"<h1>Acme</h1>");
}

/// Hostnames stay pending unless a test forces them (no activation by reads).
fn still() -> Options {
    let mut o = Options::new();
    o.activate_custom_hostnames_after = None;
    o
}

fn client(s: &Site) -> Client {
    Client::new(
        &url::Url::parse(&s.w.emu.base_url()).unwrap(),
        Auth::Token(Secret::new(s.token.clone())),
        ClientOptions::default(),
    )
    .unwrap()
}

/// A custom hostname made straight through the API, with no host entry: an orphan.
fn orphan(s: &Site, host: &str) {
    let c = client(s);
    let zone = s.w.zone_id();
    rt().block_on(async {
        c.create_custom_hostname(&zone, host, "http", None)
            .await
            .unwrap();
    });
}

fn fallback(s: &Site) -> String {
    format!("fallback.{}", s.w.zone_name())
}

/// `cfsetup --json <args>` with the DNS server set.
fn run_dns(s: &Site, args: &[&str]) -> crate::common::Run {
    let mut cmd = s.cmd();
    cmd.env("CFSETUP_DNS_SERVER", s.w.emu.dns_addr().to_string())
        .arg("--json")
        .args(args);
    s.w.run(&mut cmd)
}

fn by_host(j: &Value) -> BTreeMap<String, Value> {
    j["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["hostname"].as_str().unwrap().to_string(), d.clone()))
        .collect()
}

#[test]
fn domains_names_who_must_act_for_each_domain_from_the_api_and_public_dns() {
    let s = Site::with_options(still());
    basic(&s);
    let hosts = [
        "ok.acme-store.com",
        "cname.acme-store.com",
        "arecord.acme-store.com",
        "caa.acme-store.com",
        "acmecname.acme-store.com",
        "issuing.acme-store.com",
        "caerror.acme-store.com",
    ];
    s.deploy(&hosts).success();
    let target = fallback(&s);
    let emu = &s.w.emu;
    assert!(emu.force_custom_hostname(
        "ok.acme-store.com",
        json!({"status": "active", "ssl": {"status": "active", "expires_on": "2027-03-01T00:00:00Z"}})
    ));
    emu.dns_set("arecord.acme-store.com", "A", &["192.0.2.7"]);
    emu.force_custom_hostname(
        "caa.acme-store.com",
        json!({"status": "active", "ssl": {"validation_errors": [{"message": "caa_error: CAA records forbid issuance by pki.goog"}]}}),
    );
    emu.dns_set("caa.acme-store.com", "CNAME", &[&target]);
    emu.dns_set(
        "_acme-challenge.acmecname.acme-store.com",
        "CNAME",
        &["acmecname.acme-store.com.old-host.example.net"],
    );
    emu.force_custom_hostname(
        "issuing.acme-store.com",
        json!({"status": "active", "ssl": {"status": "pending_issuance"}}),
    );
    emu.dns_set("issuing.acme-store.com", "CNAME", &[&target]);
    emu.force_custom_hostname(
        "caerror.acme-store.com",
        json!({"status": "active", "ssl": {"validation_errors": [{"message": "The certificate authority refused to issue for this hostname"}]}}),
    );
    emu.dns_set("caerror.acme-store.com", "CNAME", &[&target]);
    orphan(&s, "orphan.example-shop.net");
    s.put("hosts/missing.acme-store.com.json", br#"{"tenant":"acme"}"#);

    s.w.emu.clear_requests();
    let j = run_dns(&s, &["domains"]).success().json();
    let lists =
        s.w.emu
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/custom_hostnames"))
            .count();
    assert_eq!(lists, 1, "one paged listing (9 hostnames, one page)");
    let rows = by_host(&j);
    let owner = |h: &str| rows[h]["owner"].as_str().unwrap().to_string();
    let action = |h: &str| rows[h]["action"].as_str().unwrap().to_string();
    assert_eq!(owner("ok.acme-store.com"), "none");
    assert_eq!(rows["ok.acme-store.com"]["tenant"], "acme");
    assert_eq!(owner("cname.acme-store.com"), "tenant");
    assert!(action("cname.acme-store.com").contains(&format!("add the CNAME to {target}")));
    assert_eq!(
        rows["cname.acme-store.com"]["records"][0],
        json!({"type": "CNAME", "name": "cname.acme-store.com", "value": target})
    );
    assert_eq!(owner("arecord.acme-store.com"), "tenant");
    assert!(
        action("arecord.acme-store.com")
            .contains("remove the A/AAAA record(s) of arecord.acme-store.com (192.0.2.7)"),
        "{}",
        action("arecord.acme-store.com")
    );
    assert_eq!(
        rows["arecord.acme-store.com"]["dns"]["addresses"],
        json!(["192.0.2.7"])
    );
    assert_eq!(owner("caa.acme-store.com"), "tenant");
    assert!(action("caa.acme-store.com").contains("CAA"));
    assert_eq!(owner("acmecname.acme-store.com"), "tenant");
    assert!(action("acmecname.acme-store.com").contains("remove the CNAME at _acme-challenge"));
    assert_eq!(owner("issuing.acme-store.com"), "cloudflare");
    assert!(action("issuing.acme-store.com").contains("issuance in progress"));
    assert_eq!(owner("caerror.acme-store.com"), "cloudflare");
    assert!(action("caerror.acme-store.com").contains("The certificate authority refused"));
    assert_eq!(owner("orphan.example-shop.net"), "platform");
    assert!(action("orphan.example-shop.net").contains("no host entry"));
    assert_eq!(owner("missing.acme-store.com"), "platform");
    assert_eq!(rows["missing.acme-store.com"]["status"], "missing");
    assert_eq!(
        j["quota"],
        json!({"allocated": 100, "exceeded": false, "hard_cap": 50000, "used": 8})
    );
    assert_eq!(j["needs_action"], 6);
    assert_eq!(j["cname_target"], target);

    // --no-dns: judged from the API's fields alone.
    let j = s.run(&["domains", "--no-dns"]).success().json();
    let rows = by_host(&j);
    assert!(rows["arecord.acme-store.com"]["action"]
        .as_str()
        .unwrap()
        .starts_with("add the CNAME"));
    assert!(rows["arecord.acme-store.com"]["dns"].is_null());

    // Filters.
    let j = run_dns(&s, &["domains", "--needs-action"]).success().json();
    assert_eq!(j["domains"].as_array().unwrap().len(), 6);
    let j = run_dns(&s, &["domains", "--status", "pending_issuance"])
        .success()
        .json();
    assert_eq!(j["domains"][0]["hostname"], "issuing.acme-store.com");
    assert_eq!(j["domains"].as_array().unwrap().len(), 1);
    let j = run_dns(&s, &["domains", "acme", "--status", "active"])
        .success()
        .json();
    assert!(
        by_host(&j).keys().all(|h| h.ends_with("acme-store.com")),
        "{j}"
    );

    // --check: 1 when anything needs action, 0 when nothing shown does.
    run_dns(&s, &["domains", "--check"]).expect_code(1);
    run_dns(&s, &["domains", "--check", "--status", "pending_issuance"]).expect_code(0);

    // The table.
    let mut cmd = s.cmd();
    cmd.env("CFSETUP_DNS_SERVER", s.w.emu.dns_addr().to_string())
        .args(["domains"]);
    let out = s.w.run(&mut cmd).success().stdout();
    assert!(
        out.contains("Quota: 8 custom hostname(s) of 100 included (hard cap 50000)"),
        "{out}"
    );
    assert!(out.contains("9 domain(s), 6 need action"), "{out}");
    assert!(out.contains("owner"), "{out}");

    // A bad nameserver address is refused before any request.
    s.w.emu.clear_requests();
    let mut cmd = s.cmd();
    cmd.env("CFSETUP_DNS_SERVER", "not-an-address")
        .args(["domains"]);
    let out = s.w.run(&mut cmd).expect_code(2);
    assert!(
        out.stderr().contains("CFSETUP_DNS_SERVER"),
        "{}",
        out.stderr()
    );
    assert!(s.w.emu.requests().is_empty());
}

#[test]
fn domains_expiring_lists_certificates_that_will_not_renew_by_themselves() {
    let s = Site::with_options(still());
    basic(&s);
    s.deploy(&[
        "txt-soon.acme-store.com",
        "http-soon.acme-store.com",
        "txt-later.acme-store.com",
    ])
    .success();
    let soon = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + std::time::Duration::from_secs(5 * 86_400),
    )
    .to_string();
    let later = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + std::time::Duration::from_secs(60 * 86_400),
    )
    .to_string();
    let emu = &s.w.emu;
    emu.force_custom_hostname(
        "txt-soon.acme-store.com",
        json!({"status": "active", "ssl": {"status": "active", "method": "txt", "expires_on": soon}}),
    );
    emu.force_custom_hostname(
        "http-soon.acme-store.com",
        json!({"status": "active", "ssl": {"status": "active", "method": "http", "expires_on": soon}}),
    );
    emu.force_custom_hostname(
        "txt-later.acme-store.com",
        json!({"status": "active", "ssl": {"status": "active", "method": "txt", "expires_on": later}}),
    );
    let j = s
        .run(&["domains", "--expiring", "14d", "--no-dns"])
        .success()
        .json();
    let hosts: Vec<&str> = j["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["txt-soon.acme-store.com"]);
    assert_eq!(j["domains"][0]["renews_by_itself"], false);
    assert_eq!(j["domains"][0]["owner"], "platform");
    s.run(&["domains", "--expiring", "two weeks"])
        .expect_code(2);
}

#[test]
fn prevalidate_issues_the_certificate_before_the_cname_moves_then_switches_to_http() {
    let s = Site::new();
    basic(&s);
    let d = "shop.moving-store.com";
    let target = fallback(&s);
    // The tenant's old host still serves the domain.
    s.w.emu.dns_set(d, "A", &["192.0.2.50"]);

    // Without --wait: both TXT records, the CNAME last, and the steps in order.
    let mut cmd = s.cmd();
    cmd.env("CFSETUP_DNS_SERVER", s.w.emu.dns_addr().to_string())
        .args(["deploy-site", "site", "acme", d, "--prevalidate"]);
    let out = s.w.run(&mut cmd).success().stdout();
    let own = out.find(&format!("_cf-custom-hostname.{d}")).expect(&out);
    let acme = out.find(&format!("_acme-challenge.{d}")).expect(&out);
    let cname = out.find(&format!("CNAME  {d}")).expect(&out);
    assert!(own < cname && acme < cname, "{out}");
    assert!(out.contains("1. Add both TXT records"), "{out}");
    assert!(
        out.contains(&format!("3. Then switch the CNAME of {d} to {target}")),
        "{out}"
    );
    let ch = &s.w.emu.custom_hostnames()[0];
    assert_eq!(ch["ssl"]["method"], "txt");

    // With --wait: active while the old A record still serves, then "now switch the CNAME".
    s.w.emu.clear_requests();
    let run = run_dns(
        &s,
        &[
            "deploy-site",
            "site",
            "acme",
            d,
            "--prevalidate",
            "--wait",
            "1m",
        ],
    )
    .success();
    let j = run.json();
    let h = &j["custom_hostnames"][0];
    assert_eq!(h["status"], "active", "{h}");
    assert_eq!(h["ssl_status"], "active");
    assert_eq!(h["validation"], "txt");
    assert_eq!(h["moved_to_http"], false);
    assert!(
        h["next"]
            .as_str()
            .unwrap()
            .contains(&format!("now switch the CNAME of {d} to {target}")),
        "{h}"
    );
    assert!(
        run.stderr().contains("now switch the CNAME"),
        "{}",
        run.stderr()
    );
    assert!(
        !s.w.writes().iter().any(|r| r.method == "PATCH"),
        "no move to HTTP before the CNAME points at the platform"
    );

    // The tenant switches the CNAME; the next run moves the certificate to HTTP validation.
    s.w.emu.dns_set(d, "A", &[]);
    s.w.emu.dns_set(d, "CNAME", &[&target]);
    s.w.emu.clear_requests();
    let run = run_dns(&s, &["deploy-site", "site", "acme", d]).success();
    let h = &run.json()["custom_hostnames"][0];
    assert_eq!(h["moved_to_http"], true, "{h}");
    assert_eq!(h["validation"], "http");
    assert!(
        run.stderr().contains("moved to HTTP validation"),
        "{}",
        run.stderr()
    );
    let patches: Vec<_> =
        s.w.writes()
            .into_iter()
            .filter(|r| r.method == "PATCH")
            .collect();
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(s.w.emu.custom_hostnames()[0]["ssl"]["method"], "http");
    // Nothing left to do once HTTP validation completes.
    run_dns(&s, &["deploy-site", "site", "acme", d]).success();
    let j = run_dns(&s, &["domains"]).success().json();
    assert_eq!(j["domains"][0]["owner"], "none", "{j}");
    assert_eq!(j["domains"][0]["renews_by_itself"], true);

    // --prevalidate needs a DOMAIN.
    s.run(&["deploy-site", "site", "acme", "--prevalidate"])
        .expect_code(2);
}

#[test]
fn the_quota_warns_past_the_allocation_and_near_the_cap_and_refuses_at_the_cap() {
    let s = Site::new();
    basic(&s);
    s.w.emu.set_custom_hostname_quota(1, 10);
    let first = s.deploy(&["a.acme-store.com"]).success();
    assert!(!first.stderr().contains("quota"), "{}", first.stderr());
    let second = s.deploy(&["b.acme-store.com"]).success();
    assert!(
        second
            .stderr()
            .contains("past its allocated custom hostname quota"),
        "{}",
        second.stderr()
    );
    assert!(
        second.stderr().contains("$0.10/month"),
        "{}",
        second.stderr()
    );
    // A domain the tenant already holds needs no quota read.
    s.w.emu.clear_requests();
    s.deploy(&["a.acme-store.com"]).success();
    assert!(!s
        .w
        .emu
        .requests()
        .iter()
        .any(|r| r.path.ends_with("/quota")));

    s.w.emu
        .insert_custom_hostnames((0..7).map(|i| format!("bulk{i}.example-shop.net")));
    let near = s.deploy(&["c.acme-store.com"]).success();
    assert!(
        near.stderr().contains("near its custom hostname hard cap"),
        "{}",
        near.stderr()
    );

    // 10 of 10: refused, and the bucket is as it was.
    s.w.emu.clear_requests();
    let before = s.objects();
    s.write("index.html", b"<h1>Acme changed</h1>");
    let out = s.deploy(&["d.acme-store.com"]).expect_code(1);
    assert!(out.stderr().contains("hard cap"), "{}", out.stderr());
    assert!(
        out.stderr().contains("cfsetup domains prune"),
        "{}",
        out.stderr()
    );
    assert!(
        out.stderr()
            .contains("10 custom hostname(s) of 1 included (hard cap 10)"),
        "{}",
        out.stderr()
    );
    // The only write is the run's own intent, sent beside the head read (the quota is read with
    // the head: docs/storage-layout.md "deploy-site" step 1) and deleted before the exit.
    assert!(
        s.w.writes()
            .iter()
            .all(|r| short(&r.path).starts_with("objects/locks/deploys/")),
        "{:#?}",
        s.w.writes()
    );
    assert_eq!(s.objects(), before);
    // An existing hostname is still attached at the cap.
    s.write("index.html", b"<h1>Acme</h1>");
    s.deploy(&["c.acme-store.com"]).success();

    // The API's own refusal gets the same hint.
    s.w.emu.set_custom_hostname_quota(100, 50_000);
    s.w.emu.inject(Fault {
        method: Some("POST".into()),
        path_contains: Some("/custom_hostnames".into()),
        kind: FaultKind::ApiError {
            status: 403,
            code: 1405,
            message: "Quota exceeded".into(),
        },
        times: 1,
    });
    let out = s.deploy(&["e.acme-store.com"]).expect_code(1);
    assert!(out.stderr().contains("Quota exceeded"), "{}", out.stderr());
    assert!(
        out.stderr().contains("cfsetup domains prune"),
        "{}",
        out.stderr()
    );

    let j = s.run(&["domains", "--no-dns"]).success().json();
    assert_eq!(j["quota"]["used"], 10);
}

#[test]
fn prune_deletes_only_orphans_and_reports_the_saving() {
    let s = Site::with_options(still());
    basic(&s);
    s.deploy(&["kept.acme-store.com"]).success();
    for h in [
        "old.example-shop.net",
        "young.example-shop.net",
        "oldactive.example-shop.net",
    ] {
        orphan(&s, h);
    }
    let long_ago = json!({"created_at": "2026-01-01T00:00:00Z"});
    s.w.emu
        .force_custom_hostname("old.example-shop.net", long_ago.clone());
    s.w.emu
        .force_custom_hostname("kept.acme-store.com", long_ago.clone());
    s.w.emu.force_custom_hostname(
        "oldactive.example-shop.net",
        json!({"created_at": "2026-01-01T00:00:00Z", "status": "active"}),
    );
    s.w.emu.set_custom_hostname_quota(1, 100);

    // Off a terminal it needs --yes, and says so before any request.
    s.w.emu.clear_requests();
    let out = s.run(&["domains", "prune"]).expect_code(2);
    assert!(out.stderr().contains("--yes"), "{}", out.stderr());
    assert!(s.w.emu.requests().is_empty());

    let dry = s.run(&["domains", "prune", "--dry-run"]).success().json();
    let names = |j: &Value| -> Vec<String> {
        let mut v: Vec<String> = j["deleted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["hostname"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&dry),
        ["old.example-shop.net", "oldactive.example-shop.net"]
    );
    assert_eq!(dry["skipped"][0]["hostname"], "young.example-shop.net");
    assert_eq!(s.w.emu.custom_hostnames().len(), 4);

    let j = s
        .run(&["domains", "prune", "--pending-for", "30d", "--yes"])
        .success()
        .json();
    assert_eq!(names(&j), ["old.example-shop.net"]);
    assert_eq!(j["saved_cents_per_month"], 10);
    let j = s.run(&["domains", "prune", "--yes"]).success().json();
    assert_eq!(names(&j), ["oldactive.example-shop.net"]);
    let left: Vec<String> =
        s.w.emu
            .custom_hostnames()
            .iter()
            .map(|c| c["hostname"].as_str().unwrap().to_string())
            .collect();
    assert_eq!(left.len(), 2);
    assert!(left.contains(&"kept.acme-store.com".to_string()));
    assert!(left.contains(&"young.example-shop.net".to_string()));

    let mut cmd = s.cmd();
    cmd.args(["domains", "prune", "--dry-run"]);
    let out = s.w.run(&mut cmd).success().stdout();
    assert!(
        out.contains("No orphaned custom hostnames to delete"),
        "{out}"
    );
    assert!(out.contains("Kept young.example-shop.net"), "{out}");
}

/// deploy-infra notes a platform domain off the Public Suffix List (the seeded zone, getai.page)
/// and Cloudflare's advice on the CNAME target; a domain on the list gets no such note.
#[test]
fn deploy_infra_notes_a_platform_domain_off_the_public_suffix_list() {
    let w = crate::common::World::new();
    let token = w.full_token();
    let mut cmd = w.with_token(&token);
    cmd.args(["deploy-infra", "--dry-run"]);
    let run = w.run(&mut cmd).success();
    let out = run.stdout();
    assert!(
        out.contains("getai.page is not on the Public Suffix List"),
        "{out}"
    );
    assert!(out.contains("can set cookies for each other"), "{out}");
    assert!(
        out.contains("other than the company's main domain"),
        "{out}"
    );
    let mut cmd = w.with_token(&token);
    cmd.args(["--json", "deploy-infra", "--dry-run"]);
    let j = w.run(&mut cmd).success().json();
    assert_eq!(j["advice"].as_array().unwrap().len(), 2);
}

/// A re-run finishes or repairs what a first run started: a pending HTTP hostname is switched to
/// TXT by `--prevalidate`, and a timed-out validation is restarted by a PATCH with the same `ssl`.
#[test]
fn a_rerun_switches_a_pending_hostname_to_txt_and_restarts_a_timed_out_validation() {
    let s = Site::with_options(still());
    basic(&s);
    let d = "late.acme-store.com";
    s.deploy(&[d]).success();
    assert_eq!(s.w.emu.custom_hostnames()[0]["ssl"]["method"], "http");
    s.w.emu.clear_requests();
    let run = s.deploy(&[d, "--prevalidate"]).success();
    assert!(
        run.stderr()
            .contains("certificate validation switched to TXT"),
        "{}",
        run.stderr()
    );
    assert_eq!(s.w.emu.custom_hostnames()[0]["ssl"]["method"], "txt");
    assert_eq!(
        s.w.writes().iter().filter(|r| r.method == "PATCH").count(),
        1
    );

    // Ownership proven, the certificate's validation timed out: the platform restarts it.
    s.w.emu.force_custom_hostname(
        d,
        json!({"status": "active", "ssl": {"status": "validation_timed_out"}}),
    );
    let j = s.run(&["domains", "--no-dns"]).success().json();
    assert_eq!(j["domains"][0]["owner"], "platform", "{j}");
    s.w.emu.clear_requests();
    let run = s.deploy(&[d, "--prevalidate"]).success();
    assert!(run.stderr().contains("restarted it"), "{}", run.stderr());
    assert_eq!(
        s.w.writes().iter().filter(|r| r.method == "PATCH").count(),
        1
    );
    assert_eq!(
        s.w.emu.custom_hostnames()[0]["ssl"]["status"],
        "pending_validation"
    );
}
