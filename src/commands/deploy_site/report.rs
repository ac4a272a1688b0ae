//! The report of a deploy: what was uploaded, kept and deleted, the URLs, and the custom domain.

use serde::Serialize;

use crate::output::{json_of, Renderer, Report};
use crate::site::walk::human_bytes;

use super::{HostnameReport, Input, Plan};

#[derive(Debug, Serialize)]
pub(super) struct DeployReport {
    pub(super) tenant: String,
    pub(super) dry_run: bool,
    /// Whether the live manifest changed (or, with --dry-run, would).
    pub(super) changed: bool,
    /// The deploy that is live after this run.
    pub(super) deploy_id: Option<String>,
    pub(super) previous_deploy_id: Option<String>,
    pub(super) files: usize,
    pub(super) uploaded: usize,
    pub(super) unchanged: usize,
    pub(super) bytes_sent: u64,
    pub(super) deleted_blobs: usize,
    pub(super) deleted_deploys: usize,
    pub(super) hidden_skipped: usize,
    pub(super) links_skipped: usize,
    /// `created`, `unchanged`, `would create`, or absent without DOMAIN.
    pub(super) host_entry: Option<String>,
    pub(super) prune: String,
    pub(super) urls: Vec<String>,
    pub(super) custom_hostname: Option<HostnameReport>,
    #[serde(skip)]
    pub(super) exit: u8,
}

impl DeployReport {
    pub(super) fn new(
        input: &Input,
        plan: &Plan,
        walked: &crate::site::Walk,
        files: usize,
    ) -> Self {
        let mut urls = Vec::new();
        if let Some(p) = &plan.platform_domain {
            urls.push(format!("https://{}.{p}/", input.tenant));
        }
        if let Some(d) = &input.domain {
            urls.push(format!("https://{d}/"));
        }
        let host_entry = plan.write_host_entry.map(|write| {
            match (write, input.dry_run) {
                (false, _) => "unchanged",
                (true, true) => "would create",
                (true, false) => "created",
            }
            .to_string()
        });
        let planned_bytes = plan.uploads.iter().map(|f| f.size).sum();
        DeployReport {
            tenant: input.tenant.clone(),
            dry_run: input.dry_run,
            changed: plan.next.is_some(),
            deploy_id: plan
                .next
                .as_ref()
                .or(plan.live.as_ref())
                .map(|m| m.deploy_id.clone()),
            previous_deploy_id: plan
                .next
                .as_ref()
                .and(plan.live.as_ref())
                .map(|m| m.deploy_id.clone()),
            files,
            uploaded: if input.dry_run { plan.uploads.len() } else { 0 },
            unchanged: plan.unchanged,
            bytes_sent: if input.dry_run { planned_bytes } else { 0 },
            deleted_blobs: 0,
            deleted_deploys: 0,
            hidden_skipped: walked.hidden.len(),
            links_skipped: walked.links.len(),
            host_entry,
            prune: if plan.next.is_some() {
                if input.dry_run {
                    "after the switch"
                } else {
                    "not needed"
                }
            } else {
                "not needed"
            }
            .into(),
            urls,
            custom_hostname: None,
            exit: 0,
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
                format!("{} ({})", self.uploaded, human_bytes(self.bytes_sent)),
            ),
            ("unchanged", self.unchanged.to_string()),
        ];
        if !self.dry_run {
            rows.push((
                "deleted",
                format!(
                    "{} blob(s), {} old deploy(s) (prune: {})",
                    self.deleted_blobs, self.deleted_deploys, self.prune
                ),
            ));
        }
        if let Some(id) = &self.deploy_id {
            let label = if self.dry_run && self.changed {
                "next deploy"
            } else {
                "live deploy"
            };
            let id = match &self.previous_deploy_id {
                Some(prev) => format!("{id} (was {prev})"),
                None => id.clone(),
            };
            rows.push((label, id));
        }
        if self.hidden_skipped > 0 {
            rows.push(("hidden, skipped", self.hidden_skipped.to_string()));
        }
        if self.links_skipped > 0 {
            rows.push(("links, skipped", self.links_skipped.to_string()));
        }
        if let Some(h) = &self.host_entry {
            rows.push(("host entry", h.clone()));
        }
        for (i, url) in self.urls.iter().enumerate() {
            rows.push((if i == 0 { "url" } else { "" }, url.clone()));
        }
        out.pairs(&rows);
        let Some(ch) = &self.custom_hostname else {
            return;
        };
        let status = match (&ch.status, &ch.ssl_status) {
            (Some(s), Some(c)) => format!("hostname {s}, certificate {c}"),
            (Some(s), None) => format!("hostname {s}"),
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
        for e in &ch.verification_errors {
            out.line(format!("verification error: {e}"));
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

    fn to_json(&self) -> serde_json::Value {
        json_of(self)
    }

    fn exit_code(&self) -> u8 {
        self.exit
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
