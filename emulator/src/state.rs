//! The emulator's resources (tokens, R2 buckets and objects, Worker scripts, routes, custom
//! hostnames, fallback origins) and their persistence to a JSON state file.
//!
//! This module only holds data; the rules about who may change it and how live in `routes`.
//! Token secrets are kept as SHA-256 hashes, never as values.

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

/// Who owns a token: the seeded user (`cfut_`) or an account (`cfat_`), cloudflare-api.md §4.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum TokenOwner {
    User,
    Account(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Token {
    pub id: String,
    pub name: String,
    pub owner: TokenOwner,
    /// SHA-256 hex of the secret value; the value itself is never stored.
    pub value_sha256: String,
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

    pub fn bucket_mut(&mut self, jurisdiction: &str, name: &str) -> Option<&mut Bucket> {
        self.buckets
            .iter_mut()
            .find(|b| b.jurisdiction == jurisdiction && b.name == name)
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
