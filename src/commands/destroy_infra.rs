//! `cfsetup destroy-infra [--delete-bucket] [--dry-run] [--yes] [--force]`: `deploy-infra`
//! backwards.
//!
//! It removes, in this order: the zone's Worker routes whose script is the router, the router
//! Worker, the custom-hostname fallback origin, and with `--delete-bucket` every object of the
//! bucket (S3 DeleteObjects, 1,000 keys a call) and then the bucket. It touches only what
//! `deploy-infra` makes, recognised as such:
//! - a route is the platform's when it points at the router Worker (deploy-infra creates or takes
//!   over exactly those); other routes are left alone, whatever their pattern;
//! - the Worker named `--worker-name` is the router only when its settings carry the `SITES` R2
//!   binding to this bucket (docs/cloudflare-api.md §8, the bindings deploy-infra sends); a
//!   script of that name without it is someone else's and is left alone, and so are its routes;
//! - the fallback origin is removed only when it is the one configured (`--fallback-origin` or
//!   `SAAS_FALLBACK_ORIGIN`), as deploy-infra only ever sets that one.
//!
//! Before any write it reads everything, and refuses with exit 1, listing them, while any tenant
//! has a live site (`sites/<tenant>/manifest.json` names a live deploy), unless `--force`. It asks
//! on a terminal, and needs `--yes` otherwise (exit 2 before any request). Every step treats
//! "already gone" as done, so an interrupted run is finished by running it again, and a second
//! run finds nothing to do and exits 0.
//!
//! It must not import deploy-infra's steps (it only reads what they make) or a storage backend.

use anyhow::Context;
use serde::Serialize;

use crate::cli::DestroyInfraArgs;
use crate::cloudflare::r2::BucketRef;
use crate::cloudflare::Client;
use crate::config::Config;
use crate::output::{json_of, Renderer, Report, Ui};
use crate::platform::{self, Flags, Platform};

use super::bucket;
use super::head::read_head;

/// Requests in flight at once.
const MAX_IN_FLIGHT: usize = 16;
/// Keys per batch delete (S3 DeleteObjects' limit, docs/cloudflare-api.md §7).
const DELETE_BATCH: usize = 1000;

/// One thing destroy-infra looked at.
#[derive(Debug, Serialize, Clone)]
pub struct Step {
    /// `route`, `worker`, `fallback origin`, `objects`, `bucket`.
    pub resource: String,
    pub name: String,
    /// `deleted`, `would delete`, `absent`, `left alone`, `failed`, `not run`.
    pub action: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

impl Step {
    fn new(
        resource: &str,
        name: impl Into<String>,
        action: &str,
        detail: impl Into<String>,
    ) -> Self {
        Step {
            resource: resource.into(),
            name: name.into(),
            action: action.into(),
            detail: detail.into(),
        }
    }

    fn changes(&self) -> bool {
        matches!(
            self.action.as_str(),
            "deleted" | "would delete" | "to delete"
        )
    }
}

#[derive(Debug, Serialize)]
pub struct DestroyReport {
    pub dry_run: bool,
    pub worker: String,
    pub bucket: String,
    /// Tenants with a live site that `--force` destroyed the platform under.
    pub live_tenants: Vec<String>,
    pub steps: Vec<Step>,
    pub ok: bool,
}

impl Report for DestroyReport {
    fn render(&self, out: &mut Renderer) {
        let changed = self.steps.iter().any(Step::changes);
        out.line(match (self.dry_run, changed, self.ok) {
            (_, _, false) => "destroy-infra did not finish: run it again to finish".to_string(),
            (true, true, _) => "Dry run: this would be removed (nothing was changed)".to_string(),
            (_, false, _) => {
                "Nothing to destroy: the platform's infrastructure is gone".to_string()
            }
            (false, true, _) => "Destroyed the platform's infrastructure".to_string(),
        });
        out.table(
            &["resource", "name", "action", "detail"],
            self.steps
                .iter()
                .map(|s| {
                    vec![
                        s.resource.clone(),
                        s.name.clone(),
                        s.action.clone(),
                        s.detail.clone(),
                    ]
                })
                .collect(),
        );
        if !self.live_tenants.is_empty() {
            out.line(format!(
                "--force: {} tenant(s) had a live site: {}",
                self.live_tenants.len(),
                self.live_tenants.join(", ")
            ));
        }
    }

    fn to_json(&self) -> serde_json::Value {
        json_of(self)
    }

    fn exit_code(&self) -> u8 {
        u8::from(!self.ok)
    }
}

/// What the reads found.
struct Found {
    routes: Vec<crate::cloudflare::workers::Route>,
    other_routes: usize,
    /// The router exists and is cfsetup's.
    worker: Option<bool>,
    fallback: Option<String>,
    bucket: bool,
    objects: Vec<String>,
    live: Vec<String>,
}

pub async fn run(
    args: DestroyInfraArgs,
    config: &Config,
    ui: &Ui,
) -> anyhow::Result<Box<dyn Report>> {
    let Platform {
        bucket: loc,
        fallback_origin: fallback,
        worker,
        ..
    } = Platform::resolve(
        config,
        Flags {
            worker_name: args.worker_name.as_deref(),
            fallback_origin: args.fallback_origin.as_deref(),
            ..Flags::bucket(&args.bucket)
        },
    )?;
    let account = loc.account.clone();
    let zone = config.require_zone_id()?.to_string();
    let ask = crate::output::must_ask(
        args.yes,
        args.dry_run,
        "destroy-infra removes the platform's Worker, its routes and the fallback origin",
        "cfsetup destroy-infra --dry-run",
    )?;
    let auth = super::platform_auth(config, ui)?;
    let client = super::client(config, auth, MAX_IN_FLIGHT)?;
    let bucket_ref = BucketRef {
        account: &account,
        name: &loc.name,
        jurisdiction: loc.jurisdiction.as_deref(),
    };

    // Reads only.
    let (routes, settings, current_fallback, bucket_meta) = tokio::join!(
        client.list_routes(&zone),
        client.script_settings(&account, &worker),
        client.get_fallback_origin(&zone),
        client.get_bucket(bucket_ref),
    );
    let routes = routes.context("listing the zone's Worker routes")?;
    let settings = settings.context("reading the router Worker's settings")?;
    let current_fallback = current_fallback.context("reading the fallback origin")?;
    let bucket_exists = bucket_meta.context("reading the bucket")?.is_some();
    let worker_state = settings.map(|s| is_router(&s.bindings, &loc.name));
    let (ours, others): (Vec<_>, Vec<_>) = routes
        .into_iter()
        .partition(|r| r.script.as_deref() == Some(worker.as_str()));
    let mut found = Found {
        // Routes to a script of that name that is not the router are not the platform's.
        routes: if worker_state == Some(false) {
            Vec::new()
        } else {
            ours
        },
        other_routes: others.len(),
        worker: worker_state,
        fallback: current_fallback.and_then(|f| f.origin),
        bucket: bucket_exists,
        objects: Vec::new(),
        live: Vec::new(),
    };
    let storage = if bucket_exists {
        let storage = crate::storage::open(config, &client, loc.clone()).await?;
        found.live = live_tenants(&storage, &loc.name).await?;
        if args.delete_bucket {
            found.objects = storage
                .list("")
                .await
                .map_err(|e| bucket::bucket_error(e, &loc.name, "listing objects"))?
                .into_iter()
                .map(|o| o.key)
                .collect();
        }
        Some(storage)
    } else {
        None
    };
    if !found.live.is_empty() && !args.force {
        anyhow::bail!(
            "{} tenant(s) have a live site: {}. Nothing was changed. Take them off with `cfsetup \
             remove-site TENANT`, or pass --force to destroy the platform under them",
            found.live.len(),
            found.live.join(", ")
        );
    }

    let fallback_ours = match (&found.fallback, &fallback) {
        (Some(have), Some(want)) => have.eq_ignore_ascii_case(want),
        _ => false,
    };
    let plan = Plan {
        found: &found,
        worker: &worker,
        bucket: &loc.name,
        fallback_ours,
        delete_bucket: args.delete_bucket,
    };
    let nothing = plan.steps(true).iter().all(|s| !s.changes());
    if ask && !nothing {
        for s in plan.steps(true).iter().filter(|s| s.changes()) {
            eprintln!("  {} {} ({})", s.resource, s.name, s.detail);
        }
        if !crate::output::confirm("Remove the above? [y/N] ")? {
            anyhow::bail!("not confirmed; nothing was removed");
        }
    }
    let steps = if args.dry_run || nothing {
        plan.steps(args.dry_run)
    } else {
        apply(
            &client,
            &zone,
            &account,
            bucket_ref,
            storage.as_ref(),
            &plan,
            ui,
        )
        .await
    };
    Ok(Box::new(DestroyReport {
        dry_run: args.dry_run,
        worker: worker.to_string(),
        bucket: loc.name.to_string(),
        live_tenants: found.live.clone(),
        ok: steps
            .iter()
            .all(|s| s.action != "failed" && s.action != "not run"),
        steps,
    }))
}

/// Whether a script's bindings are the router's: `SITES`, an R2 binding to this bucket.
fn is_router(bindings: &[serde_json::Value], bucket: &str) -> bool {
    bindings.iter().any(|b| {
        b.get("type").and_then(|t| t.as_str()) == Some("r2_bucket")
            && b.get("name").and_then(|n| n.as_str()) == Some(platform::SITES_BINDING)
            && b.get("bucket_name").and_then(|n| n.as_str()) == Some(bucket)
    })
}

/// Tenants whose head names a live deploy.
async fn live_tenants(
    storage: &crate::storage::Storage,
    bucket_name: &str,
) -> anyhow::Result<Vec<String>> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    let tenants = bucket::tenants(storage, bucket_name).await?;
    // The heads read concurrently, in the listing's order.
    let heads: Vec<_> = stream::iter(&tenants)
        .map(|t| read_head(storage, bucket_name, t))
        .buffered(MAX_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(tenants
        .iter()
        .zip(heads)
        .filter(|(_, head)| head.as_ref().is_some_and(|h| h.head.is_some()))
        .map(|(t, _)| t.to_string())
        .collect())
}

struct Plan<'a> {
    found: &'a Found,
    worker: &'a str,
    bucket: &'a str,
    fallback_ours: bool,
    delete_bucket: bool,
}

impl Plan<'_> {
    /// The rows: what would go is `would delete` (`dry`) or `to delete`, which [`apply`] turns
    /// into `deleted`, `failed` or `not run`.
    fn steps(&self, dry: bool) -> Vec<Step> {
        let del = if dry { "would delete" } else { "to delete" };
        let f = self.found;
        let mut steps = Vec::new();
        for r in &f.routes {
            steps.push(Step::new(
                "route",
                &r.pattern,
                del,
                format!("points at {}", self.worker),
            ));
        }
        if f.other_routes > 0 {
            steps.push(Step::new(
                "route",
                format!("{} other(s)", f.other_routes),
                "left alone",
                "not pointing at the router",
            ));
        }
        steps.push(match f.worker {
            Some(true) => Step::new("worker", self.worker, del, "the router (SITES binding)"),
            Some(false) => Step::new(
                "worker",
                self.worker,
                "left alone",
                format!("no SITES binding to {}: not cfsetup's router", self.bucket),
            ),
            None => Step::new("worker", self.worker, "absent", ""),
        });
        steps.push(match (&f.fallback, self.fallback_ours) {
            (Some(o), true) => Step::new("fallback origin", o, del, "the configured one"),
            (Some(o), false) => Step::new(
                "fallback origin",
                o,
                "left alone",
                "not the configured SAAS_FALLBACK_ORIGIN (--fallback-origin)",
            ),
            (None, _) => Step::new("fallback origin", "(none)", "absent", ""),
        });
        match (f.bucket, self.delete_bucket) {
            (true, true) => {
                if !f.objects.is_empty() {
                    steps.push(Step::new(
                        "objects",
                        format!("{} object(s)", f.objects.len()),
                        del,
                        format!("in {}, {DELETE_BATCH} per batch", self.bucket),
                    ));
                }
                steps.push(Step::new("bucket", self.bucket, del, ""));
            }
            (true, false) => steps.push(Step::new(
                "bucket",
                self.bucket,
                "left alone",
                "--delete-bucket empties and deletes it",
            )),
            (false, _) => steps.push(Step::new("bucket", self.bucket, "absent", "")),
        }
        steps
    }
}

/// The deletes, in order; a failed step stops the steps that depend on it (a Worker with routes
/// still pointing at it, a bucket not yet empty) and the rest of the report says `not run`.
async fn apply(
    client: &Client,
    zone: &str,
    account: &str,
    bucket_ref: BucketRef<'_>,
    storage: Option<&crate::storage::Storage>,
    plan: &Plan<'_>,
    ui: &Ui,
) -> Vec<Step> {
    let mut steps = plan.steps(false);
    let mark = |s: &mut Step, r: anyhow::Result<()>| match r {
        Ok(()) => s.action = "deleted".into(),
        Err(e) => {
            s.action = "failed".into();
            s.detail = format!("{e:#}");
        }
    };
    let mut ok = true;
    let f = plan.found;
    let mut i = 0;
    for r in &f.routes {
        let result = client
            .delete_route(zone, &r.id)
            .await
            .with_context(|| format!("deleting the route {}", r.pattern));
        ok &= result.is_ok();
        mark(&mut steps[i], result);
        i += 1;
    }
    for s in steps.iter_mut().skip(i) {
        match (s.resource.as_str(), s.action.as_str()) {
            ("worker", "to delete") => {
                if !ok {
                    s.action = "not run".into();
                    s.detail = "a route still points at it".into();
                    continue;
                }
                let r = client
                    .delete_script(account, plan.worker)
                    .await
                    .context("deleting the Worker");
                ok &= r.is_ok();
                mark(s, r);
            }
            ("fallback origin", "to delete") => {
                let r = client
                    .delete_fallback_origin(zone)
                    .await
                    .context("deleting the fallback origin");
                ok &= r.is_ok();
                mark(s, r);
            }
            ("objects", "to delete") => {
                let r = match storage {
                    Some(st) => empty_bucket(st, &f.objects, plan.bucket, ui).await,
                    None => Ok(()),
                };
                ok &= r.is_ok();
                mark(s, r);
            }
            ("bucket", "to delete") => {
                if !ok {
                    s.action = "not run".into();
                    s.detail = "an earlier step failed".into();
                    continue;
                }
                let r = client.delete_bucket(bucket_ref).await.context(
                    "deleting the bucket: R2 refuses while objects or unfinished multipart \
                         uploads remain (docs/cloudflare-api.md §7, 10008); uploads this store cannot \
                         list are removed by R2 after 7 days; run again then",
                );
                ok &= r.is_ok();
                mark(s, r);
            }
            _ => {}
        }
    }
    steps
}

/// Batch deletes with a progress bar; an interruption leaves fewer objects, and the next run lists
/// what is left and goes on.
async fn empty_bucket(
    storage: &crate::storage::Storage,
    keys: &[String],
    bucket_name: &str,
    ui: &Ui,
) -> anyhow::Result<()> {
    let bar = ui.progress(keys.len() as u64, "emptying the bucket");
    for batch in keys.chunks(DELETE_BATCH) {
        storage
            .delete_many(batch)
            .await
            .map_err(|e| bucket::bucket_error(e, bucket_name, "deleting objects"))?;
        bar.inc(batch.len() as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_sites_binding_to_this_bucket_makes_the_router() {
        let b = |name: &str, bucket: &str| {
            vec![json!({"type": "r2_bucket", "name": name, "bucket_name": bucket})]
        };
        assert!(is_router(&b("SITES", "cfsetup-sites"), "cfsetup-sites"));
        assert!(!is_router(&b("SITES", "other"), "cfsetup-sites"));
        assert!(!is_router(&b("ASSETS", "cfsetup-sites"), "cfsetup-sites"));
        assert!(!is_router(&[], "cfsetup-sites"));
    }
}
