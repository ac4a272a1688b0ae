//! `cfsetup remove-site TENANT [--yes] [--dry-run]`: take a tenant off the platform, in an order
//! that a re-run always finishes: for each domain its custom hostname first (the domain stops
//! reaching the platform), then its host entry; then the head (its platform URL stops serving).
//! The host entry is what names a domain as the tenant's, so it goes last: a run that fails or is
//! interrupted after deleting a custom hostname leaves the entry, the next run finds the domain
//! again, and no custom hostname is ever orphaned (billed, routed, and invisible to `sites`). A
//! partial failure says what was already removed (exit 1); a tenant with nothing left is "already
//! removed" (exit 0, with a note), so CI can re-run it. The deploy copies and blobs are left to
//! `cfsetup gc`, which deletes them once nothing names them.
//!
//! On a terminal it asks first; otherwise it needs `--yes` (exit 2 before any request without it).
//!
//! This module must not import other commands (only `bucket`, their shared helpers).

use anyhow::Context;
use serde::Serialize;

use crate::cli::RemoveSiteArgs;
use crate::config::Config;
use crate::names::{Hostname, Tenant};
use crate::output::PartialFailure;
use crate::output::{json_of, Renderer, Report, Ui};
use crate::site::layout;

use super::bucket;
use super::head::read_head;

pub async fn run(
    args: RemoveSiteArgs,
    config: &Config,
    ui: &Ui,
) -> anyhow::Result<Box<dyn Report>> {
    let tenant = Tenant::existing(&args.tenant)?;
    let ask = crate::output::must_ask(
        args.yes,
        args.dry_run,
        &format!("remove-site deletes {tenant}'s site and domains"),
        &format!("cfsetup remove-site {tenant} --dry-run"),
    )?;
    let opened = bucket::open(config, ui, &args.bucket, 16).await?;
    let (storage, bucket_name) = (&opened.storage, opened.bucket.as_str());
    let (head, hosts) = tokio::try_join!(
        read_head(storage, bucket_name, &tenant),
        bucket::host_entries(storage, bucket_name, 16),
    )?;
    let mut domains: Vec<Hostname> = hosts
        .into_iter()
        .filter(|(_, t)| t.as_ref() == Some(&tenant))
        .map(|(h, _)| h)
        .collect();
    let mut report = RemoveReport {
        tenant: tenant.to_string(),
        dry_run: args.dry_run,
        already_removed: false,
        live: head.as_ref().and_then(|h| h.live_id().map(str::to_string)),
        host_entries: Vec::new(),
        custom_hostnames: Vec::new(),
        head: false,
    };
    if head.is_none() && domains.is_empty() {
        // A re-run after a run that finished (or a CI retry): nothing to do is not a failure.
        ui.note(format!(
            "tenant {tenant} has no site and no domain in bucket {bucket_name}: already removed, \
             nothing to do"
        ));
        report.already_removed = true;
        return Ok(Box::new(report));
    }
    let zone = config.zone_id.clone();
    if zone.is_none() && !domains.is_empty() {
        if !args.dry_run {
            // Deleting the host entries without their custom hostnames would orphan them.
            return Err(anyhow::anyhow!(
                "{tenant} has {} domain(s) ({}) whose custom hostnames live on the platform's \
                 zone, and CLOUDFLARE_ZONE_ID is not set; nothing was removed",
                domains.len(),
                domains.join(", ")
            )
            .context("set CLOUDFLARE_ZONE_ID (or --zone-id) and run remove-site again"));
        }
        ui.warn("CLOUDFLARE_ZONE_ID is not set: the domains' custom hostnames cannot be looked up");
    }
    if ask {
        let question = format!(
            "Remove {tenant}: {} domain(s){}, and its live site? [y/N] ",
            domains.len(),
            if domains.is_empty() {
                String::new()
            } else {
                format!(" ({})", domains.join(", "))
            }
        );
        if !crate::output::confirm(&question)? {
            anyhow::bail!("not confirmed; nothing was removed");
        }
        // The answer may have taken minutes: a domain moved to another tenant meanwhile
        // (`--take-over-domain`) is that tenant's now, entry and custom hostname.
        let mut still = Vec::new();
        for d in domains {
            let now = storage
                .get(&layout::host_key(&d))
                .await
                .map_err(|e| bucket::bucket_error(e, bucket_name, "reading a host entry"))?
                .and_then(|o| layout::host_entry_tenant(&o.body));
            if now.as_deref() == Some(tenant.as_str()) {
                still.push(d);
            } else {
                ui.warn(format!(
                    "{d} no longer names {tenant} (changed while asking); left alone"
                ));
            }
        }
        domains = still;
    }
    // 1 and 2, per domain: its custom hostname, then its host entry (which is how a re-run finds
    // the domain again).
    for d in &domains {
        if let Some(zone) = &zone {
            let found = opened
                .client
                .find_custom_hostname(zone, d)
                .await
                .with_context(|| format!("looking up the custom hostname {d}"))
                .map_err(|e| unfinished(&report, e))?;
            if let Some(ch) = found {
                if !args.dry_run {
                    opened
                        .client
                        .delete_custom_hostname(zone, &ch.id)
                        .await
                        .with_context(|| format!("deleting the custom hostname {d}"))
                        .map_err(|e| unfinished(&report, e))?;
                }
                report.custom_hostnames.push(d.to_string());
            }
        }
        if !args.dry_run {
            storage
                .delete(&layout::host_key(d))
                .await
                .map_err(|e| bucket::bucket_error(e, bucket_name, "deleting a host entry"))
                .map_err(|e| unfinished(&report, e))?;
        }
        report.host_entries.push(d.to_string());
    }
    // 3. The head: the platform URL stops serving. Copies and blobs are gc's.
    if head.is_some() {
        if !args.dry_run {
            storage
                .delete(&layout::manifest_key(&tenant))
                .await
                .map_err(|e| bucket::bucket_error(e, bucket_name, "deleting the head"))
                .map_err(|e| unfinished(&report, e))?;
        }
        report.head = true;
    }
    Ok(Box::new(report))
}

/// A step failed: say what was already removed (a partial failure, exit 1), or that nothing was.
fn unfinished(report: &RemoveReport, e: anyhow::Error) -> anyhow::Error {
    let again = format!(
        "run `cfsetup remove-site {} --yes` again to finish",
        report.tenant
    );
    let mut done: Vec<String> = Vec::new();
    done.extend(
        report
            .custom_hostnames
            .iter()
            .map(|d| format!("custom hostname {d}")),
    );
    done.extend(
        report
            .host_entries
            .iter()
            .map(|d| format!("host entry {d}")),
    );
    if done.is_empty() {
        return e.context(format!("nothing was removed; {again}"));
    }
    PartialFailure::new(
        format!("already removed: {}; {again}", done.join(", ")),
        Box::new(report.clone()),
        e,
    )
    .into()
}

#[derive(Debug, Clone, Serialize)]
struct RemoveReport {
    tenant: String,
    dry_run: bool,
    /// Nothing was left to remove (a re-run): exit 0.
    already_removed: bool,
    /// The deploy that was live.
    live: Option<String>,
    host_entries: Vec<String>,
    custom_hostnames: Vec<String>,
    /// Whether the head was (or would be) deleted.
    head: bool,
}

impl Report for RemoveReport {
    fn render(&self, out: &mut Renderer) {
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };
        if self.already_removed {
            out.line(format!(
                "{} is already removed (no site, no domain): nothing to do",
                self.tenant
            ));
            return;
        }
        out.line(if self.dry_run {
            format!("Dry run: removing {} (nothing was changed)", self.tenant)
        } else {
            format!("Removed {}", self.tenant)
        });
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        out.pairs(&[
            (
                "host entries",
                format!("{verb}: {}", list(&self.host_entries)),
            ),
            (
                "custom hostnames",
                format!("{verb}: {}", list(&self.custom_hostnames)),
            ),
            (
                "live site",
                match (&self.live, self.head) {
                    (Some(id), true) => format!("{verb}: {id}"),
                    (None, true) => format!("{verb}: its head"),
                    _ => "none".into(),
                },
            ),
            (
                "deploy copies, blobs",
                "left for `cfsetup gc` to delete".into(),
            ),
        ]);
    }
    fn to_json(&self) -> serde_json::Value {
        json_of(self)
    }
}
