//! `cfsetup domains [TENANT]`: every tenant domain (custom hostname) with its state and who must
//! act, and `cfsetup domains prune`: delete the custom hostnames that no host entry names.
//!
//! Requests: one listing of `hosts/` and its entries, one paged listing of the zone's custom
//! hostnames (shared with `sites`, de-duplicated by id), the quota and the fallback origin, all at
//! once; then public DNS lookups (hickory-resolver, [`crate::dns`]) of the domains that are not
//! settled, unless `--no-dns`. docs/domains.md is the life of a domain this command reads.
//!
//! Who must act is read from the API's own fields (docs/cloudflare-api.md §10 "Result fields":
//! `status`, `verification_errors`, `ownership_verification`, `ssl.status`, `ssl.method`,
//! `ssl.validation_records`, `ssl.validation_errors`) and, where they help, from the tenant's DNS.
//! This module must not import `deploy_site` (deploy-site does the writes; this only reads, and
//! prune only deletes orphans).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use futures::stream::{self, StreamExt};
use serde::Serialize;

use crate::cli::{DnsArgs, DomainsArgs, DomainsCommand, PruneArgs};
use crate::cloudflare::custom_hostnames::{CustomHostname, Quota, PRICE_CENTS_PER_MONTH};
use crate::config::{self, Config};
use crate::dns::{Dns, Observed};
use crate::names::{Hostname, Tenant};
use crate::output::{json_of, Renderer, Report, Ui};
use crate::site::layout;

use super::bucket;

/// DNS lookups in flight at once (each is six questions).
const DNS_CONCURRENCY: usize = 16;
/// Host entries read at once: with thousands of domains these reads, one per domain, are most of
/// the run (README "Benchmarks").
const ENTRY_CONCURRENCY: usize = 64;
/// Prune never deletes an orphan younger than this: a deploy creates the custom hostname before
/// it writes the host entry, and with `--wait` it waits in between (docs/domains.md "Prune").
pub const PRUNE_MIN_AGE: Duration = Duration::from_secs(3600);

pub async fn run(args: DomainsArgs, config: &Config, ui: &Ui) -> anyhow::Result<Box<dyn Report>> {
    if let Some(DomainsCommand::Prune(p)) = args.command {
        return prune(p, config, ui).await;
    }
    let only = args.tenant.as_deref().map(Tenant::existing).transpose()?;
    let expiring = args
        .expiring
        .as_deref()
        .map(|v| config::duration(v, "--expiring"))
        .transpose()?;
    let status = args
        .status
        .as_deref()
        .map(|s| s.trim().to_ascii_lowercase());
    let zone = zone(config)?;
    let dns = resolver(config, &args.dns)?;
    let target_setting = config
        .setting(None, "SAAS_FALLBACK_ORIGIN")
        .map(|h| Hostname::parse(&h, "SAAS_FALLBACK_ORIGIN"))
        .transpose()?;
    let opened = bucket::open(config, ui, &args.bucket, ENTRY_CONCURRENCY).await?;
    let (storage, bucket_name) = (&opened.storage, opened.bucket.as_str());
    let client = &opened.client;
    let (hosts, hostnames, quota, fallback) = tokio::try_join!(
        bucket::host_entries(storage, bucket_name, ENTRY_CONCURRENCY),
        bucket::all_custom_hostnames(client, &zone),
        async { Ok(client.quota(&zone).await) },
        async {
            client
                .get_fallback_origin(&zone)
                .await
                .map_err(anyhow::Error::from)
        },
    )?;
    let quota = match quota {
        Ok(q) => Some(q),
        Err(e) => {
            ui.warn(format!("could not read the custom hostname quota: {e}"));
            None
        }
    };
    let fallback_status = fallback.as_ref().and_then(|f| f.status.clone());
    let target = target_setting.or_else(|| {
        fallback
            .as_ref()
            .and_then(|f| f.origin.as_deref())
            .and_then(|o| Hostname::parse(o, "the fallback origin").ok())
    });

    // hostname → tenant named by its entry (`Some(None)`: an unreadable entry).
    let entries: BTreeMap<String, Option<String>> = hosts
        .into_iter()
        .map(|(h, t)| (h.to_string(), t.map(String::from)))
        .collect();
    let mut seen = BTreeSet::new();
    let mut pairs: Vec<(String, Option<CustomHostname>)> = Vec::new();
    for ch in hostnames {
        let h = ch.hostname.to_ascii_lowercase();
        seen.insert(h.clone());
        pairs.push((h, Some(ch)));
    }
    for h in entries.keys() {
        if !seen.contains(h) {
            pairs.push((h.clone(), None));
        }
    }
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(t) = &only {
        pairs.retain(|(h, _)| entries.get(h).and_then(|e| e.as_deref()) == Some(t.as_str()));
    }

    let observed: Vec<Option<Observed>> = stream::iter(&pairs)
        .map(|(h, ch)| {
            let dns = &dns;
            async move {
                if ch.as_ref().is_some_and(settled) {
                    None
                } else {
                    dns.observe(h).await
                }
            }
        })
        .buffered(DNS_CONCURRENCY)
        .collect()
        .await;
    if observed.iter().flatten().any(|o| !o.errors.is_empty()) {
        ui.warn("some DNS lookups failed; their domains are judged from the API's fields alone");
    }

    let now = SystemTime::now();
    let mut rows = Vec::new();
    for ((h, ch), obs) in pairs.iter().zip(observed) {
        let facts = Facts {
            hostname: h,
            ch: ch.as_ref(),
            tenant: entries.get(h).cloned(),
            fallback_status: fallback_status.as_deref(),
            target: target.as_deref(),
            dns: obs.as_ref().filter(|o| o.errors.is_empty()),
        };
        let mut row = assess(&facts);
        row.dns = obs;
        if let Some(window) = expiring {
            row.expiring = expires_within(row.expires_on.as_deref(), now, window);
        }
        rows.push(row);
    }
    let total = rows.len();
    rows.retain(|r| {
        (!args.needs_action || r.owner.needs_action())
            && status
                .as_deref()
                .is_none_or(|s| r.status == s || r.certificate.as_deref() == Some(s))
            && (expiring.is_none() || (r.expiring && !r.renews_by_itself))
    });
    let needs_action = rows.iter().filter(|r| r.owner.needs_action()).count();
    Ok(Box::new(DomainsReport {
        quota,
        fallback_origin: fallback.and_then(|f| f.origin),
        fallback_status,
        cname_target: target.map(String::from),
        dns: dns.enabled(),
        total,
        needs_action,
        check: args.check,
        domains: rows,
    }))
}

fn zone(config: &Config) -> anyhow::Result<String> {
    Ok(config
        .require_zone_id()
        .map_err(|e| {
            e.with_hint("custom hostnames live on the platform's zone; set CLOUDFLARE_ZONE_ID")
        })?
        .to_string())
}

/// The resolver `--no-dns` / `--dns-server` / `CFSETUP_DNS_SERVER` ask for (exit 2 on a bad
/// address, before any request).
pub fn resolver(config: &Config, args: &DnsArgs) -> anyhow::Result<Dns> {
    if args.no_dns {
        return Ok(Dns::off());
    }
    Dns::new(super::dns_server(config, args)?)
}

/// Active, certificate active and renewing by itself: DNS would add nothing.
fn settled(ch: &CustomHostname) -> bool {
    ch.status.as_deref() == Some("active")
        && ssl_status(ch) == Some("active")
        && renews_by_itself(ch)
}

fn ssl_status(ch: &CustomHostname) -> Option<&str> {
    ch.ssl.as_ref().and_then(|s| s.status.as_deref())
}

/// Whether the certificate renews with nobody acting: HTTP validation on an active,
/// non-wildcard hostname. The validation page: "Specific (non-wildcard) custom hostnames can use
/// HTTP based DCV for certificate renewals, as long as the hostname is pointing to the SaaS
/// provider [and] proxying through the Cloudflare network"; TXT tokens expire after 7 (Let's
/// Encrypt) or 14 days (Google), so a TXT certificate's renewal needs new TXT records
/// (docs/domains.md "Renewal", which cites both pages).
pub fn renews_by_itself(ch: &CustomHostname) -> bool {
    ch.status.as_deref() == Some("active")
        && ch.ssl_method() == Some("http")
        && ch.ssl.as_ref().and_then(|s| s.wildcard) != Some(true)
}

fn expires_within(expires_on: Option<&str>, now: SystemTime, window: Duration) -> bool {
    expires_on
        .and_then(|e| humantime::parse_rfc3339_weak(e).ok())
        .is_some_and(|at| at <= now + window)
}

/// Who must act.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Owner {
    /// Nobody: active.
    None,
    /// The domain's owner, at their DNS provider.
    Tenant,
    /// The platform's operator (cfsetup).
    Platform,
    /// Cloudflare or its CA: waiting, or an error only they can clear.
    Cloudflare,
}

impl Owner {
    pub fn needs_action(self) -> bool {
        matches!(self, Owner::Tenant | Owner::Platform)
    }
    fn as_str(self) -> &'static str {
        match self {
            Owner::None => "none",
            Owner::Tenant => "tenant",
            Owner::Platform => "platform",
            Owner::Cloudflare => "Cloudflare",
        }
    }
}

/// A DNS record the tenant must add (or remove).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Record {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub value: String,
}

/// What is known about one domain.
pub struct Facts<'a> {
    pub hostname: &'a str,
    pub ch: Option<&'a CustomHostname>,
    /// `None`: no host entry; `Some(None)`: an unreadable one.
    pub tenant: Option<Option<String>>,
    pub fallback_status: Option<&'a str>,
    pub target: Option<&'a str>,
    /// Lookups that all answered; `None` with `--no-dns` or when one failed.
    pub dns: Option<&'a Observed>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DomainRow {
    pub hostname: String,
    pub tenant: Option<String>,
    pub id: Option<String>,
    /// The custom hostname's status, or `missing` (a host entry without one).
    pub status: String,
    pub certificate: Option<String>,
    pub method: Option<String>,
    pub expires_on: Option<String>,
    pub renews_by_itself: bool,
    /// Expires within `--expiring` (false without it).
    pub expiring: bool,
    pub owner: Owner,
    pub action: String,
    /// Records the tenant must add (when the tenant must act).
    pub records: Vec<Record>,
    /// `verification_errors` and `ssl.validation_errors`, as the API gave them.
    pub errors: Vec<String>,
    pub created_at: Option<String>,
    /// What public DNS said (absent with `--no-dns` or for settled domains).
    pub dns: Option<Observed>,
}

fn cname_record(host: &str, target: Option<&str>) -> Record {
    Record {
        kind: "CNAME".into(),
        name: host.into(),
        value: target
            .unwrap_or("(no fallback origin yet: run `cfsetup deploy-infra`)")
            .into(),
    }
}

/// The owner and the action for one domain; pure, so each rule is unit-tested.
pub fn assess(f: &Facts) -> DomainRow {
    let host = f.hostname;
    let mut row = DomainRow {
        hostname: host.to_string(),
        tenant: f.tenant.clone().flatten(),
        id: f.ch.map(|c| c.id.clone()),
        status: f
            .ch
            .map(|c| c.status.clone().unwrap_or_else(|| "unknown".into()))
            .unwrap_or_else(|| "missing".into()),
        certificate: f.ch.and_then(ssl_status).map(str::to_string),
        method: f.ch.and_then(|c| c.ssl_method()).map(str::to_string),
        expires_on: f
            .ch
            .and_then(|c| c.ssl.as_ref())
            .and_then(|s| s.expires_on.clone()),
        renews_by_itself: f.ch.is_some_and(renews_by_itself),
        expiring: false,
        owner: Owner::None,
        action: String::new(),
        records: Vec::new(),
        errors: f.ch.map(CustomHostname::errors).unwrap_or_default(),
        created_at: f.ch.and_then(|c| c.created_at.clone()),
        dns: None,
    };
    let (owner, action, records) = decide(f, &row.errors);
    row.owner = owner;
    row.action = action;
    row.records = records;
    row
}

fn decide(f: &Facts, errors: &[String]) -> (Owner, String, Vec<Record>) {
    let host = f.hostname;
    let target = f.target;
    let tgt = target.unwrap_or("the fallback origin");
    let Some(ch) = f.ch else {
        return (
            Owner::Platform,
            format!(
                "no custom hostname: deploy the tenant again with {host} (`cfsetup deploy-site DIR TENANT {host}`)"
            ),
            Vec::new(),
        );
    };
    if f.tenant.is_none() {
        return (
            Owner::Platform,
            "no host entry names it: attach it with `cfsetup deploy-site DIR TENANT DOMAIN`, or \
             delete it with `cfsetup domains prune`"
                .into(),
            Vec::new(),
        );
    }
    let status = ch.status.as_deref().unwrap_or("unknown");
    let ssl = ssl_status(ch).unwrap_or("unknown");
    let method = ch.ssl_method().unwrap_or("http");
    let joined = errors.join("; ");
    match status {
        "blocked" | "pending_blocked" | "test_blocked" => {
            return (
                Owner::Cloudflare,
                format!(
                    "blocked by Cloudflare{}; ask Cloudflare support",
                    with(&joined)
                ),
                Vec::new(),
            )
        }
        "moved" => {
            return (
                Owner::Tenant,
                format!("{host} no longer points at the platform: set its CNAME to {tgt}"),
                vec![cname_record(host, target)],
            )
        }
        "deleted" | "pending_deletion" => return (Owner::None, "being deleted".into(), Vec::new()),
        _ => {}
    }
    let active = status == "active" && ssl == "active";
    if !active && f.fallback_status != Some("active") {
        return (
            Owner::Platform,
            format!(
                "the fallback origin is {}: run `cfsetup deploy-infra`",
                f.fallback_status.unwrap_or("not set")
            ),
            Vec::new(),
        );
    }
    if active {
        if renews_by_itself(ch) {
            return (Owner::None, "active".into(), Vec::new());
        }
        return match f.dns {
            Some(d) if target.is_some_and(|t| d.points_at(t)) => (
                Owner::Platform,
                format!(
                    "certificate validated by {}: its renewal would need new records; run \
                     deploy-site for {host} again to move it to HTTP validation, which renews by itself",
                    method.to_ascii_uppercase()
                ),
                Vec::new(),
            ),
            Some(_) => (
                Owner::Tenant,
                format!("pre-validated and ready: now switch the CNAME of {host} to {tgt}"),
                vec![cname_record(host, target)],
            ),
            None => (
                Owner::Platform,
                format!(
                    "certificate validated by {}: once {host}'s CNAME points at {tgt}, run \
                     deploy-site for it again to move it to HTTP validation (renewals)",
                    method.to_ascii_uppercase()
                ),
                Vec::new(),
            ),
        };
    }
    // Not active: records first (the tenant's move), then what only Cloudflare can do.
    if let Some(caa) = errors
        .iter()
        .find(|e| e.to_ascii_lowercase().contains("caa"))
    {
        return (
            Owner::Tenant,
            format!("a CAA record of {host} forbids the certificate authority ({caa}): allow it, or remove the CAA record"),
            Vec::new(),
        );
    }
    if let Some(d) = f.dns {
        if let Some(c) = d.acme_cname.first() {
            return (
                Owner::Tenant,
                format!(
                    "remove the CNAME at _acme-challenge.{host} (to {c}, likely left by the previous host): it hides Cloudflare's validation"
                ),
                Vec::new(),
            );
        }
    }
    let ownership = ch
        .ownership_verification
        .as_ref()
        .and_then(|o| Some((o.name.clone()?, o.value.clone()?)));
    let acme = ch
        .ssl
        .iter()
        .flat_map(|s| s.validation_records.iter().flatten())
        .find_map(|r| Some((r.txt_name.clone()?, r.txt_value.clone()?)));
    let txt = |(name, value): &(String, String)| Record {
        kind: "TXT".into(),
        name: name.clone(),
        value: value.clone(),
    };
    let points = f.dns.map(|d| target.is_some_and(|t| d.points_at(t)));
    if status != "active" {
        let proven = f.dns.is_some_and(|d| {
            points == Some(true)
                || ownership
                    .as_ref()
                    .is_some_and(|(_, v)| d.ownership_txt.iter().any(|t| t == v))
        });
        if !proven {
            if method == "txt" {
                // Pre-validation: the old records keep serving until the hostname is active.
                let mut records: Vec<Record> = ownership.iter().map(txt).collect();
                records.extend(acme.iter().map(txt));
                return (
                    Owner::Tenant,
                    format!(
                        "add the TXT record(s) (keep the current records serving until this is active){}",
                        with(&joined)
                    ),
                    records,
                );
            }
            if let Some(d) = f.dns {
                if d.cname.is_empty() && !d.addresses.is_empty() {
                    return (
                        Owner::Tenant,
                        format!(
                            "remove the A/AAAA record(s) of {host} ({}) and add the CNAME to {tgt}",
                            d.addresses.join(", ")
                        ),
                        vec![cname_record(host, target)],
                    );
                }
            }
            let mut records = vec![cname_record(host, target)];
            records.extend(ownership.iter().map(txt));
            return (
                Owner::Tenant,
                format!("add the CNAME to {tgt}{}", with(&joined)),
                records,
            );
        }
    }
    match ssl {
        "pending_validation" if method == "txt" => {
            let placed = match (f.dns, &acme) {
                (Some(d), Some((_, v))) => d.acme_txt.iter().any(|t| t == v),
                _ => false,
            };
            if placed {
                (
                    Owner::Cloudflare,
                    "certificate validation in progress (the TXT record is in place)".into(),
                    Vec::new(),
                )
            } else {
                (
                    Owner::Tenant,
                    format!("add the certificate's TXT record{}", with(&joined)),
                    acme.iter().map(txt).collect(),
                )
            }
        }
        "pending_validation" if points == Some(false) => (
            Owner::Tenant,
            format!("add the CNAME to {tgt}: the certificate is validated over HTTP through it"),
            vec![cname_record(host, target)],
        ),
        s if s.ends_with("timed_out") || s == "expired" => (
            Owner::Platform,
            format!(
                "certificate {s}: once the tenant's records are in place, run deploy-site for {host} again (it restarts validation){}",
                with(&joined)
            ),
            Vec::new(),
        ),
        _ if !joined.is_empty() => (
            Owner::Cloudflare,
            format!("certificate authority error: {joined}"),
            Vec::new(),
        ),
        _ => (
            Owner::Cloudflare,
            format!("issuance in progress (hostname {status}, certificate {ssl})"),
            Vec::new(),
        ),
    }
}

fn with(errors: &str) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(" ({errors})")
    }
}

#[derive(Debug, Serialize)]
struct DomainsReport {
    quota: Option<Quota>,
    fallback_origin: Option<String>,
    fallback_status: Option<String>,
    cname_target: Option<String>,
    /// Whether public DNS was looked up.
    dns: bool,
    /// Domains before the filters.
    total: usize,
    /// Shown domains where the tenant or the platform must act.
    needs_action: usize,
    #[serde(skip)]
    check: bool,
    domains: Vec<DomainRow>,
}

/// "used of allocated (hard cap N)", with what is billed.
pub fn quota_line(q: &Quota) -> String {
    let mut s = format!(
        "{} custom hostname(s) of {} included (hard cap {})",
        q.used, q.allocated, q.hard_cap
    );
    if q.billed_extra() > 0 {
        s.push_str(&format!(
            "; {} billed beyond the allocation, {}/month",
            q.billed_extra(),
            dollars(q.billed_extra() * PRICE_CENTS_PER_MONTH)
        ));
    }
    if q.near_hard_cap() {
        s.push_str("; near the hard cap");
    }
    s
}

pub fn dollars(cents: u64) -> String {
    format!("${}.{:02}", cents / 100, cents % 100)
}

impl Report for DomainsReport {
    fn render(&self, out: &mut Renderer) {
        if let Some(q) = &self.quota {
            out.line(format!("Quota: {}", quota_line(q)));
        }
        match (&self.fallback_origin, &self.fallback_status) {
            (Some(o), s) => out.line(format!(
                "Fallback origin: {o} ({})",
                s.as_deref().unwrap_or("unknown")
            )),
            (None, _) => out.line("Fallback origin: not set (run `cfsetup deploy-infra`)"),
        }
        if self.domains.is_empty() {
            out.line(if self.total == 0 {
                "No domains yet: attach one with `cfsetup deploy-site DIR TENANT DOMAIN`"
            } else {
                "No domain matches"
            });
            return;
        }
        out.line(format!(
            "{} domain(s), {} need action",
            self.domains.len(),
            self.needs_action
        ));
        out.table(
            &[
                "domain",
                "tenant",
                "hostname",
                "certificate",
                "owner",
                "action",
            ],
            self.domains
                .iter()
                .map(|d| {
                    let mut cert = d.certificate.clone().unwrap_or_default();
                    if let Some(m) = &d.method {
                        cert.push_str(&format!(" ({m})"));
                    }
                    if let Some(e) = &d.expires_on {
                        cert.push_str(&format!("\nexpires {}", e.get(..10).unwrap_or(e)));
                    }
                    let mut action = d.action.clone();
                    for r in &d.records {
                        action.push_str(&format!("\n{} {} {}", r.kind, r.name, r.value));
                    }
                    vec![
                        d.hostname.clone(),
                        d.tenant.clone().unwrap_or_else(|| "-".into()),
                        d.status.clone(),
                        cert,
                        d.owner.as_str().to_string(),
                        action,
                    ]
                })
                .collect(),
        );
    }
    fn to_json(&self) -> serde_json::Value {
        json_of(self)
    }
    fn exit_code(&self) -> u8 {
        u8::from(self.check && self.needs_action > 0)
    }
}

// ---- prune ----

async fn prune(args: PruneArgs, config: &Config, ui: &Ui) -> anyhow::Result<Box<dyn Report>> {
    let pending_for = args
        .pending_for
        .as_deref()
        .map(|v| config::duration(v, "--pending-for"))
        .transpose()?;
    let ask = crate::output::must_ask(
        args.yes,
        args.dry_run,
        "domains prune deletes custom hostnames",
        "cfsetup domains prune --dry-run",
    )?;
    let zone = zone(config)?;
    let opened = bucket::open(config, ui, &args.bucket, 16).await?;
    let (storage, bucket_name) = (&opened.storage, opened.bucket.as_str());
    let client = &opened.client;
    let (hosts, hostnames, quota) = tokio::try_join!(
        bucket::host_entries(storage, bucket_name, 32),
        bucket::all_custom_hostnames(client, &zone),
        async { Ok(client.quota(&zone).await.ok()) },
    )?;
    // Any entry, even an unreadable one, protects its hostname.
    let named: BTreeSet<String> = hosts.iter().map(|(h, _)| h.to_ascii_lowercase()).collect();
    let now = SystemTime::now();
    let age = |c: &CustomHostname| {
        c.created_at
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .and_then(|t| now.duration_since(t).ok())
    };
    let mut report = PruneReport {
        dry_run: args.dry_run,
        ..PruneReport::default()
    };
    let mut candidates = Vec::new();
    for c in hostnames {
        if named.contains(&c.hostname.to_ascii_lowercase()) {
            continue;
        }
        let old = age(&c);
        if old.is_none_or(|a| a < PRUNE_MIN_AGE) {
            report.skipped.push(Skipped {
                hostname: c.hostname.clone(),
                why: "created less than an hour ago (a deploy may be attaching it)".into(),
            });
            continue;
        }
        if let Some(p) = pending_for {
            if c.status.as_deref() == Some("active") || old.is_none_or(|a| a < p) {
                continue;
            }
        }
        candidates.push(c);
    }
    report.quota = quota;
    if candidates.is_empty() {
        return Ok(Box::new(report));
    }
    if ask {
        eprintln!(
            "Delete {} custom hostname(s) that no host entry names?",
            candidates.len()
        );
        for c in &candidates {
            eprintln!(
                "  {} ({})",
                c.hostname,
                c.status.as_deref().unwrap_or("unknown")
            );
        }
        if !crate::output::confirm("[y/N] ")? {
            anyhow::bail!("not confirmed; nothing was deleted");
        }
    }
    for c in candidates {
        if args.dry_run {
            report.deleted.push(Pruned::of(&c));
            continue;
        }
        // A deploy may have written the entry since the listing: read it again.
        // (A name no host entry can have, such as a wildcard, has none.)
        let entry = match Hostname::parse(&c.hostname, "a custom hostname") {
            Ok(host) => storage
                .get(&layout::host_key(&host))
                .await
                .map_err(|e| bucket::bucket_error(e, bucket_name, "reading a host entry"))?,
            Err(_) => None,
        };
        if entry.is_some() {
            report.skipped.push(Skipped {
                hostname: c.hostname.clone(),
                why: "a host entry names it now".into(),
            });
            continue;
        }
        match client.delete_custom_hostname(&zone, &c.id).await {
            Ok(()) => report.deleted.push(Pruned::of(&c)),
            Err(e) if e.is_not_found() => report.deleted.push(Pruned::of(&c)),
            Err(e) => {
                ui.warn(format!("deleting {}: {e}", c.hostname));
                report.failed.push(c.hostname.clone());
            }
        }
    }
    let n = report.deleted.len() as u64;
    report.saved_cents_per_month = quota.map(|q| n.min(q.billed_extra()) * PRICE_CENTS_PER_MONTH);
    Ok(Box::new(report))
}

#[derive(Debug, Serialize, Default)]
struct PruneReport {
    dry_run: bool,
    /// Deleted (or, with `--dry-run`, would be).
    deleted: Vec<Pruned>,
    skipped: Vec<Skipped>,
    failed: Vec<String>,
    quota: Option<Quota>,
    /// What the deletions save at $0.10 per hostname beyond the allocation; `None` when the
    /// quota could not be read.
    saved_cents_per_month: Option<u64>,
}

#[derive(Debug, Serialize)]
struct Pruned {
    hostname: String,
    id: String,
    status: Option<String>,
    created_at: Option<String>,
}

impl Pruned {
    fn of(c: &CustomHostname) -> Self {
        Pruned {
            hostname: c.hostname.clone(),
            id: c.id.clone(),
            status: c.status.clone(),
            created_at: c.created_at.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
struct Skipped {
    hostname: String,
    why: String,
}

impl Report for PruneReport {
    fn render(&self, out: &mut Renderer) {
        let verb = if self.dry_run {
            "Would delete"
        } else {
            "Deleted"
        };
        if self.deleted.is_empty() {
            out.line("No orphaned custom hostnames to delete");
        } else {
            out.line(format!("{verb} {} custom hostname(s):", self.deleted.len()));
            out.table(
                &["hostname", "status", "created"],
                self.deleted
                    .iter()
                    .map(|p| {
                        vec![
                            p.hostname.clone(),
                            p.status.clone().unwrap_or_default(),
                            p.created_at.clone().unwrap_or_default(),
                        ]
                    })
                    .collect(),
            );
        }
        for s in &self.skipped {
            out.line(format!("Kept {}: {}", s.hostname, s.why));
        }
        for f in &self.failed {
            out.line(format!("Failed to delete {f}"));
        }
        match self.saved_cents_per_month {
            Some(c) if !self.deleted.is_empty() => out.line(format!(
                "{} {}/month (at $0.10 per custom hostname beyond the allocation)",
                if self.dry_run { "Would save" } else { "Saves" },
                dollars(c)
            )),
            _ => {}
        }
    }
    fn to_json(&self) -> serde_json::Value {
        json_of(self)
    }
    fn exit_code(&self) -> u8 {
        u8::from(!self.failed.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloudflare::custom_hostnames::{OwnershipVerification, Ssl, ValidationRecord};

    fn ch(status: &str, ssl: &str, method: &str) -> CustomHostname {
        CustomHostname {
            id: "id".into(),
            hostname: "shop.acme.com".into(),
            status: Some(status.into()),
            ssl: Some(Ssl {
                status: Some(ssl.into()),
                method: Some(method.into()),
                validation_records: Some(vec![ValidationRecord {
                    txt_name: Some("_acme-challenge.shop.acme.com".into()),
                    txt_value: Some("dcv".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ownership_verification: Some(OwnershipVerification {
                kind: Some("txt".into()),
                name: Some("_cf-custom-hostname.shop.acme.com".into()),
                value: Some("own".into()),
            }),
            ..Default::default()
        }
    }

    fn facts<'a>(c: &'a CustomHostname, dns: Option<&'a Observed>) -> Facts<'a> {
        Facts {
            hostname: "shop.acme.com",
            ch: Some(c),
            tenant: Some(Some("acme".into())),
            fallback_status: Some("active"),
            target: Some("fallback.getai.page"),
            dns,
        }
    }

    #[test]
    fn the_fallback_origin_not_active_is_the_platforms_move() {
        let c = ch("pending", "pending_validation", "http");
        let mut f = facts(&c, None);
        f.fallback_status = Some("pending_deployment");
        let row = assess(&f);
        assert_eq!(row.owner, Owner::Platform);
        assert!(row.action.contains("pending_deployment"), "{}", row.action);
        f.fallback_status = None;
        assert!(assess(&f).action.contains("not set"));
        // An active one does not need the fallback origin's attention.
        let c = ch("active", "active", "http");
        let mut f = facts(&c, None);
        f.fallback_status = None;
        assert_eq!(assess(&f).owner, Owner::None);
    }

    #[test]
    fn moved_blocked_and_timed_out_have_their_owners() {
        let c = ch("moved", "active", "http");
        let row = assess(&facts(&c, None));
        assert_eq!(row.owner, Owner::Tenant);
        assert_eq!(row.records[0].kind, "CNAME");
        let c = ch("blocked", "pending_validation", "http");
        assert_eq!(assess(&facts(&c, None)).owner, Owner::Cloudflare);
        let c = ch("active", "validation_timed_out", "http");
        let row = assess(&facts(&c, None));
        assert_eq!(row.owner, Owner::Platform);
        assert!(row.action.contains("restarts validation"), "{}", row.action);
    }

    #[test]
    fn a_prevalidation_asks_for_txt_records_until_they_are_in_place() {
        let c = ch("pending", "pending_validation", "txt");
        let old_host = Observed {
            addresses: vec!["192.0.2.1".into()],
            ..Observed::default()
        };
        let row = assess(&facts(&c, Some(&old_host)));
        assert_eq!(row.owner, Owner::Tenant);
        let names: Vec<&str> = row.records.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "_cf-custom-hostname.shop.acme.com",
                "_acme-challenge.shop.acme.com"
            ]
        );
        // Both TXT records placed: Cloudflare's move.
        let placed = Observed {
            addresses: vec!["192.0.2.1".into()],
            ownership_txt: vec!["own".into()],
            acme_txt: vec!["dcv".into()],
            ..Observed::default()
        };
        assert_eq!(assess(&facts(&c, Some(&placed))).owner, Owner::Cloudflare);
        // Active with TXT validation, CNAME not switched yet: the tenant switches it.
        let c = ch("active", "active", "txt");
        let row = assess(&facts(&c, Some(&old_host)));
        assert_eq!(row.owner, Owner::Tenant);
        assert!(
            row.action.contains("now switch the CNAME"),
            "{}",
            row.action
        );
        assert!(!row.renews_by_itself);
        // Switched: the platform moves it to HTTP validation.
        let switched = Observed {
            cname: vec!["fallback.getai.page".into()],
            ..Observed::default()
        };
        assert_eq!(assess(&facts(&c, Some(&switched))).owner, Owner::Platform);
    }

    #[test]
    fn quota_lines_and_prices() {
        let q = Quota {
            allocated: 100,
            exceeded: true,
            hard_cap: 200,
            used: 190,
        };
        assert_eq!(
            quota_line(&q),
            "190 custom hostname(s) of 100 included (hard cap 200); 90 billed beyond the \
             allocation, $9.00/month; near the hard cap"
        );
        assert!(q.near_hard_cap() && !q.at_hard_cap());
        assert_eq!(dollars(5), "$0.05");
    }
}
