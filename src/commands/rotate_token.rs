//! `cfsetup rotate-token (--id ID | --name NAME)`: roll a user token's secret. The permissions stay;
//! the old value stops working at once.
//!
//! Facts (docs/cloudflare-api.md §4): `PUT /user/tokens/{id}/value` rolls the secret and its `result`
//! is a bare JSON string, the new value; `GET /user/tokens` lists tokens (names are not unique, so
//! a name that matches more than one token is refused with their IDs). Managing tokens takes the
//! Global API Key or a token with the user permission API Tokens Write. Like create-token, the new
//! value is shown once on stdout, or written to the `.env` file with `--write-env`.
//!
//! A command: it may import the layers below it and the shared `commands::bucket` and
//! `commands::head`; it builds on create-token's token (`create_token`), and imports no other
//! command.

use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use crate::cli::RotateTokenArgs;
use crate::cloudflare::tokens::Token;
use crate::cloudflare::{Auth, Client};
use crate::commands::create_token::{self, TOKEN_VAR};
use crate::config::{self, Config};
use crate::error::{usage, UsageError};
use crate::output::{json_of, Renderer, Report, Ui};
use crate::secret::Secret;

enum Selector {
    Id(String),
    Name(String),
}

/// The Global API Key when email and key are set, else the token.
fn credentials(config: &Config) -> Result<Auth, UsageError> {
    let c = &config.credentials;
    match (&c.email, &c.global_key, &c.token) {
        (Some(email), Some(key), _) => Ok(Auth::GlobalKey {
            email: email.clone(),
            key: key.clone(),
        }),
        (_, _, Some(token)) => Ok(Auth::Token(token.clone())),
        _ => Err(usage!(
            "rotate-token needs CLOUDFLARE_EMAIL + CLOUDFLARE_GLOBAL_KEY, or CLOUDFLARE_API_TOKEN \
             holding API Tokens Write"
        )
        .with_hint(
            "the dashboard's \"Create Additional Tokens\" template grants API Tokens Write",
        )),
    }
}

pub async fn run(
    args: RotateTokenArgs,
    config: &Config,
    ui: &Ui,
) -> anyhow::Result<Box<dyn Report>> {
    let selector = match (&args.selector.id, &args.selector.name) {
        (Some(id), _) => Selector::Id(config::hex_id(id, "--id")?),
        (None, Some(name)) if !name.trim().is_empty() => Selector::Name(name.trim().to_string()),
        _ => return Err(usage!("give the token with --id ID or --name NAME").into()),
    };
    let write_env: Option<PathBuf> = args
        .write_env
        .as_ref()
        .map(|p| p.clone().unwrap_or_else(|| config.env_file.clone()));
    let auth = credentials(config)?;
    // Before any request, as create-token does: the new value must have somewhere to go.
    let writer = match &write_env {
        Some(path) if !args.dry_run => Some(create_token::env_writer(path)?),
        _ => None,
    };
    let client = super::client(config, auth, 4)?;

    let token = find(&client, &selector).await?;
    if args.dry_run {
        return Ok(Box::new(Rotated {
            dry_run: true,
            id: token.id,
            name: token.name,
            value: None,
            env_file: write_env.map(|p| p.display().to_string()),
            verified: false,
        }));
    }
    let value = client.roll_token(&token.id).await.with_context(|| {
        format!(
            "rolling the secret of token {:?} ({})",
            token.name, token.id
        )
    })?;
    let verified = client
        .with_auth(Auth::Token(value.clone()))
        .verify_token()
        .await
        .is_ok_and(|s| s.status == "active");
    if !verified {
        ui.warn(
            "the new value did not verify as active yet; run `cfsetup test-permissions` with it",
        );
    }
    let (shown, env_file) = match &writer {
        Some(writer) => match create_token::write_token(writer, &value, &token.id, ui) {
            Ok(()) => (None, Some(writer.path().display().to_string())),
            Err(e) => {
                ui.warn(format!(
                    "could not write {}: {e}; the new value is shown on stdout instead, once",
                    writer.path().display()
                ));
                (Some(value), None)
            }
        },
        None => (Some(value), None),
    };
    Ok(Box::new(Rotated {
        dry_run: false,
        id: token.id,
        name: token.name,
        value: shown,
        env_file,
        verified,
    }))
}

/// The token to roll: by ID (read back, so a wrong ID fails before anything changes), or by a
/// name that must match exactly one token.
async fn find(client: &Client, selector: &Selector) -> anyhow::Result<Token> {
    match selector {
        Selector::Id(id) => client
            .get_token(id)
            .await
            .with_context(|| format!("reading token {id}")),
        Selector::Name(name) => {
            let all = client
                .list_tokens()
                .await
                .context("listing your API tokens")?;
            let mut matches: Vec<Token> = all.into_iter().filter(|t| &t.name == name).collect();
            match matches.len() {
                0 => anyhow::bail!(
                    "no token is named {name:?}; `cfsetup create-token --name {name:?}` creates one"
                ),
                1 => Ok(matches.remove(0)),
                _ => {
                    let ids: Vec<String> = matches.iter().map(|t| t.id.clone()).collect();
                    anyhow::bail!(
                        "{} tokens are named {name:?}: {}; choose one with --id",
                        ids.len(),
                        ids.join(", ")
                    )
                }
            }
        }
    }
}

#[derive(Debug, Serialize)]
struct Rotated {
    dry_run: bool,
    id: String,
    name: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::secret::serialize_new_value"
    )]
    value: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    env_file: Option<String>,
    verified: bool,
}

impl Report for Rotated {
    fn render(&self, out: &mut Renderer) {
        if self.dry_run {
            out.line(format!(
                "Dry run: would roll the secret of token {:?} ({}) with PUT /user/tokens/{}/value{}.",
                self.name,
                self.id,
                self.id,
                self.env_file
                    .as_deref()
                    .map(|p| format!(" and write it to {p}"))
                    .unwrap_or_default()
            ));
            out.line("Nothing was changed.");
            return;
        }
        let mut rows = vec![
            ("token", format!("{} ({})", self.name, self.id)),
            ("old value", "no longer works".to_string()),
            (
                "new value",
                if self.verified {
                    "verified".into()
                } else {
                    "not verified".into()
                },
            ),
        ];
        if let Some(p) = &self.env_file {
            rows.push(("written to", format!("{p} as {TOKEN_VAR} (mode 0600)")));
        }
        out.pairs(&rows);
        if let Some(v) = &self.value {
            out.blank();
            out.line("The new value, shown this once (store it now; it cannot be read back):");
            out.line(v.expose());
        }
    }

    fn to_json(&self) -> Value {
        json_of(self)
    }
}
