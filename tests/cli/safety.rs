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
