//! Format 3, content-addressed manifest shards (issue 20): a one-file change writes one shard,
//! one small deploy copy and the head; deploys and tenants with the same shard share one object;
//! gc keeps a shard any kept deploy names and deletes one none does; a format 2 tenant is read,
//! then upgraded by its next deploy.

use serde_json::Value;

use crate::deploy_site::{sha, short, Site};

/// A site of `n` small pages (`/p/<i>.html`) and an index.
fn many(s: &Site, n: usize) {
    s.write("index.html", b"<h1>home</h1>");
    for i in 0..n {
        s.write(
            &format!("p/{i}.html"),
            format!("<p>page {i}</p>").as_bytes(),
        );
    }
}

fn shard_hashes(head: &Value) -> Vec<String> {
    head["live"]["shard_hashes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_one_file_change_writes_one_shard_one_copy_and_the_head() {
    let s = Site::new();
    many(&s, 1500);
    s.deploy(&[]).success();
    let before = shard_hashes(&s.live());
    assert_eq!(before.len(), 32, "1,501 files in shards of about 64");

    s.write("p/7.html", b"<p>page 7, edited</p>");
    s.w.emu.clear_requests();
    let j = s.deploy(&[]).success().json();
    assert_eq!(j["uploaded"], 1);
    let after = shard_hashes(&s.live());
    let changed: Vec<usize> = (0..32).filter(|k| before[*k] != after[*k]).collect();
    assert_eq!(changed.len(), 1, "one shard differs");
    let id = j["deploy_id"].as_str().unwrap();

    let requests = s.w.emu.requests();
    let puts: Vec<String> = requests
        .iter()
        .filter(|r| r.method == "PUT")
        .map(|r| short(&r.path))
        .collect();
    let mut expected = vec![
        format!("objects/blobs/{}", sha(b"<p>page 7, edited</p>")),
        format!("objects/shards/{}.json", after[changed[0]]),
        format!("objects/sites/acme/deploys/{id}.json"),
        "objects/sites/acme/manifest.json".to_string(),
    ];
    let mut got: Vec<String> = puts
        .iter()
        .filter(|p| !p.starts_with("objects/locks/"))
        .cloned()
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "{puts:#?}");
    assert_eq!(s.w.emu.count_s3_op("PutObject"), 5, "and the intent");
    // Every S3 request: the head, the intent, the markers, the copy, the blob, the shard, the
    // switch, the intent's deletion. The shard it replaces was this machine's: read from the
    // local cache by hash (docs/storage-layout.md "The critical path").
    let s3: Vec<_> = requests.iter().filter(|r| r.op.is_some()).collect();
    assert_eq!(
        s3.len(),
        8,
        "{:#?}",
        s3.iter()
            .map(|r| (r.op, short(&r.path)))
            .collect::<Vec<_>>()
    );
    let written: u64 = requests
        .iter()
        .filter(|r| r.method == "PUT" && !short(&r.path).starts_with("objects/blobs/"))
        .map(|r| r.body_len)
        .sum();
    assert!(written < 64 * 1024, "{written} bytes besides the blob");
    assert!(requests
        .iter()
        .all(|r| !r.query.as_deref().unwrap_or("").contains("prefix=blobs")));

    // From another machine (no local shards), the replaced shard is read from R2 by hash, beside
    // the marker listing: one request more, no round trip more (tests/cli/round_trips.rs).
    std::fs::remove_dir_all(s.w.path().join(".cache/cfsetup/shards")).unwrap();
    let before = after;
    s.write("p/8.html", b"<p>page 8, edited</p>");
    s.w.emu.clear_requests();
    s.deploy(&[]).success();
    let after = shard_hashes(&s.live());
    let k = (0..32).find(|k| before[*k] != after[*k]).unwrap();
    let requests = s.w.emu.requests();
    assert!(requests.iter().any(
        |r| r.method == "GET" && short(&r.path) == format!("objects/shards/{}.json", before[k])
    ));
    assert_eq!(requests.iter().filter(|r| r.op.is_some()).count(), 9);
}

#[test]
fn two_deploys_and_two_tenants_with_the_same_shard_share_it() {
    let s = Site::new();
    many(&s, 200);
    s.deploy(&[]).success();
    let acme = shard_hashes(&s.live());
    s.w.emu.clear_requests();
    let mut cmd = s.cmd();
    cmd.args(["--json", "deploy-site", "site", "globex"]);
    s.w.run(&mut cmd).success();
    let globex: Value = serde_json::from_slice(&s.objects()["sites/globex/manifest.json"]).unwrap();
    assert_eq!(
        shard_hashes(&globex),
        acme,
        "the same files make the same shards"
    );
    let stored: Vec<String> = s
        .objects()
        .keys()
        .filter(|k| k.starts_with("shards/"))
        .cloned()
        .collect();
    assert_eq!(stored.len(), acme.len(), "stored once: {stored:#?}");
    // globex's shard writes were create-only and refused (412): nothing was stored twice.
    let refused =
        s.w.emu
            .requests()
            .iter()
            .filter(|r| r.method == "PUT" && short(&r.path).starts_with("objects/shards/"))
            .all(|r| r.status == 412);
    assert!(refused);

    // A second deploy of acme that changes one page shares every other shard with the first.
    s.write("p/3.html", b"<p>three</p>");
    s.deploy(&[]).success();
    let next = shard_hashes(&s.live());
    assert_eq!(next.iter().zip(&acme).filter(|(a, b)| a != b).count(), 1);
}

#[test]
fn gc_keeps_a_shard_any_kept_deploy_names_and_deletes_one_none_does() {
    let s = Site::new();
    s.write("index.html", b"v0");
    let mut cmd = s.cmd();
    cmd.args(["deploy-site", "site", "globex"]);
    s.w.run(&mut cmd).success();
    let mut shards = Vec::new();
    for v in 0..12 {
        s.write("index.html", format!("v{v}").as_bytes());
        s.deploy(&[]).success();
        shards.push(shard_hashes(&s.live())[0].clone());
    }
    // Shard v1 is named by nothing now (dropped from kept); shard v0 is globex's live shard
    // too; v2..v11 are kept.
    let j = s.run(&["gc", "--grace", "0s"]).success().json();
    assert_eq!(j["shards_deleted"], 1, "{j:#}");
    assert_eq!(j["copies_deleted"], 2, "{j:#}");
    let objects = s.objects();
    let has = |h: &str| objects.contains_key(&format!("shards/{h}.json"));
    assert!(has(&shards[0]), "globex names it");
    assert!(!has(&shards[1]), "no kept deploy names it");
    for h in &shards[2..] {
        assert!(has(h), "a kept deploy names it");
    }
    // A kept (not live) deploy still rolls back and serves from its shard.
    let r = s.run(&["rollback", "acme"]).success().json();
    assert_eq!(r["changed"], true, "{r:#}");
    assert_eq!(shard_hashes(&s.live())[0], shards[10]);

    // A kept deploy whose shard is not what its name says stops gc before any delete.
    s.put(&format!("shards/{}.json", shards[5]), b"{\"files\":{}}");
    let out = s.run(&["gc", "--grace", "0s"]).expect_code(1);
    assert!(
        out.stderr().contains("nothing was deleted"),
        "{}",
        out.stderr()
    );
}

#[test]
fn a_format_2_tenant_is_read_then_upgraded_by_its_next_deploy() {
    let s = Site::new();
    let page = b"<h1>old format</h1>";
    let hash = sha(page);
    s.put(&format!("blobs/{hash}"), page);
    let id = "20261101T000000Z-22222222";
    let files = serde_json::json!({"/index.html": {"hash": hash, "size": page.len(), "content_type": "text/html; charset=utf-8"}});
    let route = serde_json::json!({
        "deploy_id": id, "created_at": "2026-11-01T00:00:00Z", "digest": "0".repeat(64),
        "files": 1, "bytes": page.len(), "shards": 1, "shard_key": "stem", "not_found": "spa",
        "not_found_pages": [], "redirects": {"static": {}, "dynamic": []}, "headers": []
    });
    s.put(
        &format!("sites/acme/deploys/{id}.json"),
        &serde_json::to_vec(
            &serde_json::json!({"format": 2, "tenant": "acme", "deploy_id": id,
            "created_at": "2026-11-01T00:00:00Z", "route": route, "files": files}),
        )
        .unwrap(),
    );
    s.put(
        &format!("sites/acme/deploys/{id}/shards/0.json"),
        &serde_json::to_vec(&serde_json::json!({ "files": files })).unwrap(),
    );
    s.put(
        "sites/acme/manifest.json",
        &serde_json::to_vec(
            &serde_json::json!({"format": 2, "tenant": "acme", "live": route,
            "kept": [id], "previews": {}, "updated_at": "2026-11-01T00:00:00Z", "updated_by": "t"}),
        )
        .unwrap(),
    );
    // Read: sites lists it, gc keeps its copy, per-deploy shard and blob.
    let sites = s.run(&["sites"]).success().json();
    assert_eq!(sites["sites"][0]["live"], id, "{sites:#}");
    let g = s.run(&["gc", "--grace", "0s"]).success().json();
    assert_eq!(g["blobs_deleted"], 0, "{g:#}");
    assert_eq!(g["shards_deleted"], 0, "{g:#}");
    assert_eq!(g["copies_deleted"], 0, "{g:#}");

    // The next deploy (the same page) is a change: it upgrades the head to format 3, and the
    // blob the format 2 copy names counts as present.
    s.write("index.html", page);
    let d = s.deploy(&[]).success().json();
    assert_eq!(d["changed"], true);
    assert_eq!(d["uploaded"], 0, "{d:#}");
    let head = s.live();
    assert_eq!(head["format"], 3);
    assert_eq!(head["kept"], serde_json::json!([d["deploy_id"], id]));
    let h = &shard_hashes(&head)[0];
    assert!(s.objects().contains_key(&format!("shards/{h}.json")));
    // Both formats side by side: gc keeps the old deploy (kept) and the new shard.
    let g = s.run(&["gc", "--grace", "0s"]).success().json();
    assert_eq!(g["blobs_deleted"], 0, "{g:#}");
    assert_eq!(g["shards_deleted"], 0, "{g:#}");
    // And a rollback to the format 2 deploy works: a format 3 head may name a format 2 Route.
    let r = s.run(&["rollback", "acme", id]).success().json();
    assert_eq!(r["changed"], true, "{r:#}");
    assert_eq!(s.live()["live"]["deploy_id"], id);
    let again = s.deploy(&[]).success().json();
    assert_eq!(again["changed"], true, "a format 2 live Route is upgraded");
}
