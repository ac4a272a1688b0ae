//! `cfsetup test-permissions`: verify the credential, then prove each of the 8 permissions with
//! one real API round trip, concurrently, leaving nothing behind ("8/8 checks passed").
//!
//! The checks themselves live in [`checks`], which `create-token` and `demo` reuse; this file adds
//! the verify step and the report. Facts (docs/cloudflare-api.md §2):
//! - `GET /user/tokens/verify` returns `{id, status: active|disabled|expired, expires_on?,
//!   not_before?}` and needs no permission group;
//! - an account-owned token gets 1000 "Invalid API Token" there and must use
//!   `GET /accounts/{id}/tokens/verify`; it is recognised by the `cfat_` prefix, or by that 1000
//!   when an account ID is known;
//! - the Global API Key is not a token: there is nothing to verify.
//!
//! Exit status: 0 when all 8 pass (or all that ran, with `--read-only`), 3 when a check failed,
//! 1 when the checks could not run (network, invalid or unusable token), 2 for bad configuration
//! (found before any request), 130 when Ctrl-C or SIGTERM stopped them.
//!
//! A command: it may import the layers below it and the shared `commands::bucket` and
//! `commands::head`; it must not import another command (create-token imports it).

pub mod checks;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::FutureExt;

use serde::Serialize;

use crate::cli::TestPermissionsArgs;
use crate::cloudflare::tokens::TokenStatus;
use crate::cloudflare::{Auth, Client};
use crate::config::Config;
use crate::output::{json_of, Renderer, Report, Ui};
use crate::platform;

pub use checks::{CheckResult, CheckRun, Outcome, Target};

/// A token this close to its expiry gets a warning.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

pub async fn run(
    args: TestPermissionsArgs,
    config: &Config,
    ui: &Ui,
) -> anyhow::Result<Box<dyn Report>> {
    // Everything that needs no network first: exit 2 before any request.
    let account_id = config.require_account_id()?.to_string();
    let zone_id = config.require_zone_id()?.to_string();
    let platform_domain = platform::configured_domain(config, args.platform_domain.as_deref())?;
    let auth = super::platform_auth(config, ui)?;
    let client = super::client(config, auth, 16)?;

    let target = Target {
        account_id: account_id.clone(),
        zone_id: zone_id.clone(),
        platform_domain,
        read_only: args.read_only,
        s3_endpoint: config.s3_endpoint.clone(),
    };
    // The verify runs beside the checks' first requests (a bad token fails those too, and they
    // leave nothing behind); its id is the S3 key id the R2 check waits for.
    let verified = verify(&client, &account_id, ui)
        .map(|r| r.map_err(Arc::new))
        .shared();
    let token_id = verified
        .clone()
        .map(|r| match r {
            Ok(c) => {
                c.id.ok_or_else(|| "the credential has no token id".to_string())
            }
            Err(e) => Err(format!("the token could not be verified ({e:#})")),
        })
        .boxed();
    let (credential, mut run) =
        futures::future::join(verified, checks::run(&client, &target, token_id)).await;
    let credential = match credential {
        Ok(c) => c,
        Err(e) => {
            warn_left_behind(&run, ui);
            return Err(Arc::try_unwrap(e).unwrap_or_else(|e| anyhow::anyhow!("{e:#}")));
        }
    };
    warn_left_behind(&run, ui);
    if run.interrupted {
        // The table still says what ran; the exit status is 130, as for deploy-site and gc.
        ui.warn(format!(
            "interrupted: the checks were stopped and their temporary resources removed{}",
            if run.left_behind.is_empty() {
                ""
            } else {
                " (except those listed above)"
            }
        ));
    }
    if let Some(fatal) = run.take_fatal() {
        return Err(fatal.context("the permission checks could not run"));
    }
    Ok(Box::new(TestReport {
        credential,
        account_id,
        zone_id,
        read_only: args.read_only,
        run,
    }))
}

/// Warns on stderr about temporary resources that could not be deleted.
pub fn warn_left_behind(run: &CheckRun, ui: &Ui) {
    for t in &run.left_behind {
        ui.warn(format!(
            "could not delete the temporary {t}; the next test-permissions run sweeps it after 10 \
             minutes"
        ));
    }
}

/// What was verified about the credential.
#[derive(Debug, Clone, Serialize)]
pub struct Credential {
    /// `user token`, `account token` or `Global API Key`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_on: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
}

impl Credential {
    fn describe(&self) -> String {
        match (&self.id, &self.status) {
            (Some(id), Some(status)) => {
                let expiry = self
                    .expires_on
                    .as_deref()
                    .map_or("never expires".to_string(), |e| format!("expires {e}"));
                format!("{} {id}: {status}, {expiry}", self.kind)
            }
            _ => format!("{} (nothing to verify: it is not a token)", self.kind),
        }
    }
}

/// Verifies the client's credential and refuses one that cannot work: expired, disabled or not yet
/// valid each get their own message. Warns when a token expires within 14 days.
pub async fn verify(client: &Client, account_id: &str, ui: &Ui) -> anyhow::Result<Credential> {
    match client.auth() {
        Auth::GlobalKey { .. } => {
            ui.note(
                "the Global API Key is not a token, so there is nothing to verify; running the \
                 checks with it",
            );
            return Ok(Credential {
                kind: "Global API Key",
                id: None,
                status: None,
                expires_on: None,
                not_before: None,
            });
        }
        Auth::Token(_) => {}
    }
    // Where the token lives: an account token (`cfat_`, or one the user endpoint answers 1000)
    // at the account endpoint (§2).
    let (kind, status) = client
        .verify_own_token(account_id)
        .await
        .map_err(|e| anyhow::Error::new(e).context("verifying the API token"))?;
    let kind = kind.label();
    check_status(&status, kind, SystemTime::now(), ui)?;
    Ok(Credential {
        kind,
        id: Some(status.id),
        status: Some(status.status),
        expires_on: status.expires_on,
        not_before: status.not_before,
    })
}

/// The verify result's verdict: an error for a token that cannot be used now, a warning for one
/// about to expire.
fn check_status(s: &TokenStatus, kind: &str, now: SystemTime, ui: &Ui) -> anyhow::Result<()> {
    let expires = s.expires_on.as_deref().and_then(parse_time);
    match s.status.as_str() {
        "active" => {}
        "expired" => anyhow::bail!(
            "the {kind} {} has expired{}: create a new one with `cfsetup create-token --replace`",
            s.id,
            s.expires_on
                .as_deref()
                .map(|e| format!(" (it expired on {e})"))
                .unwrap_or_default()
        ),
        "disabled" => anyhow::bail!(
            "the {kind} {} is disabled: enable it in the dashboard (My Profile > API Tokens), or \
             create a new one with `cfsetup create-token`",
            s.id
        ),
        other => anyhow::bail!("the {kind} {} is not active (status {other:?})", s.id),
    }
    if let Some(nb) = s.not_before.as_deref() {
        if parse_time(nb).is_some_and(|t| t > now) {
            anyhow::bail!(
                "the {kind} {} is not valid yet: it becomes valid at {nb} (its not_before)",
                s.id
            );
        }
    }
    if let Some(exp) = expires {
        if exp <= now {
            anyhow::bail!(
                "the {kind} {} has expired (it expired on {}): create a new one with `cfsetup \
                 create-token --replace`",
                s.id,
                s.expires_on.as_deref().unwrap_or_default()
            );
        }
        let left = exp.duration_since(now).unwrap_or_default();
        if left < EXPIRY_WARNING {
            ui.warn(format!(
                "the {kind} {} expires on {} (in {} days): create its successor with `cfsetup \
                 create-token --replace`",
                s.id,
                s.expires_on.as_deref().unwrap_or_default(),
                left.as_secs() / 86_400
            ));
        }
    }
    Ok(())
}

/// An RFC 3339 time as the API writes it (`2026-01-01T00:00:00Z`, maybe with fractions or an
/// explicit `+00:00`).
pub fn parse_time(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let s = s
        .strip_suffix("+00:00")
        .map(|b| format!("{b}Z"))
        .unwrap_or_else(|| s.to_string());
    humantime::parse_rfc3339_weak(&s).ok()
}

/// The report: the credential, the table, the sweep, and "N/8 checks passed".
#[derive(Debug, Serialize)]
pub struct TestReport {
    pub credential: Credential,
    pub account_id: String,
    pub zone_id: String,
    pub read_only: bool,
    #[serde(flatten)]
    pub run: CheckRun,
}

impl Report for TestReport {
    fn render(&self, out: &mut Renderer) {
        out.pairs(&[
            ("credential", self.credential.describe()),
            ("account", self.account_id.clone()),
            ("zone", self.zone_id.clone()),
        ]);
        out.blank();
        self.run.render(out);
    }

    fn to_json(&self) -> serde_json::Value {
        json_of(self)
    }

    fn exit_code(&self) -> u8 {
        self.run.exit_code()
    }

    fn failures(&self) -> Vec<String> {
        self.run.failures()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ColorChoice;
    use crate::output::{OutputSettings, Verbosity};

    fn ui() -> Ui {
        Ui::new(OutputSettings {
            json: false,
            verbosity: Verbosity::Quiet,
            color: ColorChoice::Never,
        })
    }

    fn status(status: &str, expires: Option<&str>, not_before: Option<&str>) -> TokenStatus {
        TokenStatus {
            id: "t1".into(),
            status: status.into(),
            expires_on: expires.map(str::to_string),
            not_before: not_before.map(str::to_string),
        }
    }

    #[test]
    fn each_unusable_state_has_its_own_message() {
        let now = parse_time("2026-01-01T00:00:00Z").unwrap();
        let msg = |s: TokenStatus| {
            check_status(&s, "user token", now, &ui())
                .unwrap_err()
                .to_string()
        };
        assert!(msg(status("expired", Some("2025-12-01T00:00:00Z"), None))
            .contains("has expired (it expired on 2025-12-01T00:00:00Z)"));
        assert!(msg(status("disabled", None, None)).contains("is disabled"));
        assert!(msg(status("active", None, Some("2026-02-01T00:00:00Z"))).contains("not valid yet"));
        assert!(msg(status("active", Some("2025-12-31T00:00:00+00:00"), None)).contains("expired"));
        check_status(
            &status("active", Some("2026-01-05T00:00:00Z"), None),
            "user token",
            now,
            &ui(),
        )
        .unwrap();
        check_status(
            &status("active", None, Some("2025-01-01T00:00:00Z")),
            "user token",
            now,
            &ui(),
        )
        .unwrap();
    }
}
