//! The platform's settings, resolved once: [`Platform`] holds the bucket and its location, the
//! platform domain, the fallback origin and the Worker's name, each taken from its flag, else the
//! environment, else `.env` (precedence is `config`'s), and checked before any request. Every
//! command that touches the platform builds one from its own flags ([`Flags`]) and reads it;
//! nothing else reads those settings. A command that uses only the bucket resolves [`bucket`]
//! alone. `--via` and the S3 endpoint are global flags, in `Config`.
//!
//! Also the names and defaults the platform's commands share: the Worker's bindings and module,
//! and how the platform domain is found. The bucket's key layout lives in `site::layout`.
//!
//! It imports `config`, `names`, `storage`'s `BucketLoc` and the API client (for the zone's
//! name); commands use it, never the reverse.

use crate::cloudflare::Client;
use crate::config::{self, Config};
use crate::names::{BucketName, Hostname, WorkerName};
use crate::storage::BucketLoc;

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

/// The flags a command has for the platform's settings; `None` where it has no such flag (the
/// setting then comes from the environment or `.env`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags<'a> {
    pub bucket: Option<&'a str>,
    pub jurisdiction: Option<&'a str>,
    pub platform_domain: Option<&'a str>,
    pub fallback_origin: Option<&'a str>,
    pub worker_name: Option<&'a str>,
}

impl<'a> Flags<'a> {
    /// `--bucket` and `--jurisdiction`, the flags every site command has.
    pub fn bucket(args: &'a crate::cli::BucketArgs) -> Self {
        Flags {
            bucket: args.bucket.as_deref(),
            jurisdiction: args.jurisdiction.as_deref(),
            ..Flags::default()
        }
    }
}

/// The platform's settings, each resolved and checked once, before any request.
#[derive(Debug, Clone)]
pub struct Platform {
    /// The bucket, its jurisdiction and the account (`--bucket` / `R2_BUCKET_NAME`, default
    /// [`DEFAULT_BUCKET`]; `--jurisdiction` / `R2_JURISDICTION`; `CLOUDFLARE_ACCOUNT_ID`).
    pub bucket: BucketLoc,
    /// `--platform-domain` / `PLATFORM_DOMAIN`; `None`: the zone's own name, read when needed.
    pub domain: Option<Hostname>,
    /// `--fallback-origin` / `SAAS_FALLBACK_ORIGIN`.
    pub fallback_origin: Option<Hostname>,
    /// `--worker-name` / `WORKER_SCRIPT_NAME`, or [`DEFAULT_WORKER`].
    pub worker: WorkerName,
}

/// The run's account, for the permission hint of an S3 refusal (an S3 error does not carry the
/// account; a REST one names it in its path). One account per run, set by [`bucket`].
static ACCOUNT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The account [`bucket`] took, if a bucket was resolved in this run.
pub fn run_account() -> Option<&'static str> {
    ACCOUNT.get().map(String::as_str)
}

impl Platform {
    /// Reads and checks every platform setting (exit 2 naming the flag or variable, before any
    /// request). Needs the account id.
    pub fn resolve(config: &Config, flags: Flags<'_>) -> anyhow::Result<Platform> {
        Ok(Platform {
            bucket: bucket(config, flags)?,
            domain: configured_domain(config, flags.platform_domain)?,
            fallback_origin: fallback_origin(config, flags.fallback_origin)?,
            worker: worker(config, flags.worker_name)?,
        })
    }
}

/// The bucket alone ([`Platform::bucket`]), for the commands that touch nothing else of the
/// platform (`sites`, `gc`, `rollback`, …): a bad setting they do not use does not stop them.
pub fn bucket(config: &Config, flags: Flags<'_>) -> anyhow::Result<BucketLoc> {
    let account = config.require_account_id()?.to_string();
    let _ = ACCOUNT.set(account.clone());
    let jurisdiction = match config.setting(flags.jurisdiction, "R2_JURISDICTION") {
        Some(j) => config::jurisdiction(&j)?,
        None => None,
    };
    check_endpoint_jurisdiction(config.s3_endpoint.as_ref(), jurisdiction.as_deref())?;
    let name = match config.setting(flags.bucket, "R2_BUCKET_NAME") {
        Some(b) => BucketName::parse(b.trim(), source(flags.bucket, "--bucket", "R2_BUCKET_NAME"))?,
        None => BucketName::parse(DEFAULT_BUCKET, "the default bucket name")?,
    };
    Ok(BucketLoc {
        account,
        name,
        jurisdiction,
    })
}

/// An S3 endpoint given with `R2_S3_ENDPOINT` / `--s3-endpoint` is used as it is, so with a
/// jurisdiction it must be that jurisdiction's (`<account>.<j>.r2.cloudflarestorage.com`,
/// docs/cloudflare-api.md §7): otherwise the jurisdiction would be silently ignored for objects.
/// A loopback endpoint (the emulator) is taken as given.
fn check_endpoint_jurisdiction(
    endpoint: Option<&url::Url>,
    jurisdiction: Option<&str>,
) -> Result<(), crate::error::UsageError> {
    let (Some(url), Some(j)) = (endpoint, jurisdiction) else {
        return Ok(());
    };
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    if config::is_loopback(url) || host.contains(&format!(".{j}.")) {
        return Ok(());
    }
    Err(crate::error::usage!(
        "the jurisdiction is {j}, but the S3 endpoint {host} (R2_S3_ENDPOINT or --s3-endpoint) is \
         not that jurisdiction's"
    )
    .with_hint(format!(
        "use https://<account>.{j}.r2.cloudflarestorage.com, or unset R2_S3_ENDPOINT to let \
         cfsetup pick it from the jurisdiction"
    )))
}

/// Names the option a value came from in an error: the flag if it was given, else the variable.
fn source(flag: Option<&str>, flag_name: &'static str, env: &'static str) -> &'static str {
    if flag.is_some_and(|v| !v.trim().is_empty()) {
        flag_name
    } else {
        env
    }
}

/// The router Worker's name from `--worker-name`, `WORKER_SCRIPT_NAME`, or the default; checked.
fn worker(config: &Config, flag: Option<&str>) -> anyhow::Result<WorkerName> {
    let (name, what) = match config.setting(flag, "WORKER_SCRIPT_NAME") {
        Some(w) => (w, source(flag, "--worker-name", "WORKER_SCRIPT_NAME")),
        None => (DEFAULT_WORKER.to_string(), "the default Worker name"),
    };
    Ok(WorkerName::parse(name.trim(), what)?)
}

/// The custom-hostname fallback origin from `--fallback-origin` or `SAAS_FALLBACK_ORIGIN`,
/// checked, if any.
fn fallback_origin(config: &Config, flag: Option<&str>) -> anyhow::Result<Option<Hostname>> {
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
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_of_another_jurisdiction_is_refused() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        let eu = u("https://acct.eu.r2.cloudflarestorage.com");
        let plain = u("https://acct.r2.cloudflarestorage.com");
        assert!(check_endpoint_jurisdiction(Some(&eu), Some("eu")).is_ok());
        let e = check_endpoint_jurisdiction(Some(&plain), Some("eu")).unwrap_err();
        assert!(
            e.message.contains("not that jurisdiction's"),
            "{}",
            e.message
        );
        assert!(check_endpoint_jurisdiction(Some(&plain), None).is_ok());
        assert!(check_endpoint_jurisdiction(None, Some("eu")).is_ok());
        let emulator = u("http://127.0.0.1:9000");
        assert!(check_endpoint_jurisdiction(Some(&emulator), Some("eu")).is_ok());
    }

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
