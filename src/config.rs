//! Raw command-line values + environment + `.env`  ->  a checked [`Config`].
//!
//! Precedence is flag > process environment > `.env` file, resolved here and nowhere else. The `.env`
//! file is read into a map (never into the process environment), so nothing else in the program sees
//! it and tests can drive every level. Everything that can be checked without the network is checked
//! here, and a problem is a [`UsageError`] (exit status 2) that names the option and the fix.
//!
//! This module must not import the API client: configuration exists before any client does.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use crate::cli::{ColorChoice, GlobalArgs};
use crate::error::{usage, UsageError};
use crate::secret::Secret;

pub const DEFAULT_API_URL: &str = "https://api.cloudflare.com/client/v4";
pub const DEFAULT_ENV_FILE: &str = ".env";

/// Where setting values come from, below the flags: the process environment, then the `.env` map.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    process: HashMap<String, String>,
    file: HashMap<String, String>,
}

impl Vars {
    pub fn new(process: HashMap<String, String>, file: HashMap<String, String>) -> Self {
        Vars { process, file }
    }

    /// The value of `name`: process environment first, then `.env`. Empty values count as unset.
    pub fn get(&self, name: &str) -> Option<String> {
        [&self.process, &self.file]
            .into_iter()
            .filter_map(|m| m.get(name))
            .find(|v| !v.trim().is_empty())
            .cloned()
    }
}

/// Who is asking: an API token, or the Global API Key with its email.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub token: Option<Secret>,
    pub email: Option<String>,
    pub global_key: Option<Secret>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// How the report and progress are shown.
#[derive(Debug, Clone, Copy)]
pub struct OutputSettings {
    pub json: bool,
    pub verbosity: Verbosity,
    pub color: ColorChoice,
}

/// The checked configuration every command starts from.
#[derive(Debug, Clone)]
pub struct Config {
    pub account_id: Option<String>,
    pub zone_id: Option<String>,
    pub credentials: Credentials,
    pub api_url: Url,
    /// `--via` / `CFSETUP_VIA`: which API carries objects.
    pub via: crate::cli::Via,
    /// `--s3-endpoint` / `R2_S3_ENDPOINT`; `None` is the account's own endpoint.
    pub s3_endpoint: Option<Url>,
    /// The `.env` file in use: `--write-env` without a path writes here.
    pub env_file: PathBuf,
    pub output: OutputSettings,
    vars: Vars,
}

impl Config {
    /// Builds the configuration from the parsed flags, the process environment and the `.env` file.
    pub fn load(
        args: &GlobalArgs,
        process_env: HashMap<String, String>,
    ) -> Result<Self, UsageError> {
        let (env_file, file_vars) = read_env_file(args.env_file.as_deref())?;
        let vars = Vars::new(process_env, file_vars);
        Self::from_parts(args, vars, env_file)
    }

    pub fn from_parts(
        args: &GlobalArgs,
        vars: Vars,
        env_file: PathBuf,
    ) -> Result<Self, UsageError> {
        let pick = |flag: &Option<String>, names: &[&str]| -> Option<(String, String)> {
            if let Some(v) = flag.as_ref().filter(|v| !v.trim().is_empty()) {
                return Some((v.clone(), String::new()));
            }
            names
                .iter()
                .find_map(|n| vars.get(n).map(|v| (v, (*n).to_string())))
        };

        let account_id = pick(&args.account_id, &["CLOUDFLARE_ACCOUNT_ID"])
            .map(|(v, src)| hex_id(&v, &source_name("--account-id", &src)))
            .transpose()?;
        let zone_id = pick(&args.zone_id, &["CLOUDFLARE_ZONE_ID"])
            .map(|(v, src)| hex_id(&v, &source_name("--zone-id", &src)))
            .transpose()?;

        let token = pick(&args.api_token, &["CLOUDFLARE_API_TOKEN"])
            .map(|(v, src)| credential(&v, &source_name("--api-token", &src)))
            .transpose()?;
        let global_key = pick(
            &args.global_key,
            &["CLOUDFLARE_GLOBAL_KEY", "CLOUDFLARE_API_KEY"],
        )
        .map(|(v, src)| credential(&v, &source_name("--global-key", &src)))
        .transpose()?;
        let email = pick(&args.email, &["CLOUDFLARE_EMAIL"])
            .map(|(v, src)| email(&v, &source_name("--email", &src)))
            .transpose()?;

        let api_url = match pick(&args.api_url, &["CLOUDFLARE_API_BASE_URL"]) {
            Some((v, src)) => api_url(&v, &source_name("--api-url", &src))?,
            None => Url::parse(DEFAULT_API_URL).expect("the default API URL is valid"),
        };

        let via = match (args.via, vars.get("CFSETUP_VIA")) {
            (Some(v), _) => v,
            (None, Some(v)) => via(&v)?,
            (None, None) => crate::cli::Via::Auto,
        };
        let s3_endpoint = pick(&args.s3_endpoint, &["R2_S3_ENDPOINT"])
            .map(|(v, src)| self::api_url(&v, &source_name("--s3-endpoint", &src)))
            .transpose()?;

        let verbosity = if args.quiet > 0 {
            Verbosity::Quiet
        } else if args.verbose > 0 {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        };

        Ok(Config {
            account_id,
            zone_id,
            credentials: Credentials {
                token,
                email,
                global_key,
            },
            api_url,
            via,
            s3_endpoint,
            env_file,
            output: OutputSettings {
                json: args.json,
                verbosity,
                color: args.color,
            },
            vars,
        })
    }

    /// A command-level setting: the flag if given, else the environment variable, else `.env`.
    pub fn setting(&self, flag: Option<&str>, env_name: &str) -> Option<String> {
        flag.filter(|v| !v.trim().is_empty())
            .map(str::to_string)
            .or_else(|| self.vars.get(env_name))
    }

    pub fn require_account_id(&self) -> Result<&str, UsageError> {
        self.account_id.as_deref().ok_or_else(|| {
            usage!("no account ID: pass --account-id or set CLOUDFLARE_ACCOUNT_ID").with_hint(
                "the dashboard shows it on the account's home page, under Account details",
            )
        })
    }

    pub fn require_zone_id(&self) -> Result<&str, UsageError> {
        self.zone_id.as_deref().ok_or_else(|| {
            usage!("no zone ID: pass --zone-id or set CLOUDFLARE_ZONE_ID")
                .with_hint("the dashboard shows it on the zone's Overview page, under API")
        })
    }
}

fn source_name(flag: &str, env: &str) -> String {
    if env.is_empty() {
        flag.to_string()
    } else {
        env.to_string()
    }
}

/// Reads the `.env` file into a map. The default file may be missing; a named one may not.
fn read_env_file(named: Option<&Path>) -> Result<(PathBuf, HashMap<String, String>), UsageError> {
    let path = named.map_or_else(|| PathBuf::from(DEFAULT_ENV_FILE), Path::to_path_buf);
    if !path.exists() {
        if named.is_some() {
            return Err(usage!("--env-file {}: no such file", path.display())
                .with_hint("create it from .env.example, or leave out --env-file"));
        }
        return Ok((path, HashMap::new()));
    }
    let iter = dotenvy::from_path_iter(&path)
        .map_err(|e| usage!("cannot read {}: {e}", path.display()))?;
    let mut map = HashMap::new();
    for item in iter {
        let (k, v) = item.map_err(|e| {
            usage!("{} is not a valid .env file: {e}", path.display())
                .with_hint("each line is NAME=value; quote values that contain spaces")
        })?;
        map.insert(k, v);
    }
    Ok((path, map))
}

/// An account, zone or token ID: 32 lowercase hex characters.
pub fn hex_id(value: &str, what: &str) -> Result<String, UsageError> {
    let v = value.trim();
    if v.len() == 32
        && v.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Ok(v.to_string());
    }
    let hint = if v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        "write it in lowercase".to_string()
    } else {
        format!(
            "an ID is 32 lowercase hex characters (this one has {} characters); copy it from the \
             dashboard's Overview page",
            v.chars().count()
        )
    };
    Err(usage!("{what} is not a valid ID: {v:?}").with_hint(hint))
}

/// A token or key: printable ASCII without spaces or quotes. Never echoes the value.
fn credential(value: &str, what: &str) -> Result<Secret, UsageError> {
    let v = value.trim();
    if v.bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\'')
    {
        Ok(Secret::new(v))
    } else {
        Err(
            usage!("{what} contains spaces, quotes or non-ASCII characters")
                .with_hint("paste the value alone, without quotes or a `Bearer ` prefix"),
        )
    }
}

fn email(value: &str, what: &str) -> Result<String, UsageError> {
    let v = value.trim();
    let ok = match v.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !v.chars().any(char::is_whitespace)
        }
        None => false,
    };
    if ok {
        Ok(v.to_string())
    } else {
        Err(usage!("{what} is not an email address: {v:?}")
            .with_hint("use the email you log in to the Cloudflare dashboard with"))
    }
}

/// `CFSETUP_VIA`: `auto`, `s3` or `rest`, in any case.
fn via(value: &str) -> Result<crate::cli::Via, UsageError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "auto" | "" => Ok(crate::cli::Via::Auto),
        "s3" => Ok(crate::cli::Via::S3),
        "rest" => Ok(crate::cli::Via::Rest),
        other => Err(usage!(
            "CFSETUP_VIA is {other:?}; it must be auto, s3 or rest"
        )),
    }
}

/// The API base URL: https, or plain http to a loopback host (the emulator).
pub fn api_url(value: &str, what: &str) -> Result<Url, UsageError> {
    let trimmed = value.trim().trim_end_matches('/');
    let url = Url::parse(trimmed).map_err(|e| {
        usage!("{what} is not a URL: {trimmed:?} ({e})")
            .with_hint(format!("for example {DEFAULT_API_URL}"))
    })?;
    match url.scheme() {
        "https" => {}
        "http" if is_loopback(&url) => {}
        "http" => {
            return Err(usage!("{what} uses plain http to a non-loopback host")
                .with_hint("use https; plain http is only for 127.0.0.1, ::1 or localhost"))
        }
        other => {
            return Err(usage!(
                "{what} has an unsupported scheme {other:?}; use https"
            ))
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(usage!("{what} must not have a query or fragment"));
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// A duration such as `90d`, `12h`, `1y` or `10m`.
pub fn duration(value: &str, what: &str) -> Result<Duration, UsageError> {
    let d = humantime::parse_duration(value.trim()).map_err(|e| {
        usage!("{what} is not a duration: {value:?} ({e})")
            .with_hint("write a number and a unit, such as 90d, 12h, 30m or 1y")
    })?;
    if d.is_zero() {
        return Err(usage!("{what} must be longer than zero"));
    }
    Ok(d)
}

/// A hostname, converted to lowercase ASCII (punycode for IDN). No wildcard, scheme, port or path.
pub fn hostname(value: &str, what: &str) -> Result<String, UsageError> {
    let v = value.trim().trim_end_matches('.');
    let fix = "give a bare hostname such as shop.example.com (no scheme, port, path or wildcard)";
    if v.is_empty() || v.contains(['/', ':', '*', ' ', '@']) {
        return Err(usage!("{what} is not a hostname: {value:?}").with_hint(fix));
    }
    let ascii = idna::domain_to_ascii(v)
        .map_err(|_| usage!("{what} is not a valid hostname: {value:?}").with_hint(fix))?;
    let labels: Vec<&str> = ascii.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if ascii.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(usage!("{what} is not a valid hostname: {value:?}").with_hint(fix));
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(usage!("{what} is an IP address, not a hostname: {value:?}").with_hint(fix));
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
    let ok = !value.is_empty()
        && value.len() <= 63
        && !value.starts_with('-')
        && !value.ends_with('-')
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
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

/// An R2 bucket name: 3 to 63 lowercase letters, digits and hyphens, starting and ending with a
/// letter or digit (wrangler `isValidR2BucketName`; cloudflare-api.md §7).
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
        Err(usage!("{what} {value:?} is not a valid R2 bucket name").with_hint(
            "use 3 to 63 lowercase letters, digits and hyphens, starting and ending with a letter \
             or digit",
        ))
    }
}

/// A Worker script name: letters, digits, `_` and `-`, starting with a letter and ending with a
/// letter or digit, at most 63 characters (legacy Workers docs; cloudflare-api.md §8).
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
            usage!("{what} {value:?} is not a valid Worker name").with_hint(
                "use up to 63 letters, digits, _ and -, starting with a letter and ending with a \
             letter or digit",
            ),
        )
    }
}

/// An R2 jurisdiction for the `cf-r2-jurisdiction` header (cloudflare-api.md §7).
pub fn jurisdiction(value: &str) -> Result<Option<String>, UsageError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "default" => Ok(None),
        j @ ("eu" | "fedramp" | "fedramp-high") => Ok(Some(j.to_string())),
        _ => Err(usage!("--jurisdiction {value:?} is not an R2 jurisdiction")
            .with_hint("use eu, fedramp or fedramp-high, or leave it out")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(process: &[(&str, &str)], file: &[(&str, &str)]) -> Vars {
        let m = |p: &[(&str, &str)]| {
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Vars::new(m(process), m(file))
    }

    const A: &str = "0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210";
    const C: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn flag_beats_environment_beats_env_file() {
        let args = GlobalArgs {
            account_id: Some(A.into()),
            ..Default::default()
        };
        let v = vars(
            &[("CLOUDFLARE_ACCOUNT_ID", B), ("CLOUDFLARE_ZONE_ID", B)],
            &[
                ("CLOUDFLARE_ACCOUNT_ID", C),
                ("CLOUDFLARE_ZONE_ID", C),
                ("CLOUDFLARE_EMAIL", "a@b.co"),
            ],
        );
        let c = Config::from_parts(&args, v, ".env".into()).unwrap();
        assert_eq!(c.account_id.as_deref(), Some(A), "flag wins");
        assert_eq!(c.zone_id.as_deref(), Some(B), "process env beats .env");
        assert_eq!(
            c.credentials.email.as_deref(),
            Some("a@b.co"),
            ".env is used last"
        );
    }

    #[test]
    fn api_key_is_an_alias_of_global_key() {
        let v = vars(&[("CLOUDFLARE_API_KEY", "abc123")], &[]);
        let c = Config::from_parts(&GlobalArgs::default(), v, ".env".into()).unwrap();
        assert_eq!(c.credentials.global_key.unwrap().expose(), "abc123");
        let v = vars(
            &[
                ("CLOUDFLARE_API_KEY", "old"),
                ("CLOUDFLARE_GLOBAL_KEY", "new"),
            ],
            &[],
        );
        let c = Config::from_parts(&GlobalArgs::default(), v, ".env".into()).unwrap();
        assert_eq!(c.credentials.global_key.unwrap().expose(), "new");
    }

    #[test]
    fn bad_ids_name_the_source_and_the_fix() {
        let v = vars(&[("CLOUDFLARE_ZONE_ID", "xyz")], &[]);
        let e = Config::from_parts(&GlobalArgs::default(), v, ".env".into()).unwrap_err();
        assert_eq!(e.message, "CLOUDFLARE_ZONE_ID is not a valid ID: \"xyz\"");
        assert!(e.hint.unwrap().contains("32 lowercase hex"));
        let e = hex_id(&A.to_uppercase(), "--account-id").unwrap_err();
        assert_eq!(e.hint.as_deref(), Some("write it in lowercase"));
    }

    #[test]
    fn api_url_allows_http_only_on_loopback() {
        assert!(api_url("http://127.0.0.1:8787/client/v4", "x").is_ok());
        assert!(api_url("http://localhost:1/client/v4/", "x").is_ok());
        assert!(api_url("http://[::1]:1/client/v4", "x").is_ok());
        assert!(api_url("https://api.cloudflare.com/client/v4", "x").is_ok());
        assert!(api_url("http://api.cloudflare.com/client/v4", "x").is_err());
        assert!(api_url("ftp://127.0.0.1/", "x").is_err());
        assert_eq!(
            api_url("http://127.0.0.1:1/client/v4/", "x")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:1/client/v4"
        );
    }

    #[test]
    fn credentials_with_spaces_are_refused_without_echoing_them() {
        let args = GlobalArgs {
            api_token: Some("Bearer abc".into()),
            ..Default::default()
        };
        let e = Config::from_parts(&args, Vars::default(), ".env".into()).unwrap_err();
        assert!(!e.message.contains("abc"));
    }

    #[test]
    fn emails_durations_hostnames_slugs() {
        assert!(email("a@b.co", "x").is_ok());
        assert!(email("ab.co", "x").is_err());
        assert!(email("a@b", "x").is_err());
        assert_eq!(
            duration("90d", "x").unwrap(),
            Duration::from_secs(90 * 86400)
        );
        assert!(duration("ninety", "x").is_err());
        assert!(duration("0s", "x").is_err());
        assert_eq!(
            hostname("Shop.Example.COM.", "x").unwrap(),
            "shop.example.com"
        );
        assert_eq!(hostname("bücher.de", "x").unwrap(), "xn--bcher-kva.de");
        for bad in [
            "https://a.com",
            "a.com/x",
            "*.a.com",
            "localhost",
            "1.2.3.4",
            "-a.com",
            "a..com",
        ] {
            assert!(hostname(bad, "x").is_err(), "{bad}");
        }
        assert!(tenant("acme-shop").is_ok());
        for bad in ["", "Acme", "-a", "a-", "a/b", "..", "a.b", &"a".repeat(64)] {
            assert!(tenant(bad).is_err(), "{bad}");
        }
        for reserved in ["www", "api", "fallback", "xn--80ak6aa92e", "a--b"] {
            assert!(tenant(reserved).is_err(), "{reserved}");
        }
        assert!(tenant_beside_fallback("edge", Some("edge.getai.page")).is_err());
        assert!(tenant_beside_fallback("acme", Some("edge.getai.page")).is_ok());
        assert!(bucket_name("cfsetup-sites", "x").is_ok());
        assert!(bucket_name("ab", "x").is_err());
        assert!(worker_name("router_1", "x").is_ok());
        assert!(worker_name("1router", "x").is_err());
        assert_eq!(jurisdiction("EU").unwrap().as_deref(), Some("eu"));
        assert!(jurisdiction("mars").is_err());
    }

    #[test]
    fn missing_named_env_file_is_an_error_but_default_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.env");
        assert!(read_env_file(Some(&missing)).is_err());
        let file = dir.path().join("x.env");
        std::fs::write(
            &file,
            "CLOUDFLARE_EMAIL=a@b.co\n# comment\nPLATFORM_DOMAIN=\"getai.page\"\n",
        )
        .unwrap();
        let (_, map) = read_env_file(Some(&file)).unwrap();
        assert_eq!(map["PLATFORM_DOMAIN"], "getai.page");
    }
}
