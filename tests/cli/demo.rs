//! `cfsetup demo`: the whole flow against its own in-process emulator, with no account and none of
//! the user's settings.

use crate::common::World;

#[test]
fn the_demo_runs_every_step_and_the_second_deploy_uploads_nothing() {
    let w = World::new();
    // The user's own settings must not leak into the demo: point them somewhere broken.
    std::fs::write(w.file(".env"), "CLOUDFLARE_API_TOKEN=users-real-token\n").unwrap();
    let run = w
        .run(
            w.bare()
                .env("TMPDIR", w.path())
                .env(
                    "CLOUDFLARE_API_BASE_URL",
                    "https://api.cloudflare.com/client/v4",
                )
                .args(["demo", "--json"]),
        )
        .success();
    let report = run.json();
    let steps = report["steps"].as_array().expect("steps");
    let titles: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(
        titles,
        [
            "create-token (Method 1: Global API Key)",
            "test-permissions",
            "deploy-infra",
            "deploy-site",
            "deploy-site again: unchanged"
        ]
    );
    for step in steps {
        assert_eq!(step["exit_code"], 0, "{}", step["step"]);
    }
    let first = &steps[3]["report"];
    let second = &steps[4]["report"];
    assert_eq!(first["uploaded"], 7, "{first}");
    assert_eq!(second["uploaded"], 0, "{second}");
    assert_eq!(second["unchanged"], 7, "{second}");

    // The state is kept where the report says, with the token in a private .env.
    let dir = std::path::PathBuf::from(report["state_dir"].as_str().unwrap());
    assert!(dir.starts_with(w.path()));
    assert!(dir.join("emulator-state.json").is_file());
    let env = std::fs::read_to_string(dir.join(".env")).unwrap();
    assert!(env.contains("CLOUDFLARE_API_TOKEN=cfut_"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(".env"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The demo never talked to the test's own emulator (or anything else).
    assert!(w.emu.requests().is_empty());
}

#[test]
fn the_demo_publishes_a_given_folder() {
    let w = World::new();
    std::fs::create_dir_all(w.file("mysite")).unwrap();
    std::fs::write(w.file("mysite/index.html"), "<h1>mine</h1>").unwrap();
    let run = w
        .run(
            w.bare()
                .env("TMPDIR", w.path())
                .args(["demo", "mysite", "--json"]),
        )
        .success();
    let report = run.json();
    assert_eq!(report["steps"][3]["report"]["files"], 1, "{report}");
}
