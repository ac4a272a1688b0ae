//! The bucket's key layout, in one place (docs/storage-layout.md):
//!
//! - `blobs/<sha256>`: file bytes, content-addressed, written once;
//! - `sites/<tenant>/manifest.json`: the live manifest, written last;
//! - `sites/<tenant>/deploys/<deploy_id>.json`: the kept manifests, for rollback;
//! - `hosts/<hostname>.json`: `{"tenant": …}` for a custom domain.
//!
//! Tenants and hostnames reach these functions already checked (`config::tenant`,
//! `config::hostname`), so no key can escape its prefix.

/// Every blob lives under this prefix.
pub const BLOBS_PREFIX: &str = "blobs/";
/// Every tenant's manifests live under this prefix.
pub const SITES_PREFIX: &str = "sites/";
/// How many deploys of a tenant are kept for rollback, the live one included. Older copies are
/// deleted after a deploy, and blobs only they referred to become garbage for the prune.
pub const KEPT_DEPLOYS: usize = 10;

pub fn blob_key(hash: &str) -> String {
    format!("{BLOBS_PREFIX}{hash}")
}

/// The hash a `blobs/<hash>` key names, if it is one.
pub fn blob_hash(key: &str) -> Option<&str> {
    key.strip_prefix(BLOBS_PREFIX)
        .filter(|h| super::manifest::is_hash(h))
}

pub fn manifest_key(tenant: &str) -> String {
    format!("{SITES_PREFIX}{tenant}/manifest.json")
}

pub fn deploys_prefix(tenant: &str) -> String {
    format!("{SITES_PREFIX}{tenant}/deploys/")
}

pub fn deploy_key(tenant: &str, deploy_id: &str) -> String {
    format!("{}{deploy_id}.json", deploys_prefix(tenant))
}

/// The deploy id a `sites/<tenant>/deploys/<id>.json` key names.
pub fn deploy_id_of<'a>(tenant: &str, key: &'a str) -> Option<&'a str> {
    let rest = key.strip_prefix(SITES_PREFIX)?.strip_prefix(tenant)?;
    rest.strip_prefix("/deploys/")?
        .strip_suffix(".json")
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

/// Whether a key under `sites/` is a manifest (live or kept) that the prune must read.
pub fn is_manifest_key(key: &str) -> bool {
    let Some(rest) = key.strip_prefix(SITES_PREFIX) else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [_, "manifest.json"] => true,
        [_, "deploys", file] => file.ends_with(".json"),
        _ => false,
    }
}

pub fn host_key(hostname: &str) -> String {
    format!("hosts/{hostname}.json")
}

/// The body of a host entry: `{"tenant":"<tenant>"}`.
pub fn host_entry(tenant: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "tenant": tenant })).unwrap_or_default()
}

/// The tenant a host entry names, if it is well formed.
pub fn host_entry_tenant(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("tenant")?.as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() {
        let h = "a".repeat(64);
        assert_eq!(blob_key(&h), format!("blobs/{h}"));
        assert_eq!(blob_hash(&blob_key(&h)), Some(h.as_str()));
        assert_eq!(blob_hash("blobs/short"), None);
        assert_eq!(manifest_key("acme"), "sites/acme/manifest.json");
        assert_eq!(
            deploy_key("acme", "20261128T010203Z-1a2b3c4d"),
            "sites/acme/deploys/20261128T010203Z-1a2b3c4d.json"
        );
        assert_eq!(
            deploy_id_of("acme", "sites/acme/deploys/20261128T010203Z-1a2b3c4d.json"),
            Some("20261128T010203Z-1a2b3c4d")
        );
        assert_eq!(deploy_id_of("acm", "sites/acme/deploys/x.json"), None);
        assert_eq!(host_key("shop.example.com"), "hosts/shop.example.com.json");
        assert!(is_manifest_key("sites/acme/manifest.json"));
        assert!(is_manifest_key("sites/acme/deploys/x.json"));
        assert!(!is_manifest_key("sites/acme/other.json"));
        assert!(!is_manifest_key("blobs/x"));
    }

    #[test]
    fn host_entries_round_trip() {
        assert_eq!(host_entry("acme"), br#"{"tenant":"acme"}"#);
        assert_eq!(
            host_entry_tenant(&host_entry("acme")).as_deref(),
            Some("acme")
        );
        assert_eq!(host_entry_tenant(b"nope"), None);
    }
}
