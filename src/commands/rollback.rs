//! `cfsetup rollback TENANT [VERSION]`: switch a tenant's site back to a kept deploy.
//!
//! `deploy-site` keeps a copy of each of the tenant's newest deploys under
//! `sites/<tenant>/deploys/<deploy_id>.json` (docs/storage-layout.md), and never prunes a blob a
//! kept copy names. So a rollback uploads nothing: it copies one kept manifest over the live
//! `sites/<tenant>/manifest.json`, which the Worker picks up within its cache lifetime.
//!
//! Without VERSION it goes to the deploy just before the live one. VERSION may be a whole deploy
//! id or an unambiguous start of one. `--list` shows the kept deploys, newest first, with the live
//! one marked; `--dry-run` says what would switch. Requests: one listing, one GET of the live
//! manifest, one GET of the target, one PUT.

use serde::Serialize;

use crate::cli::RollbackArgs;
use crate::cloudflare::r2::{BucketRef, ObjectBody};
use crate::config::{self, Config};
use crate::error::usage;
use crate::output::{json_of, Renderer, Report, Ui};
use crate::platform;
use crate::site::layout;
use crate::site::manifest::deploy_time;
use crate::site::Manifest;

pub async fn run(args: RollbackArgs, config: &Config, ui: &Ui) -> anyhow::Result<Box<dyn Report>> {
    let tenant = config::tenant(&args.tenant)?;
    if args.list && args.version.is_some() {
        return Err(usage!("--list shows every kept deploy; it takes no VERSION")
            .with_hint(format!("run `cfsetup rollback {tenant} --list`, then `cfsetup rollback {tenant} VERSION`"))
            .into());
    }
    let bucket_name = platform::bucket(config, args.bucket.as_deref())?;
    let jurisdiction = platform::jurisdiction(config, args.jurisdiction.as_deref())?;
    let account = config.require_account_id()?.to_string();
    let auth = super::platform_auth(config, ui)?;
    let client = super::client(config, ui, auth, 4)?;
    let bucket = BucketRef {
        account: &account,
        name: &bucket_name,
        jurisdiction: jurisdiction.as_deref(),
    };

    let (deploys_prefix, manifest_key) = (
        layout::deploys_prefix(&tenant),
        layout::manifest_key(&tenant),
    );
    let (listing, live) = tokio::try_join!(
        client.list_objects(bucket, &deploys_prefix),
        client.get_object(bucket, &manifest_key),
    )
    .map_err(|e| {
        let missing = e.has_code(10006);
        let err = anyhow::Error::new(e).context(format!(
            "reading {tenant}'s deploys in bucket {bucket_name}"
        ));
        if missing {
            err.context(format!(
                "the bucket {bucket_name} does not exist; check --bucket / R2_BUCKET_NAME"
            ))
        } else {
            err
        }
    })?;
    let live_id = live
        .as_deref()
        .and_then(|b| Manifest::parse(b, &tenant).ok())
        .map(|m| m.deploy_id);
    let mut ids: Vec<String> = listing
        .iter()
        .filter_map(|o| layout::deploy_id_of(&tenant, &o.key).map(str::to_string))
        .collect();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    if ids.is_empty() {
        anyhow::bail!(
            "tenant {tenant} has no kept deploys in bucket {bucket_name}; publish one with `cfsetup deploy-site`"
        );
    }
    let deploys: Vec<DeployRow> = ids
        .iter()
        .map(|id| DeployRow {
            deploy_id: id.clone(),
            created: deploy_time(id),
            live: live_id.as_deref() == Some(id.as_str()),
        })
        .collect();
    if args.list {
        return Ok(Box::new(ListReport { tenant, deploys }));
    }

    let target = match &args.version {
        Some(v) => pick(&ids, v)?,
        None => before_live(&ids, live_id.as_deref()).ok_or_else(|| {
            anyhow::anyhow!(
                "tenant {tenant} has no kept deploy older than the live one ({}); see `cfsetup \
                 rollback {tenant} --list`",
                live_id.as_deref().unwrap_or("none")
            )
        })?,
    };
    let mut report = RollbackReport {
        tenant: tenant.clone(),
        from: live_id.clone(),
        to: target.clone(),
        dry_run: args.dry_run,
        changed: live_id.as_deref() != Some(target.as_str()),
        files: None,
    };
    if !report.changed {
        return Ok(Box::new(report));
    }
    let key = layout::deploy_key(&tenant, &target);
    let bytes = client
        .get_object(bucket, &key)
        .await?
        .ok_or_else(|| anyhow::anyhow!("{key} vanished; see `cfsetup rollback {tenant} --list`"))?;
    // Never switch to something the Worker would refuse.
    let manifest = Manifest::parse(&bytes, &tenant).map_err(|why| {
        anyhow::anyhow!("{key} is not a valid manifest ({why}); nothing was changed")
    })?;
    report.files = Some(manifest.files.len());
    if !args.dry_run {
        client
            .put_object(
                bucket,
                &layout::manifest_key(&tenant),
                ObjectBody::Bytes(bytes),
                "application/json",
            )
            .await?;
    }
    Ok(Box::new(report))
}

/// The deploy a VERSION names: an exact id, or the one id it starts.
fn pick(ids: &[String], version: &str) -> anyhow::Result<String> {
    if let Some(id) = ids.iter().find(|id| *id == version) {
        return Ok(id.clone());
    }
    let matches: Vec<&String> = ids.iter().filter(|id| id.starts_with(version)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(anyhow::anyhow!("no kept deploy is called {version:?}")
            .context("see the kept deploys with `cfsetup rollback TENANT --list`")),
        many => Err(anyhow::anyhow!(
            "{version:?} could be any of {} deploys; give more of the id",
            many.len()
        )),
    }
}

/// The newest kept deploy older than the live one (`ids` is newest first). With no live deploy
/// among them, the newest one.
fn before_live(ids: &[String], live: Option<&str>) -> Option<String> {
    match live.and_then(|l| ids.iter().position(|id| id == l)) {
        Some(i) => ids.get(i + 1).cloned(),
        None => ids.first().cloned(),
    }
}

#[derive(Debug, Serialize)]
struct DeployRow {
    deploy_id: String,
    created: Option<String>,
    live: bool,
}

#[derive(Debug, Serialize)]
struct ListReport {
    tenant: String,
    deploys: Vec<DeployRow>,
}

impl Report for ListReport {
    fn render(&self, out: &mut Renderer) {
        out.line(format!("Kept deploys of {}, newest first", self.tenant));
        out.table(
            &["deploy", "created", ""],
            self.deploys
                .iter()
                .map(|d| {
                    vec![
                        d.deploy_id.clone(),
                        d.created.clone().unwrap_or_default(),
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
    dry_run: bool,
    changed: bool,
    files: Option<usize>,
}

impl Report for RollbackReport {
    fn render(&self, out: &mut Renderer) {
        let from = self.from.as_deref().unwrap_or("(none)");
        let line = match (self.changed, self.dry_run) {
            (false, _) => format!("{} is already on {}: nothing to do", self.tenant, self.to),
            (true, true) => format!(
                "Dry run: {} would switch from {from} to {} (nothing was written)",
                self.tenant, self.to
            ),
            (true, false) => format!("Rolled {} back from {from} to {}", self.tenant, self.to),
        };
        out.line(line);
        if let Some(n) = self.files {
            out.line(format!("{n} file(s); nothing was uploaded"));
        }
    }
    fn to_json(&self) -> serde_json::Value {
        json_of(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Vec<String> {
        [
            "20260103T000000Z-cccccccc",
            "20260102T000000Z-bbbbbbbb",
            "20260101T000000Z-aaaaaaaa",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn the_default_target_is_the_deploy_before_the_live_one() {
        let ids = ids();
        assert_eq!(
            before_live(&ids, Some(&ids[0])).as_deref(),
            Some(ids[1].as_str())
        );
        assert_eq!(
            before_live(&ids, Some(&ids[1])).as_deref(),
            Some(ids[2].as_str())
        );
        assert_eq!(before_live(&ids, Some(&ids[2])), None);
        assert_eq!(before_live(&ids, None).as_deref(), Some(ids[0].as_str()));
    }

    #[test]
    fn versions_match_whole_ids_or_unique_starts() {
        let ids = ids();
        assert_eq!(pick(&ids, &ids[1]).unwrap(), ids[1]);
        assert_eq!(pick(&ids, "20260101").unwrap(), ids[2]);
        assert!(pick(&ids, "2026").is_err());
        assert!(pick(&ids, "1999").is_err());
    }
}
