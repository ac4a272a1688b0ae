//! `GET /user`, token verify, the permission-group catalog and API token CRUD + roll, for user
//! tokens (`/user/tokens…`) and account-owned tokens (`/accounts/{id}/tokens…`)
//! (docs/cloudflare-api.md §2, §3, §4).
//!
//! Choices where the reference is silent: validation errors are 400 with code 400 and a message
//! naming the field or id; malformed JSON is 400 / 6007; an unknown token id is 404 / 1003.

use super::{member_account, Ctx};
use crate::auth::{effective_status, parse_cidr, Principal, Resource};
use crate::seed::{self, PermissionGroup};
use crate::state::{State, Token, TokenOwner};
use crate::wire::{
    is_hex32, now_rfc3339, paginate, parse_json, parse_rfc3339, random_hex, sha256_hex, ApiError,
    Outcome, Reply,
};
use crate::ConditionKeys;
use serde_json::{json, Map, Value};
use std::time::SystemTime;

/// Per-owner quotas (docs/cloudflare-api.md §1 "Token quotas").
const MAX_USER_TOKENS: usize = 50;
const MAX_ACCOUNT_TOKENS: usize = 500;

/// `GET /user`: the Global Key, or a token with User Details Read; otherwise 403 / 9109
/// (docs/cloudflare-api.md §2; wrangler `getEmail()` relies on that code).
pub fn get_user(ctx: &Ctx, state: &mut State) -> Outcome {
    let p = ctx.principal(state)?;
    if !p.may(
        ctx.catalog,
        &[seed::USER_DETAILS_READ],
        Resource::User(seed::USER_ID),
    ) {
        return Err(ApiError::unauthorized_resource());
    }
    Ok(Reply::ok(json!({
        "id": seed::USER_ID,
        "email": seed::EMAIL,
        "first_name": "Getai",
        "last_name": "Admin",
        "country": null,
        "telephone": null,
        "zipcode": null,
        "suspended": false,
        "two_factor_authentication_enabled": false,
        "two_factor_authentication_locked": false,
        "has_pro_zones": false,
        "has_business_zones": false,
        "has_enterprise_zones": false,
        "betas": [],
        "organizations": [],
    })))
}

/// `/user/tokens…`.
pub fn user_tokens(ctx: &Ctx, state: &mut State, rest: &[&str]) -> Outcome {
    let owner = TokenOwner::User;
    match (ctx.method, rest) {
        ("GET", ["verify"]) => verify(ctx, state, &owner),
        ("GET", ["permission_groups"]) => permission_groups(ctx, state),
        ("GET", []) | ("POST", []) => collection(ctx, state, &owner),
        (_, [id]) | (_, [id, "value"]) if !is_hex32(id) => Err(ctx.bad_identifier()),
        ("GET" | "PUT" | "DELETE", [id]) => item(ctx, state, &owner, id),
        ("PUT", [id, "value"]) => roll(ctx, state, &owner, id),
        _ => Err(ctx.no_route()),
    }
}

/// `/accounts/{id}/tokens…`: account-owned tokens (docs/cloudflare-api.md §4 "Account-owned tokens").
pub fn account_tokens(ctx: &Ctx, state: &mut State, account: &str, rest: &[&str]) -> Outcome {
    let owner = TokenOwner::Account(account.to_string());
    match (ctx.method, rest) {
        ("GET", ["verify"]) => verify(ctx, state, &owner),
        ("GET", ["permission_groups"]) => {
            ctx.principal(state)?;
            member_account(account)?;
            permission_groups(ctx, state)
        }
        ("GET", []) | ("POST", []) => collection(ctx, state, &owner),
        (_, [id]) | (_, [id, "value"]) if !is_hex32(id) => Err(ctx.bad_identifier()),
        ("GET" | "PUT" | "DELETE", [id]) => item(ctx, state, &owner, id),
        ("PUT", [id, "value"]) => roll(ctx, state, &owner, id),
        _ => Err(ctx.no_route()),
    }
}

/// Verify: any token of the right owner, no permission group needed; the result reports the
/// status even for a disabled or expired token. An account-owned token on `/user/tokens/verify`
/// (or a user token on the account endpoint) is 401 / 1000 (docs/cloudflare-api.md §2).
fn verify(ctx: &Ctx, state: &State, owner: &TokenOwner) -> Outcome {
    let p = crate::auth::authenticate(state, ctx.headers)?;
    let Principal::Token(token) = p else {
        // The Global Key cannot be verified as a token.
        return Err(ApiError::new(
            400,
            1001,
            "Invalid API Token: Bearer token required",
        ));
    };
    // Outside its IP range even verify is refused (docs/cloudflare-api.md §4 "IP-restricted tokens").
    crate::auth::ip_usable(&token, ctx.client_ip)?;
    if &token.owner != owner {
        return Err(ApiError::new(401, 1000, "Invalid API Token"));
    }
    let now = SystemTime::now();
    let status = effective_status(&token, now);
    let mut result = json!({"id": token.id, "status": status});
    if let Some(e) = &token.expires_on {
        result["expires_on"] = json!(e);
    }
    if let Some(n) = &token.not_before {
        result["not_before"] = json!(n);
    }
    let active = crate::auth::usable(&token, ctx.client_ip, now).is_ok();
    let messages = if active {
        json!([{"code": 10000, "message": "This API Token is valid and active", "type": null}])
    } else {
        json!([])
    };
    Ok(Reply::json(
        200,
        &json!({"success": true, "errors": [], "messages": messages, "result": result}),
    ))
}

/// The catalog, filtered by exact `name` and `scope`; one page, no `result_info`
/// (docs/cloudflare-api.md §3). Any usable credential may read it.
fn permission_groups(ctx: &Ctx, state: &State) -> Outcome {
    ctx.principal(state)?;
    let name = ctx.query.get("name");
    let scope = ctx.query.get("scope");
    let items: Vec<Value> = ctx
        .catalog
        .iter()
        .filter(|g| name.is_none_or(|n| n == g.name))
        .filter(|g| scope.is_none_or(|s| s == g.scope))
        .filter(|g| !ctx.withdrawn.iter().any(|w| w == g.id))
        .map(PermissionGroup::to_json)
        .collect();
    Ok(Reply::ok(Value::Array(items)))
}

/// Who may manage tokens of `owner`: for user tokens the Global Key or API Tokens Write (reads
/// also API Tokens Read) on the user; for account tokens Account API Tokens Write on the account.
fn authorise(ctx: &Ctx, state: &State, owner: &TokenOwner, write: bool) -> Result<(), ApiError> {
    let p = ctx.principal(state)?;
    match owner {
        TokenOwner::User => {
            let groups: &[&str] = if write {
                &[seed::TOKENS_WRITE]
            } else {
                &[seed::TOKENS_WRITE, seed::TOKENS_READ]
            };
            p.require(ctx.catalog, groups, Resource::User(seed::USER_ID))
        }
        TokenOwner::Account(a) => {
            member_account(a)?;
            p.require(
                ctx.catalog,
                &[seed::ACCOUNT_TOKENS_WRITE],
                Resource::Account(a),
            )
        }
    }
}

fn collection(ctx: &Ctx, state: &mut State, owner: &TokenOwner) -> Outcome {
    authorise(ctx, state, owner, ctx.method == "POST")?;
    if ctx.method == "GET" {
        let items = state
            .tokens
            .iter()
            .filter(|t| &t.owner == owner)
            .map(token_json)
            .collect();
        return Ok(paginate(items, &ctx.query, 20, ctx.per_page_max(50)));
    }
    let body = parse_body(ctx.body)?;
    let count = state.tokens.iter().filter(|t| &t.owner == owner).count();
    let max = match owner {
        TokenOwner::User => MAX_USER_TOKENS,
        TokenOwner::Account(_) => MAX_ACCOUNT_TOKENS,
    };
    if count >= max {
        return Err(ApiError::new(
            400,
            400,
            format!("You have reached the maximum number of API tokens ({max})"),
        ));
    }
    let (token, value) = build(ctx.catalog, owner.clone(), &body, ctx.condition_keys)?;
    let mut result = token_json(&token);
    result["value"] = json!(value);
    state.tokens.push(token);
    Ok(Reply::ok(result))
}

fn item(ctx: &Ctx, state: &mut State, owner: &TokenOwner, id: &str) -> Outcome {
    authorise(ctx, state, owner, ctx.method != "GET")?;
    let idx = find(state, owner, id)?;
    match ctx.method {
        "GET" => Ok(Reply::ok(token_json(&state.tokens[idx]))),
        "DELETE" => {
            state.tokens.remove(idx);
            Ok(Reply::ok(json!({"id": id})))
        }
        _ => {
            let body = parse_body(ctx.body)?;
            let (mut fresh, _) = build(ctx.catalog, owner.clone(), &body, ctx.condition_keys)?;
            if let Some(status) = body.get("status") {
                match status.as_str() {
                    Some(s @ ("active" | "disabled" | "expired")) => fresh.status = s.into(),
                    _ => return Err(invalid("status must be active, disabled or expired")),
                }
            }
            let old = &state.tokens[idx];
            fresh.id = old.id.clone();
            fresh.value_sha256 = old.value_sha256.clone();
            fresh.prefixed = old.prefixed;
            fresh.issued_on = old.issued_on.clone();
            fresh.last_used_on = old.last_used_on.clone();
            state.tokens[idx] = fresh;
            Ok(Reply::ok(token_json(&state.tokens[idx])))
        }
    }
}

/// `PUT …/tokens/{id}/value`: a new secret; the old one stops working at once. The result is a
/// bare JSON string (docs/cloudflare-api.md §4 "Roll"). Any body (none, `{}`) is ignored.
fn roll(ctx: &Ctx, state: &mut State, owner: &TokenOwner, id: &str) -> Outcome {
    authorise(ctx, state, owner, true)?;
    let idx = find(state, owner, id)?;
    let value = new_value(owner);
    let token = &mut state.tokens[idx];
    token.value_sha256 = sha256_hex(value.as_bytes());
    // A rolled token comes back in the prefixed format (docs/cloudflare-api.md §4 "Roll").
    token.prefixed = true;
    token.modified_on = now_rfc3339();
    Ok(Reply::ok(json!(value)))
}

fn find(state: &State, owner: &TokenOwner, id: &str) -> Result<usize, ApiError> {
    state
        .tokens
        .iter()
        .position(|t| t.id == id && &t.owner == owner)
        .ok_or_else(|| ApiError::new(404, 1003, "API token not found"))
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    match parse_json(body) {
        Ok(Some(v @ Value::Object(_))) => Ok(v),
        Ok(_) => Err(invalid("request body must be a JSON object")),
        Err(_) => Err(ApiError::new(400, 6007, "Malformed JSON in request body")),
    }
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::new(400, 400, msg)
}

/// A new secret: `cfut_`/`cfat_` + 40 alphanumerics + a 6-hex checksum
/// (docs/cloudflare-api.md §1 "Token formats").
fn new_value(owner: &TokenOwner) -> String {
    use rand::distributions::Alphanumeric;
    use rand::Rng;
    let prefix = match owner {
        TokenOwner::User => "cfut_",
        TokenOwner::Account(_) => "cfat_",
    };
    let body: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    let check = sha256_hex(format!("{prefix}{body}").as_bytes());
    format!("{prefix}{body}{}", &check[..6])
}

/// Validates a create/replace body and builds the token (docs/cloudflare-api.md §4 `TokenCreateParams`).
/// Returns the token and its secret value.
pub fn build(
    catalog: &[PermissionGroup],
    owner: TokenOwner,
    body: &Value,
    keys: ConditionKeys,
) -> Result<(Token, String), ApiError> {
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim();
    if name.is_empty() {
        return Err(invalid("name is required"));
    }
    if name.chars().count() > 120 {
        return Err(invalid("name must be at most 120 characters"));
    }
    let policies = body
        .get("policies")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| invalid("policies must be a non-empty array"))?;
    let policies = policies
        .iter()
        .map(|p| build_policy(catalog, p))
        .collect::<Result<Vec<_>, _>>()?;
    let time = |key: &str| -> Result<Option<String>, ApiError> {
        match body.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if parse_rfc3339(s).is_some() => Ok(Some(s.clone())),
            Some(_) => Err(invalid(format!("{key} must be an RFC 3339 UTC time stamp"))),
        }
    };
    let not_before = time("not_before")?;
    let expires_on = time("expires_on")?;
    let condition = match body.get("condition") {
        None | Some(Value::Null) => None,
        Some(c) => check_condition(c, keys)?,
    };
    let value = new_value(&owner);
    let now = now_rfc3339();
    let token = Token {
        id: random_hex(32),
        name: name.to_string(),
        owner,
        value_sha256: sha256_hex(value.as_bytes()),
        prefixed: true,
        status: "active".into(),
        issued_on: now.clone(),
        modified_on: now,
        last_used_on: None,
        not_before,
        expires_on,
        policies,
        condition,
    };
    Ok((token, value))
}

fn build_policy(catalog: &[PermissionGroup], p: &Value) -> Result<Value, ApiError> {
    let effect = match p.get("effect").and_then(Value::as_str) {
        Some(e @ ("allow" | "deny")) => e,
        _ => return Err(invalid("policy effect must be allow or deny")),
    };
    let resources = p
        .get("resources")
        .and_then(Value::as_object)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| invalid("policy resources must be a non-empty object"))?;
    for (key, value) in resources {
        let ok = match value {
            Value::String(_) => true,
            Value::Object(inner) => !inner.is_empty() && inner.values().all(Value::is_string),
            _ => false,
        };
        if !ok || !key.starts_with("com.cloudflare.") {
            return Err(invalid(format!("invalid resource '{key}'")));
        }
    }
    let groups = p
        .get("permission_groups")
        .and_then(Value::as_array)
        .filter(|g| !g.is_empty())
        .ok_or_else(|| invalid("policy permission_groups must be a non-empty array"))?;
    let mut out_groups = Vec::new();
    for g in groups {
        let id = g.get("id").and_then(Value::as_str).unwrap_or("");
        let def = catalog
            .iter()
            .find(|d| d.id == id)
            .ok_or_else(|| invalid(format!("Permission group '{id}' does not exist")))?;
        let mut entry = json!({"id": def.id, "name": def.name});
        if let Some(meta) = g.get("meta") {
            entry["meta"] = meta.clone();
        }
        out_groups.push(entry);
    }
    Ok(json!({
        "id": random_hex(32),
        "effect": effect,
        "resources": Value::Object(resources.clone()),
        "permission_groups": out_groups,
    }))
}

/// `condition` accepts `request.ip` (documented) and `request_ip` (SDKs) with `in`/`not_in`
/// CIDR lists, and is stored as sent (docs/cloudflare-api.md §4, open question 1). A key that `keys`
/// does not honour is dropped without a word, as a server that does not know it would; a
/// condition left empty is no condition (see [`ConditionKeys`]).
fn check_condition(c: &Value, keys: ConditionKeys) -> Result<Option<Value>, ApiError> {
    let mut obj = c
        .as_object()
        .ok_or_else(|| invalid("condition must be an object"))?
        .clone();
    obj.retain(|k, _| !keys.ignores(k));
    if obj.is_empty() {
        return Ok(None);
    }
    for (key, rule) in &obj {
        if key != "request.ip" && key != "request_ip" {
            return Err(invalid(format!("unknown condition '{key}'")));
        }
        let rule = rule
            .as_object()
            .ok_or_else(|| invalid(format!("condition '{key}' must be an object")))?;
        for (list_name, list) in rule {
            if list_name != "in" && list_name != "not_in" {
                return Err(invalid(format!("unknown condition list '{list_name}'")));
            }
            let list = list
                .as_array()
                .ok_or_else(|| invalid(format!("condition '{list_name}' must be an array")))?;
            for cidr in list {
                let s = cidr.as_str().unwrap_or("");
                if parse_cidr(s).is_none() {
                    return Err(invalid(format!("invalid CIDR '{s}' in condition")));
                }
            }
        }
    }
    Ok(Some(Value::Object(obj)))
}

/// Wire form of a token; never includes `value` (docs/cloudflare-api.md §4).
pub fn token_json(t: &Token) -> Value {
    let mut v = Map::new();
    v.insert("id".into(), json!(t.id));
    v.insert("name".into(), json!(t.name));
    v.insert(
        "status".into(),
        json!(effective_status(t, SystemTime::now())),
    );
    v.insert("issued_on".into(), json!(t.issued_on));
    v.insert("modified_on".into(), json!(t.modified_on));
    v.insert("last_used_on".into(), json!(t.last_used_on));
    if let Some(n) = &t.not_before {
        v.insert("not_before".into(), json!(n));
    }
    if let Some(e) = &t.expires_on {
        v.insert("expires_on".into(), json!(e));
    }
    v.insert("policies".into(), json!(t.policies));
    if let Some(c) = &t.condition {
        v.insert("condition".into(), c.clone());
    }
    Value::Object(v)
}

/// Creates a token outside the API (for `Emulator::mint_token`). Panics on invalid policies,
/// which are test input, not request data.
pub fn mint(
    state: &mut State,
    catalog: &[PermissionGroup],
    owner: TokenOwner,
    name: &str,
    policies: Value,
) -> (String, String) {
    let body = json!({"name": name, "policies": policies});
    match build(catalog, owner, &body, ConditionKeys::Both) {
        Ok((token, value)) => {
            let id = token.id.clone();
            state.tokens.push(token);
            (id, value)
        }
        Err(e) => panic!("mint_token: invalid policies: {}", e.message),
    }
}

/// Like [`mint`], for a user token in the legacy format: 40 alphanumerics, no prefix
/// (docs/cloudflare-api.md §1 "Token formats").
pub fn mint_legacy(
    state: &mut State,
    catalog: &[PermissionGroup],
    name: &str,
    policies: Value,
) -> (String, String) {
    use rand::distributions::Alphanumeric;
    use rand::Rng;
    let (id, _) = mint(state, catalog, TokenOwner::User, name, policies);
    let value: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    let token = state
        .tokens
        .iter_mut()
        .find(|t| t.id == id)
        .expect("just minted");
    token.value_sha256 = sha256_hex(value.as_bytes());
    token.prefixed = false;
    (id, value)
}
