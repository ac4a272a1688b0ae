//! Rendering reports, and everything that goes to stderr: progress, notes and warnings.
//!
//! A command returns a [`Report`]; [`emit`] turns it into a comfy-table (or `--json`) on stdout.
//! Both renderings come from the same report value, so they cannot drift apart. Only this module and
//! `main` write to stdout.
//!
//! Diagnostics go through the `log` facade from every layer (transport, storage, commands), and
//! one stderr logger ([`init_logger`]) writes them: `warn` as `cfsetup: warning: …`, `info` as
//! `cfsetup: note: …`, `debug` (the request log) as `cfsetup: debug: …`. `-q` keeps warnings and
//! notes off, `-v` adds debug lines, and colour follows `--color` and `NO_COLOR` for stderr. Only
//! cfsetup's own records are written (a dependency's `log` output never is). Errors are not logged:
//! `main` prints each once.
//!
//! It owns stdout and stderr: reports, the logger, the `[y/N]` prompt. It imports only `cli`'s
//! colour choice, so any layer may log through the `log` facade; it must not import config, the API
//! client, storage or commands.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

use comfy_table::{presets, Cell, Color, ContentArrangement, Table};
use serde::Serialize;

use crate::cli::ColorChoice;

/// `-q`, nothing, or `-v`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// How the report and progress are shown.
#[derive(Debug, Clone, Copy)]
pub struct OutputSettings {
    pub json: bool,
    pub verbosity: Verbosity,
    pub color: ColorChoice,
}

/// What a command hands back. `render` writes the human form; `to_json` the machine form.
pub trait Report {
    fn render(&self, out: &mut Renderer);
    fn to_json(&self) -> serde_json::Value;
    /// The exit status this outcome calls for (3 when a permission check failed).
    fn exit_code(&self) -> u8 {
        0
    }
    /// With a non-zero [`Report::exit_code`]: what failed, one sentence each. `--json` then carries
    /// them as the documented `error` object ([`error_of`]), and the text output ends with them on
    /// stderr, so a run that exits non-zero never ends with warnings only.
    fn failures(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The `error` object of a report that exits non-zero (the shape of docs/cli.md's errors: `kind`,
/// `message`, `hint`, `exit_code`); `None` for a success.
pub fn error_of(report: &dyn Report) -> Option<serde_json::Value> {
    let code = report.exit_code();
    if code == 0 {
        return None;
    }
    let (kind, fallback) = match code {
        3 => ("checks_failed", "at least one permission check failed"),
        130 => ("interrupted", "interrupted (Ctrl-C or SIGTERM)"),
        _ => (
            "partial",
            "only part of the work was done; see the warnings",
        ),
    };
    let failures = report.failures();
    let message = if failures.is_empty() {
        fallback.to_string()
    } else {
        failures.join("; ")
    };
    Some(serde_json::json!({
        "kind": kind,
        "message": message,
        "hint": serde_json::Value::Null,
        "exit_code": code,
    }))
}

/// `to_json` for any serialisable report.
pub fn json_of<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value)
        .unwrap_or_else(|e| serde_json::json!({ "error": format!("cannot serialise report: {e}") }))
}

/// Builds the human rendering of a report.
pub struct Renderer {
    buf: String,
    color: bool,
}

impl Renderer {
    pub fn new(color: bool) -> Self {
        Renderer {
            buf: String::new(),
            color,
        }
    }

    pub fn line(&mut self, text: impl AsRef<str>) {
        self.buf.push_str(text.as_ref());
        self.buf.push('\n');
    }

    pub fn blank(&mut self) {
        if !self.buf.is_empty() && !self.buf.ends_with("\n\n") {
            self.buf.push('\n');
        }
    }

    pub fn heading(&mut self, text: impl AsRef<str>) {
        self.blank();
        self.line(text);
    }

    /// A table with a header row. Status words (passed, failed, created, …) are coloured when
    /// colour is on.
    pub fn table(&mut self, header: &[&str], rows: Vec<Vec<String>>) {
        let mut t = Table::new();
        t.load_preset(presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(header.iter().map(|h| Cell::new(*h)));
        if let Some(w) = terminal_width() {
            t.set_width(w);
        } else {
            t.set_width(120);
        }
        for row in rows {
            t.add_row(row.into_iter().map(|c| self.cell(c)));
        }
        self.line(t.to_string());
    }

    /// Two columns without a header: `label  value`.
    pub fn pairs(&mut self, rows: &[(&str, String)]) {
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in rows {
            self.line(format!("{k:width$}  {v}"));
        }
    }

    fn cell(&self, text: String) -> Cell {
        let color = match text.as_str() {
            "passed" | "created" | "updated" | "active" | "uploaded" | "deleted" => {
                Some(Color::Green)
            }
            "failed" | "error" | "conflict" => Some(Color::Red),
            "skipped" | "pending" | "not run" | "warning" => Some(Color::Yellow),
            _ => None,
        };
        match color {
            Some(c) if self.color => Cell::new(text).fg(c),
            _ => Cell::new(text),
        }
    }

    pub fn finish(self) -> String {
        self.buf
    }
}

fn terminal_width() -> Option<u16> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok())
}

/// Prints the report on stdout: JSON with `--json`, tables otherwise.
pub fn emit(report: &dyn Report, settings: &OutputSettings) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let error = error_of(report);
    if settings.json {
        let mut json = report.to_json();
        if let (Some(e), serde_json::Value::Object(map)) = (&error, &mut json) {
            if map.get("error").is_none_or(serde_json::Value::is_null) {
                map.insert("error".into(), e.clone());
            }
        }
        let text = serde_json::to_string_pretty(&json).unwrap_or_else(|_| "null".to_string());
        writeln!(stdout, "{text}")?;
    } else {
        let color = use_color(settings.color, std::io::stdout().is_terminal());
        let mut r = Renderer::new(color);
        report.render(&mut r);
        write!(stdout, "{}", r.finish())?;
    }
    drop(stdout);
    // A run that failed in part ends with what failed, not with warnings only.
    if let Some(e) = error.filter(|_| report.exit_code() == 1) {
        if let Some(m) = e["message"].as_str() {
            eprintln!("cfsetup: error: {m}");
        }
    }
    Ok(())
}

/// The human rendering of a report on stdout, without colour (for the report inside an error).
pub fn emit_text(report: &dyn Report) -> std::io::Result<()> {
    let mut r = Renderer::new(false);
    report.render(&mut r);
    write!(std::io::stdout().lock(), "{}", r.finish())
}

/// Colour on only for a terminal without NO_COLOR, unless forced either way.
pub fn use_color(choice: ColorChoice, is_terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        }
    }
}

/// A run that did part of its work before it failed, e.g. a site that went live whose domain could
/// not be attached. `report` says what did happen (the deploy id, the URLs); it is printed on
/// stdout like a successful report, with the error beside it: with `--json` the report's object
/// gains an `"error"` member. The exit status is 1.
///
/// A command returns it as `Err(PartialFailure::new(done, report, error).into())`.
pub struct PartialFailure {
    /// One sentence saying what was done, e.g. "acme is live at https://acme.getai.page".
    pub done: String,
    pub report: Box<dyn Report + Send + Sync>,
    pub error: anyhow::Error,
}

impl PartialFailure {
    pub fn new(
        done: impl Into<String>,
        report: Box<dyn Report + Send + Sync>,
        error: anyhow::Error,
    ) -> Self {
        PartialFailure {
            done: done.into(),
            report,
            error,
        }
    }
}

impl std::fmt::Debug for PartialFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartialFailure")
            .field("done", &self.done)
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for PartialFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "only part of the work was done: {}", self.done)
    }
}

impl std::error::Error for PartialFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.error.as_ref())
    }
}

/// The stderr side: notes, warnings and progress bars, shaped by `-q`/`-v`.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub settings: OutputSettings,
}

impl Ui {
    pub fn new(settings: OutputSettings) -> Self {
        Ui { settings }
    }

    pub fn verbose(&self) -> bool {
        self.settings.verbosity == Verbosity::Verbose
    }

    pub fn quiet(&self) -> bool {
        self.settings.verbosity == Verbosity::Quiet
    }

    /// `cfsetup: note: …` unless `-q` (through the logger).
    pub fn note(&self, text: impl AsRef<str>) {
        log::info!("{}", text.as_ref());
    }

    /// `cfsetup: warning: …` unless `-q` (through the logger).
    pub fn warn(&self, text: impl AsRef<str>) {
        log::warn!("{}", text.as_ref());
    }

    /// A progress bar on stderr when stderr is a terminal and not `-q`. When stderr is not a
    /// terminal (CI logs), a plain `cfsetup: progress: …` line every few seconds instead (as
    /// wrangler does), so a long upload is not silent; `CFSETUP_PROGRESS_SECS` sets the interval
    /// (default 5).
    pub fn progress(&self, len: u64, what: &str) -> indicatif::ProgressBar {
        if self.quiet() {
            return indicatif::ProgressBar::hidden();
        }
        if !std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::hidden();
            bar.set_length(len);
            let every = std::env::var("CFSETUP_PROGRESS_SECS")
                .ok()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s > 0.0)
                .map_or(Duration::from_secs(5), Duration::from_secs_f64);
            let (ticker, what) = (bar.clone(), what.to_string());
            std::thread::spawn(move || {
                let start = std::time::Instant::now();
                loop {
                    std::thread::sleep(every);
                    if ticker.is_finished() {
                        break;
                    }
                    eprintln!(
                        "cfsetup: progress: {what}: {}/{} ({}s)",
                        ticker.position(),
                        ticker.length().unwrap_or(0),
                        start.elapsed().as_secs()
                    );
                }
            });
            return bar;
        }
        let bar = indicatif::ProgressBar::new(len);
        let style = indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}

/// The one stderr logger: see the module doc.
struct StderrLogger {
    level: log::LevelFilter,
    color: bool,
}

impl StderrLogger {
    fn line(&self, record: &log::Record<'_>) -> String {
        let (word, paint) = match record.level() {
            log::Level::Error => ("error", "\x1b[31m"),
            log::Level::Warn => ("warning", "\x1b[33m"),
            log::Level::Info => ("note", "\x1b[36m"),
            log::Level::Debug | log::Level::Trace => ("debug", "\x1b[2m"),
        };
        if self.color {
            format!("cfsetup: {paint}{word}\x1b[0m: {}", record.args())
        } else {
            format!("cfsetup: {word}: {}", record.args())
        }
    }
}

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= self.level && metadata.target().starts_with("cfsetup")
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            // One write per line, so lines from concurrent tasks never interleave.
            let line = self.line(record) + "\n";
            let _ = std::io::stderr().lock().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

/// The level `-q` / (none) / `-v` asks for: warnings and notes are off with `-q`; debug lines
/// (the request log) are on with `-v`.
pub fn log_level(verbosity: Verbosity) -> log::LevelFilter {
    match verbosity {
        Verbosity::Quiet => log::LevelFilter::Error,
        Verbosity::Normal => log::LevelFilter::Info,
        Verbosity::Verbose => log::LevelFilter::Debug,
    }
}

/// Installs the stderr logger for this process (once; later calls keep the first).
pub fn init_logger(settings: &OutputSettings) {
    let level = log_level(settings.verbosity);
    let logger = StderrLogger {
        level,
        color: use_color(settings.color, std::io::stderr().is_terminal()),
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(level);
    }
}

/// Whether stdin is a terminal: a command that asks before it deletes refuses without `--yes`
/// when there is no one to ask.
fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Whether a command that deletes should ask first: not with `--yes` or `--dry-run`. When it
/// should but stdin is not a terminal (no one to ask), a usage error: `what` says what the
/// command removes, `preview` is the command line with `--dry-run` that shows it.
pub fn must_ask(
    yes: bool,
    dry_run: bool,
    what: &str,
    preview: &str,
) -> Result<bool, crate::error::UsageError> {
    let ask = !yes && !dry_run;
    if ask && !stdin_is_terminal() {
        return Err(
            crate::error::usage!("{what}; pass --yes to confirm").with_hint(format!(
                "stdin is not a terminal, so there is no one to ask; `{preview}` shows what \
                 would go"
            )),
        );
    }
    Ok(ask)
}

/// Asks `question` (ending in `[y/N] `) on stderr and reads one line of stdin: `true` for `y`,
/// `Y` or `yes`, `false` for anything else, the empty line included.
pub fn confirm(question: &str) -> std::io::Result<bool> {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_carry_the_house_prefix_and_levels_follow_q_and_v() {
        let logger = StderrLogger {
            level: log::LevelFilter::Info,
            color: false,
        };
        let line = |level| {
            logger.line(
                &log::Record::builder()
                    .args(format_args!("hello"))
                    .level(level)
                    .target("cfsetup::x")
                    .build(),
            )
        };
        assert_eq!(line(log::Level::Warn), "cfsetup: warning: hello");
        assert_eq!(line(log::Level::Info), "cfsetup: note: hello");
        assert_eq!(line(log::Level::Debug), "cfsetup: debug: hello");
        assert_eq!(log_level(Verbosity::Quiet), log::LevelFilter::Error);
        assert_eq!(log_level(Verbosity::Verbose), log::LevelFilter::Debug);
        let dep = log::Metadata::builder()
            .level(log::Level::Warn)
            .target("rustls::client")
            .build();
        assert!(!log::Log::enabled(&logger, &dep), "only cfsetup's records");
    }

    #[test]
    fn colour_follows_the_choice_and_the_terminal() {
        assert!(use_color(ColorChoice::Always, false));
        assert!(!use_color(ColorChoice::Never, true));
        assert!(!use_color(ColorChoice::Auto, false));
    }

    #[test]
    fn tables_render_rows() {
        let mut r = Renderer::new(false);
        r.table(
            &["permission", "result"],
            vec![vec!["Zone Read".into(), "passed".into()]],
        );
        let s = r.finish();
        assert!(s.contains("Zone Read") && s.contains("passed"), "{s}");
    }
}
