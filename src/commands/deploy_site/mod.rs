//! `cfsetup deploy-site DIR TENANT [DOMAIN]`: publish a folder as a tenant's site, atomically and
//! incrementally, and attach the tenant's own domain.
//!
//! The command checks everything local first (arguments, the folder, file sizes: exit 2 before any
//! request), then plans with reads only, then applies in an order that keeps the live site whole
//! at every moment (docs/storage-layout.md):
//!
//! 1. upload the blobs the bucket lacks (`blobs/<sha256>`, content-addressed, never overwritten);
//! 2. write the deploy copy `sites/<t>/deploys/<id>.json`, then the live `sites/<t>/manifest.json`
//!    last: that one write is the switch;
//! 3. write `hosts/<domain>.json` if it is missing;
//! 4. drop deploy copies beyond the newest [`KEPT_DEPLOYS`] and prune blobs no kept manifest of any
//!    tenant refers to;
//! 5. find or create the custom hostname and print the DNS records the tenant must add.
//!
//! An interrupted run leaves the old manifest live and every blob it names in place; running the
//! same command again finishes the job. An unchanged re-deploy writes nothing.
//!
//! Request budget: a warm deploy reads the live manifest and stops (1 request with
//! PLATFORM_DOMAIN set); with DOMAIN it also reads the host entry and looks up the custom hostname
//! (3). The token is never verified and the zone is read only when the platform domain is not
//! configured. Deciding which blobs to upload takes one listing of `blobs/` (1 request per 1,000
//! blobs), skipped when the live manifest already names every hash.
//!
//! Pruning reads every kept manifest in the bucket (up to 11 small GETs per tenant) and lists
//! `blobs/`; it runs only when this deploy dropped a hash or an old deploy copy. It assumes no
//! other deploy to the same bucket is between its uploads and its manifest write at that moment;
//! run deploys to one bucket one at a time, or pass `--no-prune`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use futures::stream::{self, StreamExt};

use crate::cli::DeploySiteArgs;
use crate::cloudflare::r2::{BucketRef, ObjectBody};
use crate::cloudflare::Client;
use crate::config::{self, Config};
use crate::error::usage;
use crate::output::{Report, Ui};
use crate::platform;
use crate::site::layout::{self, KEPT_DEPLOYS};
use crate::site::manifest::files_map;
use crate::site::walk::human_bytes;
use crate::site::{walk, Manifest, SiteFile, WalkOptions};

mod domain;
mod report;

use domain::HostnameReport;
use report::{list_some, DeployReport};
/// The most uploads in flight that `--concurrency` accepts.
const MAX_CONCURRENCY: usize = 256;

/// Everything checked before the first request.
struct Input {
    dir: PathBuf,
    tenant: String,
    domain: Option<String>,
    bucket: String,
    jurisdiction: Option<String>,
    account: String,
    zone: Option<String>,
    platform_domain: Option<String>,
    cname_target: Option<String>,
    concurrency: usize,
    wait: Option<Duration>,
    prune: bool,
    include_hidden: bool,
    dry_run: bool,
}

fn check(args: &DeploySiteArgs, config: &Config) -> anyhow::Result<Input> {
    let tenant = config::tenant(&args.tenant)?;
    let domain = args
        .domain
        .as_deref()
        .map(|d| config::hostname(d, "DOMAIN"))
        .transpose()?;
    if !args.dir.is_dir() {
        let what = if args.dir.exists() {
            "is not a folder"
        } else {
            "does not exist"
        };
        return Err(usage!("DIR {} {what}", args.dir.display())
            .with_hint("give the folder that holds the site's index.html")
            .into());
    }
    if args.concurrency == 0 || args.concurrency > MAX_CONCURRENCY {
        return Err(usage!("--concurrency {} is out of range", args.concurrency)
            .with_hint(format!(
                "use 1 to {MAX_CONCURRENCY}; the default, 16, suits most sites"
            ))
            .into());
    }
    let wait = match (&args.wait, &domain) {
        (Some(_), None) => {
            return Err(
                usage!("--wait waits for DOMAIN to become active, but no DOMAIN was given")
                    .with_hint("add the tenant's domain after TENANT, or leave out --wait")
                    .into(),
            )
        }
        (Some(w), Some(_)) => Some(config::duration(w, "--wait")?),
        (None, _) => None,
    };
    let bucket = platform::bucket(config, args.bucket.as_deref())?;
    let jurisdiction = platform::jurisdiction(config, args.jurisdiction.as_deref())?;
    let account = config.require_account_id()?.to_string();
    let zone = match &domain {
        // Custom hostnames live on the platform's zone.
        Some(_) => Some(config.require_zone_id().map_err(|e| {
            e.with_hint("DOMAIN is attached as a custom hostname of the platform's zone; set CLOUDFLARE_ZONE_ID")
        })?.to_string()),
        None => config.zone_id.clone(),
    };
    let platform_domain = platform::configured_domain(config, args.platform_domain.as_deref())?;
    if let (Some(d), Some(p)) = (&domain, &platform_domain) {
        refuse_platform_domain(d, p)?;
    }
    let cname_target = match &domain {
        Some(_) => config
            .setting(args.cname_target.as_deref(), "SAAS_FALLBACK_ORIGIN")
            .map(|h| config::hostname(&h, "--cname-target"))
            .transpose()?,
        None => None,
    };
    Ok(Input {
        dir: args.dir.clone(),
        tenant,
        domain,
        bucket,
        jurisdiction,
        account,
        zone,
        platform_domain,
        cname_target,
        concurrency: args.concurrency,
        wait,
        prune: !args.no_prune,
        include_hidden: args.include_hidden,
        dry_run: args.dry_run,
    })
}

/// The platform's own domain (or anything under it) cannot be a tenant's custom domain: the
/// Worker already serves it, and Cloudflare for SaaS does not attach a zone's own names.
fn refuse_platform_domain(
    domain: &str,
    platform_domain: &str,
) -> Result<(), crate::error::UsageError> {
    if domain == platform_domain || domain.ends_with(&format!(".{platform_domain}")) {
        return Err(
            usage!("DOMAIN {domain} is in the platform's own domain {platform_domain}").with_hint(
                format!(
            "every tenant is already served at TENANT.{platform_domain}; DOMAIN is for the \
             tenant's own domain, such as shop.example.com"
        ),
            ),
        );
    }
    Ok(())
}

pub async fn run(
    args: DeploySiteArgs,
    config: &Config,
    ui: &Ui,
) -> anyhow::Result<Box<dyn Report>> {
    let input = check(&args, config)?;
    let auth = super::platform_auth(config, ui)?;

    let dir = input.dir.clone();
    let options = WalkOptions {
        include_hidden: input.include_hidden,
        ..WalkOptions::default()
    };
    let walked = tokio::task::spawn_blocking(move || walk(&dir, options))
        .await
        .context("walking DIR")??;
    if !walked.hidden.is_empty() {
        ui.note(format!(
            "skipped {} hidden file(s) or folder(s): {}{}",
            walked.hidden.len(),
            list_some(&walked.hidden),
            if input.include_hidden {
                " (never published: .git, .hg, .svn, .env, .env.*)"
            } else {
                " (--include-hidden publishes dotfiles, but never .git or .env)"
            }
        ));
    }
    for link in &walked.links {
        ui.warn(format!("skipped the link {link}"));
    }
    for special in &walked.special {
        ui.warn(format!("skipped {special}: not a regular file"));
    }
    if walked.files.is_empty() {
        return Err(
            usage!("DIR {} has no files to publish", input.dir.display())
                .with_hint("a site needs at least an index.html")
                .into(),
        );
    }
    if !walked.files.iter().any(|f| f.rel_url == "/index.html") {
        ui.warn("DIR has no index.html at its top: the site's home page will be a 404");
    }

    let client = super::client(config, ui, auth, input.concurrency)?;
    let deploy = Deploy {
        client: &client,
        bucket: BucketRef {
            account: &input.account,
            name: &input.bucket,
            jurisdiction: input.jurisdiction.as_deref(),
        },
        input: &input,
        ui,
    };
    let mut walked = walked;
    let files = std::mem::take(&mut walked.files);
    let file_count = files.len();
    let plan = deploy.plan(files).await?;
    let mut report = DeployReport::new(&input, &plan, &walked, file_count);
    if input.dry_run {
        if let (Some(domain), Some(zone)) = (&input.domain, &input.zone) {
            let found = client
                .find_custom_hostname(zone, domain)
                .await
                .with_context(|| format!("looking up the custom hostname {domain}"))?;
            report.custom_hostname = Some(match found {
                Some(ch) => HostnameReport::from(&ch, "exists", Vec::new()),
                None => HostnameReport {
                    hostname: domain.clone(),
                    action: "would create".into(),
                    ..HostnameReport::default()
                },
            });
        }
        return Ok(Box::new(report));
    }
    deploy.apply(&plan, &mut report).await?;
    if let Some(domain) = &input.domain {
        let ch = deploy
            .custom_hostname(domain, &mut report)
            .await
            .with_context(|| {
                format!(
                    "the site is live at {}, but attaching {domain} failed",
                    report
                        .urls
                        .first()
                        .map_or("its platform URL", String::as_str)
                )
            })?;
        report.custom_hostname = Some(ch);
    }
    Ok(Box::new(report))
}

/// What the reads decided.
struct Plan {
    platform_domain: Option<String>,
    live: Option<Manifest>,
    /// The manifest to switch to; `None` when the files are exactly the live ones.
    next: Option<Manifest>,
    /// One file per blob to upload.
    uploads: Vec<SiteFile>,
    /// Files whose bytes the bucket already holds.
    unchanged: usize,
    /// `Some(true)` when `hosts/<domain>.json` must be written.
    write_host_entry: Option<bool>,
}

struct Deploy<'a> {
    client: &'a Client,
    bucket: BucketRef<'a>,
    input: &'a Input,
    ui: &'a Ui,
}

impl Deploy<'_> {
    /// Reads only: the platform domain, the live manifest, the host entry, and (when needed) the
    /// blob listing.
    async fn plan(&self, files: Vec<SiteFile>) -> anyhow::Result<Plan> {
        let input = self.input;
        let manifest_key = layout::manifest_key(&input.tenant);
        let host_key = input.domain.as_deref().map(layout::host_key);
        let (platform_domain, live, host) = tokio::try_join!(
            self.platform_domain(),
            async {
                self.client
                    .get_object(self.bucket, &manifest_key)
                    .await
                    .map_err(|e| self.bucket_error(e, "reading the live manifest"))
            },
            async {
                match &host_key {
                    Some(k) => self
                        .client
                        .get_object(self.bucket, k)
                        .await
                        .map(Some)
                        .map_err(|e| self.bucket_error(e, "reading the host entry")),
                    None => Ok(None),
                }
            },
        )?;
        if let (Some(d), Some(p)) = (&input.domain, &platform_domain) {
            refuse_platform_domain(d, p)?;
        }
        let live = match live {
            Some(bytes) => match Manifest::parse(&bytes, &input.tenant) {
                Ok(m) => Some(m),
                Err(why) => {
                    self.ui.warn(format!(
                        "the live manifest {manifest_key} is not valid ({why}); this deploy replaces it"
                    ));
                    None
                }
            },
            None => None,
        };
        let write_host_entry = match (&input.domain, host.flatten()) {
            (None, _) => None,
            (Some(_), None) => Some(true),
            (Some(domain), Some(body)) => match layout::host_entry_tenant(&body) {
                Some(t) if t == input.tenant => Some(false),
                Some(other) => {
                    return Err(anyhow::anyhow!(
                        "{domain} is already attached to tenant {other:?}; nothing was changed"
                    )
                    .context(format!(
                        "hosts/{domain}.json names another tenant: moving a domain between \
                         tenants is not done implicitly; delete that entry first if it should move"
                    )))
                }
                None => Some(true),
            },
        };

        let files_now = files_map(&files);
        if live.as_ref().is_some_and(|m| m.files == files_now) {
            return Ok(Plan {
                platform_domain,
                unchanged: files.len(),
                live,
                next: None,
                uploads: Vec::new(),
                write_host_entry,
            });
        }
        let known: BTreeSet<&str> = live.as_ref().map(Manifest::hashes).unwrap_or_default();
        let mut first_of: BTreeMap<&str, &SiteFile> = BTreeMap::new();
        for f in &files {
            if !known.contains(f.hash.as_str()) {
                first_of.entry(f.hash.as_str()).or_insert(f);
            }
        }
        let stored: BTreeSet<String> = if first_of.is_empty() {
            BTreeSet::new()
        } else {
            self.client
                .list_objects(self.bucket, layout::BLOBS_PREFIX)
                .await
                .map_err(|e| self.bucket_error(e, "listing the stored blobs"))?
                .into_iter()
                .filter_map(|o| layout::blob_hash(&o.key).map(str::to_string))
                .collect()
        };
        let uploads: Vec<SiteFile> = first_of
            .into_values()
            .filter(|f| !stored.contains(&f.hash))
            .cloned()
            .collect();
        let uploading: BTreeSet<&str> = uploads.iter().map(|f| f.hash.as_str()).collect();
        let unchanged = files
            .iter()
            .filter(|f| !uploading.contains(f.hash.as_str()))
            .count();
        Ok(Plan {
            platform_domain,
            next: Some(Manifest::after(
                &input.tenant,
                files_now,
                SystemTime::now(),
                live.as_ref(),
            )),
            live,
            uploads,
            unchanged,
            write_host_entry,
        })
    }

    /// The configured platform domain, or the zone's name when a zone ID is known.
    async fn platform_domain(&self) -> anyhow::Result<Option<String>> {
        if let Some(d) = &self.input.platform_domain {
            return Ok(Some(d.clone()));
        }
        let Some(zone) = &self.input.zone else {
            self.ui.note(
                "set PLATFORM_DOMAIN (or CLOUDFLARE_ZONE_ID) to have the tenant's URL in the report",
            );
            return Ok(None);
        };
        platform::zone_domain(self.client, zone).await.map(Some)
    }

    fn bucket_error(&self, e: crate::cloudflare::Error, doing: &str) -> anyhow::Error {
        let b = &self.input.bucket;
        let missing = e.is_not_found() || e.has_code(10006);
        let err = anyhow::Error::new(e).context(format!("{doing} in bucket {b}"));
        if missing {
            err.context(format!(
                "the bucket {b} does not exist: run `cfsetup deploy-infra` first (or check \
                 --bucket / R2_BUCKET_NAME and --jurisdiction)"
            ))
        } else {
            err
        }
    }

    /// Uploads, switch, host entry, tidy-up.
    async fn apply(&self, plan: &Plan, report: &mut DeployReport) -> anyhow::Result<()> {
        self.upload(&plan.uploads, report).await?;
        if let Some(next) = &plan.next {
            let bytes = Bytes::from(next.to_bytes());
            let deploy_key = layout::deploy_key(&self.input.tenant, &next.deploy_id);
            self.put_json(&deploy_key, bytes.clone()).await?;
            self.put_json(&layout::manifest_key(&self.input.tenant), bytes)
                .await
                .context("switching to the new manifest; the previous site is still live")?;
        }
        if plan.write_host_entry == Some(true) {
            if let Some(domain) = &self.input.domain {
                let body = Bytes::from(layout::host_entry(&self.input.tenant));
                self.put_json(&layout::host_key(domain), body).await?;
            }
        }
        if let Some(next) = &plan.next {
            if self.input.prune {
                if let Err(e) = self.tidy(plan, next, report).await {
                    self.ui.warn(format!(
                        "the deploy is live, but tidying old deploys and blobs failed: {e:#}"
                    ));
                    report.prune = "failed".into();
                }
            } else {
                report.prune = "skipped (--no-prune)".into();
            }
        }
        Ok(())
    }

    async fn put_json(&self, key: &str, body: Bytes) -> anyhow::Result<()> {
        self.client
            .put_object(
                self.bucket,
                key,
                ObjectBody::Bytes(body),
                "application/json",
            )
            .await
            .with_context(|| format!("writing {key}"))
    }

    /// Streams the missing blobs from disk, `--concurrency` at a time.
    async fn upload(&self, uploads: &[SiteFile], report: &mut DeployReport) -> anyhow::Result<()> {
        if uploads.is_empty() {
            return Ok(());
        }
        let total: u64 = uploads.iter().map(|f| f.size).sum();
        self.ui.note(format!(
            "uploading {} new file(s), {}",
            uploads.len(),
            human_bytes(total)
        ));
        let bar = self.ui.progress(uploads.len() as u64, "uploading");
        let mut results = stream::iter(uploads)
            .map(|f| async move { self.upload_one(f).await.map(|()| f.size) })
            .buffer_unordered(self.input.concurrency);
        let mut failure = None;
        while let Some(result) = results.next().await {
            match result {
                Ok(size) => {
                    report.uploaded += 1;
                    report.bytes_sent += size;
                    bar.inc(1);
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        drop(results);
        bar.finish_and_clear();
        match failure {
            None => Ok(()),
            Some(e) => Err(e.context(format!(
                "upload interrupted after {} of {} new file(s); the live site is unchanged: run \
                 the same command again to finish (uploaded files are not sent twice)",
                report.uploaded,
                uploads.len()
            ))),
        }
    }

    async fn upload_one(&self, f: &SiteFile) -> anyhow::Result<()> {
        let key = layout::blob_key(&f.hash);
        let body = ObjectBody::File {
            path: f.path.clone(),
            len: f.size,
        };
        self.client
            .put_object(self.bucket, &key, body, &f.content_type)
            .await
            .with_context(|| format!("uploading {}", f.rel_url))?;
        // A file edited while the deploy runs would store bytes under the wrong hash, and blobs
        // are never rewritten: take that blob back and stop.
        let now = tokio::fs::metadata(&f.path).await.ok();
        let same = now.is_some_and(|m| m.len() == f.size && m.modified().ok() == f.modified);
        if !same {
            let _ = self.client.delete_object(self.bucket, &key).await;
            anyhow::bail!("{} changed during the deploy; run it again", f.rel_url);
        }
        Ok(())
    }

    /// Drops deploy copies beyond the newest [`KEPT_DEPLOYS`] (never the live one), then prunes
    /// blobs when something may have become unreferenced.
    async fn tidy(
        &self,
        plan: &Plan,
        next: &Manifest,
        report: &mut DeployReport,
    ) -> anyhow::Result<()> {
        let tenant = &self.input.tenant;
        let prefix = layout::deploys_prefix(tenant);
        let mut ids: Vec<String> = self
            .client
            .list_objects(self.bucket, &prefix)
            .await?
            .iter()
            .filter_map(|o| layout::deploy_id_of(tenant, &o.key).map(str::to_string))
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        let old: Vec<&String> = ids
            .iter()
            .skip(KEPT_DEPLOYS)
            .filter(|id| **id != next.deploy_id)
            .collect();
        let deleted: Vec<anyhow::Result<()>> = stream::iter(&old)
            .map(|id| async move {
                let key = layout::deploy_key(tenant, id);
                self.client
                    .delete_object(self.bucket, &key)
                    .await
                    .with_context(|| format!("deleting {key}"))
            })
            .buffer_unordered(self.input.concurrency)
            .collect()
            .await;
        deleted.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        report.deleted_deploys = old.len();

        let dropped_hash = plan
            .live
            .as_ref()
            .is_some_and(|live| live.hashes().difference(&next.hashes()).next().is_some());
        if !dropped_hash && old.is_empty() {
            report.prune = "not needed".into();
            return Ok(());
        }
        report.deleted_blobs = self.prune().await?;
        report.prune = "done".into();
        Ok(())
    }

    /// Deletes every blob that no manifest under `sites/` (live or kept, any tenant) names. Reads
    /// every one of those manifests; if any cannot be read or parsed, deletes nothing.
    async fn prune(&self) -> anyhow::Result<usize> {
        // List the blobs first: a blob uploaded after this listing is never a candidate.
        let blobs = self
            .client
            .list_objects(self.bucket, layout::BLOBS_PREFIX)
            .await?;
        let keys: Vec<String> = self
            .client
            .list_objects(self.bucket, layout::SITES_PREFIX)
            .await?
            .into_iter()
            .map(|o| o.key)
            .filter(|k| layout::is_manifest_key(k))
            .collect();
        let manifests: Vec<anyhow::Result<Vec<String>>> = stream::iter(&keys)
            .map(|key| async move {
                let bytes = self
                    .client
                    .get_object(self.bucket, key)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("{key} vanished while pruning"))?;
                let tenant = key
                    .strip_prefix(layout::SITES_PREFIX)
                    .and_then(|r| r.split('/').next())
                    .unwrap_or_default();
                let m = Manifest::parse(&bytes, tenant)
                    .map_err(|why| anyhow::anyhow!("{key} is not a valid manifest ({why})"))?;
                Ok(m.hashes().into_iter().map(str::to_string).collect())
            })
            .buffer_unordered(self.input.concurrency)
            .collect()
            .await;
        let mut referenced = BTreeSet::new();
        for m in manifests {
            referenced.extend(m.context("reading the kept manifests; no blob was deleted")?);
        }
        let garbage: Vec<String> = blobs
            .into_iter()
            .filter(|o| layout::blob_hash(&o.key).is_some_and(|h| !referenced.contains(h)))
            .map(|o| o.key)
            .collect();
        let results: Vec<anyhow::Result<()>> = stream::iter(&garbage)
            .map(|key| async move {
                self.client
                    .delete_object(self.bucket, key)
                    .await
                    .with_context(|| format!("deleting {key}"))
            })
            .buffer_unordered(self.input.concurrency)
            .collect()
            .await;
        results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        Ok(garbage.len())
    }
}

#[cfg(test)]
mod tests {
    use super::domain::*;
    use super::*;
    use crate::cloudflare::custom_hostnames::CustomHostname;
    use crate::cloudflare::custom_hostnames::{OwnershipVerification, Ssl, ValidationRecord};

    #[test]
    fn the_platform_domain_is_refused_as_a_custom_domain() {
        assert!(refuse_platform_domain("getai.page", "getai.page").is_err());
        assert!(refuse_platform_domain("acme.getai.page", "getai.page").is_err());
        assert!(refuse_platform_domain("notgetai.page", "getai.page").is_ok());
        assert!(refuse_platform_domain("shop.acme.com", "getai.page").is_ok());
    }

    #[test]
    fn apex_domains_are_spotted() {
        assert!(looks_like_apex("acme-store.com"));
        assert!(looks_like_apex("acme.co.uk"));
        assert!(!looks_like_apex("shop.acme-store.com"));
        assert!(!looks_like_apex("www.acme.co.uk"));
    }

    #[test]
    fn dns_records_cover_cname_ownership_and_validation() {
        let ch = CustomHostname {
            id: "id1".into(),
            hostname: "shop.acme.com".into(),
            status: Some("pending".into()),
            ssl: Some(Ssl {
                status: Some("pending_validation".into()),
                validation_records: Some(vec![
                    ValidationRecord {
                        txt_name: Some("_acme-challenge.shop.acme.com".into()),
                        txt_value: Some("abc".into()),
                        ..Default::default()
                    },
                    ValidationRecord {
                        http_url: Some("http://shop.acme.com/.well-known/x".into()),
                        http_body: Some("body".into()),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
            ownership_verification: Some(OwnershipVerification {
                kind: Some("txt".into()),
                name: Some("_cf-custom-hostname.shop.acme.com".into()),
                value: Some("uuid".into()),
            }),
            verification_errors: None,
        };
        let recs = dns_records(&ch, "shop.acme.com", Some("fallback.getai.page"), false);
        let kinds: Vec<(&str, &str, &str)> = recs
            .iter()
            .map(|r| (r.kind.as_str(), r.name.as_str(), r.value.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("CNAME", "shop.acme.com", "fallback.getai.page"),
                ("TXT", "_cf-custom-hostname.shop.acme.com", "uuid"),
                ("TXT", "_acme-challenge.shop.acme.com", "abc"),
                ("HTTP", "http://shop.acme.com/.well-known/x", "body"),
            ]
        );
        assert_eq!(
            pending_parts(&ch),
            ["hostname pending", "certificate pending_validation"]
        );
        assert!(!is_active(&ch));
    }
}
