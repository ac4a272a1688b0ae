//! The tenant's custom domain: find or create its custom hostname, work out the DNS records the
//! tenant adds, and wait for it to become active (docs/cloudflare-api.md §10).
//!
//! `--prevalidate` (docs/domains.md "Zero-downtime onboarding"): the hostname is created with
//! `ssl.method: txt`, so both its ownership (`ownership_verification`, `_cf-custom-hostname.<d>`)
//! and its certificate (`ssl.validation_records[].txt_name`, `_acme-challenge.<d>`) are proven by
//! TXT records while the tenant's old host still serves (cloudflare-for-saas
//! `domain-support/hostname-validation/pre-validation.mdx`; `issue-and-validate/validate-certificates/`:
//! "TXT validation: Have your customers add a TXT record to their authoritative DNS"). Once the
//! CNAME points at the platform, the certificate is moved to HTTP validation with a PATCH: TXT
//! tokens are valid 7 (Let's Encrypt) or 14 days (Google Trust Services)
//! (`reference/token-validity-periods`), so a TXT certificate's renewal 60 days on needs new TXT
//! records, while "specific (non-wildcard) custom hostnames can use HTTP based DCV for
//! certificate renewals, as long as the hostname is pointing to the SaaS provider [and] proxying
//! through the Cloudflare network" (`validate-certificates/`; `renew-certificates/`: HTTP DCV is
//! performed automatically for an active non-wildcard hostname).
//!
//! It imports the custom-hostname API, `dns` and `names`: no storage, no report.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cloudflare::custom_hostnames::CustomHostname;

use super::{Deploy, DeployReport};
use crate::names::Hostname;

impl Deploy<'_> {
    /// Finds or creates DOMAIN's custom hostname, works out the DNS records, and waits if asked.
    pub(super) async fn custom_hostname(
        &self,
        domain: &str,
        report: &mut DeployReport,
    ) -> anyhow::Result<HostnameReport> {
        let client = self.client;
        let zone = self.input.zone.as_deref().unwrap_or_default();
        let prevalidate = self.input.prevalidate;
        let method = if prevalidate { "txt" } else { "http" };
        // The list answer carries the same fields as GET (docs/cloudflare-api.md §10), so a found
        // hostname needs no second read.
        let (mut ch, action) = match client.find_custom_hostname(zone, domain).await? {
            Some(ch) => (ch, "exists"),
            None => match client
                .create_custom_hostname(zone, domain, method, None)
                .await
            {
                // The POST answer may lack the validation records: read it back.
                Ok(created) => (
                    client.get_custom_hostname(zone, &created.id).await?,
                    "created",
                ),
                // 409/1406: created meanwhile (or by an earlier run whose answer was lost).
                Err(e) if e.status() == Some(409) || e.has_code(1406) => {
                    match client.find_custom_hostname(zone, domain).await? {
                        Some(ch) => (ch, "exists"),
                        None => return Err(e.into()),
                    }
                }
                // 403/1405: the quota's hard cap (the plan's check raced another create).
                Err(e) if crate::cloudflare::custom_hostnames::is_quota_refusal(&e) => {
                    return Err(anyhow::Error::new(e).context(QUOTA_HINT));
                }
                Err(e) => return Err(e.into()),
            },
        };
        let mut notes: Vec<String> = Vec::new();
        if action == "exists" && !is_active(&ch) {
            let current = ch.ssl_method().unwrap_or("http").to_string();
            let timed_out = ssl_status(&ch).is_some_and(|s| s.ends_with("timed_out"));
            let want = if prevalidate { "txt" } else { current.as_str() };
            // A PATCH with the same ssl restarts validation; another method switches to it
            // (docs/cloudflare-api.md §10).
            if want != current || timed_out {
                client.set_validation_method(zone, &ch.id, want).await?;
                ch = client.get_custom_hostname(zone, &ch.id).await?;
                let said = if want != current {
                    format!(
                        "{domain}: certificate validation switched to {}",
                        want.to_ascii_uppercase()
                    )
                } else {
                    format!("{domain}: certificate validation had timed out; restarted it")
                };
                self.ui.note(&said);
                notes.push(said);
            }
        }
        // The CNAME target costs a request, made only when the tenant still has records to add.
        let target = match &self.input.cname_target {
            Some(t) => Some(t.clone()),
            // Also for an active TXT certificate: whether the CNAME points here decides its move
            // to HTTP validation.
            None if !is_active(&ch) || ch.ssl_method() == Some("txt") => self
                .fallback_origin
                .get_or_try_init(|| async {
                    Ok::<_, crate::cloudflare::Error>(
                        client
                            .get_fallback_origin(zone)
                            .await?
                            .and_then(|f| f.origin)
                            .and_then(|o| Hostname::parse(&o, "the fallback origin").ok()),
                    )
                })
                .await?
                .clone(),
            None => None,
        };
        if target.is_none() && !is_active(&ch) {
            self.ui.warn(
                "the zone has no custom-hostname fallback origin, so there is no CNAME target yet: \
                 run `cfsetup deploy-infra`",
            );
        }
        let txt_method = ch.ssl_method() == Some("txt");
        let mut waited = None;
        if let Some(within) = self.input.wait {
            if !is_active(&ch) {
                // The tenant needs the records now, not when the wait is over.
                for r in ordered(
                    dns_records(&ch, domain, target.as_deref(), false),
                    txt_method,
                ) {
                    self.ui
                        .note(format!("add {} {} -> {}", r.kind, r.name, r.value));
                }
            }
            let (latest, outcome) = self.wait_active(zone, ch, within).await?;
            ch = latest;
            waited = Some(outcome);
        }
        // A TXT certificate on an active hostname: once the CNAME points at the platform, move it
        // to HTTP validation so that renewals need nothing from the tenant.
        let mut moved_to_http = false;
        let mut next = None;
        if is_active(&ch) && ch.ssl_method() == Some("txt") {
            let points = match (&target, self.dns()) {
                (Some(t), Some(dns)) => dns.observe(domain).await.map(|o| o.points_at(t)),
                _ => None,
            };
            match points {
                Some(true) => {
                    client.set_validation_method(zone, &ch.id, "http").await?;
                    ch = client.get_custom_hostname(zone, &ch.id).await?;
                    moved_to_http = true;
                    let said = format!(
                        "{domain} points at the platform: its certificate moved to HTTP validation, \
                         so renewals need no new TXT records"
                    );
                    self.ui.note(&said);
                    notes.push(said);
                }
                _ => {
                    let t = target.as_deref().unwrap_or("the fallback origin");
                    let said = format!(
                        "{domain} and its certificate are active: now switch the CNAME of {domain} \
                         to {t}; then run this command again, which moves the certificate to HTTP \
                         validation (renewals)"
                    );
                    self.ui.note(&said);
                    next = Some(said);
                }
            }
        }
        let txt_method = ch.ssl_method() == Some("txt");
        let dns = ordered(
            dns_records(&ch, domain, target.as_deref(), is_active(&ch)),
            txt_method,
        );
        let mut out = HostnameReport::from(&ch, action, dns);
        out.wait = waited;
        out.validation = ch.ssl_method().map(str::to_string);
        out.moved_to_http = moved_to_http;
        out.next = next;
        out.notes = notes;
        if txt_method && !is_active(&ch) {
            out.steps = prevalidation_steps(domain, target.as_deref());
        }
        if out.wait.as_deref() == Some("timed out") {
            report.fail(format!(
                "{domain} is not active yet: --wait timed out; still pending: {}",
                out.pending.join(", ")
            ));
        }
        Ok(out)
    }

    /// The resolver for the CNAME check, if lookups are on.
    fn dns(&self) -> Option<crate::dns::Dns> {
        if self.input.no_dns {
            return None;
        }
        match crate::dns::Dns::new(self.input.dns_server) {
            Ok(d) => Some(d),
            Err(e) => {
                self.ui.note(format!("no DNS lookups: {e:#}"));
                None
            }
        }
    }

    /// Polls the hostname with backoff until it and its certificate are active, or `within`
    /// runs out. Status changes and verification errors go to stderr.
    pub(super) async fn wait_active(
        &self,
        zone: &str,
        mut ch: CustomHostname,
        within: Duration,
    ) -> anyhow::Result<(CustomHostname, String)> {
        let deadline = Instant::now() + within;
        let mut delay = Duration::from_secs(1);
        let mut last = describe_status(&ch);
        let mut last_errors: Vec<String> = Vec::new();
        self.ui.note(format!(
            "waiting up to {} for {}: {last}",
            humantime::format_duration(within),
            ch.hostname
        ));
        while !is_active(&ch) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let pending = pending_parts(&ch).join(", ");
                self.ui.warn(format!(
                    "timed out after {} waiting for {}; still pending: {pending}",
                    humantime::format_duration(within),
                    ch.hostname
                ));
                return Ok((ch, "timed out".into()));
            }
            tokio::time::sleep(delay.min(left)).await;
            delay = (delay * 2).min(Duration::from_secs(30));
            ch = self.client.get_custom_hostname(zone, &ch.id).await?;
            let now = describe_status(&ch);
            if now != last {
                self.ui.note(format!("{}: {now}", ch.hostname));
                last = now;
            }
            let errors = verification_errors(&ch);
            if !errors.is_empty() && errors != last_errors {
                for e in &errors {
                    self.ui.warn(format!("{}: {e}", ch.hostname));
                }
            }
            last_errors = errors;
        }
        Ok((ch, "active".into()))
    }
}

pub(super) fn ssl_status(ch: &CustomHostname) -> Option<&str> {
    ch.ssl.as_ref().and_then(|s| s.status.as_deref())
}

pub(super) fn is_active(ch: &CustomHostname) -> bool {
    ch.status.as_deref() == Some("active") && ssl_status(ch) == Some("active")
}

pub(super) fn describe_status(ch: &CustomHostname) -> String {
    format!(
        "hostname {}, certificate {}",
        ch.status.as_deref().unwrap_or("unknown"),
        ssl_status(ch).unwrap_or("unknown")
    )
}

pub(super) fn pending_parts(ch: &CustomHostname) -> Vec<String> {
    let mut out = Vec::new();
    if ch.status.as_deref() != Some("active") {
        out.push(format!(
            "hostname {}",
            ch.status.as_deref().unwrap_or("unknown")
        ));
    }
    if ssl_status(ch) != Some("active") {
        out.push(format!(
            "certificate {}",
            ssl_status(ch).unwrap_or("unknown")
        ));
    }
    out
}

pub(super) fn verification_errors(ch: &CustomHostname) -> Vec<String> {
    ch.errors()
}

/// What to do when the API refuses a create for the quota, or the plan finds it full.
pub(super) const QUOTA_HINT: &str = "the zone's custom hostname quota is at its hard cap: delete \
 unused custom hostnames (`cfsetup domains prune`; `cfsetup domains` lists them), or ask \
 Cloudflare to raise the cap (above 50,000 is Enterprise)";

/// With TXT validation the TXT records come first and the CNAME last: it is switched only once
/// the hostname and its certificate are active.
fn ordered(mut records: Vec<DnsRecord>, txt_method: bool) -> Vec<DnsRecord> {
    if txt_method {
        records.sort_by_key(|r| r.kind == "CNAME");
        for r in records.iter_mut().filter(|r| r.kind == "CNAME") {
            r.purpose = "switch it last, once the hostname and certificate are active".into();
        }
    }
    records
}

/// The order of a pre-validation, as printed.
pub(super) fn prevalidation_steps(domain: &str, target: Option<&str>) -> Vec<String> {
    let t = target.unwrap_or("the fallback origin");
    vec![
        format!(
            "1. Add both TXT records (_cf-custom-hostname.{domain} and _acme-challenge.{domain}) \
             at the tenant's DNS provider; leave the current records serving."
        ),
        format!(
            "2. Wait until the hostname and its certificate are active: run again with --wait, \
             or watch `cfsetup domains`."
        ),
        format!("3. Then switch the CNAME of {domain} to {t}: traffic moves onto a certificate already issued."),
        "4. Run this command again: it moves the certificate to HTTP validation, so renewals need no new TXT records.".to_string(),
    ]
}

/// A DNS record the tenant adds at their DNS provider.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DnsRecord {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub value: String,
    pub purpose: String,
}

/// The records for a custom hostname: the CNAME to the platform, the ownership TXT, and any
/// certificate validation records (docs/cloudflare-api.md §10: `ownership_verification`,
/// `ssl.validation_records` with `txt_name`/`txt_value` or `http_url`/`http_body`).
pub(super) fn dns_records(
    ch: &CustomHostname,
    domain: &str,
    target: Option<&str>,
    active: bool,
) -> Vec<DnsRecord> {
    let mut out = Vec::new();
    let cname = match (target, active) {
        (Some(t), _) => t.to_string(),
        // Active, and the target was not worth a request: nothing to show.
        (None, true) => return out,
        (None, false) => "(no fallback origin yet: run `cfsetup deploy-infra`)".into(),
    };
    out.push(DnsRecord {
        kind: "CNAME".into(),
        name: domain.into(),
        value: cname,
        purpose: "sends the domain's traffic to the platform".into(),
    });
    if let Some(ov) = &ch.ownership_verification {
        if let (Some(name), Some(value)) = (&ov.name, &ov.value) {
            out.push(DnsRecord {
                kind: ov.kind.as_deref().unwrap_or("txt").to_ascii_uppercase(),
                name: name.clone(),
                value: value.clone(),
                purpose: "proves the domain is the tenant's".into(),
            });
        }
    }
    for r in ch
        .ssl
        .iter()
        .flat_map(|s| s.validation_records.iter().flatten())
    {
        if let (Some(name), Some(value)) = (&r.txt_name, &r.txt_value) {
            out.push(DnsRecord {
                kind: "TXT".into(),
                name: name.clone(),
                value: value.clone(),
                purpose: "lets the certificate be issued".into(),
            });
        }
        if let (Some(url), Some(body)) = (&r.http_url, &r.http_body) {
            out.push(DnsRecord {
                kind: "HTTP".into(),
                name: url.clone(),
                value: body.clone(),
                purpose: "certificate check, served by Cloudflare once the CNAME is in place"
                    .into(),
            });
        }
    }
    out
}

/// Whether `domain` is probably a zone apex, where most DNS providers refuse a CNAME: two labels,
/// or three under a common two-label public suffix (`example.co.uk`).
pub(super) fn looks_like_apex(domain: &str) -> bool {
    const TWO_LABEL_SUFFIXES: [&str; 12] = [
        "co.uk", "org.uk", "ac.uk", "com.au", "net.au", "org.au", "co.nz", "co.jp", "com.br",
        "co.za", "com.cn", "co.in",
    ];
    let labels: Vec<&str> = domain.split('.').collect();
    match labels.len() {
        2 => true,
        3 => TWO_LABEL_SUFFIXES.contains(&format!("{}.{}", labels[1], labels[2]).as_str()),
        _ => false,
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub(super) struct HostnameReport {
    pub(super) hostname: String,
    /// `created`, `exists` or `would create`.
    pub(super) action: String,
    pub(super) id: Option<String>,
    pub(super) status: Option<String>,
    pub(super) ssl_status: Option<String>,
    pub(super) dns_records: Vec<DnsRecord>,
    pub(super) apex: bool,
    pub(super) verification_errors: Vec<String>,
    /// Why the API refused the custom hostname (an authorisation refusal, 1409, 1411, …): not a
    /// verification error, which is the hostname's own state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) error: Option<String>,
    /// `active` or `timed out` after `--wait`.
    pub(super) wait: Option<String>,
    /// What is not active yet.
    pub(super) pending: Vec<String>,
    /// `ssl.method`: `http` or `txt` (pre-validation).
    pub(super) validation: Option<String>,
    /// The certificate was moved from TXT to HTTP validation in this run.
    pub(super) moved_to_http: bool,
    /// The order of steps of a pre-validation still under way.
    pub(super) steps: Vec<String>,
    /// What the tenant does next ("now switch the CNAME …").
    pub(super) next: Option<String>,
    /// Changes made to an existing hostname (validation switched or restarted).
    pub(super) notes: Vec<String>,
}

impl HostnameReport {
    pub(super) fn from(ch: &CustomHostname, action: &str, dns_records: Vec<DnsRecord>) -> Self {
        HostnameReport {
            hostname: ch.hostname.clone(),
            action: action.into(),
            id: Some(ch.id.clone()),
            status: ch.status.clone(),
            ssl_status: ssl_status(ch).map(str::to_string),
            apex: looks_like_apex(&ch.hostname),
            dns_records,
            verification_errors: verification_errors(ch),
            error: None,
            wait: None,
            pending: if is_active(ch) {
                Vec::new()
            } else {
                pending_parts(ch)
            },
            ..HostnameReport::default()
        }
    }
}
