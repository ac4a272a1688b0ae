//! What `deploy-infra` hands back: one row per resource (the bucket, the Worker, each route, the
//! fallback origin) with the action taken, and the names it worked with. The table and `--json`
//! are both rendered from [`DeployInfraReport`], so they carry the same data.
//!
//! It imports only `output` and `platform`'s advice: no requests.

use serde::Serialize;

use crate::output::{json_of, Renderer, Report};

/// Which kind of resource a row is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resource {
    Bucket,
    Worker,
    Route,
    FallbackOrigin,
}

impl Resource {
    fn label(self) -> &'static str {
        match self {
            Resource::Bucket => "R2 bucket",
            Resource::Worker => "Worker",
            Resource::Route => "route",
            Resource::FallbackOrigin => "fallback origin",
        }
    }
}

/// What happened to a resource (or, with `--dry-run`, what would).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Action {
    #[serde(rename = "created")]
    Created,
    #[serde(rename = "updated")]
    Updated,
    #[serde(rename = "would create")]
    WouldCreate,
    #[serde(rename = "would update")]
    WouldUpdate,
    #[serde(rename = "unchanged")]
    Unchanged,
    /// Nothing to do, by design (e.g. no fallback origin was asked for and none is set).
    #[serde(rename = "skipped")]
    Skipped,
    /// Held by something cfsetup must not take without being told (another Worker's route, a
    /// bucket in another jurisdiction). Nothing was written.
    #[serde(rename = "conflict")]
    Conflict,
    #[serde(rename = "failed")]
    Failed,
    /// Not attempted because a step it depends on did not succeed.
    #[serde(rename = "not run")]
    NotRun,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::WouldCreate => "would create",
            Action::WouldUpdate => "would update",
            Action::Unchanged => "unchanged",
            Action::Skipped => "skipped",
            Action::Conflict => "conflict",
            Action::Failed => "failed",
            Action::NotRun => "not run",
        }
    }

    /// The create/update verb for this run: done, or only planned.
    pub fn create(dry_run: bool) -> Self {
        if dry_run {
            Action::WouldCreate
        } else {
            Action::Created
        }
    }

    pub fn update(dry_run: bool) -> Self {
        if dry_run {
            Action::WouldUpdate
        } else {
            Action::Updated
        }
    }

    /// The resource is in the wanted state (or would be, in a dry run).
    pub fn is_ok(self) -> bool {
        !matches!(self, Action::Conflict | Action::Failed | Action::NotRun)
    }
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub resource: Resource,
    pub name: String,
    pub action: Action,
    pub detail: String,
}

impl Row {
    /// The kind of resource, in words ("R2 bucket", "Worker", "route", "fallback origin").
    pub fn resource_label(&self) -> &'static str {
        self.resource.label()
    }

    pub fn new(
        resource: Resource,
        name: impl Into<String>,
        action: Action,
        detail: impl Into<String>,
    ) -> Self {
        Row {
            resource,
            name: name.into(),
            action,
            detail: detail.into(),
        }
    }
}

/// An ID with the name the API gave it.
#[derive(Debug, Clone, Serialize)]
pub struct Named {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeployInfraReport {
    pub dry_run: bool,
    pub account: Named,
    pub zone: Named,
    pub platform_domain: String,
    pub bucket: String,
    /// `None` is the default jurisdiction.
    pub jurisdiction: Option<String>,
    pub worker: String,
    pub steps: Vec<Row>,
    /// Every row is in the wanted state (or would be, in a dry run).
    pub ok: bool,
    /// Advice about the platform domain ([`crate::platform::domain_advice`]).
    pub advice: Vec<String>,
    /// What the `*/*` route captures besides custom hostnames.
    pub route_capture: Option<RouteCapture>,
}

/// `*/*` sends every request to a proxied hostname of the zone that has no more specific route to
/// the router: the apex, `www`, a marketing site (docs/cloudflare-api.md §9). Said in the plan
/// and the report, with those hostnames when the token can list DNS records.
#[derive(Debug, Clone, Serialize)]
pub struct RouteCapture {
    pub pattern: String,
    /// The zone's proxied hostnames that the route captures; `None` when they could not be read.
    pub hostnames: Option<Vec<String>>,
    pub note: String,
}

impl DeployInfraReport {
    fn count(&self, action: Action) -> usize {
        self.steps.iter().filter(|r| r.action == action).count()
    }

    /// The closing sentence: what was done, and what to do about what was not.
    fn summary(&self) -> String {
        let counts: Vec<String> = [
            Action::Created,
            Action::Updated,
            Action::WouldCreate,
            Action::WouldUpdate,
            Action::Unchanged,
            Action::Skipped,
            Action::Conflict,
            Action::Failed,
            Action::NotRun,
        ]
        .into_iter()
        .filter_map(|a| match self.count(a) {
            0 => None,
            n => Some(format!("{n} {}", a.as_str())),
        })
        .collect();
        let counts = counts.join(", ");
        let mut text = if self.dry_run {
            format!("Dry run, nothing was changed: {counts}.")
        } else if self.ok {
            format!("The platform's Cloudflare side is in place: {counts}.")
        } else {
            format!("Not finished: {counts}.")
        };
        if self.count(Action::Conflict) > 0 {
            text.push_str(" A conflict is left as it is: see its detail.");
        }
        let route_conflict = self
            .steps
            .iter()
            .any(|r| r.resource == Resource::Route && r.action == Action::Conflict);
        if route_conflict {
            text.push_str(" --take-over-routes points a held route at the router.");
        }
        if self.count(Action::Failed) > 0 && !self.dry_run {
            text.push_str(
                " Fix the failure shown above and run deploy-infra again: it keeps what is done \
                 and finishes the rest.",
            );
        }
        text
    }
}

impl Report for DeployInfraReport {
    fn render(&self, out: &mut Renderer) {
        let jurisdiction = self.jurisdiction.as_deref().unwrap_or("default");
        out.pairs(&[
            (
                "account",
                format!("{} ({})", self.account.name, self.account.id),
            ),
            ("zone", format!("{} ({})", self.zone.name, self.zone.id)),
            ("platform domain", self.platform_domain.clone()),
            (
                "bucket",
                format!("{} (jurisdiction {jurisdiction})", self.bucket),
            ),
            ("worker", self.worker.clone()),
        ]);
        out.blank();
        let rows = self
            .steps
            .iter()
            .map(|r| {
                vec![
                    r.resource.label().to_string(),
                    r.name.clone(),
                    r.action.as_str().to_string(),
                    r.detail.clone(),
                ]
            })
            .collect();
        out.table(&["resource", "name", "action", "detail"], rows);
        if let Some(c) = &self.route_capture {
            out.line(format!("Note: {}", c.note));
        }
        out.line(self.summary());
        for a in &self.advice {
            out.line(format!("Note: {a}"));
        }
    }

    fn to_json(&self) -> serde_json::Value {
        json_of(self)
    }

    /// 1 when anything is in conflict, failed or was not run (docs/cli.md: "partial deploy").
    fn exit_code(&self) -> u8 {
        if self.ok {
            0
        } else {
            crate::error::EXIT_FAILURE
        }
    }

    /// Each row in conflict, failed or not run, with its detail.
    fn failures(&self) -> Vec<String> {
        self.steps
            .iter()
            .filter(|r| matches!(r.action, Action::Conflict | Action::Failed | Action::NotRun))
            .map(|r| {
                format!(
                    "{} {}: {}{}",
                    r.resource.label(),
                    r.name,
                    r.action.as_str(),
                    if r.detail.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", r.detail)
                    }
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(steps: Vec<Row>, dry_run: bool) -> DeployInfraReport {
        let ok = steps.iter().all(|r| r.action.is_ok());
        DeployInfraReport {
            dry_run,
            account: Named {
                id: "a".into(),
                name: "Acct".into(),
            },
            zone: Named {
                id: "z".into(),
                name: "example.com".into(),
            },
            platform_domain: "example.com".into(),
            advice: Vec::new(),
            bucket: "sites".into(),
            jurisdiction: Some("eu".into()),
            worker: "router".into(),
            steps,
            ok,
            route_capture: None,
        }
    }

    #[test]
    fn table_and_json_carry_the_same_rows() {
        let r = report(
            vec![
                Row::new(
                    Resource::Bucket,
                    "sites",
                    Action::Created,
                    "jurisdiction eu",
                ),
                Row::new(
                    Resource::Route,
                    "*/*",
                    Action::Conflict,
                    "held by Worker other",
                ),
                Row::new(Resource::FallbackOrigin, "(none)", Action::NotRun, "x"),
            ],
            false,
        );
        let mut out = Renderer::new(false);
        r.render(&mut out);
        let text = out.finish();
        for needle in [
            "R2 bucket",
            "created",
            "conflict",
            "not run",
            "sites (jurisdiction eu)",
        ] {
            assert!(text.contains(needle), "{needle} in\n{text}");
        }
        assert!(
            text.contains("Not finished: 1 created, 1 conflict, 1 not run."),
            "{text}"
        );
        let json = r.to_json();
        assert_eq!(json["steps"][0]["resource"], "bucket");
        assert_eq!(json["steps"][1]["action"], "conflict");
        assert_eq!(json["steps"][2]["action"], "not run");
        assert_eq!(json["steps"][2]["resource"], "fallback_origin");
        assert_eq!(json["ok"], false);
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn a_dry_run_says_so() {
        let r = report(
            vec![Row::new(
                Resource::Worker,
                "router",
                Action::WouldCreate,
                "",
            )],
            true,
        );
        let mut out = Renderer::new(false);
        r.render(&mut out);
        assert!(out
            .finish()
            .contains("Dry run, nothing was changed: 1 would create."));
        assert_eq!(r.to_json()["steps"][0]["action"], "would create");
        assert_eq!(r.to_json()["dry_run"], true);
        assert_eq!(r.exit_code(), 0);
    }
}
