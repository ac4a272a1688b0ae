//! Names and defaults the platform's commands share: the bucket, the Worker and its bindings, and
//! how the platform domain is found. The bucket's key layout lives in `site::layout`.

use crate::cloudflare::Client;
use crate::config::{self, Config};

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
pub fn bucket(config: &Config, flag: Option<&str>) -> anyhow::Result<String> {
    let name = config
        .setting(flag, "R2_BUCKET_NAME")
        .unwrap_or_else(|| DEFAULT_BUCKET.to_string());
    Ok(config::bucket_name(&name, "the bucket name")?)
}

/// The jurisdiction from `--jurisdiction` or `R2_JURISDICTION`; `None` is the default one.
pub fn jurisdiction(config: &Config, flag: Option<&str>) -> anyhow::Result<Option<String>> {
    match config.setting(flag, "R2_JURISDICTION") {
        Some(j) => Ok(config::jurisdiction(&j)?),
        None => Ok(None),
    }
}

/// The platform domain given by `--platform-domain` or `PLATFORM_DOMAIN`, checked, if any.
pub fn configured_domain(config: &Config, flag: Option<&str>) -> anyhow::Result<Option<String>> {
    config
        .setting(flag, "PLATFORM_DOMAIN")
        .map(|d| config::hostname(&d, "the platform domain"))
        .transpose()
        .map_err(Into::into)
}

/// The zone's own name, the default platform domain (needs Zone Read).
pub async fn zone_domain(client: &Client, zone_id: &str) -> anyhow::Result<String> {
    let zone = client.get_zone(zone_id).await.map_err(|e| {
        anyhow::Error::new(e).context(
            "reading the zone's name for the platform domain (set PLATFORM_DOMAIN to skip this)",
        )
    })?;
    Ok(zone.name.to_ascii_lowercase())
}
