//! The emulator's resources (tokens, R2 buckets and objects, Worker scripts, routes, custom
//! hostnames, fallback origins) and their persistence to a JSON state file.
//!
//! This module only holds data; the rules about who may change it and how live in `routes`.
//! Token values are never stored, only their SHA-256 hex. That hash is not harmless: it is the
//! token's S3 Secret Access Key (docs/cloudflare-api.md §7 "S3 credentials from an API token"), so the
//! state file holds working (emulator-only) S3 credentials, and `Token`'s `Debug` redacts it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// Everything the API can change.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub tokens: Vec<Token>,
    #[serde(default)]
    pub buckets: Vec<Bucket>,
    #[serde(default)]
    pub scripts: BTreeMap<String, Script>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub custom_hostnames: Vec<CustomHostname>,
    /// Zone id → fallback origin.
    #[serde(default)]
    pub fallback_origins: BTreeMap<String, FallbackOrigin>,
    /// The custom hostname quota of every zone.
    #[serde(default)]
    pub hostname_quota: HostnameQuota,
    /// Set by a GET that changed something (custom hostname activation), so the server saves.
    #[serde(skip)]
    pub dirty: bool,
    /// In-progress S3 multipart uploads by upload id. Not persisted (a restart forgets them).
    #[serde(skip)]
    pub uploads: BTreeMap<String, Upload>,
    /// Last S3 write per (jurisdiction, bucket, key), for R2's one write per second per key
    /// (only kept when `Options.s3_write_limit_per_key` is on).
    #[serde(skip)]
    pub last_writes: std::collections::HashMap<(String, String, String), std::time::Instant>,
}

/// An S3 multipart upload that was created and not yet completed or aborted.
#[derive(Debug, Clone)]
pub struct Upload {
    pub jurisdiction: String,
    pub bucket: String,
    pub key: String,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub http_extra: BTreeMap<String, String>,
    pub initiated: String,
    pub parts: BTreeMap<u32, Part>,
}

/// One uploaded part, kept in memory until the upload completes.
#[derive(Debug, Clone)]
pub struct Part {
    pub body: Vec<u8>,
    /// Raw MD5 of the body; its hex, quoted, is the part's ETag.
    pub md5: [u8; 16],
    pub last_modified: String,
}

/// Who owns a token: the seeded user (`cfut_`) or an account (`cfat_`), docs/cloudflare-api.md §4.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum TokenOwner {
    User,
    Account(String),
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Token {
    pub id: String,
    pub name: String,
    pub owner: TokenOwner,
    /// SHA-256 hex of the secret value; the value itself is never stored. This is also the
    /// token's S3 Secret Access Key: never print it (`Debug` redacts it).
    pub value_sha256: String,
    /// The value has a `cfut_`/`cfat_` prefix (every token the API creates or rolls); `false`
    /// only for `Emulator::mint_legacy_token`.
    #[serde(default = "yes")]
    pub prefixed: bool,
    /// `active`, `disabled` or `expired`.
    pub status: String,
    pub issued_on: String,
    pub modified_on: String,
    pub last_used_on: Option<String>,
    pub not_before: Option<String>,
    pub expires_on: Option<String>,
    /// Wire form, with server-assigned policy ids and permission-group names.
    pub policies: Vec<Value>,
    /// Stored as sent (`request.ip` or `request_ip`), echoed back.
    pub condition: Option<Value>,
}

fn yes() -> bool {
    true
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("owner", &self.owner)
            .field("value_sha256", &"REDACTED")
            .field("prefixed", &self.prefixed)
            .field("status", &self.status)
            .field("issued_on", &self.issued_on)
            .field("modified_on", &self.modified_on)
            .field("last_used_on", &self.last_used_on)
            .field("not_before", &self.not_before)
            .field("expires_on", &self.expires_on)
            .field("policies", &self.policies)
            .field("condition", &self.condition)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bucket {
    pub name: String,
    pub jurisdiction: String,
    pub location: String,
    pub storage_class: String,
    pub creation_date: String,
    #[serde(default)]
    pub objects: BTreeMap<String, Object>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Object {
    #[serde(with = "hex_bytes")]
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    /// Unquoted: the MD5 hex of the body for a single PUT (REST or S3), or
    /// `<MD5 hex of the concatenated part MD5s>-<part count>` for an S3 multipart upload, as S3
    /// and R2 do. Both APIs show this one value.
    pub etag: String,
    pub uploaded: String,
    pub version: String,
    /// The other system metadata R2 keeps and echoes, by lower-case header name (only those of
    /// [`HTTP_METADATA`] that were sent).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub http_extra: BTreeMap<String, String>,
}

/// System metadata R2 stores beside Content-Type and Cache-Control and echoes on GET / HEAD:
/// R2 `r2/api/s3/api.mdx` PutObject and CreateMultipartUpload rows ("Content-Disposition,
/// Content-Encoding, Content-Language, Expires"), `r2/api/s3/extensions.mdx` (`httpMetadata`);
/// docs/cloudflare-api.md §7 (wrangler forwards the same set on REST PUT). `x-amz-meta-*` is not kept.
pub const HTTP_METADATA: [&str; 4] = [
    "content-disposition",
    "content-encoding",
    "content-language",
    "expires",
];

/// The [`HTTP_METADATA`] headers of a request.
pub fn http_extra(headers: &hyper::HeaderMap) -> BTreeMap<String, String> {
    HTTP_METADATA
        .iter()
        .filter_map(|n| {
            let v = headers.get(*n)?.to_str().ok()?;
            Some((n.to_string(), v.to_string()))
        })
        .collect()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Module {
    pub name: String,
    pub content_type: String,
    #[serde(with = "hex_bytes")]
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Script {
    pub name: String,
    pub tag: String,
    /// The `metadata` part as sent.
    pub metadata: Value,
    pub modules: Vec<Module>,
    pub main_module: String,
    /// Effective bindings after `inherit` and `keep_bindings` were applied.
    pub bindings: Vec<Value>,
    pub compatibility_date: String,
    pub compatibility_flags: Vec<Value>,
    pub tags: Vec<Value>,
    pub etag: String,
    pub created_on: String,
    pub modified_on: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Route {
    pub id: String,
    pub zone_id: String,
    pub pattern: String,
    pub script: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CustomHostname {
    pub id: String,
    pub zone_id: String,
    pub hostname: String,
    pub created_at: String,
    pub ssl_id: String,
    pub ssl_method: String,
    pub ssl_type: String,
    pub ssl_settings: Value,
    pub custom_metadata: Option<Value>,
    pub ownership_value: String,
    pub http_body: String,
    pub txt_value: String,
    /// GETs seen since creation (or since the last PATCH with `ssl`).
    pub gets: u32,
    /// Ownership was proven once (the hostname was seen active): a PATCH that restarts
    /// certificate validation leaves the hostname itself active.
    #[serde(default)]
    pub ownership_verified: bool,
    /// Fields a test forced through `/__emulator/custom_hostnames/{hostname}` (or
    /// `Emulator::force_custom_hostname`), merged over the rendered answer: top-level keys replace,
    /// `ssl` is merged one level deep. A PATCH with `ssl` drops the forced `ssl` part.
    #[serde(default)]
    pub forced: Option<Value>,
}

/// The zone's custom hostname quota (API reference `custom_hostnames/subresources/quota`):
/// `allocated` is the soft limit (billed beyond it), `hard_cap` the point where creates are
/// refused.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostnameQuota {
    pub allocated: u64,
    pub hard_cap: u64,
}

impl Default for HostnameQuota {
    /// The plans' numbers (cloudflare-docs `plans/index.json`, `ssl.z_custom_hostnames`): 100
    /// included, at most 50,000 outside Enterprise.
    fn default() -> Self {
        HostnameQuota {
            allocated: 100,
            hard_cap: 50_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FallbackOrigin {
    pub origin: String,
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

impl State {
    /// Loads the state file; a missing file is an empty state.
    pub fn load(path: &Path) -> io::Result<State> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e),
        }
    }

    /// A copy of the persisted fields (not uploads, rate-limit bookkeeping or `dirty`), for
    /// saving outside the state lock.
    pub fn snapshot(&self) -> State {
        State {
            tokens: self.tokens.clone(),
            buckets: self.buckets.clone(),
            scripts: self.scripts.clone(),
            routes: self.routes.clone(),
            custom_hostnames: self.custom_hostnames.clone(),
            fallback_origins: self.fallback_origins.clone(),
            ..State::default()
        }
    }

    /// Saves atomically: write a temporary file beside it, then rename.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let bytes = serde_json::to_vec(self).map_err(io::Error::other)?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp-{}", std::process::id()));
        let tmp = std::path::PathBuf::from(tmp);
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)
    }

    pub fn bucket(&self, jurisdiction: &str, name: &str) -> Option<&Bucket> {
        self.buckets
            .iter()
            .find(|b| b.jurisdiction == jurisdiction && b.name == name)
    }

    /// Whether the bucket holds objects or unfinished multipart uploads: then R2 refuses to delete
    /// it (TS SDK `BucketDeleteParams` doc comment, docs/cloudflare-api.md §7), over REST and S3 alike.
    pub fn bucket_in_use(&self, jurisdiction: &str, name: &str) -> bool {
        self.bucket(jurisdiction, name)
            .is_some_and(|b| !b.objects.is_empty())
            || self
                .uploads
                .values()
                .any(|u| u.jurisdiction == jurisdiction && u.bucket == name)
    }

    pub fn bucket_mut(&mut self, jurisdiction: &str, name: &str) -> Option<&mut Bucket> {
        self.buckets
            .iter_mut()
            .find(|b| b.jurisdiction == jurisdiction && b.name == name)
    }
}

/// A marker ending in this character means "after every key starting with what precedes it": the
/// resume point after a common prefix, in both the REST cursor and the S3 continuation token.
pub const PREFIX_MARK: char = '\u{10FFFF}';

/// One page of a listing: the keys and common prefixes, in order.
pub struct Walk<'b> {
    pub contents: Vec<(&'b String, &'b Object)>,
    pub prefixes: Vec<String>,
    pub truncated: bool,
    /// Resume after this (a key, or a common prefix followed by [`PREFIX_MARK`]).
    pub next: Option<String>,
}

impl Bucket {
    /// The one listing walk of both APIs (REST `…/objects` and S3 ListObjects V1/V2): keys in
    /// order from just after `after` (or from `prefix`), grouped by `delimiter`, at most `max`
    /// entries (0 gives an empty, untruncated page, as s3-tests `test_bucket_list_maxkeys_zero`
    /// expects). It uses the `BTreeMap` range from the start point, never a scan from the first
    /// key, and jumps over each common prefix's keys. A common prefix that sorts at or before
    /// `after` is skipped whole, not emitted again: a V1 `marker` / V2 `start-after` / REST
    /// `start_after` equal to a prefix resumes after it (s3-tests
    /// `test_bucket_list_delimiter_prefix`).
    pub fn walk(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max: usize,
    ) -> Walk<'_> {
        use std::ops::Bound;
        let mut out = Walk {
            contents: Vec::new(),
            prefixes: Vec::new(),
            truncated: false,
            next: None,
        };
        if max == 0 {
            return out;
        }
        let mut from: Bound<String> = match after {
            Some(a) if a >= prefix => Bound::Excluded(a.to_string()),
            _ => Bound::Included(prefix.to_string()),
        };
        'outer: loop {
            let range = self
                .objects
                .range::<String, _>((from.clone(), Bound::Unbounded));
            for (key, obj) in range {
                if !key.starts_with(prefix) {
                    break 'outer;
                }
                let common = delimiter.and_then(|d| {
                    key[prefix.len()..]
                        .find(d)
                        .map(|i| key[..prefix.len() + i + d.len()].to_string())
                });
                if let Some(common) = common {
                    let marker = format!("{common}{PREFIX_MARK}");
                    from = Bound::Excluded(marker.clone());
                    if after.is_some_and(|a| common.as_str() <= a) {
                        continue 'outer;
                    }
                    if out.contents.len() + out.prefixes.len() >= max {
                        out.truncated = true;
                        break 'outer;
                    }
                    out.prefixes.push(common);
                    out.next = Some(marker);
                    continue 'outer;
                }
                if out.contents.len() + out.prefixes.len() >= max {
                    out.truncated = true;
                    break 'outer;
                }
                out.contents.push((key, obj));
                out.next = Some(key.clone());
            }
            break;
        }
        out
    }
}

/// Bytes as a hex string in the state file.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hash is the S3 Secret Access Key: `{:?}` of a token (or of a state) must not show it.
    #[test]
    fn debug_redacts_the_s3_secret() {
        let token = Token {
            id: "id".into(),
            name: "n".into(),
            owner: TokenOwner::User,
            value_sha256: "deadbeef".repeat(8),
            prefixed: true,
            status: "active".into(),
            issued_on: String::new(),
            modified_on: String::new(),
            last_used_on: None,
            not_before: None,
            expires_on: None,
            policies: Vec::new(),
            condition: None,
        };
        let state = State {
            tokens: vec![token.clone()],
            ..State::default()
        };
        for shown in [format!("{token:?}"), format!("{state:?}")] {
            assert!(!shown.contains("deadbeef"), "{shown}");
            assert!(shown.contains("REDACTED"));
        }
    }
}
