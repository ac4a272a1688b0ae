//! The router Worker's wanted state, and how to tell whether the deployed one already matches.
//!
//! The upload is skipped when three things match what cfsetup would send: the main module's bytes
//! (SHA-256 of the entry module of `GET …/content/v2`, a multipart form for a module Worker,
//! against the embedded `worker/router.js`), the two bindings
//! cfsetup manages (`SITES`, `PLATFORM_DOMAIN`), and the pinned compatibility date (both read with
//! `GET …/settings`). Bindings the user added in the dashboard are never dropped: their types go in
//! `keep_bindings`, and user bindings of the two types cfsetup also sends are carried over by name
//! with `{"type":"inherit"}` (docs/cloudflare-api.md §8).
//!
//! It imports only the Workers API types and `platform`.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::cloudflare::workers::{ScriptSettings, ScriptUpload};
use crate::platform;

/// Binding types kept from the previous version on every upload (`keep_bindings`,
/// docs/cloudflare-api.md §8: "binding *types* to keep from the previous version"). These are the types
/// cfsetup does not manage, so a secret or a KV namespace added in the dashboard survives a
/// re-deploy. wrangler keeps `secret_text` and `secret_key` for secrets and `plain_text` and `json`
/// for vars the same way; the other names are the binding kinds of wrangler's
/// `WorkerMetadataBinding` union. `r2_bucket` and `plain_text` are deliberately absent: cfsetup
/// sends bindings of those types itself, and keeping by type would also keep a stale `SITES` after
/// a bucket change. A user's own bindings of those two types are carried over with `inherit`.
pub const KEEP_BINDING_TYPES: [&str; 19] = [
    "secret_text",
    "secret_key",
    "secrets_store_secret",
    "json",
    "kv_namespace",
    "d1",
    "durable_object_namespace",
    "queue",
    "service",
    "analytics_engine",
    "hyperdrive",
    "vectorize",
    "ai",
    "browser",
    "mtls_certificate",
    "dispatch_namespace",
    "send_email",
    "workflow",
    "version_metadata",
];

/// What the router should look like once deployed.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub bucket: String,
    pub jurisdiction: Option<String>,
    pub domain: String,
}

impl Wanted {
    /// The two bindings cfsetup manages: the bucket as `SITES` (with its jurisdiction when it is
    /// not the default one: without it the Worker would look for the bucket in the wrong place)
    /// and the platform domain as `PLATFORM_DOMAIN` (docs/cloudflare-api.md §8 "Bindings").
    pub fn bindings(&self) -> [Value; 2] {
        let mut sites = json!({
            "type": "r2_bucket",
            "name": platform::SITES_BINDING,
            "bucket_name": self.bucket,
        });
        if let Some(j) = &self.jurisdiction {
            sites["jurisdiction"] = Value::from(j.as_str());
        }
        let domain = json!({
            "type": "plain_text",
            "name": platform::DOMAIN_BINDING,
            "text": self.domain,
        });
        [sites, domain]
    }

    /// The multipart upload: `metadata` with `main_module`, the bindings, `keep_bindings` and the
    /// pinned compatibility date, and the module itself.
    pub fn upload(&self, current: Option<&ScriptSettings>) -> ScriptUpload {
        let mut bindings: Vec<Value> = self.bindings().into();
        let managed = [platform::SITES_BINDING, platform::DOMAIN_BINDING];
        for b in current.map(|s| s.bindings.as_slice()).unwrap_or_default() {
            let name = b.get("name").and_then(Value::as_str).unwrap_or("");
            let kind = b.get("type").and_then(Value::as_str).unwrap_or("");
            if !name.is_empty()
                && !managed.contains(&name)
                && matches!(kind, "plain_text" | "r2_bucket")
            {
                bindings.push(json!({ "type": "inherit", "name": name }));
            }
        }
        ScriptUpload {
            metadata: json!({
                "main_module": platform::WORKER_MODULE,
                "compatibility_date": platform::COMPATIBILITY_DATE,
                "bindings": bindings,
                "keep_bindings": KEEP_BINDING_TYPES,
            }),
            main_module: platform::WORKER_MODULE.to_string(),
            source: bytes::Bytes::from_static(platform::WORKER_SOURCE.as_bytes()),
        }
    }

    /// Why the deployed script differs from the wanted one; empty when it matches.
    pub fn differences(&self, content: &[u8], settings: &ScriptSettings) -> Vec<String> {
        let mut out = Vec::new();
        if !same_source(content) {
            out.push(format!(
                "{} differs (deployed sha256 {}, cfsetup's {})",
                platform::WORKER_MODULE,
                short(&sha256_hex(content)),
                short(&source_sha256())
            ));
        }
        let date = settings.compatibility_date.as_deref().unwrap_or("none");
        if date != platform::COMPATIBILITY_DATE {
            out.push(format!(
                "compatibility date {date}, wanted {}",
                platform::COMPATIBILITY_DATE
            ));
        }
        for want in self.bindings() {
            let name = want["name"].as_str().unwrap_or("");
            let have = settings
                .bindings
                .iter()
                .find(|b| b.get("name").and_then(Value::as_str) == Some(name));
            match have {
                None => out.push(format!("binding {name} is missing")),
                Some(have) if !binding_matches(have, &want) => {
                    out.push(format!("binding {name} differs"));
                }
                Some(_) => {}
            }
        }
        out
    }
}

/// The fields of a binding that matter; an absent jurisdiction is the default one.
fn binding_matches(have: &Value, want: &Value) -> bool {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let jurisdiction = |v: &Value| s(v, "jurisdiction").filter(|j| j != "default");
    s(have, "type") == s(want, "type")
        && s(have, "bucket_name") == s(want, "bucket_name")
        && s(have, "text") == s(want, "text")
        && jurisdiction(have) == jurisdiction(want)
}

/// Whether the deployed main module is the embedded source. `content` is the entry module alone:
/// the client takes it out of the multipart answer by its boundary (`workers::main_module`), so
/// the other modules and the form's framing never count.
fn same_source(content: &[u8]) -> bool {
    sha256_hex(content) == source_sha256()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn source_sha256() -> String {
    sha256_hex(platform::WORKER_SOURCE.as_bytes())
}

/// The first 12 hex digits, enough to tell versions apart in a table.
pub fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(j: Option<&str>) -> Wanted {
        Wanted {
            bucket: "sites".into(),
            jurisdiction: j.map(str::to_string),
            domain: "getai.page".into(),
        }
    }

    fn deployed(bindings: Vec<Value>, date: &str) -> ScriptSettings {
        ScriptSettings {
            bindings,
            compatibility_date: Some(date.into()),
        }
    }

    #[test]
    fn the_jurisdiction_reaches_the_binding() {
        let [sites, domain] = wanted(Some("eu")).bindings();
        assert_eq!(
            sites,
            json!({"type": "r2_bucket", "name": "SITES", "bucket_name": "sites", "jurisdiction": "eu"})
        );
        assert_eq!(
            domain,
            json!({"type": "plain_text", "name": "PLATFORM_DOMAIN", "text": "getai.page"})
        );
        let [sites, _] = wanted(None).bindings();
        assert!(sites.get("jurisdiction").is_none());
    }

    #[test]
    fn a_matching_script_has_no_differences() {
        let w = wanted(None);
        let mut bindings: Vec<Value> = w.bindings().into();
        bindings[0]["jurisdiction"] = json!("default");
        bindings.push(json!({"type": "secret_text", "name": "API_KEY"}));
        let s = deployed(bindings, platform::COMPATIBILITY_DATE);
        assert!(w
            .differences(platform::WORKER_SOURCE.as_bytes(), &s)
            .is_empty());
    }

    #[test]
    fn each_difference_is_named() {
        let w = wanted(Some("eu"));
        let s = deployed(
            vec![json!({"type": "r2_bucket", "name": "SITES", "bucket_name": "sites"})],
            "2024-01-01",
        );
        let d = w.differences(b"export default {}", &s);
        assert_eq!(d.len(), 4, "{d:?}");
        assert!(d[0].starts_with("router.js differs"));
        assert_eq!(d[1], "compatibility date 2024-01-01, wanted 2025-01-01");
        assert_eq!(d[2], "binding SITES differs");
        assert_eq!(d[3], "binding PLATFORM_DOMAIN is missing");
    }

    #[test]
    fn uploads_keep_the_users_bindings() {
        let current = deployed(
            vec![
                json!({"type": "plain_text", "name": "PLATFORM_DOMAIN", "text": "old.page"}),
                json!({"type": "plain_text", "name": "MANIFEST_TTL_MS", "text": "100"}),
                json!({"type": "secret_text", "name": "API_KEY"}),
            ],
            "2024-01-01",
        );
        let up = wanted(None).upload(Some(&current));
        let meta = &up.metadata;
        assert_eq!(meta["main_module"], "router.js");
        assert_eq!(meta["compatibility_date"], platform::COMPATIBILITY_DATE);
        let names: Vec<&str> = meta["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["SITES", "PLATFORM_DOMAIN", "MANIFEST_TTL_MS"]);
        assert_eq!(meta["bindings"][2]["type"], "inherit");
        let keep = meta["keep_bindings"].as_array().unwrap();
        assert!(keep.contains(&json!("secret_text")) && keep.contains(&json!("secret_key")));
        assert!(!keep.contains(&json!("r2_bucket")) && !keep.contains(&json!("plain_text")));
        assert_eq!(up.source.as_ref(), platform::WORKER_SOURCE.as_bytes());
    }

    #[test]
    fn only_the_module_itself_counts_as_the_same() {
        assert!(same_source(platform::WORKER_SOURCE.as_bytes()));
        // A whole multipart form that merely contains the source is not the module.
        let mut body =
            b"--boundary\r\ncontent-disposition: form-data; name=\"router.js\"\r\n\r\n".to_vec();
        body.extend_from_slice(platform::WORKER_SOURCE.as_bytes());
        body.extend_from_slice(b"\r\n--boundary--\r\n");
        assert!(!same_source(&body));
    }
}
