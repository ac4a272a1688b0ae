//! Names: every rule for what a tenant slug, a preview name, a hostname, a bucket, a Worker or a
//! deploy named on the command line may be, written once, and the types that carry a checked
//! one: [`Tenant`], [`PreviewName`], [`Hostname`], [`BucketName`], [`WorkerName`], [`Version`].
//! Each is parsed once, before any request (a bad one is a [`UsageError`], exit 2, that says what
//! is wrong and how to write it), and code that holds one never checks it again: the storage
//! layout takes a [`Tenant`] and a [`Hostname`], so no key can escape its prefix.
//!
//! The one DNS-label rule ([`is_lower_label`]) serves tenant slugs, preview names and the labels
//! of existing tenants; the hostname rule is IDNA's with the label limits of RFC 1035.
//!
//! This module imports only the error leaf; config, commands and the storage layout use it.

use std::borrow::Borrow;
use std::fmt;
use std::net::IpAddr;
use std::ops::Deref;

use serde::{Deserialize, Serialize};

use crate::error::{shown, usage, UsageError};

/// The traits every checked name shares: read as a `&str`, shown as itself, serialised as a
/// string. There is no `From<String>`: the only way in is the type's own parser.
macro_rules! checked_name {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        /// As the string itself (`"acme"`), so `{:?}` in a message quotes the name.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
        impl Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }
        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }
    };
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

/// A hostname, lowercase ASCII (punycode for IDN), without a wildcard, scheme, port or path: a
/// custom DOMAIN, the platform domain, the fallback origin, a `hosts/<hostname>.json` entry.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Hostname(String);
checked_name!(Hostname);

impl Hostname {
    /// Parses `value` (any case, a trailing dot, Unicode) as the setting or argument `what`.
    pub fn parse(value: &str, what: &str) -> Result<Hostname, UsageError> {
        hostname(value, what).map(Hostname)
    }
}

/// A hostname, converted to lowercase ASCII (punycode for IDN). No wildcard, scheme, port or path.
fn hostname(value: &str, what: &str) -> Result<String, UsageError> {
    let v = value.trim().trim_end_matches('.');
    let q = shown(value);
    let fix = "give a bare hostname such as shop.example.com (no scheme, port, path or wildcard)";
    if v.is_empty() || v.contains(['/', ':', '*', ' ', '@']) {
        return Err(usage!("{what} is not a hostname: {q}").with_hint(fix));
    }
    let ascii = idna::domain_to_ascii(v)
        .map_err(|_| usage!("{what} is not a valid hostname: {q}").with_hint(fix))?;
    // IDNA's ASCII form is lowercase, so each label is one lowercase DNS label.
    let labels: Vec<&str> = ascii.split('.').collect();
    if ascii.len() > 253 || labels.len() < 2 || !labels.iter().all(|l| is_lower_label(l)) {
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

/// A tenant's slug: one DNS label of lowercase letters, digits and hyphens, so it is safe in a
/// key (`sites/<tenant>/`) and as the first label of `<tenant>.<platform domain>`.
///
/// [`Tenant::new`] is a new tenant's rule; [`Tenant::existing`] the looser one for a tenant that
/// may predate it (reserved slugs, `--`); stored heads, copies and intents parse with that one.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tenant(String);
checked_name!(Tenant);

impl TryFrom<String> for Tenant {
    type Error = UsageError;
    fn try_from(value: String) -> Result<Tenant, UsageError> {
        Tenant::existing(&value)
    }
}

impl Tenant {
    /// A new tenant's slug: 1 to 63 lowercase letters, digits and hyphens, not starting or
    /// ending with one, without `--` (preview hosts are `NAME--TENANT`, and `xn--` labels are
    /// punycode), and not one of [`RESERVED_SLUGS`].
    pub fn new(value: &str) -> Result<Tenant, UsageError> {
        if !is_lower_label(value) {
            return Err(
                usage!("TENANT {value:?} is not a valid tenant slug").with_hint(
                    "use 1 to 63 lowercase letters, digits and hyphens, not starting or ending \
                     with a hyphen, e.g. acme or acme-shop",
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
        Ok(Tenant(value.to_string()))
    }

    /// [`Tenant::new`], and not the first label of the fallback origin (`SAAS_FALLBACK_ORIGIN`)
    /// when it is known: a tenant with that slug would capture the platform's own origin.
    pub fn new_beside_fallback(value: &str, fallback: Option<&str>) -> Result<Tenant, UsageError> {
        let t = Tenant::new(value)?;
        let label = fallback.and_then(|f| f.split('.').next());
        if label.is_some_and(|l| l.eq_ignore_ascii_case(&t)) {
            return Err(reserved(value));
        }
        Ok(t)
    }

    /// An existing tenant's slug: one DNS label (so no key escapes `sites/<tenant>/`), reserved
    /// or not, so a tenant made before the reserved list can still be listed, rolled back and
    /// removed. The message is [`Tenant::new`]'s when it is not a label.
    pub fn existing(value: &str) -> Result<Tenant, UsageError> {
        match Tenant::new(value) {
            Ok(t) => Ok(t),
            Err(_) if is_lower_label(value) => Ok(Tenant(value.to_string())),
            Err(e) => Err(e),
        }
    }
}

/// A preview's name: a DNS label without `--`, short enough that `NAME--TENANT` is one label.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PreviewName(String);
checked_name!(PreviewName);

impl PreviewName {
    /// `--preview NAME` (or `remove-preview TENANT NAME`) of `tenant`.
    pub fn parse(name: &str, tenant: &Tenant) -> Result<PreviewName, UsageError> {
        if is_preview_label(name) && name.len() + 2 + tenant.len() <= 63 {
            return Ok(PreviewName(name.to_string()));
        }
        Err(
            usage!("--preview {name:?} is not a valid preview name").with_hint(format!(
                "use lowercase letters, digits and single hyphens, such as feature-x; \
                 NAME--{tenant} must fit in one DNS label (63 characters)"
            )),
        )
    }
}

/// A label a preview may have: [`is_lower_label`] without `--`.
fn is_preview_label(value: &str) -> bool {
    is_lower_label(value) && !value.contains("--")
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
/// `20260101T000000Z-aaaaaaaa`, a unique start of one, or a preview name. So `../../etc`, `*`,
/// `''` or a path never reach a listing or a key.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Version(String);
checked_name!(Version);

impl Version {
    pub fn parse(value: &str) -> Result<Version, UsageError> {
        if is_id_prefix(value) || is_preview_label(value) {
            return Ok(Version(value.to_string()));
        }
        let what = if value.is_empty() {
            "VERSION is empty".to_string()
        } else {
            format!("VERSION {value:?} is neither a deploy id nor a preview name")
        };
        Err(usage!("{what}").with_hint(
            "a deploy id looks like 20261128T010203Z-1a2b3c4d (a unique start is enough); see \
             `cfsetup rollback TENANT --list`",
        ))
    }
}

/// Whether `v` can start a deploy id (`YYYYMMDDTHHMMSSZ-xxxxxxxx`).
fn is_id_prefix(v: &str) -> bool {
    const SHAPE: &[u8] = b"99999999T999999Z-xxxxxxxx";
    !v.is_empty()
        && v.len() <= SHAPE.len()
        && v.bytes().zip(SHAPE).all(|(c, s)| match s {
            b'9' => c.is_ascii_digit(),
            b'x' => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
            _ => c == *s,
        })
}

/// An R2 bucket's name ([`bucket_name`]'s rule).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct BucketName(String);
checked_name!(BucketName);

impl BucketName {
    pub fn parse(value: &str, what: &str) -> Result<BucketName, UsageError> {
        bucket_name(value, what).map(BucketName)
    }
}

/// An R2 bucket name: 3 to 63 lowercase letters, digits and hyphens, starting and ending with a
/// letter or digit (wrangler `isValidR2BucketName`; docs/cloudflare-api.md §7).
fn bucket_name(value: &str, what: &str) -> Result<String, UsageError> {
    if value.len() >= 3 && is_lower_label(value) {
        Ok(value.to_string())
    } else {
        Err(usage!("{what} {} is not a valid R2 bucket name", shown(value)).with_hint(
            "use 3 to 63 lowercase letters, digits and hyphens, starting and ending with a letter \
             or digit",
        ))
    }
}

/// A Worker script's name ([`worker_name`]'s rule).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct WorkerName(String);
checked_name!(WorkerName);

impl WorkerName {
    pub fn parse(value: &str, what: &str) -> Result<WorkerName, UsageError> {
        worker_name(value, what).map(WorkerName)
    }
}

/// A Worker script name: letters, digits, `_` and `-`, starting with a letter and ending with a
/// letter or digit, at most 63 characters (legacy Workers docs; docs/cloudflare-api.md §8).
fn worker_name(value: &str, what: &str) -> Result<String, UsageError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_slugs_buckets_and_workers() {
        assert_eq!(
            Hostname::parse("Shop.Example.COM.", "x").unwrap(),
            "shop.example.com"
        );
        assert_eq!(
            Hostname::parse("bücher.de", "x").unwrap(),
            "xn--bcher-kva.de"
        );
        for bad in [
            "https://a.com",
            "a.com/x",
            "*.a.com",
            "localhost",
            "1.2.3.4",
            "-a.com",
            "a..com",
        ] {
            assert!(Hostname::parse(bad, "x").is_err(), "{bad}");
        }
        assert!(Hostname::parse("1.2.3.4", "x")
            .unwrap_err()
            .message
            .contains("an IP address"));
        let e = Hostname::parse("example.123", "x").unwrap_err();
        assert_eq!(
            e.message,
            "x is not a valid hostname: \"example.123\" (its last label \"123\" is all digits)"
        );
        assert!(Tenant::new("acme-shop").is_ok());
        for bad in ["", "Acme", "-a", "a-", "a/b", "..", "a.b", &"a".repeat(64)] {
            assert!(Tenant::new(bad).is_err(), "{bad}");
            assert!(Tenant::existing(bad).is_err(), "{bad}");
        }
        for reserved in ["www", "api", "fallback", "xn--80ak6aa92e", "a--b"] {
            assert!(Tenant::new(reserved).is_err(), "{reserved}");
            // A tenant made before the rule can still be named.
            assert!(Tenant::existing(reserved).is_ok(), "{reserved}");
        }
        assert!(Tenant::new_beside_fallback("edge", Some("edge.getai.page")).is_err());
        assert!(Tenant::new_beside_fallback("acme", Some("edge.getai.page")).is_ok());
        assert!(BucketName::parse("cfsetup-sites", "x").is_ok());
        assert!(BucketName::parse("ab", "x").is_err());
        assert!(WorkerName::parse("router_1", "x").is_ok());
        assert!(WorkerName::parse("1router", "x").is_err());
    }

    #[test]
    fn stored_names_parse_with_the_existing_rule() {
        let t: Tenant = serde_json::from_str("\"www\"").unwrap();
        assert_eq!(t, "www");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"www\"");
        for bad in ["\"../x\"", "\"Acme\"", "\"\""] {
            assert!(serde_json::from_str::<Tenant>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn preview_names_are_single_labels_without_double_hyphens() {
        let acme = Tenant::new("acme").unwrap();
        assert!(PreviewName::parse("feature-x", &acme).is_ok());
        assert!(PreviewName::parse("1a2b3c4d", &acme).is_ok());
        for bad in ["", "a--b", "-a", "A", "a.b", &"a".repeat(58)] {
            assert!(PreviewName::parse(bad, &acme).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_secret_in_a_name_is_never_echoed() {
        let token = "cfut_abcdefghijklmnopqrstuvwxyz0123456789ABCD";
        for e in [
            Hostname::parse(token, "PLATFORM_DOMAIN").unwrap_err(),
            BucketName::parse(token, "R2_BUCKET_NAME").unwrap_err(),
            WorkerName::parse(&format!("{token}-"), "WORKER_SCRIPT_NAME").unwrap_err(),
        ] {
            assert!(!e.message.contains("efghij"), "{}", e.message);
        }
    }

    #[test]
    fn zone_membership_custom_domains_and_versions() {
        assert!(within_zone("Fallback.GetAI.page", "getai.page"));
        assert!(within_zone("getai.page", "getai.page"));
        assert!(!within_zone("notgetai.page", "getai.page"));
        assert!(in_zone("fallback.getai.page", "getai.page", "x").is_ok());
        let e = in_zone("fallback.example.com", "getai.page", "--fallback-origin").unwrap_err();
        assert_eq!(
            e.message,
            "--fallback-origin fallback.example.com is not in the zone getai.page"
        );
        assert!(custom_domain("acme.getai.page", "getai.page").is_err());
        assert!(custom_domain("getai.page", "getai.page").is_err());
        assert!(custom_domain("shop.acme-store.com", "getai.page").is_ok());
        for ok in [
            "20260101T000000Z-aaaaaaaa",
            "20260101",
            "2026",
            "pr-42",
            "feature-x",
        ] {
            assert_eq!(Version::parse(ok).unwrap(), ok);
        }
        for bad in [
            "",
            " ",
            "*",
            "../../etc",
            "a/b",
            "a.json",
            "2026*",
            "a--b",
            "20260101T000000Z-aaaaaaaaa",
            &"a".repeat(101),
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Version::parse("").unwrap_err().message, "VERSION is empty");
    }
}
