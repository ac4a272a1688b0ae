//! The seeded identity (one user, one account, one zone) and the permission-group catalog.
//!
//! The values are constants so that docs and scripts can show them. The eight groups the project
//! uses carry the real IDs from docs/cloudflare-api.md §3, and so do the related groups listed there;
//! the few others are plausible stand-ins so that the catalog looks like the real one (≥ 20 groups,
//! names that are not unique across scopes).

use serde_json::{json, Value};

pub const USER_ID: &str = "7c5dae5552338874e5053f2534d2767a";
pub const EMAIL: &str = "admin@getai.page";
/// A Global API Key in the legacy format: 37 lowercase hex characters (docs/cloudflare-api.md §1).
pub const GLOBAL_KEY: &str = "c2547eb745079dac9320b638f5e225cf483cc";
pub const ACCOUNT_ID: &str = "01a7362d577a6c3019a474fd6f485823";
pub const ACCOUNT_NAME: &str = "Getai Platform";
pub const ZONE_ID: &str = "023e105f4ecef8ad9ca31a8372d0c353";
pub const ZONE_NAME: &str = "getai.page";

pub const SCOPE_ACCOUNT: &str = "com.cloudflare.api.account";
pub const SCOPE_ZONE: &str = "com.cloudflare.api.account.zone";
pub const SCOPE_USER: &str = "com.cloudflare.api.user";
pub const SCOPE_BUCKET: &str = "com.cloudflare.edge.r2.bucket";

/// One permission group of the catalog served by `GET /user/tokens/permission_groups`.
#[derive(Debug, Clone)]
pub struct PermissionGroup {
    pub id: &'static str,
    pub name: &'static str,
    pub scope: &'static str,
    pub category: &'static str,
    pub description: &'static str,
}

impl PermissionGroup {
    /// Wire form (docs/cloudflare-api.md §3): `id, name, scopes, category, is_selectable, description`.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "scopes": [self.scope],
            "category": self.category,
            "is_selectable": true,
            "description": self.description,
        })
    }
}

// IDs used by the authorisation table in `routes`; all from docs/cloudflare-api.md §3.
pub const ACCOUNT_SETTINGS_READ: &str = "c1fde68c7bcc44588cbb6ddbc16d6480";
pub const R2_WRITE: &str = "bf7481a1826f439697cb59a20b22293e";
pub const R2_READ: &str = "b4992e1108244f5d8bfbd5744320c2e1";
pub const R2_ITEM_WRITE: &str = "2efd5506f9c8494dacb1fa10a3e7d5b6";
pub const R2_ITEM_READ: &str = "6a018a9f2fc74eb6b293b0c548f38b39";
pub const SCRIPTS_READ: &str = "1a71c399035b4950a1bd1466bbe4f420";
pub const SCRIPTS_WRITE: &str = "e086da7e2179491d91ee5f35b3ca210a";
pub const ROUTES_WRITE: &str = "28f4b596e7d643029c524985477ae49a";
pub const ROUTES_READ: &str = "2072033d694d415a936eaeb94e6405b8";
pub const ZONE_READ: &str = "c8fed203ed3043cba015a93ad1616f1f";
pub const ZONE_WRITE: &str = "e6d2666161e84845a636613608cee8d5";
pub const SSL_READ: &str = "7b7216b327b04b8fbc8f524e1f9b7531";
pub const SSL_WRITE: &str = "c03055bc037c4ea9afb9a9f104b7b721";
pub const TOKENS_WRITE: &str = "686d18d5ac6c441c867cbf6771e58a0a";
pub const TOKENS_READ: &str = "0cc3a61731504c89b99ec1be78b77aa0";
pub const ACCOUNT_TOKENS_WRITE: &str = "5bc3f8b21c554832afc660159ab75fa4";
pub const USER_DETAILS_READ: &str = "8acbe5bb0d54464ab867149d7f7cf8ac";

macro_rules! group {
    ($id:expr, $name:expr, $scope:expr, $cat:expr, $desc:expr) => {
        PermissionGroup {
            id: $id,
            name: $name,
            scope: $scope,
            category: $cat,
            description: $desc,
        }
    };
}

/// The catalog. Note "Access: Apps and Policies Read" twice, account- and zone-scoped
/// (docs/cloudflare-api.md §3 "Names are not unique").
pub fn permission_groups() -> Vec<PermissionGroup> {
    vec![
        group!(
            ACCOUNT_SETTINGS_READ,
            "Account Settings Read",
            SCOPE_ACCOUNT,
            "account_management",
            "Grants read access to account settings."
        ),
        group!(
            "1af1fa2adc104452b74a9a3364202f20",
            "Account Settings Write",
            SCOPE_ACCOUNT,
            "account_management",
            "Grants write access to account settings."
        ),
        group!(
            R2_WRITE,
            "Workers R2 Storage Write",
            SCOPE_ACCOUNT,
            "developer_platform",
            "Grants write access to Cloudflare R2 Storage."
        ),
        group!(
            R2_READ,
            "Workers R2 Storage Read",
            SCOPE_ACCOUNT,
            "developer_platform",
            "Grants read access to Cloudflare R2 Storage."
        ),
        group!(
            SCRIPTS_READ,
            "Workers Scripts Read",
            SCOPE_ACCOUNT,
            "developer_platform",
            "Grants read access to Cloudflare Workers scripts."
        ),
        group!(
            SCRIPTS_WRITE,
            "Workers Scripts Write",
            SCOPE_ACCOUNT,
            "developer_platform",
            "Grants write access to Cloudflare Workers scripts."
        ),
        group!(
            "f7f0eda5697f475c90846e879bab8666",
            "Workers KV Storage Write",
            SCOPE_ACCOUNT,
            "developer_platform",
            "Grants write access to Cloudflare Workers KV Storage."
        ),
        group!(
            "8b47d2786a534c08a1f94ee8f9f599ef",
            "Workers KV Storage Read",
            SCOPE_ACCOUNT,
            "developer_platform",
            "Grants read access to Cloudflare Workers KV Storage."
        ),
        group!(
            "05880cd1bdc24d8bae0be2136972816b",
            "Workers Tail Read",
            SCOPE_ACCOUNT,
            "developer_platform",
            "Grants read access to Cloudflare Workers tail logs."
        ),
        group!(
            ROUTES_WRITE,
            "Workers Routes Write",
            SCOPE_ZONE,
            "developer_platform",
            "Grants write access to Cloudflare Workers and Workers KV Storage."
        ),
        group!(
            ROUTES_READ,
            "Workers Routes Read",
            SCOPE_ZONE,
            "developer_platform",
            "Grants read access to Cloudflare Workers routes."
        ),
        group!(
            ZONE_READ,
            "Zone Read",
            SCOPE_ZONE,
            "dns_and_zones",
            "Grants read access to zones."
        ),
        group!(
            ZONE_WRITE,
            "Zone Write",
            SCOPE_ZONE,
            "dns_and_zones",
            "Grants write access to zones."
        ),
        group!(
            "82e64a83756745bbbb1c9c2701bf816b",
            "DNS Read",
            SCOPE_ZONE,
            "dns_and_zones",
            "Grants read access to DNS."
        ),
        group!(
            "4755a26eedb94da69e1066d98aa820be",
            "DNS Write",
            SCOPE_ZONE,
            "dns_and_zones",
            "Grants write access to DNS."
        ),
        group!(
            SSL_READ,
            "SSL and Certificates Read",
            SCOPE_ZONE,
            "ssl_tls",
            "Grants read access to SSL configuration and certificate management."
        ),
        group!(
            SSL_WRITE,
            "SSL and Certificates Write",
            SCOPE_ZONE,
            "ssl_tls",
            "Grants write access to SSL configuration and certificate management."
        ),
        group!(
            R2_ITEM_WRITE,
            "Workers R2 Storage Bucket Item Write",
            SCOPE_BUCKET,
            "developer_platform",
            "Grants write access to objects in an R2 bucket."
        ),
        group!(
            R2_ITEM_READ,
            "Workers R2 Storage Bucket Item Read",
            SCOPE_BUCKET,
            "developer_platform",
            "Grants read access to objects in an R2 bucket."
        ),
        group!(
            TOKENS_WRITE,
            "API Tokens Write",
            SCOPE_USER,
            "user",
            "Grants write access to the user's API tokens."
        ),
        group!(
            TOKENS_READ,
            "API Tokens Read",
            SCOPE_USER,
            "user",
            "Grants read access to the user's API tokens."
        ),
        group!(
            USER_DETAILS_READ,
            "User Details Read",
            SCOPE_USER,
            "user",
            "Grants read access to user details."
        ),
        group!(
            ACCOUNT_TOKENS_WRITE,
            "Account API Tokens Write",
            SCOPE_ACCOUNT,
            "account_management",
            "Grants write access to account-owned API tokens."
        ),
        group!(
            "b89a480218d04ceb98b4fe57ca29dc1f",
            "Account Analytics Read",
            SCOPE_ACCOUNT,
            "analytics_and_logs",
            "Grants read access to account analytics."
        ),
        group!(
            "7ea222f6d5064cfa89ea366d7c1fee89",
            "Access: Apps and Policies Read",
            SCOPE_ACCOUNT,
            "access",
            "Grants read access to Cloudflare Access applications and policies."
        ),
        group!(
            "eb258a38ea634c86a0c89da6b27cb6b6",
            "Access: Apps and Policies Read",
            SCOPE_ZONE,
            "access",
            "Grants read access to Cloudflare Access applications and policies."
        ),
    ]
}
