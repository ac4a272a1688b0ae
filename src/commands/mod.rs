//! One file per command. A command reads the [`Config`], plans, applies through the
//! [`Client`](crate::cloudflare::Client), and returns a [`Report`]; it never prints to stdout.

use std::collections::HashMap;

use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::cloudflare::{Auth, Client, ClientOptions};
use crate::config::Config;
use crate::error::{usage, UsageError};
use crate::output::{self, Report, Ui};

pub mod bucket;
pub mod create_token;
pub mod demo;
pub mod deploy_infra;
pub mod deploy_site;
pub mod emulator;
pub mod gc;
pub mod permissions;
pub mod remove_domain;
pub mod remove_site;
pub mod rollback;
pub mod rotate_token;
pub mod sites;
pub mod test_permissions;

/// Runs the parsed command line and returns the exit status.
pub fn main(cli: Cli) -> anyhow::Result<u8> {
    // These need no configuration at all.
    match &cli.command {
        Command::Completions(args) => {
            let mut cmd = Cli::command();
            clap_complete::generate(args.shell, &mut cmd, "cfsetup", &mut std::io::stdout());
            return Ok(0);
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            return Ok(0);
        }
        _ => {}
    }
    let process_env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let config = Config::load(&cli.global, process_env)?;
    let ui = Ui::new(config.output);
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
        Command::Rollback(args) => rollback::run(args, config, ui).await.map(Some),
        Command::Sites(args) => sites::run(args, config, ui).await.map(Some),
        Command::RemoveSite(args) => remove_site::run(args, config, ui).await.map(Some),
        Command::RemoveDomain(args) => remove_domain::run(args, config, ui).await.map(Some),
        Command::Gc(args) => gc::run(args, config, ui).await.map(Some),
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
        (Some(email), Some(key)) => {
            ui.note("no API token is set; using the Global API Key (a scoped token is safer)");
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

/// A client for this run, logging requests with `-v`.
pub fn client(
    config: &Config,
    ui: &Ui,
    auth: Auth,
    max_in_flight: usize,
) -> anyhow::Result<Client> {
    let options = ClientOptions {
        max_in_flight,
        log_requests: ui.verbose(),
        notes: !ui.quiet(),
        ..ClientOptions::default()
    };
    Ok(Client::new(&config.api_url, auth, options)?)
}

/// The bucket's objects for this run. Every command that reads or writes objects gets its
/// [`Storage`](crate::storage::Storage) here, so which API carries them is decided in one place.
pub async fn storage(
    _config: &Config,
    client: &Client,
    bucket: crate::storage::BucketLoc,
) -> anyhow::Result<crate::storage::Storage> {
    Ok(crate::storage::Storage::rest(
        crate::storage::RestStore::new(client.clone(), bucket),
    ))
}
