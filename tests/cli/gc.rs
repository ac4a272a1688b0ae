//! `gc`: what nothing names is deleted, what a head, a kept copy or a fresh intent names is not;
//! the grace; `--dry-run`; an unreadable head stops it; and deploys wait for a running gc.

use std::time::{Duration, Instant};

use crate::deploy_site::{sha, Site};

fn ids_of(s: &Site, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for v in 0..n {
        s.write("index.html", format!("v{v}").as_bytes());
        s.write(&format!("only-{v}.txt"), format!("only in v{v}").as_bytes());
        if v > 0 {
            std::fs::remove_file(s.w.file("site").join(format!("only-{}.txt", v - 1))).unwrap();
        }
        let j = s.deploy(&[]).success().json();
        ids.push(j["deploy_id"].as_str().unwrap().to_string());
    }
    ids
}

#[test]
fn gc_deletes_what_no_head_names_and_keeps_what_any_tenant_names() {
    let s = Site::new();
    // Another tenant shares a blob with acme's first deploy: it must survive.
    s.write("index.html", b"v0");
    s.run(&["deploy-site", "site", "globex"]).success();
    let ids = ids_of(&s, 12);

    s.w.emu.clear_requests();
    let dry = s
        .run(&["gc", "--grace", "0s", "--dry-run"])
        .success()
        .json();
    assert_eq!(dry["dry_run"], true);
    assert!(s.w.writes().is_empty(), "a dry run writes nothing");
    let before = s.objects();

    let j = s.run(&["gc", "--grace", "0s"]).success().json();
    assert_eq!(j["tenants"], 2);
    assert_eq!(j["copies_deleted"], 2, "{j:#}");
    assert_eq!(j["shards_deleted"], 2, "{j:#}");
    assert_eq!(j["blobs_deleted"], 3, "v1, only in v0, only in v1: {j:#}");
    assert_eq!(j["blob_bytes_freed"], 2 + 10 + 10);
    for k in [
        "blobs_deleted",
        "copies_deleted",
        "shards_deleted",
        "bytes_freed",
        "blob_bytes_freed",
    ] {
        assert_eq!(dry[k], j[k], "the dry run said the same: {k}");
    }
    assert!(j["duration_secs"].as_f64().is_some());
    let objects = s.objects();
    assert_eq!(before.len() - objects.len(), 7);
    for gone in [&b"only in v0"[..], b"only in v1", b"v1"] {
        assert!(!objects.contains_key(&format!("blobs/{}", sha(gone))));
    }
    assert!(
        objects.contains_key(&format!("blobs/{}", sha(b"v0"))),
        "globex uses it"
    );
    assert!(!objects.contains_key(&format!("sites/acme/deploys/{}.json", ids[0])));
    for id in &ids[2..] {
        assert!(objects.contains_key(&format!("sites/acme/deploys/{id}.json")));
        let copy: serde_json::Value =
            serde_json::from_slice(&objects[&format!("sites/acme/deploys/{id}.json")]).unwrap();
        let shard = copy["route"]["shard_hashes"][0].as_str().unwrap();
        assert!(objects.contains_key(&format!("shards/{shard}.json")));
    }
    assert!(
        !objects.keys().any(|k| k.starts_with("locks/")),
        "its marker is gone"
    );

    // Nothing left to do; the table says what it did.
    let mut cmd = s.cmd();
    cmd.args(["gc", "--grace", "0s"]);
    let out = s.w.run(&mut cmd).success();
    assert!(
        out.stdout().starts_with("gc: freed 0 B"),
        "{}",
        out.stdout()
    );
    assert!(out.stdout().contains("0 blob(s)"), "{}", out.stdout());
}

#[test]
fn the_grace_keeps_young_garbage() {
    let s = Site::new();
    ids_of(&s, 12);
    let j = s.run(&["gc"]).success().json();
    assert_eq!(j["grace_secs"], 3600);
    assert_eq!(j["blobs_deleted"], 0);
    assert_eq!(j["copies_deleted"], 0);
    let out = s.run(&["gc", "--grace", "soon"]).expect_code(2);
    assert!(
        out.stderr().contains("--grace is not a duration"),
        "{}",
        out.stderr()
    );
}

#[test]
fn a_fresh_intent_protects_its_hashes_and_a_stale_one_is_removed() {
    let s = Site::new();
    s.write("index.html", b"live");
    s.deploy(&[]).success();
    // A blob uploaded by a deploy still running elsewhere, named by its intent.
    let orphan = b"uploaded by a running deploy";
    s.put(&format!("blobs/{}", sha(orphan)), orphan);
    let intent = serde_json::json!({
        "tenant": "globex", "deploy_id": "20261128T010203Z-1a2b3c4d",
        "started_at": "2026-11-28T01:02:03Z", "refreshed_at": "2026-11-28T01:02:03Z",
        "hashes": [sha(orphan)],
    });
    s.put(
        "locks/deploys/other.json",
        &serde_json::to_vec(&intent).unwrap(),
    );
    s.put("sites/globex/deploys/20261128T010203Z-1a2b3c4d.json", b"{}");
    let j = s
        .run(&["gc", "--grace", "0s", "--lock-stale", "3s"])
        .success()
        .json();
    assert_eq!(j["running_deploys"], 1);
    assert_eq!(j["blobs_deleted"], 0, "{j:#}");
    assert_eq!(
        j["copies_deleted"], 0,
        "the intent's tenant keeps its copies: {j:#}"
    );
    assert!(s.objects().contains_key(&format!("blobs/{}", sha(orphan))));

    std::thread::sleep(Duration::from_secs(4));
    let j = s
        .run(&["gc", "--grace", "0s", "--lock-stale", "3s"])
        .success()
        .json();
    assert_eq!(j["stale_intents"], 1);
    assert_eq!(j["blobs_deleted"], 1);
    assert_eq!(j["copies_deleted"], 1);
    let objects = s.objects();
    assert!(!objects.contains_key("locks/deploys/other.json"));
    assert!(!objects.contains_key(&format!("blobs/{}", sha(orphan))));
}

#[test]
fn an_unreadable_head_stops_gc_before_any_delete() {
    let s = Site::new();
    ids_of(&s, 12);
    s.put("sites/broken/manifest.json", b"not json");
    s.w.emu.clear_requests();
    let out = s.run(&["gc", "--grace", "0s"]).expect_code(1);
    assert!(
        out.stderr()
            .contains("sites/broken/manifest.json is not a valid head"),
        "{}",
        out.stderr()
    );
    let deletes: Vec<_> =
        s.w.emu
            .requests()
            .into_iter()
            .filter(|r| r.method == "DELETE" && !r.path.contains("/locks/gc/"))
            .collect();
    assert!(deletes.is_empty(), "{deletes:#?}");
}

#[test]
fn a_deploy_waits_for_a_running_gc_and_says_so() {
    let s = Site::new();
    s.write("index.html", b"v1");
    s.put(
        "locks/gc/someone.json",
        br#"{"owner":"x","started_at":"","refreshed_at":""}"#,
    );
    let start = Instant::now();
    let out = s.deploy(&["--lock-stale", "2s"]).success();
    assert!(
        out.stderr()
            .contains("waiting for 1 running gc(s) to finish"),
        "{}",
        out.stderr()
    );
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "it waited for the marker to go stale"
    );
    assert!(out.json()["waited_for_gc_secs"].as_f64().unwrap() > 0.5);
}

/// A tenant still on cfsetup 0.1's format 1: gc keeps its head's blobs and every old copy's, and
/// the next deploy replaces the head with format 2.
#[test]
fn a_format_1_tenant_is_kept_whole_and_upgraded_by_its_next_deploy() {
    let s = Site::new();
    let (live, old) = (b"old live page", b"older page");
    s.put(&format!("blobs/{}", sha(live)), live);
    s.put(&format!("blobs/{}", sha(old)), old);
    let manifest = |id: &str, body: &[u8]| {
        serde_json::to_vec(&serde_json::json!({
            "format": 1, "tenant": "acme", "deploy_id": id, "created_at": "2026-11-01T00:00:00Z",
            "files": {"/index.html": {"hash": sha(body), "size": body.len(), "content_type": "text/html"}}
        }))
        .unwrap()
    };
    let (id1, id0) = ("20261101T000000Z-11111111", "20261031T000000Z-00000000");
    s.put("sites/acme/manifest.json", &manifest(id1, live));
    s.put(
        &format!("sites/acme/deploys/{id1}.json"),
        &manifest(id1, live),
    );
    s.put(
        &format!("sites/acme/deploys/{id0}.json"),
        &manifest(id0, old),
    );
    let j = s.run(&["gc", "--grace", "0s"]).success().json();
    assert_eq!(j["blobs_deleted"], 0, "{j:#}");
    assert_eq!(j["copies_deleted"], 0, "{j:#}");
    let sites = s.run(&["sites"]).success().json();
    assert_eq!(sites["sites"][0]["live"], id1);

    s.write("index.html", live);
    let d = s.deploy(&[]).success().json();
    assert_eq!(
        d["uploaded"], 0,
        "the format 1 head's blobs count as present"
    );
    assert_eq!(s.live()["format"], 3);
    assert_eq!(s.live()["kept"], serde_json::json!([d["deploy_id"]]));
}

/// A deploy whose intent's refreshes lag for longer than the safe age does not switch: a gc
/// may have seen its intent stale and deleted what it names. A later refresh does not undo that.
#[test]
fn a_deploy_whose_lease_lapsed_does_not_switch() {
    use cfsetup_emulator::{Fault, FaultKind};
    let s = Site::new();
    s.write("index.html", b"v1");
    let first = s.deploy(&[]).success().json();
    s.write("index.html", b"v2");
    // `--lock-stale 2s`: a refresh every 200 ms, a safe age of 1.2 s. Every intent write takes
    // 1.5 s, so the gap between two successful refreshes always exceeds it.
    s.w.emu.inject(Fault {
        method: Some("PUT".into()),
        path_contains: Some("locks/deploys/".into()),
        kind: FaultKind::Latency(Duration::from_millis(1500)),
        times: 100,
    });
    let out = s.deploy(&["--lock-stale", "2s"]).expect_code(1);
    assert!(
        out.stderr()
            .contains("paused or lost its lease for longer than")
            && out.stderr().contains("nothing was switched"),
        "{}",
        out.stderr()
    );
    s.w.emu.clear_faults();
    assert_eq!(s.live()["live"]["deploy_id"], first["deploy_id"]);
}

/// `--lock-stale` can only shorten: a gc run with a short one judges an intent by the longer
/// stale time its writer recorded, so a normal deploy's intent is not dead to it.
#[test]
fn a_short_lock_stale_honours_the_stale_time_an_intent_records() {
    let s = Site::new();
    s.write("index.html", b"live");
    s.deploy(&[]).success();
    let orphan = b"uploaded by a normal deploy";
    s.put(&format!("blobs/{}", sha(orphan)), orphan);
    let intent = serde_json::json!({
        "tenant": "globex", "deploy_id": "20261128T010203Z-1a2b3c4d",
        "started_at": "2026-11-28T01:02:03Z", "refreshed_at": "2026-11-28T01:02:03Z",
        "hashes": [sha(orphan)], "stale_ms": 600_000,
    });
    s.put(
        "locks/deploys/normal.json",
        &serde_json::to_vec(&intent).unwrap(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let j = s
        .run(&["gc", "--grace", "0s", "--lock-stale", "1s"])
        .success()
        .json();
    assert_eq!(j["running_deploys"], 1, "{j:#}");
    assert_eq!(j["stale_intents"], 0, "{j:#}");
    let objects = s.objects();
    assert!(objects.contains_key(&format!("blobs/{}", sha(orphan))));
    assert!(objects.contains_key("locks/deploys/normal.json"));
    s.run(&["gc", "--lock-stale", "1h"]).expect_code(2);
}

/// Against the emulator's strict reading of every open R2 question (presigned POST refused, the
/// payload hash checked, millisecond listing times, one write per second per key): a deploy with
/// a 70 MiB file (multipart), a redeploy with one changed file, and gc all work, and every S3
/// request is header-signed.
#[test]
fn a_70_mib_file_a_changed_file_and_gc_work_against_strict_r2() {
    let s = Site::with_options(cfsetup_emulator::Options::new().with_s3_write_limit_per_key(true));
    let big: Vec<u8> = (0..70 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    s.write("index.html", b"v1");
    s.write("video.bin", &big);
    let first = s.deploy(&[]).success().json();
    assert_eq!(
        s.w.emu.count_s3_op("UploadPart"),
        9,
        "70 MiB in 8 MiB parts"
    );
    assert_eq!(s.w.emu.count_s3_op("CompleteMultipartUpload"), 1);
    let stored = s.objects();
    assert_eq!(stored[&format!("blobs/{}", sha(&big))].len(), big.len());

    s.write("index.html", b"v2");
    s.w.emu.clear_requests();
    let second = s.deploy(&[]).success().json();
    assert_ne!(first["deploy_id"], second["deploy_id"]);
    assert_eq!(
        s.w.emu.count_s3_op("UploadPart"),
        0,
        "the big file is not sent again"
    );

    // Both deploys are kept (for rollback), so gc keeps every blob they name.
    let j = s.run(&["gc", "--grace", "0s"]).success().json();
    assert_eq!(j["blobs_deleted"], 0, "{j:#}");
    let objects = s.objects();
    for kept in [&big[..], b"v1", b"v2"] {
        assert!(objects.contains_key(&format!("blobs/{}", sha(kept))));
    }
    let unsigned: Vec<_> =
        s.w.emu
            .requests()
            .into_iter()
            .filter(|r| r.api == cfsetup_emulator::Api::S3 && r.auth != "sigv4")
            .collect();
    assert!(unsigned.is_empty(), "{unsigned:?}");
}
