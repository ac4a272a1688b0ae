//! The bucket's key layout, in one place (docs/storage-layout.md):
//!
//! - `blobs/<sha256>`: file bytes, content-addressed, written once;
//! - `sites/<tenant>/manifest.json`: the tenant's head, switched by compare-and-swap;
//! - `sites/<tenant>/deploys/<deploy_id>.json`: an immutable deploy copy;
//! - `shards/<sha256>.json`: a manifest shard (format 3), content-addressed, shared, written once;
//! - `sites/<tenant>/deploys/<deploy_id>/shards/<k>.json`: a format 2 deploy's shards;
//! - `hosts/<hostname>.json`: `{"tenant": …}` for a custom domain;
//! - `locks/deploys/<uuid>.json`: a running deploy's intent;
//! - `locks/gc/<uuid>.json`: a running gc's sweep marker.
//!
//! Tenants and hostnames reach these functions already checked (`config::tenant`,
//! `config::hostname`), so no key can escape its prefix.

/// Every blob lives under this prefix.
pub const BLOBS_PREFIX: &str = "blobs/";
/// Every content-addressed shard (format 3) lives under this prefix.
pub const SHARDS_PREFIX: &str = "shards/";
/// Every tenant's head and deploys live under this prefix.
pub const SITES_PREFIX: &str = "sites/";
/// Every custom domain's entry.
pub const HOSTS_PREFIX: &str = "hosts/";
/// Running deploys' intents.
pub const INTENTS_PREFIX: &str = "locks/deploys/";
/// Running gcs' sweep markers.
pub const MARKERS_PREFIX: &str = "locks/gc/";

pub use super::manifest::KEPT_DEPLOYS;

pub fn blob_key(hash: &str) -> String {
    format!("{BLOBS_PREFIX}{hash}")
}

/// The hash a `blobs/<hash>` key names, if it is one.
pub fn blob_hash(key: &str) -> Option<&str> {
    key.strip_prefix(BLOBS_PREFIX)
        .filter(|h| super::manifest::is_hash(h))
}

/// `shards/<hash>.json`: the shard whose bytes hash to `hash`.
pub fn cas_shard_key(hash: &str) -> String {
    format!("{SHARDS_PREFIX}{hash}.json")
}

/// The hash a `shards/<hash>.json` key names, if it is one.
pub fn cas_shard_hash(key: &str) -> Option<&str> {
    key.strip_prefix(SHARDS_PREFIX)?
        .strip_suffix(".json")
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

/// The retained index a live deploy's head names (skew protection).
pub fn retained_key(tenant: &str, deploy_id: &str) -> String {
    format!("{}{deploy_id}/retained.json", deploys_prefix(tenant))
}

pub fn shard_key(tenant: &str, deploy_id: &str, k: u32) -> String {
    format!("{}{deploy_id}/shards/{k}.json", deploys_prefix(tenant))
}

/// The deploy id a `sites/<tenant>/deploys/<id>.json` key names.
pub fn deploy_id_of<'a>(tenant: &str, key: &'a str) -> Option<&'a str> {
    let rest = key.strip_prefix(SITES_PREFIX)?.strip_prefix(tenant)?;
    rest.strip_prefix("/deploys/")?
        .strip_suffix(".json")
        .filter(|id| !id.is_empty() && !id.contains('/'))
}

/// The tenant and deploy id of any object of a deploy: its copy or one of its shards.
pub fn deploy_object_of(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(SITES_PREFIX)?;
    let (tenant, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("deploys/")?;
    let id = match rest.split_once('/') {
        Some((id, "retained.json")) => id,
        Some((id, shard)) => {
            let k = shard.strip_prefix("shards/")?.strip_suffix(".json")?;
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            id
        }
        None => rest.strip_suffix(".json")?,
    };
    (!id.is_empty()).then_some((tenant, id))
}

/// The tenant a `sites/<tenant>/` prefix names.
pub fn tenant_of_prefix(prefix: &str) -> Option<&str> {
    prefix
        .strip_prefix(SITES_PREFIX)?
        .strip_suffix('/')
        .filter(|t| !t.is_empty() && !t.contains('/'))
}

pub fn host_key(hostname: &str) -> String {
    format!("{HOSTS_PREFIX}{hostname}.json")
}

/// The hostname a `hosts/<hostname>.json` key names.
pub fn host_of(key: &str) -> Option<&str> {
    key.strip_prefix(HOSTS_PREFIX)?
        .strip_suffix(".json")
        .filter(|h| !h.is_empty())
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

pub fn intent_key(id: &str) -> String {
    format!("{INTENTS_PREFIX}{id}.json")
}

pub fn marker_key(id: &str) -> String {
    format!("{MARKERS_PREFIX}{id}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() {
        let h = "a".repeat(64);
        let id = "20261128T010203Z-1a2b3c4d";
        assert_eq!(blob_key(&h), format!("blobs/{h}"));
        assert_eq!(blob_hash(&blob_key(&h)), Some(h.as_str()));
        assert_eq!(blob_hash("blobs/short"), None);
        assert_eq!(manifest_key("acme"), "sites/acme/manifest.json");
        assert_eq!(
            deploy_key("acme", id),
            "sites/acme/deploys/20261128T010203Z-1a2b3c4d.json"
        );
        assert_eq!(
            shard_key("acme", id, 3),
            "sites/acme/deploys/20261128T010203Z-1a2b3c4d/shards/3.json"
        );
        assert_eq!(deploy_id_of("acme", &deploy_key("acme", id)), Some(id));
        assert_eq!(deploy_id_of("acm", "sites/acme/deploys/x.json"), None);
        assert_eq!(
            deploy_object_of(&deploy_key("acme", id)),
            Some(("acme", id))
        );
        assert_eq!(
            deploy_object_of(&shard_key("acme", id, 12)),
            Some(("acme", id))
        );
        assert_eq!(deploy_object_of("sites/acme/manifest.json"), None);
        assert_eq!(deploy_object_of("sites/acme/deploys/x/other.json"), None);
        assert_eq!(tenant_of_prefix("sites/acme/"), Some("acme"));
        assert_eq!(host_key("shop.example.com"), "hosts/shop.example.com.json");
        assert_eq!(
            host_of("hosts/shop.example.com.json"),
            Some("shop.example.com")
        );
        assert_eq!(intent_key("u1"), "locks/deploys/u1.json");
        assert_eq!(marker_key("u1"), "locks/gc/u1.json");
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
