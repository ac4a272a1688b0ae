//! `cfsetup rollback TENANT [VERSION]`: switch a tenant's site to any deploy its head names: an
//! earlier or a later kept deploy, or a preview (which is then promoted to live).
//!
//! Nothing is uploaded: the head's `live` becomes the target's Route (read from its immutable
//! deploy copy, or from `previews`), written with a compare-and-swap on the ETag the head was
//! read with (docs/storage-layout.md "rollback"). If another run switched the head in between,
//! exit 1 naming what landed, unless `--force`.
//!
//! VERSION is a whole deploy id, a unique start of one, or a preview name; it is checked before
//! any request. Without it, the kept deploy just before the live one. `--list` shows the kept
//! deploys and previews; `--dry-run` says what would switch. Requests: the head, the target's copy,
//! the CAS; over REST also an intent for the target's blobs, the gc markers, and the intent's
//! deletion.
//!
//! A command: it may import the layers below it and the shared `commands::bucket` and
//! `commands::head`; it must not import another command.

use std::time::SystemTime;

use serde::Serialize;

use crate::cli::RollbackArgs;
use crate::config::Config;
use crate::error::usage;
use crate::names::{Tenant, Version};
use crate::output::{json_of, Renderer, Report, Ui};
use crate::site::layout;
use crate::site::locks::{self, Intent};
use crate::site::manifest::{deploy_time, is_deploy_id, DeployCopy, Head, Route, StoredHead};

use super::bucket;
use super::head::{read_head, shed_previews, Lost, ReadHead, Switch, SwitchSteps};

/// What VERSION names in the head.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Kept(String),
    Preview(String),
}

/// Resolves VERSION against the head: a preview name, a whole id, or a unique start of one.
fn resolve(head: &Head, version: &str) -> anyhow::Result<Target> {
    if head.preview(version).is_some() {
        return Ok(Target::Preview(version.to_string()));
    }
    let mut ids: Vec<(String, Target)> = head
        .kept
        .iter()
        .map(|id| (id.clone(), Target::Kept(id.clone())))
        .collect();
    for (name, r) in head.all_previews() {
        if !head.kept.contains(&r.deploy_id) {
            ids.push((r.deploy_id.clone(), Target::Preview(name.clone())));
        }
    }
    if let Some((_, t)) = ids.iter().find(|(id, _)| id == version) {
        return Ok(t.clone());
    }
    let matches: Vec<&(String, Target)> = ids
        .iter()
        .filter(|(id, _)| id.starts_with(version))
        .collect();
    match matches.as_slice() {
        [(_, t)] => Ok(t.clone()),
        // The problem is the headline; what to do follows it (not the other way round).
        [] => Err(anyhow::anyhow!(
            "{} has no kept deploy or preview called {version:?}; see them with `cfsetup \
             rollback {} --list`",
            head.tenant,
            head.tenant
        )),
        many => Err(usage!(
            "VERSION {version:?} could be any of {} deploys: {}",
            many.len(),
            many.iter()
                .map(|(id, _)| id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
        .with_hint("give more of the id")
        .into()),
    }
}

/// The newest kept deploy older than the live one.
fn before_live(head: &Head) -> Option<String> {
    let live = head.live.as_ref()?.deploy_id.as_str();
    let mut older: Vec<&String> = head.kept.iter().filter(|id| id.as_str() < live).collect();
    older.sort_unstable();
    older.last().map(|s| s.to_string())
}

pub async fn run(args: RollbackArgs, config: &Config, ui: &Ui) -> anyhow::Result<Box<dyn Report>> {
    let tenant = Tenant::existing(&args.tenant)?;
    if args.list && args.version.is_some() {
        return Err(usage!("--list shows every kept deploy; it takes no VERSION")
            .with_hint(format!("run `cfsetup rollback {tenant} --list`, then `cfsetup rollback {tenant} VERSION`"))
            .into());
    }
    let version = args.version.as_deref().map(Version::parse).transpose()?;
    let timing = bucket::lock_timing(args.lock_stale.as_deref())?;
    let opened = bucket::open(config, ui, &args.bucket, 4).await?;
    let (storage, bucket_name) = (&opened.storage, opened.bucket.as_str());

    let Some(read) = read_head(storage, bucket_name, &tenant).await? else {
        anyhow::bail!(
            "tenant {tenant} has no site in bucket {bucket_name}; publish one with `cfsetup deploy-site`"
        );
    };
    let head = match &read.head {
        Some(StoredHead::V2(h)) => h.clone(),
        Some(StoredHead::V1(m)) => anyhow::bail!(
            "{tenant}'s head is format 1 ({} live, written by cfsetup 0.1), which keeps no \
             rollback list; deploy once with this version, then roll back",
            m.deploy_id
        ),
        None => anyhow::bail!(
            "{tenant}'s head is not valid ({}); deploy again to replace it",
            read.invalid.as_deref().unwrap_or("unreadable")
        ),
    };
    let live_id = head.live.as_ref().map(|r| r.deploy_id.clone());
    if args.list {
        return Ok(Box::new(ListReport::of(&head)));
    }

    let target = match &version {
        Some(v) => resolve(&head, v)?,
        None => Target::Kept(before_live(&head).ok_or_else(|| {
            anyhow::anyhow!(
                "tenant {tenant} has no kept deploy older than the live one ({}); see `cfsetup \
                 rollback {tenant} --list`",
                live_id.as_deref().unwrap_or("none")
            )
        })?),
    };
    let route = route_of(storage, bucket_name, &head, &target).await?;
    let direction = match (&target, live_id.as_deref()) {
        (Target::Preview(_), _) => "promote",
        (_, Some(l)) if route.deploy_id.as_str() == l => "none",
        (_, Some(l)) if route.deploy_id.as_str() < l => "back",
        _ => "forward",
    };
    let mut report = RollbackReport {
        tenant: tenant.to_string(),
        from: live_id.clone(),
        to: route.deploy_id.clone(),
        preview: match &target {
            Target::Preview(n) => Some(n.clone()),
            Target::Kept(_) => None,
        },
        direction: direction.into(),
        dry_run: args.dry_run,
        changed: live_id.as_deref() != Some(route.deploy_id.as_str()),
        files: route.files,
        forced: false,
    };
    if !report.changed || args.dry_run {
        return Ok(Box::new(report));
    }
    // Over REST the CAS is checked just before the write, not by the store: an intent naming the
    // target's blobs keeps a gc from deleting them inside that window (docs/storage-layout.md
    // "rollback"). Over S3 the store's If-Match is enough.
    let intent_key = if storage.conditional_writes_are_atomic() {
        None
    } else {
        let key = layout::intent_key(&locks::new_id());
        let ckey = layout::deploy_key(&tenant, &route.deploy_id);
        let hashes: Vec<String> = match storage
            .get(&ckey)
            .await
            .map_err(|e| bucket::bucket_error(e, bucket_name, &format!("reading {ckey}")))?
        {
            Some(o) => DeployCopy::parse(&o.body, &tenant)
                .map(|c| c.hashes().into_iter().map(str::to_string).collect())
                .map_err(|why| anyhow::anyhow!("{ckey} is not a valid deploy copy ({why})"))?,
            None => anyhow::bail!("{ckey} is missing; nothing was changed"),
        };
        // A format 3 target's blobs are named by its shards: gc counts those it names.
        let shards = route.shard_hashes.clone().unwrap_or_default();
        let intent = Intent::new(
            tenant.clone(),
            route.deploy_id.clone(),
            hashes,
            shards,
            &timing,
        );
        bucket::put_json(
            storage,
            bucket_name,
            &key,
            serde_json::to_vec(&intent).unwrap_or_default(),
        )
        .await?;
        Some(key)
    };
    let result = async {
        if intent_key.is_some() {
            bucket::wait_for_sweeps(storage, bucket_name, timing, ui).await?;
        }
        switch(storage, bucket_name, &tenant, &route, read, args.force, ui).await
    }
    .await;
    if let Some(k) = &intent_key {
        let _ = storage.delete(k).await;
    }
    report.forced = result?;
    Ok(Box::new(report))
}

/// The compare-and-swap of the head to `route` ([`Switch`]); with `force`, retried on the newest
/// head while it still names the target. Returns whether it had to retry.
async fn switch(
    storage: &crate::storage::Storage,
    bucket_name: &str,
    tenant: &Tenant,
    route: &Route,
    read: ReadHead,
    force: bool,
    ui: &Ui,
) -> anyhow::Result<bool> {
    super::warn_rest_switch(storage, tenant, ui);
    let by = format!("rollback {} ({})", route.deploy_id, locks::owner());
    let mut steps = RollbackSteps {
        tenant,
        route,
        by: &by,
        force,
        ui,
    };
    let switched = Switch {
        storage,
        bucket: bucket_name,
        tenant,
        own: Some((&route.deploy_id, &by)),
        budget: None,
        unanswered: format!(
            "switching {tenant} to {}; it may or may not be live now (run `cfsetup sites \
             {tenant}` to see)",
            route.deploy_id
        ),
        nothing_was: "changed",
    }
    .run(Some(read), &mut steps)
    .await?;
    Ok(switched.retried)
}

/// rollback's part of the switch: the head with the target live; a lost race is retried only
/// with `--force`, and only while the newest head still names the target (gc protects only
/// what a head names).
struct RollbackSteps<'a> {
    tenant: &'a Tenant,
    route: &'a Route,
    by: &'a str,
    force: bool,
    ui: &'a Ui,
}

impl SwitchSteps for RollbackSteps<'_> {
    fn next(&mut self, base: Option<&Head>) -> anyhow::Result<Option<Head>> {
        let (mut next, _dropped) = Head::with_live(
            self.tenant,
            base,
            self.route.clone(),
            self.by.to_string(),
            SystemTime::now(),
        );
        if let Some(warning) = shed_previews(&mut next, None) {
            self.ui.warn(warning);
        }
        Ok(Some(next))
    }

    async fn retry(&mut self, lost: &Lost) -> anyhow::Result<()> {
        let (tenant, what) = (self.tenant, lost.describe());
        if !self.force {
            anyhow::bail!(
                "another run switched {tenant} after this rollback read it: {what} is live now; \
                 nothing was changed. Run it again, or pass --force"
            );
        }
        self.ui.warn(format!(
            "{tenant} changed meanwhile ({what}); --force: trying again"
        ));
        let Some(now) = lost.now.as_deref().and_then(ReadHead::v2) else {
            anyhow::bail!("{tenant}'s head is gone or not format 2 now; nothing was changed");
        };
        if !now.named_ids().contains(self.route.deploy_id.as_str()) {
            anyhow::bail!(
                "{} is no longer kept by {tenant}'s head; nothing was changed",
                self.route.deploy_id
            );
        }
        Ok(())
    }
}

/// The Route of the target: a preview's from the head, a kept deploy's from its copy.
async fn route_of(
    storage: &crate::storage::Storage,
    bucket_name: &str,
    head: &Head,
    target: &Target,
) -> anyhow::Result<Route> {
    match target {
        // Promoted to live, a preview's password and end do not follow it: live is public.
        Target::Preview(name) => match head.preview(name) {
            Some(r) => Ok(Route {
                expires_at: None,
                protect: None,
                ..r.clone()
            }),
            None => anyhow::bail!("{} has no preview {name:?}", head.tenant),
        },
        Target::Kept(id) => {
            if head.live.as_ref().is_some_and(|r| r.deploy_id == *id) {
                return Ok(head.live.clone().unwrap_or_else(|| unreachable!()));
            }
            if !is_deploy_id(id) {
                anyhow::bail!("the head names {id:?}, which is not a deploy id");
            }
            let key = layout::deploy_key(&head.tenant, id);
            let obj = storage
                .get(&key)
                .await
                .map_err(|e| bucket::bucket_error(e, bucket_name, &format!("reading {key}")))?
                .ok_or_else(|| anyhow::anyhow!("{key} is missing; nothing was changed"))?;
            // Never switch to something the Worker would refuse.
            let copy = DeployCopy::parse(&obj.body, &head.tenant).map_err(|why| {
                anyhow::anyhow!("{key} is not a valid deploy copy ({why}); nothing was changed")
            })?;
            Ok(copy.route)
        }
    }
}

#[derive(Debug, Serialize)]
struct DeployRow {
    deploy_id: String,
    created: Option<String>,
    live: bool,
    /// The preview's name, for a preview.
    preview: Option<String>,
}

#[derive(Debug, Serialize)]
struct ListReport {
    tenant: String,
    deploys: Vec<DeployRow>,
}

impl ListReport {
    fn of(head: &Head) -> Self {
        let live = head.live.as_ref().map(|r| r.deploy_id.as_str());
        let mut deploys: Vec<DeployRow> = head
            .kept
            .iter()
            .map(|id| DeployRow {
                deploy_id: id.clone(),
                created: deploy_time(id),
                live: live == Some(id.as_str()),
                preview: None,
            })
            .collect();
        for (name, r) in head.all_previews() {
            // A promoted preview is also kept: one row, marked with its preview name.
            if let Some(row) = deploys.iter_mut().find(|d| d.deploy_id == r.deploy_id) {
                row.preview = Some(name.clone());
                continue;
            }
            deploys.push(DeployRow {
                deploy_id: r.deploy_id.clone(),
                created: deploy_time(&r.deploy_id),
                live: live == Some(r.deploy_id.as_str()),
                preview: Some(name.clone()),
            });
        }
        // Newest first, previews among the rest (ids sort by time).
        deploys.sort_by(|a, b| b.deploy_id.cmp(&a.deploy_id));
        ListReport {
            tenant: head.tenant.to_string(),
            deploys,
        }
    }
}

impl Report for ListReport {
    fn render(&self, out: &mut Renderer) {
        out.line(format!(
            "Kept deploys and previews of {}, newest first",
            self.tenant
        ));
        out.table(
            &["deploy", "created", "preview", ""],
            self.deploys
                .iter()
                .map(|d| {
                    vec![
                        d.deploy_id.clone(),
                        d.created.clone().unwrap_or_default(),
                        d.preview.clone().unwrap_or_default(),
                        if d.live { "live".into() } else { String::new() },
                    ]
                })
                .collect(),
        );
    }
    fn to_json(&self) -> serde_json::Value {
        json_of(self)
    }
}

#[derive(Debug, Serialize)]
struct RollbackReport {
    tenant: String,
    from: Option<String>,
    to: String,
    /// The preview promoted, if the target was one.
    preview: Option<String>,
    /// `back`, `forward`, `promote` (a preview) or `none`.
    direction: String,
    dry_run: bool,
    changed: bool,
    files: usize,
    forced: bool,
}

impl Report for RollbackReport {
    fn render(&self, out: &mut Renderer) {
        let from = self.from.as_deref().unwrap_or("(none)");
        let verb = match (self.direction.as_str(), self.dry_run) {
            ("back", false) => format!("Rolled {} back", self.tenant),
            ("forward", false) => format!("Rolled {} forward", self.tenant),
            ("promote", false) => format!(
                "Promoted preview {} of {} to live",
                self.preview.as_deref().unwrap_or_default(),
                self.tenant
            ),
            ("back", true) => format!("Dry run: {} would roll back", self.tenant),
            ("forward", true) => format!("Dry run: {} would roll forward", self.tenant),
            (_, true) => format!(
                "Dry run: {} would promote preview {}",
                self.tenant,
                self.preview.as_deref().unwrap_or_default()
            ),
            _ => String::new(),
        };
        let line = if self.changed {
            let tail = if self.dry_run {
                " (nothing was written)"
            } else {
                ""
            };
            format!("{verb} from {from} to {}{tail}", self.to)
        } else {
            format!("{} is already on {}: nothing to do", self.tenant, self.to)
        };
        out.line(line);
        out.line(format!("{} file(s); nothing was uploaded", self.files));
        if self.forced {
            out.line("another run switched meanwhile; --force switched over it");
        }
    }
    fn to_json(&self) -> serde_json::Value {
        json_of(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> crate::names::Tenant {
        crate::names::Tenant::new("acme").unwrap()
    }
    use crate::site::manifest::{Files, Rules};
    use std::collections::BTreeMap;

    fn head() -> Head {
        let route = |id: &str| {
            let mut r = DeployCopy::build(
                &acme(),
                Files::new(),
                Rules::none("none"),
                SystemTime::now(),
                None,
            )
            .route;
            r.deploy_id = id.into();
            r
        };
        Head {
            format: 2,
            tenant: acme(),
            live: Some(route("20260102T000000Z-bbbbbbbb")),
            kept: [
                "20260103T000000Z-cccccccc",
                "20260102T000000Z-bbbbbbbb",
                "20260101T000000Z-aaaaaaaa",
            ]
            .map(String::from)
            .to_vec(),
            previews: BTreeMap::from([("feature".to_string(), route("20260104T000000Z-dddddddd"))]),
            protected_previews: BTreeMap::new(),
            retained: None,
            updated_at: String::new(),
            updated_by: String::new(),
        }
    }

    #[test]
    fn targets_resolve_by_name_id_or_unique_prefix() {
        let h = head();
        assert_eq!(
            before_live(&h).as_deref(),
            Some("20260101T000000Z-aaaaaaaa")
        );
        assert_eq!(
            resolve(&h, "feature").unwrap(),
            Target::Preview("feature".into())
        );
        assert_eq!(
            resolve(&h, "20260103").unwrap(),
            Target::Kept("20260103T000000Z-cccccccc".into())
        );
        assert_eq!(
            resolve(&h, "20260104").unwrap(),
            Target::Preview("feature".into())
        );
        let err = resolve(&h, "2026").unwrap_err();
        assert_eq!(crate::exit::exit_code(&err), 2, "{err:#}");
        assert!(format!("{err:#}").contains("20260101T000000Z-aaaaaaaa"));
        assert_eq!(crate::exit::exit_code(&resolve(&h, "1999").unwrap_err()), 1);
    }
}
