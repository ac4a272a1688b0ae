//! `cfsetup rotate-token`: rolls a token's secret by ID or unique name; the old value stops working,
//! the permissions stay; `--write-env` and `--dry-run`.

use serde_json::json;

use crate::common::{World, EIGHT};

#[test]
fn rolling_by_name_invalidates_the_old_value_and_keeps_the_permissions() {
    let w = World::new();
    let (id, old) = w.emu.mint_token("platform", w.policies(&EIGHT));
    w.secret(&old);
    w.run(w.with_token(&old).arg("test-permissions")).success();

    let run = w
        .run(
            w.with_global_key()
                .args(["--json", "rotate-token", "--name", "platform"]),
        )
        .success();
    let j = run.json();
    assert_eq!(j["id"], id.as_str());
    assert_eq!(j["verified"], true);
    let new = j["value"].as_str().unwrap().to_string();
    assert!(new.starts_with("cfut_") && new != old);

    let run = w
        .run(w.with_token(&old).arg("test-permissions"))
        .expect_code(1);
    assert!(
        run.stderr().contains("Invalid API Token"),
        "{}",
        run.stderr()
    );
    let run = w.run(w.with_token(&new).arg("test-permissions")).success();
    assert!(run.stdout().ends_with("8/8 checks passed\n"));
    assert_eq!(w.emu.token_names(), ["platform"]);
}

#[test]
fn rolling_by_id_with_a_token_writes_the_env_file() {
    let w = World::new();
    let (id, old) = w.emu.mint_token("platform", w.policies(&EIGHT));
    w.secret(&old);
    let writer_group = w
        .emu
        .permission_group_id("API Tokens Write", "com.cloudflare.api.user")
        .unwrap();
    let (_, writer) = w.emu.mint_token(
        "writer",
        json!([{
            "effect": "allow",
            "resources": { format!("com.cloudflare.api.user.{}", w.emu.seed().user_id): "*" },
            "permission_groups": [{ "id": writer_group }],
        }]),
    );
    std::fs::write(
        w.file("ci.env"),
        format!("# CI\nCLOUDFLARE_API_TOKEN={old}\nX=1\n"),
    )
    .unwrap();
    let run = w
        .run(
            w.with_token(&writer)
                .args(["rotate-token", "--id", &id, "--write-env", "ci.env"]),
        )
        .success();
    assert!(!run.stdout().contains("cfut_"), "{}", run.stdout());
    assert!(run
        .stdout()
        .contains("ci.env as CLOUDFLARE_API_TOKEN (mode 0600)"));
    let text = std::fs::read_to_string(w.file("ci.env")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "# CI");
    // The replaced value is kept, commented and dated (issue 17).
    assert_eq!(lines[2], format!("# CLOUDFLARE_API_TOKEN={old}"));
    lines.drain(1..3);
    assert_eq!(lines[2], format!("CLOUDFLARE_API_TOKEN_ID={id}"));
    assert_eq!(lines[3], "X=1");
    let new = lines[1].strip_prefix("CLOUDFLARE_API_TOKEN=").unwrap();
    w.secret(new);
    assert_ne!(new, old);
    w.run(w.with_token(new).arg("test-permissions")).success();
    w.run(w.with_token(&old).arg("test-permissions"))
        .expect_code(1);
}

#[test]
fn an_ambiguous_or_unknown_name_is_refused_and_dry_run_changes_nothing() {
    let w = World::new();
    let (a, _) = w.emu.mint_token("twin", w.policies(&EIGHT));
    let (b, _) = w.emu.mint_token("twin", w.policies(&EIGHT));
    let run = w
        .run(w.with_global_key().args(["rotate-token", "--name", "twin"]))
        .expect_code(1);
    let err = run.stderr();
    assert!(err.contains("2 tokens are named \"twin\""), "{err}");
    assert!(
        err.contains(&a) && err.contains(&b) && err.contains("--id"),
        "{err}"
    );

    let run = w
        .run(
            w.with_global_key()
                .args(["rotate-token", "--name", "nobody"]),
        )
        .expect_code(1);
    assert!(run.stderr().contains("no token is named \"nobody\""));

    let (id, old) = w.emu.mint_token("platform", w.policies(&EIGHT));
    w.secret(&old);
    let run = w
        .run(
            w.with_global_key()
                .args(["rotate-token", "--name", "platform", "--dry-run"]),
        )
        .success();
    assert!(run
        .stdout()
        .contains(&format!("PUT /user/tokens/{id}/value")));
    assert!(w.writes().is_empty());
    w.run(w.with_token(&old).arg("test-permissions")).success();

    let run = w
        .run(w.with_global_key().args(["rotate-token", "--id", "nope"]))
        .expect_code(2);
    assert!(run.stderr().contains("--id is not a valid ID"));
    let run = w
        .run(w.ids().args(["rotate-token", "--name", "platform"]))
        .expect_code(2);
    assert!(
        run.stderr().contains("rotate-token needs"),
        "{}",
        run.stderr()
    );
}
