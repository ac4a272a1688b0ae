//! `cfsetup remove-site TENANT [--yes] [--dry-run]`: take a tenant off the platform, in an order
//! that never serves half a site: its host entries first (its domains stop resolving to it), then
//! their custom hostnames, then its head (its platform URL stops serving). The deploy copies and
//! blobs are left to `cfsetup gc`, which deletes them once nothing names them.
//!
//! On a terminal it asks first; otherwise it needs `--yes` (exit 2 before any request without it).

use std::io::{BufRead, Write};

use anyhow::Context;
use serde::Serialize;

use crate::cli::RemoveSiteArgs;
use crate::config::Config;
use crate::error::usage;
use crate::output::{json_of, Renderer, Report, Ui};
use crate::site::layout;

use super::bucket::{self, read_head};

pub async fn run(
    args: RemoveSiteArgs,
    config: &Config,
    ui: &Ui,
) -> anyhow::Result<Box<dyn Report>> {
    let tenant = bucket::existing_tenant(&args.tenant)?;
    let ask = !args.yes && !args.dry_run;
    if ask && !bucket::stdin_is_terminal() {
        return Err(usage!("remove-site deletes {tenant}'s site and domains; pass --yes to confirm")
            .with_hint(format!(
                "stdin is not a terminal, so there is no one to ask; `cfsetup remove-site {tenant} --dry-run` shows what would go"
            ))
            .into());
    }
    let opened = bucket::open(config, ui, &args.bucket, 16).await?;
    let (storage, bucket_name) = (&opened.storage, opened.bucket.as_str());
    let (head, hosts) = tokio::try_join!(
        read_head(storage, bucket_name, &tenant),
        bucket::host_entries(storage, bucket_name, 16),
    )?;
    let mut domains: Vec<String> = hosts
        .into_iter()
        .filter(|(_, t)| t.as_deref() == Some(tenant.as_str()))
        .map(|(h, _)| h)
        .collect();
    if head.is_none() && domains.is_empty() {
        anyhow::bail!("tenant {tenant} has no site and no domain in bucket {bucket_name}");
    }
    let zone = config.zone_id.clone();
    let mut report = RemoveReport {
        tenant: tenant.clone(),
        dry_run: args.dry_run,
        live: head.as_ref().and_then(|h| h.live_id().map(str::to_string)),
        host_entries: domains.clone(),
        custom_hostnames: Vec::new(),
        head: head.is_some(),
    };
    if zone.is_none() && !domains.is_empty() {
        ui.warn("CLOUDFLARE_ZONE_ID is not set: the domains' custom hostnames are left in place");
    }
    if ask {
        eprint!(
            "Remove {tenant}: {} domain(s){}, and its live site? [y/N] ",
            domains.len(),
            if domains.is_empty() {
                String::new()
            } else {
                format!(" ({})", domains.join(", "))
            }
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
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
        report.host_entries = domains.clone();
    }
    // 1. Host entries: the domains stop serving the tenant.
    for d in &domains {
        if !args.dry_run {
            storage
                .delete(&layout::host_key(d))
                .await
                .map_err(|e| bucket::bucket_error(e, bucket_name, "deleting a host entry"))?;
        }
    }
    // 2. Their custom hostnames.
    if let Some(zone) = &zone {
        for d in &domains {
            let found = opened
                .client
                .find_custom_hostname(zone, d)
                .await
                .with_context(|| format!("looking up the custom hostname {d}"))?;
            if let Some(ch) = found {
                if !args.dry_run {
                    opened
                        .client
                        .delete_custom_hostname(zone, &ch.id)
                        .await
                        .with_context(|| format!("deleting the custom hostname {d}"))?;
                }
                report.custom_hostnames.push(d.clone());
            }
        }
    }
    // 3. The head: the platform URL stops serving. Copies and blobs are gc's.
    if head.is_some() && !args.dry_run {
        storage
            .delete(&layout::manifest_key(&tenant))
            .await
            .map_err(|e| bucket::bucket_error(e, bucket_name, "deleting the head"))?;
    }
    Ok(Box::new(report))
}

#[derive(Debug, Serialize)]
struct RemoveReport {
    tenant: String,
    dry_run: bool,
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
