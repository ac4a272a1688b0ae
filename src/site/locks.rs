//! The coordination records of docs/storage-layout.md "Many writers": a deploy's intent and a
//! gc's sweep marker. Pure: the shapes, and when one is stale.
//!
//! Staleness is judged from the object's LastModified (the store's clock, given by every
//! listing) against the reader's clock; `STALE` is far longer than any sane clock skew.
//!
//! It imports only `names`: no storage, client or output (the commands write and read these
//! records).

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::names::Tenant;

/// How often a running deploy or gc rewrites its record.
pub const REFRESH: Duration = Duration::from_secs(60);
/// A record not rewritten for this long belongs to a dead run.
pub const STALE: Duration = Duration::from_secs(600);

/// Lock timing: the defaults, or shorter ones for tests (`--lock-stale`, hidden).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub refresh: Duration,
    pub stale: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            refresh: REFRESH,
            stale: STALE,
        }
    }
}

impl Timing {
    /// `stale`, with a refresh of a tenth of it.
    pub fn with_stale(stale: Duration) -> Self {
        Timing {
            refresh: (stale / 10).max(Duration::from_millis(100)),
            stale,
        }
    }

    /// Whether a record last written at `modified` is still alive at `now`. A record with no
    /// time is treated as alive (the safe side).
    pub fn is_fresh(&self, modified: Option<SystemTime>, now: SystemTime) -> bool {
        match modified {
            Some(m) => now.duration_since(m).unwrap_or_default() < self.stale,
            None => true,
        }
    }

    /// Whether a record last written at `modified`, whose writer recorded the stale time
    /// `recorded`, is still alive at `now`: the longer of this run's and the record's counts, so
    /// a run with a short `--lock-stale` never treats a normal run's record as dead.
    pub fn is_fresh_recorded(
        &self,
        modified: Option<SystemTime>,
        now: SystemTime,
        recorded: Option<Duration>,
    ) -> bool {
        let stale = recorded.map_or(self.stale, |r| r.max(self.stale));
        Timing { stale, ..*self }.is_fresh(modified, now)
    }

    /// Whether a record judged stale by this run's timing must be read for its recorded stale
    /// time: only when this run's is shorter than the default (`--lock-stale` can only shorten).
    pub fn needs_recorded(&self) -> bool {
        self.stale < STALE
    }

    /// `stale` in milliseconds, for the records.
    pub fn stale_ms(&self) -> u64 {
        self.stale.as_millis().try_into().unwrap_or(u64::MAX)
    }

    /// What a run keeps back from `stale` before it stops relying on its record: `4 × refresh`
    /// (4 min by default). It covers one refresh period, a clock skew of up to a minute between
    /// this run and a reader, and [`Timing::switch_budget`].
    pub fn margin(&self) -> Duration {
        self.refresh * 4
    }

    /// How long since the last successful refresh (sent) a run may still rely on its record:
    /// `STALE − margin` (docs "Lock timing").
    pub fn safe_age(&self) -> Duration {
        self.stale.saturating_sub(self.margin())
    }

    /// The most time one head switch (one compare-and-swap, with every retry of its request)
    /// may take after the lease check before it: half the margin.
    pub fn switch_budget(&self) -> Duration {
        self.margin() / 2
    }
}

/// A run's hold on its record (intent or sweep marker). It *lapses* once the time since the
/// last successful refresh exceeds [`Timing::safe_age`], by the monotonic clock or by the wall
/// clock (the monotonic one does not count a system suspend). A lapse is sticky: a later
/// refresh does not undo it, since a reader may have seen the record stale meanwhile.
#[derive(Debug)]
pub struct Lease {
    safe: Duration,
    state: Mutex<LeaseState>,
}

#[derive(Debug)]
struct LeaseState {
    at: Instant,
    wall: SystemTime,
    lapsed: bool,
}

impl LeaseState {
    fn too_old(&self, safe: Duration) -> bool {
        self.at.elapsed() > safe
            || SystemTime::now()
                .duration_since(self.wall)
                .unwrap_or_default()
                > safe
    }
}

impl Lease {
    /// Call before the record's first write, so the lease starts no later than the record.
    pub fn new(timing: &Timing) -> Self {
        Lease {
            safe: timing.safe_age(),
            state: Mutex::new(LeaseState {
                at: Instant::now(),
                wall: SystemTime::now(),
                lapsed: false,
            }),
        }
    }

    /// A refresh sent at (`at`, `wall`) succeeded. If the gap since the previous one was too
    /// long the lease lapses, for good.
    pub fn refreshed(&self, at: Instant, wall: SystemTime) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.too_old(self.safe) {
            st.lapsed = true;
        }
        st.at = at.max(st.at);
        st.wall = wall.max(st.wall);
    }

    /// Whether the record may have gone stale at some point (sticky).
    pub fn lapsed(&self) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.too_old(self.safe) {
            st.lapsed = true;
        }
        st.lapsed
    }

    /// How long a run may go without a refresh before it lapses, for messages.
    pub fn safe_age(&self) -> Duration {
        self.safe
    }
}

/// `locks/deploys/<uuid>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub tenant: Tenant,
    pub deploy_id: String,
    pub started_at: String,
    pub refreshed_at: String,
    /// The blobs this run will check or upload (a deploy: those of the shards its live deploy
    /// lacks; the blobs of shards the live deploy has are vouched for by the head's CAS).
    pub hashes: Vec<String>,
    /// The content-addressed shards (`shards/<hash>.json`) the deploy will name and may write:
    /// gc keeps them, and counts the blobs of those that exist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<String>,
    /// The writer's stale time (ms); readers use the longer of theirs and this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_ms: Option<u64>,
}

impl Intent {
    /// A run's intent written now: started and refreshed at `SystemTime::now()`, with the
    /// writer's stale time from `timing`.
    pub fn new(
        tenant: Tenant,
        deploy_id: String,
        hashes: Vec<String>,
        shards: Vec<String>,
        timing: &Timing,
    ) -> Intent {
        let now = rfc3339(SystemTime::now());
        Intent {
            tenant,
            deploy_id,
            started_at: now.clone(),
            refreshed_at: now,
            hashes,
            shards,
            stale_ms: Some(timing.stale_ms()),
        }
    }
}

/// `locks/gc/<uuid>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub owner: String,
    pub started_at: String,
    pub refreshed_at: String,
    /// The writer's stale time (ms); readers use the longer of theirs and this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_ms: Option<u64>,
}

/// The stale time an intent or marker body records, if any.
pub fn recorded_stale(body: &[u8]) -> Option<Duration> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("stale_ms")?.as_u64().map(Duration::from_millis)
}

pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A random id for a record's key (32 hex).
pub fn new_id() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::thread_rng().gen();
    hex::encode(bytes)
}

/// Who runs this: `host:pid`, for people reading the bucket.
pub fn owner() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_follows_the_stale_period() {
        let t = Timing::with_stale(Duration::from_secs(10));
        assert_eq!(t.refresh, Duration::from_secs(1));
        let now = SystemTime::now();
        assert!(t.is_fresh(Some(now - Duration::from_secs(9)), now));
        assert!(!t.is_fresh(Some(now - Duration::from_secs(10)), now));
        assert!(t.is_fresh(None, now));
        // A record written "in the future" (clock skew) is fresh.
        assert!(t.is_fresh(Some(now + Duration::from_secs(60)), now));
        assert_eq!(Timing::default().safe_age(), Duration::from_secs(360));
        assert_eq!(Timing::default().switch_budget(), Duration::from_secs(120));
        assert_eq!(new_id().len(), 32);
    }

    #[test]
    fn a_recorded_stale_time_only_lengthens() {
        let short = Timing::with_stale(Duration::from_secs(5));
        let now = SystemTime::now();
        let at = Some(now - Duration::from_secs(60));
        assert!(!short.is_fresh_recorded(at, now, None));
        assert!(short.is_fresh_recorded(at, now, Some(STALE)));
        assert!(!Timing::default().is_fresh_recorded(
            Some(now - STALE),
            now,
            Some(Duration::from_secs(1))
        ));
        assert!(short.needs_recorded() && !Timing::default().needs_recorded());
        assert_eq!(recorded_stale(br#"{"stale_ms":600000}"#), Some(STALE));
        assert_eq!(recorded_stale(br#"{"owner":"x"}"#), None);
    }

    #[test]
    fn a_lapsed_lease_stays_lapsed() {
        let t = Timing {
            refresh: Duration::from_millis(10),
            stale: Duration::from_millis(100),
        };
        let lease = Lease::new(&t);
        assert!(!lease.lapsed());
        std::thread::sleep(Duration::from_millis(80));
        // A refresh after a gap longer than the safe age (60 ms) does not save the lease.
        lease.refreshed(Instant::now(), SystemTime::now());
        assert!(lease.lapsed());
        lease.refreshed(Instant::now(), SystemTime::now());
        assert!(lease.lapsed());
        let fresh = Lease::new(&t);
        fresh.refreshed(Instant::now(), SystemTime::now());
        assert!(!fresh.lapsed());
    }
}
