//! The manifest, format 2 (docs/storage-layout.md): immutable deploy copies and their shards, the
//! Route the Worker needs to serve one deploy, and the tenant's small head that names the live
//! Route, the kept deploys and the previews.
//!
//! Format 3 (what cfsetup writes) makes the manifest a Merkle tree: a shard is stored once under
//! the SHA-256 of its bytes (`shards/<hash>.json`, immutable, shared by every deploy and tenant
//! that has the same shard), a Route lists its shards' hashes (`shard_hashes`), and a deploy copy
//! is the Route alone. A one-file change then writes one shard, one small copy and the head.
//! Format 2 (per-deploy shards `sites/<t>/deploys/<id>/shards/<k>.json` and a copy with every
//! file) is still read, and its next deploy writes format 3. A format 1 manifest (the whole site
//! inline in `sites/<tenant>/manifest.json`, cfsetup 0.1) is still read, as [`LegacyManifest`],
//! so gc and the commands treat an old tenant correctly.
//!
//! Imports only `site::walk`; never storage, commands or the network.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::walk::SiteFile;
use crate::names::Tenant;

/// What cfsetup writes: content-addressed shards (docs/storage-layout.md "Shards").
pub const FORMAT: u32 = 3;
/// Per-deploy shards and a copy with every file; still read, upgraded by the next deploy.
pub const FORMAT_2: u32 = 2;
pub const LEGACY_FORMAT: u32 = 1;
/// Deploys kept for rollback, the live one included.
pub const KEPT_DEPLOYS: usize = 10;
/// Previews a head holds at most; the oldest is dropped.
pub const MAX_PREVIEWS: usize = 20;
/// Paths per shard the shard count aims at (format 2 wrote 512). A one-file change rewrites one
/// shard, so its size is the change's cost; a cold page view reads one shard, so it is also
/// the router's parse cost. At ~130 bytes an entry, 64 paths make a ~8 KB shard; measured in
/// worker/bench/run.mjs (docs/storage-layout.md "Shard size").
pub const FILES_PER_SHARD: usize = 64;
/// The most bytes a head (`sites/<tenant>/manifest.json`) may have: 1 MiB. The shared router
/// reads and parses the head on every request it cannot answer from its cache, so one tenant's
/// head bounds every tenant's latency and the isolate's memory (docs/storage-layout.md "Size
/// bounds"). cfsetup never writes a larger one; worker/router.js refuses to parse one.
pub const MAX_HEAD_BYTES: usize = 1_048_576;
/// The most bytes one Route (rules and 404 pages; compact JSON) may have: 512 KiB, so a head
/// holds the live deploy and at least one preview.
pub const MAX_ROUTE_BYTES: usize = 512 * 1024;
/// The most shards cfsetup writes in format 3: every Route in the head lists its shards'
/// hashes (67 bytes each), and the head is bounded by 1 MiB with up to 21 Routes (live and 20
/// previews): 256 × 67 × 21 ≈ 360 KB.
pub const MAX_SHARDS_V3: u32 = 256;

/// One path of the site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub hash: String,
    pub size: u64,
    pub content_type: String,
}

pub type Files = BTreeMap<String, FileEntry>;

/// Whether `s` is a SHA-256 in 64 lowercase hex characters.
pub fn is_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `p` is a manifest path: starts with `/`, no empty, `.` or `..` segment.
pub fn is_path(p: &str) -> bool {
    p.strip_prefix('/').is_some_and(|rest| {
        rest.split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('\0'))
    })
}

/// Whether `s` looks like a deploy id: `YYYYMMDDTHHMMSSZ-xxxxxxxx` (8 lowercase hex).
pub fn is_deploy_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 25
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && b[16] == b'-'
        && b[17..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

/// The files map of a walked site.
pub fn files_map(files: &[SiteFile]) -> Files {
    files
        .iter()
        .map(|f| {
            (
                f.rel_url.clone(),
                FileEntry {
                    hash: f.hash.clone(),
                    size: f.size,
                    content_type: f.content_type.clone(),
                },
            )
        })
        .collect()
}

/// 32-bit FNV-1a (offset basis 2166136261, prime 16777619).
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 2_166_136_261;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(16_777_619);
    }
    h
}

/// `max(1, next_power_of_two(ceil(files / 64)))`, at most 256.
pub fn shard_count(files: usize) -> u32 {
    let want = files.div_ceil(FILES_PER_SHARD).max(1);
    let n = u32::try_from(want.next_power_of_two()).unwrap_or(MAX_SHARDS_V3);
    n.min(MAX_SHARDS_V3)
}

/// The key of a content-addressed shard: `shards/<sha256 of its bytes>.json`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The shard key cfsetup writes: `"stem"` (docs/storage-layout.md "Route").
pub const SHARD_KEY: &str = "stem";

/// A path's stem: a trailing `/index.html` dropped (`/docs/index.html` → `/docs`, `/index.html`
/// → `/`), else a trailing `.html`, else the path. `/about`, `/about.html` and
/// `/about/index.html` share a stem, so the Worker finds all three in one shard.
pub fn stem(path: &str) -> &str {
    if let Some(p) = path.strip_suffix("/index.html") {
        if p.is_empty() {
            "/"
        } else {
            p
        }
    } else if let Some(p) = path.strip_suffix(".html") {
        p
    } else {
        path
    }
}

/// The shard a path belongs to, by its stem (`shard_key: "stem"`).
pub fn shard_of(path: &str, shards: u32) -> u32 {
    fnv1a32(stem(path).as_bytes()) & (shards - 1)
}

/// How a path that matches no file is answered (`--not-found`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotFound {
    /// `404` with a top-level `/404.html`, else `spa` with `/index.html`, else `none`.
    Auto,
    Spa,
    Page404,
    None,
}

impl NotFound {
    /// The mode stored in the Route for this site.
    pub fn resolve(self, files: &Files) -> &'static str {
        match self {
            NotFound::Spa => "spa",
            NotFound::Page404 => "404",
            NotFound::None => "none",
            NotFound::Auto if files.contains_key("/404.html") => "404",
            NotFound::Auto if files.contains_key("/index.html") => "spa",
            NotFound::Auto => "none",
        }
    }
}

/// What a deploy serves besides its files: `_redirects`, `_headers`, the not-found mode.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub not_found: &'static str,
    /// `{"static": {…}, "dynamic": […]}` (the Route's shape).
    pub redirects: Value,
    /// `[{pattern, set, unset}, …]`.
    pub headers: Value,
}

impl Rules {
    pub fn none(not_found: &'static str) -> Self {
        Rules {
            not_found,
            redirects: empty_redirects(),
            headers: Value::Array(Vec::new()),
        }
    }
}

pub fn empty_redirects() -> Value {
    serde_json::json!({"static": {}, "dynamic": []})
}

fn default_redirects() -> Value {
    empty_redirects()
}

fn default_headers() -> Value {
    Value::Array(Vec::new())
}

fn default_not_found() -> String {
    "none".into()
}

/// What the Worker needs to serve one deploy; embedded in the head.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    pub deploy_id: String,
    pub created_at: String,
    pub digest: String,
    pub files: usize,
    pub bytes: u64,
    pub shards: u32,
    /// `"stem"`; absent in older Routes, which means `"path"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_key: Option<String>,
    /// Format 3: shard `k` is `shards/<shard_hashes[k]>.json`. Absent in a format 2 Route,
    /// whose shards are `sites/<t>/deploys/<id>/shards/<k>.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_hashes: Option<Vec<String>>,
    #[serde(default = "default_not_found")]
    pub not_found: String,
    #[serde(default)]
    pub not_found_pages: Vec<String>,
    #[serde(default = "default_redirects")]
    pub redirects: Value,
    #[serde(default = "default_headers")]
    pub headers: Value,
    /// A preview's end (RFC 3339): after it the router answers 404 and the next gc drops the
    /// preview from the head. Only ever set on a preview's Route in the head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// A protected preview's password hash (basic auth). Only ever set on a Route in
    /// `protected_previews`, which routers older than this field never read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protect: Option<Protect>,
}

/// A preview's password, as the router checks it: PBKDF2-HMAC-SHA256 of the password's UTF-8
/// bytes with `salt`, `iterations` rounds, 32 bytes out (`hash`); salt and hash in lowercase hex.
/// Web Crypto's `deriveBits({name: "PBKDF2", hash: "SHA-256", salt, iterations}, key, 256)`
/// computes the same. `iterations` is at most 100,000, the most the Workers runtime accepts
/// (docs/cloudflare-api.md §8; cloudflare/workerd#1346, `crypto-impl-pbkdf2.c++`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protect {
    /// `pbkdf2-sha256`.
    pub kdf: String,
    pub iterations: u32,
    pub salt: String,
    pub hash: String,
}

/// The head's note of a retained index: when its last entry ends, and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retained {
    /// The latest `until` of its entries (RFC 3339): after it the router never reads the index.
    pub until: String,
    pub files: usize,
    /// The earlier deploys its entries come from (at most [`MAX_RETAINED_DEPLOYS`]).
    pub deploys: usize,
}

/// The most earlier deploys a retained index draws from.
pub const MAX_RETAINED_DEPLOYS: usize = 10;

/// `sites/<t>/deploys/<live id>/retained.json`: path → the blob an earlier deploy served there,
/// until when, and from which deploy. Immutable, written before the switch that names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RetainedIndex {
    pub files: BTreeMap<String, RetainedEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetainedEntry {
    pub hash: String,
    pub size: u64,
    pub content_type: String,
    pub until: String,
    pub from: String,
}

impl RetainedIndex {
    /// The index for a switch from `previous` (with its own index `carried`) to `next`: every
    /// content-hashed path `next` lacks, from `previous` until `now + window`, and from
    /// `carried` while its window lasts, drawing on at most [`MAX_RETAINED_DEPLOYS`] deploys
    /// (the newest). A path `next` has is never retained: the live file wins.
    pub fn for_switch(
        next: &Files,
        previous: &DeployCopy,
        carried: Option<&RetainedIndex>,
        now: SystemTime,
        window: std::time::Duration,
    ) -> Self {
        let until = humantime::format_rfc3339_seconds(now + window).to_string();
        let now_s = humantime::format_rfc3339_seconds(now).to_string();
        let mut files: BTreeMap<String, RetainedEntry> = BTreeMap::new();
        if let Some(c) = carried {
            for (p, e) in &c.files {
                // RFC 3339 in UTC to the second compares as text.
                if e.until > now_s && !next.contains_key(p) && is_content_hashed(p) {
                    files.insert(p.clone(), e.clone());
                }
            }
        }
        for (p, e) in &previous.files {
            if !next.contains_key(p) && is_content_hashed(p) {
                files.insert(
                    p.clone(),
                    RetainedEntry {
                        hash: e.hash.clone(),
                        size: e.size,
                        content_type: e.content_type.clone(),
                        until: until.clone(),
                        from: previous.deploy_id.clone(),
                    },
                );
            }
        }
        let mut from: Vec<String> = files.values().map(|e| e.from.clone()).collect();
        from.sort_unstable_by(|a, b| b.cmp(a));
        from.dedup();
        if from.len() > MAX_RETAINED_DEPLOYS {
            let keep: BTreeSet<String> = from.into_iter().take(MAX_RETAINED_DEPLOYS).collect();
            files.retain(|_, e| keep.contains(&e.from));
        }
        RetainedIndex { files }
    }

    pub fn summary(&self) -> Option<Retained> {
        let until = self.files.values().map(|e| e.until.clone()).max()?;
        let deploys: BTreeSet<&str> = self.files.values().map(|e| e.from.as_str()).collect();
        Some(Retained {
            until,
            files: self.files.len(),
            deploys: deploys.len(),
        })
    }

    pub fn hashes(&self) -> BTreeSet<&str> {
        self.files.values().map(|e| e.hash.as_str()).collect()
    }
}

/// Whether a path names a file whose name carries a content hash, as bundlers name them: a
/// `.`-separated segment of at least 8 hex digits (`app.4f9c2a1b.js`), or a tail after a `-` of
/// at least 8 of `[A-Za-z0-9_-]` with a digit or both cases (`index-DiwrgTda.js`, as Vite and
/// Rollup name chunks), before the extension. A name such as `team-JohnSmith.png` matches too:
/// such a file, removed, stays served for the retention window (`--no-retain` avoids it). HTML never counts. The router's
/// `isSkewAsset` (worker/src/responses.js) is the same rule.
pub fn is_content_hashed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let Some(dot) = name.rfind('.') else {
        return false;
    };
    if dot == 0 {
        return false;
    }
    let (stem, ext) = (&name[..dot], &name[dot + 1..]);
    if ext.eq_ignore_ascii_case("html") || ext.eq_ignore_ascii_case("htm") {
        return false;
    }
    let hex = |s: &str| s.len() >= 8 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if stem.split('.').skip(1).any(hex) {
        return true;
    }
    // Rollup and Rolldown hash in URL-safe base64 by default, so the hash itself may hold a `-`:
    // any tail after a `-` counts (rolldown.rs OutputOptions.hashCharacters).
    stem.match_indices('-')
        .filter(|(i, _)| *i > 0)
        .any(|(i, _)| {
            let seg = &stem[i + 1..];
            let word = seg.len() >= 8
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            let digit = seg.bytes().any(|b| b.is_ascii_digit());
            let cases = seg.bytes().any(|b| b.is_ascii_uppercase())
                && seg.bytes().any(|b| b.is_ascii_lowercase());
            word && (digit || cases)
        })
}

/// The iterations cfsetup uses: the Workers runtime's maximum.
pub const PROTECT_ITERATIONS: u32 = 100_000;

impl Protect {
    /// A fresh 16-byte salt and the hash of `password` with it.
    pub fn new(password: &str) -> Self {
        use rand::RngCore;
        let mut salt = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut salt);
        Self::with_salt(password, &salt, PROTECT_ITERATIONS)
    }

    pub fn with_salt(password: &str, salt: &[u8], iterations: u32) -> Self {
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), salt, iterations, &mut out);
        Protect {
            kdf: "pbkdf2-sha256".into(),
            iterations,
            salt: hex::encode(salt),
            hash: hex::encode(out),
        }
    }
}

/// A deploy copy `sites/<t>/deploys/<id>.json`. Immutable. In format 3 it is the Route (whose
/// `shard_hashes` name the files); a built copy also holds its files and its shards' bytes in
/// memory, which are never stored in the copy. In format 2 `files` is stored too.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployCopy {
    pub format: u32,
    pub tenant: Tenant,
    pub deploy_id: String,
    pub created_at: String,
    pub route: Route,
    #[serde(default)]
    pub files: Files,
    /// A built copy's shards: `(hash, bytes)` in shard order. Empty when parsed.
    #[serde(skip)]
    pub shard_bodies: Vec<(String, Vec<u8>)>,
}

/// What a format 3 copy stores.
#[derive(Serialize)]
struct CopyV3<'a> {
    format: u32,
    tenant: &'a str,
    deploy_id: &'a str,
    created_at: &'a str,
    route: &'a Route,
}

/// A shard: `shards/<hash>.json` (format 3) or `sites/<t>/deploys/<id>/shards/<k>.json` (2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shard {
    pub files: Files,
}

/// The SHA-256 of the canonical JSON of files + rules + not_found (keys sorted, compact).
pub fn digest(files: &Files, rules: &Rules) -> String {
    let canonical = serde_json::json!({
        "files": files,
        "headers": rules.headers,
        "not_found": rules.not_found,
        "redirects": rules.redirects,
    });
    hex::encode(Sha256::digest(
        serde_json::to_vec(&canonical).unwrap_or_default(),
    ))
}

fn stamp(created_at: &str) -> String {
    created_at
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect()
}

/// Every `…/404.html` path of the site, deepest first; the same depth in path order.
fn not_found_pages(files: &Files) -> Vec<String> {
    let mut pages: Vec<String> = files
        .keys()
        .filter(|p| p.ends_with("/404.html"))
        .cloned()
        .collect();
    pages.sort_by(|a, b| {
        let depth = |p: &str| p.matches('/').count();
        depth(b).cmp(&depth(a)).then(a.cmp(b))
    });
    pages
}

impl Route {
    /// Whether this Route (a preview's) has an end, `expires_at`, at or before `now`.
    pub fn is_expired(&self, now: SystemTime) -> bool {
        self.expires_at
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
            .is_some_and(|t| t <= now)
    }

    /// The Route [`DeployCopy::build`] makes of `files` and `rules`, with what needs hashing (the
    /// deploy id's hash part, the digest, the shard hashes) replaced by zeros of the same length:
    /// its JSON has the real Route's size exactly, without serialising and hashing every shard.
    /// For the size bound checked before any request.
    pub fn sized_like(files: &Files, rules: &Rules) -> Route {
        let created_at = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        let zeros = "0".repeat(64);
        let shards = shard_count(files.len());
        Route {
            deploy_id: format!("{}-{}", stamp(&created_at), &zeros[..8]),
            created_at,
            digest: zeros.clone(),
            files: files.len(),
            bytes: files.values().map(|e| e.size).sum(),
            shards,
            shard_key: Some(SHARD_KEY.to_string()),
            shard_hashes: Some(vec![zeros; shards as usize]),
            not_found: rules.not_found.to_string(),
            not_found_pages: not_found_pages(files),
            redirects: rules.redirects.clone(),
            headers: rules.headers.clone(),
            expires_at: None,
            protect: None,
        }
    }
}

impl DeployCopy {
    /// A new deploy made at `now`, never earlier than one second after `floor` (the newest deploy
    /// the head knows), so ids keep the order of the deploys even within one second.
    pub fn build(
        tenant: &Tenant,
        files: Files,
        rules: Rules,
        now: SystemTime,
        floor: Option<&str>,
    ) -> Self {
        let created_at = humantime::format_rfc3339_seconds(now).to_string();
        let digest = digest(&files, &rules);
        let deploy_id = format!("{}-{}", stamp(&created_at), &digest[..8]);
        let shards = shard_count(files.len());
        let not_found_pages = not_found_pages(&files);
        let shard_bodies: Vec<(String, Vec<u8>)> = split(&files, shards)
            .into_iter()
            .map(|s| {
                let bytes = s.to_bytes();
                (sha256_hex(&bytes), bytes)
            })
            .collect();
        let route = Route {
            deploy_id: deploy_id.clone(),
            created_at: created_at.clone(),
            digest,
            files: files.len(),
            bytes: files.values().map(|e| e.size).sum(),
            shards,
            shard_key: Some(SHARD_KEY.to_string()),
            shard_hashes: Some(shard_bodies.iter().map(|(h, _)| h.clone()).collect()),
            not_found: rules.not_found.to_string(),
            not_found_pages,
            redirects: rules.redirects,
            headers: rules.headers,
            expires_at: None,
            protect: None,
        };
        DeployCopy {
            format: FORMAT,
            tenant: tenant.clone(),
            deploy_id,
            created_at,
            route,
            files,
            shard_bodies,
        }
        .after(floor)
    }

    /// The same deploy, created at least a second after `floor` (the newest `created_at` the
    /// head names), so its id sorts after every deploy the head knows even when clocks differ;
    /// only the id and the time change (the shards and the digest do not depend on them).
    pub fn after(mut self, floor: Option<&str>) -> Self {
        let floor = floor
            .and_then(|p| humantime::parse_rfc3339(p).ok())
            .map(|t| t + std::time::Duration::from_secs(1));
        let now = humantime::parse_rfc3339(&self.created_at).ok();
        let Some(at) = floor.filter(|f| now.is_none_or(|n| *f > n)) else {
            return self;
        };
        let created_at = humantime::format_rfc3339_seconds(at).to_string();
        let deploy_id = format!("{}-{}", stamp(&created_at), &self.route.digest[..8]);
        self.route.deploy_id = deploy_id.clone();
        self.route.created_at = created_at.clone();
        self.deploy_id = deploy_id;
        self.created_at = created_at;
        self
    }

    /// The blobs named by this deploy's shards whose hashes are not in `old` (every blob when
    /// `old` is empty), read off its files and each file's shard ([`shard_of`]): no shard is
    /// rebuilt.
    pub fn blobs_outside(&self, old: &BTreeSet<&str>) -> BTreeSet<&str> {
        let n = self.route.shards;
        self.files
            .iter()
            .filter(|(p, _)| {
                self.shard_bodies
                    .get(shard_of(p, n) as usize)
                    .is_some_and(|(h, _)| !old.contains(h.as_str()))
            })
            .map(|(_, e)| e.hash.as_str())
            .collect()
    }

    /// Every shard, `0..route.shards`, empty ones included (the Worker reads the one its path
    /// hashes to and must find it).
    pub fn shards(&self) -> Vec<(u32, Shard)> {
        split(&self.files, self.route.shards)
            .into_iter()
            .zip(0..)
            .map(|(s, k)| (k, s))
            .collect()
    }

    /// Parses and checks a stored deploy copy of format 2 or 3.
    pub fn parse(bytes: &[u8], tenant: &str) -> Result<Self, String> {
        let c: DeployCopy =
            serde_json::from_slice(bytes).map_err(|e| format!("not a deploy copy: {e}"))?;
        match c.format {
            FORMAT_2 => {}
            FORMAT => check_route_v3(&c.route)?,
            n => return Err(format!("format {n} is not {FORMAT_2} or {FORMAT}")),
        }
        if c.tenant != tenant {
            return Err(format!("it names tenant {:?}, not {tenant:?}", c.tenant));
        }
        check_files(&c.files)?;
        if c.route.deploy_id != c.deploy_id {
            return Err("its route names another deploy".into());
        }
        Ok(c)
    }

    /// Format 3: the Route alone (the files are in the shards).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&CopyV3 {
            format: FORMAT,
            tenant: &self.tenant,
            deploy_id: &self.deploy_id,
            created_at: &self.created_at,
            route: &self.route,
        })
        .unwrap_or_default()
    }

    /// The blobs a copy names inline: every file of a built or format 2 copy; none of a parsed
    /// format 3 copy, whose blobs are named by its shards ([`Route::shard_hashes`]).
    pub fn hashes(&self) -> BTreeSet<&str> {
        self.files.values().map(|e| e.hash.as_str()).collect()
    }
}

/// The files split into `n` shards by [`shard_of`], empty ones included.
fn split(files: &Files, n: u32) -> Vec<Shard> {
    let mut out: Vec<Shard> = (0..n)
        .map(|_| Shard {
            files: BTreeMap::new(),
        })
        .collect();
    for (p, e) in files {
        out[shard_of(p, n) as usize]
            .files
            .insert(p.clone(), e.clone());
    }
    out
}

/// A format 3 Route names exactly `shards` shard hashes.
pub fn check_route_v3(route: &Route) -> Result<(), String> {
    match &route.shard_hashes {
        Some(h) if h.len() == route.shards as usize && h.iter().all(|h| is_hash(h)) => Ok(()),
        Some(_) => Err("its shard_hashes do not match its shards".into()),
        None => Err("its route has no shard_hashes".into()),
    }
}

impl Shard {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a stored shard; a content-addressed one must hash to `hash`.
    pub fn parse(bytes: &[u8], hash: Option<&str>) -> Result<Self, String> {
        if let Some(h) = hash {
            if sha256_hex(bytes) != h {
                return Err(format!("shards/{h}.json does not hash to its name"));
            }
        }
        let s: Shard = serde_json::from_slice(bytes).map_err(|e| format!("not a shard: {e}"))?;
        check_files(&s.files)?;
        Ok(s)
    }

    pub fn hashes(&self) -> BTreeSet<&str> {
        self.files.values().map(|e| e.hash.as_str()).collect()
    }
}

fn check_files(files: &Files) -> Result<(), String> {
    match files.iter().find(|(p, e)| !is_path(p) || !is_hash(&e.hash)) {
        Some((p, _)) => Err(format!("entry {p:?} has a bad path or hash")),
        None => Ok(()),
    }
}

/// A tenant's head `sites/<tenant>/manifest.json`, format 3 (format 2 parses into the same
/// struct: its Routes lack `shard_hashes`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Head {
    pub format: u32,
    pub tenant: Tenant,
    /// Always written (a preview is only added beside a live deploy); `Option` so a head that
    /// lacks it still parses, and is reported, instead of failing the whole run.
    pub live: Option<Route>,
    #[serde(default)]
    pub kept: Vec<String>,
    #[serde(default)]
    pub previews: BTreeMap<String, Route>,
    /// Previews behind a password. A map of their own so that a router older than `protect`
    /// never serves one (it does not know this map: 404), instead of serving it to anyone.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub protected_previews: BTreeMap<String, Route>,
    /// Skew protection: content-hashed files of earlier live deploys that the live one lacks,
    /// served for their window from `deploys/<live id>/retained.json` ([`RetainedIndex`]).
    /// Routers that predate it ignore it (no skew protection, nothing else changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained: Option<Retained>,
    pub updated_at: String,
    pub updated_by: String,
}

/// A format 1 manifest: the whole site inline (cfsetup 0.1's head and kept copies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyManifest {
    pub format: u32,
    pub tenant: Tenant,
    pub deploy_id: String,
    pub created_at: String,
    pub files: Files,
}

/// A stored head, of either format.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // one per tenant, short-lived
pub enum StoredHead {
    V2(Head),
    V1(LegacyManifest),
}

impl StoredHead {
    pub fn parse(bytes: &[u8], tenant: &str) -> Result<Self, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        match v.get("format").and_then(Value::as_u64) {
            Some(n @ (2 | 3)) => {
                let h: Head =
                    serde_json::from_value(v).map_err(|e| format!("not a format {n} head: {e}"))?;
                if h.tenant != tenant {
                    return Err(format!("it names tenant {:?}, not {tenant:?}", h.tenant));
                }
                // A format 3 head may still name format 2 Routes (a preview or a rollback target
                // deployed before the upgrade): only the hashes a Route has are checked.
                for r in h.live.iter().chain(h.all_previews().map(|(_, r)| r)) {
                    if r.shard_hashes.is_some() {
                        check_route_v3(r)?;
                    }
                }
                Ok(StoredHead::V2(h))
            }
            Some(1) => {
                let m: LegacyManifest = serde_json::from_value(v)
                    .map_err(|e| format!("not a format 1 manifest: {e}"))?;
                if m.tenant != tenant {
                    return Err(format!("it names tenant {:?}, not {tenant:?}", m.tenant));
                }
                check_files(&m.files)?;
                Ok(StoredHead::V1(m))
            }
            Some(n) => Err(format!("format {n} is not supported")),
            None => Err("it has no format".into()),
        }
    }

    /// The live deploy's id, whichever the format.
    pub fn live_id(&self) -> Option<&str> {
        match self {
            StoredHead::V2(h) => h.live.as_ref().map(|r| r.deploy_id.as_str()),
            StoredHead::V1(m) => Some(&m.deploy_id),
        }
    }
}

impl Head {
    /// The head after switching `live` to `route` (a deploy, or a rollback to a kept id): `kept`
    /// gets the id at its front, the rest newest first, at most [`KEPT_DEPLOYS`]. Returns the
    /// ids that fell out of `kept` too (gc deletes their copies).
    pub fn with_live(
        tenant: &Tenant,
        old: Option<&Head>,
        route: Route,
        by: String,
        now: SystemTime,
    ) -> (Head, Vec<String>) {
        // The new live one at the front whatever its age, the rest newest first by id.
        let mut rest: Vec<String> = old.map(|h| h.kept.clone()).unwrap_or_default();
        rest.retain(|id| *id != route.deploy_id);
        rest.sort_unstable_by(|a, b| b.cmp(a));
        let mut kept = vec![route.deploy_id.clone()];
        kept.extend(rest);
        let dropped: Vec<String> = kept.iter().skip(KEPT_DEPLOYS).cloned().collect();
        kept.truncate(KEPT_DEPLOYS);
        let head = Head {
            format: FORMAT,
            tenant: tenant.clone(),
            live: Some(route),
            kept,
            previews: old.map(|h| h.previews.clone()).unwrap_or_default(),
            protected_previews: old
                .map(|h| h.protected_previews.clone())
                .unwrap_or_default(),
            // A rollback serves exactly the deploy it names; deploy-site sets this after.
            retained: None,
            updated_at: humantime::format_rfc3339_seconds(now).to_string(),
            updated_by: by,
        };
        (head, dropped)
    }

    /// The head with `previews[name]` = `route` and live untouched; the oldest previews beyond
    /// [`MAX_PREVIEWS`] are dropped (their names returned).
    pub fn with_preview(
        tenant: &Tenant,
        old: Option<&Head>,
        name: &str,
        route: Route,
        by: String,
        now: SystemTime,
    ) -> (Head, Vec<String>) {
        let mut head = old.cloned().unwrap_or(Head {
            format: FORMAT,
            tenant: tenant.clone(),
            live: None,
            kept: Vec::new(),
            previews: BTreeMap::new(),
            protected_previews: BTreeMap::new(),
            retained: None,
            updated_at: String::new(),
            updated_by: String::new(),
        });
        // A name is in one map only: the new deploy's protection decides which.
        head.remove_preview(name);
        if route.protect.is_some() {
            head.protected_previews.insert(name.to_string(), route);
        } else {
            head.previews.insert(name.to_string(), route);
        }
        let mut dropped = Vec::new();
        while head.previews.len() + head.protected_previews.len() > MAX_PREVIEWS {
            let oldest = head
                .all_previews()
                .filter(|(n, _)| n.as_str() != name)
                .min_by(|a, b| a.1.created_at.cmp(&b.1.created_at))
                .map(|(n, _)| n.clone());
            match oldest {
                Some(n) => {
                    head.remove_preview(&n);
                    dropped.push(n);
                }
                None => break,
            }
        }
        head.format = FORMAT;
        head.updated_at = humantime::format_rfc3339_seconds(now).to_string();
        head.updated_by = by;
        (head, dropped)
    }

    /// Compact JSON: the head is read on every request, and its size is bounded
    /// ([`MAX_HEAD_BYTES`]); indentation would spend that bound on spaces.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Drops the oldest previews (never `keep`) until the head fits in [`MAX_HEAD_BYTES`];
    /// returns their names, oldest first. A head that does not fit even then is left as is (the
    /// write refuses it).
    pub fn shed_previews(&mut self, keep: Option<&str>) -> Vec<String> {
        let mut shed = Vec::new();
        while self.to_bytes().len() > MAX_HEAD_BYTES {
            let oldest = self
                .previews
                .iter()
                .filter(|(n, _)| Some(n.as_str()) != keep)
                .min_by(|a, b| a.1.created_at.cmp(&b.1.created_at).then(a.0.cmp(b.0)))
                .map(|(n, _)| n.clone());
            match oldest {
                Some(n) => {
                    self.previews.remove(&n);
                    shed.push(n);
                }
                None => break,
            }
        }
        shed
    }

    /// Every preview, protected or not, by name.
    pub fn all_previews(&self) -> impl Iterator<Item = (&String, &Route)> {
        self.previews.iter().chain(self.protected_previews.iter())
    }

    /// The preview called `name`, protected or not.
    pub fn preview(&self, name: &str) -> Option<&Route> {
        self.previews
            .get(name)
            .or_else(|| self.protected_previews.get(name))
    }

    /// Removes the preview called `name`; whether there was one.
    pub fn remove_preview(&mut self, name: &str) -> bool {
        let a = self.previews.remove(name).is_some();
        let b = self.protected_previews.remove(name).is_some();
        a || b
    }

    /// The previews whose `expires_at` is at or before `now`.
    pub fn expired_previews(&self, now: SystemTime) -> Vec<String> {
        self.all_previews()
            .filter(|(_, r)| r.is_expired(now))
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Every deploy id this head names: `live`, `kept`, every preview.
    pub fn named_ids(&self) -> BTreeSet<&str> {
        let mut out: BTreeSet<&str> = self.kept.iter().map(String::as_str).collect();
        out.extend(self.live.iter().map(|r| r.deploy_id.as_str()));
        out.extend(self.all_previews().map(|(_, r)| r.deploy_id.as_str()));
        out
    }

    /// The newest `created_at` the head knows, the floor for the next deploy id.
    pub fn newest_created_at(&self) -> Option<&str> {
        self.live
            .iter()
            .chain(self.previews.values())
            .chain(self.protected_previews.values())
            .map(|r| r.created_at.as_str())
            .max()
    }
}

impl LegacyManifest {
    pub fn parse(bytes: &[u8], tenant: &str) -> Result<Self, String> {
        match StoredHead::parse(bytes, tenant)? {
            StoredHead::V1(m) => Ok(m),
            StoredHead::V2(_) => Err("a format 2 head, not a format 1 manifest".into()),
        }
    }

    pub fn hashes(&self) -> BTreeSet<&str> {
        self.files.values().map(|e| e.hash.as_str()).collect()
    }
}

/// The time a deploy id was made, as `2026-11-28 01:02:03Z`, for listings.
pub fn deploy_time(deploy_id: &str) -> Option<String> {
    let s = deploy_id.get(..16)?;
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if !(digits(0..8) && b[8] == b'T' && digits(9..15) && b[15] == b'Z') {
        return None;
    }
    Some(format!(
        "{}-{}-{} {}:{}:{}Z",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[9..11],
        &s[11..13],
        &s[13..15]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> crate::names::Tenant {
        crate::names::Tenant::new("acme").unwrap()
    }
    use std::time::{Duration, UNIX_EPOCH};

    fn entry(hash: char, size: u64) -> FileEntry {
        FileEntry {
            hash: hash.to_string().repeat(64),
            size,
            content_type: "text/html; charset=utf-8".into(),
        }
    }

    fn t0() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_795_827_723) // 2026-11-28T01:02:03Z
    }

    #[test]
    fn a_route_sized_like_has_the_built_route_s_size() {
        let mut files: Files = Files::new();
        for i in 0..3000 {
            files.insert(format!("/p{i}/404.html"), entry('c', i));
        }
        let built = DeployCopy::build(&acme(), files.clone(), Rules::none("404"), t0(), None);
        let sized = Route::sized_like(&files, &Rules::none("404"));
        let len = |r: &Route| serde_json::to_vec(r).unwrap().len();
        assert!(built.route.shards > 1);
        assert_eq!(len(&sized), len(&built.route));
    }

    #[test]
    fn deploy_ids_sort_by_time_and_depend_on_the_files() {
        let files: Files = [("/index.html".to_string(), entry('a', 5))].into();
        let c = DeployCopy::build(&acme(), files.clone(), Rules::none("spa"), t0(), None);
        assert_eq!(c.created_at, "2026-11-28T01:02:03Z");
        assert!(
            c.deploy_id.starts_with("20261128T010203Z-"),
            "{}",
            c.deploy_id
        );
        assert!(is_deploy_id(&c.deploy_id));
        assert_eq!(&c.deploy_id[17..], &c.route.digest[..8]);
        let mut other = files.clone();
        other.insert("/a.html".into(), entry('b', 1));
        let o = DeployCopy::build(&acme(), other, Rules::none("spa"), t0(), None);
        assert_ne!(o.deploy_id, c.deploy_id);
        let later = DeployCopy::build(
            &acme(),
            files,
            Rules::none("spa"),
            t0(),
            Some(&c.created_at),
        );
        assert!(later.deploy_id > c.deploy_id);
        assert_eq!(
            deploy_time(&c.deploy_id).as_deref(),
            Some("2026-11-28 01:02:03Z")
        );
    }

    #[test]
    fn fnv1a_and_shards_follow_the_document() {
        // Reference values of 32-bit FNV-1a.
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
        assert_eq!(shard_count(0), 1);
        assert_eq!(shard_count(64), 1);
        assert_eq!(shard_count(65), 2);
        assert_eq!(shard_count(1200), 32);
        assert_eq!(shard_count(4000), 64);
        assert_eq!(shard_count(10_000_000), 256);
        assert_eq!(stem("/docs/index.html"), "/docs");
        assert_eq!(stem("/index.html"), "/");
        assert_eq!(stem("/about.html"), "/about");
        assert_eq!(stem("/app.js"), "/app.js");
        assert_eq!(
            shard_of("/about.html", 64),
            shard_of("/about/index.html", 64)
        );
        assert_eq!(shard_of("/about", 64), shard_of("/about.html", 64));
        let files: Files = (0..1200)
            .map(|i| (format!("/f{i}.html"), entry('a', 1)))
            .collect();
        let c = DeployCopy::build(&acme(), files, Rules::none("none"), t0(), None);
        let shards = c.shards();
        assert_eq!(shards.len(), 32);
        assert_eq!(
            shards.iter().map(|(_, s)| s.files.len()).sum::<usize>(),
            1200
        );
        for (k, s) in &shards {
            assert!(s.files.keys().all(|p| shard_of(p, 32) == *k));
        }
        // Each shard is stored under the SHA-256 of its bytes, and the Route lists them in order.
        let hashes = c.route.shard_hashes.clone().unwrap();
        assert_eq!(hashes.len(), 32);
        for ((k, s), (h, b)) in shards.iter().zip(&c.shard_bodies) {
            assert_eq!(*b, s.to_bytes());
            assert_eq!(*h, sha256_hex(b));
            assert_eq!(hashes[*k as usize], *h);
            assert_eq!(Shard::parse(b, Some(h)).unwrap(), *s);
        }
        assert!(Shard::parse(&c.shard_bodies[0].1, Some(&"0".repeat(64))).is_err());
    }

    #[test]
    fn the_blobs_outside_some_shards_are_those_of_the_others() {
        let files: Files = (0..300)
            .map(|i| {
                let e = FileEntry {
                    hash: format!("{i:064x}"),
                    size: 1,
                    content_type: "text/html".into(),
                };
                (format!("/f{i}.html"), e)
            })
            .collect();
        let c = DeployCopy::build(&acme(), files, Rules::none("none"), t0(), None);
        let shards = c.shards();
        let hashes = c.route.shard_hashes.clone().unwrap();
        let one: BTreeSet<&str> = [hashes[0].as_str()].into();
        let rest: BTreeSet<&str> = shards[1..].iter().flat_map(|(_, s)| s.hashes()).collect();
        assert_eq!(c.blobs_outside(&one), rest);
        assert_eq!(c.blobs_outside(&BTreeSet::new()).len(), 300);
        let all: BTreeSet<&str> = hashes.iter().map(String::as_str).collect();
        assert!(c.blobs_outside(&all).is_empty());
    }

    #[test]
    fn not_found_auto_and_pages() {
        let mut files: Files = [("/index.html".to_string(), entry('a', 5))].into();
        assert_eq!(NotFound::Auto.resolve(&files), "spa");
        files.insert("/blog/404.html".into(), entry('b', 1));
        files.insert("/404.html".into(), entry('b', 1));
        assert_eq!(NotFound::Auto.resolve(&files), "404");
        assert_eq!(NotFound::None.resolve(&files), "none");
        let c = DeployCopy::build(&acme(), files, Rules::none("404"), t0(), None);
        assert_eq!(c.route.not_found_pages, ["/blog/404.html", "/404.html"]);
        assert_eq!(NotFound::Auto.resolve(&Files::new()), "none");
    }

    #[test]
    fn parse_checks_format_tenant_paths_and_hashes() {
        let files: Files = [("/index.html".to_string(), entry('a', 5))].into();
        let c = DeployCopy::build(&acme(), files, Rules::none("spa"), t0(), None);
        let bytes = c.to_bytes();
        // A format 3 copy is the Route alone: the files are in the shards.
        let parsed = DeployCopy::parse(&bytes, "acme").unwrap();
        assert_eq!(parsed.format, FORMAT);
        assert_eq!(parsed.route, c.route);
        assert!(parsed.files.is_empty());
        assert!(!String::from_utf8_lossy(&bytes).contains("/index.html"));
        assert!(DeployCopy::parse(&bytes, "other").is_err());
        let mut bad = c.clone();
        bad.route.shard_hashes = Some(vec![]);
        assert!(DeployCopy::parse(&bad.to_bytes(), "acme").is_err());
        // Format 2 copies (files inline) still parse, and are checked.
        let v2 = |files: &Files| {
            let mut r = c.route.clone();
            r.shard_hashes = None;
            serde_json::to_vec(&serde_json::json!({"format": 2, "tenant": "acme",
                "deploy_id": c.deploy_id, "created_at": c.created_at, "route": r, "files": files}))
            .unwrap()
        };
        let old = DeployCopy::parse(&v2(&c.files), "acme").unwrap();
        assert_eq!(old.files, c.files);
        let mut bad = c.files.clone();
        bad.insert("/../x".into(), entry('a', 1));
        assert!(DeployCopy::parse(&v2(&bad), "acme").is_err());
        let mut bad = c.files.clone();
        bad.insert("/x".into(), entry('G', 1));
        assert!(DeployCopy::parse(&v2(&bad), "acme").is_err());
        assert!(DeployCopy::parse(b"{}", "acme").is_err());
    }

    #[test]
    fn heads_keep_ten_newest_first_and_previews_twenty() {
        let mut head: Option<Head> = None;
        let mut all = Vec::new();
        for i in 0..12u64 {
            let files: Files = [(format!("/{i}.html"), entry('a', 1))].into();
            let c = DeployCopy::build(
                &acme(),
                files,
                Rules::none("none"),
                t0() + Duration::from_secs(i),
                None,
            );
            all.push(c.deploy_id.clone());
            let (h, dropped) = Head::with_live(
                &acme(),
                head.as_ref(),
                c.route,
                "t".into(),
                SystemTime::now(),
            );
            if i == 10 {
                assert_eq!(dropped, [all[0].clone()]);
            }
            head = Some(h);
        }
        let h = head.unwrap();
        assert_eq!(h.kept.len(), 10);
        assert_eq!(h.kept[0], all[11]);
        assert_eq!(h.kept[9], all[2]);
        // A rollback to an old id puts it first, the rest stay newest first.
        let route = h.live.clone().map(|mut r| {
            r.deploy_id = all[5].clone();
            r
        });
        let (r, dropped) = Head::with_live(&acme(), Some(&h), route.unwrap(), "r".into(), t0());
        assert!(dropped.is_empty());
        assert_eq!(r.kept[0], all[5]);
        assert_eq!(r.kept[1], all[11]);
        let parsed = StoredHead::parse(&r.to_bytes(), "acme").unwrap();
        assert_eq!(parsed, StoredHead::V2(r.clone()));
        assert!(StoredHead::parse(&r.to_bytes(), "other").is_err());

        let mut p = r;
        for i in 0..22u64 {
            let mut route = p.live.clone().unwrap();
            route.created_at = format!("2026-11-28T01:{:02}:00Z", i);
            p = Head::with_preview(&acme(), Some(&p), &format!("p{i}"), route, "p".into(), t0()).0;
        }
        assert_eq!(p.previews.len(), MAX_PREVIEWS);
        assert!(!p.previews.contains_key("p0") && !p.previews.contains_key("p1"));
    }

    #[test]
    fn format_1_heads_are_still_read() {
        let legacy = serde_json::json!({
            "format": 1, "tenant": "acme", "deploy_id": "20261128T010203Z-1a2b3c4d",
            "created_at": "2026-11-28T01:02:03Z",
            "files": {"/index.html": {"hash": "a".repeat(64), "size": 1, "content_type": "text/html"}}
        });
        let bytes = serde_json::to_vec(&legacy).unwrap();
        let h = StoredHead::parse(&bytes, "acme").unwrap();
        assert_eq!(h.live_id(), Some("20261128T010203Z-1a2b3c4d"));
        assert!(StoredHead::parse(b"{\"format\":3}", "acme").is_err());
    }

    #[test]
    fn paths_hashes_and_ids() {
        assert!(is_path("/a/b.html"));
        for bad in ["a", "/", "//a", "/a/./b", "/a/../b", "/a/"] {
            assert!(!is_path(bad), "{bad}");
        }
        assert!(is_hash(&"0".repeat(64)));
        assert!(!is_hash(&"A".repeat(64)));
        assert!(is_deploy_id("20261128T010203Z-1a2b3c4d"));
        for bad in [
            "",
            "*",
            "../../etc",
            "20261128T010203Z-1A2B3C4D",
            "20261128",
        ] {
            assert!(!is_deploy_id(bad), "{bad}");
        }
    }

    #[test]
    fn content_hashed_names_are_the_bundlers_and_never_html() {
        for yes in [
            "/assets/app.4f9c2a1b.js",
            "/a/style.0123abcd.min.css",
            "/assets/index-DiwrgTda.js",
            "/assets/chunk-a1b2c3d4e5.mjs",
            "/img/logo-3f2a9c1b.png",
            "/assets/index-a-b3Xk9z.js",
        ] {
            assert!(is_content_hashed(yes), "{yes}");
        }
        for no in [
            "/index.html",
            "/app.4f9c2a1b.html",
            "/report.pdf",
            "/my-background.png",
            "/assets/app.js",
            "/a.4f9c2a1.js",
            "/.4f9c2a1b",
            "/4f9c2a1b",
        ] {
            assert!(!is_content_hashed(no), "{no}");
        }
    }

    #[test]
    fn the_retained_index_keeps_hashed_files_the_next_deploy_lacks_for_the_window() {
        let entry = |h: &str| FileEntry {
            hash: h.repeat(64),
            size: 1,
            content_type: "text/javascript".into(),
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut old = Files::new();
        old.insert("/index.html".into(), entry("a"));
        old.insert("/app.4f9c2a1b.js".into(), entry("b"));
        old.insert("/leak.pdf".into(), entry("c"));
        old.insert("/same.0123abcd.js".into(), entry("d"));
        let copy = DeployCopy::build(&acme(), old, Rules::none("none"), now, None);
        let mut next = Files::new();
        next.insert("/index.html".into(), entry("e"));
        next.insert("/same.0123abcd.js".into(), entry("d"));
        let day = Duration::from_secs(86_400);
        let idx = RetainedIndex::for_switch(&next, &copy, None, now, day);
        assert_eq!(idx.files.keys().collect::<Vec<_>>(), ["/app.4f9c2a1b.js"]);
        let until = humantime::format_rfc3339_seconds(now + day).to_string();
        assert_eq!(idx.files["/app.4f9c2a1b.js"].until, until);
        assert_eq!(idx.summary().unwrap().until, until);
        // Carried into the next switch while its window lasts, and not after it.
        let copy2 = DeployCopy::build(&acme(), next.clone(), Rules::none("none"), now, None);
        let mut third = Files::new();
        third.insert("/index.html".into(), entry("f"));
        let later = RetainedIndex::for_switch(&third, &copy2, Some(&idx), now + day / 2, day);
        assert!(later.files.contains_key("/app.4f9c2a1b.js"));
        assert!(later.files.contains_key("/same.0123abcd.js"));
        let after = RetainedIndex::for_switch(&third, &copy2, Some(&idx), now + day * 2, day);
        assert!(!after.files.contains_key("/app.4f9c2a1b.js"));
        // The next deploy's own file wins.
        let back = RetainedIndex::for_switch(&copy.files, &copy2, Some(&idx), now, day);
        assert!(!back.files.contains_key("/app.4f9c2a1b.js"));
    }
}
