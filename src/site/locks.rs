//! The coordination records of docs/storage-layout.md "Many writers": a deploy's intent and a
//! gc's sweep marker. Pure: the shapes, and when one is stale.
//!
//! Staleness is judged from the object's LastModified (the store's clock, given by every
//! listing) against the reader's clock; `STALE` is far longer than any sane clock skew.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

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

    /// How long since the last successful refresh a run may still rely on its record: `STALE −
    /// REFRESH` (docs "deploy-site", the check before the switch).
    pub fn safe_age(&self) -> Duration {
        self.stale.saturating_sub(self.refresh)
    }
}

/// `locks/deploys/<uuid>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    pub tenant: String,
    pub deploy_id: String,
    pub started_at: String,
    pub refreshed_at: String,
    /// Every blob the deploy's manifest will name.
    pub hashes: Vec<String>,
}

/// `locks/gc/<uuid>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub owner: String,
    pub started_at: String,
    pub refreshed_at: String,
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
        assert_eq!(Timing::default().safe_age(), Duration::from_secs(540));
        assert_eq!(new_id().len(), 32);
    }
}
