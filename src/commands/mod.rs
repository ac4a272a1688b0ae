//! One file per command. A command reads the [`Config`], plans, applies through the
//! [`Client`](crate::cloudflare::Client), and returns a [`Report`]; it never prints to stdout.
//!
//! It imports every layer below `commands`; no layer below may import it.

use std::collections::HashMap;

use crate::cli::{Cli, Command};
use crate::cloudflare::{Auth, Client, ClientOptions};
use crate::config::Config;
use crate::error::{usage, UsageError};
use crate::output::{self, Report, Ui};
use crate::storage::open::via_s3_needs_a_token;

pub mod bucket;
pub mod create_token;
pub mod demo;
pub mod deploy_infra;
pub mod deploy_site;
pub mod deploy_sites;
pub mod destroy_infra;
pub mod doctor;
pub mod domains;
pub mod emulator;
pub mod gc;
pub mod head;
pub mod permissions;
pub mod remove_domain;
pub mod remove_preview;
pub mod remove_site;
pub mod rollback;
pub mod rotate_token;
pub mod sites;
pub mod test_permissions;

/// SIGINT (Ctrl-C) and SIGTERM (a cancelled CI job, Kubernetes, `kill`), listened for from the
/// start of a run, so a command that writes can stop cleanly, say what it did, and exit 130.
pub(crate) struct Interrupt {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    /// Which one arrived: "Ctrl-C" or "SIGTERM".
    got: &'static str,
}

impl Interrupt {
    pub(crate) fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Interrupt {
                int: signal(SignalKind::interrupt()).ok(),
                term: signal(SignalKind::terminate()).ok(),
                got: "Ctrl-C",
            }
        }
        #[cfg(not(unix))]
        {
            Interrupt { got: "Ctrl-C" }
        }
    }

    /// Resolves when a signal arrives (never, if none can be listened for).
    pub(crate) async fn wait(&mut self) {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            }
            tokio::select! {
                () = recv(&mut self.int) => self.got = "Ctrl-C",
                () = recv(&mut self.term) => self.got = "SIGTERM",
            }
        }
        #[cfg(not(unix))]
        {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// The signal that arrived, for messages.
    pub(crate) fn signal(&self) -> &'static str {
        self.got
    }
}

/// Runs the parsed command line and returns the exit status.
pub fn main(cli: Cli) -> anyhow::Result<u8> {
    // These need no configuration at all.
    match &cli.command {
        Command::Completions(args) => {
            // Into a buffer first: clap_complete panics on a failed write, and a closed pipe
            // (`cfsetup completions bash | head`) must be a quiet exit 0, not a panic.
            let mut cmd = crate::cli::command();
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut cmd, "cfsetup", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script)?;
            return Ok(0);
        }
        Command::Man => {
            clap_mangen::Man::new(crate::cli::command()).render(&mut std::io::stdout())?;
            return Ok(0);
        }
        _ => {}
    }
    let config = if needs_credentials(&cli.command) {
        let process_env: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Config::load(&cli.global, process_env)?
    } else {
        Config::offline(&cli.global)
    };
    let ui = Ui::new(config.output);
    output::init_logger(&config.output);
    for n in &config.notes {
        ui.note(n);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()?;
    let report = runtime.block_on(run(cli.command, &config, &ui))?;
    if let Some(report) = report {
        output::emit(report.as_ref(), &config.output)?;
        return Ok(report.exit_code());
    }
    Ok(0)
}

/// Whether the command talks to the user's account. The others (`permissions`, `demo`,
/// `emulator`, `completions`, `man`) read neither the environment nor `.env`.
pub fn needs_credentials(command: &Command) -> bool {
    !matches!(
        command,
        Command::Permissions(_)
            | Command::Demo(_)
            | Command::Emulator(_)
            | Command::Completions(_)
            | Command::Man
    )
}

/// Runs one command. `None` means the command wrote its own output (the emulator).
pub async fn run(
    command: Command,
    config: &Config,
    ui: &Ui,
) -> anyhow::Result<Option<Box<dyn Report>>> {
    match command {
        Command::Emulator(args) => {
            emulator::run(&args, ui).await?;
            Ok(None)
        }
        Command::Completions(_) | Command::Man => Ok(None),
        Command::CreateToken(args) => create_token::run(args, config, ui).await.map(Some),
        Command::TestPermissions(args) => test_permissions::run(args, config, ui).await.map(Some),
        Command::RotateToken(args) => rotate_token::run(args, config, ui).await.map(Some),
        Command::Permissions(args) => permissions::run(args, config, ui).await.map(Some),
        Command::DeployInfra(args) => deploy_infra::run(args, config, ui).await.map(Some),
        Command::DeploySite(args) => deploy_site::run(args, config, ui).await.map(Some),
        Command::DeploySites(args) => deploy_sites::run(args, config, ui).await.map(Some),
        Command::DestroyInfra(args) => destroy_infra::run(args, config, ui).await.map(Some),
        Command::Rollback(args) => rollback::run(args, config, ui).await.map(Some),
        Command::Sites(args) => sites::run(args, config, ui).await.map(Some),
        Command::Domains(args) => domains::run(args, config, ui).await.map(Some),
        Command::RemoveSite(args) => remove_site::run(args, config, ui).await.map(Some),
        Command::RemovePreview(args) => remove_preview::run(args, config, ui).await.map(Some),
        Command::RemoveDomain(args) => remove_domain::run(args, config, ui).await.map(Some),
        Command::Gc(args) => gc::run(args, config, ui).await.map(Some),
        Command::Doctor(args) => doctor::run(args, config, ui).await.map(Some),
        Command::Demo(args) => demo::run(args, config, ui).await.map(Some),
    }
}

/// The credentials a platform command (test-permissions, deploy-*) uses: the API token, or, when
/// there is none, the Global API Key with its email.
pub fn platform_auth(config: &Config, ui: &Ui) -> Result<Auth, UsageError> {
    let c = &config.credentials;
    if let Some(token) = &c.token {
        return Ok(Auth::Token(token.clone()));
    }
    match (&c.email, &c.global_key) {
        (Some(_), Some(_)) if config.via == crate::cli::Via::S3 => Err(via_s3_needs_a_token()),
        (Some(email), Some(key)) => {
            ui.note(
                "no API token is set; using the Global API Key (a scoped token is safer). Objects \
                 then go over the REST API, paced to 1,200 requests per 5 minutes, and two runs \
                 of one tenant at once are not safe (R2's S3 API needs a token)",
            );
            Ok(Auth::GlobalKey {
                email: email.clone(),
                key: key.clone(),
            })
        }
        (None, Some(_)) => Err(
            usage!("CLOUDFLARE_GLOBAL_KEY is set but CLOUDFLARE_EMAIL is not").with_hint(
                "the Global API Key is used with the account's email; set both, or use a token",
            ),
        ),
        _ => Err(
            usage!("no credentials: set CLOUDFLARE_API_TOKEN (or pass --api-token)").with_hint(
                "create the token with `cfsetup create-token`; see `cfsetup permissions`",
            ),
        ),
    }
}

/// Over REST a conditional write is checked just before it is made, not by R2 (docs/storage-layout.md
/// "Over the REST API"): two runs switching one tenant's head at once can both report success,
/// and one is silently lost. Said once per run, by deploy-site and rollback, before the switch.
pub fn warn_rest_switch(storage: &crate::storage::Storage, tenant: &str, ui: &Ui) {
    if !storage.conditional_writes_are_atomic() {
        ui.warn(format!(
            "objects go over the REST API, where the switch of {tenant}'s head is checked just \
             before it is written, not atomically: do not run two deploys or rollbacks of {tenant} \
             at once, or one may be lost while both report success (with an API token, R2's S3 \
             API makes the switch safe)"
        ));
    }
}

/// The DNS server `--dns-server` / `CFSETUP_DNS_SERVER` names, unless `--no-dns` (exit 2 on a bad
/// address, before any request). deploy-site and domains share it.
pub(crate) fn dns_server(
    config: &Config,
    args: &crate::cli::DnsArgs,
) -> Result<Option<std::net::SocketAddr>, crate::error::UsageError> {
    if args.no_dns {
        return Ok(None);
    }
    config
        .setting(args.dns_server.as_deref(), "CFSETUP_DNS_SERVER")
        .map(|s| crate::dns::server(&s))
        .transpose()
}

/// A client for this run, logging requests with `-v`.
pub fn client(config: &Config, auth: Auth, max_in_flight: usize) -> anyhow::Result<Client> {
    let options = ClientOptions {
        max_in_flight,
        ..ClientOptions::default()
    };
    Ok(Client::new(&config.api_url, auth, options)?)
}
