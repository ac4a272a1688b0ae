//! One file per command. A command reads the [`Config`], plans, applies through the
//! [`Client`](crate::cloudflare::Client), and returns a [`Report`]; it never prints to stdout.

use std::collections::HashMap;

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

/// A client for this run, logging requests with `-v`.
pub fn client(
    config: &Config,
    _ui: &Ui,
    auth: Auth,
    max_in_flight: usize,
) -> anyhow::Result<Client> {
    let options = ClientOptions {
        max_in_flight,
        ..ClientOptions::default()
    };
    Ok(Client::new(&config.api_url, auth, options)?)
}

/// The bucket's objects for this run. Every command that reads or writes objects gets its
/// [`Storage`](crate::storage::Storage) here, so which API carries them is decided in one place:
///
/// - `--via rest`, or `auto` with the Global API Key: the REST API.
/// - `--via s3`: R2's S3 API with keys derived from the API token; a refusal fails the run (exit
///   1). With the Global API Key there is no token id to derive keys from: exit 2, before any
///   request ([`platform_auth`] refuses that combination too).
/// - `auto` with an API token: S3, falling back to REST, with one note, when S3 refuses the
///   keys on its first call.
///
/// With a token this costs one REST request (the token's verify call, for its id), unless
/// `CLOUDFLARE_API_TOKEN_ID` gives the id ([`Config::api_token_id`]); if S3 then refuses the keys,
/// `auto` still falls back, and its note says the id may be stale.
pub async fn storage(
    config: &Config,
    client: &Client,
    bucket: crate::storage::BucketLoc,
) -> anyhow::Result<crate::storage::Storage> {
    storage_with(config, client, bucket, StorageSetup::default()).await
}

/// What [`storage_with`] may be told beyond the configuration.
#[derive(Debug, Clone, Default)]
pub struct StorageSetup {
    /// The API token's id, when the command already verified the token (saves a request).
    pub token_id: Option<String>,
    /// S3 tuning (part sizes); `None` takes the defaults. Retries, notes and the request log are
    /// the client's transport's.
    pub s3: Option<crate::storage::S3Options>,
}

/// [`storage`], with a known token id or S3 options (tests lower the multipart threshold).
pub async fn storage_with(
    config: &Config,
    client: &Client,
    bucket: crate::storage::BucketLoc,
    setup: StorageSetup,
) -> anyhow::Result<crate::storage::Storage> {
    use crate::cli::Via;
    use crate::storage::{RestStore, Storage};

    let rest = RestStore::new(client.clone(), bucket.clone());
    let token = match (config.via, client.auth()) {
        (Via::Rest, _) | (Via::Auto, Auth::GlobalKey { .. }) => return Ok(Storage::rest(rest)),
        (Via::S3, Auth::GlobalKey { .. }) => return Err(via_s3_needs_a_token().into()),
        (_, Auth::Token(t)) => t.clone(),
    };
    let mut cause = fallback_cause(&token);
    let token_id = match (setup.token_id, &config.api_token_id) {
        (Some(id), _) => id,
        (None, Some(id)) => {
            cause.push_str(
                " CLOUDFLARE_API_TOKEN_ID is set and was used as the token's id without asking \
                 Cloudflare: it may be stale (not this token's id); remove it, or write it again \
                 with `cfsetup create-token --write-env` or `rotate-token --write-env`.",
            );
            id.clone()
        }
        (None, None) => token_id(client, &token, &bucket.account)
            .await
            .map_err(|e| {
                anyhow::Error::new(e).context("verifying the API token for R2's S3 keys")
            })?,
    };
    let options = setup.s3.unwrap_or_default();
    let s3 = s3_store(config, client, bucket, &token_id, options)?;
    Ok(match config.via {
        Via::S3 => Storage::s3(s3),
        _ => Storage::auto(s3, rest, cause),
    })
}

/// The bucket over R2's S3 API with keys derived from the client's API token (whose id is
/// `token_id`), at `--s3-endpoint` or the bucket's own endpoint. The Global API Key has no S3
/// keys: a usage error.
pub fn s3_store(
    config: &Config,
    client: &Client,
    bucket: crate::storage::BucketLoc,
    token_id: &str,
    options: crate::storage::S3Options,
) -> anyhow::Result<crate::storage::S3Store> {
    use crate::storage::{S3Credentials, S3Store};
    let Auth::Token(token) = client.auth() else {
        return Err(via_s3_needs_a_token().into());
    };
    let credentials = S3Credentials::from_token(token_id, token);
    let (endpoint, overridden) = match &config.s3_endpoint {
        Some(url) => (url.clone(), true),
        None => (
            crate::storage::s3::default_endpoint(&bucket.account, bucket.jurisdiction.as_deref()),
            false,
        ),
    };
    Ok(S3Store::new(
        client.clone(),
        bucket,
        endpoint,
        overridden,
        &credentials,
        options,
    )?)
}

/// The likely cause of an S3 refusal in `auto`, for its one note.
fn fallback_cause(token: &crate::secret::Secret) -> String {
    let t = token.expose();
    let mut cause = "Likely cause: the token lacks an R2 permission (Workers R2 Storage Write), \
                     or it was changed in the last minute."
        .to_string();
    if t.starts_with("cfut_") || t.starts_with("cfat_") {
        cause.push_str(
            " This is a new-format token; deriving S3 keys from cfut_/cfat_ tokens is \
             unconfirmed.",
        );
    }
    cause.push_str(" Use --via rest to skip S3, or --via s3 to fail instead.");
    cause
}

fn via_s3_needs_a_token() -> UsageError {
    usage!("--via s3 needs an API token: the Global API Key has no token id to derive S3 keys from")
        .with_hint("set CLOUDFLARE_API_TOKEN, or use --via rest (or auto)")
}

/// The API token's id, which is its S3 Access Key ID: `GET /user/tokens/verify`, or
/// `/accounts/{id}/tokens/verify` for an account token (`cfat_`, or a user verify answering
/// 1000; docs/cloudflare-api.md §2, §7).
pub async fn token_id(
    client: &Client,
    token: &crate::secret::Secret,
    account_id: &str,
) -> Result<String, crate::cloudflare::Error> {
    if token.expose().starts_with("cfat_") {
        return Ok(client.verify_account_token(account_id).await?.id);
    }
    match client.verify_token().await {
        Ok(s) => Ok(s.id),
        Err(e) if e.has_code(1000) => match client.verify_account_token(account_id).await {
            Ok(s) => Ok(s.id),
            Err(_) => Err(e),
        },
        Err(e) => Err(e),
    }
}
