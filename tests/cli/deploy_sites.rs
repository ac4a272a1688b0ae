//! `deploy-sites PLAN` against the emulator: TOML and JSON plans, every exit code, a partial
//! failure that leaves the other tenants landed, `--fail-fast`, a blob shared by several tenants
//! uploaded once, and an invalid plan refused before any request.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::deploy_site::{short, Site};

const SHARED: &[u8] = b"console.log('one template for the whole fleet');\n";

fn hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// Folders `sites/<tenant>` with a shared asset and a page of their own.
fn folders(s: &Site, tenants: &[&str]) {
    for t in tenants {
        let dir = s.w.file("sites").join(t);
        std::fs::create_dir_all(dir.join("assets")).unwrap();
        std::fs::write(dir.join("index.html"), format!("<h1>{t}</h1>")).unwrap();
        std::fs::write(dir.join("assets/app.js"), SHARED).unwrap();
    }
}

fn plan(s: &Site, name: &str, text: &str) {
    std::fs::write(s.w.file(name), text).unwrap();
}

fn run(s: &Site, args: &[&str]) -> crate::common::Run {
    let mut cmd = s.cmd();
    cmd.args(["--json", "deploy-sites"]).args(args);
    s.w.run(&mut cmd)
}

fn results(out: &Value) -> Vec<(String, String)> {
    out["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tenant"].as_str().unwrap().to_string(),
                t["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn blob_puts(s: &Site, body: &[u8]) -> usize {
    let key = format!("objects/blobs/{}", hash(body));
    s.w.emu
        .requests()
        .iter()
        .filter(|r| r.method == "PUT" && short(&r.path) == key)
        .count()
}

#[test]
fn a_toml_plan_lands_every_tenant_and_a_shared_blob_is_uploaded_once() {
    let s = Site::new();
    let tenants = ["acme", "beta", "gamma", "delta"];
    folders(&s, &tenants);
    let mut toml = String::new();
    for t in tenants {
        toml.push_str(&format!(
            "[[site]]\ntenant = \"{t}\"\ndir = \"sites/{t}\"\n\n"
        ));
    }
    plan(&s, "plan.toml", &toml);
    let out = run(&s, &["plan.toml", "--parallel", "4"]).success().json();
    assert_eq!(
        results(&out),
        tenants
            .iter()
            .map(|t| (t.to_string(), "deployed".to_string()))
            .collect::<Vec<_>>()
    );
    // Four tenants name the same asset: one PUT of it in the whole run.
    assert_eq!(blob_puts(&s, SHARED), 1);
    let uploaded: u64 = out["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["uploaded"].as_u64().unwrap())
        .sum();
    // Four pages of their own and the one shared asset.
    assert_eq!(uploaded, 5);
    for t in tenants {
        let head = s.head(t);
        let id = out["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["tenant"] == t)
            .unwrap()["deploy_id"]
            .clone();
        assert_eq!(head["live"]["deploy_id"], id, "{t}");
    }
    let url = out["tenants"][0]["url"].as_str().unwrap();
    assert_eq!(url, format!("https://acme.{}/", s.w.zone_name()));

    // The same plan again: every tenant unchanged, nothing written.
    s.w.emu.clear_requests();
    let again = run(&s, &["plan.toml"]).success().json();
    assert!(results(&again).iter().all(|(_, r)| r == "unchanged"));
    assert!(s.writes().is_empty(), "{:?}", s.writes());
}

#[test]
fn a_json_plan_with_one_failing_tenant_exits_1_and_the_others_still_land() {
    let s = Site::new();
    folders(&s, &["acme", "beta", "ghost"]);
    // ghost has no live site, so a preview of it cannot go beside one: it fails at run time.
    plan(
        &s,
        "plan.json",
        r#"[{"tenant": "acme", "dir": "sites/acme"},
            {"tenant": "ghost", "dir": "sites/ghost", "preview": "wip"},
            {"tenant": "beta", "dir": "sites/beta", "not_found": "spa"}]"#,
    );
    let out = run(&s, &["plan.json", "--parallel", "2"]).expect_code(1);
    let json = out.json();
    assert_eq!(
        results(&json),
        [
            ("acme".to_string(), "deployed".to_string()),
            ("ghost".to_string(), "failed".to_string()),
            ("beta".to_string(), "deployed".to_string()),
        ]
    );
    assert!(json["tenants"][1]["error"]
        .as_str()
        .unwrap()
        .contains("no live deploy"));
    assert_eq!(json["landed"], 2);
    assert_eq!(json["failed"], 1);
    assert_eq!(s.head("beta")["live"]["not_found"], "spa");
    assert!(!s.objects().contains_key("sites/ghost/manifest.json"));
    assert!(out.stderr().contains("ghost: failed"), "{}", out.stderr());
}

#[test]
fn fail_fast_starts_no_tenant_after_the_first_failure() {
    let s = Site::new();
    folders(&s, &["ghost", "acme", "beta"]);
    plan(
        &s,
        "plan.json",
        r#"[{"tenant": "ghost", "dir": "sites/ghost", "preview": true},
            {"tenant": "acme", "dir": "sites/acme"},
            {"tenant": "beta", "dir": "sites/beta"}]"#,
    );
    let json = run(&s, &["plan.json", "--parallel", "1", "--fail-fast"])
        .expect_code(1)
        .json();
    assert_eq!(
        results(&json),
        [
            ("ghost".to_string(), "failed".to_string()),
            ("acme".to_string(), "skipped".to_string()),
            ("beta".to_string(), "skipped".to_string()),
        ]
    );
    assert!(!s.objects().keys().any(|k| k.starts_with("sites/")));
}

#[test]
fn dry_run_writes_nothing() {
    let s = Site::new();
    folders(&s, &["acme", "beta"]);
    plan(
        &s,
        "plan.toml",
        "[[site]]\ntenant = \"acme\"\ndir = \"sites/acme\"\n[[site]]\ntenant = \"beta\"\ndir = \"sites/beta\"\n",
    );
    let json = run(&s, &["plan.toml", "--dry-run"]).success().json();
    assert!(results(&json).iter().all(|(_, r)| r == "would deploy"));
    assert!(s.writes().is_empty(), "{:?}", s.writes());
}

#[test]
fn an_invalid_plan_is_refused_whole_with_exit_2_before_any_request() {
    let s = Site::new();
    folders(&s, &["acme", "beta"]);
    std::fs::write(s.w.file("sites/beta/_redirects"), "/a\n").unwrap();
    let good = r#"{"tenant": "acme", "dir": "sites/acme"}"#;
    let cases: [(&str, &str); 9] = [
        (
            r#"{"tenant": "beta", "dir": "sites/none"}"#,
            "plan entry 2 (tenant \"beta\"), field dir:",
        ),
        (
            r#"{"tenant": "Beta!", "dir": "sites/beta"}"#,
            "field tenant:",
        ),
        (
            r#"{"tenant": "beta", "dir": "sites/beta"}"#,
            "field dir (its _redirects)",
        ),
        (
            r#"{"tenant": "beta", "dir": "sites/acme", "domains": ["not a host"]}"#,
            "field domains:",
        ),
        (
            r#"{"tenant": "beta", "dir": "sites/acme", "not_found": "maybe"}"#,
            "field not_found:",
        ),
        (
            r#"{"tenant": "beta", "dir": "sites/acme", "prevalidate": true}"#,
            "field prevalidate:",
        ),
        (
            r#"{"tenant": "beta", "dir": "sites/acme", "preview": "A B"}"#,
            "field preview:",
        ),
        (
            r#"{"tenant": "beta", "dri": "sites/acme"}"#,
            "unknown field `dri`",
        ),
        (
            r#"{"tenant": "acme", "dir": "sites/beta2"}"#,
            "plan entry 2",
        ),
    ];
    std::fs::create_dir_all(s.w.file("sites/beta2")).unwrap();
    std::fs::write(s.w.file("sites/beta2/index.html"), "x").unwrap();
    for (bad, says) in cases {
        plan(&s, "plan.json", &format!("[{good}, {bad}]"));
        let out = run(&s, &["plan.json"]).expect_code(2);
        let err = out.json();
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{bad}: {message}");
        assert!(s.w.emu.requests().is_empty(), "{bad}: a request was sent");
    }
    // The last case is the same tenant twice.
    plan(&s, "plan.json", &format!("[{good}, {good}]"));
    let err = run(&s, &["plan.json"]).expect_code(2).json();
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("entry 1 already deploys its live site"));
    // Not a plan at all.
    plan(&s, "plan.yaml", "site: []");
    run(&s, &["plan.yaml"]).expect_code(2);
    plan(&s, "plan.toml", "[[site]]\ntenant = 3\n");
    run(&s, &["plan.toml"]).expect_code(2);
    run(&s, &["plan.json", "--parallel", "0"]).expect_code(2);
    assert!(s.w.emu.requests().is_empty());
    assert!(!s.objects().keys().any(|k| k.starts_with("sites/")));
}
