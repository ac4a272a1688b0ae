//! Names and defaults the platform's commands share: the bucket, the Worker and its bindings, and
//! how the platform domain is found. The bucket's key layout lives in `site::layout`.
//!
//! It imports `config`, `names` and the API client (for the zone's name); commands use it, never
//! the reverse.

use crate::cloudflare::Client;
use crate::config::{self, Config};
use crate::names::{BucketName, Hostname, WorkerName};

/// Default R2 bucket for every tenant's files (`--bucket`, `R2_BUCKET_NAME`).
pub const DEFAULT_BUCKET: &str = "cfsetup-sites";
/// Default name of the router Worker (`--worker-name`, `WORKER_SCRIPT_NAME`).
pub const DEFAULT_WORKER: &str = "cfsetup-router";
/// The Worker's R2 binding name (worker/router.js reads `env.SITES`).
pub const SITES_BINDING: &str = "SITES";
/// The Worker's plain-text binding with the platform domain (`env.PLATFORM_DOMAIN`).
pub const DOMAIN_BINDING: &str = "PLATFORM_DOMAIN";
/// The Worker's main module file name.
pub const WORKER_MODULE: &str = "router.js";
/// The Worker source, embedded in the binary.
pub const WORKER_SOURCE: &str = include_str!("../worker/router.js");
/// Pinned compatibility date for the router.
pub const COMPATIBILITY_DATE: &str = "2025-01-01";

/// The bucket name from `--bucket`, `R2_BUCKET_NAME`, or the default; checked.
pub fn bucket(config: &Config, flag: Option<&str>) -> anyhow::Result<BucketName> {
    let name = config
        .setting(flag, "R2_BUCKET_NAME")
        .unwrap_or_else(|| DEFAULT_BUCKET.to_string());
    Ok(BucketName::parse(&name, "the bucket name")?)
}

/// The jurisdiction from `--jurisdiction` or `R2_JURISDICTION`; `None` is the default one.
pub fn jurisdiction(config: &Config, flag: Option<&str>) -> anyhow::Result<Option<String>> {
    match config.setting(flag, "R2_JURISDICTION") {
        Some(j) => Ok(config::jurisdiction(&j)?),
        None => Ok(None),
    }
}

/// Names the option a value came from in an error: the flag if it was given, else the variable.
pub(crate) fn source(
    flag: Option<&str>,
    flag_name: &'static str,
    env: &'static str,
) -> &'static str {
    if flag.is_some_and(|v| !v.trim().is_empty()) {
        flag_name
    } else {
        env
    }
}

/// The router Worker's name from `--worker-name`, `WORKER_SCRIPT_NAME`, or the default; checked.
pub fn worker(config: &Config, flag: Option<&str>) -> anyhow::Result<WorkerName> {
    let (name, what) = match config.setting(flag, "WORKER_SCRIPT_NAME") {
        Some(w) => (w, source(flag, "--worker-name", "WORKER_SCRIPT_NAME")),
        None => (DEFAULT_WORKER.to_string(), "the default Worker name"),
    };
    Ok(WorkerName::parse(name.trim(), what)?)
}

/// The custom-hostname fallback origin from `--fallback-origin` or `SAAS_FALLBACK_ORIGIN`,
/// checked, if any.
pub fn fallback_origin(config: &Config, flag: Option<&str>) -> anyhow::Result<Option<Hostname>> {
    config
        .setting(flag, "SAAS_FALLBACK_ORIGIN")
        .map(|h| {
            Hostname::parse(
                &h,
                source(flag, "--fallback-origin", "SAAS_FALLBACK_ORIGIN"),
            )
        })
        .transpose()
        .map_err(Into::into)
}

/// The platform domain given by `--platform-domain` or `PLATFORM_DOMAIN`, checked, if any.
pub fn configured_domain(config: &Config, flag: Option<&str>) -> anyhow::Result<Option<Hostname>> {
    config
        .setting(flag, "PLATFORM_DOMAIN")
        .map(|d| Hostname::parse(&d, "the platform domain"))
        .transpose()
        .map_err(Into::into)
}

/// The zone's own name, the default platform domain (needs Zone Read).
pub async fn zone_domain(client: &Client, zone_id: &str) -> anyhow::Result<Hostname> {
    let zone = client.get_zone(zone_id).await.map_err(|e| {
        anyhow::Error::new(e).context(
            "reading the zone's name for the platform domain (set PLATFORM_DOMAIN to skip this)",
        )
    })?;
    Ok(Hostname::parse(&zone.name, "the zone's name")?)
}

/// Whether `domain` is itself a public suffix on the Public Suffix List (as `pages.dev`,
/// `netlify.app`, `vercel.app` and `myshopify.com` are), from the list the `psl` crate embeds.
/// Browsers keep cookies of `a.<suffix>` and `b.<suffix>` apart only then.
pub fn on_public_suffix_list(domain: &str) -> bool {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    psl::suffix(d.as_bytes()).is_some_and(|s| s.is_known() && s.as_bytes() == d.as_bytes())
}

/// deploy-infra's advice about the platform domain (docs/cloudflare-api.md §10 "Advice from the
/// getting-started guide and reference architecture"; publicsuffix/list `public_suffix_list.dat`):
/// empty when the domain is on the Public Suffix List.
pub fn domain_advice(domain: &str) -> Vec<String> {
    if on_public_suffix_list(domain) {
        return Vec::new();
    }
    let registrable = psl::domain_str(domain).unwrap_or(domain);
    vec![
        format!(
            "{domain} is not on the Public Suffix List, so tenant sites at TENANT.{domain} share \
             the registrable domain {registrable} and can set cookies for each other (and for \
             {registrable}). For tenants' sites, use a separate registrable domain and add it \
             to the Public Suffix List (github.com/publicsuffix/list), as pages.dev, netlify.app, \
             vercel.app and myshopify.com do."
        ),
        "Cloudflare recommends a CNAME target (the fallback origin tenants point at) on a \
         domain other than the company's main domain (Cloudflare for SaaS getting-started \
         guide)."
            .to_string(),
    ]
}

#[cfg(test)]
mod psl_tests {
    use super::*;

    #[test]
    fn platform_domains_on_the_public_suffix_list_are_recognised() {
        for d in [
            "pages.dev",
            "netlify.app",
            "vercel.app",
            "myshopify.com",
            "github.io",
        ] {
            assert!(on_public_suffix_list(d), "{d}");
            assert!(domain_advice(d).is_empty(), "{d}");
        }
        for d in ["getai.page", "example.com", "sites.example.co.uk"] {
            assert!(!on_public_suffix_list(d), "{d}");
        }
        let advice = domain_advice("sites.example.co.uk").join("\n");
        assert!(
            advice.contains("registrable domain example.co.uk"),
            "{advice}"
        );
        assert!(
            advice.contains("other than the company's main domain"),
            "{advice}"
        );
    }
}
