//! The 8 permissions: the one table that create-token, test-permissions, `cfsetup permissions`
//! and PERMISSIONS_GUIDE.md all follow (a test fails if the guide disagrees).
//!
//! Facts (docs/cloudflare-api.md §3 and §5):
//! - Groups are looked up at run time in `GET /user/tokens/permission_groups` by name *and* scope,
//!   because names are not unique; IDs are never hard-coded.
//! - Workers Routes Write is zone-scoped (`com.cloudflare.api.account.zone`): it is in the Zone table
//!   of the permissions docs, and the "Edit Cloudflare Workers" template puts it on "Zone". A copy on
//!   an account resource grants nothing.
//! - The API says "Write" where the dashboard says "Edit".
//! - The dashboard pre-fill URL takes `permissionGroupKeys` = `[{"key","type"}]`, plus
//!   `accountId=*` and `zoneId=all` (docs `account-owned-token-template.mdx`).
//!
//! It imports nothing of the crate: a table of facts that create-token, test-permissions and
//! `permissions` read.

use serde::Serialize;

/// Where a permission group applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Account,
    Zone,
}

impl Scope {
    /// The scope string in the permission-group list.
    pub fn api_scope(self) -> &'static str {
        match self {
            Scope::Account => "com.cloudflare.api.account",
            Scope::Zone => "com.cloudflare.api.account.zone",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Scope::Account => "account",
            Scope::Zone => "zone",
        }
    }

    /// The policy resource key for one account or zone (docs `create-via-api.mdx`).
    pub fn resource_key(self, id: &str) -> String {
        format!("{}.{id}", self.api_scope())
    }
}

/// How test-permissions proves a permission: one real API call (or create-and-delete) each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// `GET /accounts/{id}`
    ReadAccount,
    /// create and delete a temporary bucket
    R2Write,
    /// `GET /accounts/{id}/workers/scripts`
    ScriptsRead,
    /// upload and delete a temporary script with no routes
    ScriptsWrite,
    /// create and delete a temporary route with no script
    RoutesWrite,
    /// `GET /zones/{id}`
    ReadZone,
    /// `GET /zones/{id}/custom_hostnames`
    SslRead,
    /// a create the API refuses for its content, not for authorisation: nothing is created
    SslWriteProbe,
}

impl Check {
    pub fn writes(self) -> bool {
        matches!(
            self,
            Check::R2Write | Check::ScriptsWrite | Check::RoutesWrite | Check::SslWriteProbe
        )
    }
}

/// One of the 8 permissions.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Permission {
    /// The permission group's name in the API.
    pub name: &'static str,
    pub scope: Scope,
    /// Why the platform needs it.
    pub why: &'static str,
    /// Which commands use it.
    pub used_by: &'static [&'static str],
    /// Dashboard pre-fill key and type (docs/cloudflare-api.md §5).
    pub dashboard_key: &'static str,
    pub dashboard_type: &'static str,
    pub check: Check,
    /// How its check proves it, in words.
    pub proof: &'static str,
}

pub const PERMISSIONS: [Permission; 8] = [
    Permission {
        name: "Account Settings Read",
        scope: Scope::Account,
        why: "read the account, to confirm the account ID and name it in reports",
        used_by: &["test-permissions", "deploy-infra"],
        dashboard_key: "account_settings",
        dashboard_type: "read",
        check: Check::ReadAccount,
        proof: "GET the account",
    },
    Permission {
        name: "Workers R2 Storage Write",
        scope: Scope::Account,
        why: "create the bucket, upload site files and manifests, prune old blobs",
        used_by: &[
            "deploy-infra",
            "deploy-site",
            "rollback",
            "sites",
            "remove-site",
            "remove-domain",
            "gc",
        ],
        dashboard_key: "workers_r2",
        dashboard_type: "edit",
        check: Check::R2Write,
        proof: "create and delete a temporary bucket",
    },
    Permission {
        name: "Workers Scripts Read",
        scope: Scope::Account,
        why: "read the deployed router, so an unchanged Worker is not uploaded again",
        used_by: &["deploy-infra"],
        dashboard_key: "workers_scripts",
        dashboard_type: "read",
        check: Check::ScriptsRead,
        proof: "GET the account's scripts",
    },
    Permission {
        name: "Workers Scripts Write",
        scope: Scope::Account,
        why: "upload the router Worker that serves every tenant",
        used_by: &["deploy-infra"],
        dashboard_key: "workers_scripts",
        dashboard_type: "edit",
        check: Check::ScriptsWrite,
        proof: "upload and delete a temporary script with no routes",
    },
    Permission {
        name: "Workers Routes Write",
        scope: Scope::Zone,
        why: "point the platform's routes (`*.<domain>/*` and `*/*`) at the router",
        used_by: &["deploy-infra"],
        dashboard_key: "workers_routes",
        dashboard_type: "edit",
        check: Check::RoutesWrite,
        proof: "create and delete a temporary route with no script",
    },
    Permission {
        name: "Zone Read",
        scope: Scope::Zone,
        why: "read the zone's name, the default platform domain",
        used_by: &["test-permissions", "deploy-infra", "deploy-site"],
        dashboard_key: "zone",
        dashboard_type: "read",
        check: Check::ReadZone,
        proof: "GET the zone",
    },
    Permission {
        name: "SSL and Certificates Read",
        scope: Scope::Zone,
        why: "read custom hostnames and their certificate status",
        used_by: &["deploy-site", "sites", "remove-site", "remove-domain"],
        dashboard_key: "ssl_and_certificates",
        dashboard_type: "read",
        check: Check::SslRead,
        proof: "GET the zone's custom hostnames",
    },
    Permission {
        name: "SSL and Certificates Write",
        scope: Scope::Zone,
        why: "attach tenants' domains as custom hostnames and set the fallback origin",
        used_by: &[
            "deploy-infra",
            "deploy-site",
            "remove-site",
            "remove-domain",
        ],
        dashboard_key: "ssl_and_certificates",
        dashboard_type: "edit",
        check: Check::SslWriteProbe,
        proof: "probe: a custom-hostname create with an empty hostname, which the API refuses for \
                its content (400) when authorised and with 403/10000 when not; nothing is created",
    },
];

/// The dashboard URL that pre-fills a custom *user* token with all 8 permissions. The user still
/// picks the account and zone, reviews it and clicks create (docs/cloudflare-api.md §5).
pub fn dashboard_url(token_name: &str) -> String {
    let keys: Vec<serde_json::Value> = PERMISSIONS
        .iter()
        .map(|p| serde_json::json!({ "key": p.dashboard_key, "type": p.dashboard_type }))
        .collect();
    let keys = serde_json::Value::Array(keys).to_string();
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!(
        "https://dash.cloudflare.com/profile/api-tokens?permissionGroupKeys={}&accountId=*&zoneId=all&name={}",
        enc(&keys),
        enc(token_name)
    )
}

/// The permission table as Markdown; PERMISSIONS_GUIDE.md embeds exactly this.
pub fn markdown_table() -> String {
    let mut s = String::from(
        "| permission | scope | why the platform needs it | used by | dashboard | how test-permissions proves it |\n\
         |---|---|---|---|---|---|\n",
    );
    for p in &PERMISSIONS {
        s.push_str(&format!(
            "| {} | {} | {} | {} | `{}` {} | {} |\n",
            p.name,
            p.scope.label(),
            p.why,
            p.used_by.join(", "),
            p.dashboard_key,
            p.dashboard_type,
            p.proof
        ));
    }
    s
}

/// Finds a permission by its API name.
pub fn by_name(name: &str) -> Option<&'static Permission> {
    PERMISSIONS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_are_eight_with_distinct_names_and_routes_is_zone_scoped() {
        let mut names: Vec<_> = PERMISSIONS.iter().map(|p| p.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 8);
        assert_eq!(by_name("Workers Routes Write").unwrap().scope, Scope::Zone);
        let account: Vec<_> = PERMISSIONS
            .iter()
            .filter(|p| p.scope == Scope::Account)
            .map(|p| p.name)
            .collect();
        assert_eq!(
            account,
            [
                "Account Settings Read",
                "Workers R2 Storage Write",
                "Workers Scripts Read",
                "Workers Scripts Write"
            ]
        );
    }

    #[test]
    fn used_by_names_every_command_that_needs_the_permission() {
        let used = |name: &str| {
            PERMISSIONS
                .iter()
                .find(|p| p.name == name)
                .map(|p| p.used_by.to_vec())
                .unwrap()
        };
        for cmd in ["gc", "sites", "remove-site", "remove-domain", "rollback"] {
            assert!(used("Workers R2 Storage Write").contains(&cmd), "{cmd}");
        }
        for cmd in ["remove-site", "remove-domain"] {
            assert!(used("SSL and Certificates Write").contains(&cmd), "{cmd}");
        }
        assert!(used("SSL and Certificates Read").contains(&"sites"));
    }

    #[test]
    fn the_guide_embeds_the_table() {
        let guide = include_str!("../PERMISSIONS_GUIDE.md");
        assert!(
            guide.contains(&markdown_table()),
            "PERMISSIONS_GUIDE.md does not contain the table from src/permissions.rs; paste the \
             output of `cfsetup permissions --markdown` into it:\n{}",
            markdown_table()
        );
    }

    #[test]
    fn dashboard_url_has_every_key_once_per_type() {
        let url = dashboard_url("cfsetup platform");
        assert!(
            url.starts_with("https://dash.cloudflare.com/profile/api-tokens?permissionGroupKeys=")
        );
        assert!(url.ends_with("&accountId=*&zoneId=all&name=cfsetup%20platform"));
        let mut pairs: Vec<_> = PERMISSIONS
            .iter()
            .map(|p| (p.dashboard_key, p.dashboard_type))
            .collect();
        pairs.sort();
        pairs.dedup();
        assert_eq!(pairs.len(), 8, "one entry per key+type");
    }
}
