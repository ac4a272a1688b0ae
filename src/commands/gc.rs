//! `cfsetup gc [--grace DURATION] [--dry-run]`: delete the blobs, deploy copies and shards that
//! nothing refers to, safely while any number of deploys run (docs/storage-layout.md "gc"):
//!
//! 1. write a sweep marker `locks/gc/<uuid>.json` (refreshed while it runs);
//! 2. list the intents: fresh ones protect their hashes, their shards and their tenant's deploy
//!    copies;
//! 3. list the tenants, read every head and every deploy copy it names (concurrently), then
//!    every content-addressed shard those name, once per hash (format 3: a copy names shards,
//!    a shard names blobs);
//! 4. list `blobs/`, `shards/` and `sites/`: garbage is what is not referenced and older than
//!    `--grace`;
//! 5. check the marker is still fresh, delete the garbage, then the stale intents, then the
//!    marker.
//!
//! If any head or named deploy copy cannot be read or parsed, nothing is deleted. `--dry-run`
//! reads the same and writes nothing (not even the marker).
//!
//! A command: it may import the layers below it and the shared `commands::bucket` and
//! `commands::head`; it must not import another command.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;

use crate::cli::GcArgs;
use crate::config::Config;
use crate::error::usage;
use crate::output::{json_of, Renderer, Report, Ui};
use crate::site::layout;
use crate::site::locks::{self, Intent, Lease, Marker, Timing};
use crate::site::manifest::{is_deploy_id, DeployCopy, LegacyManifest, Shard, StoredHead};
use crate::site::walk::human_bytes;
use crate::storage::{ObjectMeta, Payload, PutOptions, Storage};

use super::bucket::{self, bucket_error};
use super::head::read_head;
use crate::names::Tenant;

/// Deletions between two checks that the marker is still fresh (one S3 DeleteObjects call).
const DELETE_CHUNK: usize = 1000;
/// The same over REST, where each key is its own DELETE through the 4 req/s pacer: a batch of
/// 8 lands within seconds of the check before it.
const REST_DELETE_CHUNK: usize = 8;

pub async fn run(args: GcArgs, config: &Config, ui: &Ui) -> anyhow::Result<Box<dyn Report>> {
    let grace = bucket::grace(&args.grace)?;
    let timing = bucket::lock_timing(args.lock_stale.as_deref())?;
    if args.concurrency == 0 || args.concurrency > 256 {
        return Err(usage!("--concurrency {} is out of range", args.concurrency)
            .with_hint("use 1 to 256")
            .into());
    }
    let mut interrupt = super::Interrupt::listen();
    let opened = bucket::open(config, ui, &args.bucket, args.concurrency).await?;
    if args.unlock {
        return unlock(&opened.storage, &opened.bucket, ui).await;
    }
    let gc = Gc {
        storage: &opened.storage,
        bucket: &opened.bucket,
        concurrency: args.concurrency,
        grace,
        timing,
        ui,
        dry_run: args.dry_run,
        deleted: AtomicUsize::new(0),
    };
    let started = Instant::now();
    let mut report = if args.dry_run {
        tokio::select! {
            r = gc.sweep(None) => r?,
            () = interrupt.wait() => gc.interrupted(interrupt.signal(), false),
        }
    } else {
        let key = layout::marker_key(&locks::new_id());
        let now = locks::rfc3339(SystemTime::now());
        let marker = Marker {
            owner: locks::owner(),
            started_at: now.clone(),
            refreshed_at: now,
            stale_ms: Some(timing.stale_ms()),
        };
        // Started before the marker's first write, so the lease never outlives the record.
        let lease = Arc::new(Lease::new(&timing));
        bucket::put_json(
            gc.storage,
            gc.bucket,
            &key,
            serde_json::to_vec(&marker).expect("a marker serializes"),
        )
        .await
        .context("writing the sweep marker; nothing was deleted")?;
        let refresher = tokio::spawn(refresh(
            gc.storage.clone(),
            key.clone(),
            marker,
            timing,
            lease.clone(),
        ));
        let result = tokio::select! {
            r = gc.sweep(Some(&lease)) => r,
            // Stops deleting at once (a DeleteObjects call in flight may land), then removes the
            // marker below, so deploys do not wait for a gc that is gone.
            () = interrupt.wait() => Ok(gc.interrupted(interrupt.signal(), true)),
        };
        refresher.abort();
        let _ = gc.storage.delete(&key).await;
        result?
    };
    report.dry_run = args.dry_run;
    report.grace_secs = grace.as_secs();
    report.duration_secs = started.elapsed().as_secs_f64();
    Ok(Box::new(report))
}

/// `gc --unlock`: deletes every sweep marker, naming each and how long ago it was refreshed. A
/// gc killed with SIGKILL (or a lost machine) leaves its marker, and deploys wait for it until it
/// is stale (10 minutes); this ends the wait at once. Only for gcs that are not running: a live
/// gc rewrites its marker at its next refresh, but a deploy that started in between did not wait.
async fn unlock(storage: &Storage, bucket_name: &str, ui: &Ui) -> anyhow::Result<Box<dyn Report>> {
    let markers = storage
        .list(layout::MARKERS_PREFIX)
        .await
        .map_err(|e| bucket_error(e, bucket_name, "listing gc markers"))?;
    let now = SystemTime::now();
    let mut removed = Vec::new();
    for m in &markers {
        let age = m
            .last_modified
            .and_then(|t| now.duration_since(t).ok())
            .map(|d| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string())
            .unwrap_or_else(|| "unknown".into());
        storage
            .delete(&m.key)
            .await
            .map_err(|e| bucket_error(e, bucket_name, &format!("deleting {}", m.key)))?;
        ui.note(format!("deleted {} (last refreshed {age} ago)", m.key));
        removed.push(m.key.clone());
    }
    Ok(Box::new(UnlockReport { unlocked: removed }))
}

#[derive(Debug, Serialize)]
struct UnlockReport {
    /// The sweep markers deleted.
    unlocked: Vec<String>,
}

impl Report for UnlockReport {
    fn render(&self, out: &mut Renderer) {
        out.line(if self.unlocked.is_empty() {
            "gc --unlock: no sweep marker; nothing to do".to_string()
        } else {
            format!(
                "gc --unlock: deleted {} sweep marker(s): {}",
                self.unlocked.len(),
                self.unlocked.join(", ")
            )
        });
    }
    fn to_json(&self) -> serde_json::Value {
        json_of(self)
    }
}

struct Gc<'a> {
    storage: &'a Storage,
    bucket: &'a str,
    concurrency: usize,
    grace: Duration,
    timing: Timing,
    ui: &'a Ui,
    dry_run: bool,
    /// Objects deleted so far (for the report of an interrupted run).
    deleted: AtomicUsize,
}

/// What the reads found referenced.
#[derive(Default)]
struct Referenced {
    hashes: BTreeSet<String>,
    /// Content-addressed shards named by a kept copy, a head's Route or a fresh intent.
    shards: BTreeSet<String>,
    /// Deploy ids named per tenant.
    named: BTreeMap<String, BTreeSet<String>>,
    /// Tenants whose every deploy object is kept: a fresh intent's, or a format 1 head's.
    whole: BTreeSet<String>,
}

impl Gc<'_> {
    /// The report of a run stopped by a signal: how many objects it had deleted.
    fn interrupted(&self, signal: &str, marker: bool) -> GcReport {
        let deleted = self.deleted.load(Ordering::SeqCst);
        let state = format!(
            "stopped after deleting {deleted} object(s){}; nothing it kept is affected, and the \
             next gc finishes the job",
            if marker {
                ", and removed its sweep marker"
            } else {
                ""
            }
        );
        self.ui.warn(format!("interrupted ({signal}): {state}"));
        GcReport {
            interrupted: true,
            objects_deleted: Some(deleted),
            state: Some(state),
            ..GcReport::default()
        }
    }

    fn err(&self, doing: &str) -> impl Fn(crate::storage::StorageError) -> anyhow::Error + '_ {
        let doing = doing.to_string();
        move |e| bucket_error(e, self.bucket, &doing)
    }

    async fn sweep(&self, marker: Option<&Lease>) -> anyhow::Result<GcReport> {
        let mut report = GcReport::default();
        let now = SystemTime::now();
        let mut refs = Referenced::default();

        // Intents before heads (the argument's order).
        let intents = self
            .storage
            .list(layout::INTENTS_PREFIX)
            .await
            .map_err(self.err("listing intents"))?;
        let (mut fresh, stale): (Vec<ObjectMeta>, Vec<ObjectMeta>) = intents
            .into_iter()
            .partition(|m| self.timing.is_fresh(m.last_modified, now));
        // With a short `--lock-stale`, an intent that records a longer stale time is judged by
        // that one.
        let mut dead = Vec::new();
        for m in stale {
            if self.timing.needs_recorded()
                && self.timing.is_fresh_recorded(
                    m.last_modified,
                    now,
                    bucket::recorded_stale(self.storage, &m.key).await,
                )
            {
                fresh.push(m);
            } else {
                dead.push(m);
            }
        }
        let stale = dead;
        let read: Vec<Option<Intent>> = stream::iter(&fresh)
            .map(|m| async move {
                let Some(obj) = self
                    .storage
                    .get(&m.key)
                    .await
                    .map_err(self.err("reading an intent"))?
                else {
                    // Finished meanwhile: its deploy's head names what it needed.
                    return Ok(None);
                };
                let intent: Intent = serde_json::from_slice(&obj.body).map_err(|e| {
                    anyhow::anyhow!("{} is not a valid intent ({e}); nothing was deleted", m.key)
                })?;
                Ok::<_, anyhow::Error>(Some(intent))
            })
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        // A fresh intent's shards that do not exist yet are being written by its run, which
        // names in `hashes` every blob it checks; those that exist may name blobs the run takes
        // as known (a REST rollback's target), so their blobs are counted.
        let mut intent_shards = BTreeSet::new();
        for intent in read.into_iter().flatten() {
            report.running_deploys += 1;
            refs.whole.insert(intent.tenant.to_string());
            refs.hashes.extend(intent.hashes);
            intent_shards.extend(intent.shards);
        }

        // Heads, and every deploy copy they name.
        let tenants = bucket::tenants(self.storage, self.bucket).await?;

        let per_tenant: Vec<TenantRefs> = stream::iter(&tenants)
            .map(|t| self.tenant_refs(t))
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        for t in per_tenant {
            report
                .expired_previews
                .extend(t.expired.iter().map(|n| format!("{n}--{}", t.tenant)));
            // A removed tenant (no head; its copies wait for this gc) is not a tenant.
            if t.has_head {
                report.tenants += 1;
            }
            refs.hashes.extend(t.hashes);
            refs.shards.extend(t.shards);
            if t.whole {
                refs.whole.insert(t.tenant.clone());
            }
            refs.named.insert(t.tenant, t.named);
        }
        // Every shard named, once per hash however many deploys and tenants share it.
        let must: Vec<String> = refs.shards.iter().cloned().collect();
        let maybe: Vec<String> = intent_shards
            .iter()
            .filter(|h| !refs.shards.contains(*h))
            .cloned()
            .collect();
        let named: Vec<Vec<String>> = stream::iter(
            must.iter()
                .map(|h| (h, true))
                .chain(maybe.iter().map(|h| (h, false))),
        )
        .map(|(h, required)| self.shard_refs(h, required))
        .buffer_unordered(self.concurrency)
        .try_collect()
        .await?;
        for h in named {
            refs.hashes.extend(h);
        }
        refs.shards.extend(intent_shards);
        report.referenced_blobs = refs.hashes.len();

        // Then the candidates: what exists, unreferenced, older than the grace.
        let old_enough = |m: &ObjectMeta| {
            m.last_modified
                .is_some_and(|t| now.duration_since(t).unwrap_or_default() >= self.grace)
        };
        let (blobs, shards, sites) = tokio::try_join!(
            async {
                self.storage
                    .list(layout::BLOBS_PREFIX)
                    .await
                    .map_err(self.err("listing blobs"))
            },
            async {
                self.storage
                    .list(layout::SHARDS_PREFIX)
                    .await
                    .map_err(self.err("listing shards"))
            },
            async {
                self.storage
                    .list(layout::SITES_PREFIX)
                    .await
                    .map_err(self.err("listing deploy copies"))
            },
        )?;
        report.blobs = blobs.len();
        let mut garbage: Vec<String> = Vec::new();
        for b in &blobs {
            if let Some(h) = layout::blob_hash(&b.key) {
                if !refs.hashes.contains(h) && old_enough(b) {
                    garbage.push(b.key.clone());
                    report.blobs_deleted += 1;
                    report.blob_bytes_freed += b.size;
                    report.bytes_freed += b.size;
                }
            }
        }
        for o in &shards {
            if let Some(h) = layout::cas_shard_hash(&o.key) {
                if !refs.shards.contains(h) && old_enough(o) {
                    garbage.push(o.key.clone());
                    report.shards_deleted += 1;
                }
            }
        }
        for o in &sites {
            let Some((tenant, id)) = layout::deploy_object_of(&o.key) else {
                continue;
            };
            if refs.whole.contains(tenant)
                || refs.named.get(tenant).is_some_and(|n| n.contains(id))
                || !old_enough(o)
            {
                continue;
            }
            garbage.push(o.key.clone());
            // "Freed" is everything deleted: deploy copies of a big site weigh more than its
            // changed blobs (issue 17).
            report.bytes_freed += o.size;
            if o.key.ends_with(&format!("{id}.json")) && !o.key.contains("/shards/") {
                report.copies_deleted += 1;
            } else {
                report.shards_deleted += 1;
            }
        }
        report.stale_intents = stale.len();
        let Some(marker) = marker else {
            return Ok(report);
        };

        let mut deleted = 0usize;
        let chunk_len = if self.storage.via() == "REST" {
            REST_DELETE_CHUNK
        } else {
            DELETE_CHUNK
        };
        for chunk in garbage.chunks(chunk_len) {
            // A gc whose marker may have gone stale at any moment (paused, or refreshes failing)
            // no longer holds deploys off: a deploy may rely on what this list names.
            if marker.lapsed() {
                anyhow::bail!(
                    "this gc was paused for too long or lost its lease (no refresh of its sweep \
                     marker for more than {}), so it stopped deleting after {deleted} of {} \
                     objects; run it again",
                    humantime::format_duration(marker.safe_age()),
                    garbage.len()
                );
            }
            self.storage
                .delete_many(chunk)
                .await
                .map_err(self.err("deleting garbage"))?;
            deleted += chunk.len();
            self.deleted.fetch_add(chunk.len(), Ordering::SeqCst);
        }
        for s in &stale {
            // Re-checked just before: a paused deploy may have refreshed it since the listing.
            // Skipped if so, or if in doubt (a later gc gets it).
            match self.storage.head(&s.key).await {
                Ok(Some(now)) if now.same_version(s) => {}
                _ => continue,
            }
            if let Err(e) = self.storage.delete(&s.key).await {
                self.ui
                    .warn(format!("could not delete the stale intent {}: {e}", s.key));
            }
        }
        Ok(report)
    }

    /// Drops the head's expired previews with a compare-and-swap on the ETag it was read with;
    /// a head changed meanwhile is left to the next gc. Returns the names dropped (or, with
    /// --dry-run, that would be).
    async fn drop_expired(&self, h: &crate::site::Head, etag: Option<&str>) -> Vec<String> {
        let expired = h.expired_previews(SystemTime::now());
        if expired.is_empty() || self.dry_run {
            return expired;
        }
        let Some(etag) = etag else {
            return Vec::new();
        };
        let mut new = h.clone();
        for n in &expired {
            new.remove_preview(n);
        }
        new.updated_at = locks::rfc3339(SystemTime::now());
        new.updated_by = format!("gc ({}): expired previews", locks::owner());
        match super::head::cas_head(self.storage, self.bucket, &new, Some(etag)).await {
            Ok(Ok(_)) => expired,
            Ok(Err(_)) => {
                self.ui.note(format!(
                    "{}'s head changed while gc read it; its expired previews go at the next gc",
                    h.tenant
                ));
                Vec::new()
            }
            Err(e) => {
                self.ui
                    .warn(format!("dropping {}'s expired previews: {e:#}", h.tenant));
                Vec::new()
            }
        }
    }

    /// One tenant's head and the deploy copies it names.
    async fn tenant_refs(&self, tenant: &Tenant) -> anyhow::Result<TenantRefs> {
        let mut out = TenantRefs {
            tenant: tenant.to_string(),
            ..TenantRefs::default()
        };
        let key = layout::manifest_key(tenant);
        let Some(read) = read_head(self.storage, self.bucket, tenant).await? else {
            // No head: removed, or a first deploy in flight (its intent protects it).
            return Ok(out);
        };
        out.has_head = true;
        let etag = read.etag;
        let head = read.head.ok_or_else(|| {
            let why = read.invalid.unwrap_or_default();
            anyhow::anyhow!("{key} is not a valid head ({why}); nothing was deleted").context(
                format!(
                    "gc cannot tell what an unreadable head names, so it deletes nothing anywhere \
                     until it is fixed: deploy {tenant} again (a deploy replaces an invalid head), \
                     roll it back with `cfsetup rollback {tenant} VERSION`, or remove it with \
                     `cfsetup remove-site {tenant} --yes`"
                ),
            )
        })?;
        if let StoredHead::V2(h) = &head {
            out.expired = self.drop_expired(h, etag.as_deref()).await;
            // Skew protection: the retained index names blobs of deploys the head may no longer
            // keep; they stay while the head names the index (docs/storage-layout.md "gc").
            if let (Some(_), Some(live)) = (&h.retained, &h.live) {
                let rkey = layout::retained_key(tenant, &live.deploy_id);
                let obj = self
                    .storage
                    .get(&rkey)
                    .await
                    .map_err(self.err(&format!("reading {rkey}")))?
                    .ok_or_else(|| {
                        anyhow::anyhow!("{key} names {rkey}, which is missing; nothing was deleted")
                    })?;
                let index: crate::site::manifest::RetainedIndex = serde_json::from_slice(&obj.body)
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "{rkey} is not a valid retained index ({e}); nothing was deleted"
                        )
                    })?;
                out.hashes
                    .extend(index.hashes().into_iter().map(str::to_string));
            }
        }
        // This sweep still counts what the head named when read, dropped previews included:
        // their copies and blobs go at the next gc, so a deploy that read the old head is safe.
        let ids: Vec<String> = match &head {
            StoredHead::V2(h) => h.named_ids().into_iter().map(str::to_string).collect(),
            StoredHead::V1(m) => {
                // cfsetup 0.1 kept every copy under deploys/ for rollback: keep them all.
                out.whole = true;
                out.hashes
                    .extend(m.hashes().into_iter().map(str::to_string));
                self.storage
                    .list(&layout::deploys_prefix(tenant))
                    .await
                    .map_err(self.err("listing deploy copies"))?
                    .iter()
                    .filter_map(|o| layout::deploy_id_of(tenant, &o.key).map(str::to_string))
                    .collect()
            }
        };
        let legacy = matches!(head, StoredHead::V1(_));
        let key = key.as_str();
        if let StoredHead::V2(h) = &head {
            for r in h.live.iter().chain(h.all_previews().map(|(_, r)| r)) {
                out.shards.extend(r.shard_hashes.iter().flatten().cloned());
            }
        }
        let hashes: Vec<(Vec<String>, Vec<String>)> = stream::iter(&ids)
            .map(|id| async move {
                if !legacy && !is_deploy_id(id) {
                    anyhow::bail!("{key} names {id:?}, not a deploy id; nothing was deleted");
                }
                let ckey = layout::deploy_key(tenant, id);
                let obj = self
                    .storage
                    .get(&ckey)
                    .await
                    .map_err(self.err(&format!("reading {ckey}")))?
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "{key} names {id}, but {ckey} is missing; nothing was deleted"
                        )
                    })?;
                if let Ok(c) = DeployCopy::parse(&obj.body, tenant) {
                    return Ok((
                        c.hashes().into_iter().map(str::to_string).collect(),
                        c.route.shard_hashes.unwrap_or_default(),
                    ));
                }
                match LegacyManifest::parse(&obj.body, tenant) {
                    Ok(m) if legacy => Ok((
                        m.hashes().into_iter().map(str::to_string).collect(),
                        Vec::new(),
                    )),
                    _ => anyhow::bail!("{ckey} is not a valid deploy copy; nothing was deleted"),
                }
            })
            .buffer_unordered(self.concurrency)
            .try_collect()
            .await?;
        for (h, shards) in hashes {
            out.hashes.extend(h);
            out.shards.extend(shards);
        }
        out.named = ids.into_iter().collect();
        Ok(out)
    }
}

impl Gc<'_> {
    /// The blobs a content-addressed shard names. One a head or kept copy names must exist and
    /// parse, else nothing is deleted; one only a fresh intent names may not exist yet.
    async fn shard_refs(&self, hash: &str, required: bool) -> anyhow::Result<Vec<String>> {
        let key = layout::cas_shard_key(hash);
        let Some(obj) = self
            .storage
            .get(&key)
            .await
            .map_err(self.err(&format!("reading {key}")))?
        else {
            if required {
                anyhow::bail!("a kept deploy names {key}, which is missing; nothing was deleted");
            }
            return Ok(Vec::new());
        };
        let shard = Shard::parse(&obj.body, Some(hash))
            .map_err(|why| anyhow::anyhow!("{key}: {why}; nothing was deleted"))?;
        Ok(shard.hashes().into_iter().map(str::to_string).collect())
    }
}

#[derive(Default)]
struct TenantRefs {
    tenant: String,
    hashes: BTreeSet<String>,
    shards: BTreeSet<String>,
    named: BTreeSet<String>,
    whole: bool,
    /// Expired previews dropped from the head (or, with --dry-run, that would be).
    expired: Vec<String>,
    /// The tenant has a head (it is on the platform).
    has_head: bool,
}

/// Rewrites the marker every `timing.refresh` while the gc runs.
async fn refresh(
    storage: Storage,
    key: String,
    mut marker: Marker,
    timing: Timing,
    lease: Arc<Lease>,
) {
    loop {
        tokio::time::sleep(timing.refresh).await;
        let (at, wall) = (Instant::now(), SystemTime::now());
        marker.refreshed_at = locks::rfc3339(wall);
        let body = Bytes::from(serde_json::to_vec(&marker).expect("a marker serializes"));
        if storage
            .put(
                &key,
                Payload::Bytes(body),
                PutOptions::overwrite("application/json"),
            )
            .await
            .is_ok()
        {
            lease.refreshed(at, wall);
        }
    }
}

#[derive(Debug, Serialize, Default)]
struct GcReport {
    dry_run: bool,
    /// Stopped by SIGINT or SIGTERM (exit 130); `objects_deleted` says how far it got.
    interrupted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    objects_deleted: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    grace_secs: u64,
    tenants: usize,
    /// Deploys running (fresh intents) when gc listed them.
    running_deploys: usize,
    blobs: usize,
    referenced_blobs: usize,
    blobs_deleted: usize,
    /// Bytes of everything deleted: blobs, deploy copies and shards.
    bytes_freed: u64,
    /// Of which blobs.
    blob_bytes_freed: u64,
    copies_deleted: usize,
    shards_deleted: usize,
    stale_intents: usize,
    /// `NAME--TENANT` of each expired preview dropped from its head.
    expired_previews: Vec<String>,
    duration_secs: f64,
}

impl Report for GcReport {
    fn render(&self, out: &mut Renderer) {
        if let Some(state) = self.state.as_ref().filter(|_| self.interrupted) {
            out.line(format!("Interrupted gc: {state}"));
            return;
        }
        let verb = if self.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        out.line(if self.dry_run {
            "Dry run: gc (nothing was deleted)".to_string()
        } else {
            format!(
                "gc: freed {} in {:.1}s",
                human_bytes(self.bytes_freed),
                self.duration_secs
            )
        });
        out.pairs(&[
            ("tenants", self.tenants.to_string()),
            ("running deploys", self.running_deploys.to_string()),
            (
                "blobs",
                format!(
                    "{} stored, {} referenced",
                    self.blobs, self.referenced_blobs
                ),
            ),
            (
                verb,
                format!(
                    "{} blob(s) ({}), {} deploy copy(ies), {} shard(s) ({} in all), {} stale \
                     intent(s)",
                    self.blobs_deleted,
                    human_bytes(self.blob_bytes_freed),
                    self.copies_deleted,
                    self.shards_deleted,
                    human_bytes(self.bytes_freed),
                    self.stale_intents
                ),
            ),
            (
                "grace",
                humantime::format_duration(Duration::from_secs(self.grace_secs)).to_string(),
            ),
            (
                if self.dry_run {
                    "expired previews, would drop"
                } else {
                    "expired previews dropped"
                },
                if self.expired_previews.is_empty() {
                    "none".to_string()
                } else {
                    self.expired_previews.join(", ")
                },
            ),
            ("took", format!("{:.2}s", self.duration_secs)),
        ]);
    }
    fn to_json(&self) -> serde_json::Value {
        json_of(self)
    }
    fn exit_code(&self) -> u8 {
        if self.interrupted {
            130
        } else {
            0
        }
    }
    fn failures(&self) -> Vec<String> {
        self.state.iter().cloned().collect()
    }
}
