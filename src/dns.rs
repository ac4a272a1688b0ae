//! Public DNS lookups of tenants' domains, with hickory-resolver: what a domain's CNAME, A/AAAA
//! and TXT records say now, so `domains` can tell who must act and `deploy-site` knows when a
//! pre-validated domain's CNAME has moved to the platform.
//!
//! The resolver is the system's (`/etc/resolv.conf`), or one nameserver given with
//! `CFSETUP_DNS_SERVER=IP:PORT` (hidden flag `--dns-server`; tests point it at the emulator's DNS
//! server). A lookup that fails for another reason than "no such record" is kept as an error, so a
//! resolver outage never reads as "the record is missing".
//!
//! It must not import `commands` or `cloudflare`: it only answers questions about names.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use serde::Serialize;

/// A resolver, or none (`--no-dns`).
pub struct Dns {
    resolver: Option<TokioResolver>,
}

/// What public DNS says about one domain, as far as onboarding cares.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Observed {
    /// CNAME targets of the domain (lowercase, no trailing dot).
    pub cname: Vec<String>,
    /// A and AAAA addresses of the domain itself (not through a CNAME).
    pub addresses: Vec<String>,
    /// TXT values at `_cf-custom-hostname.<domain>` (ownership pre-validation).
    pub ownership_txt: Vec<String>,
    /// TXT values at `_acme-challenge.<domain>` (certificate validation by TXT).
    pub acme_txt: Vec<String>,
    /// A CNAME at `_acme-challenge.<domain>`: a delegation left by a previous host, which
    /// keeps the CA from seeing Cloudflare's token.
    pub acme_cname: Vec<String>,
    /// Lookups that failed for another reason than "no such record".
    pub errors: Vec<String>,
}

impl Observed {
    /// Whether the domain's CNAME points at `target`.
    pub fn points_at(&self, target: &str) -> bool {
        let t = normal(target);
        self.cname.contains(&t)
    }
}

fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl Dns {
    /// No lookups: every observation is `None`.
    pub fn off() -> Dns {
        Dns { resolver: None }
    }

    /// The system resolver, or `server` alone.
    pub fn new(server: Option<SocketAddr>) -> anyhow::Result<Dns> {
        let mut builder = match server {
            Some(addr) => TokioResolver::builder_with_config(
                ResolverConfig::from_parts(
                    None,
                    Vec::new(),
                    NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true),
                ),
                TokioConnectionProvider::default(),
            ),
            None => TokioResolver::builder_tokio().map_err(|e| {
                anyhow::anyhow!("reading the system's DNS configuration: {e}; pass --no-dns")
            })?,
        };
        // One short try each: a report waits for none of them for long.
        let opts = builder.options_mut();
        opts.timeout = Duration::from_secs(3);
        opts.attempts = 1;
        Ok(Dns {
            resolver: Some(builder.build()),
        })
    }

    pub fn enabled(&self) -> bool {
        self.resolver.is_some()
    }

    /// Looks `domain` up (six questions, at once); `None` without a resolver.
    pub async fn observe(&self, domain: &str) -> Option<Observed> {
        let r = self.resolver.as_ref()?;
        let d = normal(domain);
        let own = format!("_cf-custom-hostname.{d}");
        let acme = format!("_acme-challenge.{d}");
        let (cname, a, aaaa, own_txt, acme_txt, acme_cname) = tokio::join!(
            lookup(r, &d, RecordType::CNAME),
            lookup(r, &d, RecordType::A),
            lookup(r, &d, RecordType::AAAA),
            lookup(r, &own, RecordType::TXT),
            lookup(r, &acme, RecordType::TXT),
            lookup(r, &acme, RecordType::CNAME),
        );
        let mut out = Observed::default();
        let mut take = |got: Result<Vec<(RecordType, String)>, String>, want: RecordType| match got
        {
            Ok(v) => v
                .into_iter()
                .filter(|(t, _)| *t == want)
                .map(|(_, v)| v)
                .collect(),
            Err(e) => {
                out.errors.push(e);
                Vec::new()
            }
        };
        let cname = take(cname, RecordType::CNAME);
        let mut addresses = take(a, RecordType::A);
        addresses.extend(take(aaaa, RecordType::AAAA));
        let ownership_txt = take(own_txt, RecordType::TXT);
        let acme_txt = take(acme_txt, RecordType::TXT);
        let acme_cname = take(acme_cname, RecordType::CNAME);
        // An address reached through the CNAME is the target's, not the tenant's own record.
        if !cname.is_empty() {
            addresses.clear();
        }
        out.cname = cname;
        out.addresses = addresses;
        out.ownership_txt = ownership_txt;
        out.acme_txt = acme_txt;
        out.acme_cname = acme_cname;
        Some(out)
    }
}

/// One question; "no such name" and "no such record" are an empty answer.
async fn lookup(
    r: &TokioResolver,
    name: &str,
    kind: RecordType,
) -> Result<Vec<(RecordType, String)>, String> {
    match r.lookup(format!("{name}."), kind).await {
        Ok(found) => Ok(found
            .iter()
            .filter_map(|d| match d {
                RData::CNAME(c) => Some((RecordType::CNAME, normal(&c.0.to_ascii()))),
                RData::A(a) => Some((RecordType::A, a.0.to_string())),
                RData::AAAA(a) => Some((RecordType::AAAA, a.0.to_string())),
                RData::TXT(t) => Some((
                    RecordType::TXT,
                    t.txt_data()
                        .iter()
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .collect::<String>(),
                )),
                _ => None,
            })
            .collect()),
        Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
        Err(e) => Err(format!("{kind} {name}: {e}")),
    }
}

/// `CFSETUP_DNS_SERVER` / `--dns-server`: `IP:PORT`, or an IP (port 53).
pub fn server(value: &str) -> Result<SocketAddr, crate::error::UsageError> {
    let v = value.trim();
    v.parse::<SocketAddr>()
        .or_else(|_| {
            v.parse::<std::net::IpAddr>()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .map_err(|_| {
            let shown = crate::error::shown(value);
            crate::error::usage!("CFSETUP_DNS_SERVER {shown} is not an address")
                .with_hint("give IP:PORT, such as 127.0.0.1:5353, or an IP for port 53")
        })
}
