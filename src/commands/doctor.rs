//! `cfsetup doctor`: checks, on the user's own account, what no emulator can settle, and that the
//! platform as deployed is the one this binary would deploy. Each finding says what was checked,
//! what was found, and what cfsetup does about it.
//!
//! It is read-mostly and safe against production. Its only writes are one temporary object,
//! `cfsetup-doctor-<random hex>` at the top of the bucket (outside every prefix cfsetup and the
//! Worker read), and one multipart upload on that key, aborted at once; both are removed before
//! it returns, whatever happened.
//!
//! What it checks (facts: docs/cloudflare-api.md §2, §7, §8, §9, §10):
//! 1. The token: its status, an expiry within 30 days, and its format (`cfut_`/`cfat_` tokens
//!    are new; whether R2 derives S3 keys from them is unconfirmed, §7).
//! 2. R2's S3 endpoint answers, and accepts the keys derived from the token (a HEAD of a key
//!    that does not exist: 404 is the healthy answer).
//! 3. A header-signed PUT whose body does not match its signed `x-amz-content-sha256` is
//!    refused (cfsetup's "a blob is stored only under the hash of its bytes" rests on it).
//! 4. A conditional PUT that should fail answers 412 or 409 (`If-None-Match: *` on an existing
//!    key, `If-Match` with a wrong ETag): the heads' compare-and-swap rests on it.
//! 5. A listing's time precision against HEAD's (milliseconds against whole seconds, §7
//!    "Times"); cfsetup judges records by ETag, so either is fine, and the report says which.
//! 6. CreateMultipartUpload and AbortMultipartUpload work (files over 64 MiB go up in parts).
//! 7. The bucket, the Worker (its module, compatibility date and bindings), the routes and the
//!    fallback origin are what `deploy-infra` would make: `deploy-infra`'s own plan, read-only.
//! 8. The fallback origin is active.
//! 9. The zone's custom hostname quota (`GET …/custom_hostnames/quota`, §10): past the allocation
//!    each extra hostname is billed; at 90% of the hard cap new domains are near refusal.
//!
//! Exit status: 0 when nothing needs action (warnings allowed), 1 when something does, 2 for bad
//! input found before any request.
//!
//! A command: it may import the layers below it and the shared `commands::bucket` and
//! `commands::head`; it reads deploy-infra's plan (`deploy_infra::Inputs`) without applying it.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::Serialize;
use sha2::Digest;

use crate::cli::{DeployInfraArgs, DoctorArgs};
use crate::cloudflare::{Auth, Client};
use crate::config::Config;
use crate::output::{json_of, Renderer, Report, Ui};
use crate::storage::{Payload, PutMode, PutOptions, S3Options, S3Store, StorageError};

use super::deploy_infra::{self, Inputs};

/// A token this close to expiry is a warning.
const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// How a finding stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Ok,
    Warning,
    /// Something the user should do; exit 1.
    Action,
    /// Not checked (a check it depends on failed).
    Skipped,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Warning => "warning",
            State::Action => "action",
            State::Skipped => "skipped",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: String,
    pub state: State,
    /// What the check found.
    pub found: String,
    /// What cfsetup does about it, or what to do.
    pub cfsetup: String,
}

fn finding(
    check: impl Into<String>,
    state: State,
    found: impl Into<String>,
    cfsetup: impl Into<String>,
) -> Finding {
    Finding {
        check: check.into(),
        state,
        found: found.into(),
        cfsetup: cfsetup.into(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    pub account: String,
    pub bucket: String,
    pub findings: Vec<Finding>,
    /// Findings that need action.
    pub needs_action: usize,
    pub warnings: usize,
}

impl Report for DoctorReport {
    fn render(&self, out: &mut Renderer) {
        let rows = self
            .findings
            .iter()
            .map(|f| {
                vec![
                    f.check.clone(),
                    f.state.as_str().to_string(),
                    f.found.clone(),
                    f.cfsetup.clone(),
                ]
            })
            .collect();
        out.table(
            &["check", "state", "found", "what cfsetup does / what to do"],
            rows,
        );
        out.blank();
        out.line(match (self.needs_action, self.warnings) {
            (0, 0) => "all is well".to_string(),
            (0, w) => format!("all is well; {w} warning(s)"),
            (n, w) => format!("{n} finding(s) need action; {w} warning(s)"),
        });
    }

    fn to_json(&self) -> serde_json::Value {
        json_of(self)
    }

    fn exit_code(&self) -> u8 {
        u8::from(self.needs_action > 0)
    }
}

pub async fn run(args: DoctorArgs, config: &Config, ui: &Ui) -> anyhow::Result<Box<dyn Report>> {
    // Everything offline first (exit 2): deploy-infra's own checks of the same settings.
    let infra = DeployInfraArgs {
        platform: args.platform.clone(),
        bucket: args.bucket.bucket.clone(),
        location_hint: None,
        jurisdiction: args.bucket.jurisdiction.clone(),
        take_over_routes: false,
        dry_run: true,
    };
    let inputs = Inputs::check(&infra, config)?;
    let auth = super::platform_auth(config, ui)?;
    let client = super::client(config, auth, 8)?;
    let bucket = inputs.platform.bucket.clone();

    let mut findings = Vec::new();
    let token_id = token(&client, &inputs.platform.bucket.account, &mut findings).await;
    match (&token_id, client.auth()) {
        (Some(id), Auth::Token(_)) => {
            let s3 = crate::storage::s3_store(
                config,
                &client,
                bucket.clone(),
                id,
                S3Options::default(),
            )?;
            r2(&s3.probing(), &mut findings).await;
        }
        (_, Auth::GlobalKey { .. }) => findings.push(finding(
            "R2 over S3",
            State::Warning,
            "the Global API Key is in use: it has no token id to derive S3 keys from",
            "objects go over the REST API, paced to 1,200 requests per 5 minutes; use an API \
             token (cfsetup create-token) for S3",
        )),
        (None, _) => findings.push(finding(
            "R2 over S3",
            State::Skipped,
            "the token could not be verified",
            "fix the token first",
        )),
    }
    platform(&client, ui, &inputs, &mut findings).await;
    quota(&client, &inputs.zone, &mut findings).await;

    let needs_action = findings.iter().filter(|f| f.state == State::Action).count();
    let warnings = findings
        .iter()
        .filter(|f| f.state == State::Warning)
        .count();
    Ok(Box::new(DoctorReport {
        account: inputs.platform.bucket.account.clone(),
        bucket: inputs.platform.bucket.name.to_string(),
        findings,
        needs_action,
        warnings,
    }))
}

/// The token's status, expiry and format. Returns its id (the S3 Access Key ID).
async fn token(client: &Client, account: &str, out: &mut Vec<Finding>) -> Option<String> {
    let Auth::Token(t) = client.auth() else {
        out.push(finding(
            "token",
            State::Warning,
            "the Global API Key, not a token",
            "a scoped API token is safer: cfsetup create-token",
        ));
        return None;
    };
    let value = t.expose();
    let format = if value.starts_with("cfut_") {
        "a new-format user token (cfut_)"
    } else if value.starts_with("cfat_") {
        "a new-format account token (cfat_)"
    } else {
        "a legacy-format token"
    };
    let status = match client.verify_own_token(account).await {
        Ok((_, s)) => s,
        Err(e) => {
            let hint = e.hint().unwrap_or_default();
            out.push(finding(
                "token",
                State::Action,
                format!("{format}; verify failed: {e}"),
                if hint.is_empty() {
                    "create a working token: cfsetup create-token".to_string()
                } else {
                    hint
                },
            ));
            return None;
        }
    };
    let expiry = status
        .expires_on
        .as_deref()
        .and_then(|e| humantime::parse_rfc3339_weak(e).ok());
    let soon = expiry.is_some_and(|t| {
        t.duration_since(SystemTime::now())
            .map_or(true, |left| left < EXPIRY_WARNING)
    });
    let expires = status
        .expires_on
        .clone()
        .map_or("never expires".to_string(), |e| format!("expires {e}"));
    let found = format!("{format} {}: {}, {expires}", status.id, status.status);
    let (state, what) = match (status.status.as_str(), soon) {
        ("active", false) if value.starts_with("cfut_") || value.starts_with("cfat_") => (
            State::Ok,
            "whether R2 derives S3 keys from new-format tokens is unconfirmed: the S3 checks \
             below settle it for this token"
                .to_string(),
        ),
        ("active", false) => (State::Ok, "used as is".to_string()),
        ("active", true) => (
            State::Warning,
            "it expires within 30 days: roll it with cfsetup rotate-token, or create a new one \
             with cfsetup create-token --replace"
                .to_string(),
        ),
        (other, _) => (
            State::Action,
            format!("a token that is {other} cannot be used: cfsetup create-token --replace"),
        ),
    };
    out.push(finding("token", state, found, what));
    (status.status == "active").then_some(status.id)
}

/// The R2 facts only the user's account can settle, over S3 with the token's derived keys.
async fn r2(s3: &S3Store, out: &mut Vec<Finding>) {
    let key = format!("cfsetup-doctor-{}", hex::encode(rand::random::<[u8; 8]>()));
    let endpoint = s3.endpoint().origin().ascii_serialization();
    // A listing of the (unique, absent) key as the first call: a missing bucket answers
    // NoSuchBucket with a body, where a HEAD's 404 could not tell it from a missing key.
    match s3.list(&key).await {
        Ok(_) => out.push(finding(
            "S3 reachable, keys accepted",
            State::Ok,
            format!("{endpoint} answered a signed listing"),
            "objects go over S3, outside the REST limit",
        )),
        Err(e @ StorageError::S3Unreachable { .. }) => {
            out.push(finding(
                "S3 reachable, keys accepted",
                State::Action,
                e.to_string(),
                "auto falls back to REST (paced to 1,200 requests per 5 minutes); allow \
                 *.r2.cloudflarestorage.com through the firewall or proxy for fast deploys",
            ));
            skip_s3(out);
            return;
        }
        Err(e) if e.is_s3_auth_refusal() => {
            out.push(finding(
                "S3 reachable, keys accepted",
                State::Action,
                format!("R2 refused the derived keys: {e}"),
                "auto falls back to REST; give the token Workers R2 Storage Write (changes take \
                 about a minute), or use a legacy-format token if this one is cfut_/cfat_",
            ));
            skip_s3(out);
            return;
        }
        Err(e) => {
            let fix = if e.s3_code() == Some("NoSuchBucket") {
                "the bucket does not exist: run cfsetup deploy-infra (or check --bucket and \
                 --jurisdiction)"
            } else {
                "run doctor again; if it persists, run with -v and report the answer"
            };
            out.push(finding(
                "S3 reachable, keys accepted",
                State::Action,
                e.to_string(),
                fix,
            ));
            skip_s3(out);
            return;
        }
    }
    payload_hash(s3, &key, out).await;
    conditional(s3, &key, out).await;
    multipart(s3, &key, out).await;
    // Whatever happened above, the temporary object goes.
    if let Err(e) = s3.delete(&key).await {
        out.push(finding(
            "clean-up",
            State::Warning,
            format!("could not delete {key}: {e}"),
            "delete it by hand; nothing reads it",
        ));
    }
}

fn skip_s3(out: &mut Vec<Finding>) {
    for check in [
        "S3 refuses a body that does not match its hash",
        "S3 conditional writes",
        "listing time precision",
        "S3 multipart",
    ] {
        out.push(finding(check, State::Skipped, "S3 is not usable", "-"));
    }
}

async fn payload_hash(s3: &S3Store, key: &str, out: &mut Vec<Finding>) {
    let check = "S3 refuses a body that does not match its hash";
    let claimed = hex::encode(sha2::Sha256::digest(b"not these bytes"));
    match s3
        .put_claiming(key, Bytes::from_static(b"cfsetup doctor\n"), &claimed)
        .await
    {
        Ok((status, code)) if (400..500).contains(&status) => {
            let code = code.unwrap_or_else(|| format!("HTTP {status}"));
            let state = if matches!(code.as_str(), "XAmzContentSHA256Mismatch" | "BadDigest") {
                State::Ok
            } else {
                State::Warning
            };
            out.push(finding(
                check,
                state,
                format!("refused: HTTP {status} {code}"),
                "a blob is stored only under the hash of its bytes: the server checks each \
                 upload's signed SHA-256",
            ));
        }
        Ok((status, _)) => out.push(finding(
            check,
            State::Action,
            format!("R2 stored a body under a signed hash it does not have (HTTP {status})"),
            "cfsetup still hashes every file while it streams and stops a changed one before \
             its last byte; report this to the cfsetup maintainers with the account's region",
        )),
        Err(e) => out.push(finding(
            check,
            State::Warning,
            e.to_string(),
            "run doctor again",
        )),
    }
}

async fn conditional(s3: &S3Store, key: &str, out: &mut Vec<Finding>) {
    let check = "S3 conditional writes";
    let body = || Payload::Bytes(Bytes::from_static(b"cfsetup doctor\n"));
    let first = s3
        .put(key, body(), PutOptions::overwrite("text/plain"))
        .await;
    let etag = match first {
        Ok(e) => e,
        Err(e) => {
            out.push(finding(
                check,
                State::Warning,
                format!("could not write the test object: {e}"),
                "run doctor again",
            ));
            return;
        }
    };
    let create = s3
        .put(
            key,
            body(),
            PutOptions::overwrite("text/plain").with_mode(PutMode::Create),
        )
        .await;
    let update = s3
        .put(
            key,
            body(),
            PutOptions::overwrite("text/plain").with_mode(PutMode::Update("0".repeat(32))),
        )
        .await;
    let refused = |r: &Result<Option<String>, StorageError>| matches!(r, Err(e) if e.is_precondition_failed());
    if refused(&create) && refused(&update) {
        out.push(finding(
            check,
            State::Ok,
            "If-None-Match: * on an existing key and If-Match with a wrong ETag were both refused \
             (412 or 409)",
            "heads and host entries switch by compare-and-swap; a lost race is reported, never \
             silent",
        ));
    } else {
        let what = |r: &Result<Option<String>, StorageError>| match r {
            Ok(_) => "accepted".to_string(),
            Err(e) => e.to_string(),
        };
        out.push(finding(
            check,
            State::Action,
            format!(
                "If-None-Match: * → {}; If-Match (wrong ETag) → {}",
                what(&create),
                what(&update)
            ),
            "concurrent deploys of one tenant are not safe on this account: run one deploy per \
             tenant at a time, and report this to the cfsetup maintainers",
        ));
    }
    // Precision: the listing's time against HEAD's, for the same write.
    let listed = s3
        .list(key)
        .await
        .ok()
        .and_then(|l| l.into_iter().find(|m| m.key == key));
    let head = s3.head(key).await.ok().flatten();
    let subsec = |t: Option<SystemTime>| {
        t.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.subsec_millis())
    };
    let found = match (&listed, &head) {
        (Some(l), Some(h)) => format!(
            "listing: {}; HEAD: {}; same ETag: {}",
            match subsec(l.last_modified) {
                Some(0) => "whole seconds (or .000)".to_string(),
                Some(ms) => format!("milliseconds (.{ms:03})"),
                None => "no time".to_string(),
            },
            match subsec(h.last_modified) {
                Some(0) => "whole seconds",
                Some(_) => "fractions",
                None => "no time",
            },
            l.etag.is_some() && l.etag == h.etag && l.etag == etag.or(l.etag.clone()),
        ),
        _ => "the test object could not be listed and read back".to_string(),
    };
    out.push(finding(
        "listing time precision",
        if listed.is_some() && head.is_some() {
            State::Ok
        } else {
            State::Warning
        },
        found,
        "gc tells a refreshed record from a dead one by its ETag, never by comparing the two times",
    ));
}

async fn multipart(s3: &S3Store, key: &str, out: &mut Vec<Finding>) {
    let check = "S3 multipart";
    match s3.multipart_round_trip(key).await {
        Ok(_) => out.push(finding(
            check,
            State::Ok,
            "CreateMultipartUpload and AbortMultipartUpload work",
            "files over 64 MiB go up in parts (up to R2's 4.995 TiB)",
        )),
        Err(e) => out.push(finding(
            check,
            State::Action,
            e.to_string(),
            "files over 64 MiB cannot go up over S3: keep sites under that, or use --via rest \
             (300 MiB per file)",
        )),
    }
}

/// deploy-infra's plan, read-only: the bucket, the Worker, the routes, the fallback origin.
async fn platform(client: &Client, ui: &Ui, inputs: &Inputs, out: &mut Vec<Finding>) {
    use deploy_infra::report::Action;
    let report = match deploy_infra::deploy(client, ui, inputs).await {
        Ok(r) => r,
        Err(e) => {
            out.push(finding(
                "platform (deploy-infra's plan)",
                State::Action,
                format!("{e:#}"),
                "fix the settings named, then run cfsetup deploy-infra",
            ));
            return;
        }
    };
    for row in &report.steps {
        let label = format!("{} {}", row.resource_label(), row.name);
        let (state, what) = match row.action {
            Action::Unchanged => (State::Ok, "as deploy-infra would make it".to_string()),
            // An unset fallback origin (skipped by the plan) is the check below's to report.
            Action::Skipped => continue,
            Action::WouldCreate => (
                State::Action,
                "missing: run cfsetup deploy-infra".to_string(),
            ),
            Action::WouldUpdate => (
                State::Action,
                "differs from what this binary would deploy: run cfsetup deploy-infra".to_string(),
            ),
            Action::Conflict => (
                State::Action,
                "held by something else: see deploy-infra --help (--take-over-routes)".to_string(),
            ),
            Action::Failed | Action::NotRun | Action::Created | Action::Updated => (
                State::Action,
                "could not be checked: see the detail".to_string(),
            ),
        };
        out.push(finding(label, state, row.detail.clone(), what));
    }
    // The fallback origin must be active for custom hostnames to reach the Worker.
    match client.get_fallback_origin(&inputs.zone).await {
        Ok(Some(f)) if f.origin.is_some() => {
            let status = f.status.clone().unwrap_or_else(|| "unknown".into());
            let origin = f.origin.clone().unwrap_or_default();
            let (state, what) = if status == "active" {
                (State::Ok, "custom hostnames reach the Worker".to_string())
            } else {
                (
                    State::Action,
                    format!(
                        "{origin} must be a proxied A, AAAA or CNAME record in the zone (e.g. \
                         AAAA 100::); custom hostnames are not served until it is active"
                    ),
                )
            };
            let errors = match f.errors.as_deref() {
                Some(e) if !e.is_empty() => format!(" ({})", e.join("; ")),
                _ => String::new(),
            };
            out.push(finding(
                "fallback origin active",
                state,
                format!("{origin}: {status}{errors}"),
                what,
            ));
        }
        Ok(_) => out.push(finding(
            "fallback origin active",
            State::Action,
            "none is set",
            "add a proxied record such as fallback.<zone> AAAA 100::, then cfsetup deploy-infra \
             --fallback-origin fallback.<zone>",
        )),
        Err(e) => out.push(finding(
            "fallback origin active",
            State::Action,
            e.to_string(),
            e.hint().unwrap_or_else(|| "run doctor again".into()),
        )),
    }
}

/// The zone's custom hostname quota: billed past the allocation, refused at the hard cap.
async fn quota(client: &Client, zone: &str, out: &mut Vec<Finding>) {
    use crate::cloudflare::custom_hostnames::PRICE_CENTS_PER_MONTH;
    let check = "custom hostname quota";
    match client.quota(zone).await {
        Ok(q) => {
            let found = format!(
                "{} used of {} allocated, hard cap {}",
                q.used, q.allocated, q.hard_cap
            );
            let extra = q.billed_extra();
            let (state, what) = if q.at_hard_cap() {
                (
                    State::Action,
                    "new domains are refused: remove orphans (cfsetup domains prune) or ask \
                     Cloudflare for a higher cap"
                        .to_string(),
                )
            } else if q.near_hard_cap() {
                (
                    State::Warning,
                    "within 10% of the hard cap: cfsetup domains prune removes orphans".to_string(),
                )
            } else if extra > 0 {
                (
                    State::Warning,
                    format!(
                        "{extra} hostname(s) beyond the allocation are billed (${:.2} a month); \
                         cfsetup domains prune removes orphans",
                        (extra * PRICE_CENTS_PER_MONTH) as f64 / 100.0
                    ),
                )
            } else {
                (State::Ok, "within the allocation".to_string())
            };
            out.push(finding(check, state, found, what));
        }
        Err(e) => out.push(finding(
            check,
            State::Warning,
            e.to_string(),
            e.hint().unwrap_or_else(|| "run doctor again".into()),
        )),
    }
}
