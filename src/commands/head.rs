//! The head protocol: a tenant's head (`sites/<tenant>/manifest.json`) read with its ETag, and the
//! compare-and-swap that switches it (S3 `If-Match`, `If-None-Match: *` for the first;
//! docs/storage-layout.md "Many writers"). A refused swap (412, or 409 from a store that answers
//! a race so) re-reads the head and says what landed instead; a swap that lost only to its own
//! earlier attempt is recognised as a success ([`own_write`]).
//!
//! Used by deploy-site, rollback, remove-site, remove-preview, sites, gc and destroy-infra. It
//! must not import commands' reports or output.

use bytes::Bytes;

use crate::site::layout;
use crate::site::manifest::{Head, StoredHead};
use crate::storage::{Payload, PutMode, PutOptions, Storage};

use super::bucket::bucket_error;

/// A head as read: its parsed form (`None` when it is not valid) and its ETag.
pub struct ReadHead {
    pub head: Option<StoredHead>,
    pub etag: Option<String>,
    /// Why it did not parse.
    pub invalid: Option<String>,
}

impl ReadHead {
    pub fn v2(&self) -> Option<&Head> {
        match &self.head {
            Some(StoredHead::V2(h)) => Some(h),
            _ => None,
        }
    }

    pub fn live_id(&self) -> Option<&str> {
        self.head.as_ref().and_then(StoredHead::live_id)
    }
}

/// Reads `sites/<tenant>/manifest.json`; `None` when the tenant has none.
pub async fn read_head(
    storage: &Storage,
    bucket: &str,
    tenant: &str,
) -> anyhow::Result<Option<ReadHead>> {
    let key = layout::manifest_key(tenant);
    let Some(obj) = storage
        .get(&key)
        .await
        .map_err(|e| bucket_error(e, bucket, &format!("reading {key}")))?
    else {
        return Ok(None);
    };
    let (head, invalid) = match StoredHead::parse(&obj.body, tenant) {
        Ok(h) => (Some(h), None),
        Err(why) => (None, Some(why)),
    };
    Ok(Some(ReadHead {
        head,
        etag: obj.meta.etag,
        invalid,
    }))
}

/// How many compare-and-swaps a switch tries (with `--force`, each on the newest head) before it
/// gives up and says the head kept changing.
pub const SWITCH_ATTEMPTS: u32 = 5;

/// Why a compare-and-swap did not switch.
#[derive(Debug)]
pub enum Lost {
    /// Another run wrote the head since `expected` was read. `live` is what is live now.
    Landed {
        live: Option<String>,
        by: Option<String>,
    },
}

impl Lost {
    /// What landed instead, for a message: `<deploy id> (written by <run>)`.
    pub fn describe(&self) -> String {
        let Lost::Landed { live, by } = self;
        match (live, by) {
            (Some(l), Some(b)) => format!("{l} (written by {b})"),
            (Some(l), None) => l.clone(),
            (None, _) => "a change to the head (or its removal)".into(),
        }
    }
}

/// Writes `head` if the stored head still has the ETag `expected` (`None`: if there is none).
/// Returns the new ETag, or what landed instead.
pub async fn cas_head(
    storage: &Storage,
    bucket: &str,
    head: &Head,
    expected: Option<&str>,
) -> anyhow::Result<Result<Option<String>, Lost>> {
    let key = layout::manifest_key(&head.tenant);
    let bytes = head.to_bytes();
    if bytes.len() > crate::site::manifest::MAX_HEAD_BYTES {
        // Never written: the router would refuse to serve the tenant (docs/storage-layout.md
        // "Size bounds").
        anyhow::bail!(
            "the head {key} would be {} bytes; the limit is 1 MiB (1,048,576 bytes), because the \
             router reads it on every request. Nothing was switched; shorten the site's \
             _redirects or _headers",
            crate::site::rules::thousands(bytes.len())
        );
    }
    let mode = match expected {
        Some(etag) => PutMode::Update(etag.to_string()),
        None => PutMode::Create,
    };
    let options = PutOptions::overwrite("application/json").with_mode(mode);
    match storage
        .put(&key, Payload::Bytes(Bytes::from(bytes)), options)
        .await
    {
        Ok(etag) => Ok(Ok(etag)),
        Err(e) if e.is_precondition_failed() => {
            let now = read_head(storage, bucket, &head.tenant).await?;
            let (live, by) = match now.as_ref().and_then(|r| r.head.as_ref()) {
                Some(StoredHead::V2(h)) => (
                    h.live.as_ref().map(|r| r.deploy_id.clone()),
                    Some(h.updated_by.clone()),
                ),
                Some(StoredHead::V1(m)) => (Some(m.deploy_id.clone()), None),
                None => (None, None),
            };
            Ok(Err(Lost::Landed { live, by }))
        }
        Err(e) => Err(bucket_error(e, bucket, &format!("writing {key}"))),
    }
}

/// A compare-and-swap answered 412 may have lost against its own earlier attempt (the first
/// response was lost and the request retried): if the head now names this deploy, written by
/// this run, the switch happened.
pub fn own_write(
    outcome: Result<Option<String>, Lost>,
    deploy_id: &str,
    by: &str,
) -> Result<Option<String>, Lost> {
    match outcome {
        Err(Lost::Landed {
            live: Some(live),
            by: Some(landed_by),
        }) if live == deploy_id && landed_by == by => Ok(None),
        other => other,
    }
}
