//! DNS records of the zone, read only: `deploy-infra` lists the proxied hostnames that its `*/*`
//! route would capture (docs/cloudflare-api.md §9 "Why Cloudflare for SaaS needs `*/*`").
//!
//! `GET /zones/{zone_id}/dns_records` needs DNS Read on the zone, which is not one of the 8
//! permissions (Zone Read does not include it), so a refusal is expected and reported, not an
//! error (Cloudflare API reference "List DNS Records";
//! https://developers.cloudflare.com/api/resources/dns/subresources/records/methods/list/).
//! This module must not import commands, reports or output.

use serde::Deserialize;

use super::{Client, Error, Req};

/// One DNS record, the fields deploy-infra reads.
#[derive(Debug, Clone, Deserialize)]
pub struct DnsRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub proxied: bool,
}

impl Client {
    /// `GET /zones/{zone_id}/dns_records`, every page (100 a page).
    pub async fn list_dns_records(&self, zone_id: &str) -> Result<Vec<DnsRecord>, Error> {
        self.paged(|| Req::get(format!("/zones/{zone_id}/dns_records")), 100)
            .await
    }
}
