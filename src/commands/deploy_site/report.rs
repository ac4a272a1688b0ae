//! The report of a deploy: what was uploaded, kept and deleted, the URLs, and the custom domain.
//!
//! It imports only `output` and `site`: what deploy-site's run decided, rendered.

use serde::Serialize;

use crate::output::{json_of, Renderer, Report};
use crate::site::walk::human_bytes;

use super::{HostnameReport, Input, Plan};

#[derive(Debug, Serialize, Default)]
pub(crate) struct DeployReport {
    pub(crate) tenant: String,
    pub(crate) dry_run: bool,
    /// Whether the head changed (or, with --dry-run, would).
    pub(crate) changed: bool,
    /// The deploy that is live (or previewed) after this run.
    pub(crate) deploy_id: Option<String>,
    pub(super) previous_deploy_id: Option<String>,
    /// With --preview: its name and URL.
    pub(crate) preview: Option<String>,
    pub(crate) preview_url: Option<String>,
    /// A generated preview password: shown here once, never stored in clear.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) password: Option<String>,
    /// The preview is behind a password.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(super) protected: bool,
    /// When the preview ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) expires_at: Option<String>,
    /// `404`, `spa` or `none`.
    pub(super) not_found: String,
    pub(crate) files: usize,
    pub(crate) uploaded: usize,
    pub(super) unchanged: usize,
    /// Blobs whose existence was checked (those the live deploy does not name).
    pub(crate) checked: usize,
    /// Bytes uploaded (0 in a dry run, which sends nothing).
    pub(crate) bytes_sent: u64,
    /// With `--dry-run`: the bytes a real run would upload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) bytes_to_send: Option<u64>,
    /// Content-hashed files of earlier deploys served for the retention window (skew protection).
    pub(super) retained_files: usize,
    /// Deploy ids that fell out of `kept` (gc deletes their copies).
    pub(super) dropped_from_kept: Vec<String>,
    /// Whether --force switched over another run's deploy.
    pub(super) forced: bool,
    /// Seconds spent waiting for running gcs.
    pub(super) waited_for_gc_secs: Option<f64>,
    pub(super) hidden_skipped: usize,
    pub(super) links_skipped: usize,
    pub(super) host_entries: Vec<HostEntryReport>,
    pub(crate) urls: Vec<String>,
    /// DOMAINs that do not serve the tenant after this run (refused, or claimed by another run):
    /// never in `urls`.
    pub(crate) refused_domains: Vec<String>,
    pub(super) custom_hostnames: Vec<HostnameReport>,
    #[serde(skip)]
    pub(super) sent: Vec<String>,
    /// What failed, one sentence each (the run exits 1 when there is any; `--json` has them as
    /// `error`).
    #[serde(skip)]
    pub(crate) failures: Vec<String>,
}

/// What happened to one `hosts/<domain>.json`.
#[derive(Debug, Serialize, Clone)]
pub(super) struct HostEntryReport {
    pub(super) domain: String,
    /// `created`, `unchanged`, `moved from T`, `would create`, `not created`, …
    pub(super) action: String,
}

/// Ctrl-C: what state the site is in. Exit 130.
#[derive(Debug, Serialize)]
pub(super) struct InterruptedReport {
    pub(super) tenant: String,
    pub(super) interrupted: bool,
    pub(super) state: String,
}

impl Report for InterruptedReport {
    fn render(&self, out: &mut Renderer) {
        out.line(format!(
            "Interrupted deploy of {}: {}",
            self.tenant, self.state
        ));
    }
    fn to_json(&self) -> serde_json::Value {
        json_of(self)
    }
    fn exit_code(&self) -> u8 {
        130
    }
}

impl DeployReport {
    /// Records a failure: the run goes on, and exits 1 with it.
    pub(super) fn fail(&mut self, what: impl Into<String>) {
        self.failures.push(what.into());
    }

    /// DOMAIN does not serve the tenant: out of `urls`, into `refused_domains`.
    pub(super) fn refuse(&mut self, domain: &str) {
        let url = format!("https://{domain}/");
        self.urls.retain(|u| *u != url);
        if !self.refused_domains.iter().any(|d| d == domain) {
            self.refused_domains.push(domain.to_string());
        }
    }

    /// A report whose counts are thrown away (re-checks).
    pub(super) fn scratch() -> Self {
        DeployReport::default()
    }

    pub(super) fn new(
        input: &Input,
        plan: &Plan,
        walked: &crate::site::Walk,
        files: usize,
    ) -> Self {
        let mut urls = Vec::new();
        let mut preview_url = None;
        if let Some(p) = &plan.platform_domain {
            match &plan.preview {
                None => urls.push(format!("https://{}.{p}/", input.tenant)),
                Some(name) => {
                    let url = format!("https://{name}--{}.{p}/", input.tenant);
                    urls.push(url.clone());
                    preview_url = Some(url);
                }
            }
        }
        if plan.preview.is_none() {
            for d in &input.domains {
                urls.push(format!("https://{d}/"));
            }
        }
        let live = plan.live_id().map(str::to_string);
        let changed = !plan.unchanged;
        DeployReport {
            tenant: input.tenant.to_string(),
            dry_run: input.dry_run,
            changed,
            deploy_id: if changed || plan.preview.is_some() {
                Some(plan.copy.deploy_id.clone())
            } else {
                live.clone()
            },
            previous_deploy_id: if changed && plan.preview.is_none() {
                live
            } else {
                None
            },
            preview: plan.preview.clone(),
            preview_url,
            // Only a run that stores the hash shows the password: a dry run's would be lost.
            password: if input.dry_run {
                None
            } else {
                input.password.as_ref().map(|p| p.expose().to_string())
            },
            protected: input.protect.is_some(),
            expires_at: input.expires_at.clone(),
            not_found: plan.copy.route.not_found.clone(),
            files,
            unchanged: if changed { 0 } else { files },
            hidden_skipped: walked.hidden.len(),
            links_skipped: walked.links.len(),
            urls,
            ..DeployReport::default()
        }
    }
}

impl Report for DeployReport {
    fn render(&self, out: &mut Renderer) {
        let verb = if self.dry_run {
            "would upload"
        } else {
            "uploaded"
        };
        let headline = match (self.dry_run, self.changed) {
            (true, true) => format!(
                "Dry run: {} would change (nothing was written)",
                self.tenant
            ),
            (false, true) if self.preview.is_some() => format!(
                "Preview {} of {} is up (the live site is unchanged)",
                self.preview.as_deref().unwrap_or_default(),
                self.tenant
            ),
            (true, false) => format!(
                "Dry run: {} is up to date (nothing was written)",
                self.tenant
            ),
            (false, true) => format!("Deployed {}", self.tenant),
            (false, false) => format!("{} is up to date: nothing to upload", self.tenant),
        };
        out.line(headline);
        let mut rows: Vec<(&str, String)> = vec![
            ("files", self.files.to_string()),
            (
                verb,
                format!(
                    "{} ({})",
                    self.uploaded,
                    human_bytes(self.bytes_to_send.unwrap_or(self.bytes_sent))
                ),
            ),
            ("unchanged", self.unchanged.to_string()),
        ];
        if !self.dropped_from_kept.is_empty() {
            rows.push((
                "no longer kept",
                format!(
                    "{} old deploy(s) (`cfsetup gc` deletes them)",
                    self.dropped_from_kept.len()
                ),
            ));
        }
        if let Some(id) = &self.deploy_id {
            let label = match (&self.preview, self.dry_run && self.changed) {
                (Some(_), true) => "next preview",
                (Some(_), false) => "preview deploy",
                (None, true) => "next deploy",
                (None, false) => "live deploy",
            };
            let id = match &self.previous_deploy_id {
                Some(prev) => format!("{id} (was {prev})"),
                None => id.clone(),
            };
            rows.push((label, id));
        }
        if self.retained_files > 0 {
            rows.push((
                "retained",
                format!(
                    "{} hashed file(s) of earlier deploys, served while browsers may ask",
                    self.retained_files
                ),
            ));
        }
        if self.forced {
            rows.push((
                "forced",
                "switched over another run's deploy (--force)".into(),
            ));
        }
        if self.protected {
            rows.push((
                "protected",
                "basic auth, any user name (only a salted hash is stored)".into(),
            ));
        }
        if let Some(p) = &self.password {
            rows.push(("password", format!("{p} (shown once: keep it now)")));
        }
        if let Some(t) = &self.expires_at {
            rows.push(("expires", format!("{t} (404 after; the next gc drops it)")));
        }
        rows.push(("not found", self.not_found.clone()));
        if self.hidden_skipped > 0 {
            rows.push(("hidden, skipped", self.hidden_skipped.to_string()));
        }
        if self.links_skipped > 0 {
            rows.push(("links, skipped", self.links_skipped.to_string()));
        }
        for h in &self.host_entries {
            rows.push(("host entry", format!("{}: {}", h.domain, h.action)));
        }
        for (i, url) in self.urls.iter().enumerate() {
            rows.push((if i == 0 { "url" } else { "" }, url.clone()));
        }
        if !self.refused_domains.is_empty() {
            rows.push((
                "not attached",
                format!("{} (see the errors)", self.refused_domains.join(", ")),
            ));
        }
        out.pairs(&rows);
        for ch in &self.custom_hostnames {
            render_hostname(ch, out);
        }
    }

    fn to_json(&self) -> serde_json::Value {
        json_of(self)
    }

    fn exit_code(&self) -> u8 {
        u8::from(!self.failures.is_empty())
    }

    fn failures(&self) -> Vec<String> {
        self.failures.clone()
    }
}

fn render_hostname(ch: &HostnameReport, out: &mut Renderer) {
    let status = match (&ch.status, &ch.ssl_status) {
        (Some(s), Some(c)) => format!("hostname {s}, certificate {c}"),
        (Some(s), None) => format!("hostname {s}"),
        _ if ch.action == "refused" => "refused".into(),
        _ => "not created yet".into(),
    };
    out.heading(format!(
        "Custom hostname {} ({}): {status}",
        ch.hostname, ch.action
    ));
    if !ch.dns_records.is_empty() {
        let title = if ch.pending.is_empty() {
            "DNS records (all in place)"
        } else {
            "DNS records the tenant adds at their DNS provider"
        };
        out.line(title);
        // Not a wrapping table: names and values must survive copy and paste whole.
        let rows: Vec<[&str; 4]> = std::iter::once(["type", "name", "value", "purpose"])
            .chain(ch.dns_records.iter().map(|r| {
                [
                    r.kind.as_str(),
                    r.name.as_str(),
                    r.value.as_str(),
                    r.purpose.as_str(),
                ]
            }))
            .collect();
        let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
        let (w0, w1, w2) = (width(0), width(1), width(2));
        for r in &rows {
            out.line(format!(
                "  {:w0$}  {:w1$}  {:w2$}  {}",
                r[0], r[1], r[2], r[3]
            ));
        }
        if ch.apex && ch.dns_records.iter().any(|r| r.kind == "CNAME") {
            out.line(format!(
                "{} looks like an apex domain: most DNS providers cannot put a CNAME there. \
                     Use CNAME flattening or an ALIAS/ANAME record, or serve www.{} instead.",
                ch.hostname, ch.hostname
            ));
        }
    }
    if let Some(e) = &ch.error {
        out.line(format!("refused: {e}"));
    }
    for e in &ch.verification_errors {
        out.line(format!("verification error: {e}"));
    }
    for n in &ch.notes {
        out.line(n.clone());
    }
    if !ch.steps.is_empty() {
        out.line("Zero-downtime onboarding (pre-validation), in this order:");
        for s in &ch.steps {
            out.line(format!("  {s}"));
        }
    }
    if let Some(n) = &ch.next {
        out.line(n.clone());
    }
    match ch.wait.as_deref() {
        Some("timed out") => out.line(format!(
            "Timed out; still pending: {}",
            ch.pending.join(", ")
        )),
        Some(_) => out.line(format!("{} is active.", ch.hostname)),
        None if !ch.pending.is_empty() && ch.action != "would create" => out.line(format!(
            "Pending: {}. Add the records, then run again with --wait to wait for it.",
            ch.pending.join(", ")
        )),
        None => {}
    }
}

/// The first few items, then "and N more".
pub(super) fn list_some(items: &[String]) -> String {
    const SHOWN: usize = 5;
    let head = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    match items.len().saturating_sub(SHOWN) {
        0 => head,
        n => format!("{head} and {n} more"),
    }
}
