//! `cfsetup permissions`: the guide on the terminal. The 8 permissions from `src/permissions.rs`,
//! their scopes, and the dashboard link that pre-fills a custom token with all of them
//! (docs/cloudflare-api.md §5). `--markdown` prints `permissions::markdown_table()` exactly, the form
//! PERMISSIONS_GUIDE.md embeds. It needs no credentials and sends no request.
//!
//! A command: it may import the layers below it and the shared `commands::bucket` and
//! `commands::head`; it must not import another command.

use serde::Serialize;
use serde_json::Value;

use crate::cli::PermissionsArgs;
use crate::config::Config;
use crate::output::{json_of, Renderer, Report, Ui};
use crate::permissions::{self, Permission, Scope, PERMISSIONS};

pub async fn run(
    args: PermissionsArgs,
    _config: &Config,
    _ui: &Ui,
) -> anyhow::Result<Box<dyn Report>> {
    Ok(Box::new(Guide {
        markdown: args.markdown,
        permissions: PERMISSIONS.to_vec(),
        scopes: vec![
            ScopeNote {
                scope: Scope::Account,
                api_scope: Scope::Account.api_scope(),
                resource: "com.cloudflare.api.account.<ACCOUNT_ID>",
            },
            ScopeNote {
                scope: Scope::Zone,
                api_scope: Scope::Zone.api_scope(),
                resource: "com.cloudflare.api.account.zone.<ZONE_ID>",
            },
        ],
        dashboard_url: permissions::dashboard_url(&args.name),
        table_markdown: permissions::markdown_table(),
    }))
}

#[derive(Debug, Serialize)]
struct ScopeNote {
    scope: Scope,
    api_scope: &'static str,
    resource: &'static str,
}

#[derive(Debug, Serialize)]
struct Guide {
    #[serde(skip)]
    markdown: bool,
    permissions: Vec<Permission>,
    scopes: Vec<ScopeNote>,
    dashboard_url: String,
    table_markdown: String,
}

impl Report for Guide {
    fn render(&self, out: &mut Renderer) {
        if self.markdown {
            out.line(self.table_markdown.trim_end_matches('\n'));
            return;
        }
        out.line(
            "The platform's token needs these 8 permissions, each on a resource of its own scope:",
        );
        out.blank();
        let rows = self
            .permissions
            .iter()
            .map(|p| {
                vec![
                    p.name.to_string(),
                    p.scope.label().to_string(),
                    p.why.to_string(),
                    p.used_by.join(", "),
                ]
            })
            .collect();
        out.table(&["permission", "scope", "why", "used by"], rows);
        out.heading("Scopes:");
        for s in &self.scopes {
            out.line(format!(
                "  {:<8} groups of scope {} go on the resource {}",
                s.scope.label(),
                s.api_scope,
                s.resource
            ));
        }
        out.line(
            "  Workers Routes Write is zone-scoped: on the account resource it grants nothing.",
        );
        out.heading("Create the token:");
        out.line("  cfsetup create-token --name \"cfsetup platform\"   (Global API Key, or a token with API Tokens Write)");
        out.line("  or in the dashboard, pre-filled with all 8 (pick the account and zone, then create):");
        out.line(format!("  {}", self.dashboard_url));
        out.heading("Then prove it: cfsetup test-permissions");
    }

    fn to_json(&self) -> Value {
        json_of(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Renderer;

    fn guide(markdown: bool) -> Guide {
        Guide {
            markdown,
            permissions: PERMISSIONS.to_vec(),
            scopes: vec![],
            dashboard_url: permissions::dashboard_url("x"),
            table_markdown: permissions::markdown_table(),
        }
    }

    #[test]
    fn markdown_is_the_table_exactly() {
        let mut r = Renderer::new(false);
        guide(true).render(&mut r);
        assert_eq!(r.finish(), permissions::markdown_table());
    }

    #[test]
    fn json_has_every_permission_and_the_link() {
        let v = guide(false).to_json();
        assert_eq!(v["permissions"].as_array().unwrap().len(), 8);
        assert_eq!(v["permissions"][4]["name"], "Workers Routes Write");
        assert_eq!(v["permissions"][4]["scope"], "zone");
        assert!(v["dashboard_url"]
            .as_str()
            .unwrap()
            .starts_with("https://dash.cloudflare.com/"));
        let _: &Permission = &PERMISSIONS[0];
    }
}
