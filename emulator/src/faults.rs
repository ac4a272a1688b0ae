//! Injected faults and the per-credential rate limiter.
//!
//! Faults (`Emulator::inject`, `POST /__emulator/faults`) apply to the next `times` matching API
//! requests, before authentication. The limiter is a sliding window per credential, answering
//! 429 / 971 with `Retry-After` past the quota (docs/cloudflare-api.md §1 "Rate limit").

use crate::{Api, Fault, FaultKind};
use serde_json::Value;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Pending faults, consumed in insertion order.
#[derive(Debug, Default)]
pub struct Faults {
    /// Each fault with the API it is aimed at (`None`: both).
    pending: Vec<(Option<Api>, Fault)>,
}

impl Faults {
    pub fn add(&mut self, api: Option<Api>, fault: Fault) {
        if fault.times > 0 {
            self.pending.push((api, fault));
        }
    }

    pub fn clear(&mut self) {
        self.pending.clear();
    }

    /// Takes one use of the first fault matching this request.
    pub fn take(&mut self, api: Api, method: &str, path: &str) -> Option<FaultKind> {
        let idx = self.pending.iter().position(|(a, f)| {
            a.is_none_or(|a| a == api)
                && f.method
                    .as_deref()
                    .is_none_or(|m| m.eq_ignore_ascii_case(method))
                && f.path_contains.as_deref().is_none_or(|p| path.contains(p))
        })?;
        let fault = &mut self.pending[idx].1;
        let kind = fault.kind.clone();
        fault.times -= 1;
        if fault.times == 0 {
            self.pending.remove(idx);
        }
        Some(kind)
    }
}

/// Parses the JSON of `POST /__emulator/faults`:
/// `{api?, method?, path_contains?, kind, retry_after_secs?, status?, ms?, times?}` (`times`
/// defaults to 1; `api` is `"rest"` or `"s3"`, absent for both).
pub fn fault_from_json(v: &Value) -> Result<(Option<Api>, Fault), String> {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let n = |k: &str| v.get(k).and_then(Value::as_u64);
    let kind = match s("kind").as_deref() {
        Some("rate_limit") => FaultKind::RateLimit {
            retry_after_secs: n("retry_after_secs").unwrap_or(1),
        },
        Some("server_error") => {
            let status = n("status").unwrap_or(500);
            if !(500..=599).contains(&status) {
                return Err("status must be a 5xx".into());
            }
            FaultKind::ServerError {
                status: status as u16,
            }
        }
        Some("drop") => FaultKind::Drop,
        Some("latency") => FaultKind::Latency(Duration::from_millis(n("ms").unwrap_or(0))),
        _ => return Err("kind must be rate_limit, server_error, drop or latency".into()),
    };
    let times = n("times").unwrap_or(1);
    let api = match s("api").as_deref() {
        None => None,
        Some("rest") => Some(Api::Rest),
        Some("s3") => Some(Api::S3),
        Some(_) => return Err("api must be rest or s3".into()),
    };
    let fault = Fault {
        method: s("method"),
        path_contains: s("path_contains"),
        kind,
        times: u32::try_from(times).map_err(|_| "times is too large".to_string())?,
    };
    Ok((api, fault))
}

/// The outcome of counting one request.
#[derive(Debug, Clone, Copy)]
pub struct Admission {
    pub allowed: bool,
    pub remaining: u32,
    /// Seconds until the oldest counted request leaves the window (rounded up).
    pub reset_secs: u64,
}

/// Sliding-window limiter keyed by a hash of the credential headers.
#[derive(Debug, Default)]
pub struct Limiter {
    windows: HashMap<String, VecDeque<Instant>>,
}

impl Limiter {
    pub fn admit(&mut self, key: &str, quota: u32, window: Duration, now: Instant) -> Admission {
        let q = self.windows.entry(key.to_string()).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= window) {
            q.pop_front();
        }
        let reset = |q: &VecDeque<Instant>| {
            q.front()
                .map(|t| window.saturating_sub(now.duration_since(*t)))
                .unwrap_or(window)
        };
        let used = u32::try_from(q.len()).unwrap_or(u32::MAX);
        if used >= quota {
            return Admission {
                allowed: false,
                remaining: 0,
                reset_secs: ceil_secs(reset(q)),
            };
        }
        q.push_back(now);
        Admission {
            allowed: true,
            remaining: quota - used - 1,
            reset_secs: ceil_secs(reset(q)),
        }
    }
}

pub fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}
