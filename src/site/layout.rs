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
//! A tenant is a [`Tenant`] and a hostname a [`Hostname`], each checked once where it entered
//! (`crate::names`): no key can escape its prefix. Names read back from keys and entries are
//! parsed the same way, and a key whose name does not parse is not one of these.
//!
//! It imports only `names` and the manifest's constants: key strings, no I/O.

use crate::names::{Hostname, Tenant};

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

pub fn manifest_key(tenant: &Tenant) -> String {
    format!("{SITES_PREFIX}{tenant}/manifest.json")
}

pub fn deploys_prefix(tenant: &Tenant) -> String {
    format!("{SITES_PREFIX}{tenant}/deploys/")
}

pub fn deploy_key(tenant: &Tenant, deploy_id: &str) -> String {
    format!("{}{deploy_id}.json", deploys_prefix(tenant))
}

/// The retained index a live deploy's head names (skew protection).
pub fn retained_key(tenant: &Tenant, deploy_id: &str) -> String {
    format!("{}{deploy_id}/retained.json", deploys_prefix(tenant))
}

pub fn shard_key(tenant: &Tenant, deploy_id: &str, k: u32) -> String {
    format!("{}{deploy_id}/shards/{k}.json", deploys_prefix(tenant))
}

/// The deploy id a `sites/<tenant>/deploys/<id>.json` key names.
pub fn deploy_id_of<'a>(tenant: &Tenant, key: &'a str) -> Option<&'a str> {
    let rest = key
        .strip_prefix(SITES_PREFIX)?
        .strip_prefix(tenant.as_str())?;
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

/// The tenant a `sites/<tenant>/` prefix names, if it is a tenant's slug.
pub fn tenant_of_prefix(prefix: &str) -> Option<Tenant> {
    let t = prefix.strip_prefix(SITES_PREFIX)?.strip_suffix('/')?;
    Tenant::existing(t).ok()
}

pub fn host_key(hostname: &Hostname) -> String {
    format!("{HOSTS_PREFIX}{hostname}.json")
}

/// The hostname a `hosts/<hostname>.json` key names, if it is a hostname.
pub fn host_of(key: &str) -> Option<Hostname> {
    let h = key.strip_prefix(HOSTS_PREFIX)?.strip_suffix(".json")?;
    Hostname::parse(h, "a host entry").ok()
}

/// The body of a host entry: `{"tenant":"<tenant>"}`.
pub fn host_entry(tenant: &Tenant) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "tenant": tenant })).unwrap_or_default()
}

/// The tenant a host entry names, if it is well formed.
pub fn host_entry_tenant(body: &[u8]) -> Option<Tenant> {
    #[derive(serde::Deserialize)]
    struct Entry {
        tenant: Tenant,
    }
    serde_json::from_slice::<Entry>(body).ok().map(|e| e.tenant)
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

    fn t(s: &str) -> Tenant {
        Tenant::new(s).unwrap()
    }

    #[test]
    fn keys_follow_the_documented_layout() {
        let h = "a".repeat(64);
        let id = "20261128T010203Z-1a2b3c4d";
        assert_eq!(blob_key(&h), format!("blobs/{h}"));
        assert_eq!(blob_hash(&blob_key(&h)), Some(h.as_str()));
        assert_eq!(blob_hash("blobs/short"), None);
        assert_eq!(manifest_key(&t("acme")), "sites/acme/manifest.json");
        assert_eq!(
            deploy_key(&t("acme"), id),
            "sites/acme/deploys/20261128T010203Z-1a2b3c4d.json"
        );
        assert_eq!(
            shard_key(&t("acme"), id, 3),
            "sites/acme/deploys/20261128T010203Z-1a2b3c4d/shards/3.json"
        );
        assert_eq!(
            deploy_id_of(&t("acme"), &deploy_key(&t("acme"), id)),
            Some(id)
        );
        assert_eq!(deploy_id_of(&t("acm"), "sites/acme/deploys/x.json"), None);
        assert_eq!(
            deploy_object_of(&deploy_key(&t("acme"), id)),
            Some(("acme", id))
        );
        assert_eq!(
            deploy_object_of(&shard_key(&t("acme"), id, 12)),
            Some(("acme", id))
        );
        assert_eq!(deploy_object_of("sites/acme/manifest.json"), None);
        assert_eq!(deploy_object_of("sites/acme/deploys/x/other.json"), None);
        assert_eq!(tenant_of_prefix("sites/acme/"), Some(t("acme")));
        assert_eq!(tenant_of_prefix("sites/Acme/"), None);
        let host = Hostname::parse("shop.example.com", "x").unwrap();
        assert_eq!(host_key(&host), "hosts/shop.example.com.json");
        assert_eq!(host_of("hosts/shop.example.com.json"), Some(host));
        assert_eq!(host_of("hosts/../x.json"), None);
        assert_eq!(intent_key("u1"), "locks/deploys/u1.json");
        assert_eq!(marker_key("u1"), "locks/gc/u1.json");
    }

    #[test]
    fn host_entries_round_trip() {
        assert_eq!(host_entry(&t("acme")), br#"{"tenant":"acme"}"#);
        assert_eq!(host_entry_tenant(&host_entry(&t("acme"))), Some(t("acme")));
        assert_eq!(host_entry_tenant(b"nope"), None);
        assert_eq!(host_entry_tenant(br#"{"tenant":"../x"}"#), None);
    }
}
