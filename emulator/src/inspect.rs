//! The inspection and control endpoint under `/__emulator/`, a path the real API never uses.
//!
//! `GET|DELETE /__emulator/requests`, `POST|DELETE /__emulator/faults`, `GET /__emulator/state`.
//! Each logged request has `api` (`"rest"` or `"s3"`) and `op` (the S3 operation, e.g.
//! `"PutObject"`, or null); a fault may be aimed at one API with
//! `"api": "rest" | "s3"` (both when absent).
//! It never shows a token value, a secret binding's text or the Global API Key, and it is not
//! subject to faults, latency, rate limits or the request log.

use crate::faults::fault_from_json;
use crate::routes::{current_phase, public_bindings, render_hostname};
use crate::seed;
use crate::server::Shared;
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
