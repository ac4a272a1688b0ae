//! Workers scripts (`/accounts/{id}/workers/scripts…`, docs/cloudflare-api.md §8) and Worker routes
//! (`/zones/{id}/workers/routes…`, docs/cloudflare-api.md §9).
//!
//! Uploads are `multipart/form-data`: the `metadata` part (any content type, with or without a
//! file name) and module parts found by file name or by part name (Python SDK sends
//! `name="files"; filename="index.js"`, wrangler `name="index.js"`; docs/peers.md §3, §5).
//!
//! Choices where the reference is silent: the service-worker format (`body_part`) is refused with
//! 400 / 10021; a body that is not multipart is 400 / 10021; an unparseable route body is
//! 400 / 10026; a route without a script is returned with `"script": null`.

use super::{member_account, member_zone, zone_resource, Ctx};
use crate::auth::Resource;
use crate::seed;
use crate::state::{Module, Route, Script, State};
use crate::wire::{now_rfc3339, parse_json, random_hex, sha256_hex, ApiError, Outcome, Reply};
use bytes::Bytes;
use futures_util::FutureExt;
use serde_json::{json, Value};

fn validation(msg: impl Into<String>) -> ApiError {
    ApiError::new(400, 10021, msg)
}

fn no_script() -> ApiError {
    ApiError::new(404, 10007, "This Worker does not exist on your account.")
}

pub fn scripts(ctx: &Ctx, state: &mut State, account: &str, rest: &[&str]) -> Outcome {
    let write = matches!(ctx.method, "PUT" | "DELETE");
    let known = matches!(
        (ctx.method, rest),
        ("GET", [])
            | ("GET" | "PUT" | "DELETE", [_])
            | ("GET", [_, "content", "v2"])
            | ("GET", [_, "settings"])
    );
    if !known {
        return Err(ctx.no_route());
    }
    let p = ctx.principal(state)?;
    member_account(account)?;
    let groups: &[&str] = if write {
        &[seed::SCRIPTS_WRITE]
    } else {
        &[seed::SCRIPTS_READ, seed::SCRIPTS_WRITE]
    };
    p.require(ctx.catalog, groups, Resource::Account(account))?;
    match (ctx.method, rest) {
        ("GET", []) => {
            let items: Vec<Value> = state.scripts.values().map(list_json).collect();
            Ok(Reply::ok(Value::Array(items)))
        }
        ("PUT", [name]) => upload(ctx, state, name),
        ("DELETE", [name]) => {
            state.scripts.remove(*name).ok_or_else(no_script)?;
            Ok(Reply::ok(Value::Null))
        }
        ("GET", [name]) | ("GET", [name, "content", "v2"]) => {
            let s = state.scripts.get(*name).ok_or_else(no_script)?;
            Ok(content_reply(s))
        }
        ("GET", [name, "settings"]) => {
            let s = state.scripts.get(*name).ok_or_else(no_script)?;
            Ok(Reply::ok(settings_json(s)))
        }
        _ => Err(ctx.no_route()),
    }
}

/// The script's content as the real API answers a module Worker: `multipart/form-data`, one part
/// per module (form name = file name = the module's name, with its content type), and the header
/// `cf-entrypoint` naming the entry part. Sources (docs/cloudflare-api.md §8 "Reading a script back"):
/// wrangler `fetchWorkerDefinitionFromDash` branches on a multipart content type; workers-sdk PR
/// #1645 ("multipart/form-data is the response for modules"); cloudflare-go v0 `GetWorker` parses
/// multipart.
///
/// The team's first notes named `CF-WORKER-MAIN-MODULE-PART` / `CF-WORKER-BODY-PART` as response
/// headers (TS SDK `content.ts`); docs/cloudflare-api.md §8 records the correction. In `content.ts` those are
/// *request* headers of `update()` (PUT `…/content`), not part of the GET answer. Wrangler, which
/// talks to the real API, reads the entry from `cf-entrypoint`:
/// `packages/wrangler/src/versions/secrets/index.ts` (`contentRes.headers.get("cf-entrypoint")`,
/// throwing "Got modules without cf-entrypoint header") and the init-from-dash helper
/// (`response.headers.get("cf-entrypoint") ?? "src/index.js"`). The request-header names are not
/// sent.
fn content_reply(s: &Script) -> Reply {
    let boundary = format!("----cfemu{}", random_hex(24));
    let mut body = Vec::new();
    for m in &s.modules {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"{0}\"; filename=\"{0}\"\r\n",
                m.name
            )
            .as_bytes(),
        );
        body.extend_from_slice(format!("Content-Type: {}\r\n\r\n", m.content_type).as_bytes());
        body.extend_from_slice(&m.body);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Reply::raw(
        200,
        vec![
            (
                "content-type".into(),
                format!("multipart/form-data; boundary={boundary}"),
            ),
            ("cf-entrypoint".into(), s.main_module.clone()),
        ],
        Bytes::from(body),
    )
}

/// Letters, digits, `_`, `-`; starts with a letter, ends with a letter or digit; ≤ 63
/// (docs/cloudflare-api.md §8, legacy docs).
pub fn valid_script_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=63).contains(&b.len())
        && b.first().is_some_and(u8::is_ascii_alphabetic)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

struct Part {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    body: Bytes,
}

/// Parses the whole multipart body. The body is in memory, so multer's futures complete at once.
fn parse_multipart(ctx: &Ctx) -> Result<Vec<Part>, ApiError> {
    let ct = ctx
        .header("content-type")
        .ok_or_else(|| validation("Expected a multipart/form-data body"))?;
    let boundary = multer::parse_boundary(ct)
        .map_err(|_| validation("Expected a multipart/form-data body with a boundary"))?;
    let body = ctx.body.clone();
    let stream = futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut mp = multer::Multipart::new(stream, boundary);
    let bad = |e: multer::Error| validation(format!("Malformed multipart body: {e}"));
    let mut parts = Vec::new();
    loop {
        let next = mp
            .next_field()
            .now_or_never()
            .ok_or_else(|| validation("Malformed multipart body"))?;
        let Some(field) = next.map_err(bad)? else {
            break;
        };
        let name = field.name().unwrap_or("").to_string();
        let filename = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(|m| m.to_string());
        let body = field
            .bytes()
            .now_or_never()
            .ok_or_else(|| validation("Malformed multipart body"))?
            .map_err(bad)?;
        parts.push(Part {
            name,
            filename,
            content_type,
            body,
        });
    }
    Ok(parts)
}

/// `PUT …/workers/scripts/{name}`. Query parameters (`excludeScript`, `bindings_inherit`) are
/// ignored.
fn upload(ctx: &Ctx, state: &mut State, name: &str) -> Outcome {
    if !valid_script_name(name) {
        return Err(validation(format!("Invalid Worker name '{name}'")));
    }
    let parts = parse_multipart(ctx)?;
    let meta_part = parts
        .iter()
        .find(|p| p.name == "metadata")
        .ok_or_else(|| validation("Missing the metadata part"))?;
    let metadata: Value = serde_json::from_slice(&meta_part.body)
        .map_err(|e| validation(format!("metadata is not valid JSON: {e}")))?;
    if !metadata.is_object() {
        return Err(validation("metadata must be a JSON object"));
    }
    let main_module = match metadata.get("main_module").and_then(Value::as_str) {
        Some(m) if !m.is_empty() => m.to_string(),
        _ if metadata.get("body_part").is_some() => {
            return Err(validation(
                "The service-worker format (body_part) is not supported; upload an ES module",
            ))
        }
        _ => return Err(validation("metadata.main_module is required")),
    };
    // The main module: by file name first, then by part name (wrangler names both).
    let module_parts: Vec<&Part> = parts.iter().filter(|p| p.name != "metadata").collect();
    let main_idx = module_parts
        .iter()
        .position(|p| p.filename.as_deref() == Some(main_module.as_str()))
        .or_else(|| module_parts.iter().position(|p| p.name == main_module))
        .ok_or_else(|| {
            validation(format!(
                "No such module \"{main_module}\": the main_module must name an uploaded part"
            ))
        })?;
    let main_body = module_parts[main_idx].body.clone();
    let modules: Vec<Module> = module_parts
        .iter()
        .enumerate()
        .map(|(i, p)| Module {
            name: if i == main_idx {
                main_module.clone()
            } else {
                p.filename.clone().unwrap_or_else(|| p.name.clone())
            },
            content_type: p
                .content_type
                .clone()
                .unwrap_or_else(|| "application/octet-stream".into()),
            body: p.body.to_vec(),
        })
        .collect();
    let previous = state.scripts.get(name);
    let bindings = resolve_bindings(state, &metadata, previous)?;
    let now = now_rfc3339();
    let list = |k: &str| {
        metadata
            .get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let script = Script {
        name: name.to_string(),
        tag: previous
            .map(|p| p.tag.clone())
            .unwrap_or_else(|| random_hex(32)),
        main_module,
        bindings,
        compatibility_date: metadata
            .get("compatibility_date")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        compatibility_flags: list("compatibility_flags"),
        tags: list("tags"),
        etag: sha256_hex(&main_body),
        created_on: previous
            .map(|p| p.created_on.clone())
            .unwrap_or_else(|| now.clone()),
        modified_on: now,
        metadata,
        modules,
    };
    let mut result = list_json(&script);
    result["startup_time_ms"] = json!(1);
    result["deployment_id"] = json!(random_hex(32));
    state.scripts.insert(name.to_string(), script);
    Ok(Reply::ok(result))
}

/// Validates the bindings and applies `inherit` and `keep_bindings` against the previous version.
fn resolve_bindings(
    state: &State,
    metadata: &Value,
    previous: Option<&Script>,
) -> Result<Vec<Value>, ApiError> {
    let sent = match metadata.get("bindings") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(b)) => b.clone(),
        Some(_) => return Err(validation("metadata.bindings must be an array")),
    };
    let mut out: Vec<Value> = Vec::new();
    for b in sent {
        let name = b
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let kind = b
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() || kind.is_empty() {
            return Err(validation("every binding needs a name and a type"));
        }
        if out
            .iter()
            .any(|o| o.get("name").and_then(Value::as_str) == Some(&name))
        {
            return Err(validation(format!("binding '{name}' is declared twice")));
        }
        let has_str = |k: &str| b.get(k).and_then(Value::as_str).is_some();
        match kind.as_str() {
            "r2_bucket" => {
                let bucket = b.get("bucket_name").and_then(Value::as_str).unwrap_or("");
                let j = b
                    .get("jurisdiction")
                    .and_then(Value::as_str)
                    .unwrap_or("default");
                if state.bucket(j, bucket).is_none() {
                    return Err(validation(format!(
                        "binding '{name}': R2 bucket '{bucket}' (jurisdiction {j}) does not exist"
                    )));
                }
            }
            "plain_text" | "secret_text" if !has_str("text") => {
                return Err(validation(format!("binding '{name}': text is required")));
            }
            "json" if b.get("json").is_none() => {
                return Err(validation(format!("binding '{name}': json is required")));
            }
            "inherit" => {
                let old = previous
                    .and_then(|p| {
                        p.bindings
                            .iter()
                            .find(|o| o.get("name").and_then(Value::as_str) == Some(&name))
                    })
                    .ok_or_else(|| {
                        validation(format!(
                            "binding '{name}': nothing to inherit from the previous version"
                        ))
                    })?;
                out.push(old.clone());
                continue;
            }
            _ => {}
        }
        out.push(b);
    }
    let keep: Vec<&str> = metadata
        .get("keep_bindings")
        .and_then(Value::as_array)
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(prev) = previous {
        for old in &prev.bindings {
            let kind = old.get("type").and_then(Value::as_str).unwrap_or("");
            let name = old.get("name").and_then(Value::as_str).unwrap_or("");
            let named = out
                .iter()
                .any(|o| o.get("name").and_then(Value::as_str) == Some(name));
            if keep.contains(&kind) && !named {
                out.push(old.clone());
            }
        }
    }
    Ok(out)
}

fn list_json(s: &Script) -> Value {
    json!({
        "id": s.name,
        "tag": s.tag,
        "etag": s.etag,
        "created_on": s.created_on,
        "modified_on": s.modified_on,
        "compatibility_date": s.compatibility_date,
        "compatibility_flags": s.compatibility_flags,
        "handlers": ["fetch"],
        "has_modules": true,
        "has_assets": false,
        "usage_model": "standard",
        "tags": s.tags,
    })
}

/// Bindings as the settings endpoint shows them: `secret_text` without its text.
pub fn public_bindings(s: &Script) -> Vec<Value> {
    s.bindings
        .iter()
        .map(|b| {
            let mut b = b.clone();
            if b.get("type").and_then(Value::as_str) == Some("secret_text") {
                if let Some(o) = b.as_object_mut() {
                    o.remove("text");
                }
            }
            b
        })
        .collect()
}

fn settings_json(s: &Script) -> Value {
    json!({
        "bindings": public_bindings(s),
        "compatibility_date": s.compatibility_date,
        "compatibility_flags": s.compatibility_flags,
        "tags": s.tags,
        "usage_model": "standard",
        "logpush": false,
        "placement": {},
        "tail_consumers": [],
        "observability": null,
    })
}

// ---- Routes (docs/cloudflare-api.md §9) ----

fn route_json(r: &Route) -> Value {
    json!({"id": r.id, "pattern": r.pattern, "script": r.script})
}

fn no_route_found() -> ApiError {
    ApiError::new(404, 10005, "workers.api.error.route_not_found")
}

pub fn routes(ctx: &Ctx, state: &mut State, zone: &str, rest: &[&str]) -> Outcome {
    let known = matches!(
        (ctx.method, rest),
        ("GET" | "POST", []) | ("GET" | "PUT" | "DELETE", [_])
    );
    if !known {
        return Err(ctx.no_route());
    }
    let p = ctx.principal(state)?;
    member_zone(zone)?;
    let groups: &[&str] = if ctx.method == "GET" {
        &[seed::ROUTES_READ, seed::ROUTES_WRITE]
    } else {
        &[seed::ROUTES_WRITE]
    };
    p.require(ctx.catalog, groups, zone_resource(zone))?;
    match (ctx.method, rest) {
        ("GET", []) => Ok(Reply::ok(Value::Array(
            state
                .routes
                .iter()
                .filter(|r| r.zone_id == zone)
                .map(route_json)
                .collect(),
        ))),
        ("POST", []) => {
            let (pattern, script) = route_body(ctx, state)?;
            if state
                .routes
                .iter()
                .any(|r| r.zone_id == zone && r.pattern == pattern)
            {
                return Err(duplicate());
            }
            let route = Route {
                id: random_hex(32),
                zone_id: zone.to_string(),
                pattern,
                script,
            };
            let result = route_json(&route);
            state.routes.push(route);
            Ok(Reply::ok(result))
        }
        ("GET", [id]) => state
            .routes
            .iter()
            .find(|r| r.zone_id == zone && r.id == *id)
            .map(|r| Reply::ok(route_json(r)))
            .ok_or_else(no_route_found),
        ("PUT", [id]) => {
            let idx = state
                .routes
                .iter()
                .position(|r| r.zone_id == zone && r.id == *id)
                .ok_or_else(no_route_found)?;
            let (pattern, script) = route_body(ctx, state)?;
            if state
                .routes
                .iter()
                .any(|r| r.zone_id == zone && r.pattern == pattern && r.id != *id)
            {
                return Err(duplicate());
            }
            state.routes[idx].pattern = pattern;
            state.routes[idx].script = script;
            Ok(Reply::ok(route_json(&state.routes[idx])))
        }
        ("DELETE", [id]) => {
            let idx = state
                .routes
                .iter()
                .position(|r| r.zone_id == zone && r.id == *id)
                .ok_or_else(no_route_found)?;
            state.routes.remove(idx);
            Ok(Reply::ok(json!({"id": id})))
        }
        _ => Err(ctx.no_route()),
    }
}

fn duplicate() -> ApiError {
    ApiError::new(409, 10020, "workers.api.error.duplicate_route")
}

/// Parses `{pattern, script?}`, validates the pattern and that a named script exists
/// (400 / 10019).
fn route_body(ctx: &Ctx, state: &State) -> Result<(String, Option<String>), ApiError> {
    let body = match parse_json(ctx.body) {
        Ok(Some(v @ Value::Object(_))) => v,
        _ => return Err(ApiError::new(400, 10026, "workers.api.error.parse_body")),
    };
    let pattern = body
        .get("pattern")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::new(400, 10022, "Route pattern is required"))?
        .to_string();
    check_pattern(&pattern, seed::ZONE_NAME)?;
    let script = match body.get("script") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => {
            if !state.scripts.contains_key(s) {
                return Err(ApiError::new(
                    400,
                    10019,
                    format!("workers.api.error.script_not_found: Worker '{s}' does not exist"),
                ));
            }
            Some(s.clone())
        }
        Some(_) => return Err(ApiError::new(400, 10026, "workers.api.error.parse_body")),
    };
    Ok((pattern, script))
}

/// Pattern rules (docs/cloudflare-api.md §9, legacy docs): no scheme, no query string; the host is the
/// zone, a subdomain of it, or begins with `*` (`*/*`, `*.zone/*`, `*zone/*`); `*` only at the
/// start of the host or the end of the path. All failures are 400 / 10022.
pub fn check_pattern(pattern: &str, zone: &str) -> Result<(), ApiError> {
    let bad = |m: &str| Err(ApiError::new(400, 10022, m.to_string()));
    if pattern.is_empty() || pattern.chars().any(char::is_whitespace) {
        return bad("Route pattern is invalid");
    }
    if pattern.contains("://") {
        return bad("Route pattern must not include a scheme");
    }
    if pattern.contains('?') {
        return bad("Route pattern must not include a query string");
    }
    let (host, path) = match pattern.find('/') {
        Some(i) => (&pattern[..i], &pattern[i..]),
        None => (pattern, ""),
    };
    let host = host.to_ascii_lowercase();
    let host = host.split(':').next().unwrap_or("");
    let rest = host.strip_prefix('*').unwrap_or(host);
    if rest.contains('*') {
        return bad("Wildcard operators (*) are only allowed at the start of the hostname or the end of the path");
    }
    if let Some(i) = path.find('*') {
        if i != path.len() - 1 {
            return bad("Wildcard operators (*) are only allowed at the start of the hostname or the end of the path");
        }
    }
    let wildcard = host.starts_with('*');
    let rest = if wildcard {
        rest.strip_prefix('.').unwrap_or(rest)
    } else {
        rest
    };
    let in_zone = rest == zone || rest.ends_with(&format!(".{zone}"));
    if in_zone || (wildcard && rest.is_empty()) {
        Ok(())
    } else {
        bad("Route pattern must include zone name")
    }
}
