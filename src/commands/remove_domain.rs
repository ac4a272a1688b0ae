//! `cfsetup remove-domain TENANT DOMAIN [--dry-run]`: detach one domain from a tenant: its custom
//! hostname first (the domain stops reaching the platform), then its host entry. The entry is
//! what ties the domain to the tenant, so it goes last: a run that fails after deleting the
//! custom hostname leaves it, and a re-run finishes the job; the other order orphaned the custom
//! hostname (billed, routed, and then refused here as "may belong to another tenant"). A domain
//! with neither left is "already detached" (exit 0, with a note), so CI can re-run it.
//!
//! This module must not import other commands (only `bucket`, their shared helpers).

use anyhow::Context;
use serde::Serialize;

use crate::cli::RemoveDomainArgs;
use crate::config::Config;
use crate::names::{Hostname, Tenant};
use crate::output::{json_of, Renderer, Report, Ui};
use crate::site::layout;

use super::bucket;

pub async fn run(
    args: RemoveDomainArgs,
    config: &Config,
    ui: &Ui,
) -> anyhow::Result<Box<dyn Report>> {
    let tenant = Tenant::existing(&args.tenant)?;
    let domain = Hostname::parse(&args.domain, "DOMAIN")?;
    let zone = config
        .require_zone_id()
        .map_err(|e| {
            e.with_hint(
                "the domain's custom hostname lives on the platform's zone; set CLOUDFLARE_ZONE_ID",
            )
        })?
        .to_string();
    let opened = bucket::open(config, ui, &args.bucket, 4).await?;
    let (storage, bucket_name) = (&opened.storage, opened.bucket.as_str());
    let key = layout::host_key(&domain);
    let entry = storage
        .get(&key)
        .await
        .map_err(|e| bucket::bucket_error(e, bucket_name, "reading the host entry"))?
        .map(|o| layout::host_entry_tenant(&o.body));
    match &entry {
        Some(Some(t)) if *t != tenant => anyhow::bail!(
            "{domain} is attached to tenant {t:?}, not {tenant:?}; nothing was changed"
        ),
        _ => {}
    }
    let found = opened
        .client
        .find_custom_hostname(&zone, &domain)
        .await
        .with_context(|| format!("looking up the custom hostname {domain}"))?;
    if entry.is_none() && found.is_none() {
        ui.note(format!(
            "{domain} has no host entry and no custom hostname: already detached, nothing to do"
        ));
        return Ok(Box::new(RemoveDomainReport {
            tenant: tenant.to_string(),
            domain: domain.to_string(),
            dry_run: args.dry_run,
            already_removed: true,
            host_entry: false,
            custom_hostname: false,
        }));
    }
    // Without a host entry naming TENANT the custom hostname may be another tenant's (one
    // whose deploy is between creating it and writing its entry): only one tagged with this
    // tenant in its custom metadata is deleted then.
    let entry_names_tenant = matches!(&entry, Some(Some(t)) if *t == tenant);
    if let Some(ch) = &found {
        if !entry_names_tenant && ch.metadata_tenant() != Some(tenant.as_str()) {
            anyhow::bail!(
                "{domain} has no host entry naming {tenant}, so its custom hostname may belong to \
                 another tenant; nothing was changed. If it is {tenant}'s, deploy {tenant} with \
                 {domain} again (that writes the host entry) and then remove it"
            );
        }
    }
    if !args.dry_run {
        if let Some(ch) = &found {
            opened
                .client
                .delete_custom_hostname(&zone, &ch.id)
                .await
                .with_context(|| {
                    format!(
                        "deleting the custom hostname {domain} failed; nothing was removed (the \
                         host entry is kept, so running the same command again finishes the job)"
                    )
                })?;
        }
        if entry.is_some() {
            storage.delete(&key).await.map_err(|e| {
                bucket::bucket_error(e, bucket_name, "deleting the host entry").context(format!(
                    "the custom hostname {domain} was removed, but its host entry was not; run \
                     the same command again to finish"
                ))
            })?;
        }
    }
    Ok(Box::new(RemoveDomainReport {
        tenant: tenant.to_string(),
        domain: domain.to_string(),
        dry_run: args.dry_run,
        already_removed: false,
        host_entry: entry.is_some(),
        custom_hostname: found.is_some(),
    }))
}

#[derive(Debug, Serialize)]
struct RemoveDomainReport {
    tenant: String,
    domain: String,
    dry_run: bool,
    /// Nothing was left to remove (a re-run): exit 0.
    already_removed: bool,
    /// Whether a host entry was (or would be) deleted.
    host_entry: bool,
    /// Whether a custom hostname was (or would be) deleted.
    custom_hostname: bool,
}

impl Report for RemoveDomainReport {
    fn render(&self, out: &mut Renderer) {
        if self.already_removed {
            out.line(format!(
                "{} is already detached from {} (no host entry, no custom hostname): nothing to do",
                self.domain, self.tenant
            ));
            return;
        }
        let what: Vec<&str> = [
            self.host_entry.then_some("host entry"),
            self.custom_hostname.then_some("custom hostname"),
        ]
        .into_iter()
        .flatten()
        .collect();
        out.line(if self.dry_run {
            format!(
                "Dry run: would detach {} from {} ({}; nothing was changed)",
                self.domain,
                self.tenant,
                what.join(" and ")
            )
        } else {
            format!(
                "Detached {} from {} ({} deleted)",
                self.domain,
                self.tenant,
                what.join(" and ")
            )
        });
    }
    fn to_json(&self) -> serde_json::Value {
        json_of(self)
    }
}
