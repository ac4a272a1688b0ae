//! `GET /accounts[/{id}]` and `GET /zones[/{id}]` (docs/cloudflare-api.md §6).
//!
//! Visibility: an account is listed when the credential has Account Settings Read on it; a zone
//! when it has Zone Read or Zone Write on it. A token that can see no zone at all gets the
//! gateway's 403 / code 0 "Actor … requires permission 'com.cloudflare.api.account.zone.list'"
//! (docs/cloudflare-api.md §1 table); filters that match nothing give an empty list.

use super::{member_account, member_zone, zone_resource, Ctx};
use crate::auth::{Principal, Resource};
use crate::seed;
use crate::state::State;
use crate::wire::{paginate, ApiError, Outcome, Reply};
use serde_json::{json, Value};

const CREATED_ON: &str = "2024-01-15T09:30:00Z";

fn account_json() -> Value {
    json!({
        "id": seed::ACCOUNT_ID,
        "name": seed::ACCOUNT_NAME,
        "type": "standard",
        "created_on": CREATED_ON,
        "settings": {
            "enforce_twofactor": false,
            "api_access_enabled": null,
            "abuse_contact_email": null,
        },
    })
}

/// The seeded zone in the `Zone` wire form.
pub fn zone_json() -> Value {
    json!({
        "id": seed::ZONE_ID,
        "name": seed::ZONE_NAME,
        "status": "active",
        "paused": false,
        "type": "full",
        "development_mode": 0,
        "name_servers": ["ada.ns.cloudflare.com", "bob.ns.cloudflare.com"],
        "original_name_servers": null,
        "original_registrar": null,
        "original_dnshost": null,
        "account": {"id": seed::ACCOUNT_ID, "name": seed::ACCOUNT_NAME},
        "owner": {"id": null, "type": "user", "email": null},
        "plan": {"id": "0feeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "name": "Free Website", "price": 0,
                 "currency": "USD", "frequency": "", "is_subscribed": false, "can_subscribe": false,
                 "legacy_id": "free", "legacy_discount": false, "externally_managed": false},
        "permissions": [],
        "activated_on": CREATED_ON,
        "created_on": CREATED_ON,
        "modified_on": CREATED_ON,
        "meta": {"step": 2, "custom_certificate_quota": 0, "page_rule_quota": 3,
                 "phishing_detected": false},
    })
}

/// `GET /accounts`: page-paginated, the accounts the credential can read.
pub fn list_accounts(ctx: &Ctx, state: &mut State) -> Outcome {
    let p = ctx.principal(state)?;
    let visible = p.may(
        ctx.catalog,
        &[seed::ACCOUNT_SETTINGS_READ],
        Resource::Account(seed::ACCOUNT_ID),
    );
    let items = if visible {
        vec![account_json()]
    } else {
        vec![]
    };
    Ok(paginate(items, &ctx.query, 20, ctx.per_page_max(50)))
}

/// `GET /accounts/{id}`: Account Settings Read on it; a non-member account is 403 / 9109.
pub fn get_account(ctx: &Ctx, state: &mut State, account: &str) -> Outcome {
    let p = ctx.principal(state)?;
    member_account(account)?;
    p.require(
        ctx.catalog,
        &[seed::ACCOUNT_SETTINGS_READ],
        Resource::Account(account),
    )?;
    Ok(Reply::ok(account_json()))
}

fn can_read_zone(ctx: &Ctx, p: &Principal, zone: &str) -> bool {
    p.may(
        ctx.catalog,
        &[seed::ZONE_READ, seed::ZONE_WRITE],
        zone_resource(zone),
    )
}

/// `GET /zones?name&account.id&status&page&per_page`.
pub fn list_zones(ctx: &Ctx, state: &mut State) -> Outcome {
    let p = ctx.principal(state)?;
    if !can_read_zone(ctx, &p, seed::ZONE_ID) {
        if let Some(id) = p.token_id() {
            return Err(ApiError::new(
                403,
                0,
                format!(
                    "Actor 'com.cloudflare.api.token.{id}' requires permission \
                     'com.cloudflare.api.account.zone.list' to list zones"
                ),
            ));
        }
    }
    let matches = |key: &str, actual: &str| ctx.query.get(key).is_none_or(|want| want == actual);
    let visible = can_read_zone(ctx, &p, seed::ZONE_ID)
        && matches("name", seed::ZONE_NAME)
        && matches("account.id", seed::ACCOUNT_ID)
        && matches("account.name", seed::ACCOUNT_NAME)
        && matches("status", "active");
    let items = if visible { vec![zone_json()] } else { vec![] };
    Ok(paginate(items, &ctx.query, 20, ctx.per_page_max(50)))
}

/// `GET /zones/{id}`: Zone Read or Zone Write on that zone.
pub fn get_zone(ctx: &Ctx, state: &mut State, zone: &str) -> Outcome {
    let p = ctx.principal(state)?;
    member_zone(zone)?;
    p.require(
        ctx.catalog,
        &[seed::ZONE_READ, seed::ZONE_WRITE],
        zone_resource(zone),
    )?;
    Ok(Reply::ok(zone_json()))
}
