//! `cfsetup deploy-site DIR TENANT [DOMAIN]...`: publish a folder as a tenant's site (or a
//! preview), safely alongside any number of other deploys and gcs, and attach the tenant's own
//! domains.
//!
//! The command checks everything local first (arguments, the folder, file sizes: exit 2 before any
//! request), then plans with reads only, then applies in the order of docs/storage-layout.md
//! "deploy-site":
//!
//! 1. read the head (keep its ETag) and, at the same time, write the intent
//!    `locks/deploys/<uuid>.json` naming a prediction of the blobs the live deploy lacks (those
//!    of the new shards this machine's shard cache does not hold) and every shard hash; an
//!    unchanged site (same `live.digest`, format 3) stops here;
//! 2. if that intent does not name every blob of the new shards the live deploy lacks (or was
//!    not written), write it again naming them; then list the sweep markers (reading the live
//!    shards this deploy replaces meanwhile) and wait while one seen then is fresh; the intent is
//!    refreshed while the run lives;
//! 3. blobs the live deploy names are known to exist; every other one is checked (HEAD, or a
//!    create-only PUT where 412 means present) and uploaded if missing, `--concurrency` at once,
//!    together with the content-addressed shards the live deploy lacks (`shards/<sha256>.json`)
//!    and the deploy copy;
//! 4. (format 2 wrote its shards and copy here);
//! 5. switch the head with a compare-and-swap on the ETag of step 1; if another run switched in
//!    between, exit 1 naming what landed (unless `--force`);
//! 6. delete the intent and, meanwhile, attach each DOMAIN: its custom hostname first, then
//!    `hosts/<domain>.json`.
//!
//! Every request and the round trip it waits for: docs/storage-layout.md "The critical path".
//!
//! It never deletes a shared blob or a deploy copy: it only drops ids from the head's `kept`, and
//! `cfsetup gc` deletes what nothing names. Cost follows the change: `blobs/` is never listed, and
//! a warm unchanged deploy makes one request (the head), three with a DOMAIN (the host entry and
//! the custom hostname), four while that hostname is pending (its CNAME target, the fallback
//! origin), plus, over S3, the one token verification its keys come from (none when
//! `CLOUDFLARE_API_TOKEN_ID` is set beside the token, or this machine kept the token's id).
//!
//! An interrupted run (Ctrl-C: exit 130) leaves the old deploy live and says so; running the same
//! command again finishes the job.
//!
//! A command: it may import the layers below it and the shared `commands::bucket` and
//! `commands::head`; of the other commands only `domains::quota_line`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::cli::{DeploySiteArgs, NotFoundChoice};
use crate::cloudflare::Client;
use crate::config::{self, Config};
use crate::error::usage;
use crate::names::{Hostname, PreviewName, Tenant};
use crate::output::{Report, Ui};
use crate::platform::{self, Flags, Platform};
use crate::site::layout;
use crate::site::locks::{self, Intent, Lease, Timing};
use crate::site::manifest::{
    files_map, DeployCopy, Head, NotFound, Protect, Rules, Shard, StoredHead,
};
use crate::site::{walk, SiteFile, WalkOptions};
use crate::storage::{BucketLoc, Payload, PutMode, PutOptions, Storage};

use super::bucket;
use super::head::{read_head, shed_previews, Lost, ReadHead, Switch, SwitchSteps};

mod domain;
mod local_live;
mod local_shards;
mod report;

use domain::HostnameReport;
pub(crate) use report::DeployReport;
use report::{list_some, HostEntryReport, InterruptedReport};

/// The most requests in flight that `--concurrency` accepts.
const MAX_CONCURRENCY: usize = 256;
/// Blobs up to this size are sent with a create-only PUT (412 = present) when the store enforces
/// it; bigger ones are checked with a HEAD first, so an existing big file is not sent.
const CREATE_PUT_MAX: u64 = 256 * 1024;
/// The files that are rules, not content (docs/storage-layout.md "Route").
const RULE_FILES: [&str; 2] = ["/_redirects", "/_headers"];

/// Everything checked before the first request.
struct Input {
    dir: PathBuf,
    tenant: Tenant,
    domains: Vec<Hostname>,
    loc: BucketLoc,
    zone: Option<String>,
    platform_domain: Option<Hostname>,
    cname_target: Option<Hostname>,
    concurrency: usize,
    wait: Option<Duration>,
    no_prune: bool,
    include_hidden: bool,
    /// `Some(None)`: a preview with the default name.
    preview: Option<Option<PreviewName>>,
    not_found: NotFound,
    take_over: bool,
    /// `--prevalidate`: TXT ownership and TXT certificate validation (domain.rs).
    prevalidate: bool,
    /// `--no-dns`: no lookup of the domain's CNAME.
    no_dns: bool,
    /// `CFSETUP_DNS_SERVER` / `--dns-server`.
    dns_server: Option<std::net::SocketAddr>,
    force: bool,
    dry_run: bool,
    timing: Timing,
    /// One tenant of a `deploy-sites` run: its notes name it.
    in_fleet: bool,
    /// `--protect`: the hash stored in the head, and the password to show once when cfsetup
    /// generated it.
    protect: Option<Protect>,
    password: Option<crate::secret::Secret>,
    /// `--expires`, as the RFC 3339 time the preview ends.
    expires_at: Option<String>,
    /// `--retain` (`None`: `--no-retain`).
    retain: Option<Duration>,
}

fn check(args: &DeploySiteArgs, config: &Config) -> anyhow::Result<Input> {
    // `--wait` and `--preview` take an optional value, so `--wait shop.example.com` reads the
    // domain as the duration: say so rather than "not a duration".
    if let Some(Some(w)) = args
        .wait
        .as_ref()
        .map(|w| Some(w).filter(|w| w.contains('.')))
    {
        if humantime::parse_duration(w.trim()).is_err() {
            return Err(
                usage!("--wait took {w:?} as its duration, which looks like a DOMAIN")
                    .with_hint(format!(
                    "--wait takes an optional duration: write DOMAIN before it (`{w} --wait`), \
                     or give one with = (`--wait=10m {w}`)"
                ))
                    .into(),
            );
        }
    }
    if let Some(Some(p)) = &args.preview {
        // A preview name never has a dot (it is one DNS label), so this refuses nothing valid.
        if p.contains('.') {
            return Err(usage!(
                "--preview took {p:?} as its NAME, which looks like a DOMAIN or a path"
            )
            .with_hint(
                "--preview takes an optional NAME: put it last (`DIR TENANT --preview`), or \
                     give one with = (`--preview=feature-x`)",
            )
            .into());
        }
    }
    // Not the fallback origin's first label, when it is configured.
    let fallback = config.setting(None, "SAAS_FALLBACK_ORIGIN");
    let tenant = Tenant::new_beside_fallback(&args.tenant, fallback.as_deref())?;
    let mut domains = Vec::new();
    for d in &args.domains {
        let d = Hostname::parse(d, "DOMAIN")?;
        if !domains.contains(&d) {
            domains.push(d);
        }
    }
    if !args.dir.is_dir() {
        let what = if args.dir.exists() {
            "is not a folder"
        } else {
            "does not exist"
        };
        return Err(usage!("DIR {} {what}", args.dir.display())
            .with_hint("give the folder that holds the site's index.html")
            .into());
    }
    if args.concurrency == 0 || args.concurrency > MAX_CONCURRENCY {
        return Err(usage!("--concurrency {} is out of range", args.concurrency)
            .with_hint(format!(
                "use 1 to {MAX_CONCURRENCY}; the default, 64, suits most sites"
            ))
            .into());
    }
    let preview = match &args.preview {
        None => None,
        Some(None) => Some(None),
        Some(Some(n)) => Some(Some(PreviewName::parse(n, &tenant)?)),
    };
    // The default name is the deploy id's 8 hex digits: known to fit or not before any request.
    if preview == Some(None) && tenant.len() + 2 + 8 > 63 {
        return Err(usage!(
            "{tenant} is too long for a preview: NAME--{tenant} must fit in one DNS label (63 \
             characters), and even the default 8-character name does not"
        )
        .with_hint("previews need a tenant slug of at most 53 characters; deploy without --preview")
        .into());
    }
    if preview.is_some() && !args.domains.is_empty() {
        return Err(usage!("--preview does not attach DOMAIN")
            .with_hint(format!(
                "a preview is served at NAME--{tenant}.<platform domain>; deploy without \
                 --preview to attach domains"
            ))
            .into());
    }
    if preview.is_some() && args.take_over_domain {
        return Err(usage!("--take-over-domain needs a DOMAIN and no --preview").into());
    }
    if args.prevalidate && domains.is_empty() {
        return Err(
            usage!("--prevalidate attaches DOMAIN, but no DOMAIN was given")
                .with_hint("add the tenant's domain after TENANT, or leave out --prevalidate")
                .into(),
        );
    }
    let dns_server = super::dns_server(config, &args.dns)?;
    let wait = match (&args.wait, domains.is_empty()) {
        (Some(_), true) => {
            return Err(
                usage!("--wait waits for DOMAIN to become active, but no DOMAIN was given")
                    .with_hint("add the tenant's domain after TENANT, or leave out --wait")
                    .into(),
            )
        }
        (Some(w), false) => Some(config::duration(w, "--wait")?),
        (None, _) => None,
    };
    let Platform {
        bucket: loc,
        domain: platform_domain,
        fallback_origin,
        ..
    } = Platform::resolve(
        config,
        Flags {
            platform_domain: args.platform_domain.as_deref(),
            ..Flags::bucket(&args.bucket)
        },
    )?;
    let zone = if domains.is_empty() {
        config.zone_id.clone()
    } else {
        // Custom hostnames live on the platform's zone.
        Some(config.require_zone_id().map_err(|e| {
            e.with_hint("DOMAIN is attached as a custom hostname of the platform's zone; set CLOUDFLARE_ZONE_ID")
        })?.to_string())
    };
    if let Some(p) = &platform_domain {
        for d in &domains {
            crate::names::custom_domain(d, p)?;
        }
    }
    // `--cname-target`, else the fallback origin the platform resolved (SAAS_FALLBACK_ORIGIN).
    let flag = args
        .cname_target
        .as_deref()
        .filter(|v| !v.trim().is_empty());
    let cname_target = match (flag, domains.is_empty()) {
        (_, true) => None,
        (Some(h), false) => Some(Hostname::parse(h, "--cname-target")?),
        (None, false) => fallback_origin,
    };
    if preview.is_none() && (args.protect.is_some() || args.expires.is_some()) {
        let flag = if args.protect.is_some() {
            "--protect"
        } else {
            "--expires"
        };
        return Err(
            usage!("{flag} is for a preview, and no --preview was given")
                .with_hint("the live site is public and does not expire; add --preview NAME")
                .into(),
        );
    }
    let (protect, password) = match args.protect.as_deref() {
        None => (None, None),
        Some(source) => {
            let (password, shown) = preview_password(source)?;
            (Some(Protect::new(password.expose())), shown)
        }
    };
    let expires_at = args
        .expires
        .as_deref()
        .map(|e| {
            let d = config::duration(e, "--expires")?;
            Ok::<_, crate::error::UsageError>(
                humantime::format_rfc3339_seconds(SystemTime::now() + d).to_string(),
            )
        })
        .transpose()?;
    let not_found = match args.not_found {
        NotFoundChoice::Auto => NotFound::Auto,
        NotFoundChoice::Spa => NotFound::Spa,
        NotFoundChoice::Page404 => NotFound::Page404,
        NotFoundChoice::None => NotFound::None,
    };
    Ok(Input {
        dir: args.dir.clone(),
        tenant,
        domains,
        loc,
        zone,
        platform_domain,
        cname_target,
        concurrency: args.concurrency,
        wait,
        no_prune: args.no_prune,
        include_hidden: args.include_hidden,
        preview,
        not_found,
        take_over: args.take_over_domain,
        prevalidate: args.prevalidate,
        no_dns: args.dns.no_dns,
        dns_server,
        force: args.force,
        dry_run: args.dry_run,
        timing: bucket::lock_timing(args.lock_stale.as_deref())?,
        in_fleet: false,
        protect,
        password,
        expires_at,
        retain: if args.no_retain {
            None
        } else {
            Some(config::duration(&args.retain, "--retain")?)
        },
    })
}

/// `--protect[=SOURCE]`: the password, and whether it is to be shown (generated). A password is
/// never taken from argv, where `ps` and shell history would keep it.
fn preview_password(
    source: &str,
) -> Result<(crate::secret::Secret, Option<crate::secret::Secret>), crate::error::UsageError> {
    use crate::secret::Secret;
    let chosen = |p: String, from: &str| {
        let p = p.trim_end_matches(['\r', '\n']).to_string();
        if p.chars().count() < 8 {
            return Err(
                usage!("the password from {from} is shorter than 8 characters")
                    .with_hint("choose a longer one, or use --protect alone for a generated one"),
            );
        }
        Ok((Secret::new(p), None))
    };
    match source {
        "generate" => {
            let p = generated_password();
            Ok((Secret::new(p.clone()), Some(Secret::new(p))))
        }
        "-" => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .map_err(|e| usage!("--protect=-: reading the password from stdin: {e}"))?;
            chosen(line, "stdin")
        }
        s if s.starts_with("env:") => {
            let var = &s[4..];
            match std::env::var(var) {
                Ok(p) => chosen(p, var),
                Err(_) => Err(
                    usage!("--protect={s}: the environment variable {var} is not set")
                        .with_hint("export it first, or use --protect=- to read stdin"),
                ),
            }
        }
        _ => Err(
            usage!("--protect takes no password on the command line").with_hint(
                "a password in argv shows in `ps` and shell history: use --protect alone (one is \
                 generated and shown once), --protect=- (stdin) or --protect=env:VAR",
            ),
        ),
    }
}

/// 24 characters from 32 unambiguous ones: 120 bits.
fn generated_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::thread_rng();
    (0..24)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The largest file this run can store, known before any request: REST's 300 MiB with `--via
/// rest` or the Global API Key (which has no S3 keys), else S3's. Should `--via auto` fall back to
/// REST at run time, the store refuses a larger file itself (exit 1).
fn max_file_size(config: &Config) -> u64 {
    use crate::cli::Via;
    let rest = match config.via {
        Via::Rest => true,
        Via::S3 => false,
        Via::Auto => config.credentials.token.is_none(),
    };
    if rest {
        crate::storage::rest::REST_MAX_OBJECT_SIZE
    } else {
        crate::storage::s3::S3_MAX_OBJECT_SIZE
    }
}

/// Where the run is, for the Ctrl-C message.
const BEFORE_SWITCH: u8 = 0;
const SWITCHING: u8 = 1;
const SWITCHED: u8 = 2;

use super::Interrupt;

fn interrupted_before_any_write(tenant: &str, ui: &Ui, signal: &str) -> Box<dyn Report> {
    let state = "nothing was changed (interrupted while planning)".to_string();
    ui.warn(format!("interrupted ({signal}): {state}"));
    Box::new(InterruptedReport {
        tenant: tenant.to_string(),
        interrupted: true,
        state,
    })
}

/// One tenant's deploy, checked and walked without a request: the folder's files, its rules, and
/// the checked arguments. `deploy-site` makes one; `deploy-sites` makes one per plan entry, all
/// before its first request, so a bad entry is exit 2 with nothing deployed.
pub(crate) struct Prepared {
    input: Input,
    files: Vec<SiteFile>,
    rules: Rules,
    walked: crate::site::Walk,
}

impl Prepared {
    pub(crate) fn tenant(&self) -> &str {
        &self.input.tenant
    }

    pub(crate) fn files(&self) -> &[SiteFile] {
        &self.files
    }

    pub(crate) fn loc(&self) -> &BucketLoc {
        &self.input.loc
    }
}

/// The local half of a deploy: [`check`] the arguments, walk DIR, parse `_redirects` and
/// `_headers`. Every failure here is a usage error (exit 2) and no request has been sent.
pub(crate) async fn prepare(
    args: &DeploySiteArgs,
    config: &Config,
    ui: &Ui,
    in_fleet: bool,
) -> anyhow::Result<Prepared> {
    let mut input = check(args, config)?;
    input.in_fleet = in_fleet;
    let dir = input.dir.clone();
    let options = WalkOptions {
        include_hidden: input.include_hidden,
        max_file_size: max_file_size(config),
    };
    let walked = tokio::task::spawn_blocking(move || walk(&dir, options))
        .await
        .context("walking DIR")??;
    if !walked.hidden.is_empty() {
        ui.note(format!(
            "{}skipped {} hidden file(s) or folder(s): {}{}",
            tenant_prefix(&input),
            walked.hidden.len(),
            list_some(&walked.hidden),
            if input.include_hidden {
                " (never published: version control and secret files such as .env, .envrc, \
                 .npmrc, .ssh/, in any letter case)"
            } else {
                " (--include-hidden publishes dotfiles, but never version control or secret \
                 files such as .git, .env, .npmrc, .ssh/)"
            }
        ));
    }
    for link in &walked.links {
        ui.warn(format!("{}skipped the link {link}", tenant_prefix(&input)));
    }
    for special in &walked.special {
        ui.warn(format!(
            "{}skipped {special}: not a regular file",
            tenant_prefix(&input)
        ));
    }
    let mut walked = walked;
    let (rule_files, files): (Vec<SiteFile>, Vec<SiteFile>) = std::mem::take(&mut walked.files)
        .into_iter()
        .partition(|f| RULE_FILES.contains(&f.rel_url.as_str()));
    if files.is_empty() {
        return Err(
            usage!("DIR {} has no files to publish", input.dir.display())
                .with_hint("a site needs at least an index.html")
                .into(),
        );
    }
    if !files.iter().any(|f| f.rel_url == "/index.html") {
        ui.warn(format!(
            "{}DIR has no index.html at its top: the site's home page will be a 404",
            tenant_prefix(&input)
        ));
    }
    let rules = rules_of(&rule_files, &input, &files_map(&files), ui)?;
    check_route_size(&files, &rules)?;
    Ok(Prepared {
        input,
        files,
        rules,
        walked,
    })
}

/// Notes about one tenant of a `deploy-sites` run name it; `deploy-site`'s do not need to.
fn tenant_prefix(input: &Input) -> String {
    if input.in_fleet {
        format!("{}: ", input.tenant)
    } else {
        String::new()
    }
}

/// What a run shares between the tenants it deploys: the one client (its pool and REST budget),
/// the one store (its S3 concurrency), and the blobs known to exist in this run.
pub(crate) struct Shared<'a> {
    pub(crate) client: &'a Client,
    pub(crate) storage: &'a Storage,
    pub(crate) blobs: &'a BlobSet,
    /// Object writes in flight at once, across every tenant of the run (`--concurrency`): the
    /// S3 API has no rate limit of its own, so this is what keeps a fleet from opening thousands
    /// of connections.
    pub(crate) writes: &'a tokio::sync::Semaphore,
}

/// The blobs this run has made sure of (present, or uploaded by this run), by hash, shared by
/// every tenant of a `deploy-sites` run so a blob several tenants name is checked and sent once.
/// Two tenants that need the same missing blob at once wait on the same upload.
///
/// Each tenant still consults this set only after its own intent is written and the sweeps it
/// saw are over (docs/storage-layout.md "deploy-site"), exactly as it trusts the hashes the live
/// deploy copy names: a gc that starts later sees that intent and keeps the blob; one that
/// started before has finished, and gc never deletes a blob younger than its grace.
#[derive(Default)]
pub(crate) struct BlobSet {
    cells: std::sync::Mutex<BTreeMap<String, Arc<tokio::sync::OnceCell<()>>>>,
}

impl BlobSet {
    fn cell(&self, hash: &str) -> Arc<tokio::sync::OnceCell<()>> {
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        cells.entry(hash.to_string()).or_default().clone()
    }

    /// How many distinct blobs this run made sure of.
    pub(crate) fn len(&self) -> usize {
        let cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        cells.values().filter(|c| c.initialized()).count()
    }
}

pub async fn run(
    args: DeploySiteArgs,
    config: &Config,
    ui: &Ui,
) -> anyhow::Result<Box<dyn Report>> {
    // Listened for from the start, so a Ctrl-C while walking is caught too.
    let mut interrupt = Interrupt::listen();
    let mut prepared = prepare(&args, config, ui, false).await?;

    let auth = super::platform_auth(config, ui)?;
    let client = super::client(config, auth, prepared.input.concurrency)?;
    // The zone read (for the platform domain) goes with the head read, in the plan: with the
    // token id known (CLOUDFLARE_API_TOKEN_ID or this machine's cache) opening the store sends
    // nothing (docs/storage-layout.md "The critical path"). With a DOMAIN it comes first, beside
    // the store's opening: a DOMAIN in the platform's own domain is refused before any write.
    let zone_first = prepared.input.platform_domain.is_none() && !prepared.input.domains.is_empty();
    let zone_read = async {
        match (zone_first, &prepared.input.zone) {
            (true, Some(zone)) => platform::zone_domain(&client, zone).await.map(Some),
            _ => Ok(None),
        }
    };
    let (storage, zone_name) = tokio::join!(
        crate::storage::open(config, &client, prepared.input.loc.clone()),
        zone_read
    );
    let storage = storage?;
    if let Some(name) = zone_name? {
        for d in &prepared.input.domains {
            crate::names::custom_domain(d, &name)?;
        }
        prepared.input.platform_domain = Some(name);
    }
    let input = &prepared.input;
    let blobs = BlobSet::default();
    let writes = tokio::sync::Semaphore::new(input.concurrency);
    let shared = Shared {
        client: &client,
        storage: &storage,
        blobs: &blobs,
        writes: &writes,
    };
    let deploy = Deploy::new(&shared, input, ui);
    let plan = tokio::select! {
        p = deploy.plan(&prepared.files, prepared.rules.clone()) => p,
        () = interrupt.wait() => {
            deploy.drop_intent().await;
            return Ok(interrupted_before_any_write(&input.tenant, ui, interrupt.signal()));
        }
    };
    let plan = match plan {
        Ok(p) => p,
        Err(e) => {
            deploy.drop_intent().await;
            return Err(e);
        }
    };
    let mut report = DeployReport::new(input, &plan, &prepared.walked, prepared.files.len());
    if input.dry_run || plan.unchanged {
        let done = tokio::select! {
            r = deploy.finish(&plan, &prepared.files, &mut report) => Some(r),
            () = interrupt.wait() => None,
        };
        deploy.drop_intent().await;
        return match done {
            Some(r) => r.map(|()| Box::new(report) as Box<dyn Report>),
            None => Ok(interrupted_before_any_write(
                &input.tenant,
                ui,
                interrupt.signal(),
            )),
        };
    }

    let outcome = tokio::select! {
        r = deploy.finish(&plan, &prepared.files, &mut report) => Some(r),
        () = interrupt.wait() => None,
    };
    // The intent is only needed while the run lives; a kill leaves it to go stale. (A
    // successful run deleted it already, beside attaching its domains.)
    deploy.drop_intent().await;
    match outcome {
        Some(result) => {
            result?;
            Ok(Box::new(report))
        }
        None => {
            let state = match deploy.phase.load(Ordering::SeqCst) {
                BEFORE_SWITCH => match plan.live_id() {
                    Some(id) => format!(
                        "nothing was switched: {id} is still live. Uploaded blobs are kept; run \
                         the same command again to finish"
                    ),
                    None => "nothing was switched: the tenant has no live deploy yet".to_string(),
                },
                SWITCHING => format!(
                    "interrupted while switching: either {} or {} is live (see `cfsetup sites {}`)",
                    plan.live_id().unwrap_or("nothing"),
                    plan.copy.deploy_id,
                    input.tenant
                ),
                _ => format!(
                    "{} is live; its domains may not all be attached yet: run the same command \
                     again",
                    plan.copy.deploy_id
                ),
            };
            ui.warn(format!("interrupted ({}): {state}", interrupt.signal()));
            Ok(Box::new(InterruptedReport {
                tenant: input.tenant.to_string(),
                interrupted: true,
                state,
            }))
        }
    }
}

/// One prepared tenant, planned then applied, with no Ctrl-C handling of its own: what
/// `deploy-sites` runs per tenant. The intent it writes is deleted whatever the outcome.
pub(crate) async fn deploy_prepared(
    shared: &Shared<'_>,
    prepared: &Prepared,
    ui: &Ui,
) -> anyhow::Result<DeployReport> {
    let input = &prepared.input;
    let deploy = Deploy::new(shared, input, ui);
    let result = async {
        let plan = deploy.plan(&prepared.files, prepared.rules.clone()).await?;
        let mut report = DeployReport::new(input, &plan, &prepared.walked, prepared.files.len());
        deploy
            .finish(&plan, &prepared.files, &mut report)
            .await
            .map(|()| report)
    }
    .await;
    deploy.drop_intent().await;
    result
}

/// The Route's rules: `_redirects` and `_headers` (Pages' syntax, `site::rules`), parsed before
/// any request; a bad line is exit 2 with `file:line` and the reason. Neither file is published.
fn rules_of(
    rule_files: &[SiteFile],
    input: &Input,
    files: &crate::site::manifest::Files,
    ui: &Ui,
) -> anyhow::Result<Rules> {
    let mut rules = Rules::none(input.not_found.resolve(files));
    if input.not_found == NotFound::Page404 && !files.keys().any(|p| p.ends_with("/404.html")) {
        // Accepted (the mode is still valid), but every missing path gets a bare 404.
        ui.warn(
            "--not-found 404 serves the nearest 404.html, but the site has none: missing paths \
             get a plain 404. Add a 404.html at the top, or use --not-found none",
        );
    }
    for f in rule_files {
        let text = std::fs::read_to_string(&f.path)
            .map_err(|e| usage!("{}: cannot be read as UTF-8 text ({e})", f.path.display()))?;
        let bad = |e: crate::site::rules::RuleError| {
            usage!("{e}").with_hint(format!(
                "{} follows Cloudflare Pages' syntax; fix the line, or remove the file",
                f.rel_url.trim_start_matches('/')
            ))
        };
        match f.rel_url.as_str() {
            "/_redirects" => {
                let r = crate::site::rules::parse_redirects(&text, &f.path).map_err(bad)?;
                ui.note(format!(
                    "_redirects: {} static and {} dynamic rule(s)",
                    r.static_rules.len(),
                    r.dynamic.len()
                ));
                rules.redirects = serde_json::to_value(r)?;
            }
            _ => {
                let h = crate::site::rules::parse_headers(&text, &f.path).map_err(bad)?;
                ui.note(format!("_headers: {} rule(s)", h.len()));
                rules.headers = serde_json::to_value(h)?;
            }
        }
    }
    Ok(rules)
}

/// Refuses, before any request, a site whose Route (its rules and 404 pages, which the head
/// carries and the router reads on every request) passes [`MAX_ROUTE_BYTES`]
/// (docs/storage-layout.md "Size bounds").
fn check_route_size(files: &[SiteFile], rules: &Rules) -> Result<(), crate::error::UsageError> {
    use crate::site::manifest::MAX_ROUTE_BYTES;
    use crate::site::rules::thousands;
    let route = crate::site::Route::sized_like(&files_map(files), rules);
    let total = len(&route);
    if total <= MAX_ROUTE_BYTES {
        return Ok(());
    }
    Err(usage!(
        "the site's rules and 404 pages make a Route of {} bytes; the limit is {} bytes \
         ({} KiB): _redirects {} bytes, _headers {} bytes, {} 404.html page(s) {} bytes",
        thousands(total),
        thousands(MAX_ROUTE_BYTES),
        MAX_ROUTE_BYTES / 1024,
        thousands(len(&route.redirects)),
        thousands(len(&route.headers)),
        route.not_found_pages.len(),
        thousands(len(&route.not_found_pages)),
    )
    .with_hint(
        "the Route goes into the tenant's head, which the router reads on every request; \
         shorten _redirects or _headers, or keep fewer 404.html pages (the nearest one up the \
         tree is served, so one at the top is enough)",
    ))
}

/// The compact JSON length of a value.
fn len<T: serde::Serialize>(v: &T) -> usize {
    serde_json::to_vec(v).map(|v| v.len()).unwrap_or(0)
}

/// What step 3 knows of the deploy it replaces, from reads made while the intent is written.
#[derive(Default)]
struct Known {
    /// Blobs the head's live deploy names (they exist: the invariant).
    hashes: BTreeSet<String>,
    /// The replaced deploy's files that this deploy may lack (all of a format 2 copy; those of
    /// the replaced shards of a format 3 one), for skew protection. None when not read.
    previous: Option<crate::site::manifest::Files>,
    /// The replaced deploy's own retained index (skew protection), when the head names one and
    /// this switch retains: read with the rest, before the writes.
    carried: Option<crate::site::manifest::RetainedIndex>,
}

/// What the reads decided.
struct Plan {
    platform_domain: Option<Hostname>,
    head: Option<ReadHead>,
    copy: DeployCopy,
    /// For a preview, its name.
    preview: Option<String>,
    /// The live deploy (or the same-named preview) has the same digest: nothing to switch.
    unchanged: bool,
    /// Each DOMAIN and the tenant its host entry names now.
    hosts: Vec<(Hostname, Option<Tenant>)>,
    /// Each DOMAIN's host entry ETag as read (`None`: no entry), for the compare-and-swap that
    /// writes it.
    host_etags: BTreeMap<Hostname, Option<String>>,
}

impl Plan {
    fn live_id(&self) -> Option<&str> {
        self.head.as_ref().and_then(ReadHead::live_id)
    }

    /// The live Route of the head read in step 1 (format 2 or 3).
    fn live_route(&self) -> Option<&crate::site::Route> {
        self.head
            .as_ref()
            .and_then(ReadHead::v2)
            .and_then(|h| h.live.as_ref())
    }
}

struct Deploy<'a> {
    client: &'a Client,
    storage: &'a Storage,
    blobs: &'a BlobSet,
    writes: &'a tokio::sync::Semaphore,
    input: &'a Input,
    ui: &'a Ui,
    phase: Arc<AtomicU8>,
    /// This run's intent `locks/deploys/<uuid>.json`, its lease, and where it stands.
    intent: IntentRecord,
    /// The zone's fallback origin, the CNAME target every DOMAIN shares: read once per run.
    fallback_origin: tokio::sync::OnceCell<Option<Hostname>>,
}

/// The intent of one deploy: its keys, its lease (started before its first write), the early
/// write made beside the head read, and the keys written to (each deleted at the end, once).
///
/// The early intent and a rewrite after a missed guess go under two keys, not one: R2 takes
/// one write per second per key (docs/cloudflare-api.md §7 "Limits"), so a second PUT of one
/// key a round trip after the first would wait a second (429, `Retry-After: 1`).
struct IntentRecord {
    early_key: String,
    key: String,
    lease: std::sync::Mutex<Option<Arc<Lease>>>,
    /// The early intent as sent beside the head read, and how that write went.
    early: tokio::sync::Mutex<Option<(Intent, anyhow::Result<()>)>>,
    /// The keys a write was sent to; taken (and deleted) once.
    sent: std::sync::Mutex<Option<Vec<String>>>,
}

impl IntentRecord {
    fn new() -> Self {
        IntentRecord {
            early_key: layout::intent_key(&locks::new_id()),
            key: layout::intent_key(&locks::new_id()),
            lease: std::sync::Mutex::new(None),
            early: tokio::sync::Mutex::new(None),
            sent: std::sync::Mutex::new(Some(Vec::new())),
        }
    }

    /// The lease, started now if this is the first write of the record.
    fn lease(&self, timing: &Timing) -> Arc<Lease> {
        let mut lease = self.lease.lock().unwrap_or_else(|e| e.into_inner());
        lease
            .get_or_insert_with(|| Arc::new(Lease::new(timing)))
            .clone()
    }
}

/// For a tenant this machine has not seen live (a new machine, a new tenant), the early intent
/// names every blob, which only a first deploy needs; past this many blobs it is not written
/// early (the intent is written after the head read, naming only what the live deploy lacks,
/// one round trip later), so a large site deployed from a fresh machine (CI without a cache)
/// does not write an intent of every hash.
const EARLY_INTENT_MAX_UNKNOWN: usize = 1024;

impl<'a> Deploy<'a> {
    fn new(shared: &Shared<'a>, input: &'a Input, ui: &'a Ui) -> Self {
        Deploy {
            client: shared.client,
            storage: shared.storage,
            blobs: shared.blobs,
            writes: shared.writes,
            input,
            ui,
            phase: Arc::new(AtomicU8::new(BEFORE_SWITCH)),
            intent: IntentRecord::new(),
            fallback_origin: tokio::sync::OnceCell::new(),
        }
    }

    /// Deletes every intent key a write was sent to, once, together; errors are ignored (a
    /// leftover intent goes stale and gc removes it).
    async fn drop_intent(&self) {
        let keys = self
            .intent
            .sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        futures::future::join_all(keys.iter().map(|k| self.storage.delete(k))).await;
    }

    /// Writes `intent` under `key` (the first write starts the lease).
    async fn write_intent(&self, intent: &Intent, key: &str) -> anyhow::Result<()> {
        let body = serde_json::to_vec(intent).context("serializing the intent")?;
        let _ = self.intent.lease(&self.input.timing);
        if let Some(sent) = self
            .intent
            .sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            if !sent.iter().any(|k| k == key) {
                sent.push(key.to_string());
            }
        }
        bucket::put_json(self.storage, self.bucket(), key, body).await
    }

    /// The intent to write before the head is read, predicting what the live deploy lacks from
    /// what this machine last saw live for the tenant ([`local_live`]): the blobs of the new
    /// shards that live Route did not name (every blob with `--force`). `None` when that Route
    /// has this deploy's digest (most likely nothing changed: the head alone decides), in a dry
    /// run, and for a tenant this machine has not seen whose deploy has more than
    /// [`EARLY_INTENT_MAX_UNKNOWN`] blobs (for one it has not seen, every blob is predicted
    /// missing: right for a first deploy). Whether the prediction holds is checked against the
    /// head before anything relies on it ([`Deploy::apply`]).
    fn early_intent(&self, copy: &DeployCopy) -> Option<Intent> {
        if self.input.dry_run {
            return None;
        }
        let last = local_live::read(&self.place());
        if let Some(last) = &last {
            if last.digest == copy.route.digest && !self.input.force {
                return None;
            }
        }
        let seen: BTreeSet<&str> = match (&last, self.input.force) {
            (Some(last), false) => last.shards.iter().map(String::as_str).collect(),
            _ => BTreeSet::new(),
        };
        let hashes = copy.blobs_outside(&seen);
        if last.is_none() && !self.input.force && hashes.len() > EARLY_INTENT_MAX_UNKNOWN {
            return None;
        }
        let shards: BTreeSet<&str> = copy.shard_bodies.iter().map(|(h, _)| h.as_str()).collect();
        Some(Intent::new(
            self.input.tenant.clone(),
            copy.deploy_id.clone(),
            hashes.into_iter().map(str::to_string).collect(),
            shards.into_iter().map(str::to_string).collect(),
            &self.input.timing,
        ))
    }

    /// The tenant in its bucket, for [`local_live`].
    fn place(&self) -> String {
        let loc = &self.input.loc;
        format!(
            "{}/{}/{}/{}",
            loc.account,
            loc.jurisdiction.as_deref().unwrap_or(""),
            loc.name,
            self.input.tenant
        )
    }

    /// Records `route` as this tenant's live Route as seen here (`None`, or a format 2 Route:
    /// forgets it), for the next deploy's guess.
    fn remember_live(&self, route: Option<&crate::site::Route>) {
        let last = route.and_then(|r| {
            Some(local_live::LastLive {
                digest: r.digest.clone(),
                shards: r.shard_hashes.clone()?,
            })
        });
        local_live::write(&self.place(), last.as_ref());
    }

    /// After [`plan`](Self::plan): the dry run, the domains of an unchanged site, or the whole
    /// apply (the caller then calls [`Deploy::drop_intent`], whatever happens), and the count
    /// of files whose blob was not sent.
    async fn finish(
        &self,
        plan: &Plan,
        files: &[SiteFile],
        report: &mut DeployReport,
    ) -> anyhow::Result<()> {
        if self.input.dry_run {
            return self.dry_run(plan, files, report).await;
        }
        if plan.unchanged {
            self.attach_domains(plan, report).await;
            return Ok(());
        }
        self.apply(plan, files, report).await?;
        let sent: BTreeSet<&str> = report.sent.iter().map(String::as_str).collect();
        report.unchanged = files
            .iter()
            .filter(|f| !sent.contains(f.hash.as_str()))
            .count();
        Ok(())
    }

    fn bucket(&self) -> &str {
        &self.input.loc.name
    }

    /// The reads (the platform domain, the head, the host entries) and, beside them, the
    /// early intent ([`Deploy::early_intent`]): the deploy's shards are known from the folder
    /// alone, so the intent need not wait for the head.
    async fn plan(&self, files: &[SiteFile], rules: Rules) -> anyhow::Result<Plan> {
        let input = self.input;
        // The deploy id is settled once the head is read (it must sort after the head's
        // newest); the shards and the digest do not depend on it.
        let copy = DeployCopy::build(
            &input.tenant,
            files_map(files),
            rules,
            SystemTime::now(),
            None,
        );
        let early = self.early_intent(&copy);
        let write_early = async {
            if let Some(intent) = early {
                let written = self.write_intent(&intent, &self.intent.early_key).await;
                *self.intent.early.lock().await = Some((intent, written));
            }
        };
        let (reads, ()) = tokio::join!(
            async {
                tokio::try_join!(
                    self.platform_domain(),
                    read_head(self.storage, self.bucket(), &input.tenant),
                    self.read_hosts(),
                )
            },
            write_early
        );
        let (platform_domain, head, read) = reads?;
        let hosts: Vec<(Hostname, Option<Tenant>)> = read
            .iter()
            .map(|(d, t, _)| (d.clone(), t.clone()))
            .collect();
        let host_etags = read.into_iter().map(|(d, _, e)| (d, e)).collect();
        if let Some(p) = &platform_domain {
            for d in &input.domains {
                crate::names::custom_domain(d, p)?;
            }
        }
        if let Some(why) = head.as_ref().and_then(|h| h.invalid.as_ref()) {
            self.ui.warn(format!(
                "the head {} is not valid ({why}); this deploy replaces it",
                layout::manifest_key(&input.tenant)
            ));
        }
        for (domain, holder) in &hosts {
            if let Some(other) = holder.as_ref().filter(|t| **t != input.tenant) {
                if input.take_over {
                    self.ui.note(format!(
                        "{domain} moves from tenant {other} to {} (--take-over-domain)",
                        input.tenant
                    ));
                } else {
                    return Err(anyhow::anyhow!(
                        "{domain} is already attached to tenant {other:?}; nothing was changed"
                    )
                    .context(format!(
                        "hosts/{domain}.json names another tenant: pass --take-over-domain to \
                         move it to {}",
                        input.tenant
                    )));
                }
            }
        }
        self.check_quota(&hosts).await?;
        let v2 = head.as_ref().and_then(ReadHead::v2);
        // What is live now, for the next deploy's guess (`local_live`).
        self.remember_live(v2.and_then(|h| h.live.as_ref()));
        let floor = v2
            .and_then(Head::newest_created_at)
            .map(str::to_string)
            .or_else(|| match head.as_ref().and_then(|h| h.head.as_ref()) {
                Some(StoredHead::V1(m)) => Some(m.created_at.clone()),
                _ => None,
            });
        let copy = copy.after(floor.as_deref());
        let preview = input.preview.as_ref().map(|n| match n {
            Some(n) => n.to_string(),
            None => copy.deploy_id[17..].to_string(),
        });
        // A named preview was parsed by `check`, which also refused a tenant too long for the
        // default name (8 hex digits of the deploy id, always a valid label).
        if preview.is_some() {
            // A head always has a live Route (the Worker refuses one without): a preview goes
            // beside a live format 2 deploy.
            if v2.and_then(|h| h.live.as_ref()).is_none() {
                anyhow::bail!(
                    "{} has no live deploy in format 2 yet, so there is nothing to put a preview \
                     beside; deploy it once without --preview (nothing was changed)",
                    input.tenant
                );
            }
        }
        // A format 2 Route with the same files is a change all the same: the next deploy
        // upgrades it to format 3 (content-addressed shards).
        let same = |r: Option<&crate::site::Route>| {
            r.is_some_and(|r| r.digest == copy.route.digest && r.shard_hashes.is_some())
        };
        // --force deploys even an unchanged site, checking every blob: it repairs a bucket
        // whose blobs were lost (cfsetup 0.1's prune).
        // A new password or end is a change even for the same files.
        let access = input.protect.is_some() || input.expires_at.is_some();
        let unchanged = !input.force
            && !access
            && match &preview {
                None => same(v2.and_then(|h| h.live.as_ref())),
                // A protected or expiring preview deployed again without those flags becomes
                // public and lasting: a change.
                Some(name) => same(
                    v2.and_then(|h| h.preview(name))
                        .filter(|r| r.protect.is_none() && r.expires_at.is_none()),
                ),
            };
        Ok(Plan {
            platform_domain,
            head,
            copy,
            preview,
            unchanged,
            hosts,
            host_etags,
        })
    }

    /// Before anything is written: a DOMAIN whose host entry does not name this tenant may need a
    /// new custom hostname, so read the zone's quota (docs/domains.md "Quota"). Past the
    /// allocation each new one is billed, so warn; at 90% of the hard cap, warn; at the hard cap,
    /// refuse (exit 1) unless every such DOMAIN's hostname exists already. A quota that cannot be
    /// read is a note, not a failure: the create's own refusal is handled too.
    async fn check_quota(&self, hosts: &[(Hostname, Option<Tenant>)]) -> anyhow::Result<()> {
        let input = self.input;
        let Some(zone) = input.zone.as_deref() else {
            return Ok(());
        };
        let new: Vec<&Hostname> = hosts
            .iter()
            .filter(|(_, h)| h.as_deref() != Some(input.tenant.as_str()))
            .map(|(d, _)| d)
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let q = match self.client.quota(zone).await {
            Ok(q) => q,
            Err(e) => {
                self.ui.note(format!(
                    "could not read the custom hostname quota ({e}); going on"
                ));
                return Ok(());
            }
        };
        let line = super::domains::quota_line(&q);
        if q.at_hard_cap() {
            let mut missing = Vec::new();
            for d in new {
                if self.client.find_custom_hostname(zone, d).await?.is_none() {
                    missing.push(d.clone());
                }
            }
            if !missing.is_empty() {
                return Err(anyhow::anyhow!(
                    "{} would need a new custom hostname, and the zone has {line}; nothing was changed",
                    missing.join(", ")
                )
                .context(domain::QUOTA_HINT));
            }
            return Ok(());
        }
        if q.used >= q.allocated {
            self.ui.warn(format!(
                "the zone is past its allocated custom hostname quota ({line}): each new one is \
                 billed at $0.10/month; `cfsetup domains prune` deletes unused ones"
            ));
        }
        if q.near_hard_cap() {
            self.ui.warn(format!(
                "the zone is near its custom hostname hard cap ({line}): creates are refused at \
                 the cap; `cfsetup domains prune` deletes unused ones"
            ));
        }
        Ok(())
    }

    /// Each DOMAIN, the tenant its host entry names, and the entry's ETag.
    #[allow(clippy::type_complexity)]
    async fn read_hosts(&self) -> anyhow::Result<Vec<(Hostname, Option<Tenant>, Option<String>)>> {
        let reads = self.input.domains.iter().map(|d| async move {
            let key = layout::host_key(d);
            let got =
                self.storage.get(&key).await.map_err(|e| {
                    bucket::bucket_error(e, self.bucket(), "reading the host entry")
                })?;
            let etag = got.as_ref().and_then(|o| o.meta.etag.clone());
            Ok::<_, anyhow::Error>((
                d.clone(),
                got.and_then(|o| layout::host_entry_tenant(&o.body)),
                etag,
            ))
        });
        futures::future::try_join_all(reads).await
    }

    /// The configured platform domain, or the zone's name when a zone ID is known.
    async fn platform_domain(&self) -> anyhow::Result<Option<Hostname>> {
        if let Some(d) = &self.input.platform_domain {
            return Ok(Some(d.clone()));
        }
        let Some(zone) = &self.input.zone else {
            self.ui.note(
                "set PLATFORM_DOMAIN (or CLOUDFLARE_ZONE_ID) to have the tenant's URL in the report",
            );
            return Ok(None);
        };
        platform::zone_domain(self.client, zone).await.map(Some)
    }

    /// The hashes the head's live deploy names that this deploy needs to know of: they exist
    /// (the invariant), so they need no check. For a format 3 live deploy, the blobs of the
    /// shards both deploys share are known without a read, and only the live deploy's shards
    /// that this one replaces are read (by hash; `shards/<h>.json` is immutable). An unreadable
    /// live copy or shard just means more is checked.
    async fn known_hashes(&self, head: Option<&ReadHead>, copy: &DeployCopy) -> Known {
        match head.and_then(|h| h.head.as_ref()) {
            Some(StoredHead::V1(m)) => Known {
                hashes: m.hashes().into_iter().map(str::to_string).collect(),
                ..Known::default()
            },
            Some(StoredHead::V2(h)) => {
                let Some(live) = &h.live else {
                    return Known::default();
                };
                if let Some(old) = &live.shard_hashes {
                    return self.known_from_shards(old, copy).await;
                }
                let key = layout::deploy_key(&h.tenant, &live.deploy_id);
                match self.storage.get(&key).await {
                    Ok(Some(o)) => match DeployCopy::parse(&o.body, &h.tenant) {
                        Ok(c) => Known {
                            hashes: c.hashes().into_iter().map(str::to_string).collect(),
                            previous: Some(c.files),
                            carried: None,
                        },
                        Err(_) => Known::default(),
                    },
                    _ => Known::default(),
                }
            }
            None => Known::default(),
        }
    }

    /// The blobs of the new shards the live deploy also has (no read), and of the live shards
    /// the new ones replace (read: the one at the same index when the counts match, else all).
    async fn known_from_shards(&self, old: &[String], copy: &DeployCopy) -> Known {
        let old_set: BTreeSet<&str> = old.iter().map(String::as_str).collect();
        let mut known = BTreeSet::new();
        let mut read: BTreeSet<&str> = BTreeSet::new();
        let same_count = old.len() == copy.shard_bodies.len();
        for ((k, shard), (hash, _)) in copy.shards().iter().zip(&copy.shard_bodies) {
            if old_set.contains(hash.as_str()) {
                known.extend(shard.hashes().into_iter().map(str::to_string));
            } else if same_count {
                read.insert(old[*k as usize].as_str());
            } else {
                read.extend(old_set.iter().copied());
            }
        }
        let got: Vec<Option<Shard>> = stream::iter(read)
            .map(|h| self.read_shard(h))
            .buffer_unordered(self.input.concurrency)
            .collect()
            .await;
        let mut previous = Some(crate::site::manifest::Files::new());
        for s in got {
            match s {
                Some(s) => {
                    known.extend(s.hashes().into_iter().map(str::to_string));
                    if let Some(p) = previous.as_mut() {
                        p.extend(s.files);
                    }
                }
                // Unreadable: more is checked, and skew protection reads the deploy whole.
                None => previous = None,
            }
        }
        Known {
            hashes: known,
            previous,
            carried: None,
        }
    }

    /// The shards the head read in step 1 vouches for (its live Route's): taken as existing, and
    /// their blobs as known. None with `--force`, which checks everything.
    fn vouched_shards<'p>(&self, plan: &'p Plan) -> BTreeSet<&'p str> {
        if self.input.force {
            return BTreeSet::new();
        }
        plan.live_route()
            .and_then(|r| r.shard_hashes.as_ref())
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }

    /// The blobs of the new shards the live deploy does not have, and every new shard hash:
    /// what the intent names. With `--force` every blob (a lost CAS re-checks them all).
    fn intent_names(&self, plan: &Plan) -> (Vec<String>, Vec<String>) {
        let copy = &plan.copy;
        let old = self.vouched_shards(plan);
        let hashes = copy.blobs_outside(&old);
        let shard_hashes: BTreeSet<&str> =
            copy.shard_bodies.iter().map(|(h, _)| h.as_str()).collect();
        (
            hashes.into_iter().map(str::to_string).collect(),
            shard_hashes.into_iter().map(str::to_string).collect(),
        )
    }

    /// One file per distinct hash that is not known to exist.
    fn to_check<'f>(files: &'f [SiteFile], known: &BTreeSet<String>) -> Vec<&'f SiteFile> {
        let mut first_of: BTreeMap<&str, &SiteFile> = BTreeMap::new();
        for f in files {
            if !known.contains(&f.hash) {
                first_of.entry(f.hash.as_str()).or_insert(f);
            }
        }
        first_of.into_values().collect()
    }

    /// `--dry-run`: which blobs are missing (reads only), and what the custom hostnames are.
    async fn dry_run(
        &self,
        plan: &Plan,
        files: &[SiteFile],
        report: &mut DeployReport,
    ) -> anyhow::Result<()> {
        if !plan.unchanged {
            let known = self.known_hashes(plan.head.as_ref(), &plan.copy).await;
            let check = Self::to_check(files, &known.hashes);
            let missing: Vec<&SiteFile> = stream::iter(check)
                .map(|f| async move {
                    let key = layout::blob_key(&f.hash);
                    let there =
                        self.storage.head(&key).await.map_err(|e| {
                            bucket::bucket_error(e, self.bucket(), "checking blobs")
                        })?;
                    Ok::<_, anyhow::Error>(there.is_none().then_some(f))
                })
                .buffer_unordered(self.input.concurrency)
                .try_filter_map(|f| async move { Ok(f) })
                .try_collect()
                .await?;
            let missing_hashes: BTreeSet<&str> = missing.iter().map(|f| f.hash.as_str()).collect();
            report.uploaded = missing.len();
            // Nothing is sent in a dry run: what would be is its own field.
            report.bytes_to_send = Some(missing.iter().map(|f| f.size).sum());
            report.unchanged = files
                .iter()
                .filter(|f| !missing_hashes.contains(f.hash.as_str()))
                .count();
        }
        if let Some(zone) = &self.input.zone {
            for (domain, holder) in &plan.hosts {
                let found = self
                    .client
                    .find_custom_hostname(zone, domain)
                    .await
                    .with_context(|| format!("looking up the custom hostname {domain}"))?;
                report.custom_hostnames.push(match found {
                    Some(ch) => HostnameReport::from(&ch, "exists", Vec::new()),
                    None => HostnameReport {
                        hostname: domain.to_string(),
                        action: "would create".into(),
                        ..HostnameReport::default()
                    },
                });
                report.host_entries.push(HostEntryReport {
                    domain: domain.to_string(),
                    action: match holder {
                        Some(t) if *t == self.input.tenant => "unchanged".into(),
                        Some(t) => format!("would move from {t}"),
                        None => "would create".into(),
                    },
                });
            }
        }
        Ok(())
    }

    /// Intent, marker wait, uploads, copy and shards, switch, domains (docs/storage-layout.md
    /// "deploy-site").
    ///
    /// The intent must name every blob the deploy will rely on without the head vouching for
    /// it (the blobs of the new shards the live Route lacks: [`Deploy::intent_names`]), and
    /// exist with that content before the markers are listed. The early intent, written beside
    /// the head read, names a prediction of them; when it covers them the markers are listed at
    /// once (beside the reads of the live shards this deploy replaces), else the intent is
    /// written again with them first, one round trip more.
    async fn apply(
        &self,
        plan: &Plan,
        files: &[SiteFile],
        report: &mut DeployReport,
    ) -> anyhow::Result<()> {
        let timing = self.input.timing;
        let (hashes, shards) = self.intent_names(plan);
        let early = self.intent.early.lock().await.take();
        let covered = match &early {
            Some((intent, Ok(()))) => {
                let named: BTreeSet<&str> = intent.hashes.iter().map(String::as_str).collect();
                hashes.iter().all(|h| named.contains(h.as_str())) && intent.shards == shards
            }
            _ => false,
        };
        if let Some((_, Err(e))) = early {
            return Err(e.context("writing this deploy's intent; nothing was changed"));
        }
        let known = async {
            let (known, carried) = tokio::join!(
                async {
                    if self.input.force {
                        Known::default()
                    } else {
                        self.known_hashes(plan.head.as_ref(), &plan.copy).await
                    }
                },
                self.read_carried(plan)
            );
            carried.map(|carried| Known { carried, ..known })
        };
        let (refresher, known, waited) = match early {
            Some((intent, _)) if covered => {
                // What the store holds names every blob this run relies on unvouched: refresh
                // it as it is (with the final deploy id), and list the markers now.
                let intent = Intent {
                    deploy_id: plan.copy.deploy_id.clone(),
                    ..intent
                };
                let refresher = self.refresher(&intent, &self.intent.early_key);
                let (known, waited) = tokio::join!(known, self.wait_for_sweeps());
                (refresher, known, waited)
            }
            _ => {
                let intent = Intent::new(
                    self.input.tenant.clone(),
                    plan.copy.deploy_id.clone(),
                    hashes,
                    shards,
                    &timing,
                );
                // The live shards this deploy replaces are read while the intent is written:
                // reads of immutable objects the head read in step 1 names.
                let (written, known) =
                    tokio::join!(self.write_intent(&intent, &self.intent.key), known);
                written.context("writing this deploy's intent; nothing was changed")?;
                // Under its own key (IntentRecord); an early intent that missed is left as it
                // is (nothing relies on it) and deleted with this one at the end.
                let refresher = self.refresher(&intent, &self.intent.key);
                // Only now: the markers must be listed after the intent exists as it is.
                let waited = self.wait_for_sweeps().await;
                (refresher, known, waited)
            }
        };
        let result = async {
            let known = known?;
            let waited = waited?;
            if !waited.is_zero() {
                report.waited_for_gc_secs = Some(waited.as_secs_f64());
            }
            let lease = self.intent.lease(&timing);
            self.apply_locked(plan, files, &known, report, &lease).await
        }
        .await;
        drop(refresher);
        result?;
        // After the switch the head names what the intent protected: the intent goes while the
        // domains are attached.
        tokio::join!(self.attach_domains(plan, report), self.drop_intent());
        Ok(())
    }

    /// Rewrites `intent` every `REFRESH` until the returned guard is dropped (also when the
    /// deploy is abandoned mid-way, on Ctrl-C: a refresh must not bring back an intent the run
    /// is about to delete).
    fn refresher(&self, intent: &Intent, key: &str) -> AbortOnDrop {
        AbortOnDrop(tokio::spawn(refresh(
            self.storage.clone(),
            key.to_string(),
            intent.clone(),
            self.input.timing,
            self.intent.lease(&self.input.timing),
        )))
    }

    /// After the marker wait: uploads, shards, copy and retained index together, then the
    /// switch.
    async fn apply_locked(
        &self,
        plan: &Plan,
        files: &[SiteFile],
        known: &Known,
        report: &mut DeployReport,
        lease: &Lease,
    ) -> anyhow::Result<()> {
        // The copy, like every write a gc could delete, only after the wait: a gc that listed
        // intents before ours existed, and lists `sites/` after the copy is written, would
        // find it named by no head and delete it (the stress test found this).
        let copy_key = layout::deploy_key(&self.input.tenant, &plan.copy.deploy_id);
        // After the wait, like blobs: a shard may be shared and old, so a running gc may be
        // deleting it; a create-only write (or HEAD) after the wait sees that.
        let check = Self::to_check(files, &known.hashes);
        let old = self.vouched_shards(plan);
        let (blobs, shards, copied, retained) = tokio::join!(
            self.ensure_blobs(&check, report),
            self.ensure_shards(&plan.copy, &old),
            bucket::put_json(self.storage, self.bucket(), &copy_key, plan.copy.to_bytes()),
            self.retain(plan, known.previous.as_ref(), known.carried.as_ref())
        );
        blobs?;
        shards?;
        copied?;
        // Kept locally by hash, so this machine's next deploy needs no read of the shards it
        // replaces (they are immutable: a name is its content).
        local_shards::write(&plan.copy.shard_bodies);
        let retained = retained?;
        report.retained_files = retained.as_ref().map_or(0, |r| r.files);
        self.switch(plan, files, report, lease, retained).await
    }

    /// Skew protection for a live switch: the retained index of this deploy (content-hashed
    /// files the deploy it replaces served and this one lacks, plus what that deploy's own index
    /// still retains), written to `deploys/<id>/retained.json` before the switch names it. Its
    /// blobs exist: the head being replaced names them (its live copy, or its retained index).
    /// `None` for a preview, with `--no-retain`, or when nothing is to be retained.
    ///
    /// `previous` is what step 3 read of the replaced deploy: its files (format 2), or those of
    /// its shards this deploy replaces (format 3; a path in a shard both deploys share is in
    /// both, so never retained). Without it (`--force`), the replaced deploy is read whole.
    async fn retain(
        &self,
        plan: &Plan,
        previous: Option<&crate::site::manifest::Files>,
        carried: Option<&crate::site::manifest::RetainedIndex>,
    ) -> anyhow::Result<Option<crate::site::manifest::Retained>> {
        use crate::site::manifest::RetainedIndex;
        let Some((window, live)) = self.retaining(plan) else {
            return Ok(None);
        };
        let tenant = &self.input.tenant;
        let previous = match previous {
            Some(f) => Some(DeployCopy {
                format: crate::site::manifest::FORMAT,
                tenant: tenant.clone(),
                deploy_id: live.deploy_id.clone(),
                created_at: live.created_at.clone(),
                route: live.clone(),
                files: f.clone(),
                shard_bodies: Vec::new(),
            }),
            None => self.read_whole(tenant, live).await?,
        };
        let Some(previous) = previous else {
            self.ui.warn(format!(
                "the live deploy {}'s copy cannot be read: no skew protection for this switch",
                live.deploy_id
            ));
            return Ok(None);
        };
        // This deploy's files: the copy holds them (built from the walk).
        let index = RetainedIndex::for_switch(
            &plan.copy.files,
            &previous,
            carried,
            SystemTime::now(),
            window,
        );
        let Some(summary) = index.summary() else {
            return Ok(None);
        };
        let body = serde_json::to_vec(&index).context("serializing the retained index")?;
        bucket::put_json(
            self.storage,
            self.bucket(),
            &layout::retained_key(tenant, &plan.copy.deploy_id),
            body,
        )
        .await?;
        Ok(Some(summary))
    }

    /// Whether this switch retains files (a live switch, not `--no-retain`, over a head with a
    /// live Route): the window and the Route being replaced.
    fn retaining<'p>(&self, plan: &'p Plan) -> Option<(Duration, &'p crate::site::Route)> {
        let (Some(window), None) = (self.input.retain, &plan.preview) else {
            return None;
        };
        let live = plan.head.as_ref().and_then(ReadHead::v2)?.live.as_ref()?;
        Some((window, live))
    }

    /// The replaced deploy's retained index, when the head names one and this switch retains:
    /// immutable, named by the head read in step 1, so it is read beside the marker listing.
    async fn read_carried(
        &self,
        plan: &Plan,
    ) -> anyhow::Result<Option<crate::site::manifest::RetainedIndex>> {
        let Some((_, live)) = self.retaining(plan) else {
            return Ok(None);
        };
        if plan
            .head
            .as_ref()
            .and_then(ReadHead::v2)
            .and_then(|h| h.retained.as_ref())
            .is_none()
        {
            return Ok(None);
        }
        let key = layout::retained_key(&self.input.tenant, &live.deploy_id);
        let got = self
            .storage
            .get(&key)
            .await
            .map_err(|e| bucket::bucket_error(e, self.bucket(), &format!("reading {key}")))?;
        Ok(got.and_then(|o| serde_json::from_slice(&o.body).ok()))
    }

    /// A deploy with all its files: its copy, plus its shards when it is format 3. None when
    /// any of it cannot be read.
    async fn read_whole(
        &self,
        tenant: &Tenant,
        live: &crate::site::Route,
    ) -> anyhow::Result<Option<DeployCopy>> {
        let key = layout::deploy_key(tenant, &live.deploy_id);
        let got = self
            .storage
            .get(&key)
            .await
            .map_err(|e| bucket::bucket_error(e, self.bucket(), &format!("reading {key}")))?;
        let Some(mut copy) = got.and_then(|o| DeployCopy::parse(&o.body, tenant).ok()) else {
            return Ok(None);
        };
        if let Some(hashes) = copy.route.shard_hashes.clone() {
            let shards: Vec<Option<Shard>> = stream::iter(hashes)
                .map(|h| async move { self.read_shard(&h).await })
                .buffer_unordered(self.input.concurrency)
                .collect()
                .await;
            for s in shards {
                let Some(s) = s else { return Ok(None) };
                copy.files.extend(s.files);
            }
        }
        Ok(Some(copy))
    }

    /// A content-addressed shard by its hash: from this machine's cache when it is there (checked
    /// against its name), else from the store. `None` when it cannot be read or does not hash
    /// to its name.
    async fn read_shard(&self, hash: &str) -> Option<Shard> {
        if let Some(s) = local_shards::read(hash) {
            return Some(s);
        }
        let o = self
            .storage
            .get(&layout::cas_shard_key(hash))
            .await
            .ok()??;
        Shard::parse(&o.body, Some(hash)).ok()
    }

    /// Lists the sweep markers and waits until every fresh one seen now is gone or stale: a gc
    /// that listed intents before this run's existed may be deleting.
    async fn wait_for_sweeps(&self) -> anyhow::Result<Duration> {
        bucket::wait_for_sweeps(self.storage, self.bucket(), self.input.timing, self.ui).await
    }

    /// Checks each file's blob and uploads the missing ones, `--concurrency` at once.
    async fn ensure_blobs(
        &self,
        check: &[&SiteFile],
        report: &mut DeployReport,
    ) -> anyhow::Result<()> {
        if check.is_empty() {
            return Ok(());
        }
        // In a fleet, the run's one bar counts tenants; one bar per tenant would fight over it.
        let bar = if self.input.in_fleet {
            indicatif::ProgressBar::hidden()
        } else {
            self.ui
                .progress(check.len() as u64, "checking and uploading")
        };
        let mut results = stream::iter(check)
            .map(|f| async move { self.ensure_one(f).await.map(|sent| (f, sent)) })
            .buffer_unordered(self.input.concurrency);
        let mut failure = None;
        while let Some(result) = results.next().await {
            match result {
                Ok((f, sent)) => {
                    report.checked += 1;
                    if sent {
                        report.uploaded += 1;
                        report.bytes_sent += f.size;
                        report.sent.push(f.hash.clone());
                    }
                    bar.inc(1);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(results);
        bar.finish_and_clear();
        match failure {
            None => Ok(()),
            Some(e) => {
                let changed = e.chain().any(|c| {
                    matches!(
                        c.downcast_ref::<crate::storage::StorageError>(),
                        Some(crate::storage::StorageError::ChangedOnDisk { .. })
                    )
                });
                let what = if changed {
                    // Not an interruption: the folder changed under the deploy (a build still
                    // writing it); running again at once would hash the new bytes.
                    format!(
                        "a file changed on disk while it was being uploaded, after {} new \
                         file(s); nothing was switched, the live site is unchanged: run the \
                         command again once the folder is no longer being written",
                        report.uploaded
                    )
                } else {
                    format!(
                        "upload interrupted after {} new file(s); the live site is unchanged: \
                         run the same command again to finish (uploaded files are not sent twice)",
                        report.uploaded
                    )
                };
                Err(e.context(what))
            }
        }
    }

    /// Makes sure `blobs/<hash>` exists, once per run whichever tenant asks first; returns
    /// whether this call sent it.
    async fn ensure_one(&self, f: &SiteFile) -> anyhow::Result<bool> {
        let cell = self.blobs.cell(&f.hash);
        let mut sent = false;
        cell.get_or_try_init(|| async {
            sent = self.ensure_in_store(f).await?;
            Ok::<(), anyhow::Error>(())
        })
        .await?;
        Ok(sent)
    }

    /// Checks the store for `blobs/<hash>` and uploads it if missing; returns whether it was sent.
    async fn ensure_in_store(&self, f: &SiteFile) -> anyhow::Result<bool> {
        // Closed never: the semaphore lives as long as the run.
        let _permit = self.writes.acquire().await.context("the write limit")?;
        let key = layout::blob_key(&f.hash);
        let payload = Payload::File {
            path: f.path.clone(),
            len: f.size,
            sha256: f.hash.clone(),
        };
        let options = PutOptions {
            mode: PutMode::Overwrite,
            content_type: Some(f.content_type.clone()),
            cache_control: None,
        };
        if self.storage.conditional_writes_are_atomic() && f.size <= CREATE_PUT_MAX {
            match self
                .storage
                .put(&key, payload, options.with_mode(PutMode::Create))
                .await
            {
                Ok(_) => {}
                Err(e) if e.is_precondition_failed() => return Ok(false),
                Err(e) => {
                    return Err(anyhow::Error::new(e).context(format!("uploading {}", f.rel_url)))
                }
            }
        } else {
            let there = self
                .storage
                .head(&key)
                .await
                .with_context(|| format!("checking {}", f.rel_url))?;
            if there.is_some() {
                return Ok(false);
            }
            self.storage
                .put(&key, payload, options)
                .await
                .with_context(|| format!("uploading {}", f.rel_url))?;
        }
        // A file edited while it uploads is refused by the store (its bytes no longer hash to the
        // key: StorageError::ChangedOnDisk, nothing stored). What was stored is right for its
        // hash, so it is never deleted here: another deploy may already rely on it.
        Ok(true)
    }

    /// The content-addressed shards the live deploy (`old`) lacks, each once: a create-only
    /// PUT where the store enforces it (412: another deploy or tenant has it), else HEAD then
    /// PUT.
    async fn ensure_shards(&self, copy: &DeployCopy, old: &BTreeSet<&str>) -> anyhow::Result<()> {
        let mut todo: BTreeMap<&str, &[u8]> = BTreeMap::new();
        for (h, b) in &copy.shard_bodies {
            if !old.contains(h.as_str()) {
                todo.insert(h, b);
            }
        }
        stream::iter(todo)
            .map(|(hash, body)| async move {
                let key = layout::cas_shard_key(hash);
                let _permit = self.writes.acquire().await.context("the write limit")?;
                let payload = Payload::Bytes(Bytes::copy_from_slice(body));
                let options = PutOptions::overwrite("application/json");
                let err = |e| bucket::bucket_error(e, self.bucket(), &format!("writing {key}"));
                if self.storage.conditional_writes_are_atomic() {
                    match self
                        .storage
                        .put(&key, payload, options.with_mode(PutMode::Create))
                        .await
                    {
                        Ok(_) => Ok(()),
                        Err(e) if e.is_precondition_failed() => Ok(()),
                        Err(e) => Err(err(e)),
                    }
                } else {
                    if self.storage.head(&key).await.map_err(err)?.is_some() {
                        return Ok(());
                    }
                    self.storage
                        .put(&key, payload, options)
                        .await
                        .map(|_| ())
                        .map_err(err)
                }
            })
            .buffer_unordered(self.input.concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// The compare-and-swap of the head ([`Switch`]); with `--force`, retried on the newest head.
    async fn switch(
        &self,
        plan: &Plan,
        files: &[SiteFile],
        report: &mut DeployReport,
        lease: &Lease,
        retained: Option<crate::site::manifest::Retained>,
    ) -> anyhow::Result<()> {
        let tenant = &self.input.tenant;
        let by = format!("deploy-site {} ({})", plan.copy.deploy_id, locks::owner());
        super::warn_rest_switch(self.storage, tenant, self.ui);
        let mut steps = DeploySteps {
            deploy: self,
            plan,
            files,
            lease,
            retained,
            by: &by,
            dropped: Vec::new(),
        };
        let switched = Switch {
            storage: self.storage,
            bucket: self.bucket(),
            tenant,
            own: Some((&plan.copy.deploy_id, &by)),
            budget: Some(self.input.timing.switch_budget()),
            unanswered: format!(
                "switching to {}; it may or may not be live now (run `cfsetup sites {tenant}` to \
                 see)",
                plan.copy.deploy_id
            ),
            nothing_was: "switched",
        }
        .run(plan.head.clone(), &mut steps)
        .await?;
        self.phase.store(SWITCHED, Ordering::SeqCst);
        if plan.preview.is_none() {
            self.remember_live(Some(&plan.copy.route));
        }
        report.dropped_from_kept = steps.dropped;
        report.forced = switched.retried;
        Ok(())
    }

    /// Writes `hosts/<domain>.json` naming this tenant, only over what the plan read: over S3 a
    /// create-only PUT (`If-None-Match: *`) when there was no entry, an `If-Match` on its ETag
    /// when it moves (`--take-over-domain`), so of two runs claiming one domain exactly one wins
    /// (docs/storage-layout.md "Host entries"). Over REST, where conditions are checked just
    /// before the write, the entry is read back after writing and a loss is reported.
    async fn claim_host(
        &self,
        domain: &Hostname,
        holder: Option<&Tenant>,
        etag: Option<String>,
    ) -> anyhow::Result<()> {
        let tenant = &self.input.tenant;
        let key = layout::host_key(domain);
        let mode = match (holder, etag) {
            (None, _) => PutMode::Create,
            (Some(_), Some(etag)) => PutMode::Update(etag),
            // An entry without an ETag (an API that gave none): only a plain write is possible.
            (Some(_), None) => PutMode::Overwrite,
        };
        let lost = |now: Option<Tenant>| {
            let who = now.map_or_else(
                || "changed by another run".to_string(),
                |t| format!("attached to tenant {t}"),
            );
            anyhow::anyhow!(
                "another run claimed {domain} while this deploy ran: it is {who}; pass \
                 --take-over-domain to move it to {tenant}"
            )
        };
        let body = Bytes::from(layout::host_entry(tenant));
        let written = self
            .storage
            .put(
                &key,
                Payload::Bytes(body),
                PutOptions::overwrite("application/json").with_mode(mode),
            )
            .await;
        let now = || async {
            self.storage
                .get(&key)
                .await
                .map_err(|e| bucket::bucket_error(e, self.bucket(), "reading the host entry"))
                .map(|o| o.and_then(|o| layout::host_entry_tenant(&o.body)))
        };
        match written {
            Ok(_) => {}
            Err(e) if e.is_precondition_failed() => {
                // A 412 may answer a retry of this run's own write: the entry then names us.
                let holder = now().await?;
                if holder.as_deref() == Some(tenant.as_str()) {
                    return Ok(());
                }
                return Err(lost(holder));
            }
            Err(e) => {
                return Err(bucket::bucket_error(
                    e,
                    self.bucket(),
                    "writing the host entry",
                ))
            }
        }
        if !self.storage.conditional_writes_are_atomic() {
            // Best effort over REST: another writer between the check and the write wins if it
            // wrote last; read back, and say so.
            let holder = now().await?;
            if holder.as_deref() != Some(tenant.as_str()) {
                return Err(lost(holder));
            }
        }
        Ok(())
    }

    /// For each DOMAIN: the custom hostname first, then the host entry, so a refused domain
    /// (1409, 1411) never gets one.
    async fn attach_domains(&self, plan: &Plan, report: &mut DeployReport) {
        for (domain, holder) in &plan.hosts {
            match self.custom_hostname(domain, report).await {
                Ok(ch) => {
                    let action = if holder.as_ref() == Some(&self.input.tenant) {
                        "unchanged".to_string()
                    } else {
                        let etag = plan.host_etags.get(domain).cloned().flatten();
                        match self.claim_host(domain, holder.as_ref(), etag).await {
                            Ok(()) => match holder {
                                Some(t) => format!("moved from {t}"),
                                None => "created".into(),
                            },
                            Err(e) => {
                                let e = format!("{e:#}");
                                self.ui.warn(format!("{domain}: {e}"));
                                report.fail(format!("{domain}: {e}"));
                                if holder.is_none() {
                                    report.refuse(domain);
                                }
                                "lost".into()
                            }
                        }
                    };
                    report.host_entries.push(HostEntryReport {
                        domain: domain.to_string(),
                        action,
                    });
                    report.custom_hostnames.push(ch);
                }
                Err(e) => {
                    // The error's own hint (the permission and the zone, a rolled token), which
                    // the one-line form below would otherwise lose.
                    let why = match crate::exit::hints(&e).join("; ") {
                        h if h.is_empty() => format!("{e:#}"),
                        h => format!("{e:#} ({h})"),
                    };
                    // An entry this tenant held before stays only if its hostname exists; one
                    // written for this run never was.
                    self.ui.warn(format!(
                        "the site is live, but attaching {domain} failed: {why}"
                    ));
                    report.fail(format!("attaching {domain} failed: {why}"));
                    if holder.as_deref() != Some(self.input.tenant.as_str()) {
                        report.refuse(domain);
                    }
                    report.host_entries.push(HostEntryReport {
                        domain: domain.to_string(),
                        action: match holder {
                            Some(t) if *t == self.input.tenant => "unchanged".into(),
                            Some(_) => "not moved".into(),
                            None => "not created".into(),
                        },
                    });
                    report.custom_hostnames.push(HostnameReport {
                        hostname: domain.to_string(),
                        action: "refused".into(),
                        error: Some(why),
                        ..HostnameReport::default()
                    });
                }
            }
        }
    }
}

/// A task aborted when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Rewrites the intent every `timing.refresh` while the run lives.
async fn refresh(
    storage: Storage,
    key: String,
    mut intent: Intent,
    timing: Timing,
    lease: Arc<Lease>,
) {
    loop {
        tokio::time::sleep(timing.refresh).await;
        let (at, wall) = (Instant::now(), SystemTime::now());
        intent.refreshed_at = locks::rfc3339(wall);
        let body = Bytes::from(serde_json::to_vec(&intent).expect("an intent serializes"));
        let ok = storage
            .put(
                &key,
                Payload::Bytes(body),
                PutOptions::overwrite("application/json"),
            )
            .await
            .is_ok();
        if ok {
            lease.refreshed(at, wall);
        }
    }
}

/// deploy-site's part of the switch: the head with this deploy live (or as a preview), the
/// lease checked before each compare-and-swap, the phase kept for Ctrl-C's message, and on a
/// `--force` retry every blob and shard checked again.
struct DeploySteps<'d, 'a> {
    deploy: &'d Deploy<'a>,
    plan: &'d Plan,
    files: &'d [SiteFile],
    lease: &'d Lease,
    retained: Option<crate::site::manifest::Retained>,
    by: &'d str,
    /// Deploys dropped from `kept` by the head last built.
    dropped: Vec<String>,
}

impl SwitchSteps for DeploySteps<'_, '_> {
    fn next(&mut self, base: Option<&Head>) -> anyhow::Result<Option<Head>> {
        let (d, plan) = (self.deploy, self.plan);
        let tenant = &d.input.tenant;
        let (mut head, mut dropped) = match &plan.preview {
            None => Head::with_live(
                tenant,
                base,
                plan.copy.route.clone(),
                self.by.to_string(),
                SystemTime::now(),
            ),
            Some(name) => Head::with_preview(
                tenant,
                base,
                name,
                crate::site::Route {
                    expires_at: d.input.expires_at.clone(),
                    protect: d.input.protect.clone(),
                    ..plan.copy.route.clone()
                },
                self.by.to_string(),
                SystemTime::now(),
            ),
        };
        if plan.preview.is_none() {
            if d.input.no_prune {
                head.kept.append(&mut dropped);
            }
            head.retained = self.retained.clone();
        }
        if let Some(warning) = shed_previews(&mut head, plan.preview.as_deref()) {
            d.ui.warn(warning);
        }
        self.dropped = dropped;
        Ok(Some(head))
    }

    /// The intent must have been fresh the whole time, and stay fresh until this switch lands
    /// (bounded by the switch budget): otherwise a gc may have deleted what it names.
    fn writing(&mut self) -> anyhow::Result<()> {
        if self.lease.lapsed() {
            anyhow::bail!(
                "this deploy was paused or lost its lease for longer than {}; nothing was \
                 switched, the previous deploy is still live; run it again",
                humantime::format_duration(self.lease.safe_age())
            );
        }
        self.deploy.phase.store(SWITCHING, Ordering::SeqCst);
        Ok(())
    }

    fn unwritten(&mut self) {
        self.deploy.phase.store(BEFORE_SWITCH, Ordering::SeqCst);
    }

    async fn retry(&mut self, lost: &Lost) -> anyhow::Result<()> {
        let d = self.deploy;
        let tenant = &d.input.tenant;
        let what = lost.describe();
        if !d.input.force {
            anyhow::bail!(
                "another run switched {tenant} while this deploy ran: {what} is live now. This \
                 deploy ({}) was uploaded but not switched; run the same command again to deploy \
                 on top of it, or pass --force to switch anyway",
                self.plan.copy.deploy_id
            );
        }
        d.ui.warn(format!(
            "another run switched {tenant} meanwhile ({what}); --force: switching on top of it"
        ));
        // The hashes assumed from the old live deploy are no longer vouched for by the head this
        // CAS will replace: check them all.
        let all = Deploy::to_check(self.files, &BTreeSet::new());
        d.ensure_blobs(&all, &mut DeployReport::scratch()).await?;
        d.ensure_shards(&self.plan.copy, &BTreeSet::new()).await
    }
}

#[cfg(test)]
mod tests {
    use super::domain::*;
    use crate::cloudflare::custom_hostnames::CustomHostname;
    use crate::cloudflare::custom_hostnames::{OwnershipVerification, Ssl, ValidationRecord};

    #[test]
    fn apex_domains_are_spotted() {
        assert!(looks_like_apex("acme-store.com"));
        assert!(looks_like_apex("acme.co.uk"));
        assert!(!looks_like_apex("shop.acme-store.com"));
        assert!(!looks_like_apex("www.acme.co.uk"));
    }

    #[test]
    fn dns_records_cover_cname_ownership_and_validation() {
        let ch = CustomHostname {
            id: "id1".into(),
            hostname: "shop.acme.com".into(),
            status: Some("pending".into()),
            ssl: Some(Ssl {
                status: Some("pending_validation".into()),
                validation_records: Some(vec![
                    ValidationRecord {
                        txt_name: Some("_acme-challenge.shop.acme.com".into()),
                        txt_value: Some("abc".into()),
                        ..Default::default()
                    },
                    ValidationRecord {
                        http_url: Some("http://shop.acme.com/.well-known/x".into()),
                        http_body: Some("body".into()),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
            ownership_verification: Some(OwnershipVerification {
                kind: Some("txt".into()),
                name: Some("_cf-custom-hostname.shop.acme.com".into()),
                value: Some("uuid".into()),
            }),
            verification_errors: None,
            custom_metadata: None,
            created_at: None,
        };
        let recs = dns_records(&ch, "shop.acme.com", Some("fallback.getai.page"), false);
        let kinds: Vec<(&str, &str, &str)> = recs
            .iter()
            .map(|r| (r.kind.as_str(), r.name.as_str(), r.value.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("CNAME", "shop.acme.com", "fallback.getai.page"),
                ("TXT", "_cf-custom-hostname.shop.acme.com", "uuid"),
                ("TXT", "_acme-challenge.shop.acme.com", "abc"),
                ("HTTP", "http://shop.acme.com/.well-known/x", "body"),
            ]
        );
        assert_eq!(
            pending_parts(&ch),
            ["hostname pending", "certificate pending_validation"]
        );
        assert!(!is_active(&ch));
    }
}
