//! Custom hostnames and the fallback origin (Cloudflare for SaaS, docs/cloudflare-api.md §10).
//!
//! Lifecycle: POST answers 201 with status `pending` and ssl `initializing`, *without*
//! `ssl.validation_records` (the client must read the hostname back). GETs then show
//! `pending_validation` with the records; once a hostname has been read
//! `activate_custom_hostnames_after` times (by id, or in a filtered list), later reads show it
//! `active` with ssl `active` and no records left.
//!
//! A PATCH with `ssl` restarts certificate validation (the "common API calls" page: an edit "sent
//! with an ssl object that matches the existing value, indicates that hostname should restart
//! domain control validation"): the certificate goes back to `pending_validation` with new
//! tokens, and a hostname whose ownership was already proven stays `active`.
//!
//! `GET …/custom_hostnames/quota` answers `{allocated, exceeded, hard_cap, used}` (API reference
//! `custom_hostnames/subresources/quota/methods/get`): "The allocated quota is a soft limit;
//! creating custom hostnames after usage exceeds this limit can still succeed until the hard cap is
//! reached". A create at the hard cap is 403 / 1405, the status-codes page's "quota exceeded"
//! (`cloudflare-for-saas/reference/status-codes/custom-hostnames/`; 1404 there is a zone with no
//! SaaS quota at all). `used` counts every custom hostname of the zone, pending ones too
//! (`quotas-and-billing.mdx`: pending hostnames are billed until deleted).
//!
//! Active certificates carry `ssl.expires_on`: 90 days after the hostname's creation (the renewal
//! page: "Custom hostname certificates have a 90-day validity period").
//!
//! Choices where the reference is silent: a hostname equal to or under the zone's own name is
//! 400 / 1409; a fallback origin outside the zone is 400 / 1407; reading or deleting an unset
//! fallback origin is 404 / 1551; `ssl` may be omitted (method `http`, type `dv`); `ssl` with only
//! one of `method`/`type` is 400 / 1440.

use super::{member_zone, zone_resource, Ctx};
use crate::seed;
use crate::state::{CustomHostname, FallbackOrigin, State};
use crate::wire::{now_rfc3339, paginate_lazy, parse_json, random_hex, ApiError, Outcome, Reply};
use serde_json::{json, Value};

/// How a hostname is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The POST answer: ssl `initializing`, no validation records.
    Created,
    Pending,
    Active,
}

pub fn route(ctx: &Ctx, state: &mut State, zone: &str, rest: &[&str]) -> Outcome {
    let known = matches!(
        (ctx.method, rest),
        ("GET" | "POST", [])
            | ("GET" | "PUT" | "DELETE", ["fallback_origin"])
            | ("GET", ["quota"])
            | ("GET" | "PATCH" | "DELETE", [_])
    );
    if !known {
        return Err(ctx.no_route());
    }
    let p = ctx.principal(state)?;
    member_zone(zone)?;
    let groups: &[&str] = if ctx.method == "GET" {
        &[seed::SSL_READ, seed::SSL_WRITE]
    } else {
        &[seed::SSL_WRITE]
    };
    p.require(ctx.catalog, groups, zone_resource(zone))?;
    match (ctx.method, rest) {
        ("GET", []) => list(ctx, state, zone),
        ("POST", []) => create(ctx, state, zone),
        (_, ["fallback_origin"]) => fallback_origin(ctx, state, zone),
        ("GET", ["quota"]) => Ok(Reply::ok(quota_json(state, zone))),
        ("GET", [id]) => {
            let after = ctx.activate_after;
            let ch = find_mut(state, zone, id)?;
            let phase = observe(ch, after);
            let v = render(ch, phase);
            state.dirty = true;
            Ok(Reply::ok(v))
        }
        ("PATCH", [id]) => patch(ctx, state, zone, id),
        ("DELETE", [id]) => {
            find_mut(state, zone, id)?;
            state
                .custom_hostnames
                .retain(|c| !(c.zone_id == zone && c.id == *id));
            // cf-go v0 fixture: a bare `{"id": …}`, no envelope (docs/cloudflare-api.md §10).
            Ok(Reply::json(200, &json!({"id": id})))
        }
        _ => Err(ctx.no_route()),
    }
}

fn not_found() -> ApiError {
    ApiError::new(404, 1436, "The custom hostname was not found.")
}

fn bad_json() -> ApiError {
    ApiError::new(400, 1400, "Unable to decode the request body: invalid JSON")
}

fn find_mut<'a>(
    state: &'a mut State,
    zone: &str,
    id: &str,
) -> Result<&'a mut CustomHostname, ApiError> {
    state
        .custom_hostnames
        .iter_mut()
        .find(|c| c.zone_id == zone && c.id == id)
        .ok_or_else(not_found)
}

/// The phase a read shows, counting the read.
fn observe(ch: &mut CustomHostname, after: Option<u32>) -> Phase {
    let phase = current_phase(ch, after);
    ch.gets = ch.gets.saturating_add(1);
    if phase == Phase::Active {
        ch.ownership_verified = true;
    }
    phase
}

/// Custom hostnames of `zone` (the quota's `used`).
fn used(state: &State, zone: &str) -> u64 {
    state
        .custom_hostnames
        .iter()
        .filter(|c| c.zone_id == zone)
        .count() as u64
}

/// `GET …/custom_hostnames/quota` (wire form of the API reference's `QuotaGetResponse`).
pub fn quota_json(state: &State, zone: &str) -> Value {
    let q = state.hostname_quota;
    let used = used(state, zone);
    json!({
        "allocated": q.allocated,
        "exceeded": used > q.allocated,
        "hard_cap": q.hard_cap,
        "used": used,
    })
}

/// A new custom hostname's record (a create, or a test's bulk insert).
pub fn new_hostname(
    zone: &str,
    host: String,
    method: String,
    kind: String,
    settings: Value,
    custom_metadata: Option<Value>,
) -> CustomHostname {
    CustomHostname {
        id: uuid::Uuid::new_v4().to_string(),
        zone_id: zone.to_string(),
        hostname: host,
        created_at: now_rfc3339(),
        ssl_id: uuid::Uuid::new_v4().to_string(),
        ssl_method: method,
        ssl_type: kind,
        ssl_settings: settings,
        custom_metadata,
        ownership_value: uuid::Uuid::new_v4().to_string(),
        http_body: uuid::Uuid::new_v4().to_string(),
        txt_value: random_hex(32),
        gets: 0,
        ownership_verified: false,
        forced: None,
    }
}

/// The phase without counting a read (for inspection).
pub fn current_phase(ch: &CustomHostname, after: Option<u32>) -> Phase {
    match after {
        Some(n) if ch.gets >= n => Phase::Active,
        _ => Phase::Pending,
    }
}

/// RFC 1123 host name, ASCII (punycode allowed), ≤ 253, at least two labels.
pub fn valid_hostname(h: &str) -> bool {
    let labels: Vec<&str> = h.split('.').collect();
    h.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            let b = l.as_bytes();
            (1..=63).contains(&b.len())
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                && b.first() != Some(&b'-')
                && b.last() != Some(&b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| !tld.bytes().all(|c| c.is_ascii_digit()))
}

fn within(host: &str, domain: &str) -> bool {
    host == domain || host.ends_with(&format!(".{domain}"))
}

/// Validates `ssl` (docs/cloudflare-api.md §10 error codes 1432, 1433, 1434, 1440); returns
/// (method, type, settings).
fn check_ssl(ssl: Option<&Value>) -> Result<(String, String, Value), ApiError> {
    let Some(ssl) = ssl.filter(|s| !s.is_null()) else {
        return Ok(("http".into(), "dv".into(), json!({})));
    };
    let obj = ssl
        .as_object()
        .ok_or_else(|| ApiError::new(400, 1434, "ssl must be an object"))?;
    let method = obj.get("method").and_then(Value::as_str);
    let kind = obj.get("type").and_then(Value::as_str);
    let (method, kind) = match (method, kind) {
        (Some(m), Some(t)) => (m, t),
        (None, None) if obj.contains_key("settings") => ("http", "dv"),
        _ => {
            return Err(ApiError::new(
                400,
                1440,
                "Both the ssl type and method are required.",
            ))
        }
    };
    if !matches!(method, "http" | "txt" | "email") {
        return Err(ApiError::new(
            400,
            1432,
            format!("Invalid ssl method '{method}'."),
        ));
    }
    if kind != "dv" {
        return Err(ApiError::new(
            400,
            1433,
            format!("Invalid ssl type '{kind}'."),
        ));
    }
    let settings = obj.get("settings").cloned().unwrap_or_else(|| json!({}));
    if !settings.is_object() {
        return Err(ApiError::new(400, 1434, "ssl.settings must be an object"));
    }
    if let Some(v) = settings.get("min_tls_version") {
        if !matches!(v.as_str(), Some("1.0" | "1.1" | "1.2" | "1.3")) {
            return Err(ApiError::new(
                400,
                1434,
                "Invalid ssl.settings.min_tls_version",
            ));
        }
    }
    Ok((method.into(), kind.into(), settings))
}

fn create(ctx: &Ctx, state: &mut State, zone: &str) -> Outcome {
    let body = match parse_json(ctx.body) {
        Ok(Some(v @ Value::Object(_))) => v,
        _ => return Err(bad_json()),
    };
    let host = body
        .get("hostname")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_ascii_lowercase();
    if !valid_hostname(&host) {
        return Err(ApiError::new(400, 1407, "Invalid custom hostname"));
    }
    if ["example.com", "example.net", "example.org"]
        .iter()
        .any(|d| within(&host, d))
    {
        return Err(ApiError::new(
            400,
            1411,
            "Custom hostnames may not use example.com, example.net or example.org.",
        ));
    }
    if within(&host, seed::ZONE_NAME) {
        return Err(ApiError::new(
            400,
            1409,
            format!("The custom hostname {host} may not be the zone's own domain or one of its subdomains."),
        ));
    }
    let (method, kind, settings) = check_ssl(body.get("ssl"))?;
    if state.custom_hostnames.iter().any(|c| c.hostname == host) {
        return Err(ApiError::new(409, 1406, "Duplicate custom hostname found."));
    }
    if used(state, zone) >= state.hostname_quota.hard_cap {
        return Err(ApiError::new(
            403,
            1405,
            "Quota exceeded: the zone has reached its custom hostname limit.",
        ));
    }
    let ch = new_hostname(
        zone,
        host,
        method,
        kind,
        settings,
        body.get("custom_metadata").cloned(),
    );
    let v = render(&ch, Phase::Created);
    state.custom_hostnames.push(ch);
    Ok(Reply::ok_status(201, v))
}

/// `PATCH …/{id}` → 202; sending `ssl` again re-triggers validation (docs/cloudflare-api.md §10).
fn patch(ctx: &Ctx, state: &mut State, zone: &str, id: &str) -> Outcome {
    let body = match parse_json(ctx.body) {
        Ok(Some(v @ Value::Object(_))) => v,
        Ok(None) => json!({}),
        _ => return Err(bad_json()),
    };
    let ssl = match body.get("ssl") {
        Some(s) if !s.is_null() => Some(check_ssl(Some(s))?),
        _ => None,
    };
    let after = ctx.activate_after;
    let ch = find_mut(state, zone, id)?;
    if let Some((method, kind, settings)) = ssl {
        if current_phase(ch, after) == Phase::Active {
            ch.ownership_verified = true;
        }
        if let Some(Value::Object(f)) = &mut ch.forced {
            f.remove("ssl");
        }
        ch.ssl_method = method;
        ch.ssl_type = kind;
        ch.ssl_settings = settings;
        ch.gets = 0;
        ch.txt_value = random_hex(32);
        ch.http_body = uuid::Uuid::new_v4().to_string();
    }
    if let Some(m) = body.get("custom_metadata") {
        ch.custom_metadata = Some(m.clone());
    }
    let v = render(ch, current_phase(ch, after));
    Ok(Reply::ok_status(202, v))
}

/// `GET …/custom_hostnames`: page-paginated; filters `hostname` / `hostname.exact` (exact),
/// `hostname.contain`, `id` (not combinable: 400 / 1438). Hostnames in a filtered list count as
/// read.
fn list(ctx: &Ctx, state: &mut State, zone: &str) -> Outcome {
    let q = &ctx.query;
    let exact = q.get("hostname.exact").or_else(|| q.get("hostname"));
    let contain = q.get("hostname.contain");
    let id = q.get("id");
    if id.is_some() && (exact.is_some() || contain.is_some()) {
        return Err(ApiError::new(
            400,
            1438,
            "The id filter cannot be combined with other filters.",
        ));
    }
    let filtered = exact.is_some() || contain.is_some() || id.is_some();
    let after = ctx.activate_after;
    // Positions of the matches; only the requested page is rendered.
    let matched: Vec<usize> = state
        .custom_hostnames
        .iter()
        .enumerate()
        .filter(|(_, ch)| {
            ch.zone_id == zone
                && exact.is_none_or(|e| ch.hostname == e.to_ascii_lowercase())
                && contain.is_none_or(|c| ch.hostname.contains(&c.to_ascii_lowercase()))
                && id.is_none_or(|i| ch.id == i)
        })
        .map(|(i, _)| i)
        .collect();
    // A filtered list counts as a read of every match (they are few); an unfiltered one does not.
    let mut phases: Vec<Option<Phase>> = vec![None; matched.len()];
    if filtered {
        for (k, &i) in matched.iter().enumerate() {
            phases[k] = Some(observe(&mut state.custom_hostnames[i], after));
        }
        state.dirty = true;
    }
    let hostnames = &state.custom_hostnames;
    Ok(paginate_lazy(
        matched.len(),
        q,
        20,
        ctx.per_page_max(50),
        |range| {
            range
                .map(|k| {
                    let ch = &hostnames[matched[k]];
                    render(ch, phases[k].unwrap_or_else(|| current_phase(ch, after)))
                })
                .collect()
        },
    ))
}

/// Wire form (docs/cloudflare-api.md §10 "Result fields").
pub fn render(ch: &CustomHostname, phase: Phase) -> Value {
    let host = &ch.hostname;
    let (mut status, ssl_status) = match phase {
        Phase::Created => ("pending", "initializing"),
        Phase::Pending => ("pending", "pending_validation"),
        Phase::Active => ("active", "active"),
    };
    if ch.ownership_verified {
        status = "active";
    }
    let mut ssl = json!({
        "id": ch.ssl_id,
        "type": ch.ssl_type,
        "method": ch.ssl_method,
        "status": ssl_status,
        "settings": ch.ssl_settings,
        "bundle_method": "ubiquitous",
        "certificate_authority": "google",
        "wildcard": false,
    });
    if phase == Phase::Active {
        ssl["expires_on"] = json!(expires_on(&ch.created_at));
    }
    if phase == Phase::Pending {
        let record = match ch.ssl_method.as_str() {
            "txt" => json!({
                "status": "pending",
                "txt_name": format!("_acme-challenge.{host}"),
                "txt_value": ch.txt_value,
            }),
            "email" => json!({
                "status": "pending",
                "emails": [format!("admin@{host}"), format!("webmaster@{host}")],
            }),
            _ => json!({
                "status": "pending",
                "http_url": format!("http://{host}/.well-known/acme-challenge/{}", ch.txt_value),
                "http_body": ch.http_body,
            }),
        };
        ssl["validation_records"] = json!([record]);
    }
    let mut v = json!({
        "id": ch.id,
        "hostname": host,
        "ssl": ssl,
        "status": status,
        "created_at": ch.created_at,
        "verification_errors": [],
        "ownership_verification": {
            "type": "txt",
            "name": format!("_cf-custom-hostname.{host}"),
            "value": ch.ownership_value,
        },
        "ownership_verification_http": {
            "http_url": format!("http://{host}/.well-known/cf-custom-hostname-challenge/{}", ch.id),
            "http_body": ch.ownership_value,
        },
    });
    if let Some(m) = &ch.custom_metadata {
        v["custom_metadata"] = m.clone();
    }
    if let Some(Value::Object(forced)) = &ch.forced {
        for (k, val) in forced {
            match (k.as_str(), val) {
                ("ssl", Value::Object(fields)) => {
                    for (sk, sv) in fields {
                        v["ssl"][sk] = sv.clone();
                    }
                }
                _ => v[k] = val.clone(),
            }
        }
    }
    v
}

/// 90 days after `created_at` (RFC 3339), the certificates' validity.
fn expires_on(created_at: &str) -> String {
    let from =
        humantime::parse_rfc3339_weak(created_at).unwrap_or_else(|_| std::time::SystemTime::now());
    let at = from + std::time::Duration::from_secs(90 * 86_400);
    humantime::format_rfc3339_seconds(at).to_string()
}

fn fallback_json(f: &FallbackOrigin) -> Value {
    json!({
        "origin": f.origin,
        "status": f.status,
        "errors": [],
        "created_at": f.created_at,
        "updated_at": f.updated_at,
    })
}

/// `GET|PUT|DELETE …/custom_hostnames/fallback_origin`. PUT answers `pending_deployment`; the next
/// GET shows `active`.
fn fallback_origin(ctx: &Ctx, state: &mut State, zone: &str) -> Outcome {
    let none = || ApiError::new(404, 1551, "No fallback origin is set for this zone.");
    match ctx.method {
        "GET" => {
            let f = state.fallback_origins.get_mut(zone).ok_or_else(none)?;
            let v = fallback_json(f);
            if f.status != "active" {
                f.status = "active".into();
                f.updated_at = now_rfc3339();
                state.dirty = true;
            }
            Ok(Reply::ok(v))
        }
        "DELETE" => {
            let mut f = state.fallback_origins.remove(zone).ok_or_else(none)?;
            f.status = "pending_deletion".into();
            Ok(Reply::ok(fallback_json(&f)))
        }
        _ => {
            let body = match parse_json(ctx.body) {
                Ok(Some(v @ Value::Object(_))) => v,
                _ => return Err(bad_json()),
            };
            let origin = body
                .get("origin")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_lowercase();
            if !valid_hostname(&origin) || !within(&origin, seed::ZONE_NAME) {
                return Err(ApiError::new(
                    400,
                    1407,
                    "The fallback origin must be a hostname within the zone.",
                ));
            }
            let now = now_rfc3339();
            let created_at = state
                .fallback_origins
                .get(zone)
                .map(|f| f.created_at.clone())
                .unwrap_or_else(|| now.clone());
            let f = FallbackOrigin {
                origin,
                status: "pending_deployment".into(),
                created_at,
                updated_at: now,
            };
            let v = fallback_json(&f);
            state.fallback_origins.insert(zone.to_string(), f);
            Ok(Reply::ok(v))
        }
    }
}
