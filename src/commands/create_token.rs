//! `cfsetup create-token`: create the platform's User API token with exactly the 8 permissions,
//! verify it, hand over its value once, and run the 8 checks with it.
//!
//! Plan, then apply. [`plan`] checks every option without the network (exit 2); [`request_body`]
//! builds the `POST /user/tokens` body from the plan and the resolved groups, and `--dry-run`
//! prints exactly that body. Facts (docs/cloudflare-api.md):
//! - §3: groups are looked up in `GET /user/tokens/permission_groups` (one page) and chosen by name
//!   *and* scope on our side, since names are not unique and whether the `name` filter is exact is
//!   unconfirmed. A missing or ambiguous group stops everything before a token exists.
//! - §4: one policy per scope, each on a resource of that scope: account groups on
//!   `com.cloudflare.api.account.<ID>`, zone groups on `com.cloudflare.api.account.zone.<ID>`
//!   (Workers Routes Write is zone-scoped and grants nothing on an account). Timestamps are UTC
//!   RFC 3339. The IP condition is sent as `{"request_ip": {"in": [...]}}`, and read back: see
//!   [`IP_CONDITION_KEY`] for why, and for the open question.
//!   The result's `value` is the secret, returned only by this call.
//! - §4: with a token, creating tokens needs the user permission API Tokens Write (the "Create
//!   Additional Tokens" template); with the Global API Key it is always allowed. The key only ever
//!   travels in the `X-Auth-Key` header (the client's `Auth`), never in a body or on screen.
//! - docs/design.md "The REST client": a create is never repeated blindly. If `POST /user/tokens` gets no answer, the
//!   tokens are listed to say whether one was created.
//!
//! A command: it may import the layers below it and the shared `commands::bucket` and
//! `commands::head`; after creating a token it runs test-permissions' checks (`test_permissions`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use ipnet::IpNet;
use serde::Serialize;
use serde_json::{json, Value};

use crate::cli::{CreateTokenArgs, CredentialChoice};
use crate::cloudflare::tokens::{NewToken, PermissionGroup, Policy, PolicyGroup, Token};
use crate::cloudflare::{Auth, Client, Error};
use crate::commands::test_permissions::{self, checks, CheckRun, Credential};
use crate::config::Config;
use crate::envfile;
use crate::error::{usage, UsageError};
use crate::names::Hostname;
use crate::output::{json_of, Renderer, Report, Ui};
use crate::permissions::{Scope, PERMISSIONS};
use crate::platform;
use crate::secret::Secret;

pub const TOKEN_VAR: &str = "CLOUDFLARE_API_TOKEN";
/// The token's id beside it (not a secret): its S3 Access Key ID, so a run over S3 need not
/// verify the token to learn it.
pub const TOKEN_ID_VAR: &str = "CLOUDFLARE_API_TOKEN_ID";

/// Which credentials create the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Method {
    /// Method 1: email + Global API Key.
    #[serde(rename = "global-key")]
    GlobalKey,
    /// Method 2: an existing token with API Tokens Write.
    #[serde(rename = "token")]
    Token,
}

impl Method {
    fn describe(self) -> &'static str {
        match self {
            Method::GlobalKey => "Method 1: email + Global API Key",
            Method::Token => "Method 2: an existing token with API Tokens Write",
        }
    }
}

/// Everything checked before the first request.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub method: Method,
    pub account_id: String,
    pub zone_id: String,
    pub expires_on: Option<String>,
    pub allow_ip: Vec<IpNet>,
    pub write_env: Option<PathBuf>,
    pub replace: bool,
    pub dry_run: bool,
    pub no_test: bool,
    pub platform_domain: Option<Hostname>,
}

/// Checks the options and picks the credentials. Sends nothing.
pub fn plan(
    args: &CreateTokenArgs,
    config: &Config,
    now: SystemTime,
) -> Result<(Plan, Auth), UsageError> {
    let name = args.name.trim().to_string();
    if name.is_empty() {
        return Err(
            usage!("--name must not be empty").with_hint("e.g. --name \"cfsetup platform\"")
        );
    }
    let account_id = config.require_account_id()?.to_string();
    let zone_id = config.require_zone_id()?.to_string();
    let expires_on = expiry(args.expires_in.as_deref(), args.expires_on.as_deref(), now)?;
    let allow_ip = args
        .allow_ip
        .iter()
        .map(|s| cidr(s))
        .collect::<Result<Vec<_>, _>>()?;
    let mut allow_ip_unique = Vec::new();
    for net in allow_ip {
        if !allow_ip_unique.contains(&net) {
            allow_ip_unique.push(net);
        }
    }
    let (method, auth) = credentials(args.use_credentials, config)?;
    let write_env = args
        .write_env
        .as_ref()
        .map(|p| p.clone().unwrap_or_else(|| config.env_file.clone()));
    let platform_domain = platform::configured_domain(config, None).map_err(|e| {
        e.downcast::<UsageError>()
            .unwrap_or_else(|e| usage!("PLATFORM_DOMAIN: {e}"))
    })?;
    Ok((
        Plan {
            name,
            method,
            account_id,
            zone_id,
            expires_on,
            allow_ip: allow_ip_unique,
            write_env,
            replace: args.replace,
            dry_run: args.dry_run,
            no_test: args.no_test,
            platform_domain,
        },
        auth,
    ))
}

/// Method 1 when email and key are both set, else Method 2; `--use` forces one.
fn credentials(
    choice: Option<CredentialChoice>,
    config: &Config,
) -> Result<(Method, Auth), UsageError> {
    let c = &config.credentials;
    let global = match (&c.email, &c.global_key) {
        (Some(email), Some(key)) => Some(Auth::GlobalKey {
            email: email.clone(),
            key: key.clone(),
        }),
        _ => None,
    };
    let token = c.token.clone().map(Auth::Token);
    let missing_global = || {
        usage!("--use global-key needs CLOUDFLARE_EMAIL and CLOUDFLARE_GLOBAL_KEY (or --email and --global-key)")
            .with_hint("the Global API Key is under My Profile > API Tokens > Global API Key")
    };
    let missing_token = || {
        usage!("--use token needs CLOUDFLARE_API_TOKEN (or --api-token): a token with API Tokens Write")
            .with_hint("the dashboard's \"Create Additional Tokens\" template grants API Tokens Write")
    };
    match choice {
        Some(CredentialChoice::GlobalKey) => global
            .map(|a| (Method::GlobalKey, a))
            .ok_or_else(missing_global),
        Some(CredentialChoice::Token) => token.map(|a| (Method::Token, a)).ok_or_else(missing_token),
        None => match (global, token) {
            (Some(a), _) => Ok((Method::GlobalKey, a)),
            (None, Some(a)) => Ok((Method::Token, a)),
            (None, None) => Err(usage!(
                "create-token needs credentials: CLOUDFLARE_EMAIL + CLOUDFLARE_GLOBAL_KEY (Method 1), \
                 or CLOUDFLARE_API_TOKEN holding API Tokens Write (Method 2)"
            )
            .with_hint("see PERMISSIONS_GUIDE.md, or `cfsetup permissions` for the dashboard link")),
        },
    }
}

/// `--expires-in` or `--expires-on` as UTC RFC 3339 (seconds); a time in the past is refused.
fn expiry(
    expires_in: Option<&str>,
    expires_on: Option<&str>,
    now: SystemTime,
) -> Result<Option<String>, UsageError> {
    let at = match (expires_in, expires_on) {
        (Some(d), _) => now
            .checked_add(crate::config::duration(d, "--expires-in")?)
            .ok_or_else(|| usage!("--expires-in {d} is out of range"))?,
        (None, Some(t)) => {
            let at = test_permissions::parse_time(t).ok_or_else(|| {
                usage!("--expires-on is not an RFC 3339 time: {t:?}").with_hint(
                    "write it in UTC, e.g. 2027-01-01T00:00:00Z, or use --expires-in 90d",
                )
            })?;
            if at <= now {
                return Err(usage!("--expires-on {t} is in the past")
                    .with_hint("give a future time, or use --expires-in 90d"));
            }
            at
        }
        (None, None) => return Ok(None),
    };
    // Whole seconds: the API's examples carry none, and a fraction buys nothing.
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| usage!("the expiry is before 1970"))?
        .as_secs();
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    Ok(Some(humantime::format_rfc3339_seconds(at).to_string()))
}

/// A CIDR for `--allow-ip`; a bare address becomes /32 or /128. Host bits are cleared.
fn cidr(s: &str) -> Result<IpNet, UsageError> {
    let s = s.trim();
    s.parse::<IpNet>()
        .map(|n| n.trunc())
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            usage!("--allow-ip {s:?} is not an IP address or CIDR range")
                .with_hint("e.g. --allow-ip 203.0.113.0/24 or --allow-ip 2001:db8::/32")
        })
}

/// One of the 8 groups, found in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResolvedGroup {
    pub permission: &'static str,
    pub scope: Scope,
    pub id: String,
}

/// Why a group could not be chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupProblem {
    Missing {
        name: &'static str,
        scope: Scope,
    },
    Ambiguous {
        name: &'static str,
        scope: Scope,
        ids: Vec<String>,
    },
}

impl std::fmt::Display for GroupProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupProblem::Missing { name, scope } => write!(
                f,
                "\"{name}\" with scope {} is not in the permission-group list",
                scope.api_scope()
            ),
            GroupProblem::Ambiguous { name, scope, ids } => write!(
                f,
                "\"{name}\" with scope {} is ambiguous: groups {}",
                scope.api_scope(),
                ids.join(", ")
            ),
        }
    }
}

/// Picks each of the 8 groups by exact name and scope. Every problem is reported, not just the
/// first.
pub fn resolve_groups(
    catalog: &[PermissionGroup],
) -> Result<Vec<ResolvedGroup>, Vec<GroupProblem>> {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for p in &PERMISSIONS {
        let mut ids: Vec<String> = catalog
            .iter()
            .filter(|g| g.name == p.name && g.scopes.iter().any(|s| s == p.scope.api_scope()))
            .map(|g| g.id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        match ids.len() {
            0 => problems.push(GroupProblem::Missing {
                name: p.name,
                scope: p.scope,
            }),
            1 => found.push(ResolvedGroup {
                permission: p.name,
                scope: p.scope,
                id: ids.remove(0),
            }),
            _ => problems.push(GroupProblem::Ambiguous {
                name: p.name,
                scope: p.scope,
                ids,
            }),
        }
    }
    if problems.is_empty() {
        Ok(found)
    } else {
        Err(problems)
    }
}

/// The key of the IP condition that `--allow-ip` sends.
///
/// Open question (docs/cloudflare-api.md §4 "The condition key is disputed", open question 1): the
/// prose docs (`create-via-api.mdx`) and the cf-go v0 fixture show `"request.ip"`; the SDKs
/// generated from the current OpenAPI schema (cloudflare-go `shared/shared.go`
/// `json:"request_ip"`, Python `token_create_params.py`, TS `tokens.ts`) send `request_ip`
/// (docs/peers.md §5 recorded the Python and TS SDKs sending it), and terraform v5's acceptance test
/// creates a token with it and reads `condition.request_ip.in[0]` back. cfsetup sends the SDKs'
/// key, since the schema is what the server is generated against. Whichever the server honours,
/// a server that ignored the key would create the token **unrestricted**, so the condition is
/// read back from the answer (or a GET) and a token without the restriction under either key is
/// deleted again ([`restriction_applied`]).
pub const IP_CONDITION_KEY: &str = "request_ip";

/// The IP ranges of a token's `condition` as the API returned it, under either key
/// (`request_ip` or `request.ip`); `None` when there is no IP restriction.
pub fn returned_ranges(condition: Option<&Value>) -> Option<Vec<String>> {
    let c = condition?;
    let rule = c.get("request_ip").or_else(|| c.get("request.ip"))?;
    let list: Vec<String> = rule
        .get("in")?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    (!list.is_empty()).then_some(list)
}

/// Whether the returned condition holds exactly the ranges that were asked for (compared as
/// networks, so `127.0.0.1` and `127.0.0.1/32` are the same).
pub fn restriction_applied(asked: &[IpNet], condition: Option<&Value>) -> bool {
    let Some(got) = returned_ranges(condition) else {
        return false;
    };
    let got: Option<Vec<IpNet>> = got.iter().map(|s| cidr(s).ok()).collect();
    let Some(got) = got else {
        return false;
    };
    asked.iter().all(|a| got.contains(a)) && got.iter().all(|g| asked.contains(g))
}

/// The `POST /user/tokens` body: one policy per scope, each on the plan's account or zone.
pub fn request_body(plan: &Plan, groups: &[ResolvedGroup]) -> NewToken {
    let policy = |scope: Scope, id: &str| {
        let mut resources = serde_json::Map::new();
        resources.insert(scope.resource_key(id), Value::from("*"));
        Policy {
            id: None,
            effect: "allow".into(),
            resources,
            permission_groups: groups
                .iter()
                .filter(|g| g.scope == scope)
                .map(|g| PolicyGroup {
                    id: g.id.clone(),
                    name: None,
                })
                .collect(),
        }
    };
    let condition = (!plan.allow_ip.is_empty()).then(|| {
        let list: Vec<String> = plan.allow_ip.iter().map(ToString::to_string).collect();
        json!({ IP_CONDITION_KEY: { "in": list } })
    });
    NewToken {
        name: plan.name.clone(),
        policies: vec![
            policy(Scope::Account, &plan.account_id),
            policy(Scope::Zone, &plan.zone_id),
        ],
        expires_on: plan.expires_on.clone(),
        not_before: None,
        condition,
    }
}

pub async fn run(
    args: CreateTokenArgs,
    config: &Config,
    ui: &Ui,
) -> anyhow::Result<Box<dyn Report>> {
    let (plan, auth) = plan(&args, config, SystemTime::now())?;
    if plan.expires_on.is_none() {
        ui.warn(
            "the token will never expire: a leaked copy would work forever; pass --expires-in 1y \
             (or --expires-on) and roll it before then with `cfsetup rotate-token`",
        );
    }
    // Before any request: a token whose value has nowhere to go would end up on stdout (CI logs).
    let writer = match &plan.write_env {
        Some(path) if !plan.dry_run => Some(env_writer(path)?),
        _ => None,
    };
    let client = super::client(config, auth, 8)?;

    // Reads, at once: the catalog, the tokens that already carry this name, and the zone (its
    // name, to check the platform domain before a token exists; the creator may not be allowed
    // to read it, which is fine).
    let (catalog, existing, zone) = futures::future::join3(
        client.permission_groups(None, None),
        client.list_tokens(),
        client.get_zone(&plan.zone_id),
    )
    .await;
    if let (Ok(zone), Some(domain)) = (&zone, plan.platform_domain.as_deref()) {
        if let Err(e) = crate::names::in_zone(domain, &zone.name, "PLATFORM_DOMAIN") {
            anyhow::bail!(
                "{}: the permission checks create a route under it, which only works in the \
                 token's zone; no token was created ({})",
                e.message,
                e.hint.unwrap_or_default()
            );
        }
    }
    let catalog =
        catalog.context("reading the permission groups (GET /user/tokens/permission_groups)")?;
    let groups = resolve_groups(&catalog).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(|p| format!("  - {p}")).collect();
        anyhow::anyhow!(
            "cannot build the token: {} of the 8 permission groups could not be chosen, so no \
             token was created:\n{}",
            problems.len(),
            list.join("\n")
        )
    })?;
    let existing = existing.context("listing your API tokens (GET /user/tokens)")?;
    let same_name: Vec<Token> = existing
        .iter()
        .filter(|t| t.name == plan.name)
        .cloned()
        .collect();
    let body = request_body(&plan, &groups);

    if plan.dry_run {
        return Ok(Box::new(DryRun {
            dry_run: true,
            method: plan.method,
            request: json!({ "method": "POST", "path": "/user/tokens", "body": body }),
            groups,
            existing_ids: same_name.iter().map(|t| t.id.clone()).collect(),
            replace: plan.replace,
            name: plan.name,
        }));
    }
    if !same_name.is_empty() && !plan.replace {
        let ids: Vec<&str> = same_name.iter().map(|t| t.id.as_str()).collect();
        anyhow::bail!(
            "a token named {:?} already exists ({}); nothing was created. Roll its secret with \
             `cfsetup rotate-token --name {:?}`, replace it with --replace, or choose another --name",
            plan.name,
            ids.join(", "),
            plan.name
        );
    }

    let created = match client.create_token(&body).await {
        Ok(c) => c,
        Err(e @ Error::Transport { .. }) => {
            return Err(lost_answer(&client, &plan.name, &existing, e).await)
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("creating the token {:?}", plan.name)))
        }
    };
    let mut token = created.token;
    let value = created.value;
    ui.note(format!("created token {:?} ({})", token.name, token.id));
    if !plan.allow_ip.is_empty() {
        ensure_restricted(&client, &plan, &mut token).await?;
    }

    // From here on the value must reach the user whatever else happens.
    let new_client = client.with_auth(Auth::Token(value.clone()));
    let mut verified = verify_new(&new_client, &plan.account_id, ui).await;
    // A token restricted to other addresses cannot be used from this machine, verify included
    // (403 / 9109, docs/cloudflare-api.md §4): that is what --allow-ip asked for, not a failure.
    let mut unverifiable = None;
    if let Err(e) = &verified {
        if let Some(ip) = ip_refusal(e) {
            unverifiable = Some(format!(
                "not from here: this machine's address {ip} is outside --allow-ip; verify it and \
                 run `cfsetup test-permissions` from an allowed address"
            ));
        }
    }
    if unverifiable.is_some() {
        verified = Err(anyhow::anyhow!("not verifiable from this address"));
    }
    let delivery = deliver(writer.as_ref(), &value, &token.id, ui);

    let mut test = None;
    if verified.is_ok() && !plan.no_test {
        let target = checks::Target {
            account_id: plan.account_id.clone(),
            zone_id: plan.zone_id.clone(),
            platform_domain: plan.platform_domain.clone(),
            read_only: false,
            s3_endpoint: config.s3_endpoint.clone(),
        };
        // The new token's id is known: no verify for its S3 keys.
        let token_id = futures::FutureExt::boxed(futures::future::ready(Ok(token.id.clone())));
        let mut run = checks::run(&new_client, &target, token_id).await;
        test_permissions::warn_left_behind(&run, ui);
        run.take_fatal();
        test = Some(run);
    }
    let works = verified.is_ok() && test.as_ref().is_none_or(|r| r.exit_code() == 0);

    let mut replaced = Vec::new();
    if plan.replace && !same_name.is_empty() {
        if works {
            for old in &same_name {
                client
                    .delete_token(&old.id)
                    .await
                    .with_context(|| format!("deleting the old token {} (--replace)", old.id))?;
                replaced.push(old.id.clone());
            }
        } else {
            ui.warn(format!(
                "--replace: kept the old token(s) named {:?}, because the new one did not pass",
                plan.name
            ));
        }
    }

    Ok(Box::new(Created {
        name: token.name,
        id: token.id,
        method: plan.method,
        expires_on: token.expires_on.or(plan.expires_on),
        allow_ip: returned_ranges(token.condition.as_ref()).unwrap_or_default(),
        condition: token.condition.clone(),
        verified: verified.as_ref().ok().cloned(),
        verify_error: match unverifiable {
            Some(_) => None,
            None => verified.as_ref().err().map(|e| format!("{e:#}")),
        },
        unverifiable,
        value: match &delivery {
            Delivery::Shown | Delivery::Failed(_) => Some(value),
            Delivery::Written(_) => None,
        },
        env_file: match &delivery {
            Delivery::Written(p) => Some(p.display().to_string()),
            _ => None,
        },
        env_error: match delivery {
            Delivery::Failed(e) => Some(e),
            _ => None,
        },
        replaced,
        test,
    }))
}

/// `--allow-ip`: the restriction must be on the token the API made, read from the create's
/// answer or, when that has no `condition`, from `GET /user/tokens/{id}`. Otherwise the new token
/// works from anywhere, so it is deleted again and the run fails (exit 1) saying why; it is never
/// reported as restricted.
async fn ensure_restricted(client: &Client, plan: &Plan, token: &mut Token) -> anyhow::Result<()> {
    if token.condition.is_none() {
        match client.get_token(&token.id).await {
            Ok(t) => token.condition = t.condition,
            Err(e) => {
                let deleted = client.delete_token(&token.id).await;
                return Err(unrestricted(plan, token, deleted, Some(e)));
            }
        }
    }
    if restriction_applied(&plan.allow_ip, token.condition.as_ref()) {
        return Ok(());
    }
    let deleted = client.delete_token(&token.id).await;
    Err(unrestricted(plan, token, deleted, None))
}

fn unrestricted(
    plan: &Plan,
    token: &Token,
    deleted: Result<(), Error>,
    read_error: Option<Error>,
) -> anyhow::Error {
    let asked: Vec<String> = plan.allow_ip.iter().map(ToString::to_string).collect();
    let got = match (&read_error, &token.condition) {
        (Some(e), _) => format!("its condition could not be read back ({e})"),
        (None, None) => "the API returned it with no condition".to_string(),
        (None, Some(c)) => format!("the API returned the condition {c}"),
    };
    let what = format!(
        "the token {:?} ({}) was created, but not with the IP restriction asked for (--allow-ip \
         {}, sent as condition.{IP_CONDITION_KEY}): {got}",
        plan.name,
        token.id,
        asked.join(" --allow-ip ")
    );
    match deleted {
        Ok(()) => anyhow::anyhow!(
            "{what}. It was deleted again, so no unrestricted token is left behind. The API may \
             not accept this condition key (an open question); create the token without \
             --allow-ip and add Client IP Address Filtering in the dashboard (My Profile > API \
             Tokens)"
        ),
        Err(e) => anyhow::anyhow!(
            "{what}. Deleting it failed too ({e}): the token works from anywhere; delete it now in \
             the dashboard (My Profile > API Tokens) or with the Cloudflare API"
        ),
    }
}

/// `POST /user/tokens` got no answer: look before saying whether a token exists.
async fn lost_answer(client: &Client, name: &str, before: &[Token], e: Error) -> anyhow::Error {
    let known: Vec<&str> = before.iter().map(|t| t.id.as_str()).collect();
    match client.list_tokens().await {
        Ok(now) => match now
            .iter()
            .find(|t| t.name == name && !known.contains(&t.id.as_str()))
        {
            Some(t) => anyhow::Error::new(e).context(format!(
                "the API did not answer the create, but the token {name:?} was created (id {}); \
                 its value cannot be read back: get a new one with `cfsetup rotate-token --id {} \
                 --write-env`",
                t.id, t.id
            )),
            None => anyhow::Error::new(e).context(format!(
                "the API did not answer the create, and no token named {name:?} was created; it \
                 is safe to run the same command again"
            )),
        },
        Err(list_err) => anyhow::Error::new(e).context(format!(
            "the API did not answer the create, and listing the tokens failed too ({list_err}); \
             check My Profile > API Tokens for a token named {name:?} before trying again"
        )),
    }
}

/// Verifies the new token. A token can take a moment to reach every API server, so 1000 "Invalid
/// API Token" is retried twice, a second apart and then two.
async fn verify_new(client: &Client, account_id: &str, ui: &Ui) -> anyhow::Result<Credential> {
    let mut last = None;
    for wait in [0u64, 1, 2] {
        tokio::time::sleep(Duration::from_secs(wait)).await;
        match test_permissions::verify(client, account_id, ui).await {
            Ok(c) => return Ok(c),
            Err(e) if still_propagating(&e) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("the new token could not be verified")))
}

/// The address named by a 9109 "Cannot use the access token from location" anywhere in the chain.
fn ip_refusal(e: &anyhow::Error) -> Option<String> {
    e.chain()
        .filter_map(|c| c.downcast_ref::<Error>())
        .find_map(Error::ip_refused)
}

fn still_propagating(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<Error>())
        .any(|c| c.has_code(1000) && c.ip_refused().is_none())
}

enum Delivery {
    Shown,
    Written(PathBuf),
    /// The write failed; the value is shown instead so it is not lost.
    Failed(String),
}

/// Checks that `--write-env PATH` can be written (creating its lock file), before any request.
pub(crate) fn env_writer(path: &std::path::Path) -> Result<envfile::Writer, UsageError> {
    // The value it replaces may be the only copy of a token still in use (Method 2's writer
    // token, say): Cloudflare never shows a value again, so it is kept, commented (issue 17).
    envfile::Writer::prepare(path, TOKEN_VAR)
        .map(envfile::Writer::keeping_replaced)
        .map_err(|e| {
            usage!("--write-env {}: cannot write it: {e}", path.display()).with_hint(
            "choose a file in a folder you can write, or leave out --write-env to be shown the \
             value once",
        )
        })
}

/// Writes the value with [`envfile::Writer::set`], warning when another run's value was kept,
/// and the token's id beside it as [`TOKEN_ID_VAR`].
pub(crate) fn write_token(
    writer: &envfile::Writer,
    value: &Secret,
    id: &str,
    ui: &Ui,
) -> std::io::Result<()> {
    let path = writer.path();
    let written = writer.set_with(value.expose(), Some((TOKEN_ID_VAR, id)))?;
    if written.kept_other {
        ui.warn(format!(
            "another run wrote {TOKEN_VAR} to {} while this one was under way; its value is kept \
             there as a commented line above the new one, so that neither is lost",
            path.display()
        ));
    }
    if let Some(old_id) = &written.kept_replaced {
        let whose = match old_id {
            Some(id) => format!("token {id}"),
            None => "a token whose id the file did not record".to_string(),
        };
        ui.warn(format!(
            "{} held another {TOKEN_VAR} ({whose}); it is kept there as a commented, dated line \
             above the new one, not printed. That token stays active: delete or roll it once \
             nothing uses it, then remove the line",
            path.display()
        ));
    }
    if let Some(w) = envfile::git_exposure(path) {
        ui.warn(w);
    }
    Ok(())
}

fn deliver(writer: Option<&envfile::Writer>, value: &Secret, id: &str, ui: &Ui) -> Delivery {
    let Some(writer) = writer else {
        return Delivery::Shown;
    };
    let path = writer.path();
    match write_token(writer, value, id, ui) {
        Ok(()) => Delivery::Written(path.to_path_buf()),
        Err(e) => {
            let msg = format!("could not write {}: {e}", path.display());
            ui.warn(format!(
                "{msg}; the token's value is shown on stdout instead, once"
            ));
            Delivery::Failed(msg)
        }
    }
}

/// `--dry-run`: the exact request, and nothing created.
#[derive(Debug, Serialize)]
struct DryRun {
    dry_run: bool,
    name: String,
    method: Method,
    request: Value,
    groups: Vec<ResolvedGroup>,
    /// Tokens that already carry the name.
    existing_ids: Vec<String>,
    replace: bool,
}

impl Report for DryRun {
    fn render(&self, out: &mut Renderer) {
        out.line(format!(
            "Dry run: would create the token {:?} with {} by sending POST /user/tokens:",
            self.name,
            self.method.describe()
        ));
        out.blank();
        out.line(serde_json::to_string_pretty(&self.request["body"]).unwrap_or_default());
        out.blank();
        let rows = self
            .groups
            .iter()
            .map(|g| {
                vec![
                    g.permission.to_string(),
                    g.scope.label().to_string(),
                    g.id.clone(),
                ]
            })
            .collect();
        out.table(&["permission", "scope", "group id"], rows);
        if !self.existing_ids.is_empty() {
            out.blank();
            out.line(if self.replace {
                format!(
                    "A token with this name exists ({}); --replace would delete it once the new one passes.",
                    self.existing_ids.join(", ")
                )
            } else {
                format!(
                    "A token with this name exists ({}): the real run would refuse; use --replace, \
                     `cfsetup rotate-token`, or another --name.",
                    self.existing_ids.join(", ")
                )
            });
        }
        out.blank();
        out.line("Nothing was created.");
    }

    fn to_json(&self) -> Value {
        json_of(self)
    }
}

/// The new token, its value (once) or where it was written, and its checks.
#[derive(Debug, Serialize)]
struct Created {
    name: String,
    id: String,
    method: Method,
    expires_on: Option<String>,
    /// The IP ranges of the condition the API returned (not the ones asked for).
    allow_ip: Vec<String>,
    /// The `condition` exactly as the API returned it.
    #[serde(skip_serializing_if = "Option::is_none")]
    condition: Option<Value>,
    verified: Option<Credential>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verify_error: Option<String>,
    /// Why the token could not be verified from this machine (its IP restriction excludes it).
    #[serde(skip_serializing_if = "Option::is_none")]
    unverifiable: Option<String>,
    /// The secret, shown once; absent when it was written to the env file.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::secret::serialize_new_value"
    )]
    value: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    env_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    env_error: Option<String>,
    replaced: Vec<String>,
    /// The 8 checks with the new token; absent with --no-test or when verify failed.
    test: Option<CheckRun>,
}

impl Report for Created {
    fn render(&self, out: &mut Renderer) {
        let mut rows = vec![
            ("token", format!("{} ({})", self.name, self.id)),
            ("created with", self.method.describe().to_string()),
            (
                "expires",
                self.expires_on.clone().unwrap_or_else(|| "never".into()),
            ),
        ];
        if !self.allow_ip.is_empty() {
            rows.push(("allowed IPs", self.allow_ip.join(", ")));
        }
        rows.push((
            "verified",
            match (&self.verified, &self.verify_error) {
                (Some(c), _) => c.status.clone().unwrap_or_else(|| "yes".into()),
                (None, None) if self.unverifiable.is_some() => {
                    self.unverifiable.clone().unwrap_or_default()
                }
                (None, Some(e)) => format!("no: {e}"),
                (None, None) => "no".into(),
            },
        ));
        if let Some(p) = &self.env_file {
            rows.push(("written to", format!("{p} as {TOKEN_VAR} (mode 0600)")));
        }
        if !self.replaced.is_empty() {
            rows.push(("replaced", self.replaced.join(", ")));
        }
        out.pairs(&rows);
        if let Some(v) = &self.value {
            out.blank();
            out.line("The token's value, shown this once (store it now; it cannot be read back):");
            out.line(v.expose());
        }
        if let Some(run) = &self.test {
            out.blank();
            run.render(out);
        } else if self.unverifiable.is_some() {
            out.blank();
            out.line(
                "The 8 checks were not run: the token works only from its allowed addresses; run \
                 `cfsetup test-permissions` with it from one of them.",
            );
        } else if self.verified.is_some() {
            out.blank();
            out.line("The 8 checks were not run (--no-test); run `cfsetup test-permissions` with the token.");
        }
    }

    fn to_json(&self) -> Value {
        json_of(self)
    }

    fn exit_code(&self) -> u8 {
        if self.verify_error.is_some() || self.env_error.is_some() {
            1
        } else {
            self.test.as_ref().map_or(0, CheckRun::exit_code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Vec<PermissionGroup> {
        PERMISSIONS
            .iter()
            .enumerate()
            .map(|(i, p)| PermissionGroup {
                id: format!("{i:032x}"),
                name: p.name.into(),
                scopes: vec![p.scope.api_scope().into()],
            })
            .collect()
    }

    /// A server that answers each connection with the next canned response, and records the
    /// request lines it saw.
    fn canned(responses: Vec<String>) -> (url::Url, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for response in responses {
                let Ok((mut stream, _)) = listener.accept() else {
                    return;
                };
                let mut buf = [0u8; 8192];
                let mut req = Vec::new();
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&req);
                log.lock()
                    .unwrap()
                    .push(line.lines().next().unwrap_or("").to_string());
                let _ = stream.write_all(response.as_bytes());
            }
        });
        let url = url::Url::parse(&format!("http://{addr}/client/v4")).unwrap();
        (url, seen)
    }

    fn ok(result: Value) -> String {
        let body = json!({"success": true, "errors": [], "messages": [], "result": result});
        let body = body.to_string();
        format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        )
    }

    fn new_token(condition: Option<Value>) -> Token {
        Token {
            id: "c".repeat(32),
            name: "platform".into(),
            status: Some("active".into()),
            expires_on: None,
            not_before: None,
            policies: vec![],
            condition,
        }
    }

    /// A create answer without `condition` is not taken for "unrestricted" nor for
    /// "restricted": the token is read back with GET, under either key.
    #[test]
    fn a_create_answer_without_the_condition_is_checked_with_a_get() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let plan = sample_plan();
        let id = "c".repeat(32);
        let kept = json!({"request.ip": {"in": ["203.0.113.0/24", "::1/128"]}});
        let (url, seen) = canned(vec![ok(
            json!({"id": id, "name": "platform", "condition": kept}),
        )]);
        let client = Client::new(
            &url,
            Auth::Token(Secret::new("t")),
            crate::cloudflare::ClientOptions::default(),
        )
        .unwrap();
        let mut token = new_token(None);
        rt.block_on(ensure_restricted(&client, &plan, &mut token))
            .unwrap();
        assert_eq!(token.condition, Some(kept));
        assert_eq!(
            *seen.lock().unwrap(),
            [format!("GET /client/v4/user/tokens/{id} HTTP/1.1")]
        );

        // The GET shows no restriction either: the token is deleted and the run fails.
        let (url, seen) = canned(vec![
            ok(json!({"id": id, "name": "platform"})),
            ok(json!({"id": id})),
        ]);
        let client = Client::new(
            &url,
            Auth::Token(Secret::new("t")),
            crate::cloudflare::ClientOptions::default(),
        )
        .unwrap();
        let mut token = new_token(None);
        let e = rt
            .block_on(ensure_restricted(&client, &plan, &mut token))
            .unwrap_err()
            .to_string();
        assert!(e.contains("the API returned it with no condition"), "{e}");
        assert!(e.contains("It was deleted again"), "{e}");
        assert_eq!(
            *seen.lock().unwrap(),
            [
                format!("GET /client/v4/user/tokens/{id} HTTP/1.1"),
                format!("DELETE /client/v4/user/tokens/{id} HTTP/1.1")
            ]
        );
    }

    #[test]
    fn the_restriction_is_read_back_under_either_key() {
        let asked = vec![cidr("203.0.113.7/24").unwrap(), cidr("::1").unwrap()];
        for key in ["request_ip", "request.ip"] {
            let c = json!({ key: { "in": ["::1/128", "203.0.113.0/24"] } });
            assert!(restriction_applied(&asked, Some(&c)), "{key}");
            assert_eq!(
                returned_ranges(Some(&c)).unwrap(),
                ["::1/128", "203.0.113.0/24"]
            );
        }
        assert!(!restriction_applied(&asked, None));
        assert!(!restriction_applied(&asked, Some(&json!({}))));
        let fewer = json!({ "request_ip": { "in": ["203.0.113.0/24"] } });
        assert!(!restriction_applied(&asked, Some(&fewer)));
        let other = json!({ "request_ip": { "not_in": ["203.0.113.0/24", "::1/128"] } });
        assert!(!restriction_applied(&asked, Some(&other)));
    }

    #[test]
    fn groups_resolve_by_name_and_scope() {
        let mut c = catalog();
        // A same-named group of another scope is not a match, nor a reason for ambiguity.
        c.push(PermissionGroup {
            id: "f".repeat(32),
            name: "Zone Read".into(),
            scopes: vec!["com.cloudflare.api.account".into()],
        });
        let got = resolve_groups(&c).unwrap();
        assert_eq!(got.len(), 8);
        let routes = got
            .iter()
            .find(|g| g.permission == "Workers Routes Write")
            .unwrap();
        assert_eq!(routes.scope, Scope::Zone);
        assert_eq!(
            got.iter().find(|g| g.permission == "Zone Read").unwrap().id,
            format!("{:032x}", 5)
        );
    }

    #[test]
    fn missing_and_ambiguous_groups_are_all_named() {
        let mut c = catalog();
        c.retain(|g| g.name != "Workers Routes Write");
        // Workers Routes Write on the account scope is not the zone-scoped group.
        c.push(PermissionGroup {
            id: "a".repeat(32),
            name: "Workers Routes Write".into(),
            scopes: vec!["com.cloudflare.api.account".into()],
        });
        c.push(PermissionGroup {
            id: "b".repeat(32),
            name: "Zone Read".into(),
            scopes: vec!["com.cloudflare.api.account.zone".into()],
        });
        let problems = resolve_groups(&c).unwrap_err();
        assert_eq!(
            problems,
            vec![
                GroupProblem::Missing {
                    name: "Workers Routes Write",
                    scope: Scope::Zone
                },
                GroupProblem::Ambiguous {
                    name: "Zone Read",
                    scope: Scope::Zone,
                    ids: vec![format!("{:032x}", 5), "b".repeat(32)]
                },
            ]
        );
        assert_eq!(
            problems[0].to_string(),
            "\"Workers Routes Write\" with scope com.cloudflare.api.account.zone is not in the \
             permission-group list"
        );
    }

    fn sample_plan() -> Plan {
        Plan {
            name: "platform".into(),
            method: Method::GlobalKey,
            account_id: "a".repeat(32),
            zone_id: "b".repeat(32),
            expires_on: Some("2027-01-01T00:00:00Z".into()),
            allow_ip: vec![cidr("203.0.113.7/24").unwrap(), cidr("::1").unwrap()],
            write_env: None,
            replace: false,
            dry_run: false,
            no_test: false,
            platform_domain: None,
        }
    }

    #[test]
    fn the_body_has_one_policy_per_scope_on_its_own_resource() {
        let groups = resolve_groups(&catalog()).unwrap();
        let body = serde_json::to_value(request_body(&sample_plan(), &groups)).unwrap();
        let a = "a".repeat(32);
        let b = "b".repeat(32);
        assert_eq!(
            body,
            json!({
                "name": "platform",
                "policies": [
                    {
                        "effect": "allow",
                        "resources": { format!("com.cloudflare.api.account.{a}"): "*" },
                        "permission_groups": [
                            {"id": format!("{:032x}", 0)}, {"id": format!("{:032x}", 1)},
                            {"id": format!("{:032x}", 2)}, {"id": format!("{:032x}", 3)},
                        ],
                    },
                    {
                        "effect": "allow",
                        "resources": { format!("com.cloudflare.api.account.zone.{b}"): "*" },
                        "permission_groups": [
                            {"id": format!("{:032x}", 4)}, {"id": format!("{:032x}", 5)},
                            {"id": format!("{:032x}", 6)}, {"id": format!("{:032x}", 7)},
                        ],
                    },
                ],
                "expires_on": "2027-01-01T00:00:00Z",
                "condition": {"request_ip": {"in": ["203.0.113.0/24", "::1/128"]}},
            })
        );
    }

    #[test]
    fn expiry_and_ip_options_are_checked() {
        let now = test_permissions::parse_time("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(
            expiry(Some("90d"), None, now).unwrap().as_deref(),
            Some("2026-04-01T00:00:00Z")
        );
        assert_eq!(
            expiry(None, Some("2027-01-01T00:00:00Z"), now)
                .unwrap()
                .as_deref(),
            Some("2027-01-01T00:00:00Z")
        );
        assert!(expiry(None, Some("2025-01-01T00:00:00Z"), now)
            .unwrap_err()
            .message
            .contains("in the past"));
        assert!(expiry(None, Some("next tuesday"), now).is_err());
        assert!(expiry(Some("soon"), None, now).is_err());
        // Out of range: exit 2, never a panic.
        for d in ["99999y", "101y", "18446744073709551615s"] {
            assert!(expiry(Some(d), None, now).is_err(), "{d}");
        }
        assert!(expiry(None, Some("99999-01-01T00:00:00Z"), now).is_err());
        assert_eq!(cidr("10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
        assert!(cidr("10.0.0.0/33").is_err());
        assert!(cidr("example.com").is_err());
    }
}
