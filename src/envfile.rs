//! Writing one variable into a `.env` file, safely: `create-token --write-env` and
//! `rotate-token --write-env` put a new `CLOUDFLARE_API_TOKEN` here instead of on the screen.
//!
//! The rules (DESIGN.md "Safety"): every other line is kept byte for byte, comments and blank
//! lines included; an existing assignment of the variable is replaced where it stands (a later
//! duplicate is dropped, so the file cannot hold two values); the write is atomic (a temporary file
//! in the same directory, then a rename), so a crash leaves the old file or the new one, never half
//! of one; and the file ends up with mode 0600. [`git_exposure`] tells the caller when the file
//! would be committed.
//!
//! This module knows nothing about Cloudflare or the API client.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What [`set_var`] did.
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

/// Sets `name=value` in the `.env` file at `path`, keeping every other line.
///
/// `value` is written bare; it must not need quoting (tokens are printable ASCII without spaces
/// or quotes, which `config.rs` checks for credentials). Lines such as `export NAME=…` and
/// `NAME = …` count as assignments of `name`.
pub fn set_var(path: &Path, name: &str, value: &str) -> std::io::Result<Change> {
    if value
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '#' | '\\'))
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("the value for {name} contains characters that would need quoting"),
        ));
    }
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let (text, change) = match &existing {
        None => (format!("{name}={value}\n"), Change::Created),
        Some(old) => update(old, name, value),
    };
    write_atomic(path, text.as_bytes())?;
    Ok(change)
}

/// The new file content: the old one with `name` set to `value`.
fn update(old: &str, name: &str, value: &str) -> (String, Change) {
    let mut out = String::with_capacity(old.len() + name.len() + value.len() + 2);
    let mut replaced = false;
    for line in old.split_inclusive('\n') {
        if assigns(line, name) {
            if !replaced {
                out.push_str(&format!("{name}={value}"));
                out.push_str(line_ending(line));
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
    let t = t
        .strip_prefix("export")
        .filter(|rest| rest.starts_with([' ', '\t']))
        .map_or(t, str::trim_start);
    t.strip_prefix(name)
        .is_some_and(|rest| rest.trim_start().starts_with('='))
}

/// Writes `bytes` to a temporary file beside `path` with mode 0600, then renames it over `path`.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ".env".into());
    let tmp = dir.join(format!(
        ".{file_name}.cfsetup-{}-{:08x}.tmp",
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp)?;
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
        let (new, change) = update(old, "CLOUDFLARE_API_TOKEN", "cfut_new");
        assert_eq!(change, Change::Replaced);
        assert_eq!(
            new,
            "# platform\nCLOUDFLARE_ACCOUNT_ID=abc\n\nCLOUDFLARE_API_TOKEN=cfut_new\nPLATFORM_DOMAIN=\"getai.page\" # ok\n"
        );
    }

    #[test]
    fn appends_when_absent_and_drops_duplicates() {
        let (new, change) = update("A=1", "CLOUDFLARE_API_TOKEN", "x");
        assert_eq!(change, Change::Appended);
        assert_eq!(new, "A=1\nCLOUDFLARE_API_TOKEN=x\n");
        let (new, _) = update("T=1\r\nB=2\r\nT = 3\r\n", "T", "x");
        assert_eq!(new, "T=x\r\nB=2\r\n");
        // A longer name with the same start is another variable.
        let (new, change) = update("CLOUDFLARE_API_TOKEN_OLD=1\n", "CLOUDFLARE_API_TOKEN", "x");
        assert_eq!(change, Change::Appended);
        assert!(new.starts_with("CLOUDFLARE_API_TOKEN_OLD=1\n"));
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
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, [".env"], "no temporary file is left behind");
        assert!(set_var(&path, "T", "has space").is_err());
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
