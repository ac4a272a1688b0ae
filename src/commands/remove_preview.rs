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
use crate::names::{PreviewName, Tenant};
use crate::output::{json_of, Renderer, Report, Ui};
use crate::site::locks;
use crate::site::manifest::Head;

use super::bucket;
use super::head::{read_head, Lost, Switch, SwitchSteps};

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
    let tenant = Tenant::existing(&args.tenant)?;
    let name = PreviewName::parse(&args.name, &tenant)?;
    let opened = bucket::open(config, ui, &args.bucket, 4).await?;
    let (storage, bucket_name) = (&opened.storage, opened.bucket.as_str());
    let mut report = RemovePreviewReport {
        tenant: tenant.to_string(),
        preview: name.to_string(),
        dry_run: args.dry_run,
        removed: false,
        deploy_id: None,
    };
    let read = read_head(storage, bucket_name, &tenant).await?;
    let by = format!("remove-preview {name} ({})", locks::owner());
    let mut steps = RemovePreviewSteps {
        name: &name,
        by: &by,
        dry_run: args.dry_run,
        deploy_id: None,
    };
    // A head switched by a deploy between the read and the write: built again on the newest.
    let switched = Switch {
        storage,
        bucket: bucket_name,
        tenant: &tenant,
        own: None,
        budget: None,
        doing: format!("removing preview {name} of {tenant}"),
        nothing_was: "removed",
    }
    .run(read, &mut steps)
    .await?;
    report.removed = switched.written || (args.dry_run && steps.deploy_id.is_some());
    report.deploy_id = steps.deploy_id.filter(|_| report.removed);
    Ok(Box::new(report))
}

/// remove-preview's part of the switch: the head without the preview, or nothing to do when the
/// head (newest after a lost race) does not name it. A lost race is always retried: removing a
/// preview from whatever head won is still what was asked.
struct RemovePreviewSteps<'a> {
    name: &'a str,
    by: &'a str,
    dry_run: bool,
    /// The deploy the preview named, in the head last built.
    deploy_id: Option<String>,
}

impl SwitchSteps for RemovePreviewSteps<'_> {
    fn next(&mut self, base: Option<&Head>) -> anyhow::Result<Option<Head>> {
        self.deploy_id = None;
        let Some(head) = base else { return Ok(None) };
        let Some(route) = head.preview(self.name) else {
            return Ok(None);
        };
        self.deploy_id = Some(route.deploy_id.clone());
        if self.dry_run {
            return Ok(None);
        }
        let mut new = head.clone();
        new.remove_preview(self.name);
        new.updated_at = locks::rfc3339(SystemTime::now());
        new.updated_by = self.by.to_string();
        Ok(Some(new))
    }

    async fn retry(&mut self, _lost: &Lost) -> anyhow::Result<()> {
        Ok(())
    }
}
