//! `cfsetup sites [TENANT]`: every tenant with its live deploy (id, time, files, bytes), its
//! domains with their custom-hostname and certificate status, and how many deploys it keeps; for
//! one tenant, its deploy history with the live one marked.
//!
//! Requests: one listing of `sites/`, the heads (concurrently), one listing of `hosts/` and its
//! entries, and one paged listing of the zone's custom hostnames (not one call per tenant). For
//! one tenant, its kept deploy copies too.
//!
//! A command: it may import the layers below it and the shared `commands::bucket` and
//! `commands::head`; it must not import another command.

use std::collections::BTreeMap;

use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::cli::SitesArgs;
use crate::config::Config;
use crate::names::Tenant;
use crate::output::{json_of, Renderer, Report, Ui};
use crate::site::layout;
use crate::site::manifest::{deploy_time, DeployCopy, Route, StoredHead};
use crate::site::walk::human_bytes;

use super::bucket;
use super::head::read_head;

const CONCURRENCY: usize = 32;

pub async fn run(args: SitesArgs, config: &Config, ui: &Ui) -> anyhow::Result<Box<dyn Report>> {
    let one = args.tenant.as_deref().map(Tenant::existing).transpose()?;
    let opened = bucket::open(config, ui, &args.bucket, CONCURRENCY).await?;
    let (storage, bucket_name) = (&opened.storage, opened.bucket.as_str());
    let tenants: Vec<Tenant> = match &one {
        Some(t) => vec![t.clone()],
        None => bucket::tenants(storage, bucket_name).await?,
    };
    let zone = config.zone_id.clone();
    let (heads, hosts, hostnames) = tokio::try_join!(
        async {
            stream::iter(&tenants)
                .map(|t| async move {
                    read_head(storage, bucket_name, t)
                        .await
                        .map(|h| (t.clone(), h))
                })
                .buffered(CONCURRENCY)
                .try_collect::<Vec<_>>()
                .await
        },
        bucket::host_entries(storage, bucket_name, CONCURRENCY),
        async {
            match &zone {
                Some(z) => bucket::all_custom_hostnames(&opened.client, z)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        },
    )?;
    if hostnames.is_none() {
        ui.note("set CLOUDFLARE_ZONE_ID to see each domain's custom-hostname status");
    }
    let by_name: BTreeMap<String, _> = hostnames
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.hostname.to_ascii_lowercase(), c))
        .collect();
    let domains_of = |tenant: &str| -> Vec<DomainRow> {
        hosts
            .iter()
            .filter(|(_, t)| t.as_ref().is_some_and(|t| t == tenant))
            .map(|(h, _)| {
                let ch = by_name.get(h.as_str());
                DomainRow {
                    domain: h.to_string(),
                    status: ch.map_or_else(
                        || {
                            if zone.is_some() {
                                "no custom hostname".into()
                            } else {
                                "unknown".into()
                            }
                        },
                        |c| c.status.clone().unwrap_or_else(|| "unknown".into()),
                    ),
                    certificate: ch
                        .and_then(|c| c.ssl.as_ref())
                        .and_then(|s| s.status.clone()),
                }
            })
            .collect()
    };

    let mut rows = Vec::new();
    for (tenant, read) in &heads {
        let mut row = SiteRow {
            tenant: tenant.to_string(),
            domains: domains_of(tenant),
            ..SiteRow::default()
        };
        match read.as_ref().and_then(|r| r.head.as_ref()) {
            Some(StoredHead::V2(h)) => {
                if let Some(l) = &h.live {
                    row.live = Some(l.deploy_id.clone());
                    row.created = Some(l.created_at.clone());
                    row.files = Some(l.files);
                    row.bytes = Some(l.bytes);
                }
                row.kept = h.kept.len();
                row.previews = h.all_previews().map(|(n, _)| n.clone()).collect();
            }
            Some(StoredHead::V1(m)) => {
                row.live = Some(m.deploy_id.clone());
                row.created = Some(m.created_at.clone());
                row.files = Some(m.files.len());
                row.bytes = Some(m.files.values().map(|e| e.size).sum());
                row.note = Some("format 1 (deploy again to upgrade)".into());
            }
            // A removed tenant (no head, no domain; its copies wait for gc) is no longer on the
            // platform: the fleet listing leaves it out (issue 17).
            None if read.is_none() && row.domains.is_empty() && one.is_none() => continue,
            None => {
                row.note = Some(match read {
                    None => "no head (removed, or never deployed)".into(),
                    Some(r) => format!(
                        "invalid head: {}",
                        r.invalid.as_deref().unwrap_or("unreadable")
                    ),
                });
            }
        }
        rows.push(row);
    }

    let Some(tenant) = one else {
        return Ok(Box::new(SitesReport { sites: rows }));
    };
    let site = rows.pop().unwrap_or_default();
    let head = heads
        .into_iter()
        .next()
        .and_then(|(_, r)| r)
        .and_then(|r| match r.head {
            Some(StoredHead::V2(h)) => Some(h),
            _ => None,
        });
    if site.live.is_none() && head.is_none() && site.domains.is_empty() {
        anyhow::bail!("tenant {tenant} has no site in bucket {bucket_name}");
    }
    let mut history = Vec::new();
    if let Some(h) = &head {
        let live = h.live.as_ref().map(|r| r.deploy_id.clone());
        let mut entries: Vec<(String, Option<String>, Option<&Route>)> =
            h.kept.iter().map(|id| (id.clone(), None, None)).collect();
        for (name, r) in h.all_previews() {
            // A promoted preview is also kept: one row, marked with its preview name.
            match entries.iter_mut().find(|(id, _, _)| *id == r.deploy_id) {
                Some(row) => {
                    row.1 = Some(name.clone());
                    row.2 = Some(r);
                }
                None => entries.push((r.deploy_id.clone(), Some(name.clone()), Some(r))),
            }
        }
        let now = std::time::SystemTime::now();
        history = stream::iter(entries)
            .map(|(id, preview, route)| {
                let protected = route.is_some_and(|r| r.protect.is_some());
                let expires_at = route.and_then(|r| r.expires_at.clone());
                let expired = route.is_some_and(|r| r.is_expired(now));
                let live = live.clone();
                let tenant = tenant.clone();
                async move {
                    let key = layout::deploy_key(&tenant, &id);
                    let copy = storage
                        .get(&key)
                        .await
                        .ok()
                        .flatten()
                        .and_then(|o| DeployCopy::parse(&o.body, &tenant).ok());
                    DeployRow {
                        created: deploy_time(&id),
                        live: live.as_deref() == Some(id.as_str()),
                        files: copy.as_ref().map(|c| c.route.files),
                        bytes: copy.as_ref().map(|c| c.route.bytes),
                        missing: copy.is_none(),
                        deploy_id: id,
                        preview,
                        protected,
                        expires_at,
                        expired,
                    }
                }
            })
            .buffered(CONCURRENCY)
            .collect()
            .await;
        history.sort_by(|a, b| b.deploy_id.cmp(&a.deploy_id));
    }
    Ok(Box::new(TenantReport { site, history }))
}

#[derive(Debug, Serialize, Default)]
struct DomainRow {
    domain: String,
    /// The custom hostname's status, or `no custom hostname`.
    status: String,
    certificate: Option<String>,
}

#[derive(Debug, Serialize, Default)]
struct SiteRow {
    tenant: String,
    live: Option<String>,
    created: Option<String>,
    files: Option<usize>,
    bytes: Option<u64>,
    kept: usize,
    previews: Vec<String>,
    domains: Vec<DomainRow>,
    note: Option<String>,
}

fn domain_cell(d: &[DomainRow]) -> String {
    d.iter()
        .map(|d| match &d.certificate {
            Some(c) => format!("{} ({}, certificate {c})", d.domain, d.status),
            None => format!("{} ({})", d.domain, d.status),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[derive(Debug, Serialize)]
struct SitesReport {
    sites: Vec<SiteRow>,
}

impl Report for SitesReport {
    fn render(&self, out: &mut Renderer) {
        if self.sites.is_empty() {
            out.line("No sites yet: publish one with `cfsetup deploy-site DIR TENANT`");
            return;
        }
        out.line(format!("{} site(s)", self.sites.len()));
        out.table(
            &["tenant", "live deploy", "files", "size", "kept", "domains"],
            self.sites
                .iter()
                .map(|s| {
                    vec![
                        s.tenant.clone(),
                        s.live
                            .clone()
                            .or_else(|| s.note.clone())
                            .unwrap_or_default(),
                        s.files.map(|f| f.to_string()).unwrap_or_default(),
                        s.bytes.map(human_bytes).unwrap_or_default(),
                        s.kept.to_string(),
                        domain_cell(&s.domains),
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
struct DeployRow {
    deploy_id: String,
    created: Option<String>,
    live: bool,
    preview: Option<String>,
    files: Option<usize>,
    bytes: Option<u64>,
    /// The copy could not be read.
    missing: bool,
    /// A preview behind a password (basic auth).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    protected: bool,
    /// A preview's end: 404 after it, dropped from the head by the next gc.
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    expired: bool,
}

#[derive(Debug, Serialize)]
struct TenantReport {
    site: SiteRow,
    history: Vec<DeployRow>,
}

impl Report for TenantReport {
    fn render(&self, out: &mut Renderer) {
        let s = &self.site;
        out.line(format!("Site {}", s.tenant));
        let mut rows = vec![(
            "live",
            match (&s.live, s.files, s.bytes) {
                (Some(id), Some(f), Some(b)) => {
                    format!("{id} ({f} file(s), {})", human_bytes(b))
                }
                (Some(id), _, _) => id.clone(),
                _ => s.note.clone().unwrap_or_else(|| "none".into()),
            },
        )];
        for d in &s.domains {
            rows.push(("domain", domain_cell(std::slice::from_ref(d))));
        }
        out.pairs(&rows);
        if self.history.is_empty() {
            return;
        }
        out.heading("Deploys, newest first");
        out.table(
            &["deploy", "created", "files", "size", ""],
            self.history
                .iter()
                .map(|d| {
                    let mut mark = Vec::new();
                    if d.live {
                        mark.push("live".to_string());
                    }
                    if let Some(p) = &d.preview {
                        mark.push(format!("preview {p}"));
                        if d.protected {
                            mark.push("protected".into());
                        }
                        match (&d.expires_at, d.expired) {
                            (Some(t), false) => mark.push(format!("expires {t}")),
                            (Some(t), true) => mark.push(format!("expired {t}")),
                            (None, _) => {}
                        }
                    }
                    if d.missing {
                        mark.push("copy missing".into());
                    }
                    vec![
                        d.deploy_id.clone(),
                        d.created.clone().unwrap_or_default(),
                        d.files.map(|f| f.to_string()).unwrap_or_default(),
                        d.bytes.map(human_bytes).unwrap_or_default(),
                        mark.join(", "),
                    ]
                })
                .collect(),
        );
    }
    fn to_json(&self) -> serde_json::Value {
        json_of(self)
    }
}
