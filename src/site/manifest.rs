//! The manifest, format 1 (docs/storage-layout.md): which blob, size and content type each path
//! of a tenant's site has.
//!
//! The live manifest `sites/<tenant>/manifest.json` is the single switch of a deploy: the Worker
//! reads it, so writing it (last, after every blob) changes the whole site at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::walk::SiteFile;

pub const FORMAT: u32 = 1;

/// One path of the site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub hash: String,
    pub size: u64,
    pub content_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub tenant: String,
    pub deploy_id: String,
    pub created_at: String,
    /// Path (`/css/site.css`) to entry; a `BTreeMap`, so the JSON is sorted and stable.
    pub files: BTreeMap<String, FileEntry>,
}

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

/// The files map of a walked site.
pub fn files_map(files: &[SiteFile]) -> BTreeMap<String, FileEntry> {
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

impl Manifest {
    /// A new manifest made at `now`. Its `deploy_id` is `YYYYMMDDTHHMMSSZ-<8 hex>`, the hex being
    /// the start of the SHA-256 of the files map's compact JSON (keys sorted), so ids sort by time
    /// and two different sites made in the same second still get different ids.
    pub fn new(tenant: &str, files: BTreeMap<String, FileEntry>, now: SystemTime) -> Self {
        let created_at = humantime::format_rfc3339_seconds(now).to_string();
        let stamp: String = created_at
            .chars()
            .filter(|c| *c != '-' && *c != ':')
            .collect();
        let digest = Sha256::digest(serde_json::to_vec(&files).unwrap_or_default());
        let deploy_id = format!("{stamp}-{}", &hex::encode(digest)[..8]);
        Manifest {
            format: FORMAT,
            tenant: tenant.to_string(),
            deploy_id,
            created_at,
            files,
        }
    }

    /// Like [`Manifest::new`], but never earlier than one second after `previous`, so deploy ids
    /// keep the order of the deploys even within one second or with a clock behind the last
    /// deployer's: "newest" and "the one before" are decided by sorting ids.
    pub fn after(
        tenant: &str,
        files: BTreeMap<String, FileEntry>,
        now: SystemTime,
        previous: Option<&Manifest>,
    ) -> Self {
        let floor = previous
            .and_then(|p| humantime::parse_rfc3339(&p.created_at).ok())
            .map(|t| t + std::time::Duration::from_secs(1));
        let at = match floor {
            Some(f) if f > now => f,
            _ => now,
        };
        Self::new(tenant, files, at)
    }

    /// Parses and checks a stored manifest: format 1, the expected tenant, valid paths and hashes.
    pub fn parse(bytes: &[u8], tenant: &str) -> Result<Self, String> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| format!("not a manifest: {e}"))?;
        if m.format != FORMAT {
            return Err(format!(
                "format {} is not supported (expected {FORMAT})",
                m.format
            ));
        }
        if m.tenant != tenant {
            return Err(format!("it names tenant {:?}, not {tenant:?}", m.tenant));
        }
        if let Some((p, _)) = m
            .files
            .iter()
            .find(|(p, e)| !is_path(p) || !is_hash(&e.hash))
        {
            return Err(format!("entry {p:?} has a bad path or hash"));
        }
        Ok(m)
    }

    /// The JSON stored in the bucket.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Every distinct blob hash the manifest refers to.
    pub fn hashes(&self) -> BTreeSet<&str> {
        self.files.values().map(|e| e.hash.as_str()).collect()
    }

    /// Total size of the site's files.
    pub fn total_bytes(&self) -> u64 {
        self.files.values().map(|e| e.size).sum()
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
    use std::time::{Duration, UNIX_EPOCH};

    fn entry(hash: char, size: u64) -> FileEntry {
        FileEntry {
            hash: hash.to_string().repeat(64),
            size,
            content_type: "text/html; charset=utf-8".into(),
        }
    }

    #[test]
    fn deploy_ids_sort_by_time_and_depend_on_the_files() {
        let files: BTreeMap<_, _> = [("/index.html".to_string(), entry('a', 5))].into();
        let t = UNIX_EPOCH + Duration::from_secs(1_795_827_723); // 2026-11-28T01:02:03Z
        let m = Manifest::new("acme", files.clone(), t);
        assert_eq!(m.created_at, "2026-11-28T01:02:03Z");
        assert!(
            m.deploy_id.starts_with("20261128T010203Z-"),
            "{}",
            m.deploy_id
        );
        assert_eq!(m.deploy_id.len(), "20261128T010203Z-".len() + 8);
        assert_eq!(
            Manifest::new("acme", files.clone(), t).deploy_id,
            m.deploy_id
        );
        let mut other = files;
        other.insert("/a.html".into(), entry('b', 1));
        assert_ne!(Manifest::new("acme", other, t).deploy_id, m.deploy_id);
        let later = Manifest::new("acme", m.files.clone(), t + Duration::from_secs(1));
        assert!(later.deploy_id > m.deploy_id);
        assert_eq!(
            deploy_time(&m.deploy_id).as_deref(),
            Some("2026-11-28 01:02:03Z")
        );
    }

    #[test]
    fn parse_checks_format_tenant_paths_and_hashes() {
        let files: BTreeMap<_, _> = [("/index.html".to_string(), entry('a', 5))].into();
        let m = Manifest::new("acme", files, SystemTime::now());
        let bytes = m.to_bytes();
        assert_eq!(Manifest::parse(&bytes, "acme").unwrap(), m);
        assert!(Manifest::parse(&bytes, "other").is_err());
        let mut bad = m.clone();
        bad.format = 2;
        assert!(Manifest::parse(&bad.to_bytes(), "acme").is_err());
        let mut bad = m.clone();
        bad.files.insert("/../x".into(), entry('a', 1));
        assert!(Manifest::parse(&bad.to_bytes(), "acme").is_err());
        let mut bad = m;
        bad.files.insert("/x".into(), entry('G', 1));
        assert!(Manifest::parse(&bad.to_bytes(), "acme").is_err());
        assert!(Manifest::parse(b"{}", "acme").is_err());
    }

    #[test]
    fn paths_and_hashes() {
        assert!(is_path("/a/b.html"));
        for bad in ["a", "/", "//a", "/a/./b", "/a/../b", "/a/"] {
            assert!(!is_path(bad), "{bad}");
        }
        assert!(is_hash(&"0".repeat(64)));
        assert!(!is_hash(&"A".repeat(64)));
    }
}
