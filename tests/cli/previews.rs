//! Private and expiring previews against the emulator: `--protect` (generated, stdin, env; never
//! argv) storing only a salted PBKDF2 hash, `--expires` and gc dropping an expired preview,
//! `remove-preview`, and `sites TENANT` showing both.

use std::io::Write;
use std::process::Stdio;

use serde_json::Value;

use crate::deploy_site::Site;

/// A live site for acme, so previews can go beside it.
fn live() -> Site {
    let s = Site::new();
    s.write("index.html", b"<h1>live</h1>");
    s.deploy(&[]).success();
    s.write("index.html", b"<h1>next</h1>");
    s
}

/// PBKDF2-HMAC-SHA256, written here from the crate, not from cfsetup's code.
fn pbkdf2_hex(password: &str, salt_hex: &str, iterations: u32) -> String {
    let salt = hex::decode(salt_hex).unwrap();
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), &salt, iterations, &mut out);
    hex::encode(out)
}

fn no_clear_text(s: &Site, password: &str) {
    for (key, body) in s.objects() {
        assert!(
            !String::from_utf8_lossy(&body).contains(password),
            "{key} holds the password in clear"
        );
    }
}

#[test]
fn a_generated_password_is_shown_once_and_only_its_salted_hash_is_stored() {
    let s = live();
    let out = s.deploy(&["--preview", "wip", "--protect"]).success();
    let json = out.json();
    let password = json["password"].as_str().unwrap().to_string();
    s.w.secret(&password);
    assert_eq!(password.len(), 24);
    assert_eq!(json["protected"], true);
    let head = s.live();
    // Not in `previews`, which routers older than `protect` read and would serve to anyone.
    assert!(head["previews"].get("wip").is_none(), "{head}");
    let p = &head["protected_previews"]["wip"]["protect"];
    assert_eq!(p["kdf"], "pbkdf2-sha256");
    let iterations = p["iterations"].as_u64().unwrap() as u32;
    assert!(iterations <= 100_000, "the Workers runtime's cap");
    assert_eq!(
        pbkdf2_hex(&password, p["salt"].as_str().unwrap(), iterations),
        p["hash"].as_str().unwrap()
    );
    assert_ne!(
        pbkdf2_hex("wrong password", p["salt"].as_str().unwrap(), iterations),
        p["hash"]
    );
    no_clear_text(&s, &password);

    // The same files again with a new --protect: a new password, a new salt.
    let again = s
        .deploy(&["--preview", "wip", "--protect"])
        .success()
        .json();
    let second = again["password"].as_str().unwrap().to_string();
    s.w.secret(&second);
    assert_ne!(second, password);
    assert_ne!(
        s.live()["protected_previews"]["wip"]["protect"]["salt"],
        p["salt"]
    );

    // Without --protect the preview is public again, in `previews`.
    s.deploy(&["--preview", "wip"]).success();
    let head = s.live();
    assert!(head["previews"]["wip"].get("protect").is_none());
    assert!(head.get("protected_previews").is_none(), "{head}");
}

#[test]
fn a_chosen_password_comes_from_stdin_or_the_environment_never_from_argv() {
    let s = live();
    let chosen = "correct horse battery";
    s.w.secret(chosen);
    let mut cmd = s.cmd();
    cmd.env("PREVIEW_PASSWORD", chosen).args([
        "--json",
        "deploy-site",
        "site",
        "acme",
        "--preview",
        "env",
        "--protect=env:PREVIEW_PASSWORD",
    ]);
    let json = s.w.run(&mut cmd).success().json();
    assert!(
        json.get("password").is_none(),
        "a chosen password is not echoed"
    );
    let p = s.live()["protected_previews"]["env"]["protect"].clone();
    assert_eq!(
        pbkdf2_hex(
            chosen,
            p["salt"].as_str().unwrap(),
            p["iterations"].as_u64().unwrap() as u32
        ),
        p["hash"].as_str().unwrap()
    );

    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cfsetup"));
    let base = s.cmd();
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd
        .env_remove("CLOUDFLARE_API_TOKEN")
        .env("CLOUDFLARE_API_TOKEN", &s.token)
        .current_dir(s.w.path())
        .args([
            "--json",
            "deploy-site",
            "site",
            "acme",
            "--preview",
            "stdin",
            "--protect=-",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{chosen}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = s.live()["protected_previews"]["stdin"]["protect"].clone();
    assert_eq!(
        pbkdf2_hex(
            chosen,
            p["salt"].as_str().unwrap(),
            p["iterations"].as_u64().unwrap() as u32
        ),
        p["hash"].as_str().unwrap()
    );
    no_clear_text(&s, chosen);

    // argv, a missing variable, and --protect without --preview: exit 2, before any request.
    s.w.emu.clear_requests();
    for args in [
        vec!["--preview", "x", "--protect=hunter22"],
        vec!["--preview", "x", "--protect=env:NOT_SET_ANYWHERE"],
        vec!["--protect"],
        vec!["--expires", "1d"],
        vec!["--preview", "x", "--expires", "soon"],
    ] {
        let out = s.deploy(&args).expect_code(2);
        assert!(!out.stdout().contains("hunter22"), "{}", out.stdout());
    }
    assert!(s.w.emu.requests().is_empty());
}

fn gc(s: &Site, extra: &[&str]) -> Value {
    let mut cmd = s.cmd();
    cmd.args(["--json", "gc", "--grace", "0s"]).args(extra);
    s.w.run(&mut cmd).success().json()
}

#[test]
fn an_expired_preview_is_shown_as_such_and_dropped_by_the_next_gc() {
    let s = live();
    s.deploy(&["--preview", "old", "--expires", "1s"]).success();
    s.deploy(&["--preview", "keep", "--expires", "30d"])
        .success();
    let expires = s.live()["previews"]["old"]["expires_at"]
        .as_str()
        .unwrap()
        .to_string();
    // Past its end (the second is whole: RFC 3339 to the second).
    std::thread::sleep(std::time::Duration::from_millis(2100));

    let mut cmd = s.cmd();
    cmd.args(["--json", "sites", "acme"]);
    let sites = s.w.run(&mut cmd).success().json();
    let row = |name: &str| {
        sites["history"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["preview"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(row("old")["expires_at"], expires.as_str());
    assert_eq!(row("old")["expired"], true);
    assert!(row("keep").get("expired").is_none());

    let dry = gc(&s, &["--dry-run"]);
    assert_eq!(dry["expired_previews"], serde_json::json!(["old--acme"]));
    assert!(s.live()["previews"].get("old").is_some());

    let report = gc(&s, &[]);
    assert_eq!(report["expired_previews"], serde_json::json!(["old--acme"]));
    let head = s.live();
    assert!(head["previews"].get("old").is_none(), "{head}");
    assert!(head["previews"].get("keep").is_some());
    // The live site is untouched.
    assert!(head["live"]["deploy_id"].is_string());
}

#[test]
fn remove_preview_takes_one_out_and_a_second_run_has_nothing_to_do() {
    let s = live();
    s.deploy(&["--preview", "wip", "--protect"]).success();
    let remove = |extra: &[&str]| {
        let mut cmd = s.cmd();
        cmd.args(["--json", "remove-preview", "acme", "wip"])
            .args(extra);
        s.w.run(&mut cmd).success().json()
    };
    let dry = remove(&["--dry-run"]);
    assert_eq!(dry["removed"], true);
    assert!(s.live()["protected_previews"].get("wip").is_some());
    let done = remove(&[]);
    assert_eq!(done["removed"], true);
    assert!(s.live().get("protected_previews").is_none());
    s.w.emu.clear_requests();
    let again = remove(&[]);
    assert_eq!(again["removed"], false);
    assert!(s.writes().is_empty(), "{:?}", s.writes());
    // A bad name is refused before any request.
    s.w.emu.clear_requests();
    let mut cmd = s.cmd();
    cmd.args(["remove-preview", "acme", "Not--Valid"]);
    s.w.run(&mut cmd).expect_code(2);
    assert!(s.w.emu.requests().is_empty());
}
