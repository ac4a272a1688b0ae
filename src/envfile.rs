//! The `.env` file: reading it ([`parse`]) and writing one variable into it safely ([`Writer`]):
//! `create-token --write-env` and `rotate-token --write-env` put a new `CLOUDFLARE_API_TOKEN` here
//! instead of on the screen.
//!
//! Reading is done here rather than by dotenvy because a `.env` holds secrets and dotenvy's errors
//! quote the offending line, value included, and give a character offset where a line number is
//! wanted. [`parse`] accepts the usual form (`NAME=value`, `export NAME=value`, `'single'` and
//! `"double"` quotes, `#` comments, a UTF-8 byte-order mark) and its errors name the line and the
//! variable, never a value. Values are taken literally: there is no `$VAR` expansion.
//!
//! The writing rules (docs/design.md "Safety"): every other line is kept byte for byte, comments and
//! blank lines included; an existing assignment of the variable is replaced where it stands, with
//! its `export ` prefix (a later duplicate is dropped, so the file cannot hold two values); the
//! write is atomic (a temporary file in the same directory, then a rename), so a crash leaves the
//! old file or the new one, never half of one; a symlinked file is updated where the link points;
//! and the file ends up with mode 0600. The read-modify-write holds an advisory lock (on Unix on the
//! target's folder, so nothing is left behind), so two runs at once cannot interleave; and a value that another run wrote
//! while this one was under way is never overwritten silently: it is kept as a commented line above
//! the new one (see [`Writer::set`]). With [`Writer::keeping_replaced`], the value this write
//! replaces is kept too, as a commented, dated line naming the companion (the token's id), since a
//! replaced secret may be the only copy of something still in use. [`git_exposure`] tells the
//! caller when the file would be committed.
//!
//! This module knows nothing about Cloudflare or the API client: it imports nothing of the crate.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Why a `.env` file could not be read. Its text names the line and the variable, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// The variable being assigned, when the line got that far (and its name is safe to show).
    pub name: Option<String>,
    pub problem: &'static str,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.name {
            Some(n) => write!(f, "line {}: {n}: {}", self.line, self.problem),
            None => write!(f, "line {}: {}", self.line, self.problem),
        }
    }
}

impl std::error::Error for ParseError {}

/// Reads `.env` text into `(name, value)` pairs, in order (a later one overrides an earlier one
/// when collected into a map). A leading UTF-8 byte-order mark is skipped.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut p = Scanner {
        chars: text.chars().collect(),
        pos: 0,
        line: 1,
    };
    loop {
        p.skip_blank();
        let Some(c) = p.peek() else { break };
        if c == '#' {
            p.skip_line();
            continue;
        }
        if c == '\n' {
            p.bump();
            continue;
        }
        let line = p.line;
        let mut name = p.word();
        if name == "export" && p.peek().is_some_and(|c| c == ' ' || c == '\t') {
            p.skip_blank();
            name = p.word();
        }
        let err = |name: Option<&str>, problem| ParseError {
            line,
            name: name.filter(|n| safe_name(n)).map(str::to_string),
            problem,
        };
        if name.is_empty() {
            return Err(err(
                None,
                "expected NAME=value (a name of letters, digits and _)",
            ));
        }
        if name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(err(Some(&name), "a name must not start with a digit"));
        }
        p.skip_blank();
        if p.peek() != Some('=') {
            return Err(err(
                Some(&name),
                "has no `=` after the name (each line is NAME=value)",
            ));
        }
        p.bump();
        p.skip_blank();
        let value = match p.peek() {
            Some(q @ ('\'' | '"')) => {
                p.bump();
                let v = p.quoted(q).ok_or_else(|| err(Some(&name), unclosed(q)))?;
                p.skip_blank();
                match p.peek() {
                    None | Some('\n') | Some('#') => {}
                    Some(_) => {
                        return Err(err(
                            Some(&name),
                            "has text after the closing quote (quote the whole value)",
                        ))
                    }
                }
                p.skip_line();
                v
            }
            _ => p.unquoted(),
        };
        out.push((name, value));
    }
    Ok(out)
}

fn unclosed(q: char) -> &'static str {
    if q == '"' {
        "the value's opening \" is never closed"
    } else {
        "the value's opening ' is never closed"
    }
}

/// A name shown in an error: an identifier that cannot be a pasted secret (no lowercase letters,
/// at most 64 characters), so that a line like `CLOUDFLARE_GLOBAL_KEYabc…` is never echoed.
fn safe_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

struct Scanner {
    chars: Vec<char>,
    pos: usize,
    line: usize,
}

impl Scanner {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Spaces, tabs and carriage returns (never a newline).
    fn skip_blank(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\r')) {
            self.bump();
        }
    }

    /// To just past the end of this line.
    fn skip_line(&mut self) {
        while let Some(c) = self.bump() {
            if c == '\n' {
                break;
            }
        }
    }

    fn word(&mut self) -> String {
        let mut w = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                w.push(c);
                self.bump();
            } else {
                break;
            }
        }
        w
    }

    /// A quoted value after its opening quote, up to the closing one (lines may be spanned). In
    /// double quotes `\\`, `\"`, `\n`, `\r`, `\t` and `\$` are escapes. `None` if never closed.
    fn quoted(&mut self, q: char) -> Option<String> {
        let mut v = String::new();
        loop {
            let c = self.bump()?;
            if c == q {
                return Some(v);
            }
            if q == '"' && c == '\\' {
                match self.bump()? {
                    'n' => v.push('\n'),
                    'r' => v.push('\r'),
                    't' => v.push('\t'),
                    other @ ('\\' | '"' | '$') => v.push(other),
                    other => {
                        v.push('\\');
                        v.push(other);
                    }
                }
            } else {
                v.push(c);
            }
        }
    }

    /// An unquoted value: up to the end of the line or a ` #` comment, trimmed.
    fn unquoted(&mut self) -> String {
        let mut v = String::new();
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            if c == '#' && (v.is_empty() || v.ends_with([' ', '\t'])) {
                self.skip_line();
                return v.trim().to_string();
            }
            v.push(c);
            self.bump();
        }
        self.bump();
        v.trim().to_string()
    }
}

/// What [`Writer::set`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The file did not exist and was created.
    Created,
    /// An existing line was replaced in place.
    Replaced,
    /// The variable was appended to an existing file.
    Appended,
}

/// The outcome of [`Writer::set`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub change: Change,
    /// Another run changed the variable while this one was under way; its value was kept as a
    /// commented line above the new one instead of being overwritten.
    pub kept_other: bool,
    /// With [`Writer::keeping_replaced`]: the value that was replaced (another than the new one)
    /// is kept as a commented, dated line above the new one. `Some(companion)`: its companion's
    /// value then (the old token's id), when the file had one.
    pub kept_replaced: Option<Option<String>>,
}

/// One variable of one `.env` file, checked to be writable before anything else happens (so a
/// command can refuse before it creates a token whose value would have nowhere to go).
#[derive(Debug)]
pub struct Writer {
    /// The path as the user gave it.
    path: PathBuf,
    /// Where it really is: symlinks followed.
    target: PathBuf,
    lock: PathBuf,
    name: String,
    /// The variable's line when the run started, to notice another run writing it meanwhile.
    before: Option<String>,
    /// Keep the replaced value as a commented, dated line ([`Writer::keeping_replaced`]).
    keep_replaced: bool,
}

impl Writer {
    /// Resolves `path` (following symlinks), checks that its folder and the file can be written,
    /// creates the lock file beside it, and notes the variable's current line.
    pub fn prepare(path: &Path, name: &str) -> std::io::Result<Writer> {
        let target = resolve(path)?;
        let dir = parent_dir(&target);
        if !dir.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("the folder {} does not exist", dir.display()),
            ));
        }
        if target.is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "it is a folder, not a file",
            ));
        }
        if target.exists() {
            // Opened for writing without truncating: proves the permission, changes nothing.
            std::fs::OpenOptions::new().write(true).open(&target)?;
        }
        // The atomic write needs a new file in the folder; so does the lock file.
        let probe = temp_path(&target);
        private_options().open(&probe)?;
        let _ = std::fs::remove_file(&probe);
        let lock = lock_path(&target);
        open_lock(&lock)?;
        let mut w = Writer {
            path: path.to_path_buf(),
            target,
            lock,
            name: name.to_string(),
            before: None,
            keep_replaced: false,
        };
        w.before = w.current_line()?;
        Ok(w)
    }

    /// Keeps the value a write replaces as a commented, dated line above the new one (never
    /// printed anywhere), naming the companion's old value (the token's id) when there is one.
    pub fn keeping_replaced(mut self) -> Self {
        self.keep_replaced = true;
        self
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets the variable to `value`, holding the lock across the read-modify-write.
    ///
    /// `value` is written bare; it must not need quoting (tokens are printable ASCII without
    /// spaces or quotes, which `config.rs` checks for credentials).
    pub fn set(&self, value: &str) -> std::io::Result<Written> {
        self.set_with(value, None)
    }

    /// [`Writer::set`], and under the same lock `companion` (a name and a value, such as the
    /// token's id), a new one going right after the variable's line. Two runs writing at once
    /// thus never leave one run's value beside the other's companion.
    pub fn set_with(
        &self,
        value: &str,
        companion: Option<(&str, &str)>,
    ) -> std::io::Result<Written> {
        for v in std::iter::once(value).chain(companion.map(|(_, v)| v)) {
            self.check_bare(v)?;
        }
        let lock = open_lock(&self.lock)?;
        fs4::FileExt::lock(&lock)?;
        let existing = read_existing(&self.target)?;
        let now = existing
            .as_deref()
            .and_then(|t| first_assignment(t, &self.name));
        let kept_other = now.is_some() && now != self.before;
        let old_value = existing
            .as_deref()
            .and_then(|t| parse(t).ok())
            .and_then(|pairs| pairs.into_iter().find(|(n, _)| *n == self.name))
            .map(|(_, v)| v);
        let old_companion = companion.and_then(|(cname, _)| {
            existing
                .as_deref()
                .and_then(|t| parse(t).ok())
                .and_then(|pairs| pairs.into_iter().find(|(n, _)| n == cname))
                .map(|(_, v)| v)
        });
        let kept_replaced = (self.keep_replaced
            && !kept_other
            && old_value
                .as_deref()
                .is_some_and(|v| !v.is_empty() && v != value))
        .then(|| old_companion.clone());
        let keep = if kept_other {
            Some(
                "cfsetup: another run wrote the value below while this one was under way; kept so \
                 that it is not lost"
                    .to_string(),
            )
        } else if kept_replaced.is_some() {
            let when = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
            let whose = match (companion, &old_companion) {
                (Some((cname, _)), Some(id)) => format!(" ({cname}={id})"),
                _ => String::new(),
            };
            Some(format!(
                "cfsetup {when}: replaced the value below{whose}; kept so that it is not lost \
                 (it stays valid until it is deleted or rolled)"
            ))
        } else {
            None
        };
        let (mut text, change) = match &existing {
            None => (format!("{}={value}\n", self.name), Change::Created),
            Some(old) => update(old, &self.name, value, keep.as_deref(), None),
        };
        if let Some((name, v)) = companion {
            text = update(&text, name, v, None, Some(&self.name)).0;
        }
        write_atomic(&self.target, text.as_bytes())?;
        drop(lock);
        Ok(Written {
            change,
            kept_other,
            kept_replaced,
        })
    }

    fn check_bare(&self, value: &str) -> std::io::Result<()> {
        if value
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '#' | '\\'))
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "the value for {} contains characters that would need quoting",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    fn current_line(&self) -> std::io::Result<Option<String>> {
        Ok(read_existing(&self.target)?
            .as_deref()
            .and_then(|t| first_assignment(t, &self.name)))
    }
}

/// Sets `name=value` in the `.env` file at `path`, keeping every other line ([`Writer`] in one go).
pub fn set_var(path: &Path, name: &str, value: &str) -> std::io::Result<Change> {
    Writer::prepare(path, name)?.set(value).map(|w| w.change)
}

fn read_existing(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The first line assigning `name`, without its line ending.
fn first_assignment(text: &str, name: &str) -> Option<String> {
    text.split_inclusive('\n')
        .find(|l| assigns(l, name))
        .map(|l| l.trim_end_matches(['\r', '\n']).to_string())
}

/// Follows symlinks to the file they name (which may not exist yet).
fn resolve(path: &Path) -> std::io::Result<PathBuf> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let to = std::fs::read_link(&p)?;
                p = if to.is_absolute() {
                    to
                } else {
                    parent_dir(&p).join(to)
                };
            }
            _ => return Ok(p),
        }
    }
    Err(std::io::Error::other("too many levels of symbolic links"))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The file's name without leading dots: `.env` -> `env`, so helpers are named `.env.…`.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().trim_start_matches('.').to_string())
        .unwrap_or_else(|| "env".into())
}

fn temp_path(target: &Path) -> PathBuf {
    parent_dir(target).join(format!(
        ".{}.cfsetup-{}-{:08x}.tmp",
        file_name(target),
        std::process::id(),
        rand::random::<u32>()
    ))
}

/// What the read-modify-write locks. On Unix, the target's folder itself (an advisory `flock` on
/// the directory): nothing is left in the project folder, and there is no lock file to remove,
/// which would race with a run about to lock it (issue 17: `.env.cfsetup-lock` files were left
/// behind). Elsewhere, a lock file beside the target (`.env.cfsetup-lock` for `.env`), left in
/// place for that reason.
fn lock_path(target: &Path) -> PathBuf {
    if cfg!(unix) {
        parent_dir(target)
    } else {
        parent_dir(target).join(format!(".{}.cfsetup-lock", file_name(target)))
    }
}

/// Opens the lock ([`lock_path`]): the folder for reading on Unix, else the lock file.
fn open_lock(lock: &Path) -> std::io::Result<std::fs::File> {
    if cfg!(unix) {
        std::fs::File::open(lock)
    } else {
        private_options().create_new(false).create(true).open(lock)
    }
}

fn private_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// The new file content: the old one with `name` set to `value`. With `keep_old` (a comment), the
/// old assignment stays as a commented line above the new one, after that comment.
fn update(
    old: &str,
    name: &str,
    value: &str,
    keep_old: Option<&str>,
    beside: Option<&str>,
) -> (String, Change) {
    let mut out = String::with_capacity(old.len() + 2 * (name.len() + value.len()) + 120);
    let mut replaced = false;
    for line in old.split_inclusive('\n') {
        if assigns(line, name) {
            if !replaced {
                let eol = line_ending(line);
                if let Some(why) = keep_old {
                    let eol = if eol.is_empty() { "\n" } else { eol };
                    out.push_str(&format!(
                        "# {why}{eol}# {}{eol}",
                        line.trim_end_matches(['\r', '\n'])
                    ));
                }
                let export = if line.trim_start().starts_with("export") {
                    "export "
                } else {
                    ""
                };
                out.push_str(&format!("{export}{name}={value}"));
                out.push_str(if eol.is_empty() { "\n" } else { eol });
                replaced = true;
            }
            // A second assignment would override the first when the file is read: drop it.
            continue;
        }
        out.push_str(line);
    }
    if replaced {
        return (out, Change::Replaced);
    }
    if let Some(other) = beside {
        if let Some(at) = out.split_inclusive('\n').position(|l| assigns(l, other)) {
            let mut with = String::with_capacity(out.len() + name.len() + value.len() + 2);
            for (i, line) in out.split_inclusive('\n').enumerate() {
                with.push_str(line);
                if i == at {
                    let eol = match line_ending(line) {
                        "" => {
                            with.push('\n');
                            "\n"
                        }
                        e => e,
                    };
                    with.push_str(&format!("{name}={value}{eol}"));
                }
            }
            return (with, Change::Appended);
        }
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("{name}={value}\n"));
    (out, Change::Appended)
}

fn line_ending(line: &str) -> &str {
    if line.ends_with("\r\n") {
        "\r\n"
    } else if line.ends_with('\n') {
        "\n"
    } else {
        ""
    }
}

/// Is this line an assignment of `name` (`NAME=…`, `NAME =…`, `export NAME=…`)?
fn assigns(line: &str, name: &str) -> bool {
    let t = line.trim_start();
    let t = t.strip_prefix('\u{feff}').unwrap_or(t);
    let t = t
        .strip_prefix("export")
        .filter(|rest| rest.starts_with([' ', '\t']))
        .map_or(t, str::trim_start);
    t.strip_prefix(name)
        .is_some_and(|rest| rest.trim_start().starts_with('='))
}

/// Writes `bytes` to a temporary file beside `path` with mode 0600, then renames it over `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = private_options().open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        #[cfg(unix)]
        {
            // The mode given to open() is reduced by the umask; set it exactly.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        }
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A warning when `path` is inside a git work tree and not ignored by git, i.e. `git add .` would
/// commit the secret. `None` when git is absent, the file is not in a repository, or it is ignored.
pub fn git_exposure(path: &Path) -> Option<String> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let git = |args: &[&std::ffi::OsStr]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()
    };
    let in_repo = git(&["rev-parse".as_ref(), "--is-inside-work-tree".as_ref()])?;
    if !in_repo.success() {
        return None;
    }
    let name = path.file_name()?;
    // `check-ignore -q` exits 0 when ignored, 1 when not, 128 on error.
    let ignored = git(&["check-ignore".as_ref(), "-q".as_ref(), name])?;
    if ignored.code() == Some(1) {
        Some(format!(
            "{} is inside a git work tree and is not ignored: add it to .gitignore so the token is \
             never committed",
            path.display()
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_in_place_and_keeps_everything_else() {
        let old = "# platform\nCLOUDFLARE_ACCOUNT_ID=abc\n\nexport CLOUDFLARE_API_TOKEN=old\nPLATFORM_DOMAIN=\"getai.page\" # ok\n";
        let (new, change) = update(old, "CLOUDFLARE_API_TOKEN", "cfut_new", None, None);
        assert_eq!(change, Change::Replaced);
        assert_eq!(
            new,
            "# platform\nCLOUDFLARE_ACCOUNT_ID=abc\n\nexport CLOUDFLARE_API_TOKEN=cfut_new\nPLATFORM_DOMAIN=\"getai.page\" # ok\n",
            "the export prefix is kept"
        );
    }

    #[test]
    fn appends_when_absent_and_drops_duplicates() {
        let (new, change) = update("A=1", "CLOUDFLARE_API_TOKEN", "x", None, None);
        assert_eq!(change, Change::Appended);
        assert_eq!(new, "A=1\nCLOUDFLARE_API_TOKEN=x\n");
        let (new, _) = update("T=1\r\nB=2\r\nT = 3\r\n", "T", "x", None, None);
        assert_eq!(new, "T=x\r\nB=2\r\n");
        // A longer name with the same start is another variable.
        let (new, change) = update(
            "CLOUDFLARE_API_TOKEN_OLD=1\n",
            "CLOUDFLARE_API_TOKEN",
            "x",
            None,
            None,
        );
        assert_eq!(change, Change::Appended);
        assert!(new.starts_with("CLOUDFLARE_API_TOKEN_OLD=1\n"));
        // The last line, without a newline, still gets one.
        let (new, _) = update("A=1\nT=old", "T", "x", None, None);
        assert_eq!(new, "A=1\nT=x\n");
    }

    #[test]
    fn a_new_variable_can_go_beside_another() {
        let (new, change) = update("A=1\nT=v\r\nB=2\n", "T_ID", "x", None, Some("T"));
        assert_eq!(change, Change::Appended);
        assert_eq!(new, "A=1\nT=v\r\nT_ID=x\r\nB=2\n");
        let (new, _) = update("A=1\nT=v", "T_ID", "x", None, Some("T"));
        assert_eq!(new, "A=1\nT=v\nT_ID=x\n");
        let (new, _) = update("A=1\n", "T_ID", "x", None, Some("T"));
        assert_eq!(new, "A=1\nT_ID=x\n");
        let (new, change) = update("T_ID=old\nT=v\n", "T_ID", "x", None, Some("T"));
        assert_eq!(change, Change::Replaced);
        assert_eq!(new, "T_ID=x\nT=v\n");
    }

    #[test]
    fn writes_atomically_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        assert_eq!(set_var(&path, "T", "one").unwrap(), Change::Created);
        std::fs::write(&path, "# keep\nT=one\n").unwrap();
        assert_eq!(set_var(&path, "T", "two").unwrap(), Change::Replaced);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# keep\nT=two\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let mut leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        leftovers.sort();
        let expected: Vec<std::ffi::OsString> = if cfg!(unix) {
            vec![".env".into()]
        } else {
            vec![".env".into(), ".env.cfsetup-lock".into()]
        };
        assert_eq!(
            leftovers, expected,
            "no temporary file is left behind, and on Unix no lock file (the folder is locked)"
        );
        assert!(set_var(&path, "T", "has space").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_symlinked_env_is_updated_where_it_points() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("secrets")).unwrap();
        let real = dir.path().join("secrets/real.env");
        std::fs::write(&real, "A=1\nT=old\n").unwrap();
        let link = dir.path().join(".env");
        std::os::unix::fs::symlink("secrets/real.env", &link).unwrap();
        assert_eq!(set_var(&link, "T", "new").unwrap(), Change::Replaced);
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "A=1\nT=new\n");
        // A link to a file that does not exist yet creates it there.
        let dangling = dir.path().join("other.env");
        std::os::unix::fs::symlink("secrets/new.env", &dangling).unwrap();
        assert_eq!(set_var(&dangling, "T", "x").unwrap(), Change::Created);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("secrets/new.env")).unwrap(),
            "T=x\n"
        );
    }

    #[test]
    fn a_value_written_by_another_run_meanwhile_is_kept_as_a_comment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, "A=1\nexport T=first\n").unwrap();
        let mine = Writer::prepare(&path, "T").unwrap();
        // Another run writes T between our start and our write.
        set_var(&path, "T", "theirs").unwrap();
        let w = mine.set("mine").unwrap();
        assert!(w.kept_other);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "A=1\n# cfsetup: another run wrote the value below while this one was under way; kept \
             so that it is not lost\n# export T=theirs\nexport T=mine\n"
        );
        // Nothing changed meanwhile: a plain replacement.
        let w = Writer::prepare(&path, "T").unwrap().set("again").unwrap();
        assert!(!w.kept_other);
    }

    #[cfg(unix)]
    #[test]
    fn an_unwritable_target_is_found_before_anything_is_written() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        assert!(Writer::prepare(&dir.path().join("nope/.env"), "T").is_err());
        assert!(Writer::prepare(dir.path(), "T").is_err(), "a folder");
        let ro = dir.path().join("ro.env");
        std::fs::write(&ro, "A=1\n").unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o400)).unwrap();
        // root can write anything; the check is only meaningful for other users.
        if std::fs::OpenOptions::new().write(true).open(&ro).is_err() {
            assert!(Writer::prepare(&ro, "T").is_err());
        }
    }

    #[test]
    fn parses_the_usual_forms() {
        let text = "\u{feff}# comment\n\nA=1\nexport B = two words # note\nC='single #x'\n\
                    D=\"dq \\\"x\\\" \\n\"  # c\nE=\nF=\"multi\nline\"\nG=a#b\r\n";
        let got = parse(text).unwrap();
        let want: Vec<(String, String)> = [
            ("A", "1"),
            ("B", "two words"),
            ("C", "single #x"),
            ("D", "dq \"x\" \n"),
            ("E", ""),
            ("F", "multi\nline"),
            ("G", "a#b"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn parse_errors_name_the_line_and_variable_but_never_the_value() {
        let secret = "cfut_abcdefghijklmnopqrstuvwxyz0123456789ABCD";
        let cases = [
            (
                format!("# one\nA=1\nCLOUDFLARE_API_TOKEN=\"{secret}\nB=2\n"),
                3,
                Some("CLOUDFLARE_API_TOKEN"),
            ),
            (
                format!("A=1\nCLOUDFLARE_GLOBAL_KEY='{secret}\n"),
                2,
                Some("CLOUDFLARE_GLOBAL_KEY"),
            ),
            (
                format!("A=1\n\nCLOUDFLARE_GLOBAL_KEY {secret}\n"),
                3,
                Some("CLOUDFLARE_GLOBAL_KEY"),
            ),
            // Glued to the name, the secret would be in the "name": it is not shown.
            (format!("CLOUDFLARE_GLOBAL_KEY{secret}\n"), 1, None),
            (format!("A=\"{secret}\" trailing\n"), 1, Some("A")),
            (format!("{secret}\n"), 1, None),
            (format!("A=1\n\"{secret}\"\n"), 2, None),
        ];
        for (text, line, name) in cases {
            let e = parse(&text).unwrap_err();
            assert_eq!((e.line, e.name.as_deref()), (line, name), "{text:?}");
            let shown = e.to_string();
            assert!(!shown.contains("abcdefghij"), "{shown}");
        }
    }

    #[test]
    fn git_exposure_warns_only_for_tracked_candidates() {
        let has_git = Command::new("git")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, "A=1\n").unwrap();
        assert_eq!(git_exposure(&path), None, "not a repository");
        if !has_git {
            return;
        }
        let ok = Command::new("git")
            .arg("init")
            .arg("-q")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(ok.success());
        assert!(git_exposure(&path).unwrap().contains("not ignored"));
        std::fs::write(dir.path().join(".gitignore"), ".env\n").unwrap();
        assert_eq!(git_exposure(&path), None);
    }
}
