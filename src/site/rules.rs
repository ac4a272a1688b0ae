//! `_redirects` and `_headers` in Cloudflare Pages' syntax and limits, parsed at deploy time into
//! the shapes the Route carries (`redirects`, `headers`; docs/storage-layout.md), so the Worker
//! never parses text per request.
//!
//! `_redirects`: one rule a line, `source destination [code]` (default 302; 301, 302, 303, 307,
//! 308, or 200 for a rewrite within the site). One splat `*` (`:splat` in the destination) and
//! `:name` placeholders (one path segment each). At most 2,000 static and 100 dynamic rules, 1,000
//! characters a line, 256 KiB in all. `#` starts a comment line.
//!
//! `_headers`: a path pattern (`/…`, or an absolute `https://host/…`) on its own line, then
//! `Name: value` lines (indented, as Pages writes them) and `! Name` to remove a header. At most
//! 100 rules, 100 header lines a rule, 2,000 characters a line, 64 KiB in all.
//!
//! The byte and line bounds exist because both files end up in the tenant's head, which the shared
//! router reads on every request (docs/storage-layout.md "Size bounds"): one tenant must not be able
//! to slow every other. A leading UTF-8 byte-order mark (which some Windows editors write) is
//! ignored. Every error names `file:line` and the reason.
//!
//! This module must not import commands, storage or output.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const MAX_STATIC_REDIRECTS: usize = 2_000;
pub const MAX_DYNAMIC_REDIRECTS: usize = 100;
pub const MAX_REDIRECT_LINE: usize = 1_000;
pub const MAX_HEADER_RULES: usize = 100;
pub const MAX_HEADER_LINE: usize = 2_000;
/// Header lines (`Name: value` and `! Name`) in one `_headers` rule. Pages documents no such
/// bound; 100 is far more than any real rule needs, and keeps a rule's cost per request small.
pub const MAX_HEADER_LINES_PER_RULE: usize = 100;
/// Bytes of `_headers` (64 KiB).
pub const MAX_HEADERS_BYTES: usize = 64 * 1024;
/// Bytes of `_redirects` (256 KiB): 2,100 rules of 120 characters.
pub const MAX_REDIRECTS_BYTES: usize = 256 * 1024;

/// The status codes a redirect may carry; 200 is a rewrite.
pub const REDIRECT_STATUSES: [u16; 6] = [301, 302, 303, 307, 308, 200];

/// Headers a `_headers` file may not set or remove: framing (the Worker sets them from the file),
/// `x-content-type-options` (cfsetup always sends `nosniff`), `etag` (the Worker derives it from
/// the blob's hash, and answers `If-None-Match` with it) and `x-tenant` (the platform's own header,
/// naming the tenant that served). worker/router.js keeps the same list.
pub const PROTECTED_HEADERS: [&str; 7] = [
    "x-content-type-options",
    "content-length",
    "content-range",
    "transfer-encoding",
    "connection",
    "etag",
    "x-tenant",
];

/// The Route's `redirects`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redirects {
    /// Sources without `*` or `:name`, by source; the first line for a source wins.
    #[serde(rename = "static")]
    pub static_rules: BTreeMap<String, StaticRedirect>,
    /// Sources with a splat or placeholders, in file order.
    pub dynamic: Vec<DynamicRedirect>,
}

impl Redirects {
    pub fn is_empty(&self) -> bool {
        self.static_rules.is_empty() && self.dynamic.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaticRedirect {
    pub to: String,
    pub status: u16,
    /// 1-based line in `_redirects`: the first matching line wins, static or dynamic.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicRedirect {
    pub from: String,
    pub to: String,
    pub status: u16,
    pub line: usize,
}

/// One block of `_headers`; the Route's `headers` is a `Vec` of these, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderRule {
    pub pattern: String,
    /// `[name, value]` pairs, names lowercase; a name given twice in a block is joined with ", ".
    pub set: Vec<(String, String)>,
    /// Lowercase names to remove.
    pub unset: Vec<String>,
}

/// A bad line: `file:line: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: PathBuf,
    pub line: usize,
    pub reason: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.line, self.reason)
    }
}

impl std::error::Error for RuleError {}

fn err(file: &Path, line: usize, reason: impl Into<String>) -> RuleError {
    RuleError {
        file: file.to_path_buf(),
        line,
        reason: reason.into(),
    }
}

/// What a source or header pattern captures: `:name` placeholders and whether it has a splat.
struct Pattern {
    names: Vec<String>,
    splat: bool,
}

/// Checks a path pattern: one `*` at most, placeholder names unique.
fn pattern(p: &str, file: &Path, line: usize, what: &str) -> Result<Pattern, RuleError> {
    let splats = p.matches('*').count();
    if splats > 1 {
        return Err(err(
            file,
            line,
            format!("{what} `{p}` has {splats} splats (`*`); at most one is allowed"),
        ));
    }
    let names = placeholders(p);
    for (i, n) in names.iter().enumerate() {
        if n == "splat" {
            return Err(err(
                file,
                line,
                format!("{what} `{p}`: `:splat` is the name of `*`; use `*` in the source"),
            ));
        }
        if names[..i].contains(n) {
            return Err(err(
                file,
                line,
                format!("{what} `{p}` uses the placeholder `:{n}` twice"),
            ));
        }
    }
    Ok(Pattern {
        names,
        splat: splats == 1,
    })
}

/// The `:name` placeholders of s (a colon followed by a letter, then letters, digits, `_`).
fn placeholders(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b':' && i + 1 < b.len() && b[i + 1].is_ascii_alphabetic() {
            let start = i + 1;
            let mut j = start;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            out.push(s[start..j].to_string());
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// The text without a leading UTF-8 byte-order mark.
fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// Refuses a file of more than `max` bytes, naming the line where it passes the bound.
fn check_size(text: &str, max: usize, file: &Path) -> Result<(), RuleError> {
    if text.len() <= max {
        return Ok(());
    }
    let mut seen = 0usize;
    let mut line = 1usize;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        seen += l.len();
        if seen > max {
            line = i + 1;
            break;
        }
    }
    Err(err(
        file,
        line,
        format!(
            "the file is {} bytes and passes the limit of {} bytes ({} KiB) here; every request \
             to the platform reads these rules, so they are bounded",
            thousands(text.len()),
            thousands(max),
            max / 1024
        ),
    ))
}

/// `65536` → `65,536`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn check_length(raw: &str, max: usize, file: &Path, line: usize) -> Result<(), RuleError> {
    let n = raw.chars().count();
    if n > max {
        return Err(err(
            file,
            line,
            format!("the line is {n} characters; the limit is {max}"),
        ));
    }
    Ok(())
}

/// Parses `_redirects` (`file` is only used in errors).
pub fn parse_redirects(text: &str, file: &Path) -> Result<Redirects, RuleError> {
    let text = without_bom(text);
    check_size(text, MAX_REDIRECTS_BYTES, file)?;
    let mut out = Redirects::default();
    let mut statics = 0usize;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        check_length(raw, MAX_REDIRECT_LINE, file, line)?;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        if fields.len() < 2 || fields.len() > 3 {
            return Err(err(
                file,
                line,
                format!(
                    "expected `source destination [code]`, found {} field{}",
                    fields.len(),
                    if fields.len() == 1 { "" } else { "s" }
                ),
            ));
        }
        let (from, to) = (fields[0], fields[1]);
        let status = match fields.get(2) {
            None => 302,
            Some(code) => match code.parse::<u16>() {
                Ok(s) if REDIRECT_STATUSES.contains(&s) => s,
                _ => {
                    let hint = if code.ends_with('!') {
                        " (forced rules with `!` are Netlify's; on Pages a rule always applies before files)"
                    } else {
                        ""
                    };
                    return Err(err(
                        file,
                        line,
                        format!("status `{code}`: expected 301, 302, 303, 307, 308 or 200{hint}"),
                    ));
                }
            },
        };
        if !from.starts_with('/') {
            return Err(err(
                file,
                line,
                format!("source `{from}` must be a path starting with `/` (domain-level rules are not supported)"),
            ));
        }
        if from.contains('?') {
            return Err(err(
                file,
                line,
                format!("source `{from}`: query-parameter matching is not supported"),
            ));
        }
        let src = pattern(from, file, line, "source")?;
        let absolute = to.starts_with("https://") || to.starts_with("http://");
        if !to.starts_with('/') && !absolute {
            return Err(err(
                file,
                line,
                format!("destination `{to}` must start with `/`, `https://` or `http://`"),
            ));
        }
        if status == 200 && absolute {
            return Err(err(
                file,
                line,
                format!(
                    "a 200 rewrite must stay within the site; destination `{to}` is another origin"
                ),
            ));
        }
        for name in placeholders(to) {
            let known = if name == "splat" {
                src.splat
            } else {
                src.names.contains(&name)
            };
            if !known {
                return Err(err(
                    file,
                    line,
                    format!("destination `{to}` uses `:{name}`, which the source `{from}` does not define"),
                ));
            }
        }
        if src.splat || !src.names.is_empty() {
            if out.dynamic.len() == MAX_DYNAMIC_REDIRECTS {
                return Err(err(
                    file,
                    line,
                    format!(
                        "more than {MAX_DYNAMIC_REDIRECTS} dynamic redirects (with `*` or `:name`)"
                    ),
                ));
            }
            out.dynamic.push(DynamicRedirect {
                from: from.to_string(),
                to: to.to_string(),
                status,
                line,
            });
        } else {
            if statics == MAX_STATIC_REDIRECTS {
                return Err(err(
                    file,
                    line,
                    format!("more than {MAX_STATIC_REDIRECTS} static redirects"),
                ));
            }
            statics += 1;
            // The first line for a source wins; a later one could never match.
            out.static_rules
                .entry(from.to_string())
                .or_insert(StaticRedirect {
                    to: to.to_string(),
                    status,
                    line,
                });
        }
    }
    Ok(out)
}

fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn header_name(raw: &str, file: &Path, line: usize) -> Result<String, RuleError> {
    let name = raw.trim();
    if !is_token(name) {
        return Err(err(
            file,
            line,
            format!("`{name}` is not a valid header name"),
        ));
    }
    let lower = name.to_ascii_lowercase();
    if PROTECTED_HEADERS.contains(&lower.as_str()) {
        let why = match lower.as_str() {
            "x-content-type-options" => "cfsetup always sends `nosniff`",
            "etag" => "the Worker derives it from the file's hash",
            "x-tenant" => "it is the platform's own header",
            _ => "the Worker sets it from the file",
        };
        return Err(err(
            file,
            line,
            format!("`{lower}` cannot be changed: {why}"),
        ));
    }
    Ok(lower)
}

/// Parses `_headers` (`file` is only used in errors).
pub fn parse_headers(text: &str, file: &Path) -> Result<Vec<HeaderRule>, RuleError> {
    let text = without_bom(text);
    check_size(text, MAX_HEADERS_BYTES, file)?;
    let mut out: Vec<HeaderRule> = Vec::new();
    let mut current: Option<HeaderRule> = None;
    let mut rules = 0usize;
    // Header lines of the current rule.
    let mut lines_in_rule = 0usize;
    let flush = |current: &mut Option<HeaderRule>, out: &mut Vec<HeaderRule>| {
        if let Some(r) = current.take() {
            if !r.set.is_empty() || !r.unset.is_empty() {
                out.push(r);
            }
        }
    };
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        check_length(raw, MAX_HEADER_LINE, file, line)?;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let absolute = trimmed.starts_with("https://") || trimmed.starts_with("http://");
        if trimmed.starts_with('/') || absolute {
            if trimmed.contains(char::is_whitespace) {
                return Err(err(
                    file,
                    line,
                    format!("path pattern `{trimmed}` contains whitespace"),
                ));
            }
            let path = if absolute {
                let rest = trimmed.split_once("//").map(|x| x.1).unwrap_or("");
                match rest.find('/') {
                    Some(i) => &rest[i..],
                    None => "/",
                }
            } else {
                trimmed
            };
            pattern(path, file, line, "pattern")?;
            if rules == MAX_HEADER_RULES {
                return Err(err(
                    file,
                    line,
                    format!("more than {MAX_HEADER_RULES} header rules"),
                ));
            }
            rules += 1;
            lines_in_rule = 0;
            flush(&mut current, &mut out);
            current = Some(HeaderRule {
                pattern: trimmed.to_string(),
                set: Vec::new(),
                unset: Vec::new(),
            });
            continue;
        }
        let Some(rule) = current.as_mut() else {
            return Err(err(
                file,
                line,
                "a header line before any path pattern (a pattern starts with `/` or `https://`)",
            ));
        };
        lines_in_rule += 1;
        if lines_in_rule > MAX_HEADER_LINES_PER_RULE {
            return Err(err(
                file,
                line,
                format!(
                    "the rule `{}` has more than {MAX_HEADER_LINES_PER_RULE} header lines; split \
                     it into rules for narrower paths",
                    rule.pattern
                ),
            ));
        }
        if let Some(rest) = trimmed.strip_prefix('!') {
            let name = header_name(rest, file, line)?;
            rule.set.retain(|(n, _)| *n != name);
            if !rule.unset.contains(&name) {
                rule.unset.push(name);
            }
            continue;
        }
        let Some((name, value)) = trimmed.split_once(':') else {
            return Err(err(
                file,
                line,
                format!("expected `Name: value`, `! Name` or a path pattern, found `{trimmed}`"),
            ));
        };
        let name = header_name(name, file, line)?;
        let value = value.trim();
        if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(err(
                file,
                line,
                format!("the value of `{name}` must be printable ASCII"),
            ));
        }
        match rule.set.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => {
                v.push_str(", ");
                v.push_str(value);
            }
            None => rule.set.push((name, value.to_string())),
        }
    }
    flush(&mut current, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f() -> &'static Path {
        Path::new("site/_redirects")
    }

    fn red(text: &str) -> Redirects {
        parse_redirects(text, f()).unwrap()
    }

    fn red_err(text: &str) -> RuleError {
        parse_redirects(text, f()).unwrap_err()
    }

    fn hdr(text: &str) -> Vec<HeaderRule> {
        parse_headers(text, Path::new("site/_headers")).unwrap()
    }

    fn hdr_err(text: &str) -> RuleError {
        parse_headers(text, Path::new("site/_headers")).unwrap_err()
    }

    #[test]
    fn redirects_produce_the_documented_shape() {
        let r = red("# comment\n\n/old /new 301\n/blog/:year/* /posts/:year/:splat\n");
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({
                "static": { "/old": { "to": "/new", "status": 301, "line": 3 } },
                "dynamic": [ { "from": "/blog/:year/*", "to": "/posts/:year/:splat", "status": 302, "line": 4 } ]
            })
        );
        let back: Redirects = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn every_code_and_the_default() {
        for code in REDIRECT_STATUSES {
            let r = red(&format!("/a /b {code}"));
            assert_eq!(r.static_rules["/a"].status, code);
        }
        assert_eq!(red("/a /b").static_rules["/a"].status, 302);
        assert_eq!(
            red("/a   https://example.com/x\t308").static_rules["/a"].to,
            "https://example.com/x"
        );
    }

    #[test]
    fn a_200_rewrite_stays_in_the_site() {
        assert_eq!(red("/app/* /app/index.html 200").dynamic[0].status, 200);
        let e = red_err("/a https://example.com/ 200");
        assert_eq!(e.line, 1);
        assert!(e.reason.contains("within the site"), "{e}");
    }

    #[test]
    fn the_first_line_for_a_static_source_wins() {
        let r = red("/a /first\n/a /second 301");
        assert_eq!(r.static_rules["/a"].to, "/first");
        assert_eq!(r.static_rules["/a"].line, 1);
    }

    #[test]
    fn splats_and_placeholders() {
        let r = red("/movies/:title /media/:title\n/a/* /b/:splat\n/x/:a/:b /y/:b/:a 301");
        assert_eq!(r.dynamic.len(), 3);
        assert!(r.static_rules.is_empty());
        // A port or a scheme is not a placeholder.
        red("/p https://example.com:8080/x");
    }

    #[test]
    fn redirect_errors_name_file_line_and_reason() {
        let cases: &[(&str, usize, &str)] = &[
            ("/a", 1, "found 1 field"),
            ("\n/a /b 301 extra", 2, "found 4 fields"),
            ("/a /b 404", 1, "status `404`"),
            ("/a /b 301!", 1, "Netlify"),
            ("/a /b abc", 1, "status `abc`"),
            ("a /b", 1, "must be a path"),
            ("https://x.com/a /b", 1, "domain-level"),
            ("/a?x=1 /b", 1, "query-parameter"),
            ("/a/*/b/* /c", 1, "2 splats"),
            ("/a/:x/:x /c", 1, "`:x` twice"),
            ("/a/:splat /c", 1, "`:splat` is the name of `*`"),
            ("/a b/c", 1, "destination `b/c`"),
            ("/a/:x /b/:y", 1, "`:y`"),
            ("/a /b/:splat", 1, "`:splat`"),
        ];
        for (text, line, reason) in cases {
            let e = red_err(text);
            assert_eq!(e.line, *line, "{text}: {e}");
            assert!(e.reason.contains(reason), "{text}: {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("site/_redirects:{line}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn redirect_limits() {
        let long = format!("/a /{}", "b".repeat(MAX_REDIRECT_LINE));
        assert!(red_err(&long).reason.contains("limit is 1000"));
        let ok = format!("/a /{}", "b".repeat(MAX_REDIRECT_LINE - 4));
        red(&ok);

        let statics: String = (0..MAX_STATIC_REDIRECTS)
            .map(|i| format!("/s{i} /t\n"))
            .collect();
        assert_eq!(red(&statics).static_rules.len(), MAX_STATIC_REDIRECTS);
        let e = red_err(&format!("{statics}/one-more /t\n"));
        assert_eq!(e.line, MAX_STATIC_REDIRECTS + 1);
        assert!(e.reason.contains("2000 static"));

        let dynamic: String = (0..MAX_DYNAMIC_REDIRECTS)
            .map(|i| format!("/d{i}/* /t\n"))
            .collect();
        assert_eq!(red(&dynamic).dynamic.len(), MAX_DYNAMIC_REDIRECTS);
        let e = red_err(&format!("{statics}{dynamic}/x/:y /t\n"));
        assert_eq!(e.line, MAX_STATIC_REDIRECTS + MAX_DYNAMIC_REDIRECTS + 1);
        assert!(e.reason.contains("100 dynamic"));
    }

    #[test]
    fn headers_produce_the_documented_shape() {
        let h = hdr("# c\n/assets/*\n  Cache-Control: public, max-age=31536000\n  ! X-Robots-Tag\n\n/*\n  X-Frame-Options: DENY\n");
        assert_eq!(
            serde_json::to_value(&h).unwrap(),
            json!([
                { "pattern": "/assets/*", "set": [["cache-control", "public, max-age=31536000"]], "unset": ["x-robots-tag"] },
                { "pattern": "/*", "set": [["x-frame-options", "DENY"]], "unset": [] }
            ])
        );
        let back: Vec<HeaderRule> =
            serde_json::from_value(serde_json::to_value(&h).unwrap()).unwrap();
        assert_eq!(back, h);
    }

    #[test]
    fn headers_join_a_repeated_name_and_accept_pages_forms() {
        let h = hdr("/a\n  Link: </x.css>; rel=preload\n  link: </y.js>; rel=preload\n");
        assert_eq!(
            h[0].set,
            vec![(
                "link".into(),
                "</x.css>; rel=preload, </y.js>; rel=preload".into()
            )]
        );
        // Unindented header lines, absolute patterns, placeholders, empty values.
        let h = hdr("https://:project.example.com/*\nX-Robots-Tag: noindex\n/movies/:title\n\tx-movie: :title\n\tx-empty:\n");
        assert_eq!(h[0].pattern, "https://:project.example.com/*");
        assert_eq!(
            h[1].set,
            vec![
                ("x-movie".into(), ":title".into()),
                ("x-empty".into(), String::new())
            ]
        );
        // `! Name` after a set in the same block wins; a pattern with nothing under it is dropped.
        let h = hdr("/a\n  X-A: 1\n  ! x-a\n/b\n");
        assert_eq!(
            h,
            vec![HeaderRule {
                pattern: "/a".into(),
                set: vec![],
                unset: vec!["x-a".into()]
            }]
        );
    }

    #[test]
    fn header_errors_name_file_line_and_reason() {
        let cases: &[(&str, usize, &str)] = &[
            ("  X-A: 1", 1, "before any path pattern"),
            ("/a\n  nonsense", 2, "expected `Name: value`"),
            ("/a\n  Bad Name: 1", 2, "not a valid header name"),
            ("/a\n  ! ", 2, "not a valid header name"),
            ("/a\n  X-Content-Type-Options: none", 2, "nosniff"),
            ("/a\n  ! X-Content-Type-Options", 2, "nosniff"),
            ("/a\n  Content-Length: 1", 2, "cannot be changed"),
            ("/a\n  X-A: caf\u{e9}", 2, "printable ASCII"),
            ("/a\n  X-A: a\u{7}b", 2, "printable ASCII"),
            ("/a/*/*\n  X-A: 1", 1, "2 splats"),
            ("/a/:x/:x\n  X-A: 1", 1, "`:x` twice"),
            ("/a b\n  X-A: 1", 1, "whitespace"),
        ];
        for (text, line, reason) in cases {
            let e = hdr_err(text);
            assert_eq!(e.line, *line, "{text}: {e}");
            assert!(e.reason.contains(reason), "{text}: {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("site/_headers:{line}: ")),
                "{e}"
            );
        }
    }

    #[test]
    fn header_limits() {
        let long = format!("/a\n  X-A: {}", "v".repeat(MAX_HEADER_LINE));
        let e = hdr_err(&long);
        assert_eq!(e.line, 2);
        assert!(e.reason.contains("limit is 2000"));
        let rules: String = (0..MAX_HEADER_RULES)
            .map(|i| format!("/p{i}\n  X-A: 1\n"))
            .collect();
        assert_eq!(hdr(&rules).len(), MAX_HEADER_RULES);
        let e = hdr_err(&format!("{rules}/over\n  X-A: 1\n"));
        assert_eq!(e.line, 2 * MAX_HEADER_RULES + 1);
        assert!(e.reason.contains("100 header rules"));
    }

    #[test]
    fn header_lines_per_rule_and_file_bytes_are_bounded() {
        let lines = |n: usize| -> String {
            let mut t = String::from("/a\n");
            for i in 0..n {
                t.push_str(&format!("  X-H{i}: v\n"));
            }
            t
        };
        assert_eq!(hdr(&lines(MAX_HEADER_LINES_PER_RULE))[0].set.len(), 100);
        let e = hdr_err(&lines(MAX_HEADER_LINES_PER_RULE + 1));
        assert_eq!(e.line, MAX_HEADER_LINES_PER_RULE + 2);
        assert!(e.reason.contains("more than 100 header lines"), "{e}");
        // `! Name` lines count too.
        let unset = format!("/a\n{}", "  ! X-A\n".repeat(101));
        assert!(hdr_err(&unset).reason.contains("header lines"));

        let big = format!("/a\n  X-A: {}\n", "v".repeat(1_900)).repeat(40);
        let e = hdr_err(&big);
        assert!(e.reason.contains("65,536 bytes (64 KiB)"), "{e}");
        // The line where the bound is passed: 35 rules of 1,910 bytes fit in 64 KiB.
        assert_eq!(e.line, 70);
        let red_big = format!("/old/{} /new 301\n", "a".repeat(140)).repeat(2_000);
        let e = red_err(&red_big);
        assert!(e.reason.contains("262,144 bytes (256 KiB)"), "{e}");
    }

    #[test]
    fn platform_headers_cannot_be_set_and_a_bom_is_ignored() {
        assert!(hdr_err("/a\n  X-Tenant: evil").reason.contains("platform"));
        assert!(hdr_err("/a\n  ETag: x").reason.contains("hash"));
        assert!(hdr_err("/a\n  ! etag").reason.contains("cannot be changed"));
        assert_eq!(hdr("\u{feff}/a\n  X-A: 1\n").len(), 1);
        assert_eq!(red("\u{feff}/a /b\n").static_rules.len(), 1);
        assert_eq!(thousands(1_048_576), "1,048,576");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn crlf_files_parse() {
        assert_eq!(red("/a /b 301\r\n/c /d\r\n").static_rules.len(), 2);
        assert_eq!(hdr("/a\r\n  X-A: 1\r\n")[0].set[0].1, "1");
    }
}
