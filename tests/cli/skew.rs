//! Skew protection on the deploy side: a switch writes the retained index of content-hashed files
//! the new deploy lacks (never HTML or unhashed files), with `--retain`'s window; `--no-retain`
//! writes none; a rollback serves exactly what it names; gc keeps what a retained index names.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::deploy_site::Site;

const OLD_JS: &[u8] = b"console.log('v1');";

fn v1(s: &Site) {
    s.write(
        "index.html",
        b"<script src=/assets/app.4f9c2a1b.js></script>",
    );
    s.write("assets/app.4f9c2a1b.js", OLD_JS);
    s.write("leak.pdf", b"%PDF oops");
    s.deploy(&[]).success();
}

/// v2: a new bundle name, the leaked document removed.
fn to_v2(s: &Site) {
    std::fs::remove_file(s.w.file("site/assets/app.4f9c2a1b.js")).unwrap();
    std::fs::remove_file(s.w.file("site/leak.pdf")).unwrap();
    s.write(
        "index.html",
        b"<script src=/assets/app.9e8d7c6b.js></script>",
    );
    s.write("assets/app.9e8d7c6b.js", b"console.log('v2');");
}

fn retained(s: &Site) -> Option<Value> {
    let head = s.live();
    let id = head["live"]["deploy_id"].as_str().unwrap().to_string();
    let key = format!("sites/acme/deploys/{id}/retained.json");
    s.objects()
        .get(&key)
        .map(|b| serde_json::from_slice(b).unwrap())
}

#[test]
fn a_switch_retains_the_old_hashed_assets_for_the_window_and_nothing_else() {
    let s = Site::new();
    v1(&s);
    let first = s.live()["live"]["deploy_id"].as_str().unwrap().to_string();
    assert!(s.live().get("retained").is_none());
    to_v2(&s);
    let out = s.deploy(&["--retain", "2h"]).success().json();
    assert_eq!(out["retained_files"], 1);
    let head = s.live();
    let idx = retained(&s).expect("a retained index");
    let files = idx["files"].as_object().unwrap();
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        ["/assets/app.4f9c2a1b.js"]
    );
    let e = &files["/assets/app.4f9c2a1b.js"];
    assert_eq!(e["hash"], hex::encode(Sha256::digest(OLD_JS)));
    assert_eq!(e["from"], first.as_str());
    // The window: until is 2 h from the switch (to the second).
    let until = humantime::parse_rfc3339(e["until"].as_str().unwrap()).unwrap();
    let left = until
        .duration_since(std::time::SystemTime::now())
        .unwrap()
        .as_secs();
    assert!((7100..=7200).contains(&left), "{left}");
    assert_eq!(head["retained"]["until"], e["until"]);
    assert_eq!(head["retained"]["files"], 1);

    // gc keeps the retained blob, even with no grace.
    let mut cmd = s.cmd();
    cmd.args(["--json", "gc", "--grace", "0s"]);
    s.w.run(&mut cmd).success();
    let blob = format!("blobs/{}", hex::encode(Sha256::digest(OLD_JS)));
    assert!(s.objects().contains_key(&blob));

    // A rollback serves exactly the deploy it names: no retained files.
    let mut cmd = s.cmd();
    cmd.args(["rollback", "acme"]);
    s.w.run(&mut cmd).success();
    assert!(s.live().get("retained").is_none());
}

#[test]
fn no_retain_switches_without_skew_protection() {
    let s = Site::new();
    v1(&s);
    to_v2(&s);
    let out = s.deploy(&["--no-retain"]).success().json();
    assert_eq!(out["retained_files"], 0);
    assert!(s.live().get("retained").is_none());
    assert!(retained(&s).is_none());
    // Bad windows are exit 2 before any request.
    s.w.emu.clear_requests();
    s.deploy(&["--retain", "soon"]).expect_code(2);
    s.deploy(&["--retain", "1h", "--no-retain"]).expect_code(2);
    assert!(s.w.emu.requests().is_empty());
}
