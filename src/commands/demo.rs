//! `cfsetup demo [DIR]`: the whole flow against an in-process emulator; no account needed.
//!
//! It runs the real commands through the same code as real use, in order: create-token with the
//! Global API Key (written to the demo's own `.env`), test-permissions with the new token,
//! deploy-infra, deploy-site, and deploy-site again to show that nothing is re-uploaded. It never
//! reads the user's environment or `.env`: every setting comes from the emulator, so nothing can
//! leave the machine (`main` does not even load the user's configuration for it). DIR is checked
//! before anything starts. The emulator's state is saved in the demo folder, which is kept when
//! the demo succeeds and removed when it fails.
//!
//! It runs the other commands as a user would, so it imports them; no command imports it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cfsetup_emulator::{Emulator, Options};
use serde_json::json;

use crate::cli::{
    CreateTokenArgs, DemoArgs, DeployInfraArgs, DeploySiteArgs, GlobalArgs, PlatformArgs,
    TestPermissionsArgs,
};
use crate::config::Config;
use crate::error::{usage, UsageError};
use crate::output::{Renderer, Report, Ui};

/// The tenant and domain the demo publishes.
pub const DEMO_TENANT: &str = "demo";
pub const DEMO_DOMAIN: &str = "www.demo-tenant.net";

/// The sample site, embedded so that an installed binary can run the demo anywhere.
const EMBEDDED_SITE: &[(&str, &[u8])] = &[
    (
        "index.html",
        include_bytes!("../../examples/site/index.html"),
    ),
    (
        "about.html",
        include_bytes!("../../examples/site/about.html"),
    ),
    (
        "blog/index.html",
        include_bytes!("../../examples/site/blog/index.html"),
    ),
    (
        "blog/hello-world.html",
        include_bytes!("../../examples/site/blog/hello-world.html"),
    ),
    (
        "css/site.css",
        include_bytes!("../../examples/site/css/site.css"),
    ),
    (
        "img/logo.svg",
        include_bytes!("../../examples/site/img/logo.svg"),
    ),
    ("404.html", include_bytes!("../../examples/site/404.html")),
];

struct Step {
    title: &'static str,
    report: Box<dyn Report>,
}

struct DemoReport {
    steps: Vec<Step>,
    state_dir: PathBuf,
    base_url: String,
}

impl Report for DemoReport {
    fn render(&self, out: &mut Renderer) {
        for (i, step) in self.steps.iter().enumerate() {
            out.heading(format!(
                "== Step {}/{}: {} ==",
                i + 1,
                self.steps.len(),
                step.title
            ));
            step.report.render(out);
        }
        out.heading("== Done ==");
        out.line(format!(
            "Every step ran against a local emulator; nothing left this machine. The state is in {}:",
            self.state_dir.display()
        ));
        out.pairs(&[
            (
                "emulator state",
                self.state_dir
                    .join("emulator-state.json")
                    .display()
                    .to_string(),
            ),
            (
                "the demo token",
                format!(
                    "{} (CLOUDFLARE_API_TOKEN)",
                    self.state_dir.join(".env").display()
                ),
            ),
            (
                "explore it",
                format!(
                    "cfsetup emulator --state {}",
                    self.state_dir.join("emulator-state.json").display()
                ),
            ),
        ]);
        out.line(format!("(this run's emulator was at {})", self.base_url));
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "steps": self.steps.iter().map(|s| json!({
                "step": s.title,
                "report": s.report.to_json(),
                "exit_code": s.report.exit_code(),
            })).collect::<Vec<_>>(),
            "state_dir": self.state_dir,
        })
    }

    fn exit_code(&self) -> u8 {
        self.steps
            .iter()
            .map(|s| s.report.exit_code())
            .max()
            .unwrap_or(0)
    }
}

pub async fn run(args: DemoArgs, config: &Config, ui: &Ui) -> anyhow::Result<Box<dyn Report>> {
    if let Some(dir) = &args.dir {
        check_dir(dir)?;
    }
    // Checked before the demo sends any request, so a missing Node is exit 2 up front.
    let serve = if args.serve {
        Some(serve::prerequisites()?)
    } else {
        None
    };
    let state_dir = state_dir()?;
    let result = run_in(args, config, ui, state_dir.clone(), serve).await;
    if result.is_err() {
        // A failed demo leaves nothing behind; a successful one keeps its state to explore.
        let _ = std::fs::remove_dir_all(&state_dir);
    }
    result
}

/// DIR must be a folder, checked before the emulator starts or any folder is made.
fn check_dir(dir: &Path) -> Result<(), UsageError> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(usage!("DIR {} is not a folder", dir.display()).with_hint(
            "give the folder of the site to publish, or leave DIR out for the sample site",
        )),
        Err(e) => Err(usage!("DIR {}: {e}", dir.display()).with_hint(
            "give the folder of the site to publish, or leave DIR out for the sample site",
        )),
    }
}

async fn run_in(
    args: DemoArgs,
    config: &Config,
    ui: &Ui,
    state_dir: PathBuf,
    serve: Option<PathBuf>,
) -> anyhow::Result<Box<dyn Report>> {
    let site = match args.dir {
        Some(dir) => dir,
        None => default_site(&state_dir)?,
    };

    let mut options = Options::new();
    options.port = 0;
    options.state_file = Some(state_dir.join("emulator-state.json"));
    let emulator = Emulator::start(options).context("starting the in-process emulator")?;
    let seed = emulator.seed().clone();
    let env_file = state_dir.join(".env");
    write_private(&env_file, b"# cfsetup demo: written by `cfsetup demo`\n")?;

    // Only the emulator's settings: never the user's environment or .env.
    let demo_args = |with_key: bool| GlobalArgs {
        account_id: Some(seed.account_id.clone()),
        zone_id: Some(seed.zone_id.clone()),
        email: with_key.then(|| seed.email.clone()),
        global_key: with_key.then(|| seed.global_key.clone()),
        api_url: Some(emulator.base_url()),
        s3_endpoint: Some(emulator.s3_endpoint()),
        env_file: Some(env_file.clone()),
        json: config.output.json,
        color: config.output.color,
        ..GlobalArgs::default()
    };
    let load = |with_key: bool| Config::load(&demo_args(with_key), HashMap::new());

    let mut steps = Vec::new();
    let mut step = |title: &'static str, report: Box<dyn Report>| -> anyhow::Result<()> {
        let code = report.exit_code();
        steps.push(Step { title, report });
        anyhow::ensure!(
            code == 0,
            "demo step '{title}' did not succeed (exit status {code})"
        );
        Ok(())
    };

    ui.note(format!(
        "demo: emulator at {}, state in {}",
        emulator.base_url(),
        state_dir.display()
    ));
    ui.note("demo step 1/5: create-token with the Global API Key");
    let creator = load(true)?;
    let report = super::create_token::run(
        CreateTokenArgs {
            name: "cfsetup-demo".into(),
            expires_in: Some("30d".into()),
            expires_on: None,
            allow_ip: vec![],
            write_env: Some(Some(env_file.clone())),
            replace: true,
            use_credentials: None,
            dry_run: false,
            no_test: true,
        },
        &creator,
        ui,
    )
    .await
    .context("demo step 1 (create-token)")?;
    step("create-token (Method 1: Global API Key)", report)?;

    // From here on, only the new token, read from the demo's .env as a user's would be.
    let platform = load(false)?;
    anyhow::ensure!(
        platform.credentials.token.is_some(),
        "create-token did not write CLOUDFLARE_API_TOKEN to {}",
        env_file.display()
    );

    ui.note("demo step 2/5: test-permissions with the new token");
    let report = super::test_permissions::run(
        TestPermissionsArgs {
            read_only: false,
            platform_domain: None,
        },
        &platform,
        ui,
    )
    .await
    .context("demo step 2 (test-permissions)")?;
    step("test-permissions", report)?;

    ui.note("demo step 3/5: deploy-infra");
    let report = super::deploy_infra::run(
        DeployInfraArgs {
            platform: PlatformArgs {
                fallback_origin: Some(format!("fallback.{}", seed.zone_name)),
                ..PlatformArgs::default()
            },
            bucket: None,
            location_hint: None,
            jurisdiction: None,
            take_over_routes: false,
            dry_run: false,
        },
        &platform,
        ui,
    )
    .await
    .context("demo step 3 (deploy-infra)")?;
    step("deploy-infra", report)?;

    let site_args = || DeploySiteArgs {
        dir: site.clone(),
        tenant: DEMO_TENANT.into(),
        domains: vec![DEMO_DOMAIN.into()],
        bucket: Default::default(),
        platform_domain: None,
        concurrency: 16,
        no_prune: false,
        wait: None,
        include_hidden: false,
        cname_target: None,
        preview: None,
        not_found: crate::cli::NotFoundChoice::Auto,
        protect: None,
        expires: None,
        retain: "24h".into(),
        no_retain: false,
        take_over_domain: false,
        prevalidate: false,
        dns: crate::cli::DnsArgs {
            no_dns: true,
            dns_server: None,
        },
        force: false,
        dry_run: false,
        lock_stale: None,
    };
    ui.note("demo step 4/5: deploy-site");
    let report = super::deploy_site::run(site_args(), &platform, ui)
        .await
        .context("demo step 4 (deploy-site)")?;
    step("deploy-site", report)?;

    ui.note("demo step 5/5: deploy-site again (nothing to upload)");
    let report = super::deploy_site::run(site_args(), &platform, ui)
        .await
        .context("demo step 5 (deploy-site again)")?;
    step("deploy-site again: unchanged", report)?;

    let report = DemoReport {
        steps,
        state_dir: state_dir.clone(),
        base_url: emulator.base_url(),
    };
    if let Some(worker_dir) = serve {
        // The report first, so it is read while the site is served, and is not lost to a
        // SIGTERM (with --json it stays the one JSON document, at the end).
        if !config.output.json {
            crate::output::emit(&report, &config.output)?;
            serve::run(&emulator, &worker_dir, &state_dir, args.port, ui).await?;
            return Ok(Box::new(Served {
                code: report.exit_code(),
            }));
        }
        serve::run(&emulator, &worker_dir, &state_dir, args.port, ui).await?;
    }
    Ok(Box::new(report))
}

/// After `--serve` in text mode: the demo's report was printed before serving.
struct Served {
    code: u8,
}

impl Report for Served {
    fn render(&self, out: &mut Renderer) {
        out.line("Stopped serving the demo site.");
    }
    fn to_json(&self) -> serde_json::Value {
        json!({ "served": true })
    }
    fn exit_code(&self) -> u8 {
        self.code
    }
}

/// A fresh folder for this demo's state, kept after the run.
fn state_dir() -> anyhow::Result<PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("cfsetup-demo-{stamp}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// `examples/site` when run from a checkout, else the embedded copy written to the state folder.
fn default_site(state_dir: &Path) -> anyhow::Result<PathBuf> {
    let local = PathBuf::from("examples/site");
    if local.join("index.html").is_file() {
        return Ok(local);
    }
    let dir = state_dir.join("site");
    for (rel, bytes) in EMBEDDED_SITE {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(dir)
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// `cfsetup demo --serve`: the demo site through the real router in workerd (miniflare from
/// `worker/node_modules`, run by `worker/serve.mjs`), over a copy of the emulator's bucket.
mod serve {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use anyhow::Context;
    use cfsetup_emulator::Emulator;
    use serde_json::{json, Value};

    use super::DEMO_TENANT;
    use crate::error::usage;
    use crate::output::Ui;

    const NODE_HINT: &str =
        "install Node.js 20 or newer (https://nodejs.org, or `apt-get install nodejs`), \
         then run `npm ci --prefix worker` in a cfsetup checkout";

    /// Node 20+ on PATH and a `worker/` folder with serve.mjs and miniflare installed: the
    /// folder, or a usage error (exit 2) saying what is missing and how to get it.
    pub fn prerequisites() -> anyhow::Result<PathBuf> {
        let version = match Command::new("node").arg("--version").output() {
            Ok(out) if out.status.success() => {
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            }
            _ => {
                return Err(
                    usage!("`--serve` needs Node.js, which was not found on PATH")
                        .with_hint(NODE_HINT)
                        .into(),
                )
            }
        };
        let major: u32 = version
            .trim_start_matches('v')
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        if major < 20 {
            return Err(
                usage!("`--serve` needs Node.js 20 or newer; found {version}")
                    .with_hint(NODE_HINT)
                    .into(),
            );
        }
        let candidates = [
            PathBuf::from("worker"),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("worker"),
        ];
        let Some(dir) = candidates
            .iter()
            .find(|d| d.join("serve.mjs").is_file())
            .cloned()
        else {
            return Err(usage!("`--serve` needs cfsetup's `worker/` folder (worker/serve.mjs), which was not found")
                .with_hint("run `cfsetup demo --serve` from a cfsetup checkout")
                .into());
        };
        if !dir.join("node_modules/miniflare").is_dir() {
            return Err(usage!(
                "`--serve` needs miniflare in {}, which is not installed",
                dir.join("node_modules").display()
            )
            .with_hint(format!("run `npm ci --prefix {}`", dir.display()))
            .into());
        }
        Ok(dir)
    }

    /// Writes the router script and the bucket's objects to `<state>/serve`, then runs
    /// `node worker/serve.mjs` until it exits or Ctrl-C.
    pub async fn run(
        emulator: &Emulator,
        worker_dir: &Path,
        state_dir: &Path,
        port: u16,
        ui: &Ui,
    ) -> anyhow::Result<()> {
        let dir = state_dir.join("serve");
        write_spec(emulator, &dir)?;
        ui.note(format!(
            "demo: serving the demo site through the router in workerd (copy of the bucket in {})",
            dir.display()
        ));
        let mut command = Command::new("node");
        command
            .arg(worker_dir.join("serve.mjs"))
            .arg(&dir)
            .arg("--port")
            .arg(port.to_string())
            .arg("--tenant")
            .arg(DEMO_TENANT)
            .stdin(Stdio::null());
        // Node and its workerd in a process group of their own, so a signal to cfsetup alone
        // (SIGTERM from a supervisor) is passed on to the whole group, and workerd is never
        // orphaned; a terminal's Ctrl-C reaches cfsetup, which passes it on the same way.
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        }
        let mut child = command.spawn().context("starting node worker/serve.mjs")?;
        let mut interrupt = crate::commands::Interrupt::listen();
        let status = loop {
            tokio::select! {
                () = interrupt.wait() => {
                    signal_group(child.id(), "-INT");
                    for _ in 0..50 {
                        if let Some(status) = child.try_wait()? {
                            return finish(status, true);
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    signal_group(child.id(), "-KILL");
                    let _ = child.kill();
                    child.wait()?;
                    return Ok(());
                }
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if let Some(status) = child.try_wait()? {
                        break status;
                    }
                }
            }
        };
        finish(status, false)
    }

    /// Sends `signal` (`-INT`, `-KILL`) to the process group led by `pid` (node and workerd).
    fn signal_group(pid: u32, signal: &str) {
        #[cfg(unix)]
        {
            let _ = Command::new("kill")
                .args([signal, "--", &format!("-{pid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        #[cfg(not(unix))]
        {
            let _ = (pid, signal);
        }
    }

    fn finish(status: std::process::ExitStatus, interrupted: bool) -> anyhow::Result<()> {
        anyhow::ensure!(
            interrupted || status.success(),
            "node worker/serve.mjs stopped ({status})"
        );
        Ok(())
    }

    fn write_spec(emulator: &Emulator, dir: &Path) -> anyhow::Result<()> {
        let scripts = emulator.scripts();
        let script = scripts
            .iter()
            .find(|s| s.metadata.get("main_module").and_then(Value::as_str) == Some("router.js"))
            .or_else(|| scripts.first())
            .context("deploy-infra uploaded no Worker script")?;
        let modules_dir = dir.join("modules");
        let objects_dir = dir.join("objects");
        std::fs::create_dir_all(&modules_dir)?;
        std::fs::create_dir_all(&objects_dir)?;
        let mut modules = Vec::new();
        for (i, (name, content_type, body)) in script.modules.iter().enumerate() {
            let file = format!("modules/{i}");
            std::fs::write(dir.join(&file), body)?;
            modules.push(json!({ "name": name, "content_type": content_type, "file": file }));
        }
        let bindings = script
            .metadata
            .get("bindings")
            .cloned()
            .unwrap_or(json!([]));
        let mut buckets = serde_json::Map::new();
        let mut n = 0usize;
        for b in bindings.as_array().into_iter().flatten() {
            if b.get("type").and_then(Value::as_str) != Some("r2_bucket") {
                continue;
            }
            let Some(name) = b.get("bucket_name").and_then(Value::as_str) else {
                continue;
            };
            let mut objects = Vec::new();
            for o in emulator.objects(name) {
                let file = format!("objects/{n}");
                n += 1;
                std::fs::write(dir.join(&file), &o.body)?;
                objects.push(json!({ "key": o.key, "content_type": o.content_type, "file": file }));
            }
            buckets.insert(name.to_string(), Value::Array(objects));
        }
        let meta = &script.metadata;
        let spec = json!({
            "main_module": meta["main_module"],
            "compatibility_date": meta["compatibility_date"],
            "compatibility_flags": meta.get("compatibility_flags").filter(|f| f.is_array()).cloned().unwrap_or(json!([])),
            "bindings": bindings,
            "modules": modules,
            "buckets": buckets,
        });
        std::fs::write(dir.join("serve.json"), serde_json::to_vec_pretty(&spec)?)
            .with_context(|| format!("writing {}", dir.join("serve.json").display()))?;
        Ok(())
    }
}
