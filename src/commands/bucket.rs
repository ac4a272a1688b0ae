//! What the site commands share: opening the bucket, errors that say which bucket and what to
//! do, lock timing, host entries and the zone's custom hostnames. The head protocol
//! (read with its ETag, compare-and-swap) is `head.rs`.
//!
//! Shared by the site commands; it must not import a command, a report or `head`.

use anyhow::Context;
use bytes::Bytes;

use crate::cli::BucketArgs;
use crate::cloudflare::Client;
use crate::config::Config;
use crate::names::{Hostname, Tenant};
use crate::output::Ui;
use crate::platform::{self, Flags};
use crate::site::layout;
use crate::storage::{BucketLoc, Payload, PutOptions, Storage, StorageError};

/// The client and the bucket's objects for one run.
pub struct Opened {
    pub client: Client,
    pub storage: Storage,
    pub bucket: String,
}

/// Checks the bucket settings (exit 2 before any request), then opens the bucket.
pub async fn open(
    config: &Config,
    ui: &Ui,
    bucket: &BucketArgs,
    max_in_flight: usize,
) -> anyhow::Result<Opened> {
    let loc = location(config, bucket)?;
    let auth = super::platform_auth(config, ui)?;
    let client = super::client(config, auth, max_in_flight)?;
    let name = loc.name.clone();
    let storage = crate::storage::open(config, &client, loc).await?;
    Ok(Opened {
        client,
        storage,
        bucket: name.into(),
    })
}

/// The bucket, its jurisdiction and the account, checked ([`platform::bucket`]).
pub fn location(config: &Config, args: &BucketArgs) -> anyhow::Result<BucketLoc> {
    platform::bucket(config, Flags::bucket(args))
}

/// What to do about an S3 refusal of the credentials (R2's error table, `r2/api/error-codes.mdx`;
/// docs/cloudflare-api.md §7): 401 is a credential that is invalid, expired or rolled; 403
/// AccessDenied is a token without Workers R2 Storage Write on the account.
pub fn s3_auth_hint(e: &StorageError) -> Option<String> {
    let StorageError::S3 { status, code, .. } = e else {
        return None;
    };
    let account = platform::run_account()
        .map_or_else(|| "the account".to_string(), |a| format!("account {a}"));
    match (*status, code.as_str()) {
        (401, _) | (_, "Unauthorized") => Some(
            "the API token is invalid, expired or was rolled: create one with `cfsetup \
             create-token`, or roll it with `cfsetup rotate-token`"
                .into(),
        ),
        (403, "AccessDenied") => Some(format!(
            "the token lacks Workers R2 Storage Write on {account}; add it to the token (see \
             `cfsetup permissions`), then run `cfsetup test-permissions`"
        )),
        (403, "InvalidAccessKeyId" | "SignatureDoesNotMatch") => Some(
            "R2's S3 API refused the keys derived from the token: if CLOUDFLARE_API_TOKEN_ID is \
             set, check that it is this token's id (or remove it); a token id this machine had \
             cached (~/.cache/cfsetup/token-ids/) was removed, so the next run verifies the \
             token again; or use --via rest"
                .into(),
        ),
        _ => None,
    }
}

/// A storage error with what was being done, and the fix when the bucket is missing or the
/// credentials were refused.
pub fn bucket_error(e: StorageError, bucket: &str, doing: &str) -> anyhow::Error {
    let missing = matches!(&e, StorageError::Rest(api) if api.has_code(10006))
        || e.s3_code() == Some("NoSuchBucket");
    let err = match s3_auth_hint(&e) {
        Some(hint) => anyhow::Error::new(crate::error::Hinted { error: e, hint }),
        None => anyhow::Error::new(e),
    };
    let err = err.context(format!("{doing} in bucket {bucket}"));
    if missing {
        err.context(format!(
            "the bucket {bucket} does not exist: run `cfsetup deploy-infra` first (or check \
             --bucket / R2_BUCKET_NAME and --jurisdiction)"
        ))
    } else {
        err
    }
}

/// The stale time recorded in the intent or marker at `key` (`None`: none, gone, unreadable).
pub async fn recorded_stale(storage: &Storage, key: &str) -> Option<std::time::Duration> {
    let obj = storage.get(key).await.ok()??;
    crate::site::locks::recorded_stale(&obj.body)
}

/// Writes small JSON under `key`, unconditionally.
pub async fn put_json(
    storage: &Storage,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> anyhow::Result<()> {
    storage
        .put(
            key,
            Payload::Bytes(Bytes::from(body)),
            PutOptions::overwrite("application/json"),
        )
        .await
        .map(|_| ())
        .map_err(|e| bucket_error(e, bucket, &format!("writing {key}")))
}

/// `--grace`: a duration, zero allowed.
pub fn grace(value: &str) -> Result<std::time::Duration, crate::error::UsageError> {
    humantime::parse_duration(value.trim()).map_err(|e| {
        crate::error::usage!("--grace is not a duration: {value:?} ({e})")
            .with_hint("write a number and a unit, such as 0s, 30m or 1h")
    })
}

/// `--lock-stale` (hidden, for tests).
pub fn lock_timing(
    value: Option<&str>,
) -> Result<crate::site::locks::Timing, crate::error::UsageError> {
    match value {
        None => Ok(crate::site::locks::Timing::default()),
        Some(v) => {
            let d = crate::config::duration(v, "--lock-stale")?;
            if d > crate::site::locks::STALE {
                return Err(crate::error::usage!(
                    "--lock-stale {v} is out of range: it can only shorten the default (10m)"
                ));
            }
            Ok(crate::site::locks::Timing::with_stale(d))
        }
    }
}

/// Every tenant with a `sites/<tenant>/` prefix, in the listing's order (one delimited listing).
pub async fn tenants(storage: &Storage, bucket: &str) -> anyhow::Result<Vec<Tenant>> {
    Ok(storage
        .list_prefixes(layout::SITES_PREFIX)
        .await
        .map_err(|e| bucket_error(e, bucket, "listing tenants"))?
        .iter()
        .filter_map(|p| layout::tenant_of_prefix(p))
        .collect())
}

/// Every `hosts/` entry: hostname → the tenant it names (`None` if unreadable). One listing,
/// then the entries read concurrently.
pub async fn host_entries(
    storage: &Storage,
    bucket: &str,
    concurrency: usize,
) -> anyhow::Result<Vec<(Hostname, Option<Tenant>)>> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    let listed = storage
        .list(layout::HOSTS_PREFIX)
        .await
        .map_err(|e| bucket_error(e, bucket, "listing host entries"))?;
    let hosts: Vec<(Hostname, String)> = listed
        .into_iter()
        .filter_map(|m| layout::host_of(&m.key).map(|h| (h, m.key.clone())))
        .collect();
    stream::iter(hosts)
        .map(|(host, key)| async move {
            let got = storage
                .get(&key)
                .await
                .map_err(|e| bucket_error(e, bucket, &format!("reading {key}")))?;
            Ok::<_, anyhow::Error>((host, got.and_then(|o| layout::host_entry_tenant(&o.body))))
        })
        // In the listing's order (sorted by host), so reports are stable.
        .buffered(concurrency)
        .try_collect()
        .await
}

/// Every custom hostname of the zone, in one paged listing de-duplicated by id
/// ([`Client::all_custom_hostnames`]); `sites` and `domains` share it.
pub async fn all_custom_hostnames(
    client: &Client,
    zone: &str,
) -> anyhow::Result<Vec<crate::cloudflare::custom_hostnames::CustomHostname>> {
    client
        .all_custom_hostnames(zone, LISTING_CONCURRENCY)
        .await
        .context("listing the zone's custom hostnames")
}

/// Pages of the custom hostname listing read at once after the first.
pub const LISTING_CONCURRENCY: usize = 8;

/// Lists the sweep markers and waits until every fresh one seen now is gone or stale: a gc that
/// listed intents before the caller's intent existed may be deleting (docs/storage-layout.md
/// "deploy-site" step 2). Markers that appear later are not waited for. Returns the time waited.
pub async fn wait_for_sweeps(
    storage: &Storage,
    bucket: &str,
    timing: crate::site::locks::Timing,
    ui: &Ui,
) -> anyhow::Result<std::time::Duration> {
    use std::collections::BTreeSet;
    use std::time::{Duration, Instant, SystemTime};
    let start = Instant::now();
    let list = || async {
        storage
            .list(layout::MARKERS_PREFIX)
            .await
            .map_err(|e| bucket_error(e, bucket, "listing gc markers"))
    };
    let fresh = |metas: Vec<crate::storage::ObjectMeta>| async move {
        let now = SystemTime::now();
        let mut out = BTreeSet::new();
        for m in metas {
            if timing.is_fresh(m.last_modified, now)
                || (timing.needs_recorded()
                    && timing.is_fresh_recorded(
                        m.last_modified,
                        now,
                        recorded_stale(storage, &m.key).await,
                    ))
            {
                out.insert(m.key);
            }
        }
        out
    };
    let seen = fresh(list().await?).await;
    if seen.is_empty() {
        return Ok(Duration::ZERO);
    }
    ui.note(format!(
        "waiting for {} running gc(s) to finish before checking which blobs exist: {}. A gc that \
         died is waited for until its marker is {} old; if none is running, `cfsetup gc \
         --unlock` clears it now",
        seen.len(),
        seen.iter().cloned().collect::<Vec<_>>().join(", "),
        humantime::format_duration(timing.stale)
    ));
    let poll = timing
        .refresh
        .clamp(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        tokio::time::sleep(poll).await;
        let now = fresh(list().await?).await;
        if seen.is_disjoint(&now) {
            return Ok(start.elapsed());
        }
    }
}
