//! The edge where an error that ended the run becomes output: the exit status, the `--json`
//! error object, and the `cfsetup: error: …` text with causes and hints. `main` uses it; a
//! command may ask [`hints`] for what to do about an error it reports in a row rather than ends on.
//!
//! Commands return `anyhow::Error`; `main` downcasts here to pick the code, and prints the error
//! once, on stderr. With `--json` the same error is also printed on stdout as JSON ([`to_json`]),
//! so a pipe into `jq` never sees an empty stdout on failure.
//!
//! It imports the error types of `cloudflare` and `storage`, so neither (nor anything below
//! them) may import it.

use crate::error::{Hinted, UsageError, EXIT_FAILURE, EXIT_USAGE};
use crate::output::PartialFailure;

/// The [`PartialFailure`] in the error's chain, if any (it may have been given context).
pub fn partial(err: &anyhow::Error) -> Option<&PartialFailure> {
    err.chain().find_map(|e| e.downcast_ref::<PartialFailure>())
}

/// The exit status for an error that ended the run.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    // Part of the work was done: a failure (1), whatever the cause.
    if partial(err).is_some() {
        EXIT_FAILURE
    } else if err.chain().any(|e| e.is::<UsageError>()) {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    }
}

/// A word for the kind of error, for `--json`: `usage`, `partial`, `api`, `network` or `failure`.
pub fn kind(err: &anyhow::Error) -> &'static str {
    if partial(err).is_some() {
        return "partial";
    }
    if err.chain().any(|e| e.is::<UsageError>()) {
        return "usage";
    }
    for cause in err.chain() {
        if let Some(api) = cause.downcast_ref::<crate::cloudflare::Error>() {
            return match api {
                crate::cloudflare::Error::Transport { .. } => "network",
                _ => "api",
            };
        }
    }
    "failure"
}

/// The `--json` form of an error (docs/cli.md): `{"error": {"kind", "message", "causes", "hint",
/// "exit_code"}}`. A [`PartialFailure`]'s report is merged in beside `"error"`.
pub fn to_json(err: &anyhow::Error) -> serde_json::Value {
    let hints = hints(err);
    let mut lines = message_chain(err).into_iter();
    let error = serde_json::json!({
        "kind": kind(err),
        "message": lines.next().unwrap_or_default(),
        "causes": lines.collect::<Vec<_>>(),
        "hint": (!hints.is_empty()).then(|| hints.join("; ")),
        "exit_code": exit_code(err),
    });
    let mut out = match partial(err) {
        Some(p) => match p.report.to_json() {
            serde_json::Value::Object(map) => map,
            other => {
                let mut map = serde_json::Map::new();
                map.insert("report".into(), other);
                map
            }
        },
        None => serde_json::Map::new(),
    };
    out.insert("error".into(), error);
    serde_json::Value::Object(out)
}

/// The JSON of a command-line parsing error (clap's), exit status 2.
pub fn usage_json(message: &str) -> serde_json::Value {
    serde_json::json!({
        "error": {
            "kind": "usage",
            "message": message,
            "causes": [],
            "hint": "run with --help for the options",
            "exit_code": EXIT_USAGE,
        }
    })
}

/// The error's chain as text.
fn message_chain(err: &anyhow::Error) -> Vec<String> {
    err.chain().map(ToString::to_string).collect()
}

/// Writes `cfsetup: error: …`, the cause chain, and hints, to `out` (stderr in `main`).
pub fn render(err: &anyhow::Error) -> String {
    let chain = message_chain(err);
    let mut text = format!(
        "cfsetup: error: {}\n",
        chain.first().cloned().unwrap_or_default()
    );
    for cause in chain.iter().skip(1) {
        text.push_str(&format!("  caused by: {cause}\n"));
    }
    for hint in hints(err) {
        text.push_str(&format!("  hint: {hint}\n"));
    }
    text
}

/// What to do about the error: the hints of every error in its chain, once each.
pub fn hints(err: &anyhow::Error) -> Vec<String> {
    let mut out = Vec::new();
    for cause in err.chain() {
        if let Some(u) = cause.downcast_ref::<UsageError>() {
            out.extend(u.hint.clone());
        }
        if let Some(api) = cause.downcast_ref::<crate::cloudflare::Error>() {
            out.extend(api.hint());
        }
        if let Some(h) = cause.downcast_ref::<Hinted<crate::storage::StorageError>>() {
            out.push(h.hint.clone());
        }
        // `StorageError::Rest` is transparent: the API error inside is not its source, so it
        // never appears in the chain by itself.
        if let Some(crate::storage::StorageError::Rest(api)) =
            cause.downcast_ref::<crate::storage::StorageError>()
        {
            out.extend(api.hint());
        }
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::usage;

    #[test]
    fn usage_errors_exit_2_even_with_context() {
        let err = anyhow::Error::new(usage!("bad --account-id")).context("reading configuration");
        assert_eq!(exit_code(&err), EXIT_USAGE);
        assert_eq!(exit_code(&anyhow::anyhow!("boom")), EXIT_FAILURE);
    }

    #[test]
    fn json_errors_carry_kind_message_hint_and_exit_code() {
        let err = anyhow::Error::new(usage!("bad id").with_hint("use 32 hex")).context("loading");
        assert_eq!(
            to_json(&err),
            serde_json::json!({"error": {
                "kind": "usage", "message": "loading", "causes": ["bad id"],
                "hint": "use 32 hex", "exit_code": 2,
            }})
        );
        assert_eq!(
            to_json(&anyhow::anyhow!("boom"))["error"]["kind"],
            "failure"
        );
        assert_eq!(
            to_json(&anyhow::anyhow!("boom"))["error"]["hint"],
            serde_json::Value::Null
        );
    }

    struct Live;
    impl crate::output::Report for Live {
        fn render(&self, out: &mut crate::output::Renderer) {
            out.line("live");
        }
        fn to_json(&self) -> serde_json::Value {
            serde_json::json!({"deploy_id": "d1", "urls": ["https://acme.example.com"]})
        }
    }

    #[test]
    fn a_partial_failure_reports_what_did_happen() {
        let err: anyhow::Error = PartialFailure::new(
            "acme is live",
            Box::new(Live),
            anyhow::anyhow!("attaching shop.example.com failed"),
        )
        .into();
        let with_usage: anyhow::Error =
            PartialFailure::new("acme is live", Box::new(Live), usage!("bad").into()).into();
        assert_eq!(exit_code(&with_usage), EXIT_FAILURE);
        assert_eq!(to_json(&with_usage.context("deploying"))["deploy_id"], "d1");
        assert_eq!(exit_code(&err), EXIT_FAILURE);
        let j = to_json(&err);
        assert_eq!(j["deploy_id"], "d1");
        assert_eq!(j["urls"][0], "https://acme.example.com");
        assert_eq!(j["error"]["kind"], "partial");
        assert_eq!(j["error"]["exit_code"], 1);
        assert_eq!(j["error"]["causes"][0], "attaching shop.example.com failed");
        assert_eq!(
            render(&err),
            "cfsetup: error: only part of the work was done: acme is live\n  caused by: attaching \
             shop.example.com failed\n"
        );
    }

    #[test]
    fn render_prints_causes_and_hints() {
        let err = anyhow::Error::new(usage!("bad id").with_hint("use 32 hex"));
        assert_eq!(render(&err), "cfsetup: error: bad id\n  hint: use 32 hex\n");
    }
}
