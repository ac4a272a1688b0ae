//! The four steps of `deploy-infra`, each idempotent: look at what is there (the reads were made
//! up front, concurrently, and are passed in), write only what differs, and return report rows.
//! With `--dry-run` a step stops before its write and says what it would do.
//!
//! It imports the API client and `platform`, not output: the report renders what it returns.

use super::report::{Action, Resource, Row};
use super::worker::{self, Wanted};
use super::Run;
use crate::cloudflare::custom_hostnames::FallbackOrigin;
use crate::cloudflare::r2::{Bucket, BucketRef};
use crate::cloudflare::workers::{Route, ScriptSettings};
use crate::cloudflare::Error;
use bytes::Bytes;

/// Every R2 jurisdiction a bucket can be in: default, eu, fedramp (docs/cloudflare-api.md §7
/// "Jurisdiction"; `fedramp-high` is a Worker-binding value only); `None` is the default one.
const JURISDICTIONS: [Option<&str>; 3] = [None, Some("eu"), Some("fedramp")];

/// The error and what to do about it, for a `failed` row.
pub fn failure(e: &Error) -> String {
    match e.hint() {
        Some(hint) => format!("{e}; {hint}"),
        None => e.to_string(),
    }
}

fn jurisdiction_name(j: Option<&str>) -> &str {
    j.unwrap_or("default")
}

/// Step 2: the bucket. `found` is `GET …/r2/buckets/{name}` in the wanted jurisdiction.
///
/// When the bucket is missing there, the other jurisdictions are looked at before creating: a
/// bucket of the same name elsewhere almost always means a forgotten `--jurisdiction`, and
/// creating a second, empty bucket and pointing the Worker at it would take every site down. So
/// that case is a conflict, and nothing is written.
pub async fn bucket(run: &Run<'_>, found: Result<Option<Bucket>, Error>) -> Row {
    let name = run.inputs.platform.bucket.name.as_str();
    let wanted_j = run.inputs.platform.bucket.jurisdiction.as_deref();
    let here = BucketRef {
        account: &run.inputs.platform.bucket.account,
        name,
        jurisdiction: wanted_j,
    };
    let row = |action, detail: String| Row::new(Resource::Bucket, name, action, detail);
    match found {
        Err(e) => return row(Action::Failed, failure(&e)),
        Ok(Some(b)) => return row(Action::Unchanged, existing_bucket_detail(run, &b)),
        Ok(None) => {}
    }
    for other in JURISDICTIONS.into_iter().filter(|j| *j != wanted_j) {
        let there = BucketRef {
            jurisdiction: other,
            ..here
        };
        match run.client.get_bucket(there).await {
            Ok(Some(_)) => {
                let other = jurisdiction_name(other);
                let flag = if other == "default" {
                    "leave out --jurisdiction (and R2_JURISDICTION)".to_string()
                } else {
                    format!("pass --jurisdiction {other} (or set R2_JURISDICTION={other})")
                };
                return row(
                    Action::Conflict,
                    format!(
                        "a bucket of this name exists in jurisdiction {other}, not {}; {flag} to \
                         use it, or choose another --bucket",
                        jurisdiction_name(wanted_j)
                    ),
                );
            }
            Ok(None) => {}
            // A jurisdiction this account cannot use answers with a client error of its own;
            // that is "not there". A rate limit, outage or lost connection is not an answer.
            // An unknown route (7000/7003) is not an answer either.
            Err(e)
                if matches!(e.status(), Some(400..=499))
                    && e.status() != Some(429)
                    && !e.is_unknown_route() => {}
            Err(e) => return row(Action::Failed, failure(&e)),
        }
    }
    let mut detail = format!("jurisdiction {}", jurisdiction_name(wanted_j));
    if let Some(h) = &run.inputs.location_hint {
        detail.push_str(&format!(", location hint {h}"));
    }
    if run.inputs.dry_run {
        return row(Action::WouldCreate, detail);
    }
    let hint = run.inputs.location_hint.as_deref();
    match run.client.create_bucket(here, hint).await {
        Ok(_) => row(Action::Created, detail),
        // 409/10004: "already exists, and you own it" (docs/cloudflare-api.md §7): another run got
        // there first, which is the state we want.
        Err(e) if e.status() == Some(409) && e.has_code(10004) => {
            row(Action::Unchanged, format!("{detail}; it already existed"))
        }
        Err(e) => row(Action::Failed, failure(&e)),
    }
}

fn existing_bucket_detail(run: &Run<'_>, b: &Bucket) -> String {
    let mut detail = format!(
        "jurisdiction {}",
        b.jurisdiction.as_deref().unwrap_or(jurisdiction_name(
            run.inputs.platform.bucket.jurisdiction.as_deref()
        ))
    );
    if let Some(loc) = &b.location {
        detail.push_str(&format!(", location {loc}"));
    }
    if let Some(h) = &run.inputs.location_hint {
        if b.location
            .as_deref()
            .is_some_and(|l| !l.eq_ignore_ascii_case(h))
        {
            detail.push_str(&format!(
                " (--location-hint {h} applies only to a new bucket; a bucket cannot move)"
            ));
        }
    }
    detail
}

/// Step 3: the router Worker. `content` and `settings` are the deployed script's main module and
/// settings (`None`: no such script).
pub async fn worker(
    run: &Run<'_>,
    domain: &str,
    content: Result<Option<Bytes>, Error>,
    settings: Result<Option<ScriptSettings>, Error>,
) -> Row {
    let name = run.inputs.platform.worker.as_str();
    let row = |action, detail: String| Row::new(Resource::Worker, name, action, detail);
    let wanted = Wanted {
        bucket: run.inputs.platform.bucket.name.to_string(),
        jurisdiction: run.inputs.platform.bucket.jurisdiction.clone(),
        domain: domain.to_string(),
    };
    let (content, settings) = match (content, settings) {
        (Err(e), _) | (_, Err(e)) => return row(Action::Failed, failure(&e)),
        (Ok(c), Ok(s)) => (c, s),
    };
    let summary = format!(
        "{} sha256 {}, bindings SITES and PLATFORM_DOMAIN, compatibility date {}",
        crate::platform::WORKER_MODULE,
        worker::short(&worker::source_sha256()),
        crate::platform::COMPATIBILITY_DATE
    );
    let action = match (&content, &settings) {
        (None, None) => Action::create(run.inputs.dry_run),
        // content/v2 said 404 while settings found the script: the script is there, so "no
        // script" would re-create it over whatever is deployed. Absent means absent everywhere.
        (None, Some(_)) => {
            return row(
                Action::Failed,
                format!(
                    "GET /accounts/{}/workers/scripts/{name}/content/v2 answered 404, yet the \
                     script's settings exist; its content cannot be compared, so nothing was \
                     uploaded (run again; if it persists, check the script in the dashboard)",
                    run.inputs.platform.bucket.account
                ),
            )
        }
        (Some(c), Some(s)) => {
            let diff = wanted.differences(c, s);
            if diff.is_empty() {
                return row(Action::Unchanged, summary);
            }
            return upload(
                run,
                &wanted,
                settings.as_ref(),
                Action::update(run.inputs.dry_run),
                diff.join("; "),
            )
            .await;
        }
        (Some(_), None) => Action::update(run.inputs.dry_run),
    };
    upload(run, &wanted, settings.as_ref(), action, summary).await
}

async fn upload(
    run: &Run<'_>,
    wanted: &Wanted,
    current: Option<&ScriptSettings>,
    action: Action,
    detail: String,
) -> Row {
    let name = run.inputs.platform.worker.as_str();
    if run.inputs.dry_run {
        return Row::new(Resource::Worker, name, action, detail);
    }
    let upload = wanted.upload(current);
    match run
        .client
        .upload_script(&run.inputs.platform.bucket.account, name, &upload)
        .await
    {
        Ok(_) => Row::new(Resource::Worker, name, action, detail),
        Err(e) => Row::new(Resource::Worker, name, Action::Failed, failure(&e)),
    }
}

/// What to do about one wanted route pattern, given the zone's routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutePlan {
    Unchanged,
    Create,
    /// Held by another Worker (`Some`) or a placeholder that runs none (`None`); taken over.
    TakeOver {
        id: String,
        from: Option<String>,
    },
    /// Held as above, and not ours to take.
    Conflict {
        holder: Option<String>,
    },
}

/// Decides each wanted pattern against one listing of the zone's routes. Routes that are not
/// wanted are never looked at again, whoever holds them.
pub fn plan_route(existing: &[Route], pattern: &str, worker: &str, take_over: bool) -> RoutePlan {
    match existing.iter().find(|r| r.pattern == pattern) {
        None => RoutePlan::Create,
        Some(r) if r.script.as_deref() == Some(worker) => RoutePlan::Unchanged,
        Some(r) if take_over => RoutePlan::TakeOver {
            id: r.id.clone(),
            from: r.script.clone(),
        },
        Some(r) => RoutePlan::Conflict {
            holder: r.script.clone(),
        },
    }
}

fn holder_text(holder: &Option<String>) -> String {
    match holder {
        Some(s) => format!("Worker {s}"),
        None => "a placeholder route that runs no Worker".to_string(),
    }
}

/// Step 4: the routes. `listed` is `GET /zones/{id}/workers/routes`, made once.
pub async fn routes(
    run: &Run<'_>,
    wanted: &[String],
    listed: Result<Vec<Route>, Error>,
) -> Vec<Row> {
    let worker = run.inputs.platform.worker.as_str();
    let listed = match listed {
        Ok(l) => l,
        Err(e) => {
            let detail = failure(&e);
            return wanted
                .iter()
                .map(|p| Row::new(Resource::Route, p, Action::Failed, detail.clone()))
                .collect();
        }
    };
    let mut rows = Vec::new();
    for pattern in wanted {
        let row = |action, detail: String| Row::new(Resource::Route, pattern, action, detail);
        let to = format!("-> {worker}");
        let plan = plan_route(&listed, pattern, worker, run.inputs.take_over_routes);
        let done = match plan {
            RoutePlan::Unchanged => row(Action::Unchanged, to),
            RoutePlan::Conflict { holder } => row(
                Action::Conflict,
                format!(
                    "held by {}; left as it is (--take-over-routes points it at {worker})",
                    holder_text(&holder)
                ),
            ),
            RoutePlan::Create if run.inputs.dry_run => row(Action::WouldCreate, to),
            RoutePlan::Create => {
                match run
                    .client
                    .create_route(run.zone, pattern, Some(worker))
                    .await
                {
                    Ok(_) => row(Action::Created, to),
                    Err(e) => row(Action::Failed, failure(&e)),
                }
            }
            RoutePlan::TakeOver { id, from } => {
                let detail = format!("{to} (taken over from {})", holder_text(&from));
                if run.inputs.dry_run {
                    row(Action::WouldUpdate, detail)
                } else {
                    match run
                        .client
                        .update_route(run.zone, &id, pattern, Some(worker))
                        .await
                    {
                        Ok(()) => row(Action::Updated, detail),
                        Err(e) => row(Action::Failed, failure(&e)),
                    }
                }
            }
        };
        rows.push(done);
    }
    rows
}

/// What a fallback origin's status says, with its errors.
fn origin_status(f: &FallbackOrigin) -> String {
    let mut s = format!("status {}", f.status.as_deref().unwrap_or("unknown"));
    let errors: Vec<&str> = f
        .errors
        .iter()
        .flatten()
        .map(String::as_str)
        .filter(|e| !e.is_empty())
        .collect();
    if !errors.is_empty() {
        s.push_str(&format!(" ({})", errors.join("; ")));
    }
    s
}

/// Step 5: the custom-hostname fallback origin. `current` is the GET, which answers 404 or a
/// result without `origin` when none is set (both are `None` here; docs/cloudflare-api.md §10).
///
/// The origin must be a proxied DNS record in the zone, such as `fallback.<zone> AAAA 100::`
/// (docs/cloudflare-api.md §9). Creating DNS records needs a DNS permission that the platform token
/// deliberately lacks, so the user adds that record by hand; without `--fallback-origin` this step
/// only reports what is set, or says what is needed.
pub async fn fallback(run: &Run<'_>, current: Result<Option<FallbackOrigin>, Error>) -> Row {
    let current = match current {
        Ok(c) => c,
        Err(e) => {
            let name = run
                .inputs
                .platform
                .fallback_origin
                .as_deref()
                .unwrap_or("(unknown)");
            return Row::new(Resource::FallbackOrigin, name, Action::Failed, failure(&e));
        }
    };
    let have = current.as_ref().and_then(|f| f.origin.clone());
    let Some(want) = run.inputs.platform.fallback_origin.as_deref() else {
        return match (&have, &current) {
            (Some(origin), Some(f)) => Row::new(
                Resource::FallbackOrigin,
                origin,
                Action::Unchanged,
                origin_status(f),
            ),
            _ => Row::new(
                Resource::FallbackOrigin,
                "(none)",
                Action::Skipped,
                format!(
                    "none is set, so custom hostnames have nowhere to go: add a proxied DNS record \
                     such as fallback.{zone} AAAA 100:: by hand (the platform token has no DNS \
                     permission, by design), then run again with --fallback-origin \
                     fallback.{zone} (or SAAS_FALLBACK_ORIGIN)",
                    zone = run.zone_name
                ),
            ),
        };
    };
    if let (Some(origin), Some(f)) = (&have, &current) {
        if origin.eq_ignore_ascii_case(want) {
            return Row::new(
                Resource::FallbackOrigin,
                want,
                Action::Unchanged,
                origin_status(f),
            );
        }
    }
    let (action, was) = match &have {
        None => (Action::create(run.inputs.dry_run), String::new()),
        Some(old) => (Action::update(run.inputs.dry_run), format!("was {old}; ")),
    };
    let needs = format!("{want} must be a proxied A, AAAA or CNAME record in the zone");
    if run.inputs.dry_run {
        return Row::new(
            Resource::FallbackOrigin,
            want,
            action,
            format!("{was}{needs}"),
        );
    }
    match run.client.put_fallback_origin(run.zone, want).await {
        Ok(f) => {
            let mut detail = format!("{was}{}", origin_status(&f));
            if f.status.as_deref() != Some("active") {
                detail.push_str(&format!("; {needs}"));
            }
            Row::new(Resource::FallbackOrigin, want, action, detail)
        }
        Err(e) => Row::new(Resource::FallbackOrigin, want, Action::Failed, failure(&e)),
    }
}

/// Rows for steps that were not attempted.
pub fn not_run(resource: Resource, names: &[String], why: &str) -> Vec<Row> {
    names
        .iter()
        .map(|n| Row::new(resource, n, Action::NotRun, why))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(pattern: &str, script: Option<&str>) -> Route {
        Route {
            id: format!("id-{pattern}"),
            pattern: pattern.into(),
            script: script.map(str::to_string),
        }
    }

    #[test]
    fn routes_are_planned_against_one_listing() {
        let listed = [
            route("*/*", Some("other")),
            route("*.getai.page/*", Some("router")),
            route("static.getai.page/*", None),
        ];
        assert_eq!(
            plan_route(&listed, "*.getai.page/*", "router", false),
            RoutePlan::Unchanged
        );
        assert_eq!(
            plan_route(&listed, "new.getai.page/*", "router", false),
            RoutePlan::Create
        );
        assert_eq!(
            plan_route(&listed, "*/*", "router", false),
            RoutePlan::Conflict {
                holder: Some("other".into())
            }
        );
        assert_eq!(
            plan_route(&listed, "static.getai.page/*", "router", false),
            RoutePlan::Conflict { holder: None }
        );
        assert_eq!(
            plan_route(&listed, "*/*", "router", true),
            RoutePlan::TakeOver {
                id: "id-*/*".into(),
                from: Some("other".into())
            }
        );
    }

    #[test]
    fn fallback_status_shows_its_errors() {
        let f = FallbackOrigin {
            origin: Some("fallback.getai.page".into()),
            status: Some("pending_deployment".into()),
            errors: Some(vec!["DNS records are not setup correctly".into()]),
        };
        assert_eq!(
            origin_status(&f),
            "status pending_deployment (DNS records are not setup correctly)"
        );
    }
}
