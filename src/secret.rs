//! A string that must never be printed: API tokens and the Global API Key.
//!
//! `Debug` and `Display` both print `(redacted)`, so a `{:?}` of the config, an error message or a
//! log line can never leak one. The value comes out only through [`Secret::expose`], which is called
//! in exactly two kinds of place: building auth headers, and showing a *new* token value once where
//! the user asked for it.
//!
//! It imports nothing of the crate.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call sites are few and deliberate: auth headers, a new token shown once,
    /// and the `.env` writer.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// Serialises a *new* token value into the report of the command that created or rolled it: the
/// one deliberate exception to "never print a secret" (use with `#[serde(serialize_with)]`).
pub fn serialize_new_value<S: serde::Serializer>(
    value: &Option<Secret>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(secret) => s.serialize_str(secret.expose()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("cfut_supersecret");
        assert_eq!(format!("{s}"), "(redacted)");
        assert_eq!(format!("{s:?}"), "(redacted)");
        assert_eq!(format!("{:?}", Some(&s)), "Some((redacted))");
        assert_eq!(s.expose(), "cfut_supersecret");
    }
}
