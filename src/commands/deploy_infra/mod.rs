//! `cfsetup deploy-infra`: makes the platform's Cloudflare side exist and match what cfsetup
//! expects: the R2 bucket, the router Worker bound to it, the Worker routes, and the
//! custom-hostname fallback origin.
//!
//! The run is plan → apply → report:
//! 1. Everything that can be checked offline is checked first ([`inputs`]), as exit status 2.
//! 2. Every read is made at once, concurrently: the account and the zone (names for the report,
//!    and the zone's name as the default platform domain), the bucket, the deployed script's
//!    module and settings, the zone's routes (listed once), and the fallback origin.
//! 3. The steps run in dependency order (bucket → Worker → routes; the fallback origin stands
//!    alone). Each writes only what differs, so a second run makes no write at all. A step whose
//!    dependency did not succeed is reported `not run`; a failure never stops the report, which
//!    says what was done and what was not, and exits 1. Running again finishes the job.
//!
//! `--dry-run` makes the same reads and reports the same rows, phrased "would create" / "would
//! update", and writes nothing.
//!
//! A command: it may import the layers below it and the shared `commands::bucket` and
//! `commands::head`; doctor reads its plan (`Inputs`) read-only; it imports no other command.

mod inputs;
pub mod report;
mod steps;
mod worker;

use anyhow::Context;

use crate::cli::DeployInfraArgs;
use crate::cloudflare::r2::BucketRef;
use crate::cloudflare::Client;
use crate::config::Config;
use crate::names::Hostname;
use crate::output::{Report, Ui};

pub use inputs::Inputs;
use inputs::{route_in_zone, within};
use report::{DeployInfraReport, Named, Resource, Row};

/// Requests in flight at once; the plan makes seven reads together.
const MAX_IN_FLIGHT: usize = 8;

pub async fn run(
    args: DeployInfraArgs,
    config: &Config,
    ui: &Ui,
) -> anyhow::Result<Box<dyn Report>> {
    let inputs = Inputs::check(&args, config)?;
    let auth = super::platform_auth(config, ui)?;
    let client = super::client(config, auth, MAX_IN_FLIGHT)?;
    Ok(Box::new(deploy(&client, ui, &inputs).await?))
}

/// What every step sees.
pub struct Run<'a> {
    pub client: &'a Client,
    pub ui: &'a Ui,
    pub inputs: &'a Inputs,
    pub zone: &'a str,
    pub zone_name: &'a str,
}

/// Reads, then the steps in order; the report holds one row per resource.
pub async fn deploy(
    client: &Client,
    ui: &Ui,
    inputs: &Inputs,
) -> anyhow::Result<DeployInfraReport> {
    let account_id = inputs.platform.bucket.account.as_str();
    let zone_id = inputs.zone.as_str();
    let bucket_ref = BucketRef {
        account: account_id,
        name: &inputs.platform.bucket.name,
        jurisdiction: inputs.platform.bucket.jurisdiction.as_deref(),
    };
    let worker_name = inputs.platform.worker.as_str();
    let (account, zone, bucket, content, settings, routes, fallback) = tokio::join!(
        client.get_account(account_id),
        client.get_zone(zone_id),
        client.get_bucket(bucket_ref),
        client.script_content(account_id, worker_name),
        client.script_settings(account_id, worker_name),
        client.list_routes(zone_id),
        client.get_fallback_origin(zone_id),
    );
    // Nothing has been written yet, so a failure here ends the run with nothing half-done.
    let account = account.context("reading the account, for its name in the report")?;
    let zone = zone.context("reading the zone, for its name")?;
    let zone_name = zone.name.to_ascii_lowercase();
    let domain = inputs
        .platform
        .domain
        .as_ref()
        .map_or_else(|| zone_name.clone(), Hostname::to_string);
    if !within(&domain, &zone_name) {
        anyhow::bail!(
            "the platform domain {domain} is not in the zone {zone_name} ({zone_id}): the router's \
             route *.{domain}/* could not be created there; set --platform-domain (or \
             PLATFORM_DOMAIN) to {zone_name} or a name under it, or use the zone that holds \
             {domain} (--zone-id)"
        );
    }
    // The fallback origin must be in the zone too: known now, before the first write, so a wrong
    // one is not found only after the bucket, the Worker and its routes were made. (Exit 1 like
    // the checks above: docs/cli.md keeps 2 for what is found before any request.)
    if let Some(origin) = &inputs.platform.fallback_origin {
        if let Err(e) = crate::names::in_zone(origin, &zone_name, "--fallback-origin") {
            anyhow::bail!(
                "{}: the fallback origin is a proxied record in the zone; nothing was changed \
                 ({})",
                e.message,
                e.hint.unwrap_or_default()
            );
        }
    }
    let wanted_routes = inputs.wanted_routes(&domain);
    if let Some(bad) = wanted_routes.iter().find(|r| !route_in_zone(r, &zone_name)) {
        anyhow::bail!(
            "--route {bad} is not in the zone {zone_name}: a Worker route belongs to one zone; \
             give a pattern under {zone_name}, or run deploy-infra for the other zone"
        );
    }

    let route_capture = if wanted_routes.iter().any(|r| r == "*/*") {
        Some(route_capture(client, zone_id, &zone_name, &domain).await)
    } else {
        None
    };
    if let Some(c) = &route_capture {
        ui.warn(&c.note);
    }

    let run = Run {
        client,
        ui,
        inputs,
        zone: zone_id,
        zone_name: &zone_name,
    };
    let mut rows: Vec<Row> = Vec::new();
    let bucket_row = steps::bucket(&run, bucket).await;
    let bucket_ok = bucket_row.action.is_ok();
    rows.push(bucket_row);
    let worker_ok = if bucket_ok {
        let row = steps::worker(&run, &domain, content, settings).await;
        let ok = row.action.is_ok();
        rows.push(row);
        ok
    } else {
        rows.extend(steps::not_run(
            Resource::Worker,
            &[inputs.platform.worker.to_string()],
            "its SITES binding needs the R2 bucket",
        ));
        false
    };
    if worker_ok {
        rows.extend(steps::routes(&run, &wanted_routes, routes).await);
    } else {
        rows.extend(steps::not_run(
            Resource::Route,
            &wanted_routes,
            "needs the Worker",
        ));
    }
    rows.push(steps::fallback(&run, fallback).await);

    let ok = rows.iter().all(|r| r.action.is_ok());
    Ok(DeployInfraReport {
        dry_run: inputs.dry_run,
        account: Named {
            id: account.id,
            name: account.name,
        },
        zone: Named {
            id: zone.id,
            name: zone_name.clone(),
        },
        advice: crate::platform::domain_advice(&domain),
        platform_domain: domain,
        bucket: inputs.platform.bucket.name.to_string(),
        jurisdiction: inputs.platform.bucket.jurisdiction.clone(),
        worker: inputs.platform.worker.to_string(),
        steps: rows,
        ok,
        route_capture,
    })
}

/// What `*/*` captures: every proxied hostname of the zone that no more specific route claims.
/// The platform's `*.<domain>/*` claims the platform's subdomains; everything else proxied
/// (the apex, `www`, a marketing site) reaches the router, which answers 404 for a host that is
/// no tenant's. Listing DNS records needs DNS Read, which the 8 permissions do not include.
async fn route_capture(
    client: &Client,
    zone_id: &str,
    zone_name: &str,
    domain: &str,
) -> report::RouteCapture {
    let base = format!(
        "the route */* sends every proxied hostname of the zone {zone_name} that has no more \
         specific route to the router (which answers 404 for a host that is no tenant's)"
    );
    let suffix = format!(".{domain}");
    match client.list_dns_records(zone_id).await {
        Ok(records) => {
            let mut names: Vec<String> = records
                .into_iter()
                .filter(|r| r.proxied && matches!(r.kind.as_str(), "A" | "AAAA" | "CNAME"))
                .map(|r| r.name.to_ascii_lowercase())
                .filter(|n| !n.ends_with(&suffix))
                .collect();
            names.sort();
            names.dedup();
            let note = if names.is_empty() {
                format!("{base}; the zone has no other proxied hostname now")
            } else {
                format!(
                    "{base}: {} would be served by the router; give them their own routes, or \
                     use a zone dedicated to the platform",
                    names.join(", ")
                )
            };
            report::RouteCapture {
                pattern: "*/*".into(),
                hostnames: Some(names),
                note,
            }
        }
        Err(e) => report::RouteCapture {
            pattern: "*/*".into(),
            hostnames: None,
            note: format!(
                "{base}, such as the apex or www; the token cannot list the zone's DNS records to \
                 name them (HTTP {}; that needs DNS Read on the zone, which is not one of the 8 \
                 permissions): check the zone's proxied records in the dashboard (DNS > Records), \
                 or use a zone dedicated to the platform",
                e.status().map_or("error".to_string(), |s| s.to_string())
            ),
        },
    }
}
