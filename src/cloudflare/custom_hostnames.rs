//! Cloudflare for SaaS custom hostnames, their quota and the fallback origin
//! (docs/cloudflare-api.md §10). Owns the wire types of these endpoints; imports nothing from
//! `commands`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{seg, Client, Error, Req};

/// A custom hostname (TS SDK `custom-hostnames.ts`; cf-go v0 fixtures). Only the fields cfsetup
/// reads; everything is optional because the POST result may lack parts that GET has.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct CustomHostname {
    pub id: String,
    pub hostname: String,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub ssl: Option<Ssl>,
    #[serde(default)]
    pub ownership_verification: Option<OwnershipVerification>,
    #[serde(default)]
    pub verification_errors: Option<Vec<String>>,
    #[serde(default)]
    pub custom_metadata: Option<Value>,
    /// RFC 3339 (TS SDK `CustomHostnameListResponse.created_at`).
    #[serde(default)]
    pub created_at: Option<String>,
}

impl CustomHostname {
    /// `verification_errors`, then the messages of `ssl.validation_errors`.
    pub fn errors(&self) -> Vec<String> {
        let mut out: Vec<String> = self.verification_errors.clone().unwrap_or_default();
        if let Some(ssl) = &self.ssl {
            out.extend(
                ssl.validation_errors
                    .iter()
                    .flatten()
                    .filter_map(|e| e.message.clone()),
            );
        }
        out
    }

    /// `ssl.method`, if known.
    pub fn ssl_method(&self) -> Option<&str> {
        self.ssl.as_ref()?.method.as_deref()
    }

    /// `custom_metadata.tenant`, if set.
    pub fn metadata_tenant(&self) -> Option<&str> {
        self.custom_metadata.as_ref()?.get("tenant")?.as_str()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct Ssl {
    #[serde(default)]
    pub status: Option<String>,
    /// `dv`; sent back unchanged when the method changes.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// When the certificate expires (RFC 3339; TS SDK `ssl.expires_on`).
    #[serde(default)]
    pub expires_on: Option<String>,
    #[serde(default)]
    pub wildcard: Option<bool>,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub validation_records: Option<Vec<ValidationRecord>>,
    #[serde(default)]
    pub validation_errors: Option<Vec<ValidationError>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct ValidationRecord {
    #[serde(default)]
    pub txt_name: Option<String>,
    #[serde(default)]
    pub txt_value: Option<String>,
    #[serde(default)]
    pub http_url: Option<String>,
    #[serde(default)]
    pub http_body: Option<String>,
    #[serde(default)]
    pub cname: Option<String>,
    #[serde(default)]
    pub cname_target: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct ValidationError {
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct OwnershipVerification {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

/// `GET /zones/{zone_id}/custom_hostnames/quota` (docs/cloudflare-api.md §10 "Quota"; API reference
/// developers.cloudflare.com/api/resources/custom_hostnames/subresources/quota/methods/get): "The
/// allocated quota is a soft limit; creating custom hostnames after usage exceeds this limit can
/// still succeed until the hard cap is reached."
#[derive(Debug, Clone, Copy, Deserialize, Serialize, Default, PartialEq, Eq)]
pub struct Quota {
    /// Included in the plan; each one beyond is billed.
    #[serde(default)]
    pub allocated: u64,
    /// `used > allocated`.
    #[serde(default)]
    pub exceeded: bool,
    /// Creates are refused from here on.
    #[serde(default)]
    pub hard_cap: u64,
    /// Custom hostnames in the zone, pending ones included (they are billed until deleted:
    /// `cloudflare-for-saas/quotas-and-billing.mdx`).
    #[serde(default)]
    pub used: u64,
}

/// The documented price of a custom hostname beyond the allocation, in US cents a month
/// (docs/cloudflare-api.md §10 "Plans"; cloudflare-docs `src/content/plans/index.json`,
/// `ssl.z_custom_hostnames`: $0.10 per extra hostname per month).
pub const PRICE_CENTS_PER_MONTH: u64 = 10;

impl Quota {
    /// At or past 90% of the hard cap.
    pub fn near_hard_cap(&self) -> bool {
        self.hard_cap > 0 && self.used.saturating_mul(10) >= self.hard_cap.saturating_mul(9)
    }

    /// No create will be accepted.
    pub fn at_hard_cap(&self) -> bool {
        self.hard_cap > 0 && self.used >= self.hard_cap
    }

    /// Hostnames billed beyond the allocation.
    pub fn billed_extra(&self) -> u64 {
        self.used.saturating_sub(self.allocated)
    }
}

/// An API refusal of a create for the quota: 403 / 1405 "quota exceeded", or 1404 (the zone has no
/// custom hostname quota at all), per the status-codes page
/// (developers.cloudflare.com/cloudflare-for-platforms/cloudflare-for-saas/reference/status-codes/custom-hostnames/).
pub fn is_quota_refusal(e: &Error) -> bool {
    e.has_code(1405) || e.has_code(1404)
}

/// The hostnames in listing order, each id once (the first seen): a create or delete between two
/// page reads shifts the later pages by one, so a hostname can appear on two pages.
pub fn dedup_by_id(all: impl IntoIterator<Item = CustomHostname>) -> Vec<CustomHostname> {
    let mut seen = std::collections::HashSet::new();
    all.into_iter()
        .filter(|c| seen.insert(c.id.clone()))
        .collect()
}

/// `…/custom_hostnames/fallback_origin` (TS SDK `fallback-origin.ts`).
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct FallbackOrigin {
    #[serde(default)]
    pub origin: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub errors: Option<Vec<String>>,
}

impl Client {
    /// Finds a custom hostname by exact name. Sends the plain `hostname` filter, which the docs
    /// describe (whether `hostname.exact` is needed is open question 9), and matches exactly on
    /// this side, so it is right whichever filter the server applies.
    pub async fn find_custom_hostname(
        &self,
        zone: &str,
        hostname: &str,
    ) -> Result<Option<CustomHostname>, Error> {
        let all: Vec<CustomHostname> = self
            .paged(
                || Req::get(format!("/zones/{zone}/custom_hostnames")).query("hostname", hostname),
                50,
            )
            .await?;
        Ok(all
            .into_iter()
            .find(|c| c.hostname.eq_ignore_ascii_case(hostname)))
    }

    /// `GET /zones/{zone_id}/custom_hostnames?per_page=…` (one page only; for the read check).
    pub async fn list_custom_hostnames_page(
        &self,
        zone: &str,
        per_page: u32,
    ) -> Result<Vec<CustomHostname>, Error> {
        self.call(Req::get(format!("/zones/{zone}/custom_hostnames")).query("per_page", per_page))
            .await
    }

    /// `POST /zones/{zone_id}/custom_hostnames` → 201; `ssl: {method, type: "dv"}` where `method`
    /// is `http` (validated once the CNAME is in place) or `txt` (pre-validation: the
    /// `_acme-challenge` TXT record, before traffic moves; docs/cloudflare-api.md §10
    /// "Certificate validation"). 409/1406 means it exists; 403/1405 the quota is full
    /// ([`is_quota_refusal`]). The result may lack validation records: read it back with GET.
    pub async fn create_custom_hostname(
        &self,
        zone: &str,
        hostname: &str,
        method: &str,
        metadata: Option<Value>,
    ) -> Result<CustomHostname, Error> {
        let mut body = serde_json::json!({
            "hostname": hostname,
            "ssl": { "method": method, "type": "dv" },
        });
        if let Some(m) = metadata {
            body["custom_metadata"] = m;
        }
        self.call(Req::post(format!("/zones/{zone}/custom_hostnames")).json(&body))
            .await
    }

    /// `POST /zones/{zone_id}/custom_hostnames` with a body the product refuses for its content:
    /// the SSL and Certificates Write probe. Returns the raw outcome for the caller to classify.
    pub async fn probe_custom_hostname_create(&self, zone: &str) -> Result<Value, Error> {
        self.call(
            Req::post(format!("/zones/{zone}/custom_hostnames"))
                .json(&serde_json::json!({ "hostname": "" })),
        )
        .await
    }

    /// `GET /zones/{zone_id}/custom_hostnames/{id}`.
    pub async fn get_custom_hostname(&self, zone: &str, id: &str) -> Result<CustomHostname, Error> {
        self.call(Req::get(format!(
            "/zones/{zone}/custom_hostnames/{}",
            seg(id)
        )))
        .await
    }

    /// `PATCH /zones/{zone_id}/custom_hostnames/{id} {ssl: {method, type: "dv"}}` → 202. An `ssl`
    /// equal to the current one restarts domain control validation ("common API calls": an edit
    /// "sent with an ssl object that matches the existing value, indicates that hostname should
    /// restart domain control validation (DCV)"); another method switches to it (docs/cloudflare-api.md
    /// §10).
    pub async fn set_validation_method(
        &self,
        zone: &str,
        id: &str,
        method: &str,
    ) -> Result<CustomHostname, Error> {
        self.call(
            Req::new(
                reqwest::Method::PATCH,
                format!("/zones/{zone}/custom_hostnames/{}", seg(id)),
            )
            .json(&serde_json::json!({ "ssl": { "method": method, "type": "dv" } })),
        )
        .await
    }

    /// `GET /zones/{zone_id}/custom_hostnames/quota`: used, allocated and hard cap (SSL and
    /// Certificates Read or Write). `doctor` and `domains` show it; `deploy-site` checks it before
    /// creating a custom hostname.
    pub async fn quota(&self, zone: &str) -> Result<Quota, Error> {
        self.call(Req::get(format!("/zones/{zone}/custom_hostnames/quota")))
            .await
    }

    /// Every custom hostname of the zone, in one paged listing (50 a page, the most the endpoint
    /// serves): the first page, then the rest `concurrency` at once. The result is de-duplicated
    /// by id, first seen wins, since a hostname created or deleted while the pages are read shifts
    /// the later pages by one (docs/domains.md "Listing").
    pub async fn all_custom_hostnames(
        &self,
        zone: &str,
        concurrency: usize,
    ) -> Result<Vec<CustomHostname>, Error> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        const PER_PAGE: u64 = 50;
        let page = |n: u64| {
            Req::get(format!("/zones/{zone}/custom_hostnames"))
                .query("page", n)
                .query("per_page", PER_PAGE)
        };
        let (first, info): (Vec<CustomHostname>, _) = self.call_with_info(page(1)).await?;
        let info = info.unwrap_or_default();
        let served = info.per_page.unwrap_or(PER_PAGE).max(1);
        let pages = match (info.total_pages, info.total_count) {
            (Some(p), _) => p,
            (None, Some(total)) => total.div_ceil(served),
            (None, None) => 1,
        }
        .min(10_000);
        let rest: Vec<Vec<CustomHostname>> = stream::iter(2..=pages)
            .map(|n| async move {
                self.call_with_info::<Vec<CustomHostname>>(page(n))
                    .await
                    .map(|(items, _)| items)
            })
            .buffered(concurrency.max(1))
            .try_collect()
            .await?;
        Ok(dedup_by_id(
            first.into_iter().chain(rest.into_iter().flatten()),
        ))
    }

    /// `DELETE /zones/{zone_id}/custom_hostnames/{id}`; the answer may be a bare `{id}`.
    pub async fn delete_custom_hostname(&self, zone: &str, id: &str) -> Result<(), Error> {
        self.call::<Value>(Req::delete(format!(
            "/zones/{zone}/custom_hostnames/{}",
            seg(id)
        )))
        .await
        .map(|_| ())
    }

    /// `GET /zones/{zone_id}/custom_hostnames/fallback_origin`; `None` when none is set (404, or
    /// a result without `origin`).
    pub async fn get_fallback_origin(&self, zone: &str) -> Result<Option<FallbackOrigin>, Error> {
        let got: Option<Option<FallbackOrigin>> = self
            .call_optional(Req::get(format!(
                "/zones/{zone}/custom_hostnames/fallback_origin"
            )))
            .await?;
        Ok(got.flatten().filter(|f| f.origin.is_some()))
    }

    /// `PUT /zones/{zone_id}/custom_hostnames/fallback_origin {origin}`; needs SSL and
    /// Certificates Write. The origin must be a proxied A/AAAA/CNAME record in the zone.
    pub async fn put_fallback_origin(
        &self,
        zone: &str,
        origin: &str,
    ) -> Result<FallbackOrigin, Error> {
        self.call(
            Req::put(format!("/zones/{zone}/custom_hostnames/fallback_origin"))
                .json(&serde_json::json!({ "origin": origin })),
        )
        .await
    }

    /// `DELETE /zones/{zone_id}/custom_hostnames/fallback_origin` (docs/cloudflare-api.md §10; TS SDK
    /// `fallback-origin.ts` `delete`). None set (404) is fine: the result is the same.
    pub async fn delete_fallback_origin(&self, zone: &str) -> Result<(), Error> {
        self.call_optional::<Value>(Req::delete(format!(
            "/zones/{zone}/custom_hostnames/fallback_origin"
        )))
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostname_seen_on_two_pages_is_listed_once() {
        let h = |id: &str, name: &str| CustomHostname {
            id: id.into(),
            hostname: name.into(),
            ..CustomHostname::default()
        };
        // Page 1 ends with b; a delete before page 2 shifts b onto page 2 as well.
        let pages = vec![h("1", "a"), h("2", "b"), h("2", "b"), h("3", "c")];
        let names: Vec<String> = dedup_by_id(pages).into_iter().map(|c| c.hostname).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn the_quota_answer_decodes() {
        let q: Quota = serde_json::from_str(
            r#"{"allocated": 100, "exceeded": false, "hard_cap": 200, "used": 50}"#,
        )
        .unwrap();
        assert_eq!(
            (q.allocated, q.hard_cap, q.used, q.exceeded),
            (100, 200, 50, false)
        );
        assert!(!q.near_hard_cap() && !q.at_hard_cap());
        assert_eq!(q.billed_extra(), 0);
    }
}
