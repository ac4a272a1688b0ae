//! Issue #13, "Secrets, CI safety and bad input": each test is named after the item it proves.

use crate::common::World;

const SECRET: &str = "cfut_Zq8sSecretValue0123456789abcdefghijklmnop123456";

/// Item 1: a malformed `.env` names the file, the real line and the variable, never a value.
#[test]
fn item1_a_malformed_env_file_never_shows_a_value() {
    let w = World::new();
    w.secret(SECRET);
    let cases = [
        (
            format!("# mine\nCLOUDFLARE_ACCOUNT_ID=abc\n\nCLOUDFLARE_API_TOKEN=\"{SECRET}\n"),
            "line 4: CLOUDFLARE_API_TOKEN: the value's opening \" is never closed",
        ),
        (
            format!("CLOUDFLARE_EMAIL=a@b.co\nCLOUDFLARE_GLOBAL_KEY {SECRET}\n"),
            "line 2: CLOUDFLARE_GLOBAL_KEY: has no `=`",
        ),
        (
            format!("CLOUDFLARE_API_TOKEN='{SECRET}\nA=1\n"),
            "line 1: CLOUDFLARE_API_TOKEN: the value's opening ' is never closed",
        ),
    ];
    for (text, want) in cases {
        std::fs::write(w.file(".env"), &text).unwrap();
        let run = w.run(w.bare().arg("test-permissions")).expect_code(2);
        let err = run.stderr();
        assert!(
            err.contains(&format!(
                "cfsetup: error: .env is not a valid .env file: {want}"
            )),
            "{err}"
        );
        assert!(
            !err.contains("Zq8s") && !run.stdout().contains("Zq8s"),
            "{err}"
        );
        // Commands that need no credentials do not read it at all.
        w.run(w.bare().arg("permissions")).success();
        w.run(w.bare().args(["completions", "bash"])).success();
    }
    // A secret pasted into the wrong setting is not echoed by that setting's error either.
    std::fs::write(w.file(".env"), format!("CLOUDFLARE_ZONE_ID={SECRET}\n")).unwrap();
    let run = w.run(w.bare().arg("test-permissions")).expect_code(2);
    assert!(
        run.stderr()
            .contains("CLOUDFLARE_ZONE_ID is not a valid ID: (not shown"),
        "{}",
        run.stderr()
    );
    assert!(!run.stderr().contains("Zq8s"), "{}", run.stderr());
    assert!(w.emu.requests().is_empty(), "no request may be sent");
}

/// Item 1: a UTF-8 byte-order mark at the start of `.env` is accepted.
#[test]
fn item1_a_byte_order_mark_is_accepted() {
    let w = World::new();
    let token = w.full_token();
    std::fs::write(
        w.file(".env"),
        format!(
            "\u{feff}CLOUDFLARE_ACCOUNT_ID={}\nCLOUDFLARE_ZONE_ID={}\nexport CLOUDFLARE_API_TOKEN={token}\n",
            w.account_id(),
            w.zone_id()
        ),
    )
    .unwrap();
    let run = w
        .run(w.bare().args(["test-permissions", "--read-only"]))
        .success();
    assert!(run.stdout().contains("checks passed"), "{}", run.stdout());
}

/// The `cfut_…` values in a file, in order.
fn token_values(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == '=')
        .filter(|w| w.starts_with("cfut_"))
        .map(str::to_string)
        .collect()
}

/// Item 2: two `create-token --write-env` at once into the same file lose no value: the write is
/// locked, and the value the other run wrote meanwhile is kept as a commented line.
#[test]
fn item2_two_concurrent_write_envs_lose_no_token() {
    let mut options = cfsetup_emulator::Options::new();
    options.latency = std::time::Duration::from_millis(150);
    let w = World::with_options(options);
    std::fs::write(
        w.file("cc.env"),
        "# ci\nexport CLOUDFLARE_API_TOKEN=cfut_old\n",
    )
    .unwrap();
    let spawn = |name: &str| {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("cfsetup"));
        let seed = w.emu.seed();
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .env("CLOUDFLARE_API_BASE_URL", w.emu.base_url())
            .env("CLOUDFLARE_ACCOUNT_ID", w.account_id())
            .env("CLOUDFLARE_ZONE_ID", w.zone_id())
            .env("CLOUDFLARE_EMAIL", &seed.email)
            .env("CLOUDFLARE_GLOBAL_KEY", &seed.global_key)
            .current_dir(w.path())
            .args(["create-token", "--name", name, "--expires-in", "1d"])
            .args(["--write-env", "cc.env", "--no-test", "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("cc-a"), spawn("cc-b"));
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(w.file("cc.env")).unwrap();
    // The value both runs replaced is kept too, commented and dated (issue 17).
    assert!(
        text.contains("# export CLOUDFLARE_API_TOKEN=cfut_old"),
        "{text}"
    );
    let values: Vec<String> = token_values(&text)
        .into_iter()
        .filter(|v| v != "cfut_old")
        .collect();
    assert_eq!(values.len(), 2, "both new values are in the file:\n{text}");
    assert_ne!(values[0], values[1]);
    assert!(
        text.contains("# export CLOUDFLARE_API_TOKEN=cfut_"),
        "{text}"
    );
    // The token's id goes beside it under the same lock: the id of the value that won.
    let (_, id) = text
        .rsplit_once(&format!(
            "\nexport CLOUDFLARE_API_TOKEN={}\nCLOUDFLARE_API_TOKEN_ID=",
            values[1]
        ))
        .unwrap_or_else(|| panic!("{text}"));
    let winner = cfsetup::cloudflare::Client::new(
        &url::Url::parse(&w.emu.base_url()).unwrap(),
        cfsetup::cloudflare::Auth::Token(cfsetup::secret::Secret::new(values[1].clone())),
        cfsetup::cloudflare::ClientOptions::default(),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(
        format!("{}\n", rt.block_on(winner.verify_token()).unwrap().id),
        id
    );
    for v in &values {
        w.secret(v);
        w.run(w.with_token(v).args(["test-permissions", "--read-only"]))
            .success();
    }
}

/// Item 2: a symlinked `.env` is updated where it points, and `export ` is kept.
#[cfg(unix)]
#[test]
fn item2_a_symlinked_env_file_stays_a_link() {
    let w = World::new();
    std::fs::create_dir(w.file("private")).unwrap();
    std::fs::write(
        w.file("private/cf.env"),
        "export CLOUDFLARE_API_TOKEN=cfut_0ld0000000000000000000000000000000000000000000\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("private/cf.env", w.file(".env")).unwrap();
    w.run(w.with_global_key().args([
        "create-token",
        "--name",
        "linked",
        "--expires-in",
        "1d",
        "--write-env",
        "--no-test",
    ]))
    .success();
    let meta = std::fs::symlink_metadata(w.file(".env")).unwrap();
    assert!(meta.file_type().is_symlink(), ".env is still a link");
    let text = std::fs::read_to_string(w.file("private/cf.env")).unwrap();
    // The replaced value is kept, commented and dated (issue 17); one value is live.
    let live: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("CLOUDFLARE_API_TOKEN=") && !l.starts_with('#'))
        .collect();
    assert_eq!(live.len(), 1, "{text}");
    assert!(
        live[0].starts_with("export CLOUDFLARE_API_TOKEN=cfut_") && !live[0].contains("cfut_0ld"),
        "replaced: {text}"
    );
    assert!(
        text.contains("# export CLOUDFLARE_API_TOKEN=cfut_0ld"),
        "{text}"
    );
}

/// Item 3: a `--write-env` target that cannot be written is refused before any request, so no
/// token exists whose value would have to go to stdout.
#[test]
fn item3_an_unwritable_write_env_is_refused_before_any_request() {
    let w = World::new();
    std::fs::create_dir(w.file("adir")).unwrap();
    for target in ["no/such/folder/.env", "adir"] {
        let run = w
            .run(w.with_global_key().args([
                "create-token",
                "--name",
                "x",
                "--write-env",
                target,
                "--no-test",
            ]))
            .expect_code(2);
        assert!(
            run.stderr().contains(&format!(
                "cfsetup: error: --write-env {target}: cannot write it"
            )),
            "{}",
            run.stderr()
        );
        assert!(!run.stdout().contains("cfut_"));
        let run = w
            .run(
                w.with_global_key()
                    .args(["rotate-token", "--name", "x", "--write-env", target]),
            )
            .expect_code(2);
        assert!(run.stderr().contains("cannot write it"), "{}", run.stderr());
    }
    assert!(w.emu.requests().is_empty(), "no request may be sent");
}

/// Item 5: with `--json`, an error is JSON on stdout too, with its exit status.
#[test]
fn item5_json_errors_are_json_on_stdout_with_the_exit_code() {
    let w = World::new();
    // Bad configuration: exit 2.
    let run = w
        .run(
            w.bare()
                .args(["--json", "--account-id", "nope", "test-permissions"]),
        )
        .expect_code(2);
    let j = run.json();
    assert_eq!(j["error"]["kind"], "usage", "{j}");
    assert_eq!(j["error"]["exit_code"], 2);
    assert_eq!(
        j["error"]["message"],
        "--account-id is not a valid ID: \"nope\""
    );
    assert!(j["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("32 lowercase hex"));
    assert!(
        run.stderr().starts_with("cfsetup: error: --account-id"),
        "stderr too"
    );
    // The API refuses: exit 1.
    let run = w
        .run(
            w.with_token("cfut_thisisnotarealtoken0000000000000000000000")
                .args(["test-permissions", "--json"]),
        )
        .expect_code(1);
    let j = run.json();
    assert_eq!(j["error"]["exit_code"], 1, "{j}");
    assert_eq!(j["error"]["kind"], "api", "{j}");
    // A command line clap refuses: exit 2, JSON too.
    let run = w
        .run(w.bare().args(["deploy-infra", "--json", "--no-such-flag"]))
        .expect_code(2);
    let j = run.json();
    assert_eq!(j["error"]["kind"], "usage", "{j}");
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--no-such-flag"),
        "{j}"
    );
}

/// The demo folders left in `tmp`.
fn demo_dirs(tmp: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("cfsetup-demo-"))
        .collect()
}

/// Item 6: the demo uses nothing of the user's settings, checks DIR first, and removes its temp
/// state when it fails (and keeps it when it succeeds).
#[test]
fn item6_the_demo_ignores_user_settings_checks_dir_and_cleans_up_on_failure() {
    let w = World::new();
    let tmp = w.file("tmp");
    std::fs::create_dir(&tmp).unwrap();
    std::fs::write(w.file(".env"), "CLOUDFLARE_API_TOKEN=\"unclosed\n").unwrap();
    let demo = || {
        let mut cmd = w.bare();
        cmd.env("TMPDIR", &tmp)
            .env("CLOUDFLARE_ACCOUNT_ID", "bad")
            .env("CLOUDFLARE_API_TOKEN", "x")
            .arg("demo");
        cmd
    };
    // A missing DIR: exit 2 before anything starts, nothing left behind.
    let run = w.run(demo().arg("/nonexistent")).expect_code(2);
    assert!(
        run.stderr()
            .starts_with("cfsetup: error: DIR /nonexistent:"),
        "{}",
        run.stderr()
    );
    assert!(
        !run.stderr().contains("step"),
        "no step ran: {}",
        run.stderr()
    );
    std::fs::write(w.file("afile"), "x").unwrap();
    w.run(demo().arg("afile")).expect_code(2);
    assert_eq!(demo_dirs(&tmp), Vec::<String>::new());
    // A demo that fails part-way removes its state.
    std::fs::create_dir(w.file("empty")).unwrap();
    w.run(demo().args(["-q", "empty"])).expect_code(2);
    assert_eq!(demo_dirs(&tmp), Vec::<String>::new(), "removed on failure");
    // The user's broken .env and bad environment do not stop it; its state is kept on success.
    w.run(demo().arg("-q")).success();
    assert_eq!(demo_dirs(&tmp).len(), 1, "kept on success");
    assert!(w.emu.requests().is_empty());
}

/// Item 7: durations and dates out of range are exit 2 before any request, never a panic.
#[test]
fn item7_out_of_range_durations_and_dates_exit_2() {
    let w = World::new();
    for args in [
        &["create-token", "--name", "t", "--expires-in", "99999y"][..],
        &[
            "create-token",
            "--name",
            "t",
            "--expires-in",
            "18446744073709551615s",
        ],
        &[
            "create-token",
            "--name",
            "t",
            "--expires-on",
            "99999-01-01T00:00:00Z",
        ],
        &[
            "create-token",
            "--name",
            "t",
            "--expires-on",
            "1969-01-01T00:00:00Z",
        ],
    ] {
        let run = w.run(w.with_global_key().args(args)).expect_code(2);
        assert!(
            run.stderr().starts_with("cfsetup: error: --expires-"),
            "{}",
            run.stderr()
        );
        assert!(!run.stderr().contains("panicked"), "{}", run.stderr());
    }
    std::fs::create_dir(w.file("site")).unwrap();
    std::fs::write(w.file("site/index.html"), "hi").unwrap();
    let run = w
        .run(
            w.with_token("cfut_thisisnotarealtoken0000000000000000000000")
                .args([
                    "deploy-site",
                    "site",
                    "acme",
                    "shop.example.com",
                    "--wait",
                    "99999y",
                ]),
        )
        .expect_code(2);
    assert!(
        run.stderr().contains("at most 100 years"),
        "{}",
        run.stderr()
    );
    w.run(w.bare().args(["emulator", "--latency-ms", "99999999999"]))
        .expect_code(2);
    assert!(w.emu.requests().is_empty(), "no request may be sent");
}

/// Item 9: userinfo in the API URL, empty flag values, and implausible credentials are refused
/// locally, with what a real credential looks like, and never echoed.
#[test]
fn item9_bad_urls_empty_flags_and_implausible_credentials_exit_2() {
    let w = World::new();
    let token = w.full_token();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "--api-url".into(),
                format!("http://user:hunter2@{}", &w.emu.base_url()[7..]),
                "test-permissions".into(),
            ],
            "--api-url must not contain a user name or password",
        ),
        (
            vec!["--zone-id".into(), String::new(), "test-permissions".into()],
            "--zone-id is empty",
        ),
        (
            vec!["test-permissions".into(), "--platform-domain=".into()],
            "--platform-domain is empty",
        ),
        (
            vec!["--api-token".into(), "q".into(), "test-permissions".into()],
            "--api-token does not look like an API token (1 character)",
        ),
        (
            vec![
                "--api-token".into(),
                "a".repeat(5000),
                "test-permissions".into(),
            ],
            "--api-token does not look like an API token (5000 characters)",
        ),
        (
            vec![
                "--email".into(),
                "a@b.co".into(),
                "--global-key".into(),
                "short".into(),
                "test-permissions".into(),
            ],
            "--global-key does not look like a Global API Key (5 characters)",
        ),
        (
            vec!["rollback".into(), "acme".into(), String::new()],
            "VERSION is empty",
        ),
    ];
    for (args, want) in cases {
        let run = w.run(w.with_token(&token).args(&args)).expect_code(2);
        assert!(
            run.stderr().starts_with(&format!("cfsetup: error: {want}")),
            "{args:?}: {}",
            run.stderr()
        );
        assert!(!run.stderr().contains("hunter2") && !run.stderr().contains("short\""));
    }
    let run = w
        .run(w.bare().args([
            "--global-key",
            "short",
            "--email",
            "a@b.co",
            "test-permissions",
        ]))
        .expect_code(2);
    assert!(
        run.stderr().contains("37 to 45 hexadecimal characters"),
        "{}",
        run.stderr()
    );
    assert!(w.emu.requests().is_empty(), "no request may be sent");
}

/// Item 14: a token created without an expiry is warned about, with `--expires-in 1y` suggested.
#[test]
fn item14_a_token_without_expiry_is_warned_about() {
    let w = World::new();
    let run = w
        .run(
            w.with_global_key()
                .args(["create-token", "--name", "forever", "--no-test"]),
        )
        .success();
    assert!(
        run.stderr()
            .contains("cfsetup: warning: the token will never expire")
            && run.stderr().contains("--expires-in 1y"),
        "{}",
        run.stderr()
    );
    let run = w
        .run(w.with_global_key().args([
            "create-token",
            "--name",
            "yearly",
            "--expires-in",
            "1y",
            "--no-test",
        ]))
        .success();
    assert!(!run.stderr().contains("never expire"), "{}", run.stderr());
}

/// Item 4: `--help` says that secrets on the command line are visible in `ps`, and `--api-token -`
/// reads the token from stdin.
#[test]
fn item4_secrets_can_come_from_stdin_and_help_warns_about_ps() {
    let w = World::new();
    let help = w.run(w.bare().arg("--help")).success().stdout();
    let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
    assert_eq!(
        help.matches("visible to other users in `ps`").count(),
        2,
        "{help}"
    );
    let token = w.full_token();
    let run = w
        .run(
            w.ids()
                .args(["--api-token", "-", "test-permissions", "--read-only"])
                .write_stdin(format!("{token}\n")),
        )
        .success();
    assert!(run.stdout().contains("checks passed"), "{}", run.stdout());
    let run = w
        .run(
            w.ids()
                .args(["--api-token", "-", "test-permissions"])
                .write_stdin(""),
        )
        .expect_code(2);
    assert!(
        run.stderr().contains("--api-token -: stdin is empty"),
        "{}",
        run.stderr()
    );
}

/// Item 10: test-permissions reports as "could not delete" only what exists: a temporary resource
/// whose creation was refused with 403 was never created.
#[test]
fn item10_refused_creates_are_not_reported_as_left_behind() {
    let w = World::new();
    for missing in [
        "Workers Scripts Write",
        "Workers R2 Storage Write",
        "Workers Routes Write",
    ] {
        let token = w.token_without(missing);
        let run = w
            .run(
                w.with_token(&token)
                    .env("PLATFORM_DOMAIN", w.zone_name())
                    .args(["--json", "test-permissions"]),
            )
            .expect_code(3);
        let j = run.json();
        assert_eq!(
            j["left_behind"],
            serde_json::json!([]),
            "without {missing}: {j}"
        );
        assert!(
            !run.stderr().contains("could not delete"),
            "without {missing}: {}",
            run.stderr()
        );
    }
}

/// Item 11: messages say what is really wrong: `example.123` is not "an IP address", and a loop
/// of links is not a link that "points nowhere".
#[test]
fn item11_messages_say_what_is_really_wrong() {
    let w = World::new();
    let token = w.full_token();
    std::fs::create_dir(w.file("site")).unwrap();
    std::fs::write(w.file("site/index.html"), "hi").unwrap();
    let run = w
        .run(
            w.with_token(&token)
                .args(["deploy-site", "site", "acme", "example.123"]),
        )
        .expect_code(2);
    assert!(run.stderr().contains("is all digits"), "{}", run.stderr());
    assert!(!run.stderr().contains("IP address"), "{}", run.stderr());
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("b.html", w.file("site/a.html")).unwrap();
        std::os::unix::fs::symlink("a.html", w.file("site/b.html")).unwrap();
        // (No bucket exists, so it fails later; the walk's warnings come first.)
        let run = w.run(
            w.with_token(&token)
                .env("PLATFORM_DOMAIN", w.zone_name())
                .args(["deploy-site", "site", "acme", "--dry-run"]),
        );
        assert!(
            run.stderr().contains("/a.html (a loop of links)"),
            "{}",
            run.stderr()
        );
        assert!(!run.stderr().contains("points nowhere"), "{}", run.stderr());
    }
}

/// A world with the platform's bucket made, and a full token.
fn with_bucket() -> (World, String) {
    let w = World::new();
    let token = w.full_token();
    let client = cfsetup::cloudflare::Client::new(
        &url::Url::parse(&w.emu.base_url()).unwrap(),
        cfsetup::cloudflare::Auth::Token(cfsetup::secret::Secret::new(token.clone())),
        cfsetup::cloudflare::ClientOptions::default(),
    )
    .unwrap();
    let account = w.account_id();
    crate::test_permissions::rt().block_on(async {
        let b = cfsetup::cloudflare::r2::BucketRef {
            account: &account,
            name: "cfsetup-sites",
            jurisdiction: None,
        };
        client.create_bucket(b, None).await.unwrap();
    });
    w.emu.clear_requests();
    (w, token)
}

/// Item 12: nothing is published without a word: NFC/NFD twins and names with a newline, tab or
/// backslash are refused (exit 2, no request); node_modules is skipped and said so; .well-known
/// is published; a folder without index.html is warned about.
#[test]
fn item12_files_are_not_published_without_a_word() {
    let (w, token) = with_bucket();
    let site = |files: &[(&str, &str)]| {
        let dir = w.file("site");
        let _ = std::fs::remove_dir_all(&dir);
        for (rel, body) in files {
            let p = dir.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
    };
    let deploy = |extra: &[&str]| {
        let mut cmd = w.with_token(&token);
        cmd.env("PLATFORM_DOMAIN", w.zone_name())
            .args(["--json", "deploy-site", "site", "acme"])
            .args(extra);
        w.run(&mut cmd)
    };
    for files in [
        &[
            ("index.html", "x"),
            ("cafe\u{301}.html", "nfd"),
            ("caf\u{e9}.html", "nfc"),
        ][..],
        &[("index.html", "x"), ("new\nline.html", "x")],
        &[("index.html", "x"), ("tab\t.html", "x")],
        &[("index.html", "x"), ("a\\b.html", "x")],
    ] {
        site(files);
        let run = deploy(&[]).expect_code(2);
        assert!(
            run.stderr().starts_with("cfsetup: error: "),
            "{}",
            run.stderr()
        );
        assert!(w.emu.requests().is_empty(), "no request: {}", run.stderr());
    }
    site(&[
        ("index.html", "x"),
        ("cafe\u{301}.html", "nfd"),
        (".well-known/security.txt", "Contact: mailto:x@example.com"),
        ("node_modules/left-pad/index.js", "js"),
    ]);
    let run = deploy(&[]).success();
    assert_eq!(run.json()["files"], 3, "{}", run.stdout());
    assert!(run.stderr().contains("/node_modules"), "{}", run.stderr());
    site(&[("about.html", "x")]);
    let run = deploy(&[]).success();
    assert!(run.stderr().contains("no index.html"), "{}", run.stderr());
}

/// Item 13: `emulator --help` (and the other commands that need no account) list only the global
/// options they honour, and refuse the others; `man` is listed in `--help`.
#[test]
fn item13_help_lists_only_honoured_options_and_man_is_listed() {
    let w = World::new();
    let help = w
        .run(w.bare().args(["emulator", "--help"]))
        .success()
        .stdout();
    for ignored in [
        "--account-id",
        "--api-token",
        "--global-key",
        "--json",
        "--env-file",
        "--api-url",
    ] {
        assert!(!help.contains(ignored), "{ignored} in:\n{help}");
    }
    assert!(
        help.contains("--port") && help.contains("--quiet"),
        "{help}"
    );
    let help = w
        .run(w.bare().args(["permissions", "--help"]))
        .success()
        .stdout();
    assert!(
        !help.contains("--api-token") && help.contains("--json"),
        "{help}"
    );
    let help = w
        .run(w.bare().args(["deploy-site", "--help"]))
        .success()
        .stdout();
    assert!(
        help.contains("--api-token") && help.contains("--json"),
        "{help}"
    );
    let run = w
        .run(
            w.bare()
                .args(["emulator", "--api-token", "x", "--port", "0"]),
        )
        .expect_code(2);
    assert!(
        run.stderr()
            .starts_with("cfsetup: error: `cfsetup emulator` does not use --api-token"),
        "{}",
        run.stderr()
    );
    w.run(w.bare().args(["--zone-id", "x", "permissions"]))
        .expect_code(2);
    let top = w.run(w.bare().arg("--help")).success().stdout();
    assert!(top.contains("\n  man "), "{top}");
}

/// Item 8: what needs only the zone's name is checked once it is known, before the first write:
/// a fallback origin outside the zone creates nothing.
#[test]
fn item8_a_fallback_origin_outside_the_zone_creates_nothing() {
    let w = World::new();
    let token = w.full_token();
    let run = w
        .run(w.with_token(&token).args([
            "deploy-infra",
            "--fallback-origin",
            "fallback.example.com",
        ]))
        .expect_code(1);
    assert!(
        run.stderr().contains(&format!(
            "--fallback-origin fallback.example.com is not in the zone {}",
            w.zone_name()
        )),
        "{}",
        run.stderr()
    );
    assert_eq!(w.writes().len(), 0, "nothing was created: {:?}", w.writes());
    assert!(w.emu.buckets().is_empty());
}

/// Item 8: create-token checks what the zone's name decides (PLATFORM_DOMAIN in the zone) before
/// the token exists.
#[test]
fn item8_create_token_checks_the_zone_before_the_token_exists() {
    let w = World::new();
    let run = w
        .run(
            w.with_global_key()
                .env("PLATFORM_DOMAIN", "example.com")
                .args(["create-token", "--name", "p", "--expires-in", "1d"]),
        )
        .expect_code(1);
    assert!(
        run.stderr()
            .contains("PLATFORM_DOMAIN example.com is not in the zone"),
        "{}",
        run.stderr()
    );
    assert_eq!(
        w.writes().len(),
        0,
        "no token was created: {:?}",
        w.writes()
    );
}
