//! Issue 20's critical path, measured: how many round trips (the emulator's
//! [`round_trips`](cfsetup_emulator::Emulator::round_trips), the longest chain of requests each
//! sent after the one before was answered) and requests a deploy makes, with a latency on every
//! request so that requests sent together overlap (counts, never durations, are asserted); and
//! the token id kept locally so that a repeat run needs no verify call.

use std::time::Duration;

use cfsetup::cloudflare::{Auth, Client, ClientOptions};
use cfsetup::secret::Secret;
use cfsetup_emulator::{Options, RecordedRequest};
use sha2::{Digest, Sha256};

use crate::deploy_site::{rt, sha, short, Site};

/// Every request waits this long in the emulator: long enough that requests sent together
/// overlap whatever the machine's load, so round trips are counted, not timed.
const LATENCY: Duration = Duration::from_millis(100);

fn slow_site() -> Site {
    Site::with_options(Options {
        latency: LATENCY,
        ..Options::new()
    })
}

/// A site of `n` small pages (`/p/<i>.html`) and an index.
fn pages(s: &Site, n: usize) {
    s.write("index.html", b"<h1>home</h1>");
    for i in 0..n {
        s.write(
            &format!("p/{i}.html"),
            format!("<p>page {i}</p>").as_bytes(),
        );
    }
}

/// A deploy of acme with the token id given (`CLOUDFLARE_API_TOKEN_ID`) or not, and `home` as
/// the machine (its local caches).
fn deploy_from(s: &Site, id: Option<&str>, home: Option<&std::path::Path>) -> serde_json::Value {
    let mut cmd = s.cmd();
    if let Some(id) = id {
        cmd.env("CLOUDFLARE_API_TOKEN_ID", id);
    }
    if let Some(home) = home {
        cmd.env("HOME", home);
    }
    cmd.args(["--json", "deploy-site", "site", "acme"]);
    s.w.run(&mut cmd).success().json()
}

/// What the log shows, for messages: each request with its start and end in ms.
fn timeline(requests: &[RecordedRequest]) -> Vec<String> {
    let t0 = requests.iter().map(|r| r.started).min();
    requests
        .iter()
        .map(|r| {
            let at = |t: std::time::Instant| t0.map_or(0, |t0| t.duration_since(t0).as_millis());
            format!(
                "{:>5}-{:<5} {} {} {}",
                at(r.started),
                at(r.ended),
                r.method,
                short(&r.path),
                r.status
            )
        })
        .collect()
}

/// Prints the measure (shown with `--nocapture`): the figures the docs quote.
fn measured(what: &str, s: &Site) -> usize {
    let requests = s.w.emu.requests();
    let rts = s.w.emu.round_trips();
    eprintln!(
        "{what}: {rts} round trips, {} requests ({} S3), {} bytes written besides blobs",
        requests.len(),
        requests.iter().filter(|r| r.op.is_some()).count(),
        written_besides_blobs(&requests)
    );
    rts
}

/// Bytes written by PUTs other than blobs.
fn written_besides_blobs(requests: &[RecordedRequest]) -> u64 {
    requests
        .iter()
        .filter(|r| r.method == "PUT" && !short(&r.path).starts_with("objects/blobs/"))
        .map(|r| r.body_len)
        .sum()
}

/// Issue 20, "one file changed": in a 1,501-file site (32 shards), with the token id known,
/// at most 5 round trips and 8 requests, and under 64 KB written besides the blob; the same
/// with the id from the local cache instead of the environment; and "nothing changed" is one
/// request.
#[test]
fn a_one_file_change_is_five_round_trips_and_eight_requests() {
    let s = slow_site();
    pages(&s, 1500);
    deploy_from(&s, None, None);
    let id = token_id(&s);

    for (i, env_id) in [(7, Some(id.as_str())), (8, None)] {
        let page = format!("<p>page {i}, edited</p>");
        s.write(&format!("p/{i}.html"), page.as_bytes());
        s.w.emu.clear_requests();
        let j = deploy_from(&s, env_id, None);
        assert_eq!(j["uploaded"], 1);
        let requests = s.w.emu.requests();
        let lines = timeline(&requests);
        assert_eq!(verifies(&s), 0, "{lines:#?}");
        let from = if env_id.is_some() { "env" } else { "cache" };
        measured(&format!("one file changed, token id from {from}"), &s);
        assert!(
            s.w.emu.round_trips() <= 5,
            "{} round trips: {lines:#?}",
            s.w.emu.round_trips()
        );
        assert!(
            requests.len() <= 8,
            "{} requests: {lines:#?}",
            requests.len()
        );
        assert!(requests.iter().any(|r| r.method == "PUT"
            && short(&r.path) == format!("objects/blobs/{}", sha(page.as_bytes()))));
        let written = written_besides_blobs(&requests);
        assert!(written < 64 * 1024, "{written} bytes besides the blob");
    }

    // Nothing changed: the head alone.
    s.w.emu.clear_requests();
    let j = deploy_from(&s, None, None);
    measured("nothing changed", &s);
    assert_eq!(j["changed"], false);
    let requests = s.w.emu.requests();
    assert!(requests.len() <= 2, "{:#?}", timeline(&requests));
    assert_eq!(requests.len(), 1, "{:#?}", timeline(&requests));
}

/// Issue 20, "cold": a first deploy of fewer files than `--concurrency` sends its uploads in one
/// round trip, so the whole deploy is that round trip plus 4 (intent with the head, the marker
/// listing, the switch, the intent's deletion) with the token id known, and one more (the
/// verify) without it.
#[test]
fn a_cold_deploy_is_its_uploads_plus_four_round_trips() {
    let s = slow_site();
    pages(&s, 40);
    let id = token_id(&s);
    s.w.emu.clear_requests();
    let j = deploy_from(&s, Some(&id), None);
    assert_eq!(j["uploaded"], 41);
    measured("cold, 41 files, token id known", &s);
    let lines = timeline(&s.w.emu.requests());
    assert!(
        s.w.emu.round_trips() <= 5,
        "{} round trips: {lines:#?}",
        s.w.emu.round_trips()
    );

    // Another tenant, cold, on a machine that has never verified the token: one more.
    let other = s.w.path().join("other-machine");
    std::fs::create_dir_all(&other).unwrap();
    s.w.emu.clear_requests();
    let mut cmd = s.cmd();
    cmd.env("HOME", &other)
        .args(["--json", "deploy-site", "site", "globex"]);
    s.w.run(&mut cmd).success();
    measured("cold, 41 files, token verified", &s);
    let lines = timeline(&s.w.emu.requests());
    assert_eq!(verifies(&s), 1);
    assert!(
        s.w.emu.round_trips() <= 6,
        "{} round trips: {lines:#?}",
        s.w.emu.round_trips()
    );
}

/// When this machine's caches do not predict the live deploy (its shards were removed, or
/// another machine deployed meanwhile), the deploy is still right and at most one round trip
/// longer (the intent is then written again, under a second key, before the marker listing).
#[test]
fn a_misprediction_costs_at_most_one_round_trip() {
    let s = slow_site();
    pages(&s, 300);
    deploy_from(&s, None, None);
    let id = token_id(&s);

    // The local shards are gone (what this machine saw live is kept apart, in `live/`): the
    // replaced shard is read from R2 beside the marker listing.
    std::fs::remove_dir_all(s.w.path().join(".cache/cfsetup/shards")).unwrap();
    s.write("p/1.html", b"<p>one, edited</p>");
    s.w.emu.clear_requests();
    let j = deploy_from(&s, Some(&id), None);
    assert_eq!(j["uploaded"], 1);
    measured("one file changed, no local shards", &s);
    let lines = timeline(&s.w.emu.requests());
    assert!(
        s.w.emu.round_trips() <= 6,
        "{} round trips: {lines:#?}",
        s.w.emu.round_trips()
    );
    assert_eq!(s.live()["live"]["deploy_id"], j["deploy_id"]);

    // Another machine deploys a change to p/2; this one then deploys p/2 as it had it (its
    // cached shard, which the live deploy no longer has) with a change to p/3.
    let other = s.w.path().join("other-machine");
    std::fs::create_dir_all(&other).unwrap();
    s.write("p/2.html", b"<p>two, from elsewhere</p>");
    deploy_from(&s, Some(&id), Some(&other));
    s.write("p/2.html", b"<p>page 2</p>");
    s.write("p/3.html", b"<p>three, edited</p>");
    s.w.emu.clear_requests();
    let j = deploy_from(&s, Some(&id), None);
    measured("after another machine's deploy", &s);
    let lines = timeline(&s.w.emu.requests());
    assert!(
        s.w.emu.round_trips() <= 6,
        "{} round trips: {lines:#?}",
        s.w.emu.round_trips()
    );
    assert_eq!(s.live()["live"]["deploy_id"], j["deploy_id"]);
    let paths = s.live_files();
    assert_eq!(
        paths["files"]["/p/2.html"]["hash"],
        sha(b"<p>page 2</p>").as_str()
    );
    // Every blob the live deploy names exists.
    let objects = s.objects();
    for (path, e) in paths["files"].as_object().unwrap() {
        let h = e["hash"].as_str().unwrap();
        assert!(objects.contains_key(&format!("blobs/{h}")), "{path}");
    }
}

/// The API token's id, asked of the emulator directly.
fn token_id(s: &Site) -> String {
    let client = Client::new(
        &url::Url::parse(&s.w.emu.base_url()).unwrap(),
        Auth::Token(Secret::new(s.token.clone())),
        ClientOptions::default(),
    )
    .unwrap();
    rt().block_on(client.verify_token()).unwrap().id
}

fn verifies(s: &Site) -> usize {
    s.w.emu
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/tokens/verify"))
        .count()
}

/// The token-id cache: one file, named by a domain-separated hash of the token, holding the id
/// only; a second run makes no verify call; a malformed entry is ignored and healed; an entry
/// whose id S3 refuses is removed (auto falls back to REST, saying so) and the next run verifies
/// again.
#[test]
fn the_token_id_is_kept_locally_and_a_repeat_run_skips_the_verify() {
    let s = Site::new();
    s.write("index.html", b"<h1>v1</h1>");
    s.deploy(&[]).success();
    assert_eq!(verifies(&s), 1);
    let id = token_id(&s);
    let dir = s.w.path().join(".cache/cfsetup/token-ids");
    let entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let entry = &entries[0];
    let name = entry.file_name().unwrap().to_str().unwrap().to_string();
    let body = std::fs::read_to_string(entry).unwrap();
    assert_eq!(body.trim(), id);
    // Neither the token nor SHA-256(token) (its S3 secret) is written: not as the name, not in
    // the file.
    let s3_secret = hex::encode(Sha256::digest(s.token.as_bytes()));
    assert_ne!(name, s3_secret);
    assert_eq!(name.len(), 64);
    assert!(!body.contains(&s.token) && !body.contains(&s3_secret));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(entry).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }

    // The next run takes the id from the cache: no verify.
    s.write("index.html", b"<h1>v2</h1>");
    s.w.emu.clear_requests();
    let out = s.deploy(&[]).success();
    assert_eq!(verifies(&s), 0);
    assert!(!out.stderr().contains("note: R2's S3"), "{}", out.stderr());

    // A malformed entry is ignored (the token is verified) and rewritten.
    std::fs::write(entry, "not an id\n").unwrap();
    s.write("index.html", b"<h1>v3</h1>");
    s.w.emu.clear_requests();
    s.deploy(&[]).success();
    assert_eq!(verifies(&s), 1);
    assert_eq!(std::fs::read_to_string(entry).unwrap().trim(), id);

    // A well-formed id that is not this token's: S3 refuses the keys, auto falls back to REST
    // with one note naming the cache, and the entry is gone, so the next run verifies again.
    std::fs::write(entry, "0123456789abcdef0123456789abcdef\n").unwrap();
    s.write("index.html", b"<h1>v4</h1>");
    s.w.emu.clear_requests();
    let out = s.deploy(&[]).success();
    assert_eq!(verifies(&s), 0);
    assert_eq!(out.stderr().matches("cfsetup: note: R2's S3").count(), 1);
    assert!(out.stderr().contains("cache"), "{}", out.stderr());
    assert!(!entry.exists(), "the refused entry is removed");
    s.write("index.html", b"<h1>v5</h1>");
    s.w.emu.clear_requests();
    s.deploy(&[]).success();
    assert_eq!(verifies(&s), 1);
    assert_eq!(std::fs::read_to_string(entry).unwrap().trim(), id);

    // CLOUDFLARE_API_TOKEN_ID still wins over the cache.
    std::fs::write(entry, "0123456789abcdef0123456789abcdef\n").unwrap();
    s.write("index.html", b"<h1>v6</h1>");
    s.w.emu.clear_requests();
    let mut cmd = s.cmd();
    cmd.env("CLOUDFLARE_API_TOKEN_ID", &id)
        .args(["--json", "deploy-site", "site", "acme"]);
    let out = s.w.run(&mut cmd).success();
    assert!(!out.stderr().contains("note: R2's S3"), "{}", out.stderr());
    assert_eq!(verifies(&s), 0);
}

/// A refusal that only the reads find (a DOMAIN another tenant holds) may come after the early
/// intent was written beside the head read: the run deletes it, and writes nothing else.
#[test]
fn a_refusal_after_the_early_intent_leaves_nothing_behind() {
    let s = Site::new();
    s.write("index.html", b"<h1>acme</h1>");
    s.deploy(&["shop.acme-store.com"]).success();
    let before = s.objects();
    s.write("index.html", b"<h1>globex, another site</h1>");
    s.w.emu.clear_requests();
    let mut cmd = s.cmd();
    cmd.args(["deploy-site", "site", "globex", "shop.acme-store.com"]);
    let out = s.w.run(&mut cmd).expect_code(1);
    assert!(
        out.stderr().contains("already attached to tenant \"acme\""),
        "{}",
        out.stderr()
    );
    let writes: Vec<(String, String)> =
        s.w.writes()
            .iter()
            .map(|r| (r.method.clone(), short(&r.path)))
            .collect();
    assert!(
        writes
            .iter()
            .all(|(_, p)| p.starts_with("objects/locks/deploys/")),
        "{writes:#?}"
    );
    assert!(
        writes.iter().any(|(m, _)| m == "PUT") && writes.iter().any(|(m, _)| m == "DELETE"),
        "the early intent was written, then deleted: {writes:#?}"
    );
    assert_eq!(s.objects(), before, "nothing changed, no intent left");
}
