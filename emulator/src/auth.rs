//! Authentication and authorisation, modelled on the real API gateway (docs/cloudflare-api.md §1, §4).
//!
//! [`authenticate`] turns the request headers into a [`Principal`] (Global API Key or token) or the
//! gateway's error; [`usable`] refuses disabled, expired, not-yet-valid and IP-restricted tokens;
//! [`Principal::may`] decides whether a principal holds one of a set of permission groups on a
//! resource. A group only applies to resources of its own scope, deny beats allow, and nothing is
//! granted implicitly (docs/cloudflare-api.md §4 "A permission group only applies to resources of its
//! own scope"). This module knows nothing about endpoints; `routes` says what each one needs.

use crate::seed::{self, PermissionGroup};
use crate::state::{State, Token, TokenOwner};
use crate::wire::{parse_rfc3339, sha256_hex, ApiError};
use hyper::HeaderMap;
use serde_json::Value;
use std::net::IpAddr;
use std::time::SystemTime;

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    /// `X-Auth-Email` + `X-Auth-Key` of the seeded user: everything the user owns.
    GlobalKey,
    /// A token (a copy, taken under the state lock).
    Token(Box<Token>),
}

/// A resource a permission applies to.
#[derive(Debug, Clone, Copy)]
pub enum Resource<'a> {
    Account(&'a str),
    Zone {
        id: &'a str,
        account: &'a str,
    },
    User(&'a str),
    /// An R2 bucket, for the bucket-scoped groups, which the S3 API honours. The REST object
    /// endpoints refuse them by default (workers-sdk #9235, see `routes::r2`).
    Bucket {
        account: &'a str,
        jurisdiction: &'a str,
        name: &'a str,
    },
}

impl Resource<'_> {
    fn scope(&self) -> &'static str {
        match self {
            Resource::Account(_) => seed::SCOPE_ACCOUNT,
            Resource::Zone { .. } => seed::SCOPE_ZONE,
            Resource::User(_) => seed::SCOPE_USER,
            Resource::Bucket { .. } => seed::SCOPE_BUCKET,
        }
    }

    fn account(&self) -> Option<&str> {
        match self {
            Resource::Account(a) => Some(a),
            Resource::Zone { account, .. } | Resource::Bucket { account, .. } => Some(account),
            Resource::User(_) => None,
        }
    }

    /// Does the flat resource key `key` name this resource?
    fn named_by(&self, key: &str) -> bool {
        match self {
            Resource::Account(id) => {
                key == "com.cloudflare.api.account.*"
                    || key.strip_prefix("com.cloudflare.api.account.") == Some(id)
            }
            Resource::Zone { id, .. } => {
                key == "com.cloudflare.api.account.zone.*"
                    || key.strip_prefix("com.cloudflare.api.account.zone.") == Some(id)
            }
            Resource::User(id) => {
                key == "com.cloudflare.api.user.*"
                    || key.strip_prefix("com.cloudflare.api.user.") == Some(id)
            }
            Resource::Bucket {
                account,
                jurisdiction,
                name,
            } => {
                key == "com.cloudflare.edge.r2.bucket.*"
                    || key.strip_prefix("com.cloudflare.edge.r2.bucket.")
                        == Some(format!("{account}_{jurisdiction}_{name}").as_str())
            }
        }
    }

    /// Does the `resources` object of a policy cover this resource? Handles flat keys and the
    /// nested form `{"com.cloudflare.api.account.<ID>": {"com.cloudflare.api.account.zone.*": "*"}}`
    /// (docs/cloudflare-api.md §4 "Resource keys", §7 R2 bucket keys).
    fn covered_by(&self, resources: &Value) -> bool {
        let Some(map) = resources.as_object() else {
            return false;
        };
        map.iter().any(|(key, value)| match value {
            Value::Object(inner) => {
                let account_matches = match (key.as_str(), self.account()) {
                    ("com.cloudflare.api.account.*", Some(_)) => true,
                    (k, Some(acct)) => k.strip_prefix("com.cloudflare.api.account.") == Some(acct),
                    _ => false,
                };
                account_matches
                    && !matches!(self, Resource::Account(_))
                    && inner.keys().any(|k| self.named_by(k))
            }
            _ => self.named_by(key),
        })
    }
}

/// The auth kind recorded in the request log: "token", "global-key" or "none".
pub fn auth_kind(headers: &HeaderMap) -> &'static str {
    if headers.contains_key("authorization") {
        "token"
    } else if headers.contains_key("x-auth-key") || headers.contains_key("x-auth-email") {
        "global-key"
    } else {
        "none"
    }
}

/// A key for the per-credential rate limiter: a hash, so no secret is kept.
pub fn credential_key(headers: &HeaderMap) -> String {
    let get = |n: &str| {
        headers
            .get(n)
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default()
    };
    let mut material = get("authorization");
    material.extend_from_slice(b"\n");
    material.extend(get("x-auth-email"));
    material.extend_from_slice(b"\n");
    material.extend(get("x-auth-key"));
    sha256_hex(&material)
}

/// Finds the caller, with the gateway's errors (docs/cloudflare-api.md §1 table):
/// no credentials 400/9106; malformed `Authorization` 400/6003 (chain 6111); unknown token value
/// 401/1000; only one of the Global-Key headers, or a malformed one, 400/6003 (chain 6102 for the
/// email, 6103 for the key); a wrong pair 403/9103.
pub fn authenticate(state: &State, headers: &HeaderMap) -> Result<Principal, ApiError> {
    if let Some(value) = headers.get("authorization") {
        let malformed = || {
            ApiError::new(400, 6003, "Invalid request headers")
                .chained(6111, "Invalid format for Authorization header")
        };
        let text = value.to_str().map_err(|_| malformed())?;
        let secret = match text.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest,
            _ => return Err(malformed()),
        };
        if secret.is_empty() || !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(malformed());
        }
        let hash = sha256_hex(secret.as_bytes());
        return state
            .tokens
            .iter()
            .find(|t| t.value_sha256 == hash)
            .map(|t| Principal::Token(Box::new(t.clone())))
            .ok_or_else(|| ApiError::new(401, 1000, "Invalid API Token"));
    }
    let email = headers.get("x-auth-email");
    let key = headers.get("x-auth-key");
    let bad_email = || {
        ApiError::new(400, 6003, "Invalid request headers")
            .chained(6102, "Invalid format for X-Auth-Email header")
    };
    let bad_key = || {
        ApiError::new(400, 6003, "Invalid request headers")
            .chained(6103, "Invalid format for X-Auth-Key header")
    };
    match (email, key) {
        (None, None) => Err(ApiError::new(
            400,
            9106,
            "Missing X-Auth-Key, X-Auth-Email or Authorization headers",
        )),
        (None, Some(_)) => Err(bad_email()),
        (Some(_), None) => Err(bad_key()),
        (Some(email), Some(key)) => {
            let email = email.to_str().map_err(|_| bad_email())?;
            let key = key.to_str().map_err(|_| bad_key())?;
            if !email.contains('@') {
                return Err(bad_email());
            }
            // A legacy Global Key is 37-45 lowercase hex; a new one starts `cfk_`
            // (docs/cloudflare-api.md §1 "Token formats"). A token sent as X-Auth-Key is malformed.
            let well_formed = key.starts_with("cfk_")
                || ((37..=45).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_hexdigit()));
            if !well_formed {
                return Err(bad_key());
            }
            if email.eq_ignore_ascii_case(seed::EMAIL) && key == seed::GLOBAL_KEY {
                Ok(Principal::GlobalKey)
            } else {
                Err(ApiError::new(
                    403,
                    9103,
                    "Unknown X-Auth-Key or X-Auth-Email",
                ))
            }
        }
    }
}

/// The status `verify` reports: the stored one, or `expired` once `expires_on` has passed.
pub fn effective_status(token: &Token, now: SystemTime) -> String {
    let expired = token
        .expires_on
        .as_deref()
        .and_then(parse_rfc3339)
        .is_some_and(|t| t <= now);
    if expired && token.status == "active" {
        "expired".into()
    } else {
        token.status.clone()
    }
}

/// Refuses a token that is not usable right now. A token used from outside its allowed
/// addresses gets **403 / 9109 "Cannot use the access token from location: <ip>"**, on every
/// call, verify included (docs/cloudflare-api.md §4 "IP-restricted tokens": ddns-go #1273,
/// terraform-provider-cloudflare #897). Disabled, expired and not-yet-valid tokens: 401 / 1000
/// "Invalid API Token", the status docs/cloudflare-api.md §1 lists for 1000 (400 or 401; 403 / 1000 is
/// a status the reference never saw). Which of the two is a choice.
pub fn usable(token: &Token, client_ip: IpAddr, now: SystemTime) -> Result<(), ApiError> {
    ip_usable(token, client_ip)?;
    let denied = || ApiError::new(401, 1000, "Invalid API Token");
    if effective_status(token, now) != "active" {
        return Err(denied());
    }
    if token
        .not_before
        .as_deref()
        .and_then(parse_rfc3339)
        .is_some_and(|t| t > now)
    {
        return Err(denied());
    }
    Ok(())
}

/// The IP part of [`usable`], which verify applies too.
pub fn ip_usable(token: &Token, client_ip: IpAddr) -> Result<(), ApiError> {
    if ip_allowed(token.condition.as_ref(), client_ip) {
        Ok(())
    } else {
        Err(ApiError::new(
            403,
            9109,
            format!("Cannot use the access token from location: {client_ip}"),
        ))
    }
}

/// Evaluates `condition` with either key, `request.ip` (documented) or `request_ip` (SDKs), as
/// docs/cloudflare-api.md §4 leaves the wire name unconfirmed.
fn ip_allowed(condition: Option<&Value>, ip: IpAddr) -> bool {
    let Some(cond) = condition else {
        return true;
    };
    let Some(rule) = cond.get("request.ip").or_else(|| cond.get("request_ip")) else {
        return true;
    };
    let contains = |list: Option<&Value>| -> Option<bool> {
        let list = list?.as_array()?;
        Some(
            list.iter()
                .filter_map(Value::as_str)
                .filter_map(parse_cidr)
                .any(|net| net.contains(&ip)),
        )
    };
    let in_list = rule
        .get("in")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty());
    if in_list.is_some() && contains(rule.get("in")) != Some(true) {
        return false;
    }
    contains(rule.get("not_in")) != Some(true)
}

/// A CIDR, or a bare address taken as a /32 or /128.
pub fn parse_cidr(s: &str) -> Option<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(ipnet::IpNet::from))
}

impl Principal {
    /// Does the principal hold one of `groups` on `resource`? The Global Key holds everything on
    /// what the seeded user owns.
    pub fn may(&self, catalog: &[PermissionGroup], groups: &[&str], resource: Resource) -> bool {
        match self {
            Principal::GlobalKey => owned_by_user(resource),
            Principal::Token(token) => groups
                .iter()
                .any(|g| token_grants(token, catalog, g, resource)),
        }
    }

    /// Fails with 403/10000 unless [`Principal::may`].
    pub fn require(
        &self,
        catalog: &[PermissionGroup],
        groups: &[&str],
        resource: Resource,
    ) -> Result<(), ApiError> {
        if self.may(catalog, groups, resource) {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    pub fn token_id(&self) -> Option<&str> {
        match self {
            Principal::GlobalKey => None,
            Principal::Token(t) => Some(&t.id),
        }
    }
}

fn owned_by_user(resource: Resource) -> bool {
    match resource {
        Resource::Account(a) => a == seed::ACCOUNT_ID,
        Resource::Zone { id, .. } => id == seed::ZONE_ID,
        Resource::User(u) => u == seed::USER_ID,
        Resource::Bucket { account, .. } => account == seed::ACCOUNT_ID,
    }
}

/// Explicit deny, then explicit allow, then implicit deny (docs/cloudflare-api.md §4). A group whose
/// scope is not the resource's type grants nothing: Workers Routes Write (zone) on an account key
/// does not reach the zone.
fn token_grants(token: &Token, catalog: &[PermissionGroup], group: &str, r: Resource) -> bool {
    let Some(def) = catalog.iter().find(|g| g.id == group) else {
        return false;
    };
    if def.scope != r.scope() {
        return false;
    }
    // An account-owned token cannot reach the user.
    if matches!(token.owner, TokenOwner::Account(_)) && matches!(r, Resource::User(_)) {
        return false;
    }
    let mut allowed = false;
    for policy in &token.policies {
        let lists_group = policy
            .get("permission_groups")
            .and_then(Value::as_array)
            .is_some_and(|gs| {
                gs.iter()
                    .any(|g| g.get("id").and_then(Value::as_str) == Some(group))
            });
        if !lists_group {
            continue;
        }
        if !policy.get("resources").is_some_and(|res| r.covered_by(res)) {
            continue;
        }
        match policy.get("effect").and_then(Value::as_str) {
            Some("deny") => return false,
            Some("allow") => allowed = true,
            _ => {}
        }
    }
    allowed && owned_by_user(r)
}
