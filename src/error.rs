//! The error kind the low layers may raise: [`UsageError`] (bad usage or configuration, found
//! before any request; exit status 2), its [`usage!`] shorthand, and the exit statuses.
//!
//! Exit status (docs/cli.md): 0 success; 1 failure (API, network, partial deploy); 2 bad usage or
//! configuration, found before any request is sent; 3 test-permissions ran and a check failed;
//! 130 interrupted. Printing an error, its JSON form and picking the exit status are the edge's
//! ([`crate::exit`]), which only `main` uses. This module imports nothing of the crate.

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

/// An error with a hint of its own (what to do about it), for errors whose type has none (an S3
/// refusal). It reads as the error it wraps: same text, same causes.
#[derive(Debug)]
pub struct Hinted<E> {
    pub error: E,
    pub hint: String,
}

impl<E: fmt::Display> fmt::Display for Hinted<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl<E: std::error::Error> std::error::Error for Hinted<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

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
/// Stopped by Ctrl-C or SIGTERM (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;

/// A value for an error message, quoted; or, when it looks like a token or key pasted into the
/// wrong setting (a `cf…_` prefix, or 30 or more token characters without a dot), only its length:
/// values come from the environment and `.env`, and an error must never show a secret.
pub fn shown(value: &str) -> String {
    let v = value.trim();
    let prefixed = ["cfut_", "cfat_", "cfk_", "cfoat_"]
        .iter()
        .any(|p| v.starts_with(p));
    let token_like = v.len() >= 30
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if prefixed || token_like {
        format!("(not shown: {} characters that may be a secret)", v.len())
    } else {
        format!("{value:?}")
    }
}
