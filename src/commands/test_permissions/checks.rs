//! The 8 permission checks: one real API round trip (or create-and-delete) per permission, run
//! concurrently, leaving nothing behind. `test-permissions`, `create-token` and `demo` all call
//! [`run`] with a client of their own and render its [`CheckRun`] with the same table code.
//!
//! How each check proves its permission is written in `src/permissions.rs` (`Permission::proof`).
//! Facts it relies on:
//! - a valid credential lacking a permission gets 403 with code 10000 (docs/cloudflare-api.md §1 table);
//!   9109 means the token's resources do not include the account or zone, except 9109 "Cannot use
//!   the access token from location: <ip>" (an IP-restricted token used from elsewhere, §4); that
//!   one and 1000/6003/9103/9106 are failures of the credential itself, so the checks "could not
//!   run" rather than "failed";
//! - a route may have no script, and then runs no Worker (§9), so the temporary route is harmless;
//!   its pattern must include the zone's name (§9, 10022), which is why the Routes check needs the
//!   zone's name from Zone Read or `PLATFORM_DOMAIN`;
//! - auth comes before body validation (§11, unconfirmed but the emulator and the evidence agree),
//!   so an empty custom hostname is refused with 400 when the token may create custom hostnames and
//!   with 403/10000 when it may not: the SSL and Certificates Write check is a probe that creates
//!   nothing. Should the API ever accept it, the created hostname is deleted and the report says so;
//! - R2 bucket names are 3–63 of `[a-z0-9-]` (§7) and script names start with a letter (§8):
//!   `cfsetup-check-<unix secs>-<4 hex>` is valid as both, and as a hostname label.
//!
//! Nothing is left behind: each temporary resource is registered *before* it is created, and
//! whatever is still registered when the checks end — passed, failed, errored or interrupted with
//! Ctrl-C — is deleted (deleting a missing one is fine). A crash can still leave one, so each run
//! also sweeps resources carrying the prefix whose timestamp is older than ten minutes, at the same
//! time as the checks (never before them: the wall time stays near two round trips).
//!
//! It imports the API client, `storage::s3` and `platform`, never another command.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::{join_all, BoxFuture, FutureExt};
use serde::Serialize;
use serde_json::json;

use crate::cloudflare::accounts::Zone;
use crate::cloudflare::r2::BucketRef;
use crate::cloudflare::workers::ScriptUpload;
use crate::cloudflare::{Client, Error};
use crate::names::BucketName;
use crate::names::Hostname;
use crate::output::Renderer;
use crate::permissions::{self, Check, Permission, Scope, PERMISSIONS};

/// Every temporary resource's name starts with this.
pub const TEMP_PREFIX: &str = "cfsetup-check-";
/// A leftover older than this is an earlier crash's, not a concurrent run's: sweep it.
pub const SWEEP_AFTER: Duration = Duration::from_secs(10 * 60);
/// The token name pre-filled by the dashboard link in a fix.
const DASHBOARD_TOKEN_NAME: &str = "cfsetup platform";

/// What the checks run against.
#[derive(Debug, Clone)]
pub struct Target {
    pub account_id: String,
    pub zone_id: String,
    /// A domain in the zone for the temporary route; `None` takes the zone's name from Zone Read.
    pub platform_domain: Option<Hostname>,
    /// Skip the write round trips and report those checks as skipped.
    pub read_only: bool,
    /// `--s3-endpoint` / `R2_S3_ENDPOINT`; `None` is the account's own S3 endpoint.
    pub s3_endpoint: Option<url::Url>,
}

/// The result of one check, as the table and `--json` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Outcome {
    #[serde(rename = "passed")]
    Passed,
    /// The API refused for lack of this permission.
    #[serde(rename = "failed")]
    Failed,
    /// `--read-only`.
    #[serde(rename = "skipped")]
    Skipped,
    /// The check could not be attempted (the Routes check without the zone's name).
    #[serde(rename = "not run")]
    NotRun,
    /// Something other than the permission went wrong (network, 5xx, R2 not enabled, …).
    #[serde(rename = "error")]
    Error,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::NotRun => "not run",
            Outcome::Error => "error",
        }
    }
}

/// What to add to the token when a check failed.
#[derive(Debug, Clone, Serialize)]
pub struct Fix {
    pub permission: &'static str,
    /// `account <id>` or `zone <id>`.
    pub resource: String,
    pub text: String,
    pub dashboard_url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub permission: &'static str,
    pub scope: Scope,
    pub result: Outcome,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<Fix>,
}

/// All 8 results, in the table's order, plus what the sweep removed.
#[derive(Debug, Serialize)]
pub struct CheckRun {
    pub checks: Vec<CheckResult>,
    pub passed: usize,
    pub total: usize,
    /// `N/8 checks passed`, as printed.
    pub summary: String,
    /// Leftovers of earlier runs that this run deleted, e.g. `bucket cfsetup-check-…`.
    pub swept: Vec<String>,
    /// Temporary resources this run could not delete (a warning names each).
    pub left_behind: Vec<String>,
    pub interrupted: bool,
    /// Why the checks could not run at all (invalid credential, no network), if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub could_not_run: Option<String>,
    #[serde(skip)]
    fatal: Option<anyhow::Error>,
}

impl CheckRun {
    /// `N/8 checks passed`, printed exactly.
    pub fn summary(&self) -> String {
        summary(self.passed, self.total)
    }

    pub fn any(&self, outcome: Outcome) -> bool {
        self.checks.iter().any(|c| c.result == outcome)
    }

    /// The error that stopped the checks (a credential refused, the API unreachable), taken out
    /// so the command can return it with its hint.
    pub fn take_fatal(&mut self) -> Option<anyhow::Error> {
        self.fatal.take()
    }

    /// 130 when the run was interrupted (Ctrl-C, SIGTERM); 3 when a check failed; 1 when a check
    /// errored, the run could not run, or something was left behind; 0 otherwise (skipped checks
    /// do not count against it).
    pub fn exit_code(&self) -> u8 {
        if self.interrupted {
            crate::error::EXIT_INTERRUPTED
        } else if self.could_not_run.is_some() {
            1
        } else if self.any(Outcome::Failed) {
            3
        } else if self.any(Outcome::Error) || !self.left_behind.is_empty() {
            1
        } else {
            0
        }
    }

    /// What went wrong, one sentence each: the summary, each check that did not pass, what was
    /// left behind, why the checks could not run.
    pub fn failures(&self) -> Vec<String> {
        let mut out = vec![self.summary()];
        for c in &self.checks {
            if matches!(c.result, Outcome::Failed | Outcome::Error) {
                out.push(format!("{}: {}", c.permission, c.detail));
            }
        }
        for l in &self.left_behind {
            out.push(format!("left behind: {l}"));
        }
        if let Some(why) = &self.could_not_run {
            out.push(format!("could not run: {why}"));
        }
        if self.interrupted {
            out.push("interrupted".into());
        }
        out
    }

    /// The table, the fixes, the sweep, and the summary line.
    pub fn render(&self, out: &mut Renderer) {
        let rows = self
            .checks
            .iter()
            .map(|c| {
                vec![
                    c.permission.to_string(),
                    c.scope.label().to_string(),
                    c.result.label().to_string(),
                    c.detail.clone(),
                ]
            })
            .collect();
        out.table(&["permission", "scope", "result", "detail"], rows);
        let fixes: Vec<&Fix> = self.checks.iter().filter_map(|c| c.fix.as_ref()).collect();
        if !fixes.is_empty() {
            out.heading("To fix:");
            for f in &fixes {
                out.line(format!("  - {}", f.text));
            }
            out.line(
                "  Edit the token in the dashboard (My Profile > API Tokens), or create one \
                 pre-filled with all 8 permissions:",
            );
            out.line(format!("  {}", fixes[0].dashboard_url));
        }
        if !self.swept.is_empty() {
            out.heading("Swept leftovers of an earlier interrupted run:");
            for s in &self.swept {
                out.line(format!("  - {s}"));
            }
        }
        if !self.left_behind.is_empty() {
            out.heading("Could not delete (remove by hand, or the next run sweeps them):");
            for s in &self.left_behind {
                out.line(format!("  - {s}"));
            }
        }
        if let Some(why) = &self.could_not_run {
            out.heading(format!("The checks could not run: {why}"));
        }
        out.blank();
        out.line(self.summary());
    }
}

fn summary(passed: usize, total: usize) -> String {
    format!("{passed}/{total} checks passed")
}

/// A temporary resource, registered before it is created.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Temp {
    Bucket(String),
    Script(String),
    Route { pattern: String, id: Option<String> },
    CustomHostname { id: String, hostname: String },
}

impl Temp {
    fn describe(&self) -> String {
        match self {
            Temp::Bucket(n) => format!("bucket {n}"),
            Temp::Script(n) => format!("script {n}"),
            Temp::Route { pattern, .. } => format!("route {pattern}"),
            Temp::CustomHostname { hostname, .. } => format!("custom hostname {hostname}"),
        }
    }
}

type Registry = Arc<Mutex<Vec<Temp>>>;

fn register(reg: &Registry, t: Temp) {
    reg.lock().unwrap_or_else(|p| p.into_inner()).push(t);
}

fn unregister(reg: &Registry, t: &Temp) {
    reg.lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|x| x != t);
}

/// Remembers the id of a registered route once the API has given it.
fn set_route_id(reg: &Registry, pattern: &str, id: &str) {
    for t in reg.lock().unwrap_or_else(|p| p.into_inner()).iter_mut() {
        if let Temp::Route {
            pattern: p,
            id: slot,
        } = t
        {
            if p == pattern {
                *slot = Some(id.to_string());
            }
        }
    }
}

/// The account's scripts, not counting the temporary ones of a check (this run's Scripts Write
/// check may be uploading one while Scripts Read lists them).
fn user_scripts(scripts: &[crate::cloudflare::workers::ScriptSummary]) -> usize {
    scripts
        .iter()
        .filter(|s| !s.id.starts_with(TEMP_PREFIX))
        .count()
}

/// Whether a failed create certainly created nothing: the API answered it with a 4xx refusal
/// (403 without the permission, 400, 409). A lost answer or a 5xx may hide a created resource, so
/// those stay registered for the cleanup to look for.
fn refused(e: &Error) -> bool {
    matches!(e, Error::Api { status, .. } if (400..500).contains(status))
}

/// `cfsetup-check-<unix secs>-<4 hex>`.
pub fn temp_name(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    format!("{TEMP_PREFIX}{secs}-{:04x}", rand::random::<u16>())
}

/// Is `name` (a bucket or script name, or a route's first host label) a temporary resource made
/// more than [`SWEEP_AFTER`] before `now`?
pub fn is_stale(name: &str, now: SystemTime) -> bool {
    let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
        return false;
    };
    let Some(secs) = rest.split('-').next().and_then(|s| s.parse::<u64>().ok()) else {
        return false;
    };
    let made = UNIX_EPOCH + Duration::from_secs(secs);
    now.duration_since(made).is_ok_and(|age| age > SWEEP_AFTER)
}

/// The first host label of a route pattern (`cfsetup-check-1-abcd.example.com/*` →
/// `cfsetup-check-1-abcd`).
fn route_label(pattern: &str) -> &str {
    pattern.split(['.', '/']).next().unwrap_or("")
}

/// The token's id (its S3 Access Key ID) once known, or why it is not, shared by the checks that
/// need it.
pub type TokenId<'a> = BoxFuture<'a, Result<String, String>>;

/// Runs the 8 checks and the sweep concurrently, then cleans up. Never returns early without
/// cleaning up, and answers Ctrl-C and SIGTERM the same way. Every check starts at once: the
/// longest, R2's, is three round trips (create the bucket ‖ `token_id`, the caller's verify or
/// an id it already has; list it over S3; delete it).
pub async fn run<'a>(client: &'a Client, target: &'a Target, token_id: TokenId<'a>) -> CheckRun {
    let now = SystemTime::now();
    let name = temp_name(now);
    let registry: Registry = Arc::default();
    let fatal: Arc<Mutex<Option<anyhow::Error>>> = Arc::default();

    // One GET of the zone serves both Zone Read and, when no domain is configured, the name the
    // temporary route needs.
    let zone = {
        let client = client.clone();
        let zone_id = target.zone_id.clone();
        async move { client.get_zone(&zone_id).await.map_err(Arc::new) }.shared()
    };
    let ctx = Ctx {
        client,
        target,
        token_id: token_id.shared(),
        name: &name,
        registry: &registry,
        fatal: &fatal,
    };
    let checks = join_all(PERMISSIONS.iter().map(|p| ctx.check(p, zone.clone())));
    let sweep = async {
        if target.read_only {
            Vec::new()
        } else {
            sweep(client, target, now).await
        }
    };
    // Ctrl-C or SIGTERM (a cancelled CI job): stop, then clean up as after a normal run.
    let mut signals = crate::commands::Interrupt::listen();
    let (checks, swept, interrupted) = tokio::select! {
        (checks, swept) = futures::future::join(checks, sweep) => (checks, swept, false),
        () = signals.wait() => (Vec::new(), Vec::new(), true),
    };
    let mut left_behind = cleanup(client, target, &registry).await;
    // The sweep's own failures are left behind too, not silently skipped.
    let (swept, failed_sweeps): (Vec<_>, Vec<_>) = swept.into_iter().partition(Result::is_ok);
    let swept: Vec<String> = swept.into_iter().flatten().collect();
    left_behind.extend(failed_sweeps.into_iter().filter_map(Result::err));
    let fatal = fatal.lock().unwrap_or_else(|p| p.into_inner()).take();
    let checks = if interrupted {
        PERMISSIONS
            .iter()
            .map(|p| {
                let why = format!("interrupted ({})", signals.signal());
                result(p, Outcome::NotRun, why)
            })
            .collect()
    } else {
        checks
    };
    let passed = checks
        .iter()
        .filter(|c| c.result == Outcome::Passed)
        .count();
    CheckRun {
        passed,
        total: PERMISSIONS.len(),
        summary: summary(passed, PERMISSIONS.len()),
        checks,
        swept,
        left_behind,
        interrupted,
        could_not_run: fatal.as_ref().map(|e| format!("{e:#}")),
        fatal,
    }
}

struct Ctx<'a> {
    client: &'a Client,
    target: &'a Target,
    token_id: futures::future::Shared<TokenId<'a>>,
    name: &'a str,
    registry: &'a Registry,
    fatal: &'a Arc<Mutex<Option<anyhow::Error>>>,
}

fn result(p: &Permission, outcome: Outcome, detail: String) -> CheckResult {
    CheckResult {
        permission: p.name,
        scope: p.scope,
        result: outcome,
        detail,
        fix: None,
    }
}

impl Ctx<'_> {
    async fn check<F>(
        &self,
        p: &'static Permission,
        zone: futures::future::Shared<F>,
    ) -> CheckResult
    where
        F: std::future::Future<Output = Result<Zone, Arc<Error>>>,
    {
        if self.target.read_only && p.check.writes() {
            return result(
                p,
                Outcome::Skipped,
                "--read-only: the write round trip was not made".into(),
            );
        }
        let c = self.client;
        let t = self.target;
        let outcome: Result<String, Arc<Error>> = match p.check {
            Check::ReadAccount => c
                .get_account(&t.account_id)
                .await
                .map(|a| format!("read account \"{}\"", a.name))
                .map_err(Arc::new),
            Check::ScriptsRead => c
                .list_scripts(&t.account_id)
                .await
                .map(|s| format!("listed the account's scripts ({})", user_scripts(&s)))
                .map_err(Arc::new),
            Check::ReadZone => zone.await.map(|z| format!("read zone {}", z.name)),
            Check::SslRead => c
                .list_custom_hostnames_page(&t.zone_id, 5)
                .await
                .map(|_| "listed the zone's custom hostnames".to_string())
                .map_err(Arc::new),
            Check::R2Write => self.r2_write().await.map_err(Arc::new),
            Check::ScriptsWrite => self.scripts_write().await.map_err(Arc::new),
            Check::RoutesWrite => {
                let domain = match &t.platform_domain {
                    Some(d) => d.to_string(),
                    None => match zone.await {
                        Ok(z) => z.name.to_ascii_lowercase(),
                        Err(e) => {
                            return result(
                                p,
                                Outcome::NotRun,
                                format!(
                                    "needs the zone's name, from Zone Read (which did not work: \
                                     HTTP {}) or from PLATFORM_DOMAIN / --platform-domain",
                                    e.status().map_or("-".into(), |s| s.to_string())
                                ),
                            )
                        }
                    },
                };
                self.routes_write(&domain).await.map_err(Arc::new)
            }
            Check::SslWriteProbe => return self.ssl_write_probe(p).await,
        };
        match outcome {
            Ok(detail) => result(p, Outcome::Passed, detail),
            Err(e) => self.classify(p, &e),
        }
    }

    /// Sorts an error into failed (the permission is missing), error, or could-not-run.
    fn classify(&self, p: &'static Permission, e: &Error) -> CheckResult {
        if e.is_invalid_credential() || matches!(e, Error::Transport { .. }) {
            let mut fatal = self.fatal.lock().unwrap_or_else(|p| p.into_inner());
            if fatal.is_none() {
                *fatal = Some(anyhow::anyhow!(clone_error(e)));
            }
            return result(p, Outcome::Error, short(e));
        }
        if e.has_code(10042) {
            return result(
                p,
                Outcome::Error,
                "R2 is not enabled for this account (code 10042): enable it in the dashboard \
                 (R2 > Overview)"
                    .into(),
            );
        }
        if let Error::R2NeedsToken { .. } = e {
            let hint = e.hint().unwrap_or_default();
            return result(p, Outcome::Error, format!("{}; {hint}", short(e)));
        }
        if e.status() == Some(403) && e.has_code(9109) {
            // 9109 (not the IP refusal, handled above) is "no access to this account or zone":
            // an ID that is not the user's, which no permission fixes (docs/cloudflare-api.md §1).
            let (what, id, var) = match p.scope {
                Scope::Account => ("account", &self.target.account_id, "CLOUDFLARE_ACCOUNT_ID"),
                Scope::Zone => ("zone", &self.target.zone_id, "CLOUDFLARE_ZONE_ID"),
            };
            return result(
                p,
                Outcome::Error,
                format!(
                    "no access to {what} {id} (HTTP 403, code 9109): check {var}; it must be \
                     one this token's user belongs to (adding permissions cannot fix this)"
                ),
            );
        }
        if e.status() == Some(403) {
            return self.failed(p, e);
        }
        result(p, Outcome::Error, short(e))
    }

    fn failed(&self, p: &'static Permission, e: &Error) -> CheckResult {
        let resource = match p.scope {
            Scope::Account => format!("account {}", self.target.account_id),
            Scope::Zone => format!("zone {}", self.target.zone_id),
        };
        let mut text = format!("add {} on {resource}", p.name);
        if p.check == Check::RoutesWrite {
            text.push_str(" (it is zone-scoped: a copy on the account resource grants nothing)");
        }
        let codes = e.codes();
        let code = codes
            .first()
            .map_or(String::new(), |c| format!(", code {c}"));
        CheckResult {
            permission: p.name,
            scope: p.scope,
            result: Outcome::Failed,
            detail: format!(
                "refused (HTTP {}{code}): {text}",
                e.status().unwrap_or_default()
            ),
            fix: Some(Fix {
                permission: p.name,
                resource,
                text,
                dashboard_url: permissions::dashboard_url(DASHBOARD_TOKEN_NAME),
            }),
        }
    }

    /// Creates a temporary bucket (REST), which takes Workers R2 Storage Write, lists it over R2's
    /// S3 API with the keys derived from the token (so S3 accepts them: the same token's
    /// permissions then authorise its writes there), then deletes it. Three round trips, the
    /// first beside the token's verify, and no object is ever stored. When S3 fails where REST
    /// works, the bucket is listed over REST instead and the check still passes, with a warning
    /// in its detail: deploys will use REST.
    async fn r2_write(&self) -> Result<String, Error> {
        let b = BucketRef {
            account: &self.target.account_id,
            name: self.name,
            jurisdiction: None,
        };
        let temp = Temp::Bucket(self.name.to_string());
        register(self.registry, temp.clone());
        let (created, token_id) =
            futures::future::join(self.client.create_bucket(b, None), self.token_id.clone()).await;
        if let Err(e) = created {
            if refused(&e) {
                unregister(self.registry, &temp);
            }
            return Err(e);
        }
        let detail = match self.s3_list(token_id).await {
            Ok(()) => format!(
                "created and deleted bucket {} (REST), and listed it over S3 with the token's \
                 derived keys: objects work over REST and S3",
                self.name
            ),
            Err(why) => {
                // Prove the REST object path, which deploys will use instead.
                if let Err(e) = self.client.list_objects(b, "").await {
                    let _ = self.client.delete_bucket(b).await;
                    return Err(e);
                }
                format!(
                    "created, listed and deleted bucket {} over REST; warning: {why}, so deploys \
                     will use REST (1,200 requests per 5 minutes, 300 MiB per object)",
                    self.name
                )
            }
        };
        self.client.delete_bucket(b).await?;
        unregister(self.registry, &temp);
        Ok(detail)
    }

    /// One listing of the temporary bucket over S3 with the token's derived keys, or why not (for
    /// the warning).
    async fn s3_list(&self, token_id: Result<String, String>) -> Result<(), String> {
        use crate::storage::{BucketLoc, S3Options};
        let token = match self.client.auth() {
            crate::cloudflare::Auth::Token(t) => t.clone(),
            crate::cloudflare::Auth::GlobalKey { .. } => {
                return Err(
                    "S3 keys cannot be derived from the Global API Key (it has no token id)"
                        .to_string(),
                )
            }
        };
        let token_id = token_id?;
        let loc = BucketLoc {
            account: self.target.account_id.clone(),
            name: BucketName::parse(self.name, "the test bucket").map_err(|e| e.to_string())?,
            jurisdiction: None,
        };
        // Probing: an S3 host that cannot be reached is given up on within about 2 s, as `auto`
        // does, instead of after five retries.
        let store = crate::storage::s3_store_at(
            self.target.s3_endpoint.as_ref(),
            self.client,
            loc,
            &token_id,
            S3Options::default(),
        )
        .map_err(|e| e.to_string())?
        .probing();
        store
            .list("")
            .await
            .map(|_| ())
            .map_err(|e| match e.s3_code() {
                _ if matches!(e, crate::storage::StorageError::S3Unreachable { .. }) => {
                    format!("{e}: a firewall or proxy may block *.r2.cloudflarestorage.com")
                }
                Some(code) if e.is_s3_auth_refusal() => {
                    let mut why = format!(
                        "R2's S3 API refused the keys derived from the token ({code}): the token \
                     may lack Workers R2 Storage Write, or have gained it less than a minute ago"
                    );
                    if token.expose().starts_with("cfut_") || token.expose().starts_with("cfat_") {
                        why.push_str(
                            "; deriving S3 keys from new-format cfut_/cfat_ tokens is unconfirmed",
                        );
                    }
                    why
                }
                _ => format!("R2's S3 API failed ({e})"),
            })
    }

    async fn scripts_write(&self) -> Result<String, Error> {
        let temp = Temp::Script(self.name.to_string());
        register(self.registry, temp.clone());
        let upload = ScriptUpload {
            metadata: json!({
                "main_module": "check.js",
                "compatibility_date": crate::platform::COMPATIBILITY_DATE,
                "bindings": [],
            }),
            main_module: "check.js".into(),
            source: bytes::Bytes::from_static(
                b"// cfsetup permission check; deleted right away\n\
                  export default { fetch() { return new Response(\"cfsetup check\"); } };\n",
            ),
        };
        if let Err(e) = self
            .client
            .upload_script(&self.target.account_id, self.name, &upload)
            .await
        {
            if refused(&e) {
                unregister(self.registry, &temp);
            }
            return Err(e);
        }
        self.client
            .delete_script(&self.target.account_id, self.name)
            .await?;
        unregister(self.registry, &temp);
        Ok(format!(
            "uploaded and deleted script {} (no routes)",
            self.name
        ))
    }

    async fn routes_write(&self, domain: &str) -> Result<String, Error> {
        let pattern = format!("{}.{domain}/*", self.name);
        let temp = Temp::Route {
            pattern: pattern.clone(),
            id: None,
        };
        register(self.registry, temp.clone());
        let route = match self
            .client
            .create_route(&self.target.zone_id, &pattern, None)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                if refused(&e) {
                    unregister(self.registry, &temp);
                }
                return Err(e);
            }
        };
        set_route_id(self.registry, &pattern, &route.id);
        self.client
            .delete_route(&self.target.zone_id, &route.id)
            .await?;
        unregister(
            self.registry,
            &Temp::Route {
                pattern: pattern.clone(),
                id: Some(route.id),
            },
        );
        Ok(format!("created and deleted route {pattern} (no script)"))
    }

    async fn ssl_write_probe(&self, p: &'static Permission) -> CheckResult {
        match self
            .client
            .probe_custom_hostname_create(&self.target.zone_id)
            .await
        {
            Err(e)
                if e.status() == Some(400)
                    && !e.is_invalid_credential()
                    && !e.is_unknown_route()
                    && !e.codes().is_empty() =>
            {
                let codes = e.codes();
                result(
                    p,
                    Outcome::Passed,
                    format!(
                        "probe: an empty custom hostname was refused for its content (HTTP 400, \
                         code {}), not for authorisation; nothing was created",
                        codes[0]
                    ),
                )
            }
            Err(e) => self.classify(p, &e),
            Ok(created) => {
                // Authorised, but the API accepted the probe: remove what it made.
                let id = created
                    .get("id")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string();
                let hostname = created
                    .get("hostname")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
                    .to_string();
                let temp = Temp::CustomHostname {
                    id: id.clone(),
                    hostname: hostname.clone(),
                };
                if id.is_empty() {
                    return result(
                        p,
                        Outcome::Passed,
                        "probe: the API accepted it (authorised) and returned no id; check the \
                         zone's custom hostnames for an empty entry"
                            .into(),
                    );
                }
                register(self.registry, temp.clone());
                let detail = match self
                    .client
                    .delete_custom_hostname(&self.target.zone_id, &id)
                    .await
                {
                    Ok(()) => {
                        unregister(self.registry, &temp);
                        format!(
                            "probe: the API accepted it (authorised) and created custom hostname \
                             {hostname:?} ({id}); it was deleted"
                        )
                    }
                    Err(_) => format!(
                        "probe: the API accepted it (authorised) and created custom hostname \
                         {hostname:?} ({id}); deleting it is retried below"
                    ),
                };
                result(p, Outcome::Passed, detail)
            }
        }
    }
}

/// A one-line description of an error for the table's detail column.
fn short(e: &Error) -> String {
    match e {
        Error::Api { status, errors, .. } => {
            let first = errors
                .first()
                .map(|m| format!(": {} (code {})", m.message, m.code))
                .unwrap_or_default();
            format!("HTTP {status}{first}")
        }
        other => other.to_string(),
    }
}

/// `cloudflare::Error` is not `Clone` (it can hold a `reqwest::Error`); the fatal error keeps what
/// the hint needs: status, codes, method and path.
fn clone_error(e: &Error) -> Error {
    match e {
        Error::Api {
            method,
            path,
            status,
            errors,
            ray,
        } => Error::Api {
            method: method.clone(),
            path: path.clone(),
            status: *status,
            errors: errors.clone(),
            ray: ray.clone(),
        },
        Error::R2NeedsToken { inner } => Error::R2NeedsToken {
            inner: Box::new(clone_error(inner)),
        },
        other => Error::Request {
            method: "-".into(),
            path: "-".into(),
            detail: other.to_string(),
        },
    }
}

/// Deletes whatever is still registered. Returns what could not be deleted.
async fn cleanup(client: &Client, target: &Target, registry: &Registry) -> Vec<String> {
    let left: Vec<Temp> = registry
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .drain(..)
        .collect();
    let deletions = left.iter().map(|t| async move {
        let outcome = match t {
            Temp::Bucket(name) => delete_temp_bucket(client, &target.account_id, name)
                .await
                .or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) }),
            // Already gone is what cleanup wants: only report what still exists.
            Temp::Script(name) => client
                .delete_script(&target.account_id, name)
                .await
                .or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) }),
            Temp::Route { id: Some(id), .. } => client
                .delete_route(&target.zone_id, id)
                .await
                .or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) }),
            // The create may have happened without its answer reaching us: find it by pattern.
            Temp::Route { pattern, id: None } => match client.list_routes(&target.zone_id).await {
                Ok(routes) => {
                    let mut r = Ok(());
                    for route in routes.iter().filter(|r| &r.pattern == pattern) {
                        r = r.and(client.delete_route(&target.zone_id, &route.id).await);
                    }
                    r
                }
                Err(e) => Err(e),
            },
            Temp::CustomHostname { id, .. } => client
                .delete_custom_hostname(&target.zone_id, id)
                .await
                .or_else(|e| if e.is_not_found() { Ok(()) } else { Err(e) }),
        };
        outcome
            .err()
            .map(|e| format!("{} ({})", t.describe(), short(&e)))
    });
    join_all(deletions).await.into_iter().flatten().collect()
}

/// Deletes a temporary bucket; one that still holds the check's object (a run killed between the
/// object's PUT and DELETE) answers 409, and is emptied over REST, then deleted.
async fn delete_temp_bucket(client: &Client, account: &str, name: &str) -> Result<(), Error> {
    let b = BucketRef {
        account,
        name,
        jurisdiction: None,
    };
    match client.delete_bucket(b).await {
        Err(e) if e.status() == Some(409) => {
            for o in client.list_objects(b, "").await? {
                client.delete_object(b, &o.key).await?;
            }
            client.delete_bucket(b).await
        }
        other => other,
    }
}

/// Deletes leftovers of earlier runs: buckets, scripts and routes carrying [`TEMP_PREFIX`] whose
/// timestamp is older than [`SWEEP_AFTER`]. A list the token may not read is skipped quietly: that
/// permission's own check reports it. Returns what was deleted (`Ok`) and what could not be
/// (`Err`, with the command that removes it).
async fn sweep(client: &Client, target: &Target, now: SystemTime) -> Vec<Result<String, String>> {
    let acct = target.account_id.as_str();
    let zone = target.zone_id.as_str();
    let buckets = async {
        let Ok(list) = client.list_buckets(acct, None, Some(TEMP_PREFIX)).await else {
            return Vec::new();
        };
        let stale = list.into_iter().filter(|b| is_stale(&b.name, now));
        join_all(stale.map(|b| async move {
            match delete_temp_bucket(client, acct, &b.name).await {
                Ok(()) => Some(Ok(format!("bucket {}", b.name))),
                Err(e) if e.is_not_found() => None,
                Err(e) => Some(Err(format!(
                    "bucket {} ({}): empty and delete it with `wrangler r2 object delete` and \
                     `wrangler r2 bucket delete {}`, or in the dashboard (R2)",
                    b.name,
                    short(&e),
                    b.name
                ))),
            }
        }))
        .await
    };
    let scripts = async {
        let Ok(list) = client.list_scripts(acct).await else {
            return Vec::new();
        };
        let stale = list.into_iter().filter(|s| is_stale(&s.id, now));
        join_all(stale.map(|s| async move {
            client
                .delete_script(acct, &s.id)
                .await
                .ok()
                .map(|()| Ok(format!("script {}", s.id)))
        }))
        .await
    };
    let routes = async {
        let Ok(list) = client.list_routes(zone).await else {
            return Vec::new();
        };
        let stale = list
            .into_iter()
            .filter(|r| is_stale(route_label(&r.pattern), now));
        join_all(stale.map(|r| async move {
            client
                .delete_route(zone, &r.id)
                .await
                .ok()
                .map(|()| Ok(format!("route {}", r.pattern)))
        }))
        .await
    };
    let (b, s, r) = futures::future::join3(buckets, scripts, routes).await;
    b.into_iter().chain(s).chain(r).flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_valid_buckets_scripts_and_labels() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let n = temp_name(now);
        assert!(n.starts_with("cfsetup-check-1700000000-"), "{n}");
        assert_eq!(n.len(), "cfsetup-check-1700000000-".len() + 4);
        crate::names::BucketName::parse(&n, "x").unwrap();
        crate::names::WorkerName::parse(&n, "x").unwrap();
        crate::names::Hostname::parse(&format!("{n}.getai.page"), "x").unwrap();
    }

    #[test]
    fn the_scripts_read_count_leaves_out_the_checks_own_script() {
        let script = |id: &str| crate::cloudflare::workers::ScriptSummary {
            id: id.into(),
            ..serde_json::from_value(serde_json::json!({"id": "x"})).unwrap()
        };
        let list = [
            script("router"),
            script(&temp_name(SystemTime::now())),
            script("shop"),
        ];
        assert_eq!(user_scripts(&list), 2);
    }

    #[test]
    fn only_old_prefixed_names_are_stale() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(is_stale("cfsetup-check-1699999000-abcd", now));
        assert!(
            !is_stale("cfsetup-check-1699999700-abcd", now),
            "5 minutes old"
        );
        assert!(
            !is_stale("cfsetup-check-1700000500-abcd", now),
            "from the future"
        );
        assert!(!is_stale("cfsetup-sites", now));
        assert!(!is_stale("cfsetup-check-x-abcd", now));
        assert!(!is_stale("mysite-cfsetup-check-1-abcd", now));
        assert_eq!(
            route_label("cfsetup-check-1-abcd.getai.page/*"),
            "cfsetup-check-1-abcd"
        );
    }

    #[test]
    fn exit_codes_follow_the_outcomes() {
        let mk = |outcomes: &[Outcome]| CheckRun {
            checks: outcomes
                .iter()
                .zip(PERMISSIONS.iter())
                .map(|(o, p)| result(p, *o, String::new()))
                .collect(),
            passed: outcomes.iter().filter(|o| **o == Outcome::Passed).count(),
            total: 8,
            summary: String::new(),
            swept: vec![],
            left_behind: vec![],
            interrupted: false,
            could_not_run: None,
            fatal: None,
        };
        use Outcome::*;
        assert_eq!(mk(&[Passed; 8]).exit_code(), 0);
        assert_eq!(mk(&[Passed, Skipped, Passed, Skipped]).exit_code(), 0);
        assert_eq!(mk(&[Passed, Failed, Error]).exit_code(), 3);
        assert_eq!(mk(&[Passed, Error]).exit_code(), 1);
        assert_eq!(mk(&[Passed; 8]).summary(), "8/8 checks passed");
    }
}
