//! Everything `deploy-infra` can check without the network, checked before the first request:
//! names, the location hint, the jurisdiction, the fallback origin and the shape of each `--route`.
//! A problem is a [`UsageError`] (exit status 2) that names the option and the fix.
//!
//! It imports only `config`, `names` and `platform`: no request is made here.

use crate::cli::DeployInfraArgs;
use crate::config::Config;
use crate::error::{usage, UsageError};
use crate::platform::{Flags, Platform};

/// R2 location hints (docs/cloudflare-api.md §7: Bucket `location`).
pub const LOCATION_HINTS: [&str; 6] = ["apac", "eeur", "enam", "weur", "wnam", "oc"];

/// The checked inputs of one run.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The bucket and its location, the Worker's name, the fallback origin and the platform
    /// domain (as configured; `None` means "the zone's own name", known after the zone is read).
    pub platform: Platform,
    pub zone: String,
    pub location_hint: Option<String>,
    /// `--route` patterns beyond the two the platform always needs.
    pub extra_routes: Vec<String>,
    pub take_over_routes: bool,
    pub dry_run: bool,
}

impl Inputs {
    pub fn check(args: &DeployInfraArgs, config: &Config) -> anyhow::Result<Self> {
        let platform = Platform::resolve(
            config,
            Flags {
                bucket: args.bucket.as_deref(),
                jurisdiction: args.jurisdiction.as_deref(),
                platform_domain: args.platform.platform_domain.as_deref(),
                fallback_origin: args.platform.fallback_origin.as_deref(),
                worker_name: args.platform.worker_name.as_deref(),
            },
        )?;
        let zone = config.require_zone_id()?.to_string();
        let location_hint = args
            .location_hint
            .as_deref()
            .map(location_hint)
            .transpose()?;
        let extra_routes = args
            .platform
            .routes
            .iter()
            .map(|r| route_pattern(r))
            .collect::<Result<Vec<_>, _>>()?;

        Ok(Inputs {
            platform,
            zone,
            location_hint,
            extra_routes,
            take_over_routes: args.take_over_routes,
            dry_run: args.dry_run,
        })
    }

    /// The routes the router must hold: `*.<domain>/*` for the platform's own subdomains, `*/*` for
    /// custom hostnames (docs/cloudflare-api.md §9 "Why Cloudflare for SaaS needs `*/*`"), then any
    /// `--route`, without repeats.
    pub fn wanted_routes(&self, domain: &str) -> Vec<String> {
        let mut out = vec![format!("*.{domain}/*"), "*/*".to_string()];
        for r in &self.extra_routes {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
        out
    }
}

fn location_hint(value: &str) -> Result<String, UsageError> {
    let v = value.trim().to_ascii_lowercase();
    if LOCATION_HINTS.contains(&v.as_str()) {
        Ok(v)
    } else {
        Err(
            usage!("--location-hint {value:?} is not an R2 location hint")
                .with_hint("use one of apac, eeur, enam, weur, wnam or oc, or leave it out"),
        )
    }
}

/// The shape of a route pattern, as the routes API checks it (docs/cloudflare-api.md §9: 400/10022 —
/// no scheme, no query string, `*` only at the start of the host or the end of the path). Whether
/// the host is in the zone is checked once the zone's name is known.
pub fn route_pattern(value: &str) -> Result<String, UsageError> {
    let p = value.trim();
    let fail = |why: &str| {
        Err(usage!("--route {value:?} is not a route pattern: {why}").with_hint(
            "write HOST/PATH, e.g. shop.example.com/* or *.example.com/api/*; `*` may only start \
             the host or end the path",
        ))
    };
    if p.is_empty() || p.chars().any(char::is_whitespace) {
        return fail("it is empty or contains spaces");
    }
    if p.contains("://") {
        return fail("leave out the scheme");
    }
    if p.contains(['?', '#']) {
        return fail("a route cannot have a query string or fragment");
    }
    let Some(slash) = p.find('/') else {
        return fail("it has no path; add /* to match every path");
    };
    let (host, path) = p.split_at(slash);
    if path[..path.len() - 1].contains('*') {
        return fail("`*` in the path may only come last");
    }
    let rest = host.strip_prefix('*').unwrap_or(host);
    if host.is_empty() || rest.contains('*') {
        return fail("`*` in the host may only come first");
    }
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    let any_host = host == "*";
    if !any_host && !rest.split('.').all(label_ok) {
        return fail("the host is not a hostname");
    }
    Ok(format!("{}{path}", host.to_ascii_lowercase()))
}

/// Whether a route's host can be in `zone`: `*/…`, the zone itself, or a name under it.
pub fn route_in_zone(pattern: &str, zone: &str) -> bool {
    let host = pattern.split('/').next().unwrap_or("");
    let wildcard = host.starts_with('*');
    let rest = host.strip_prefix('*').unwrap_or(host);
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    (wildcard && rest.is_empty()) || within(rest, zone)
}

/// `name` is `zone` or a name under it.
pub fn within(name: &str, zone: &str) -> bool {
    name.eq_ignore_ascii_case(zone)
        || name
            .to_ascii_lowercase()
            .ends_with(&format!(".{}", zone.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_patterns_are_checked_for_shape() {
        for ok in [
            "*/*",
            "*.getai.page/*",
            "shop.getai.page/api/*",
            "*getai.page/*",
            "getai.page/",
        ] {
            assert!(route_pattern(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            route_pattern(" Shop.Getai.Page/A* ").unwrap(),
            "shop.getai.page/A*"
        );
        for bad in [
            "",
            "getai.page",
            "https://getai.page/*",
            "getai.page/*?x=1",
            "get*ai.page/*",
            "getai.page/*/x",
            "*/a b",
            "-bad-.page/*",
            "/*",
        ] {
            assert!(route_pattern(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn routes_and_domains_must_be_in_the_zone() {
        assert!(route_in_zone("*/*", "getai.page"));
        assert!(route_in_zone("*.getai.page/*", "getai.page"));
        assert!(route_in_zone("*getai.page/*", "getai.page"));
        assert!(route_in_zone("a.b.getai.page/x", "getai.page"));
        assert!(!route_in_zone("*.other.com/*", "getai.page"));
        assert!(!route_in_zone("notgetai.page/*", "getai.page"));
        assert!(within("Sites.GetAI.page", "getai.page"));
        assert!(!within("getai.pages", "getai.page"));
    }

    #[test]
    fn location_hints() {
        assert_eq!(location_hint("WEUR").unwrap(), "weur");
        assert!(location_hint("mars").is_err());
    }
}
