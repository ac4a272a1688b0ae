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

use crate::cli::GlobalArgs;
use crate::error::{shown, usage, UsageError};
use crate::output::{OutputSettings, Verbosity};
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

    /// Where `name`'s value comes from: `"the environment"` or `"the .env file"`.
    fn origin(&self, name: &str) -> Option<&'static str> {
        let set = |m: &HashMap<String, String>| m.get(name).is_some_and(|v| !v.trim().is_empty());
        if set(&self.process) {
            Some("the environment")
        } else if set(&self.file) {
            Some("the .env file")
        } else {
            None
        }
    }
}

/// Who is asking: an API token, or the Global API Key with its email.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    pub token: Option<Secret>,
    pub email: Option<String>,
    pub global_key: Option<Secret>,
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
    /// `CLOUDFLARE_API_TOKEN_ID` (environment or `.env`; no flag): the API token's id, its S3
    /// Access Key ID, so a run over S3 need not verify the token to learn it. Not a secret.
    pub api_token_id: Option<String>,
    /// Notes about the configuration itself, printed once on stderr when the command starts.
    pub notes: Vec<String>,
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
        let args = secrets_from_stdin(args, &mut std::io::stdin().lock())?;
        Self::from_parts(&args, vars, env_file)
    }

    /// The configuration of a command that needs no account and no credentials (`permissions`,
    /// `demo`, `emulator`): only the output flags. Neither the environment nor `.env` is read, so
    /// a broken `.env` or a bad `CLOUDFLARE_ACCOUNT_ID` cannot stop it, and nothing of the user's
    /// leaks into it.
    pub fn offline(args: &GlobalArgs) -> Self {
        let output_only = GlobalArgs {
            json: args.json,
            verbose: args.verbose,
            quiet: args.quiet,
            color: args.color,
            ..GlobalArgs::default()
        };
        Self::from_parts(&output_only, Vars::default(), PathBuf::new())
            .expect("output flags alone always make a valid configuration")
    }

    pub fn from_parts(
        args: &GlobalArgs,
        vars: Vars,
        env_file: PathBuf,
    ) -> Result<Self, UsageError> {
        // An empty flag is a mistake (an unset shell variable, `--zone-id ''`), never a reason to
        // fall back quietly to the environment or `.env`.
        for (flag, value) in [
            ("--account-id", &args.account_id),
            ("--zone-id", &args.zone_id),
            ("--api-token", &args.api_token),
            ("--email", &args.email),
            ("--global-key", &args.global_key),
            ("--api-url", &args.api_url),
        ] {
            if value.as_ref().is_some_and(|v| v.trim().is_empty()) {
                return Err(empty_flag(flag));
            }
        }
        let pick = |flag: &Option<String>, names: &[&str]| -> Option<(String, String)> {
            if let Some(v) = flag {
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
            .map(|(v, src)| credential(&v, &source_name("--api-token", &src), Credential::Token))
            .transpose()?;
        let global_key = pick(
            &args.global_key,
            &["CLOUDFLARE_GLOBAL_KEY", "CLOUDFLARE_API_KEY"],
        )
        .map(|(v, src)| {
            credential(
                &v,
                &source_name("--global-key", &src),
                Credential::GlobalKey,
            )
        })
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
        let mut api_token_id = pick(&None, &["CLOUDFLARE_API_TOKEN_ID"])
            .map(|(v, src)| hex_id(&v, &src))
            .transpose()?;
        // The id is only this token's when both come from the same place: `create-token
        // --write-env` writes them together. An id from `.env` beside a token from the
        // environment or a flag (or the reverse) would derive wrong S3 keys, so it is not used:
        // the token is verified once instead (issue 17).
        let mut notes = Vec::new();
        if api_token_id.is_some() && token.is_some() {
            let token_from = if args.api_token.is_some() {
                Some("--api-token")
            } else {
                vars.origin("CLOUDFLARE_API_TOKEN")
            };
            let id_from = vars.origin("CLOUDFLARE_API_TOKEN_ID");
            if token_from != id_from {
                notes.push(format!(
                    "CLOUDFLARE_API_TOKEN_ID comes from {}, but the token from {}: the id is not \
                     used (it may be another token's); the token is verified once instead",
                    id_from.unwrap_or("elsewhere"),
                    token_from.unwrap_or("elsewhere")
                ));
                api_token_id = None;
            }
        }

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
            api_token_id,
            notes,
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
    // Read as bytes: an error about the text must not quote it (it holds secrets).
    let bytes = std::fs::read(&path).map_err(|e| usage!("cannot read {}: {e}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        usage!(
            "{} is not a valid .env file: line {line} is not UTF-8 text",
            path.display()
        )
        .with_hint("save the file as UTF-8")
    })?;
    let pairs = crate::envfile::parse(&text).map_err(|e| {
        usage!("{} is not a valid .env file: {e}", path.display()).with_hint(
            "each line is NAME=value; quote a value that contains spaces or #, and close the quote",
        )
    })?;
    let map: HashMap<String, String> = pairs.into_iter().collect();
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
    Err(usage!("{what} is not a valid ID: {}", shown(v)).with_hint(hint))
}

/// `--api-token -` and `--global-key -` read the value from the first line of stdin, so that it
/// never appears in the process list (`ps`), which anyone on the machine can read.
fn secrets_from_stdin(
    args: &GlobalArgs,
    stdin: &mut dyn std::io::BufRead,
) -> Result<GlobalArgs, UsageError> {
    let mut args = args.clone();
    let dash = |v: &Option<String>| v.as_deref() == Some("-");
    if dash(&args.api_token) && dash(&args.global_key) {
        return Err(
            usage!("only one of --api-token and --global-key can be read from stdin")
                .with_hint("put the other in the environment or .env"),
        );
    }
    for (flag, value) in [
        ("--api-token", &mut args.api_token),
        ("--global-key", &mut args.global_key),
    ] {
        if value.as_deref() == Some("-") {
            let mut line = String::new();
            stdin
                .read_line(&mut line)
                .map_err(|e| usage!("{flag} -: cannot read stdin: {e}"))?;
            let line = line.trim().to_string();
            if line.is_empty() {
                return Err(usage!("{flag} -: stdin is empty").with_hint(format!(
                    "pipe the value in, e.g. `pass show cf | cfsetup {flag} - …`"
                )));
            }
            *value = Some(line);
        }
    }
    Ok(args)
}

/// Refuses an empty value for any option or argument given on the command line (`--zone-id ''`,
/// `--bucket ''`, `rollback acme ''`): it is a mistake, usually an unset shell variable, and must
/// not quietly mean "unset" and fall back to the environment, `.env` or a default.
pub fn no_empty_values(cmd: &clap::Command, matches: &clap::ArgMatches) -> Result<(), UsageError> {
    for id in matches.ids() {
        if matches.value_source(id.as_str()) != Some(clap::parser::ValueSource::CommandLine) {
            continue;
        }
        let Ok(Some(mut values)) = matches.try_get_raw(id.as_str()) else {
            continue;
        };
        if values.any(|v| v.to_string_lossy().trim().is_empty()) {
            let name = cmd
                .get_arguments()
                .find(|a| a.get_id() == id)
                .map(|a| match (a.get_long(), a.get_value_names()) {
                    (Some(long), _) => format!("--{long}"),
                    (None, Some([name, ..])) => name.to_string(),
                    _ => id.to_string(),
                })
                .unwrap_or_else(|| id.to_string());
            return Err(empty_flag(&name));
        }
    }
    if let Some((name, sub)) = matches.subcommand() {
        if let Some(sub_cmd) = cmd.find_subcommand(name) {
            no_empty_values(sub_cmd, sub)?;
        }
    }
    Ok(())
}

/// A command that needs no account (`permissions`, `demo`, `emulator`, `completions`, `man`)
/// refuses the global options it does not honour, rather than ignore them silently; its `--help`
/// does not list them either (`cli::ignored_globals`).
pub fn no_ignored_options(matches: &clap::ArgMatches) -> Result<(), UsageError> {
    let Some((name, sub)) = matches.subcommand() else {
        return Ok(());
    };
    let given = |id: &str| {
        [matches, sub]
            .iter()
            .any(|m| m.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
    };
    match crate::cli::ignored_globals(name)
        .iter()
        .find(|id| given(id))
    {
        Some(id) => {
            let flag = format!("--{}", id.replace('_', "-"));
            Err(
                usage!("`cfsetup {name}` does not use {flag}").with_hint(format!(
                    "leave it out; `cfsetup {name} --help` lists the options it takes"
                )),
            )
        }
        None => Ok(()),
    }
}

/// The error for `--flag ''`.
pub fn empty_flag(flag: &str) -> UsageError {
    usage!("{flag} is empty").with_hint(empty_hint(flag))
}

/// The hint for an empty `flag`, per option: only an option with an environment variable can be
/// "left out to use the environment or .env"; for the others that advice is wrong, and for
/// `--preview` dangerous (`--preview "$BRANCH"` with an unset variable would deploy to production).
fn empty_hint(flag: &str) -> String {
    let unset = "is a shell variable unset?";
    let env = match flag {
        "--account-id" => Some("CLOUDFLARE_ACCOUNT_ID"),
        "--zone-id" => Some("CLOUDFLARE_ZONE_ID"),
        "--api-token" => Some("CLOUDFLARE_API_TOKEN"),
        "--email" => Some("CLOUDFLARE_EMAIL"),
        "--global-key" => Some("CLOUDFLARE_GLOBAL_KEY"),
        "--api-url" => Some("CLOUDFLARE_API_BASE_URL"),
        "--bucket" => Some("R2_BUCKET_NAME"),
        "--jurisdiction" => Some("R2_JURISDICTION"),
        "--platform-domain" => Some("PLATFORM_DOMAIN"),
        "--worker-name" => Some("WORKER_SCRIPT_NAME"),
        "--fallback-origin" | "--cname-target" => Some("SAAS_FALLBACK_ORIGIN"),
        "--via" => Some("CFSETUP_VIA"),
        "--s3-endpoint" => Some("R2_S3_ENDPOINT"),
        _ => None,
    };
    match (flag, env) {
        (_, Some(var)) => format!(
            "give {flag} a value, or leave it out to use {var} from the environment or .env ({unset})"
        ),
        ("--preview", _) => format!(
            "give the preview a name (--preview=NAME), or --preview alone for a generated one; \
             without --preview the deploy goes to production, so an empty name is refused ({unset})"
        ),
        ("--wait", _) => format!(
            "give a duration (--wait=10m), or --wait alone for the default; leave it out not to \
             wait ({unset})"
        ),
        ("--write-env", _) => format!(
            "give a file (--write-env=ci.env), or --write-env alone for .env ({unset})"
        ),
        _ => format!("give {flag} a value, or leave it out for its default ({unset})"),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential {
    Token,
    GlobalKey,
}

/// A token or key: printable ASCII without spaces or quotes, and plausible in form and length for
/// its kind (docs/cloudflare-api.md §1 "Token formats"), so a truncated paste or the wrong variable is
/// caught before a request. Lenient on purpose: a real credential must never be refused. The
/// message says what a real one looks like and how long this one is; it never echoes the value.
fn credential(value: &str, what: &str, kind: Credential) -> Result<Secret, UsageError> {
    let v = value.trim();
    if !v
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\'')
    {
        return Err(
            usage!("{what} contains spaces, quotes or non-ASCII characters")
                .with_hint("paste the value alone, without quotes or a `Bearer ` prefix"),
        );
    }
    let n = v.len();
    let plausible = match kind {
        // Legacy tokens are 40 characters; prefixed ones (cfut_, cfat_, cfoat_) about 50.
        Credential::Token => {
            (30..=256).contains(&n)
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        }
        // Legacy keys are 37 to 45 hex characters; new ones start with cfk_.
        Credential::GlobalKey => match v.strip_prefix("cfk_") {
            Some(rest) => {
                (30..=256).contains(&rest.len())
                    && rest
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
            }
            None => (32..=64).contains(&n) && v.bytes().all(|b| b.is_ascii_hexdigit()),
        },
    };
    if plausible {
        return Ok(Secret::new(v));
    }
    let (what_it_is, looks_like) = match kind {
        Credential::Token => (
            "an API token",
            "a token is 40 letters, digits, - and _, or starts with cfut_ or cfat_ (about 50 \
             characters)",
        ),
        Credential::GlobalKey => (
            "a Global API Key",
            "a Global API Key is 37 to 45 hexadecimal characters, or starts with cfk_",
        ),
    };
    let plural = if n == 1 { "" } else { "s" };
    Err(
        usage!("{what} does not look like {what_it_is} ({n} character{plural})").with_hint(
            format!("{looks_like}; copy it again from the dashboard (My Profile > API Tokens)"),
        ),
    )
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
        Err(usage!("{what} is not an email address: {}", shown(v))
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
            "CFSETUP_VIA is {}; it must be auto, s3 or rest",
            shown(other)
        )),
    }
}

/// The API base URL: https, or plain http to a loopback host (the emulator).
pub fn api_url(value: &str, what: &str) -> Result<Url, UsageError> {
    let trimmed = value.trim().trim_end_matches('/');
    // A value with `@` may carry a password: never echo it.
    let shown = if trimmed.contains('@') {
        String::new()
    } else {
        format!(" {trimmed:?}")
    };
    let url = Url::parse(trimmed).map_err(|e| {
        usage!("{what} is not a URL:{shown} ({e})")
            .with_hint(format!("for example {DEFAULT_API_URL}"))
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            usage!("{what} must not contain a user name or password").with_hint(
                "credentials go in CLOUDFLARE_API_TOKEN (or the email and Global API Key), never \
                 in the URL",
            ),
        );
    }
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

pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// The longest duration any option takes: 100 years. Longer ones are surely typos, and adding
/// them to the clock could overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 31_557_600); // humantime years

/// A duration such as `90d`, `12h`, `1y` or `10m`, longer than zero and at most 100 years.
/// Rewrites years and months as whole days (`1y` → `365d`, `2months` → `60d`): humantime counts
/// a year as 365.25 days and a month as 30.44, so `--expires-in 1y` ended six hours past the date
/// a user expects. Anything it does not recognise is left for humantime to refuse.
fn calendar_days(value: &str) -> String {
    let mut out = Vec::new();
    let mut rest = value.trim();
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let after = &rest[digits..];
        let unit_len = after.len() - after.trim_start_matches(|c: char| c.is_alphabetic()).len();
        if digits == 0 || unit_len == 0 {
            return value.to_string();
        }
        let (n, unit) = (&rest[..digits], &after[..unit_len]);
        let days = match unit {
            "y" | "year" | "years" => Some(365),
            "M" | "month" | "months" => Some(30),
            _ => None,
        };
        match (days, n.parse::<u64>()) {
            (Some(per), Ok(n)) => out.push(format!("{}d", n.saturating_mul(per))),
            _ => out.push(format!("{n}{unit}")),
        }
        rest = after[unit_len..].trim_start();
    }
    out.join(" ")
}

pub fn duration(value: &str, what: &str) -> Result<Duration, UsageError> {
    let d = humantime::parse_duration(&calendar_days(value)).map_err(|e| {
        usage!("{what} is not a duration: {} ({e})", shown(value))
            .with_hint("write a number and a unit, such as 90d, 12h, 30m or 1y")
    })?;
    if d.is_zero() {
        return Err(usage!("{what} must be longer than zero"));
    }
    if d > MAX_DURATION {
        return Err(usage!("{what} {value} is out of range: at most 100 years")
            .with_hint("write a shorter duration, such as 1y or 90d"));
    }
    Ok(d)
}

/// An R2 jurisdiction for the `cf-r2-jurisdiction` header. Buckets are in `default`, `eu` or
/// `fedramp` only (docs/cloudflare-api.md §7 "Jurisdiction", from R2's `r2/reference/data-location.mdx`);
/// `fedramp-high` is documented only for Worker bindings (§8 "Bindings"), so it is refused here,
/// before any request, rather than guessed at. Note that the Python SDK 5.9 types the header as
/// `default|eu|us|fedramp|fedramp-high` (`resources/r2/buckets/buckets.py`), as the TS SDK's
/// `Bucket.jurisdiction` does (§7): the docs, not the generated enums, decide here.
pub fn jurisdiction(value: &str) -> Result<Option<String>, UsageError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "default" => Ok(None),
        j @ ("eu" | "fedramp") => Ok(Some(j.to_string())),
        "fedramp-high" => Err(usage!(
            "--jurisdiction fedramp-high is not a jurisdiction an R2 bucket can be in"
        )
        .with_hint(
            "R2 buckets are in the default jurisdiction, eu or fedramp; fedramp-high is known \
             only to Worker bindings (R2's data-location docs): use fedramp, or leave it out",
        )),
        _ => Err(
            usage!("--jurisdiction {} is not an R2 jurisdiction", shown(value))
                .with_hint("use eu or fedramp, or leave it out"),
        ),
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
        let old = "0123456789abcdef0123456789abcdef01234";
        let new = "fedcba9876543210fedcba9876543210fedcb";
        let v = vars(&[("CLOUDFLARE_API_KEY", old)], &[]);
        let c = Config::from_parts(&GlobalArgs::default(), v, ".env".into()).unwrap();
        assert_eq!(c.credentials.global_key.unwrap().expose(), old);
        let v = vars(
            &[("CLOUDFLARE_API_KEY", old), ("CLOUDFLARE_GLOBAL_KEY", new)],
            &[],
        );
        let c = Config::from_parts(&GlobalArgs::default(), v, ".env".into()).unwrap();
        assert_eq!(c.credentials.global_key.unwrap().expose(), new);
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
    fn implausible_credentials_are_refused_and_real_forms_accepted() {
        let token = |v: &str| credential(v, "--api-token", Credential::Token);
        let key = |v: &str| credential(v, "--global-key", Credential::GlobalKey);
        // Real forms: legacy 40-char tokens, prefixed tokens, 37-45 hex keys, cfk_ keys.
        assert!(token("Ab3-_xYz0123456789Ab3-_xYz0123456789abcd").is_ok());
        assert!(token("cfut_0123456789abcdefghijABCDEFGHIJ0123456789ab12cd").is_ok());
        assert!(token("cfat_0123456789abcdefghijABCDEFGHIJ0123456789ab12cd").is_ok());
        assert!(key("c2547eb745079dac9320b638f5e225cf483cc").is_ok());
        assert!(key(&"a".repeat(45)).is_ok());
        assert!(key("cfk_0123456789abcdefghijABCDEFGHIJ0123456789ab12cd").is_ok());
        let e = token("x").unwrap_err();
        assert_eq!(
            e.message,
            "--api-token does not look like an API token (1 character)"
        );
        assert!(e.hint.unwrap().contains("cfut_"));
        assert!(token(&"a".repeat(5000)).is_err());
        let e = key("short").unwrap_err();
        assert_eq!(
            e.message,
            "--global-key does not look like a Global API Key (5 characters)"
        );
        assert!(key("not-hex-but-long-enough-not-hex-but-long").is_err());
    }

    #[test]
    fn a_year_is_365_days_and_a_month_30() {
        let day = 86_400;
        assert_eq!(duration("1y", "x").unwrap().as_secs(), 365 * day);
        assert_eq!(duration("2months", "x").unwrap().as_secs(), 60 * day);
        assert_eq!(
            duration("1y 12h", "x").unwrap().as_secs(),
            365 * day + 12 * 3600
        );
        assert_eq!(duration("90d", "x").unwrap().as_secs(), 90 * day);
        assert!(duration("soon", "x").is_err());
    }

    #[test]
    fn each_empty_option_gets_its_own_hint() {
        let preview = empty_flag("--preview").hint.unwrap();
        assert!(preview.contains("production"), "{preview}");
        assert!(!preview.contains("environment"), "{preview}");
        let bucket = empty_flag("--bucket").hint.unwrap();
        assert!(bucket.contains("R2_BUCKET_NAME"), "{bucket}");
        let grace = empty_flag("--grace").hint.unwrap();
        assert!(!grace.contains("environment"), "{grace}");
        assert!(grace.contains("default"), "{grace}");
    }

    #[test]
    fn empty_flags_and_userinfo_in_the_api_url_are_refused() {
        let args = GlobalArgs {
            zone_id: Some(String::new()),
            ..Default::default()
        };
        let v = vars(&[], &[("CLOUDFLARE_ZONE_ID", A)]);
        let e = Config::from_parts(&args, v, ".env".into()).unwrap_err();
        assert_eq!(e.message, "--zone-id is empty");
        let e = api_url("http://user:hunter2@127.0.0.1:1/client/v4", "--api-url").unwrap_err();
        assert_eq!(
            e.message,
            "--api-url must not contain a user name or password"
        );
        assert!(api_url("https://user@api.cloudflare.com/client/v4", "x").is_err());
        let e = api_url("http://user:hunter2@[bad", "--api-url").unwrap_err();
        assert!(!e.message.contains("hunter2"), "{}", e.message);
    }

    #[test]
    fn a_dash_reads_the_secret_from_stdin() {
        let args = GlobalArgs {
            api_token: Some("-".into()),
            ..Default::default()
        };
        let got = secrets_from_stdin(&args, &mut "cfut_abc\nrest\n".as_bytes()).unwrap();
        assert_eq!(got.api_token.as_deref(), Some("cfut_abc"));
        assert!(secrets_from_stdin(&args, &mut "".as_bytes()).is_err());
        let both = GlobalArgs {
            api_token: Some("-".into()),
            global_key: Some("-".into()),
            ..Default::default()
        };
        assert!(secrets_from_stdin(&both, &mut "x\ny\n".as_bytes()).is_err());
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
    fn emails_durations_and_jurisdictions() {
        assert!(email("a@b.co", "x").is_ok());
        assert!(email("ab.co", "x").is_err());
        assert!(email("a@b", "x").is_err());
        assert_eq!(
            duration("90d", "x").unwrap(),
            Duration::from_secs(90 * 86400)
        );
        assert!(duration("ninety", "x").is_err());
        assert!(duration("0s", "x").is_err());
        assert!(duration("100y", "x").is_ok());
        for huge in ["101y", "99999y", "9999999999999999999999s"] {
            let e = duration(huge, "--expires-in").unwrap_err();
            assert_eq!(
                e.to_string().contains("100 years"),
                huge != "9999999999999999999999s"
            );
        }
        assert_eq!(jurisdiction("EU").unwrap().as_deref(), Some("eu"));
        assert!(jurisdiction("mars").is_err());
        let e = jurisdiction("FedRAMP-High").unwrap_err();
        assert!(e
            .hint
            .as_deref()
            .unwrap_or("")
            .contains("only to Worker bindings"));
    }

    #[test]
    fn a_secret_in_the_wrong_setting_is_never_echoed() {
        let token = "cfut_abcdefghijklmnopqrstuvwxyz0123456789ABCD";
        let key = "c2547eb745079dac9320b638f5e225cf483cc";
        for v in [token, key, "Zq8sAbcdefghijklmnopqrstuvwxyz0123456789"] {
            let v = vars(&[], &[("CLOUDFLARE_ACCOUNT_ID", v)]);
            let e = Config::from_parts(&GlobalArgs::default(), v, ".env".into()).unwrap_err();
            assert!(e.message.contains("not shown"), "{}", e.message);
            assert!(!e.message.contains("efghij"), "{}", e.message);
        }
        for e in [
            email(key, "CLOUDFLARE_EMAIL").unwrap_err(),
            jurisdiction(token).unwrap_err(),
        ] {
            assert!(
                !e.message.contains("efghij") && !e.message.contains("9dac93"),
                "{}",
                e.message
            );
        }
        assert_eq!(shown("xyz"), "\"xyz\"");
        assert_eq!(shown("shop.example.com"), "\"shop.example.com\"");
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
