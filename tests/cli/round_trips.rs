//! Issue 20's critical path, measured: how many round trips (the emulator's
//! [`round_trips`](cfsetup_emulator::Emulator::round_trips), the longest chain of requests each
//! sent after the one before was answered) and requests a deploy makes, with a latency on every
//! request so that requests sent together overlap (counts, never durations, are asserted); and
//! the token id kept locally so that a repeat run needs no verify call.

use cfsetup::cloudflare::{Auth, Client, ClientOptions};
use cfsetup::secret::Secret;
use sha2::{Digest, Sha256};

use crate::deploy_site::{rt, Site};

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
