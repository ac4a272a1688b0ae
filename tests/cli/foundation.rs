//! The command line and configuration: exit statuses, validation before any request, precedence.

use crate::common::World;

#[test]
fn help_lists_the_commands() {
    let w = World::new();
    let run = w.run(w.bare().arg("--help")).success();
    for c in [
        "create-token",
        "test-permissions",
        "deploy-infra",
        "deploy-site",
        "demo",
        "emulator",
    ] {
        assert!(run.stdout().contains(c), "{c} missing from --help");
    }
}

#[test]
fn a_bad_account_id_exits_2_and_sends_no_request() {
    let w = World::new();
    let token = w.full_token();
    let run = w
        .run(
            w.with_token(&token)
                .args(["--account-id", "not-an-id", "test-permissions"]),
        )
        .expect_code(2);
    assert!(
        run.stderr()
            .starts_with("cfsetup: error: --account-id is not a valid ID: \"not-an-id\""),
        "{}",
        run.stderr()
    );
    assert!(run.stderr().contains("hint: an ID is 32 lowercase hex"));
    assert!(w.emu.requests().is_empty(), "no request may be sent");
}

#[test]
fn plain_http_to_a_remote_host_is_refused_before_any_request() {
    let w = World::new();
    let run = w
        .run(
            w.ids()
                .env(
                    "CLOUDFLARE_API_TOKEN",
                    "cfut_thisisnotarealtoken0000000000000000000000",
                )
                .env(
                    "CLOUDFLARE_API_BASE_URL",
                    "http://api.example.com/client/v4",
                )
                .arg("test-permissions"),
        )
        .expect_code(2);
    assert!(run.stderr().contains("plain http"), "{}", run.stderr());
}

#[test]
fn a_missing_named_env_file_exits_2_but_a_missing_default_is_fine() {
    let w = World::new();
    let run = w
        .run(
            w.bare()
                .args(["--env-file", "nope.env", "test-permissions"]),
        )
        .expect_code(2);
    assert!(run.stderr().contains("--env-file nope.env: no such file"));
    let run = w.run(w.bare().arg("test-permissions")).expect_code(2);
    assert!(run.stderr().contains("no account ID"), "{}", run.stderr());
}

#[test]
fn the_env_file_is_read_and_the_environment_beats_it() {
    let w = World::new();
    // A broken ID in .env is used (exit 2) when nothing overrides it ...
    std::fs::write(
        w.file(".env"),
        "CLOUDFLARE_ACCOUNT_ID=broken\nCLOUDFLARE_API_TOKEN=abc\n",
    )
    .unwrap();
    let run = w.run(w.bare().arg("test-permissions")).expect_code(2);
    assert!(run
        .stderr()
        .contains("CLOUDFLARE_ACCOUNT_ID is not a valid ID"));
    // ... the process environment beats it ...
    let run = w
        .run(
            w.bare()
                .env("CLOUDFLARE_ACCOUNT_ID", "x".repeat(3))
                .arg("test-permissions"),
        )
        .expect_code(2);
    assert!(run.stderr().contains("\"xxx\""), "{}", run.stderr());
    // ... and a flag beats both.
    let run = w
        .run(w.bare().env("CLOUDFLARE_ACCOUNT_ID", "x".repeat(3)).args([
            "--account-id",
            "yyy",
            "test-permissions",
        ]))
        .expect_code(2);
    assert!(run
        .stderr()
        .contains("--account-id is not a valid ID: \"yyy\""));
}

#[test]
fn unknown_flags_are_usage_errors() {
    let w = World::new();
    w.run(w.bare().args(["deploy-infra", "--no-such-flag"]))
        .expect_code(2);
}

#[test]
fn completions_and_man_page_are_generated() {
    let w = World::new();
    let run = w.run(w.bare().args(["completions", "bash"])).success();
    assert!(run.stdout().contains("cfsetup"));
    let run = w.run(w.bare().arg("man")).success();
    assert!(run.stdout().contains(".TH cfsetup"));
}

/// `cfsetup man | head -1`: a reader that goes away is not an error (exit 0, nothing on
/// stderr), as with ripgrep.
#[test]
fn a_closed_stdout_pipe_exits_0_quietly() {
    let bin = assert_cmd::cargo::cargo_bin("cfsetup");
    for args in [
        &["man"][..],
        &["completions", "bash"][..],
        &["permissions"][..],
    ] {
        let mut child = std::process::Command::new(&bin)
            .args(args)
            .env_clear()
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end before the child writes: its first write meets a closed pipe.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `cfsetup emulator --help` describes fault injection and the R2 S3 knobs (issue 16 item 7,
/// issue 17); a bad knob value is exit 2 naming the accepted ones.
#[test]
fn the_emulator_help_describes_fault_injection_and_the_s3_knobs() {
    let w = World::new();
    let run = w.run(w.bare().args(["emulator", "--help"])).success();
    let out = run.stdout();
    for needle in [
        "POST /__emulator/faults",
        "\"kind\": \"latency\"",
        "--s3-presigned-post",
        "refuse-403",
        "refuse-501",
        "--s3-presigned-payload-lenient",
        "--s3-conflict-409",
        "--s3-write-limit-per-key",
        "--s3-complete-honours-conditions",
    ] {
        assert!(out.contains(needle), "{needle}: {out}");
    }
    let bad = w
        .run(w.bare().args(["emulator", "--s3-presigned-post", "maybe"]))
        .expect_code(2);
    assert!(bad.stderr().contains("refuse-403"), "{}", bad.stderr());
}

#[test]
fn the_emulator_command_prints_exports_first() {
    use std::io::{BufRead, BufReader};
    let bin = assert_cmd::cargo::cargo_bin("cfsetup");
    let mut child = std::process::Command::new(bin)
        .args(["emulator", "--port", "0"])
        .env_clear()
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut got = Vec::new();
    for _ in 0..6 {
        got.push(lines.next().unwrap().unwrap());
    }
    let _ = child.kill();
    let _ = child.wait();
    let names: Vec<&str> = got
        .iter()
        .map(|l| {
            l.strip_prefix("export ")
                .unwrap()
                .split('=')
                .next()
                .unwrap()
        })
        .collect();
    assert_eq!(
        names,
        [
            "CLOUDFLARE_API_BASE_URL",
            "R2_S3_ENDPOINT",
            "CLOUDFLARE_EMAIL",
            "CLOUDFLARE_GLOBAL_KEY",
            "CLOUDFLARE_ACCOUNT_ID",
            "CLOUDFLARE_ZONE_ID"
        ]
    );
    assert!(got[0].starts_with("export CLOUDFLARE_API_BASE_URL=http://127.0.0.1:"));
    assert!(
        !got[0].ends_with(":0/client/v4"),
        "port 0 picks a real port"
    );
    // The S3 endpoint is the same listener, path-style (docs/cli.md `emulator`).
    let api_origin = got[0]
        .strip_prefix("export CLOUDFLARE_API_BASE_URL=")
        .and_then(|u| u.strip_suffix("/client/v4"))
        .unwrap();
    assert_eq!(got[1], format!("export R2_S3_ENDPOINT={api_origin}"));
}
