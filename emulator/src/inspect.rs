//! The inspection and control endpoint under `/__emulator/`, a path the real API never uses.
//!
//! `GET|DELETE /__emulator/requests`, `POST|DELETE /__emulator/faults`, `GET /__emulator/state`,
//! `PUT /__emulator/quota {allocated, hard_cap}` (every zone's custom hostname quota),
//! `POST /__emulator/custom_hostnames/{hostname}` (fields forced over its answers: see
//! [`force_hostname`]) and `POST /__emulator/dns {name, type, values}` (the DNS server's records;
//! `values: []` removes them).
//! Each logged request has `api` (`"rest"` or `"s3"`) and `op` (the S3 operation, e.g.
//! `"PutObject"`, or null); a fault may be aimed at one API with
//! `"api": "rest" | "s3"` (both when absent).
//! It never shows a token value, a secret binding's text or the Global API Key, and it is not
//! subject to faults, latency, rate limits or the request log.

use crate::faults::fault_from_json;
use crate::routes::{current_phase, public_bindings, render_hostname};
use crate::seed;
use crate::shared::Shared;
use crate::state::TokenOwner;
use crate::wire::{parse_json, ApiError, Reply};
use serde_json::{json, Value};

pub fn handle(shared: &Shared, method: &str, path: &str, body: &[u8]) -> Reply {
    match (method, path.trim_end_matches('/')) {
        ("GET", "/__emulator/requests") => {
            let log: Vec<Value> = shared
                .log
                .lock()
                .iter()
                .map(|r| {
                    json!({
                        "method": r.method,
                        "path": r.path,
                        "query": r.query,
                        "status": r.status,
                        "auth": r.auth,
                        "body_len": r.body_len,
                        "api": r.api.as_str(),
                        "op": r.op,
                    })
                })
                .collect();
            Reply::ok(Value::Array(log))
        }
        ("DELETE", "/__emulator/requests") => {
            shared.log.lock().clear();
            Reply::ok(Value::Null)
        }
        ("POST", "/__emulator/faults") => {
            let v = parse_json(body).ok().flatten().unwrap_or(Value::Null);
            match fault_from_json(&v) {
                Ok((api, f)) => {
                    shared.faults.lock().add(api, f);
                    Reply::ok(v)
                }
                Err(m) => ApiError::new(400, 400, m).reply(),
            }
        }
        ("DELETE", "/__emulator/faults") => {
            shared.faults.lock().clear();
            Reply::ok(Value::Null)
        }
        ("GET", "/__emulator/state") => Reply::ok(state_json(shared)),
        ("PUT", "/__emulator/quota") => {
            let v = parse_json(body).ok().flatten().unwrap_or(Value::Null);
            let (Some(allocated), Some(hard_cap)) = (
                v.get("allocated").and_then(Value::as_u64),
                v.get("hard_cap").and_then(Value::as_u64),
            ) else {
                return ApiError::new(400, 400, "want {allocated, hard_cap}").reply();
            };
            shared.state.lock().hostname_quota = crate::state::HostnameQuota {
                allocated,
                hard_cap,
            };
            shared.save_soon();
            Reply::ok(v)
        }
        ("POST", "/__emulator/dns") => {
            let v = parse_json(body).ok().flatten().unwrap_or(Value::Null);
            let name = v.get("name").and_then(Value::as_str).unwrap_or("");
            let kind = v
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_uppercase();
            let values: Vec<String> = v
                .get("values")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if name.is_empty() {
                return ApiError::new(400, 400, "want {name, type, values}").reply();
            }
            for val in &values {
                if let Err(m) = crate::dns::check(&kind, val) {
                    return ApiError::new(400, 400, m).reply();
                }
            }
            let mut table = shared.dns.lock();
            let k = (crate::dns::key(name), kind);
            if values.is_empty() {
                table.remove(&k);
            } else {
                table.insert(k, values);
            }
            Reply::ok(v)
        }
        ("POST", p) if p.starts_with("/__emulator/custom_hostnames/") => {
            let host = &p["/__emulator/custom_hostnames/".len()..];
            let v = parse_json(body).ok().flatten().unwrap_or(Value::Null);
            let found = force_hostname(&mut shared.state.lock(), host, v.clone());
            shared.save_soon();
            if found {
                Reply::ok(v)
            } else {
                ApiError::new(404, 1436, format!("No custom hostname {host}")).reply()
            }
        }
        _ => ApiError::new(404, 7000, format!("No route for {method} {path}")).reply(),
    }
}

fn state_json(shared: &Shared) -> Value {
    let state = shared.state.lock();
    let after = shared.options.activate_custom_hostnames_after;
    json!({
        "seed": {
            "user_id": seed::USER_ID,
            "email": seed::EMAIL,
            "account_id": seed::ACCOUNT_ID,
            "account_name": seed::ACCOUNT_NAME,
            "zone_id": seed::ZONE_ID,
            "zone_name": seed::ZONE_NAME,
        },
        "tokens": state.tokens.iter().map(|t| json!({
            "id": t.id,
            "name": t.name,
            "status": t.status,
            "owner": match &t.owner {
                TokenOwner::User => json!("user"),
                TokenOwner::Account(a) => json!(format!("account:{a}")),
            },
        })).collect::<Vec<_>>(),
        "buckets": state.buckets.iter().map(|b| json!({
            "name": b.name,
            "jurisdiction": b.jurisdiction,
            "objects": b.objects.iter().map(|(k, o)| json!({
                "key": k,
                "size": o.body.len(),
                "content_type": o.content_type,
                "cache_control": o.cache_control,
                "etag": o.etag,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "scripts": state.scripts.values().map(|s| json!({
            "name": s.name,
            "main_module": s.main_module,
            "bindings": public_bindings(s),
            "modules": s.modules.iter().map(|m| json!({
                "name": m.name,
                "content_type": m.content_type,
                "size": m.body.len(),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "routes": state.routes.iter().map(|r| json!({
            "id": r.id, "zone_id": r.zone_id, "pattern": r.pattern, "script": r.script,
        })).collect::<Vec<_>>(),
        "custom_hostnames": state.custom_hostnames.iter()
            .map(|c| render_hostname(c, current_phase(c, after)))
            .collect::<Vec<_>>(),
        "fallback_origins": state.fallback_origins.iter().map(|(z, f)| json!({
            "zone_id": z, "origin": f.origin, "status": f.status,
        })).collect::<Vec<_>>(),
    })
}

/// Forces fields over a custom hostname's answers (every zone): `fields` is merged into what is
/// forced already (top-level keys replace, `ssl` one level deep), and `null` clears it. Returns
/// whether the hostname exists.
pub fn force_hostname(state: &mut crate::state::State, hostname: &str, fields: Value) -> bool {
    let host = hostname.trim_end_matches('.').to_ascii_lowercase();
    let mut found = false;
    for ch in state
        .custom_hostnames
        .iter_mut()
        .filter(|c| c.hostname == host)
    {
        found = true;
        match &fields {
            Value::Object(new) => {
                let mut forced = match ch.forced.take() {
                    Some(Value::Object(m)) => m,
                    _ => serde_json::Map::new(),
                };
                for (k, v) in new {
                    match (k.as_str(), v, forced.get_mut("ssl")) {
                        ("ssl", Value::Object(s), Some(Value::Object(old))) => {
                            for (sk, sv) in s {
                                old.insert(sk.clone(), sv.clone());
                            }
                        }
                        _ => {
                            forced.insert(k.clone(), v.clone());
                        }
                    }
                }
                ch.forced = Some(Value::Object(forced));
            }
            _ => ch.forced = None,
        }
    }
    found
}
