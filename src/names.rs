//! Names: every rule for what a tenant slug, a hostname, a bucket, a Worker or a deploy id may
//! be, written once. Each is checked before any request, and a bad one is a [`UsageError`]
//! (exit 2) that says what is wrong and how to write it.
//!
//! The one DNS-label rule ([`is_lower_label`]) serves tenant slugs, preview names and the labels
//! of existing tenants; the hostname rule is IDNA's with the label limits of RFC 1035.
//!
//! This module imports only the error leaf; config, commands and the storage layout use it.

use std::net::IpAddr;

use crate::error::{usage, UsageError};

/// `value` as it is shown in an error: quoted, and cut after 64 characters.
fn shown(value: &str) -> String {
    crate::config::shown(value)
}

/// One lowercase DNS label: 1 to 63 of `a-z`, `0-9` and `-`, not starting or ending with `-`.
pub fn is_lower_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && !value.starts_with('-')
        && !value.ends_with('-')
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A hostname, converted to lowercase ASCII (punycode for IDN). No wildcard, scheme, port or path.
pub fn hostname(value: &str, what: &str) -> Result<String, UsageError> {
    let v = value.trim().trim_end_matches('.');
    let q = shown(value);
    let fix = "give a bare hostname such as shop.example.com (no scheme, port, path or wildcard)";
    if v.is_empty() || v.contains(['/', ':', '*', ' ', '@']) {
        return Err(usage!("{what} is not a hostname: {q}").with_hint(fix));
    }
    let ascii = idna::domain_to_ascii(v)
        .map_err(|_| usage!("{what} is not a valid hostname: {q}").with_hint(fix))?;
    let labels: Vec<&str> = ascii.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if ascii.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(usage!("{what} is not a valid hostname: {q}").with_hint(fix));
    }
    if let Some(tld) = labels
        .last()
        .filter(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        if v.parse::<IpAddr>().is_ok() {
            return Err(usage!("{what} is an IP address, not a hostname: {q}").with_hint(fix));
        }
        return Err(usage!(
            "{what} is not a valid hostname: {q} (its last label {tld:?} is all digits)"
        )
        .with_hint("a top-level domain has letters, as in shop.example.com"));
    }
    Ok(ascii)
}

/// Labels no tenant may take: `www` and `api` (names a platform uses for itself) and `fallback`
/// (the default fallback origin's label: a tenant with it would capture the origin). The
/// configured fallback origin's first label is refused too (`tenant_beside_fallback`).
pub const RESERVED_SLUGS: [&str; 3] = ["www", "api", "fallback"];

/// A tenant slug: one DNS label of lowercase letters, digits and hyphens, 1 to 63 characters,
/// without `--` (preview hosts are `NAME--TENANT`, and `xn--` labels are punycode), and not one of
/// [`RESERVED_SLUGS`].
pub fn tenant(value: &str) -> Result<String, UsageError> {
    if !is_lower_label(value) {
        return Err(
            usage!("TENANT {value:?} is not a valid tenant slug").with_hint(
                "use 1 to 63 lowercase letters, digits and hyphens, not starting or ending with a \
             hyphen, e.g. acme or acme-shop",
            ),
        );
    }
    if value.contains("--") {
        return Err(
            usage!("TENANT {value:?} contains \"--\", which tenant slugs may not").with_hint(
                "NAME--TENANT is a preview's host, and xn-- labels are punycode; use single \
                 hyphens, e.g. acme-shop",
            ),
        );
    }
    if RESERVED_SLUGS.contains(&value) {
        return Err(reserved(value));
    }
    Ok(value.to_string())
}

/// [`tenant`], and not the first label of the fallback origin (`SAAS_FALLBACK_ORIGIN`) when it is
/// known: a tenant with that slug would capture the platform's own origin.
pub fn tenant_beside_fallback(value: &str, fallback: Option<&str>) -> Result<String, UsageError> {
    let t = tenant(value)?;
    let label = fallback.and_then(|f| f.split('.').next());
    if label.is_some_and(|l| l.eq_ignore_ascii_case(&t)) {
        return Err(reserved(value));
    }
    Ok(t)
}

fn reserved(value: &str) -> UsageError {
    usage!("TENANT {value:?} is reserved").with_hint(format!(
        "reserved slugs: {}, and the fallback origin's first label (SAAS_FALLBACK_ORIGIN); \
         pick another name",
        RESERVED_SLUGS.join(", ")
    ))
}

/// Is `name` the zone's own name or a name under it? (Case-insensitive; both are hostnames.)
pub fn within_zone(name: &str, zone: &str) -> bool {
    let (name, zone) = (name.to_ascii_lowercase(), zone.to_ascii_lowercase());
    name == zone || name.ends_with(&format!(".{zone}"))
}

/// A hostname that must be in the zone (the fallback origin, the platform domain): checked as soon
/// as the zone's name is known, before the first write.
pub fn in_zone(name: &str, zone: &str, what: &str) -> Result<(), UsageError> {
    if within_zone(name, zone) {
        return Ok(());
    }
    Err(
        usage!("{what} {name} is not in the zone {zone}").with_hint(format!(
            "give {zone} or a name under it, such as fallback.{zone}, or use the zone that holds \
         {name} (--zone-id)"
        )),
    )
}

/// A tenant's custom DOMAIN cannot be the platform's own domain or a name under it: the Worker
/// already serves TENANT.<platform domain>, and Cloudflare for SaaS does not attach a zone's own
/// names. Call it as soon as the platform domain is known (with PLATFORM_DOMAIN unset, right
/// after reading the zone's name), before any other request.
pub fn custom_domain(domain: &str, platform_domain: &str) -> Result<(), UsageError> {
    if !within_zone(domain, platform_domain) {
        return Ok(());
    }
    Err(
        usage!("DOMAIN {domain} is in the platform's own domain {platform_domain}").with_hint(
            format!(
                "every tenant is already served at TENANT.{platform_domain}; DOMAIN is for the \
                 tenant's own domain, such as shop.example.com"
            ),
        ),
    )
}

/// A deploy named on the command line (`rollback TENANT VERSION`): a whole deploy id such as
/// `20260101T000000Z-aaaaaaaa`, a unique start of one, or a preview name. Letters, digits, `-` and
/// `_`, at most 100: so `../../etc`, `*`, `''` or a path never reach a listing or a key.
pub fn deploy_id(value: &str) -> Result<String, UsageError> {
    let v = value.trim();
    let ok = (1..=100).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        return Ok(v.to_string());
    }
    let what = if v.is_empty() {
        "VERSION is empty".to_string()
    } else {
        format!("VERSION {value:?} is not a deploy id")
    };
    Err(usage!("{what}").with_hint(
        "a deploy id looks like 20260101T000000Z-aaaaaaaa (or give a unique start of one); \
         `cfsetup rollback TENANT --list` shows them",
    ))
}

/// An R2 bucket name: 3 to 63 lowercase letters, digits and hyphens, starting and ending with a
/// letter or digit (wrangler `isValidR2BucketName`; docs/cloudflare-api.md §7).
pub fn bucket_name(value: &str, what: &str) -> Result<String, UsageError> {
    let b = value.as_bytes();
    let ok = (3..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-';
    if ok {
        Ok(value.to_string())
    } else {
        Err(usage!("{what} {} is not a valid R2 bucket name", shown(value)).with_hint(
            "use 3 to 63 lowercase letters, digits and hyphens, starting and ending with a letter \
             or digit",
        ))
    }
}

/// A Worker script name: letters, digits, `_` and `-`, starting with a letter and ending with a
/// letter or digit, at most 63 characters (legacy Workers docs; docs/cloudflare-api.md §8).
pub fn worker_name(value: &str, what: &str) -> Result<String, UsageError> {
    let b = value.as_bytes();
    let ok = (1..=63).contains(&b.len())
        && b[0].is_ascii_alphabetic()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-');
    if ok {
        Ok(value.to_string())
    } else {
        Err(
            usage!("{what} {} is not a valid Worker name", shown(value)).with_hint(
                "use up to 63 letters, digits, _ and -, starting with a letter and ending with a \
             letter or digit",
            ),
        )
    }
}
