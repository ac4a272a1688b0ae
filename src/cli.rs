//! The command line, as clap derive definitions only. docs/cli.md is the contract.
//!
//! House rules:
//! - This file holds no logic. Raw strings are checked and turned into typed values in `config.rs`
//!   (global options) and in each command's `plan` step, before any request is sent.
//! - No `env =` here: precedence (flag > process environment > `.env`) is resolved in one place,
//!   `config.rs`, so it can be tested and so secrets from the environment never show up in `--help`.
//! - Every option that has an environment variable names it in its help text.
//!
//! It imports nothing of the crate: clap's types only, which `config` and the commands read.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "cfsetup",
    version,
    about = "Set up and run a multi-tenant static-site platform on Cloudflare",
    long_about = "Set up and run a multi-tenant static-site platform on Cloudflare.\n\n\
        Start with `cfsetup demo`: the whole flow against a local emulator, no account needed.",
    after_help = "Exit status: 0 success; 1 failure (API, network, partial deploy); 2 bad usage or \
        configuration, found before any request; 3 test-permissions ran and a check failed; 130 \
        interrupted (Ctrl-C or SIGTERM).",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args, Default)]
pub struct GlobalArgs {
    /// Account ID, 32 lowercase hex [env: CLOUDFLARE_ACCOUNT_ID]
    #[arg(long, global = true, value_name = "ID")]
    pub account_id: Option<String>,
    /// Zone ID of the platform's zone, 32 lowercase hex [env: CLOUDFLARE_ZONE_ID]
    #[arg(long, global = true, value_name = "ID")]
    pub zone_id: Option<String>,
    /// API token [env: CLOUDFLARE_API_TOKEN]. A value given here is visible to other users in
    /// `ps`: prefer the environment or .env, or give `-` to read it from stdin
    #[arg(long, global = true, value_name = "TOKEN")]
    pub api_token: Option<String>,
    /// Email of the account owner, for the Global API Key [env: CLOUDFLARE_EMAIL]
    #[arg(long, global = true, value_name = "EMAIL")]
    pub email: Option<String>,
    /// Global API Key [env: CLOUDFLARE_GLOBAL_KEY or CLOUDFLARE_API_KEY]. A value given here is
    /// visible to other users in `ps`: prefer the environment or .env, or give `-` to read it
    /// from stdin
    #[arg(long, global = true, value_name = "KEY")]
    pub global_key: Option<String>,
    /// API base URL; plain http only for loopback hosts [env: CLOUDFLARE_API_BASE_URL]
    /// [default: https://api.cloudflare.com/client/v4]
    #[arg(long, global = true, value_name = "URL")]
    pub api_url: Option<String>,
    /// Which API carries objects (site files, manifests) [env: CFSETUP_VIA] [default: auto]
    #[arg(long, global = true, value_enum, value_name = "API")]
    pub via: Option<Via>,
    /// R2's S3 endpoint; plain http only for loopback hosts [env: R2_S3_ENDPOINT]
    /// [default: https://<account>.r2.cloudflarestorage.com, .eu. or .fedramp. for a jurisdiction]
    #[arg(long, global = true, value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// The .env file to read [default: ./.env; a missing default file is fine]
    #[arg(long, global = true, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
    /// Print the report as JSON on stdout, and nothing else on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// More detail on stderr (-v: each request's method, path and status)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Less on stderr (no progress, no notes; errors still show)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
    /// When to use colour (NO_COLOR is honoured)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,
}

/// The global options that reach the account: commands that need none do not take them.
pub const ACCOUNT_OPTIONS: [&str; 9] = [
    "account_id",
    "zone_id",
    "api_token",
    "email",
    "global_key",
    "api_url",
    "env_file",
    "via",
    "s3_endpoint",
];

/// The global options each command that needs no account ignores, so its `--help` does not list
/// them (and `commands::main` refuses them).
pub fn ignored_globals(subcommand: &str) -> Vec<&'static str> {
    // The emulator writes its own output (export lines, then its log); completions and man print
    // a script or a page and nothing else.
    let output: &[&str] = match subcommand {
        "permissions" | "demo" => &[],
        "emulator" => &OUTPUT_OPTIONS[..3],
        "completions" | "man" => &OUTPUT_OPTIONS,
        _ => return Vec::new(),
    };
    ACCOUNT_OPTIONS.iter().chain(output).copied().collect()
}

/// The global options about the report and stderr; `quiet` last, as only completions and man
/// ignore it.
const OUTPUT_OPTIONS: [&str; 4] = ["json", "verbose", "color", "quiet"];

/// The command line, with each command's `--help` listing only the global options it honours.
///
/// clap copies a global option into each subcommand unless the subcommand has one with the same
/// id, so a hidden copy placed there first is what that subcommand shows (nothing) and parses (the
/// same value). The command is left unbuilt: parsing a pre-built command breaks subcommand help.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        for id in ignored_globals(&name) {
            let Some(arg) = cmd.get_arguments().find(|a| a.get_id() == id).cloned() else {
                continue;
            };
            cmd = cmd.mut_subcommand(&name, |sub| sub.arg(arg.hide(true)));
        }
    }
    cmd
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// Which API carries objects (`--via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Via {
    /// R2's S3 API with keys derived from the API token; REST with the Global API Key, or, with
    /// a note, when S3 refuses the keys
    #[default]
    Auto,
    /// R2's S3 API only: a refusal of the keys fails the run
    S3,
    /// The REST API only: 1,200 requests per 5 minutes, 300 MiB per object
    Rest,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the platform's User API token with the 8 permissions, verify it and test it
    CreateToken(CreateTokenArgs),
    /// Prove that the token holds each of the 8 permissions: "8/8 checks passed"
    TestPermissions(TestPermissionsArgs),
    /// Create or update the R2 bucket, the router Worker, its routes and the fallback origin
    DeployInfra(DeployInfraArgs),
    /// Publish a tenant's folder and attach the tenant's own domain
    DeploySite(DeploySiteArgs),
    /// Deploy many tenants in one run: one pool, one rate budget, shared blobs uploaded once
    DeploySites(DeploySitesArgs),
    /// Undo deploy-infra: the Worker's routes, the Worker, the fallback origin (and the bucket);
    /// refuses while tenants are live
    DestroyInfra(DestroyInfraArgs),
    /// Switch a tenant's site to any kept deploy: earlier, later, or a preview
    Rollback(RollbackArgs),
    /// Each tenant: live deploy, files, bytes, domains and their status; one tenant's history
    Sites(SitesArgs),
    /// Every tenant domain (custom hostname): its state, and who must act; `prune` deletes orphans
    Domains(DomainsArgs),
    /// Remove a tenant: its domains, custom hostnames and head (gc deletes the rest)
    RemoveSite(RemoveSiteArgs),
    /// Remove one preview of a tenant (gc deletes its files)
    RemovePreview(RemovePreviewArgs),
    /// Detach one domain from a tenant
    RemoveDomain(RemoveDomainArgs),
    /// Delete blobs and deploy copies nothing refers to; safe while deploys run
    Gc(GcArgs),
    /// Roll a token's secret; its permissions stay
    RotateToken(RotateTokenArgs),
    /// Check the platform end to end on the real account: token, R2's S3 behaviour, Worker,
    /// routes, fallback origin (read-mostly; one temporary object, removed)
    Doctor(DoctorArgs),
    /// The 8 permissions, why each is needed, and the dashboard link that pre-fills them
    Permissions(PermissionsArgs),
    /// Run a local stand-in for the Cloudflare API
    Emulator(EmulatorArgs),
    /// The whole flow against an in-process emulator; no account needed
    Demo(DemoArgs),
    /// Print a shell completion script
    Completions(CompletionsArgs),
    /// Print the man page (roff) to stdout
    Man,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CredentialChoice {
    /// Method 1: email + Global API Key
    GlobalKey,
    /// Method 2: an existing token that holds API Tokens Write
    Token,
}

#[derive(Debug, Args)]
pub struct CreateTokenArgs {
    /// Name of the new token
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Expire after this long, e.g. 90d, 12h, 1y
    #[arg(long, value_name = "DURATION", conflicts_with = "expires_on")]
    pub expires_in: Option<String>,
    /// Expire at this time, RFC 3339, e.g. 2027-01-01T00:00:00Z
    #[arg(long, value_name = "RFC3339")]
    pub expires_on: Option<String>,
    /// Only accept the token from this IP range (repeatable), e.g. 203.0.113.0/24
    #[arg(long = "allow-ip", value_name = "CIDR")]
    pub allow_ip: Vec<String>,
    /// Write CLOUDFLARE_API_TOKEN into this .env file (default: the --env-file) instead of printing it
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    pub write_env: Option<Option<PathBuf>>,
    /// If a token with this name exists, delete it once the new one works
    #[arg(long)]
    pub replace: bool,
    /// Force which credentials create the token
    #[arg(long = "use", value_enum, value_name = "METHOD")]
    pub use_credentials: Option<CredentialChoice>,
    /// Print the policies that would be sent, and create nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not run the 8 checks with the new token
    #[arg(long)]
    pub no_test: bool,
}

#[derive(Debug, Args)]
pub struct TestPermissionsArgs {
    /// Only the read checks; report the write checks as skipped
    #[arg(long)]
    pub read_only: bool,
    /// A domain in the zone, for naming the temporary route when the token cannot read the zone's
    /// name [env: PLATFORM_DOMAIN]
    #[arg(long, value_name = "DOMAIN")]
    pub platform_domain: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeployInfraArgs {
    #[command(flatten)]
    pub platform: PlatformArgs,
    /// R2 bucket for every tenant's files [env: R2_BUCKET_NAME] [default: cfsetup-sites]
    #[arg(long, value_name = "NAME")]
    pub bucket: Option<String>,
    /// Where to place a new bucket: apac, eeur, enam, weur, wnam or oc
    #[arg(long, value_name = "HINT")]
    pub location_hint: Option<String>,
    /// R2 jurisdiction of the bucket: eu or fedramp (default: none)
    #[arg(long, value_name = "J")]
    pub jurisdiction: Option<String>,
    /// Point wanted routes at the router even if another Worker holds them
    #[arg(long)]
    pub take_over_routes: bool,
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// Which bucket a command that reads or writes tenants' objects uses.
#[derive(Debug, Args, Default, Clone)]
pub struct BucketArgs {
    /// R2 bucket [env: R2_BUCKET_NAME] [default: cfsetup-sites]
    #[arg(long, value_name = "NAME")]
    pub bucket: Option<String>,
    /// R2 jurisdiction of the bucket, as given to deploy-infra [env: R2_JURISDICTION]
    #[arg(long, value_name = "J")]
    pub jurisdiction: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeploySiteArgs {
    /// The folder to publish
    pub dir: PathBuf,
    /// The tenant's slug: lowercase letters, digits and single hyphens
    pub tenant: String,
    /// The tenant's own domains (several allowed, e.g. the apex and www.), attached as custom
    /// hostnames
    pub domains: Vec<String>,
    #[command(flatten)]
    pub bucket: BucketArgs,
    /// The platform's domain [env: PLATFORM_DOMAIN] [default: the zone's name]
    #[arg(long, value_name = "DOMAIN")]
    pub platform_domain: Option<String>,
    /// Requests in flight at once (existence checks and uploads)
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub concurrency: usize,
    /// Keep every deploy copy for rollback, not only the newest 10 (shared blobs are only ever
    /// deleted by `cfsetup gc`)
    #[arg(long)]
    pub no_prune: bool,
    /// Wait until the domains and their certificates are active (default 10m)
    #[arg(long, value_name = "DURATION", num_args = 0..=1, default_missing_value = "10m")]
    pub wait: Option<String>,
    /// Publish dotfiles and dot-folders too (.env and .git are skipped by default)
    #[arg(long)]
    pub include_hidden: bool,
    /// The host the tenant's CNAME points at [env: SAAS_FALLBACK_ORIGIN] [default: the fallback origin]
    #[arg(long, value_name = "HOST")]
    pub cname_target: Option<String>,
    /// Publish as a preview at NAME--TENANT.<platform domain>; the live site is untouched
    /// [default NAME: the deploy id's short hash]
    #[arg(long, value_name = "NAME", num_args = 0..=1)]
    pub preview: Option<Option<String>>,
    /// What a path that matches no file gets
    #[arg(long, value_enum, value_name = "MODE", default_value_t = NotFoundChoice::Auto)]
    pub not_found: NotFoundChoice,
    /// With --preview: behind a password (basic auth, any user name). Alone, a password is
    /// generated and shown once; --protect=- reads it from stdin, --protect=env:VAR from the
    /// environment variable VAR (never from the command line)
    #[arg(long, value_name = "SOURCE", num_args = 0..=1, require_equals = true,
          default_missing_value = "generate")]
    pub protect: Option<String>,
    /// With --preview: it answers 404 after this long (e.g. 7d) and the next gc drops it
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<String>,
    /// Skew protection: after this switch, content-hashed files the new deploy lacks stay served
    /// from the deploy it replaces for this long (at most 10 earlier deploys at once)
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "24h",
        conflicts_with = "no_retain"
    )]
    pub retain: String,
    /// No skew protection for this switch: from it on, only the new deploy's files are served
    #[arg(long)]
    pub no_retain: bool,
    /// Move a DOMAIN that another tenant holds to this tenant
    #[arg(long)]
    pub take_over_domain: bool,
    /// Attach DOMAIN with zero downtime: TXT ownership pre-validation and TXT certificate
    /// validation, both records printed, so the hostname and its certificate are active before
    /// the tenant switches the CNAME (with --wait, waits for that)
    #[arg(long)]
    pub prevalidate: bool,
    #[command(flatten)]
    pub dns: DnsArgs,
    /// Switch even if another deploy of this tenant landed since this one read the head; also
    /// deploys an unchanged site, checking (and re-uploading) every blob
    #[arg(long)]
    pub force: bool,
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How long a lock record lives without a refresh (tests only; at most the default 10m;
    /// recorded in each intent and marker, and a reader uses the longer of its own and the
    /// record's)
    #[arg(long, value_name = "DURATION", hide = true)]
    pub lock_stale: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeploySitesArgs {
    /// The plan: a TOML file of `[[site]]` tables, or a JSON array of the same objects (by
    /// extension), each {tenant, dir, domains?, not_found?, preview?, prevalidate?}; a relative
    /// dir is read from the plan's folder
    pub plan: PathBuf,
    /// Tenants deployed at once
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub parallel: usize,
    /// Start no new tenant after the first failure (those already running finish)
    #[arg(long)]
    pub fail_fast: bool,
    /// Print each tenant's plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub bucket: BucketArgs,
    /// The platform's domain [env: PLATFORM_DOMAIN] [default: the zone's name]
    #[arg(long, value_name = "DOMAIN")]
    pub platform_domain: Option<String>,
    /// Object writes in flight at once, across all tenants
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub concurrency: usize,
    /// The host the tenants' CNAMEs point at [env: SAAS_FALLBACK_ORIGIN] [default: the fallback
    /// origin]
    #[arg(long, value_name = "HOST")]
    pub cname_target: Option<String>,
    /// How long a lock record lives without a refresh (tests only)
    #[arg(long, value_name = "DURATION", hide = true)]
    pub lock_stale: Option<String>,
}

#[derive(Debug, Args)]
pub struct DestroyInfraArgs {
    /// Also empty the R2 bucket (batch deletes, resumable) and delete it
    #[arg(long)]
    pub delete_bucket: bool,
    /// Print what would be removed and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask (needed when stdin is not a terminal)
    #[arg(long)]
    pub yes: bool,
    /// Destroy even while tenants have a live site
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub bucket: BucketArgs,
    /// The router Worker [env: WORKER_SCRIPT_NAME] [default: cfsetup-router]
    #[arg(long, value_name = "NAME")]
    pub worker_name: Option<String>,
    /// The fallback origin deploy-infra set; removed only when the zone's is this one [env:
    /// SAAS_FALLBACK_ORIGIN]
    #[arg(long, value_name = "HOST")]
    pub fallback_origin: Option<String>,
}

/// `--not-found`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NotFoundChoice {
    /// 404 with a top-level 404.html, else spa with an index.html, else none
    Auto,
    /// An unknown path without a file extension gets /index.html with 200
    Spa,
    /// The nearest 404.html up the tree, with 404
    #[value(name = "404")]
    Page404,
    /// A plain 404
    None,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The tenant's slug
    pub tenant: String,
    /// The deploy to switch to: a kept deploy id (or a unique start of one), or a preview name
    /// [default: the one before the live one]; omit with --list
    #[arg(id = "deploy_version", value_name = "VERSION")]
    pub version: Option<String>,
    /// List the kept deploys and previews and change nothing
    #[arg(long)]
    pub list: bool,
    #[command(flatten)]
    pub bucket: BucketArgs,
    /// Switch even if the head changed since it was read
    #[arg(long)]
    pub force: bool,
    /// Print the plan and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// How long a lock record lives without a refresh (tests only; at most the default 10m;
    /// recorded in each intent and marker, and a reader uses the longer of its own and the
    /// record's)
    #[arg(long, value_name = "DURATION", hide = true)]
    pub lock_stale: Option<String>,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Only blobs and deploy copies older than this are deleted (0s is safe too)
    #[arg(long, value_name = "DURATION", default_value = "1h")]
    pub grace: String,
    #[command(flatten)]
    pub bucket: BucketArgs,
    /// Requests in flight at once
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub concurrency: usize,
    /// Say what would be deleted and delete nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Delete the sweep markers (locks/gc/) of gcs that died, so deploys stop waiting for them;
    /// only when no gc is running. Deletes nothing else
    #[arg(long, conflicts_with = "dry_run")]
    pub unlock: bool,
    /// How long a lock record lives without a refresh (tests only; at most the default 10m;
    /// recorded in each intent and marker, and a reader uses the longer of its own and the
    /// record's)
    #[arg(long, value_name = "DURATION", hide = true)]
    pub lock_stale: Option<String>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub platform: PlatformArgs,
    #[command(flatten)]
    pub bucket: BucketArgs,
}

/// How the platform's Cloudflare side is named and routed: what `deploy-infra` makes and
/// `doctor` checks.
#[derive(Debug, Args, Default, Clone)]
pub struct PlatformArgs {
    /// The platform's domain; TENANT.<domain> serves a tenant [env: PLATFORM_DOMAIN]
    /// [default: the zone's name]
    #[arg(long, value_name = "DOMAIN")]
    pub platform_domain: Option<String>,
    /// Name of the router Worker [env: WORKER_SCRIPT_NAME] [default: cfsetup-router]
    #[arg(long, value_name = "NAME")]
    pub worker_name: Option<String>,
    /// Hostname of the custom-hostname fallback origin, a proxied record in the zone
    /// [env: SAAS_FALLBACK_ORIGIN]
    #[arg(long, value_name = "HOST")]
    pub fallback_origin: Option<String>,
    /// Another route pattern for the Worker (repeatable)
    #[arg(long = "route", value_name = "PATTERN")]
    pub routes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SitesArgs {
    /// One tenant: its deploy history, the live one marked
    pub tenant: Option<String>,
    #[command(flatten)]
    pub bucket: BucketArgs,
}

/// Public DNS lookups of tenants' domains.
#[derive(Debug, Args, Default, Clone)]
pub struct DnsArgs {
    /// Do not look up tenants' public DNS records
    #[arg(long)]
    pub no_dns: bool,
    /// The one nameserver to ask, IP:PORT (tests) [env: CFSETUP_DNS_SERVER] [default: the
    /// system's resolver]
    #[arg(long, value_name = "IP:PORT", hide = true)]
    pub dns_server: Option<String>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DomainsArgs {
    #[command(subcommand)]
    pub command: Option<DomainsCommand>,
    /// Only this tenant's domains
    pub tenant: Option<String>,
    #[command(flatten)]
    pub bucket: BucketArgs,
    /// Only the domains where the tenant or the platform must act
    #[arg(long)]
    pub needs_action: bool,
    /// Only the domains whose hostname or certificate has this status, e.g. pending, active,
    /// pending_validation
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// Only certificates that expire within this window and will not renew by themselves, e.g. 14d
    #[arg(long, value_name = "DURATION")]
    pub expiring: Option<String>,
    /// Exit 1 when any domain needs action (for alerting); the report is printed either way
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub dns: DnsArgs,
}

#[derive(Debug, Subcommand)]
pub enum DomainsCommand {
    /// Delete custom hostnames that no host entry names (orphans); never one a host entry names
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Only orphans that are not active and were created longer ago than this, e.g. 30d
    #[arg(long, value_name = "DURATION")]
    pub pending_for: Option<String>,
    /// Say what would be deleted and delete nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask; needed when stdin is not a terminal
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub bucket: BucketArgs,
}

#[derive(Debug, Args)]
pub struct RemoveSiteArgs {
    /// The tenant's slug
    pub tenant: String,
    /// Do not ask; needed when stdin is not a terminal
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub bucket: BucketArgs,
    /// Say what would be removed and remove nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RemovePreviewArgs {
    /// The tenant's slug
    pub tenant: String,
    /// The preview's name (NAME in NAME--TENANT.<platform domain>)
    pub name: String,
    #[command(flatten)]
    pub bucket: BucketArgs,
    /// Say what would be removed and remove nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RemoveDomainArgs {
    /// The tenant's slug
    pub tenant: String,
    /// The domain to detach
    pub domain: String,
    #[command(flatten)]
    pub bucket: BucketArgs,
    /// Say what would be removed and remove nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct RotateTokenSelector {
    /// The token's ID
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,
    /// The token's name (must be unique)
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct RotateTokenArgs {
    #[command(flatten)]
    pub selector: RotateTokenSelector,
    /// Write the new CLOUDFLARE_API_TOKEN into this .env file (default: the --env-file)
    #[arg(long, value_name = "PATH", num_args = 0..=1)]
    pub write_env: Option<Option<PathBuf>>,
    /// Print what would happen and change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct PermissionsArgs {
    /// Print the table as Markdown (the form PERMISSIONS_GUIDE.md embeds)
    #[arg(long)]
    pub markdown: bool,
    /// The token name to pre-fill in the dashboard link
    #[arg(long, value_name = "NAME", default_value = "cfsetup platform")]
    pub name: String,
}

/// Fault injection and the R2 S3 knobs, shown under `cfsetup emulator --help`.
const EMULATOR_AFTER_HELP: &str = "Fault injection (while it runs; emulator/src/faults.rs):
  POST /__emulator/faults with a JSON body injects a fault into the next matching requests:
    {\"kind\": \"rate_limit\", \"retry_after_secs\": 3}  429 (REST 971; S3 TooManyRequests) + Retry-After
    {\"kind\": \"server_error\", \"status\": 503}        a 5xx (S3: XML, 503 ServiceUnavailable)
    {\"kind\": \"drop\"}                               close the connection without answering
    {\"kind\": \"latency\", \"ms\": 500}                 wait before handling
  optional: \"api\": \"rest\" | \"s3\", \"method\": \"PUT\", \"path_contains\": \"/objects/\",
  \"times\": N (default 1). DELETE /__emulator/faults clears them; GET /__emulator/requests
  lists every request (an S3 one with its operation, e.g. \"op\": \"PutObject\");
  GET /__emulator/state shows the state.

R2's S3 API takes the strict side of what R2 leaves undocumented (docs/cloudflare-api.md §7);
each --s3-* flag switches one question to the other side.";

#[derive(Debug, Args)]
#[command(after_long_help = EMULATOR_AFTER_HELP)]
pub struct EmulatorArgs {
    /// Port on 127.0.0.1; 0 picks a free one
    #[arg(long, default_value_t = 8787)]
    pub port: u16,
    /// Latency added to every API request, in milliseconds (at most 600000)
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub latency_ms: u64,
    /// Keep the state in this JSON file across runs
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// S3: how a presigned (query-signed) POST is answered (CreateMultipartUpload,
    /// CompleteMultipartUpload, DeleteObjects); R2 documents presigned GET, HEAD, PUT and DELETE
    /// only
    #[arg(long, value_name = "ANSWER", default_value = "refuse-403",
          value_parser = clap::builder::TypedValueParser::map(
              clap::builder::PossibleValuesParser::new(
                  cfsetup_emulator::PresignedPost::ALL.map(|p| p.as_str())),
              |s| s.parse::<cfsetup_emulator::PresignedPost>().expect("a listed value")))]
    pub s3_presigned_post: cfsetup_emulator::PresignedPost,
    /// S3: a presigned request's payload hash is always UNSIGNED-PAYLOAD (s3s' reading), instead
    /// of X-Amz-Content-Sha256 from the query, then the header (AWS's, aws4fetch's, MinIO's)
    #[arg(long)]
    pub s3_presigned_payload_lenient: bool,
    /// S3: accept a header-signed request whose x-amz-content-sha256 is not in SignedHeaders
    #[arg(long)]
    pub s3_unsigned_content_sha256_lenient: bool,
    /// S3: a conditional PutObject that loses a race (its condition fails, or another one of the
    /// key is in flight) gets 409 ConditionalRequestConflict, AWS's answer, instead of 412
    #[arg(long)]
    pub s3_conflict_409: bool,
    /// S3: R2's one write per second per key (PutObject, CompleteMultipartUpload): 429
    /// TooManyRequests with Retry-After
    #[arg(long)]
    pub s3_write_limit_per_key: bool,
    /// S3: honour If-Match / If-None-Match / If-(Un)Modified-Since on CompleteMultipartUpload
    /// instead of refusing them with 501 (R2 documents them for PutObject only)
    #[arg(long)]
    pub s3_complete_honours_conditions: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The site to publish [default: examples/site, or a built-in copy]
    pub dir: Option<PathBuf>,
    /// Then serve the demo site locally through the real router in workerd (needs Node 20+ and
    /// `npm ci --prefix worker`), at http://demo.localhost:PORT/, until Ctrl-C
    #[arg(long)]
    pub serve: bool,
    /// The port for --serve
    #[arg(long, value_name = "PORT", default_value_t = 8787, requires = "serve")]
    pub port: u16,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_definition_is_consistent() {
        Cli::command().debug_assert();
        for built in [
            {
                let mut c = Cli::command();
                c.build();
                c
            },
            command(),
        ] {
            let e = built
                .try_get_matches_from(["cfsetup", "emulator", "--help"])
                .unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::DisplayHelp);
        }
        // Every name the hiding refers to is a real global option.
        let mut cmd = command();
        cmd.build();
        for sub in cmd.get_subcommands() {
            for id in ignored_globals(sub.get_name()) {
                assert!(
                    sub.get_arguments()
                        .any(|a| a.get_id() == id && a.is_hide_set()),
                    "{} {id}",
                    sub.get_name()
                );
            }
        }
    }
}
