//! The head protocol: a tenant's head (`sites/<tenant>/manifest.json`) read with its ETag, and the
//! compare-and-swap that switches it (S3 `If-Match`, `If-None-Match: *` for the first;
//! docs/storage-layout.md "Many writers"). A refused swap (412, or 409 from a store that answers
//! a race so) re-reads the head and says what landed instead; a swap that lost only to its own
//! earlier attempt is recognised as a success ([`own_write`]).
//!
//! [`Switch`] is the one switch-with-retry loop: deploy-site, rollback and remove-preview each
//! say only how to build the next head ([`SwitchSteps`]) and whether a lost race may be retried.
//!
//! Used by deploy-site, rollback, remove-site, remove-preview, sites, gc and destroy-infra. It
//! must not import commands' reports or output.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::names::Tenant;
use crate::site::layout;
use crate::site::manifest::{Head, StoredHead};
use crate::storage::{Payload, PutMode, PutOptions, Storage};

use super::bucket::bucket_error;

/// A head as read: its parsed form (`None` when it is not valid) and its ETag.
#[derive(Debug, Clone)]
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
    tenant: &Tenant,
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

/// Why a compare-and-swap did not switch: another run wrote the head since it was read.
#[derive(Debug)]
pub struct Lost {
    /// The deploy live now, if any.
    pub live: Option<String>,
    /// Who wrote the head now stored (`updated_by`), when it says.
    pub by: Option<String>,
    /// The head as read right after the refusal (`None`: there is none now), so a retry needs no
    /// second read.
    pub now: Option<Box<ReadHead>>,
}

impl Lost {
    /// What landed instead, for a message: `<deploy id> (written by <run>)`.
    pub fn describe(&self) -> String {
        match (&self.live, &self.by) {
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
            Ok(Err(Lost {
                live,
                by,
                now: now.map(Box::new),
            }))
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
        Err(Lost {
            live: Some(live),
            by: Some(landed_by),
            ..
        }) if live == deploy_id && landed_by == by => Ok(None),
        other => other,
    }
}

/// What one command's switch does at each step; [`Switch::run`] does the rest.
pub trait SwitchSteps {
    /// The head to write over `base` (the head first read, then the newest after each lost race),
    /// or `None` when there is nothing to change (the switch ends, nothing written).
    fn next(&mut self, base: Option<&Head>) -> anyhow::Result<Option<Head>>;

    /// Right before each compare-and-swap: an error stops the switch with nothing written (a
    /// deploy's lease check).
    fn writing(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    /// After a compare-and-swap that did not land: a lost race, or no answer.
    fn unwritten(&mut self) {}

    /// A race was lost (`lost.now` is the head that won): an error stops the switch (it should
    /// say what landed, [`Lost::describe`]); `Ok` tries again on `lost.now`.
    fn retry(&mut self, lost: &Lost) -> impl Future<Output = anyhow::Result<()>>;
}

/// One switch of a tenant's head: build, compare-and-swap, and on a lost race ask the command
/// whether to build again on the newest head, at most [`SWITCH_ATTEMPTS`] times.
pub struct Switch<'a> {
    pub storage: &'a Storage,
    pub bucket: &'a str,
    pub tenant: &'a Tenant,
    /// The deploy the new head makes live and the run's `updated_by`: a refusal against this
    /// run's own earlier attempt is a success ([`own_write`]). `None`: no such check.
    pub own: Option<(&'a str, &'a str)>,
    /// The longest one compare-and-swap may take; past it the switch stops, saying the head may
    /// or may not have changed. `None`: the transport's own limits.
    pub budget: Option<Duration>,
    /// What the switch does, for that message ("switching to <deploy id>").
    pub doing: String,
    /// The verb of "nothing was …" when the head kept changing ("switched", "removed").
    pub nothing_was: &'static str,
}

/// How a switch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switched {
    /// Whether a head was written (`false`: [`SwitchSteps::next`] found nothing to change).
    pub written: bool,
    /// Whether it took more than one compare-and-swap.
    pub retried: bool,
}

impl Switch<'_> {
    /// Switches from `read` (the head as read with its ETag; `None`: the tenant has none).
    pub async fn run(
        &self,
        read: Option<ReadHead>,
        steps: &mut impl SwitchSteps,
    ) -> anyhow::Result<Switched> {
        let tenant = self.tenant;
        let mut read = read;
        for attempt in 0..SWITCH_ATTEMPTS {
            let retried = attempt > 0;
            let Some(next) = steps.next(read.as_ref().and_then(ReadHead::v2))? else {
                return Ok(Switched {
                    written: false,
                    retried,
                });
            };
            steps.writing()?;
            let etag = read.as_ref().and_then(|r| r.etag.as_deref());
            let cas = cas_head(self.storage, self.bucket, &next, etag);
            let outcome = match self.budget {
                Some(budget) => tokio::time::timeout(budget, cas).await.unwrap_or_else(|_| {
                    Err(anyhow::anyhow!(
                        "no answer within {}",
                        humantime::format_duration(budget)
                    ))
                }),
                None => cas.await,
            };
            let outcome = match outcome {
                Ok(o) => o,
                Err(e) => {
                    steps.unwritten();
                    return Err(e.context(format!(
                        "{}; it may or may not be done now (run `cfsetup sites {tenant}` to see)",
                        self.doing
                    )));
                }
            };
            let outcome = match self.own {
                Some((deploy_id, by)) => own_write(outcome, deploy_id, by),
                None => outcome,
            };
            match outcome {
                Ok(_) => {
                    return Ok(Switched {
                        written: true,
                        retried,
                    })
                }
                Err(lost) => {
                    steps.unwritten();
                    steps.retry(&lost).await?;
                    read = lost.now.map(|b| *b);
                }
            }
        }
        anyhow::bail!(
            "the head of {tenant} kept changing; gave up after {SWITCH_ATTEMPTS} tries (nothing \
             was {})",
            self.nothing_was
        )
    }
}

/// Drops the oldest previews (but `keep`) while `head` is past its bound of 1 MiB, and says which
/// went, for a warning ([`Head::shed_previews`]).
pub fn shed_previews(head: &mut Head, keep: Option<&str>) -> Option<String> {
    let shed = head.shed_previews(keep);
    (!shed.is_empty()).then(|| {
        format!(
            "dropped the oldest preview(s) {} of {}: with them the head would pass its bound of \
             1 MiB, which the router reads on every request",
            shed.join(", "),
            head.tenant
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_412_against_our_own_write_is_a_success() {
        let landed = |live: &str, by: &str| {
            Err(Lost {
                live: Some(live.into()),
                by: Some(by.into()),
                now: None,
            })
        };
        assert!(matches!(
            own_write(landed("d1", "me"), "d1", "me"),
            Ok(None)
        ));
        assert!(own_write(landed("d1", "other"), "d1", "me").is_err());
        assert!(own_write(landed("d2", "me"), "d1", "me").is_err());
        assert!(matches!(
            own_write(Ok(Some("e".into())), "d1", "me"),
            Ok(Some(_))
        ));
    }
}
