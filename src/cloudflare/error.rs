//! The client's one error type, and the sentence and hint a user sees for each kind.
//!
//! Facts about codes come from docs/cloudflare-api.md §1 (the table "HTTP statuses and error codes
//! seen"). Only `errors` carries failures: code 10000 also appears in `messages` of a *successful*
//! token verify ("This API Token is valid and active"), so `messages` is never read for errors.
//!
//! It imports nothing of the crate; the exit codes and hints are read from it by `crate::exit`.

use serde::{Deserialize, Serialize};

/// One entry of the envelope's `errors` (or `error_chain`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct ApiMessage {
    #[serde(default)]
    pub code: i64,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_chain: Vec<ApiMessage>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API answered with an error envelope (or a non-2xx status).
    #[error("{method} {path} failed with HTTP {status}: {}", describe(.errors))]
    Api {
        method: String,
        path: String,
        status: u16,
        errors: Vec<ApiMessage>,
        ray: Option<String>,
    },
    /// The answer was not JSON: a WAF challenge, a proxy page or an outage.
    #[error("{method} {path} returned HTTP {status} with a non-JSON body{}{}", ray_note(.ray),
        if *.challenge { " (a Cloudflare WAF challenge)" } else { "" })]
    NotJson {
        method: String,
        path: String,
        status: u16,
        ray: Option<String>,
        challenge: bool,
    },
    /// The JSON did not have the expected shape; `at` is the JSON path of the first problem.
    #[error("{method} {path}: unexpected response at `{at}`: {detail}")]
    Decode {
        method: String,
        path: String,
        at: String,
        detail: String,
    },
    /// The request never got an answer: DNS, connect, TLS, timeout, dropped connection.
    #[error("{method} {path}: could not reach the API: {detail}")]
    Transport {
        method: String,
        path: String,
        detail: String,
        #[source]
        source: reqwest::Error,
    },
    /// An R2 call refused (401 or 403) while authenticated with the Global API Key. The API
    /// reference lists only API-token security for the R2 endpoints, where other endpoints list
    /// both (docs/cloudflare-api.md §7, open question 8: unconfirmed either way), so such a refusal is
    /// about the kind of credential, not a missing permission. Status and codes are the inner
    /// error's.
    #[error("{inner}")]
    R2NeedsToken { inner: Box<Error> },
    /// A 429 whose `Retry-After` asked for a longer wait than the client accepts (300 s by
    /// default): the wait is the API's own.
    #[error("{method} {path} was rate limited (HTTP 429); the API asked to wait {}s{}", wait.as_secs(), ray_note(.ray))]
    RateLimited {
        method: String,
        path: String,
        wait: std::time::Duration,
        ray: Option<String>,
    },
    /// A request could not be built (bad path segment, unreadable file, …).
    #[error("building {method} {path}: {detail}")]
    Request {
        method: String,
        path: String,
        detail: String,
    },
}

fn describe(errors: &[ApiMessage]) -> String {
    if errors.is_empty() {
        return "no error details".into();
    }
    errors
        .iter()
        .map(|e| {
            let mut s = format!("{} (code {})", e.message, e.code);
            for c in &e.error_chain {
                s.push_str(&format!(" <- {} (code {})", c.message, c.code));
            }
            s
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn ray_note(ray: &Option<String>) -> String {
    ray.as_ref()
        .map(|r| format!(" (cf-ray {r})"))
        .unwrap_or_default()
}

impl Error {
    /// The HTTP status, if the API answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } | Error::NotJson { status, .. } => Some(*status),
            Error::RateLimited { .. } => Some(429),
            Error::R2NeedsToken { inner } => inner.status(),
            _ => None,
        }
    }

    /// Wraps a 401/403 from an R2 path into [`Error::R2NeedsToken`] when the Global API Key was
    /// used; anything else is returned as is. Only an answer that could be R2 refusing the key
    /// itself is wrapped: no code, 10000 (the gateway's permission refusal) or R2's own 10002 /
    /// 10003 (`r2/api/error-codes.mdx`). A credential or membership failure (9103 wrong key pair,
    /// 9109 an account the caller cannot reach, 1000, 6003, 9106 bad or missing auth headers)
    /// keeps its own error and hint: creating a token would not fix it.
    pub(crate) fn for_global_key(self, path: &str) -> Error {
        let r2 = path
            .split('?')
            .next()
            .unwrap_or("")
            .trim_matches('/')
            .split('/')
            .nth(2)
            == Some("r2")
            && path.starts_with("/accounts/");
        let about_the_key = self
            .codes()
            .iter()
            .all(|c| matches!(c, 10000 | 10002 | 10003));
        if r2
            && about_the_key
            && matches!(
                self,
                Error::Api {
                    status: 401 | 403,
                    ..
                }
            )
        {
            Error::R2NeedsToken {
                inner: Box::new(self),
            }
        } else {
            self
        }
    }

    /// Every Cloudflare error code in the answer, including nested `error_chain` codes.
    pub fn codes(&self) -> Vec<i64> {
        match self {
            Error::Api { errors, .. } => errors
                .iter()
                .flat_map(|e| std::iter::once(e.code).chain(e.error_chain.iter().map(|c| c.code)))
                .collect(),
            Error::R2NeedsToken { inner } => inner.codes(),
            Error::RateLimited { .. } => vec![971],
            _ => Vec::new(),
        }
    }

    pub fn has_code(&self, code: i64) -> bool {
        self.codes().contains(&code)
    }

    /// A 404 that says the resource is absent. A 404 with code 7000 ("No route for that URI") or
    /// 7003 ("Could not route to …") says the *path* is wrong, not that the thing is missing
    /// (docs/cloudflare-api.md §1 table), so it never reads as "absent": a mistyped path in the client
    /// must fail loudly rather than make a command create what already exists.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404) && !self.is_unknown_route()
    }

    /// The API has no route for this method and path (7000), or the path's identifier is
    /// malformed (7003).
    pub fn is_unknown_route(&self) -> bool {
        self.has_code(7000) || self.has_code(7003)
    }

    /// 403 with code 10000: a valid credential without the permission for this call. Never
    /// [`Error::R2NeedsToken`]: the Global API Key holds every permission; R2 wants a token.
    pub fn is_permission_denied(&self) -> bool {
        !matches!(self, Error::R2NeedsToken { .. })
            && self.status() == Some(403)
            && self.has_code(10000)
    }

    /// A failure of the credential itself rather than of one permission. A token used from
    /// outside its allowed addresses counts: no call can succeed from here.
    pub fn is_invalid_credential(&self) -> bool {
        [1000, 6003, 9103, 9106, 6111]
            .iter()
            .any(|c| self.has_code(*c))
            || self.ip_refused().is_some()
    }

    /// An IP-restricted token used from outside its range: code 9109 with the message "Cannot use
    /// the access token from location: <ip>", on every call, verify included (HTTP 403;
    /// docs/cloudflare-api.md §4 "IP-restricted tokens", from ddns-go #1273 and
    /// terraform-provider-cloudflare #897). The same code without that message means the
    /// credential cannot reach an account or zone, so the message decides. Returns the address
    /// the API saw (empty if the message names none), looking in `errors` and `error_chain`.
    pub fn ip_refused(&self) -> Option<String> {
        const PREFIX: &str = "cannot use the access token from location";
        let Error::Api { errors, .. } = self else {
            return None;
        };
        errors
            .iter()
            .flat_map(|e| std::iter::once(e).chain(e.error_chain.iter()))
            .filter(|e| e.code == 9109)
            .find_map(|e| {
                let lower = e.message.to_ascii_lowercase();
                let at = lower.find(PREFIX)?;
                let rest = &e.message[at + PREFIX.len()..];
                let rest = rest.trim_start();
                Some(rest.strip_prefix(':').unwrap_or(rest).trim().to_string())
            })
    }

    /// What the user should do, computed from the error. `None` when there is nothing to add.
    pub fn hint(&self) -> Option<String> {
        let (method, path) =
            match self {
                Error::R2NeedsToken { .. } => return Some(
                    "R2 refused the Global API Key: its endpoints take an API token. Create one \
                     with `cfsetup create-token` (it holds Workers R2 Storage Write and the other \
                     permissions the platform needs) and set CLOUDFLARE_API_TOKEN"
                        .into(),
                ),
                Error::Api { method, path, .. } | Error::RateLimited { method, path, .. } => {
                    (method.as_str(), path.as_str())
                }
                Error::NotJson {
                    challenge: true, ..
                } => return Some(
                    "a firewall challenged the request; run from a network Cloudflare does not \
                     challenge, or check the zone's WAF rules for the API host"
                        .into(),
                ),
                Error::Transport { .. } => {
                    return Some(
                        "check the network and CLOUDFLARE_API_BASE_URL; the request was retried \
                     before giving up"
                            .into(),
                    )
                }
                _ => return None,
            };
        let codes = self.codes();
        let has = |c: i64| codes.contains(&c);
        if self.is_unknown_route() {
            return Some(format!(
                "the API has no route for {method} {path}: check CLOUDFLARE_API_BASE_URL (it \
                 should end in /client/v4); if it is right, this is a bug in cfsetup, please \
                 report it"
            ));
        }
        if let Some(ip) = self.ip_refused() {
            let (here, allow) = if ip.is_empty() {
                (
                    "this machine's address".to_string(),
                    "<this address>".to_string(),
                )
            } else {
                (format!("this machine's address, {ip},"), ip.clone())
            };
            return Some(format!(
                "the token works only from its allowed IP addresses, and {here} is not one of \
                 them (nothing is wrong with its permissions): create a token that allows it with \
                 `cfsetup create-token --replace --allow-ip {allow}` and put it in \
                 CLOUDFLARE_API_TOKEN, or add the address to the token's Client IP Address \
                 Filtering in the dashboard (My Profile > API Tokens)"
            ));
        }
        if has(10000) && self.status() == Some(403) {
            return Some(match required_permission(method, path) {
                Some((perm, resource)) => format!(
                    "the token lacks {perm} on {resource}; add it to the token (see `cfsetup \
                     permissions`), then run `cfsetup test-permissions`"
                ),
                None => "the token lacks a permission this call needs; run `cfsetup \
                         test-permissions` to see which"
                    .into(),
            });
        }
        if has(9103) {
            return Some(
                "the email and Global API Key do not match: check CLOUDFLARE_EMAIL and \
                 CLOUDFLARE_GLOBAL_KEY (dashboard: My Profile > API Tokens > Global API Key)"
                    .into(),
            );
        }
        if has(9109) {
            return Some(
                "the credential cannot access this resource: check CLOUDFLARE_ACCOUNT_ID and \
                 CLOUDFLARE_ZONE_ID, and that the token's resources include them"
                    .into(),
            );
        }
        if has(1000) {
            return Some(
                "the API token is invalid, expired or was rolled: create one with `cfsetup \
                 create-token`, or roll it with `cfsetup rotate-token`"
                    .into(),
            );
        }
        if has(6003) || has(6111) || has(6102) || has(6103) {
            return Some(
                "a credential header is malformed: put a token in CLOUDFLARE_API_TOKEN, and the \
                 Global API Key in CLOUDFLARE_GLOBAL_KEY together with CLOUDFLARE_EMAIL, never \
                 one in the other's place"
                    .into(),
            );
        }
        if has(9106) {
            return Some(
                "no credentials were sent: set CLOUDFLARE_API_TOKEN, or CLOUDFLARE_EMAIL and \
                 CLOUDFLARE_GLOBAL_KEY"
                    .into(),
            );
        }
        if has(971) || has(10429) || self.status() == Some(429) {
            // The API's own Retry-After, when the client recorded it, says how long to wait.
            let asked = match self {
                Error::RateLimited { wait, .. } => Some(wait.as_secs().max(1)),
                _ => None,
            };
            let wait = match asked {
                Some(1) => "wait a second".to_string(),
                Some(n) if n < 120 => format!("wait {n} seconds"),
                Some(n) => format!("wait {} minutes", n.div_ceil(60)),
                None => "wait as long as the API's Retry-After says (going over the limit can \
                         block calls for up to 5 minutes)"
                    .to_string(),
            };
            return Some(format!(
                "rate limited (Cloudflare allows 1,200 requests per 5 minutes per user, across \
                 the dashboard and every tool): {wait}, then run the same command again (it \
                 picks up where it stopped)"
            ));
        }
        if has(10042) {
            return Some(
                "R2 is not enabled for this account: enable it in the dashboard (R2 > Overview)"
                    .into(),
            );
        }
        None
    }
}

/// Which of the 8 permissions (or another) a call needs, and on what, from its method and path.
/// Used only to word the hint for 403/10000.
pub fn required_permission(method: &str, path: &str) -> Option<(&'static str, String)> {
    let segs: Vec<&str> = path
        .split('?')
        .next()
        .unwrap_or("")
        .trim_matches('/')
        .split('/')
        .collect();
    let write = method != "GET";
    match segs.as_slice() {
        ["accounts", id] => Some(("Account Settings Read", format!("account {id}"))),
        // Reads too: the platform's token holds Write (one of the 8), which includes reading.
        ["accounts", id, "r2", ..] => Some(("Workers R2 Storage Write", format!("account {id}"))),
        ["accounts", id, "workers", "scripts", ..] => Some((
            if write {
                "Workers Scripts Write"
            } else {
                "Workers Scripts Read"
            },
            format!("account {id}"),
        )),
        ["zones", id] => Some(("Zone Read", format!("zone {id}"))),
        ["zones", id, "workers", "routes", ..] => {
            Some(("Workers Routes Write", format!("zone {id}")))
        }
        ["zones", id, "custom_hostnames", ..] => Some((
            if write {
                "SSL and Certificates Write"
            } else {
                "SSL and Certificates Read"
            },
            format!("zone {id}"),
        )),
        ["user", "tokens", "verify"] => None,
        ["user", "tokens", ..] => Some(("API Tokens Write (user)", "your user".into())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(method: &str, path: &str, status: u16, code: i64) -> Error {
        Error::Api {
            method: method.into(),
            path: path.into(),
            status,
            errors: vec![ApiMessage {
                code,
                message: "Authentication error".into(),
                error_chain: vec![],
            }],
            ray: None,
        }
    }

    #[test]
    fn permission_hint_names_the_permission_and_resource() {
        let e = api("POST", "/zones/z1/workers/routes", 403, 10000);
        let hint = e.hint().unwrap();
        assert!(
            hint.starts_with("the token lacks Workers Routes Write on zone z1"),
            "{hint}"
        );
        assert_eq!(
            e.to_string(),
            "POST /zones/z1/workers/routes failed with HTTP 403: Authentication error (code 10000)"
        );
    }

    #[test]
    fn each_common_code_gets_a_hint() {
        for (status, code, needle) in [
            (403, 9103, "do not match"),
            (403, 9109, "cannot access"),
            (401, 1000, "invalid, expired"),
            (400, 6003, "malformed"),
            (429, 971, "rate limited"),
            (400, 9106, "no credentials"),
        ] {
            let h = api("GET", "/user", status, code).hint().unwrap();
            assert!(h.contains(needle), "{code}: {h}");
        }
    }

    #[test]
    fn a_token_used_outside_its_ip_range_is_not_a_missing_permission() {
        let mut e = api("GET", "/user/tokens/verify", 403, 9109);
        if let Error::Api { errors, .. } = &mut e {
            errors[0].message = "Cannot use the access token from location: 198.51.100.7".into();
        }
        assert_eq!(e.ip_refused().as_deref(), Some("198.51.100.7"));
        assert!(e.is_invalid_credential() && !e.is_permission_denied());
        let hint = e.hint().unwrap();
        assert!(hint.contains("198.51.100.7") && hint.contains("--allow-ip 198.51.100.7"));
        assert!(hint.contains("dashboard"), "{hint}");
        assert!(!hint.contains("CLOUDFLARE_ACCOUNT_ID"), "{hint}");
        // The same code for an account the token cannot reach keeps its own hint.
        let other = api("GET", "/accounts/a", 403, 9109);
        assert_eq!(other.ip_refused(), None);
        assert!(other.hint().unwrap().contains("CLOUDFLARE_ACCOUNT_ID"));
        // Seen only in error_chain (what the emulator used to send) still counts.
        let chained = Error::Api {
            method: "GET".into(),
            path: "/user".into(),
            status: 403,
            errors: vec![ApiMessage {
                code: 1000,
                message: "Invalid API Token".into(),
                error_chain: vec![ApiMessage {
                    code: 9109,
                    message: "Cannot use the access token from location: ::1".into(),
                    error_chain: vec![],
                }],
            }],
            ray: None,
        };
        assert_eq!(chained.ip_refused().as_deref(), Some("::1"));
        assert!(chained.hint().unwrap().contains("--allow-ip ::1"));
    }

    #[test]
    fn r2_refusing_the_global_key_asks_for_a_token() {
        let e = api("PUT", "/accounts/a/r2/buckets/s/objects/k", 403, 10000)
            .for_global_key("/accounts/a/r2/buckets/s/objects/k");
        assert!(matches!(e, Error::R2NeedsToken { .. }));
        assert!(!e.is_permission_denied());
        assert_eq!((e.status(), e.codes()), (Some(403), vec![10000]));
        let hint = e.hint().unwrap();
        assert!(hint.contains("API token") && hint.contains("cfsetup create-token"));
        assert!(!hint.contains("lacks"), "{hint}");
        // Other paths and statuses are left alone.
        let e = api("GET", "/accounts/a", 403, 10000).for_global_key("/accounts/a");
        assert!(e.is_permission_denied());
        let e = api("GET", "/accounts/a/r2/buckets/s", 404, 10006)
            .for_global_key("/accounts/a/r2/buckets/s");
        assert!(e.is_not_found());
        // No code at all, or R2's own 10002 / 10003, is still the key being refused.
        for (status, code) in [(401, 10002), (403, 10003)] {
            let e = api("GET", "/accounts/a/r2/buckets", status, code)
                .for_global_key("/accounts/a/r2/buckets");
            assert!(matches!(e, Error::R2NeedsToken { .. }), "{code}");
        }
    }

    #[test]
    fn a_bad_key_or_account_on_an_r2_path_is_not_r2_refusing_the_key() {
        // 9103: the Global Key pair is wrong; 9109: the account is not the caller's. Neither is
        // fixed by creating a token, so neither gets the R2NeedsToken hint.
        let path = "/accounts/a/r2/buckets/s/objects/k";
        let wrong_key = api("GET", path, 403, 9103).for_global_key(path);
        assert!(!matches!(wrong_key, Error::R2NeedsToken { .. }));
        assert!(!wrong_key
            .hint()
            .unwrap_or_default()
            .contains("create-token"));
        let wrong_account = api("GET", path, 403, 9109).for_global_key(path);
        assert!(!matches!(wrong_account, Error::R2NeedsToken { .. }));
        assert!(wrong_account
            .hint()
            .unwrap()
            .contains("CLOUDFLARE_ACCOUNT_ID"));
        for code in [1000, 6003, 9106] {
            let e = api("GET", path, 401, code).for_global_key(path);
            assert!(!matches!(e, Error::R2NeedsToken { .. }), "{code}");
        }
    }

    #[test]
    fn an_unknown_route_is_never_absent() {
        let e = api("GET", "/accounts/a/r2/bucket/x", 404, 7000);
        assert!(!e.is_not_found() && e.is_unknown_route());
        assert!(e
            .hint()
            .unwrap()
            .contains("no route for GET /accounts/a/r2/bucket/x"));
        assert!(!api("GET", "/zones/x", 404, 7003).is_not_found());
        assert!(api("GET", "/accounts/a/r2/buckets/x", 404, 10006).is_not_found());
    }

    #[test]
    fn the_rate_limit_hint_follows_retry_after() {
        let limited = |secs: u64| Error::RateLimited {
            method: "GET".into(),
            path: "/user".into(),
            wait: std::time::Duration::from_secs(secs),
            ray: None,
        };
        let h = limited(1).hint().unwrap();
        assert!(h.contains("wait a second"), "{h}");
        assert!(!h.contains("wait 5 minutes"), "{h}");
        let h = limited(400).hint().unwrap();
        assert!(h.contains("wait 7 minutes"), "{h}");
        let plain = Error::Api {
            method: "GET".into(),
            path: "/user".into(),
            status: 429,
            errors: vec![ApiMessage {
                code: 971,
                message: "Rate limited".into(),
                error_chain: vec![],
            }],
            ray: None,
        };
        let h = plain.hint().unwrap();
        assert!(h.contains("Retry-After"), "{h}");
    }

    #[test]
    fn error_chain_codes_are_seen() {
        let e = Error::Api {
            method: "GET".into(),
            path: "/user".into(),
            status: 400,
            errors: vec![ApiMessage {
                code: 6003,
                message: "Invalid request headers".into(),
                error_chain: vec![ApiMessage {
                    code: 6111,
                    message: "Invalid format for Authorization header".into(),
                    error_chain: vec![],
                }],
            }],
            ray: None,
        };
        assert_eq!(e.codes(), vec![6003, 6111]);
        assert!(e
            .to_string()
            .contains("<- Invalid format for Authorization header (code 6111)"));
    }
}
