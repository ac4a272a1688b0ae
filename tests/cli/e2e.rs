//! End to end: `deploy-infra` and `deploy-site examples/site acme shop.acme-store.com` through the
//! binary into the emulator, then the emulator's bucket and the uploaded Worker are loaded into
//! miniflare (`worker/test/e2e-runner.mjs`) and real requests are made against them.
//!
//! This proves the two halves agree on docs/storage-layout.md: what deploy-site writes is what
//! router.js serves. It needs `worker/node_modules` (`npm ci --prefix worker`). A plain `cargo
//! test` on a fresh checkout skips it with a note saying so; the project's test command
//! (`scripts/test.sh`, which CI runs) installs the modules first and sets `CFSETUP_E2E=required`,
//! under which a missing install fails instead of skipping.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

use crate::common::World;

const DOMAIN: &str = "shop.acme-store.com";
const BUCKET: &str = "cfsetup-sites";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn site_file(rel: &str) -> String {
    std::fs::read_to_string(repo().join("examples/site").join(rel))
        .unwrap_or_else(|e| panic!("examples/site/{rel}: {e}"))
}

/// The emulator's state in the form e2e-runner.mjs reads, plus the requests to make.
fn dump(w: &World, requests: &[(&str, &str)]) -> Value {
    let scripts = w.emu.scripts();
    let script = scripts
        .iter()
        .find(|s| s.name == "cfsetup-router")
        .expect("deploy-infra uploaded the router Worker");
    let meta = &script.metadata;
    let modules: Vec<Value> = script
        .modules
        .iter()
        .map(|(name, content_type, body)| {
            json!({ "name": name, "content_type": content_type, "body_b64": B64.encode(body) })
        })
        .collect();
    let objects: Vec<Value> = w
        .emu
        .objects(BUCKET)
        .into_iter()
        .map(|o| {
            json!({ "key": o.key, "content_type": o.content_type, "body_b64": B64.encode(&o.body) })
        })
        .collect();
    let flags = meta
        .get("compatibility_flags")
        .filter(|f| f.is_array())
        .cloned()
        .unwrap_or_else(|| json!([]));
    json!({
        "script": {
            "main_module": meta["main_module"],
            "compatibility_date": meta["compatibility_date"],
            "compatibility_flags": flags,
            "modules": modules,
            "bindings": meta["bindings"],
        },
        "buckets": { BUCKET: objects },
        "requests": requests
            .iter()
            .map(|(method, url)| json!({ "url": url, "method": method, "headers": {} }))
            .collect::<Vec<_>>(),
    })
}

/// Runs the dump through miniflare; one answer per request.
fn run_worker(dump_path: &Path) -> Vec<Value> {
    let root = repo();
    assert!(
        root.join("worker/node_modules").is_dir(),
        "worker/node_modules is missing: run `npm ci --prefix worker` first"
    );
    let out = Command::new("node")
        .arg("worker/test/e2e-runner.mjs")
        .arg(dump_path)
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run node ({e}); install Node 20+, then run `npm ci --prefix worker` first"
            )
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "e2e-runner.mjs failed ({})\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('['))
        .unwrap_or_else(|| panic!("e2e-runner.mjs printed no JSON line:\n{stdout}"));
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("bad JSON from e2e-runner.mjs ({e}): {line}"))
}

/// Whether miniflare is installed; if not, says why the test is skipped, or fails when the test
/// command requires it.
fn miniflare_installed() -> bool {
    if repo().join("worker/node_modules/miniflare").is_dir() {
        return true;
    }
    assert!(
        std::env::var("CFSETUP_E2E").as_deref() != Ok("required"),
        "worker/node_modules is missing: run `npm ci --prefix worker` first"
    );
    eprintln!(
        "note: skipping the miniflare end-to-end test: worker/node_modules is missing (run \
         `npm ci --prefix worker`, or scripts/test.sh, which does)"
    );
    false
}

#[test]
fn a_deployed_site_is_served_by_the_router_in_miniflare() {
    if !miniflare_installed() {
        return;
    }
    let w = World::new();
    let token = w.full_token();
    let zone = w.zone_name();
    let mut infra = w.with_token(&token);
    infra.arg("deploy-infra");
    w.run(&mut infra).success();

    let site = repo().join("examples/site");
    let mut deploy = w.with_token(&token);
    deploy
        .args(["--json", "deploy-site"])
        .arg(&site)
        .args(["acme", DOMAIN]);
    let report = w.run(&mut deploy).success().json();
    assert_eq!(
        report["urls"],
        json!([
            format!("https://acme.{zone}/"),
            format!("https://{DOMAIN}/")
        ])
    );

    let platform = format!("https://acme.{zone}");
    let requests = [
        ("GET", format!("https://{DOMAIN}/")),
        ("GET", format!("{platform}/")),
        ("GET", format!("{platform}/about")),
        ("GET", format!("https://{DOMAIN}/blog/")),
        ("GET", format!("https://{DOMAIN}/css/site.css")),
        ("GET", format!("{platform}/no/such/page")),
        ("GET", "https://unknown.example.org/".to_string()),
        ("GET", format!("https://globex.{zone}/")),
    ];
    let refs: Vec<(&str, &str)> = requests.iter().map(|(m, u)| (*m, u.as_str())).collect();
    let dump_path = w.file("e2e-dump.json");
    std::fs::write(
        &dump_path,
        serde_json::to_vec_pretty(&dump(&w, &refs)).unwrap(),
    )
    .unwrap();
    let answers = run_worker(&dump_path);
    assert_eq!(answers.len(), requests.len(), "{answers:#?}");

    let expect = |i: usize, status: u64, body: Option<&str>| {
        let a = &answers[i];
        assert_eq!(
            a["status"], status,
            "{} {}: {a:#}",
            requests[i].0, requests[i].1
        );
        if let Some(body) = body {
            assert_eq!(a["body"].as_str(), Some(body), "{}", requests[i].1);
        }
    };
    let index = site_file("index.html");
    expect(0, 200, Some(&index));
    expect(1, 200, Some(&index));
    expect(2, 200, Some(&site_file("about.html")));
    expect(3, 200, Some(&site_file("blog/index.html")));
    expect(4, 200, Some(&site_file("css/site.css")));
    let css_type = answers[4]["headers"]["content-type"].as_str();
    assert_eq!(css_type, Some("text/css; charset=utf-8"));
    expect(5, 404, Some(&site_file("404.html")));
    expect(6, 404, None);
    expect(7, 404, None);
    assert_ne!(
        answers[6]["body"].as_str(),
        Some(site_file("404.html").as_str())
    );
}
