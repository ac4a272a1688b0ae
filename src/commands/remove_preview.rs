//! `cfsetup remove-preview TENANT NAME [--dry-run]`: takes one preview out of the tenant's head
//! with a compare-and-swap, so it stops being served at once (protected or not). Its deploy copy
//! and blobs are left to `gc`, as every other removal's are. A preview that is not there is
//! nothing to do (exit 0), so a second run changes nothing.
//!
//! It must not import a storage backend; it reads and writes the head through `bucket`.

use std::time::SystemTime;

use serde::Serialize;

use crate::cli::RemovePreviewArgs;
use crate::config::Config;
use crate::output::{json_of, Renderer, Report, Ui};
use crate::site::locks;

use super::bucket;
use super::deploy_site::preview_name;
use super::head::{cas_head, read_head, SWITCH_ATTEMPTS};

#[derive(Debug, Serialize)]
struct RemovePreviewReport {
    tenant: String,
    preview: String,
    dry_run: bool,
    /// Whether the head named it (and, without --dry-run, no longer does).
    removed: bool,
    deploy_id: Option<String>,
}

impl Report for RemovePreviewReport {
    fn render(&self, out: &mut Renderer) {
        out.line(match (self.removed, self.dry_run) {
            (false, _) => format!(
                "{} has no preview {}: nothing to remove",
                self.tenant, self.preview
            ),
            (true, true) => format!(
                "Dry run: would remove preview {} of {} ({})",
                self.preview,
                self.tenant,
                self.deploy_id.as_deref().unwrap_or_default()
            ),
            (true, false) => format!(
                "Removed preview {} of {} ({}); `cfsetup gc` deletes its files",
                self.preview,
                self.tenant,
                self.deploy_id.as_deref().unwrap_or_default()
            ),
        });
    }
    fn to_json(&self) -> serde_json::Value {
        json_of(self)
    }
}

pub async fn run(
    args: RemovePreviewArgs,
    config: &Config,
    ui: &Ui,
) -> anyhow::Result<Box<dyn Report>> {
    let tenant = bucket::existing_tenant(&args.tenant)?;
    let name = preview_name(&args.name, &tenant)?;
    let opened = bucket::open(config, ui, &args.bucket, 4).await?;
    let (storage, bucket_name) = (&opened.storage, opened.bucket.as_str());
    let mut report = RemovePreviewReport {
        tenant: tenant.clone(),
        preview: name.clone(),
        dry_run: args.dry_run,
        removed: false,
        deploy_id: None,
    };
    // A head switched by a deploy between the read and the write: read it again and retry.
    for _ in 0..SWITCH_ATTEMPTS {
        let Some(read) = read_head(storage, bucket_name, &tenant).await? else {
            return Ok(Box::new(report));
        };
        let Some(head) = read.v2() else {
            return Ok(Box::new(report));
        };
        let Some(route) = head.preview(&name) else {
            return Ok(Box::new(report));
        };
        report.deploy_id = Some(route.deploy_id.clone());
        report.removed = true;
        if args.dry_run {
            return Ok(Box::new(report));
        }
        let mut new = head.clone();
        new.remove_preview(&name);
        new.updated_at = locks::rfc3339(SystemTime::now());
        new.updated_by = format!("remove-preview {name} ({})", locks::owner());
        match cas_head(storage, bucket_name, &new, read.etag.as_deref()).await? {
            Ok(_) => return Ok(Box::new(report)),
            Err(_) => continue,
        }
    }
    anyhow::bail!("the head of {tenant} kept changing; gave up after {SWITCH_ATTEMPTS} tries (nothing was removed)")
}
