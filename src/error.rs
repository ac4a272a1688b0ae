//! Error kinds that decide the exit status, and the edge where errors are printed.
//!
//! Exit status (CLI.md): 0 success; 1 failure (API, network, partial deploy); 2 bad usage or
//! configuration, found before any request is sent; 3 test-permissions ran and a check failed.
//! Commands return `anyhow::Error`; `main` downcasts here to pick the code, and prints the error once,
//! on stderr, as `cfsetup: error: …` followed by its causes and any hints.

use std::fmt;

/// Bad usage or configuration, found before any request. Exit status 2.
#[derive(Debug)]
pub struct UsageError {
    pub message: String,
    pub hint: Option<String>,
}

impl UsageError {
    pub fn new(message: impl Into<String>) -> Self {
        UsageError {
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UsageError {}

/// Shorthand for `Err(UsageError::new(..).into())`.
macro_rules! usage {
    ($($arg:tt)*) => {
        $crate::error::UsageError::new(format!($($arg)*))
    };
}
pub(crate) use usage;

pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_CHECKS_FAILED: u8 = 3;

/// The exit status for an error that ended the run.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.chain().any(|e| e.is::<UsageError>()) {
        EXIT_USAGE
    } else {
        EXIT_FAILURE
    }
}

/// Writes `cfsetup: error: …`, the cause chain, and hints, to `out` (stderr in `main`).
pub fn render(err: &anyhow::Error) -> String {
    let mut text = format!("cfsetup: error: {err}\n");
    for cause in err.chain().skip(1) {
        text.push_str(&format!("  caused by: {cause}\n"));
    }
    for hint in hints(err) {
        text.push_str(&format!("  hint: {hint}\n"));
    }
    text
}

fn hints(err: &anyhow::Error) -> Vec<String> {
    let mut out = Vec::new();
    for cause in err.chain() {
        if let Some(u) = cause.downcast_ref::<UsageError>() {
            out.extend(u.hint.clone());
        }
        if let Some(api) = cause.downcast_ref::<crate::cloudflare::Error>() {
            out.extend(api.hint());
        }
    }
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_exit_2_even_with_context() {
        let err = anyhow::Error::new(usage!("bad --account-id")).context("reading configuration");
        assert_eq!(exit_code(&err), EXIT_USAGE);
        assert_eq!(exit_code(&anyhow::anyhow!("boom")), EXIT_FAILURE);
    }

    #[test]
    fn render_prints_causes_and_hints() {
        let err = anyhow::Error::new(usage!("bad id").with_hint("use 32 hex"));
        assert_eq!(render(&err), "cfsetup: error: bad id\n  hint: use 32 hex\n");
    }
}
