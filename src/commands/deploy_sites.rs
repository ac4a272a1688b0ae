//! `cfsetup deploy-sites PLAN`: many tenants in one process.
//!
//! The plan is read and every entry is checked whole before the first request, by the very code
//! `deploy-site` checks its own arguments with ([`deploy_site::prepare`]): fields, tenant, the
//! folder (it exists and can be read), `_redirects` and `_headers`, domains. Anything wrong is
//! exit 2 naming the entry and the field, and nothing is deployed.
//!
//! Then the tenants run concurrently (`--parallel`), each through [`deploy_site::deploy_prepared`]
//! with its own intent and its own compare-and-swap switch, over what the run shares once: the one
//! [`Client`](crate::cloudflare::Client) (its connection pool and its REST pacing, 1,200 requests
//! per 5 minutes for the whole run, docs/cloudflare-api.md §3), the one store with one write limit
//! (`--concurrency`), and the in-run set of blobs made sure of, so a blob several tenants name is
//! checked and uploaded once. One tenant's failure is its own: the others still land, and the exit
//! status is 1.
//!
//! This module owns the plan format and the fleet's report; it must not import the storage
//! backends or the client's transport, and it never re-implements a per-tenant check.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::ValueEnum;
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use crate::cli::{DeploySiteArgs, DeploySitesArgs, NotFoundChoice};
use crate::config::Config;
use crate::error::{usage, UsageError};
use crate::output::{json_of, Renderer, Report, Ui};

use super::deploy_site::{self, BlobSet, Prepared, Shared};
use super::Interrupt;

/// The most tenants `--parallel` runs at once.
const MAX_PARALLEL: usize = 64;
/// The most object writes in flight that `--concurrency` accepts (as deploy-site's).
const MAX_CONCURRENCY: usize = 256;
/// In CI (stderr not a terminal), a progress line at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// One plan entry, as written. Unknown fields are refused, so a typo is not silently ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    tenant: String,
    dir: PathBuf,
    #[serde(default)]
    domains: Vec<String>,
    not_found: Option<String>,
    preview: Option<PreviewField>,
    #[serde(default)]
    prevalidate: bool,
}

/// `preview = true` is deploy-site's `--preview` (the default name), a string its
/// `--preview NAME`, and `false` no preview.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PreviewField {
    On(bool),
    Name(String),
}

const ENTRY_HINT: &str = "each entry has tenant and dir, and optionally domains (a list), \
                          not_found (auto, spa, 404 or none), preview (a name, or true) and \
                          prevalidate";

/// How the plan names an entry in a message: its 1-based number and, once known, its tenant.
fn entry_label(n: usize, tenant: Option<&str>) -> String {
    match tenant {
        Some(t) => format!("plan entry {n} (tenant {t:?})"),
        None => format!("plan entry {n}"),
    }
}

/// Reads PLAN: TOML (`[[site]]` tables) or JSON (an array), by extension. Each entry is decoded
/// on its own so an error names it and the field.
fn read_plan(path: &Path) -> Result<Vec<Entry>, UsageError> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let text = std::fs::read_to_string(path).map_err(|e| {
        usage!("PLAN {}: {e}", path.display())
            .with_hint("give a .toml file of [[site]] tables or a .json array")
    })?;
    let raw: Vec<serde_json::Value> = match ext.as_deref() {
        Some("toml") => {
            let table: toml::Table = toml::from_str(&text).map_err(|e| {
                usage!("PLAN {} is not valid TOML: {}", path.display(), e.message())
                    .with_hint(format!("{ENTRY_HINT}; see `cfsetup deploy-sites --help`"))
            })?;
            if let Some(other) = table.keys().find(|k| *k != "site") {
                return Err(
                    usage!("PLAN {}: unknown top-level key {other:?}", path.display())
                        .with_hint("the plan is a list of [[site]] tables and nothing else"),
                );
            }
            match table.get("site") {
                None => Vec::new(),
                Some(toml::Value::Array(a)) => a
                    .iter()
                    .map(|v| serde_json::to_value(v).unwrap_or(serde_json::Value::Null))
                    .collect(),
                Some(_) => {
                    return Err(
                        usage!("PLAN {}: `site` is not a list of tables", path.display())
                            .with_hint("write each site as a [[site]] table"),
                    )
                }
            }
        }
        Some("json") => {
            let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                usage!("PLAN {} is not valid JSON: {e}", path.display()).with_hint(ENTRY_HINT)
            })?;
            match value {
                serde_json::Value::Array(a) => a,
                _ => {
                    return Err(usage!("PLAN {} is not a JSON array", path.display())
                        .with_hint(format!("the plan is an array of sites; {ENTRY_HINT}")))
                }
            }
        }
        _ => {
            return Err(usage!("PLAN {} is neither .toml nor .json", path.display())
                .with_hint("the extension says how the plan is read: sites.toml or sites.json"))
        }
    };
    if raw.is_empty() {
        return Err(usage!("PLAN {} names no site", path.display()).with_hint(ENTRY_HINT));
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, v)| {
            let tenant = v.get("tenant").and_then(|t| t.as_str()).map(str::to_string);
            serde_path_to_error::deserialize::<_, Entry>(v).map_err(|e| {
                let path = e.path().to_string();
                let at = if path == "." || path.is_empty() {
                    String::new()
                } else {
                    format!(", field {path}")
                };
                usage!(
                    "{}{at}: {}",
                    entry_label(i + 1, tenant.as_deref()),
                    e.inner()
                )
                .with_hint(ENTRY_HINT)
            })
        })
        .collect()
}

impl Entry {
    /// The `deploy-site` arguments this entry means, so the one `check` reads them. A relative
    /// `dir` is read from the plan's folder, so a plan works from any working directory.
    fn site_args(
        &self,
        n: usize,
        args: &DeploySitesArgs,
        base: &Path,
    ) -> Result<DeploySiteArgs, UsageError> {
        let label = entry_label(n, Some(&self.tenant));
        let not_found = match &self.not_found {
            None => NotFoundChoice::Auto,
            Some(s) => NotFoundChoice::from_str(s, false).map_err(|_| {
                usage!("{label}, field not_found: {s:?} is not a mode")
                    .with_hint("use auto, spa, 404 or none, as deploy-site's --not-found")
            })?,
        };
        let preview = match &self.preview {
            None | Some(PreviewField::On(false)) => None,
            Some(PreviewField::On(true)) => Some(None),
            Some(PreviewField::Name(n)) => Some(Some(n.clone())),
        };
        Ok(DeploySiteArgs {
            dir: base.join(&self.dir),
            tenant: self.tenant.clone(),
            domains: self.domains.clone(),
            bucket: args.bucket.clone(),
            platform_domain: args.platform_domain.clone(),
            concurrency: args.concurrency,
            no_prune: false,
            wait: None,
            include_hidden: false,
            cname_target: args.cname_target.clone(),
            preview,
            not_found,
            protect: None,
            expires: None,
            retain: "24h".into(),
            no_retain: false,
            take_over_domain: false,
            force: false,
            dry_run: args.dry_run,
            lock_stale: args.lock_stale.clone(),
            prevalidate: self.prevalidate,
            dns: crate::cli::DnsArgs::default(),
        })
    }
}

/// A usage error from deploy-site's own checks, restated for the plan: which entry, which field.
/// deploy-site's messages open with the argument they are about (`TENANT`, `DIR`, `DOMAIN`,
/// `--preview`); a rule file's error names `_redirects` or `_headers` in DIR.
fn in_entry(n: usize, tenant: &str, e: anyhow::Error) -> UsageError {
    let (message, hint) = match e.downcast::<UsageError>() {
        Ok(u) => (u.message, u.hint),
        Err(e) => (format!("{e:#}"), None),
    };
    let fields: [(&str, &str); 7] = [
        ("TENANT ", "tenant"),
        ("DIR ", "dir"),
        ("DOMAIN ", "domains"),
        ("--preview", "preview"),
        ("--take-over-domain", "domains"),
        ("--not-found", "not_found"),
        ("--prevalidate", "prevalidate"),
    ];
    let (field, rest) = fields
        .iter()
        .find_map(|(prefix, field)| {
            message.strip_prefix(prefix).map(|rest| {
                let rest = if prefix.ends_with(' ') {
                    rest.to_string()
                } else {
                    message.clone()
                };
                (*field, rest)
            })
        })
        .unwrap_or_else(|| {
            let field = if message.contains("_redirects") {
                "dir (its _redirects)"
            } else if message.contains("_headers") {
                "dir (its _headers)"
            } else {
                "dir"
            };
            (field, message.clone())
        });
    let mut u = usage!("{}, field {field}: {rest}", entry_label(n, Some(tenant)));
    u.hint = hint;
    u
}

/// Checks that concern several entries: one live deploy per tenant (and one preview per name),
/// and a domain in one entry only. Each would otherwise race its own twin's switch.
fn cross_check(entries: &[Entry]) -> Result<(), UsageError> {
    use std::collections::BTreeMap;
    let mut sites: BTreeMap<(String, Option<String>), usize> = BTreeMap::new();
    let mut domains: BTreeMap<String, usize> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        let n = i + 1;
        let preview = match &e.preview {
            None | Some(PreviewField::On(false)) => None,
            // Each default-named preview gets its own name from its deploy id.
            Some(PreviewField::On(true)) => Some(format!("#{n}")),
            Some(PreviewField::Name(p)) => Some(p.clone()),
        };
        if let Some(first) = sites.insert((e.tenant.clone(), preview.clone()), n) {
            let what = match &preview {
                None => "its live site".to_string(),
                Some(p) => format!("the preview {p:?}"),
            };
            return Err(usage!(
                "{}, field tenant: entry {first} already deploys {what}",
                entry_label(n, Some(&e.tenant))
            )
            .with_hint(
                "one run deploys each tenant's site (and each preview) once; merge the two entries",
            ));
        }
        for d in &e.domains {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if let Some(first) = domains.insert(d.clone(), n) {
                return Err(usage!(
                    "{}, field domains: {d} is also in entry {first}",
                    entry_label(n, Some(&e.tenant))
                )
                .with_hint("a domain belongs to one tenant; remove it from one of the entries"));
            }
        }
    }
    Ok(())
}

/// One tenant's line in the summary.
#[derive(Debug, Serialize, Clone)]
pub struct TenantResult {
    pub tenant: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    /// `deployed`, `preview up`, `unchanged`, `would deploy`, `up to date`, `failed`,
    /// `domain failed` (the site landed, a domain did not attach), `skipped` (`--fail-fast`),
    /// `interrupted`.
    pub result: String,
    pub files: usize,
    pub uploaded: usize,
    pub bytes_sent: u64,
    pub deploy_id: Option<String>,
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl TenantResult {
    fn empty(p: &Prepared, result: &str) -> Self {
        TenantResult {
            tenant: p.tenant().to_string(),
            preview: None,
            result: result.to_string(),
            files: p.files().len(),
            uploaded: 0,
            bytes_sent: 0,
            deploy_id: None,
            url: None,
            error: None,
        }
    }

    fn from_outcome(p: &Prepared, outcome: anyhow::Result<deploy_site::DeployReport>) -> Self {
        match outcome {
            Err(e) => TenantResult {
                error: Some(format!("{e:#}")),
                ..Self::empty(p, "failed")
            },
            Ok(r) => {
                let failed = !r.failures.is_empty();
                let result = match (r.dry_run, r.changed, failed, &r.preview) {
                    (true, true, _, _) => "would deploy",
                    (true, false, _, _) => "up to date",
                    (false, _, true, _) => "domain failed",
                    (false, false, _, _) => "unchanged",
                    (false, true, _, Some(_)) => "preview up",
                    (false, true, _, None) => "deployed",
                };
                TenantResult {
                    tenant: r.tenant,
                    preview: r.preview,
                    result: result.to_string(),
                    files: r.files,
                    uploaded: r.uploaded,
                    bytes_sent: r.bytes_sent,
                    deploy_id: r.deploy_id,
                    url: r.preview_url.or_else(|| r.urls.first().cloned()),
                    error: failed.then(|| {
                        "the site landed, but a domain did not attach (see the warning above)"
                            .to_string()
                    }),
                }
            }
        }
    }

    fn failed(&self) -> bool {
        matches!(
            self.result.as_str(),
            "failed" | "domain failed" | "skipped" | "interrupted"
        )
    }
}

/// The fleet's summary: one row per plan entry, in plan order.
#[derive(Debug, Serialize)]
pub struct DeploySitesReport {
    pub dry_run: bool,
    pub tenants: Vec<TenantResult>,
    pub landed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// Distinct blobs this run made sure of (checked or uploaded once, whatever the tenants).
    pub distinct_blobs: usize,
    /// REST and S3 requests this run sent (retries included).
    pub requests: u64,
    pub interrupted: bool,
}

impl Report for DeploySitesReport {
    fn render(&self, out: &mut Renderer) {
        let total = self.tenants.len();
        let headline = if self.dry_run {
            format!("Dry run of {total} tenant(s): nothing was written")
        } else if self.interrupted {
            format!(
                "Interrupted: {} of {total} tenant(s) landed; the others keep their live site",
                self.landed
            )
        } else if self.failed == 0 && self.skipped == 0 {
            format!("All {total} tenant(s) landed")
        } else {
            format!(
                "{} of {total} tenant(s) landed, {} failed, {} skipped",
                self.landed, self.failed, self.skipped
            )
        };
        out.line(headline);
        let rows = self
            .tenants
            .iter()
            .map(|t| {
                let tenant = match &t.preview {
                    Some(p) => format!("{} ({p})", t.tenant),
                    None => t.tenant.clone(),
                };
                vec![
                    tenant,
                    t.result.clone(),
                    format!("{}/{}", t.uploaded, t.files),
                    t.deploy_id.clone().unwrap_or_default(),
                    t.url.clone().unwrap_or_default(),
                ]
            })
            .collect();
        out.table(
            &["tenant", "result", "uploaded/files", "deploy id", "url"],
            rows,
        );
        for t in self.tenants.iter().filter(|t| t.error.is_some()) {
            out.line(format!(
                "{}: {}",
                t.tenant,
                t.error.as_deref().unwrap_or_default()
            ));
        }
        out.line(format!(
            "{} distinct blob(s) checked or uploaded once for all tenants; {} request(s)",
            self.distinct_blobs, self.requests
        ));
    }

    fn to_json(&self) -> serde_json::Value {
        json_of(self)
    }

    fn exit_code(&self) -> u8 {
        if self.interrupted {
            130
        } else if self.failed > 0 || self.skipped > 0 {
            1
        } else {
            0
        }
    }
}

/// Tenants done out of total, and files: a bar on a terminal, a line every
/// [`PROGRESS_EVERY`] otherwise (CI logs), nothing with `-q`.
struct Progress<'a> {
    ui: &'a Ui,
    bar: indicatif::ProgressBar,
    terminal: bool,
    total: usize,
    files_total: usize,
    done: usize,
    files_done: usize,
    last_line: Instant,
}

impl<'a> Progress<'a> {
    fn new(ui: &'a Ui, total: usize, files_total: usize) -> Self {
        use std::io::IsTerminal;
        let bar = ui.progress(total as u64, "tenants");
        Progress {
            ui,
            terminal: !bar.is_hidden() && std::io::stderr().is_terminal(),
            bar,
            total,
            files_total,
            done: 0,
            files_done: 0,
            last_line: Instant::now(),
        }
    }

    fn tenant_done(&mut self, files: usize) {
        self.done += 1;
        self.files_done += files;
        let text = format!("{}/{} files", self.files_done, self.files_total);
        if self.terminal {
            self.bar.set_message(text);
            self.bar.inc(1);
        } else if self.last_line.elapsed() >= PROGRESS_EVERY && self.done < self.total {
            self.last_line = Instant::now();
            self.ui.note(format!(
                "deploy-sites: {}/{} tenants done, {text}",
                self.done, self.total
            ));
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

pub async fn run(
    args: DeploySitesArgs,
    config: &Config,
    ui: &Ui,
) -> anyhow::Result<Box<dyn Report>> {
    let mut interrupt = Interrupt::listen();
    if args.parallel == 0 || args.parallel > MAX_PARALLEL {
        return Err(usage!("--parallel {} is out of range", args.parallel)
            .with_hint(format!("use 1 to {MAX_PARALLEL}; the default is 8"))
            .into());
    }
    if args.concurrency == 0 || args.concurrency > MAX_CONCURRENCY {
        return Err(usage!("--concurrency {} is out of range", args.concurrency)
            .with_hint(format!("use 1 to {MAX_CONCURRENCY}; the default is 64"))
            .into());
    }
    let entries = read_plan(&args.plan)?;
    let base = args
        .plan
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    // Every entry is checked before any request: the plan is refused whole or run whole.
    let mut prepared = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let site_args = entry.site_args(i + 1, &args, &base)?;
        let p = deploy_site::prepare(&site_args, config, ui, true)
            .await
            .map_err(|e| in_entry(i + 1, &entry.tenant, e))?;
        prepared.push(p);
    }
    cross_check(&entries)?;

    let auth = super::platform_auth(config, ui)?;
    let client = super::client(config, auth, args.concurrency)?;
    // Every entry names the same bucket: it comes from this command's --bucket.
    let loc = prepared[0].loc().clone();
    let storage = crate::storage::open(config, &client, loc).await?;
    let blobs = BlobSet::default();
    let writes = tokio::sync::Semaphore::new(args.concurrency);
    let shared = Shared {
        client: &client,
        storage: &storage,
        blobs: &blobs,
        writes: &writes,
    };

    let files_total = prepared.iter().map(|p| p.files().len()).sum();
    let mut progress = Progress::new(ui, prepared.len(), files_total);
    let stop = AtomicBool::new(false);
    let mut results: Vec<Option<TenantResult>> = vec![None; prepared.len()];
    let mut interrupted = false;
    {
        let (shared, stop) = (&shared, &stop);
        let mut runs = stream::iter(prepared.iter().enumerate())
            .map(|(i, p)| async move {
                // --fail-fast: a tenant not started when the first failure came is skipped.
                if stop.load(Ordering::SeqCst) {
                    return (i, TenantResult::empty(p, "skipped"));
                }
                let outcome = deploy_site::deploy_prepared(shared, p, ui).await;
                (i, TenantResult::from_outcome(p, outcome))
            })
            .buffer_unordered(args.parallel);
        loop {
            tokio::select! {
                next = runs.next() => {
                    let Some((i, result)) = next else { break };
                    if result.result == "failed" {
                        ui.warn(format!(
                            "{}: failed: {}",
                            result.tenant,
                            result.error.as_deref().unwrap_or_default()
                        ));
                        if args.fail_fast {
                            stop.store(true, Ordering::SeqCst);
                        }
                    }
                    progress.tenant_done(result.files);
                    results[i] = Some(result);
                }
                () = interrupt.wait() => {
                    interrupted = true;
                    break;
                }
            }
        }
    }
    progress.finish();
    if interrupted {
        ui.warn(
            "interrupted (Ctrl-C): tenants that had not switched keep their live site; run the \
             same plan again to finish (uploaded blobs are not sent twice)",
        );
    }
    let tenants: Vec<TenantResult> = results
        .into_iter()
        .zip(&prepared)
        .map(|(r, p)| r.unwrap_or_else(|| TenantResult::empty(p, "interrupted")))
        .collect();
    let stats = client.stats();
    let report = DeploySitesReport {
        dry_run: args.dry_run,
        landed: tenants.iter().filter(|t| !t.failed()).count(),
        failed: tenants
            .iter()
            .filter(|t| t.failed() && t.result != "skipped")
            .count(),
        skipped: tenants.iter().filter(|t| t.result == "skipped").count(),
        distinct_blobs: blobs.len(),
        requests: stats.requests + stats.s3_requests,
        interrupted,
        tenants,
    };
    Ok(Box::new(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn toml_and_json_plans_read_the_same_entries() {
        let d = tempfile::tempdir().unwrap();
        let t = write(
            d.path(),
            "p.toml",
            "[[site]]\ntenant = \"acme\"\ndir = \"a\"\ndomains = [\"shop.acme.com\"]\n\n\
             [[site]]\ntenant = \"beta\"\ndir = \"b\"\npreview = \"x\"\nnot_found = \"spa\"\n",
        );
        let j = write(
            d.path(),
            "p.json",
            r#"[{"tenant":"acme","dir":"a","domains":["shop.acme.com"]},
                {"tenant":"beta","dir":"b","preview":"x","not_found":"spa"}]"#,
        );
        for p in [t, j] {
            let e = read_plan(&p).unwrap();
            assert_eq!(e.len(), 2);
            assert_eq!(e[0].tenant, "acme");
            assert_eq!(e[0].domains, ["shop.acme.com"]);
            assert!(matches!(&e[1].preview, Some(PreviewField::Name(n)) if n == "x"));
            assert_eq!(e[1].not_found.as_deref(), Some("spa"));
        }
    }

    #[test]
    fn a_bad_entry_is_named_with_its_field() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "p.json",
            r#"[{"tenant":"acme","dir":"a"},{"tenant":"beta","dir":3}]"#,
        );
        let e = read_plan(&p).unwrap_err();
        assert!(
            e.message
                .starts_with("plan entry 2 (tenant \"beta\"), field dir:"),
            "{}",
            e.message
        );
        let p = write(
            d.path(),
            "q.toml",
            "[[site]]\ntenant = \"a\"\ndri = \"x\"\n",
        );
        let e = read_plan(&p).unwrap_err();
        assert!(e.message.contains("unknown field `dri`"), "{}", e.message);
        let p = write(d.path(), "r.yaml", "");
        assert!(read_plan(&p)
            .unwrap_err()
            .message
            .contains(".toml nor .json"));
    }

    #[test]
    fn deploy_site_errors_are_restated_with_entry_and_field() {
        let e = anyhow::Error::new(usage!("DIR /x does not exist").with_hint("h"));
        let u = in_entry(3, "acme", e);
        assert_eq!(
            u.message,
            "plan entry 3 (tenant \"acme\"), field dir: /x does not exist"
        );
        assert_eq!(u.hint.as_deref(), Some("h"));
        let e = anyhow::Error::new(usage!("--preview \"A\" is not a valid preview name"));
        assert!(in_entry(1, "a", e)
            .message
            .contains("field preview: --preview"));
    }

    #[test]
    fn twins_are_refused() {
        let entry = |t: &str, p: Option<&str>, d: &[&str]| Entry {
            tenant: t.into(),
            dir: "a".into(),
            domains: d.iter().map(|s| s.to_string()).collect(),
            not_found: None,
            preview: p.map(|p| PreviewField::Name(p.into())),
            prevalidate: false,
        };
        assert!(cross_check(&[entry("a", None, &[]), entry("a", Some("x"), &[])]).is_ok());
        let e = cross_check(&[entry("a", None, &[]), entry("a", None, &[])]).unwrap_err();
        assert!(
            e.message.contains("entry 1 already deploys"),
            "{}",
            e.message
        );
        let e =
            cross_check(&[entry("a", None, &["x.com"]), entry("b", None, &["X.com"])]).unwrap_err();
        assert!(e.message.contains("field domains"), "{}", e.message);
    }
}
