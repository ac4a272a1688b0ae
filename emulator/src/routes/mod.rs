//! Routing of `/client/v4` requests to the handlers, and the order of checks every endpoint
//! follows, as the real gateway does (docs/cloudflare-api.md §1, §11):
//!
//! 1. path shape: an unknown route is 404 / 7000, a malformed identifier 400 / 7003, both before
//!    authentication;
//! 2. credentials ([`crate::auth::authenticate`]) and token usability;
//! 3. membership of the account or zone in the path (403 / 9109);
//! 4. permission groups (403 / 10000), before the body is looked at;
//! 5. the product's own validation and the action.
//!
//! Handlers are synchronous and run under the state lock; they return [`Outcome`].

mod accounts;
mod hostnames;
mod r2;
mod tokens;
mod workers;

pub use hostnames::{current_phase, new_hostname, render as render_hostname};
pub use r2::{too_large, valid_bucket_name, MAX_OBJECT_SIZE};
pub use tokens::{mint, mint_legacy};
pub use workers::public_bindings;

use crate::auth::{self, Principal};
use crate::seed::{self, PermissionGroup};
use crate::state::State;
use crate::wire::{is_hex32, ApiError, Outcome, Query, Reply};
use bytes::Bytes;
use hyper::HeaderMap;
use std::net::IpAddr;
use std::time::SystemTime;

/// One API request, as the handlers see it.
pub struct Ctx<'a> {
    pub method: &'a str,
    /// Raw (not percent-decoded) path below `/client/v4`.
    pub path: &'a str,
    pub query: Query,
    pub headers: &'a HeaderMap,
    pub body: &'a Bytes,
    pub client_ip: IpAddr,
    pub catalog: &'a [PermissionGroup],
    /// Group IDs that `GET /user/tokens/permission_groups` no longer lists.
    pub withdrawn: Vec<String>,
    pub activate_after: Option<u32>,
    pub condition_keys: crate::ConditionKeys,
    pub max_per_page: Option<usize>,
    pub r2_refuses_global_key: bool,
    pub r2_rest_accepts_bucket_tokens: bool,
}

impl Ctx<'_> {
    /// Authenticates and refuses tokens that are not usable now.
    pub fn principal(&self, state: &State) -> Result<Principal, ApiError> {
        let p = auth::authenticate(state, self.headers)?;
        if let Principal::Token(t) = &p {
            auth::usable(t, self.client_ip, SystemTime::now())?;
        }
        Ok(p)
    }

    /// The `per_page` cap of a page-paginated list: the endpoint's own, or a lower one from
    /// `Options::max_per_page`.
    pub fn per_page_max(&self, max: usize) -> usize {
        self.max_per_page.map_or(max, |m| m.clamp(1, max))
    }

    pub fn no_route(&self) -> ApiError {
        ApiError::no_route()
    }

    pub fn bad_identifier(&self) -> ApiError {
        ApiError::bad_identifier(self.path)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Routes one request; errors become their envelope.
pub fn dispatch(ctx: &Ctx, state: &mut State) -> Reply {
    route(ctx, state).unwrap_or_else(|e| e.reply())
}

fn route(ctx: &Ctx, state: &mut State) -> Outcome {
    let trimmed = ctx.path.strip_prefix('/').unwrap_or(ctx.path);
    let segs: Vec<&str> = trimmed.split('/').collect();
    match segs.as_slice() {
        ["user"] if ctx.method == "GET" => tokens::get_user(ctx, state),
        ["user", "tokens", rest @ ..] => tokens::user_tokens(ctx, state, rest),
        ["accounts"] if ctx.method == "GET" => accounts::list_accounts(ctx, state),
        ["accounts", account, rest @ ..] => {
            if !is_hex32(account) {
                return Err(ctx.bad_identifier());
            }
            match rest {
                [] if ctx.method == "GET" => accounts::get_account(ctx, state, account),
                ["tokens", rest @ ..] => tokens::account_tokens(ctx, state, account, rest),
                ["r2", "buckets", rest @ ..] => r2::route(ctx, state, account, rest),
                ["workers", "scripts", rest @ ..] => workers::scripts(ctx, state, account, rest),
                _ => Err(ctx.no_route()),
            }
        }
        ["zones"] if ctx.method == "GET" => accounts::list_zones(ctx, state),
        ["zones", zone, rest @ ..] => {
            if !is_hex32(zone) {
                return Err(ctx.bad_identifier());
            }
            match rest {
                [] if ctx.method == "GET" => accounts::get_zone(ctx, state, zone),
                ["workers", "routes", rest @ ..] => workers::routes(ctx, state, zone, rest),
                ["custom_hostnames", rest @ ..] => hostnames::route(ctx, state, zone, rest),
                _ => Err(ctx.no_route()),
            }
        }
        _ => Err(ctx.no_route()),
    }
}

/// Step 3 for `/accounts/{id}/…`: only the seeded account exists; anything else is 403 / 9109
/// (docs/cloudflare-api.md §6: a non-member gets 9109).
fn member_account(account: &str) -> Result<(), ApiError> {
    if account == seed::ACCOUNT_ID {
        Ok(())
    } else {
        Err(ApiError::unauthorized_resource())
    }
}

/// Step 3 for `/zones/{id}/…`: an unknown zone is answered like a zone of someone else,
/// 403 / 9109 (a choice: the reference does not say).
fn member_zone(zone: &str) -> Result<(), ApiError> {
    if zone == seed::ZONE_ID {
        Ok(())
    } else {
        Err(ApiError::unauthorized_resource())
    }
}

/// The zone resource for a zone id (the seeded zone belongs to the seeded account).
fn zone_resource(zone: &str) -> auth::Resource<'_> {
    auth::Resource::Zone {
        id: zone,
        account: seed::ACCOUNT_ID,
    }
}
