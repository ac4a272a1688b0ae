//! Walking a site folder: which files are published, under which paths, with which hash.
//!
//! Rules (docs/design.md "Safety"):
//! - Dotfiles and dot-folders are skipped unless `include_hidden`; the skipped ones are counted
//!   so the user is told. Version control (`.git`, `.hg`, `.svn`) and secret files (`.env`,
//!   `.env.*`, `.envrc`, `.npmrc`, `.netrc`, `.ssh/`, `.aws/`, … [`NEVER_PUBLISHED`]), in any
//!   letter case, are **never** published, not even with `include_hidden`: they hold history and
//!   secrets, and no site needs them (the flag exists for things like `.well-known/`).
//! - A link is never followed out of the folder. Paths are canonicalised; a symlink that resolves
//!   inside the folder is followed (and published under the link's own path), one that resolves
//!   outside, or nowhere, is skipped with a warning. Loops are cut.
//! - `node_modules` folders are skipped like dotfiles (they are build inputs, not a site), unless
//!   `include_hidden`. `.well-known/` at the top is published: sites need it (security.txt,
//!   apple-app-site-association, ACME challenges).
//! - Site paths are Unicode NFC, so `café` typed on macOS (NFD) and on Linux (NFC) is one path. Two
//!   names that normalise to the same path, or a name with a control character (newline, tab) or
//!   a backslash, are refused, naming the file: they cannot be served as the user expects.
//! - A file over the API's 300 MB object limit (docs/cloudflare-api.md §7; wrangler
//!   `MAX_UPLOAD_SIZE_BYTES`) is refused before anything is hashed or sent.
//! - Files are hashed (SHA-256) by streaming them through a small buffer on a few threads; only
//!   paths, sizes and hashes are kept, never contents.
//!
//! It imports only the error leaf: it reads the disk, never the network.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

use crate::error::{usage, UsageError};

/// The API's limit for one object uploaded over REST: 300 MiB (docs/cloudflare-api.md §7).
pub const MAX_OBJECT_SIZE: u64 = 300 * 1024 * 1024;

/// Skipped unless `--include-hidden`, though their names do not start with a dot.
fn skipped_by_default(name: &str) -> bool {
    name == "node_modules"
}

/// Names never published, even with `--include-hidden`: version control, and the files where
/// tools keep secrets. Compared case-insensitively, since `.ENV` on a case-insensitive disk (macOS,
/// Windows) is the same file to the tool that wrote it.
const NEVER_PUBLISHED: [&str; 17] = [
    ".git",
    ".hg",
    ".svn",
    ".env",
    ".envrc",
    ".npmrc",
    ".yarnrc",
    ".yarnrc.yml",
    ".pypirc",
    ".netrc",
    ".ssh",
    ".aws",
    ".gnupg",
    ".docker",
    ".dev.vars",
    ".git-credentials",
    ".htpasswd",
];

/// Names never published, even with `--include-hidden` ([`NEVER_PUBLISHED`], and `.env.*`).
fn never_published(name: &str) -> bool {
    let lower = name.to_lowercase();
    NEVER_PUBLISHED.contains(&lower.as_str()) || lower.starts_with(".env.")
}

#[derive(Debug, Clone, Copy)]
pub struct WalkOptions {
    pub include_hidden: bool,
    pub max_file_size: u64,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            include_hidden: false,
            max_file_size: MAX_OBJECT_SIZE,
        }
    }
}

/// One file to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteFile {
    /// Where to read it (through any inner symlink).
    pub path: PathBuf,
    /// Its path on the site: `/css/site.css` (raw UTF-8, `/` separators).
    pub rel_url: String,
    pub size: u64,
    /// SHA-256, 64 lowercase hex.
    pub hash: String,
    pub content_type: String,
    /// Modification time when hashed, to notice a file changing during the deploy.
    pub modified: Option<SystemTime>,
}

/// The outcome of a walk: the files, sorted by path, and what was left out.
#[derive(Debug, Default)]
pub struct Walk {
    pub files: Vec<SiteFile>,
    /// Hidden entries left out (a skipped folder counts once), as site paths.
    pub hidden: Vec<String>,
    /// Links left out because they lead outside the folder or nowhere, with the reason.
    pub links: Vec<String>,
    /// Other entries left out (sockets, FIFOs, devices).
    pub special: Vec<String>,
}

impl Walk {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

struct Found {
    path: PathBuf,
    rel_url: String,
    size: u64,
}

/// Walks `dir`, checks sizes, then hashes every file.
pub fn walk(dir: &Path, options: WalkOptions) -> Result<Walk, UsageError> {
    let meta = fs::metadata(dir).map_err(|e| {
        usage!("DIR {}: {}", dir.display(), io_reason(&e))
            .with_hint("give the folder that holds the site's index.html")
    })?;
    if !meta.is_dir() {
        return Err(usage!("DIR {} is not a folder", dir.display())
            .with_hint("give the folder that holds the site's index.html, not a file"));
    }
    let root =
        fs::canonicalize(dir).map_err(|e| usage!("DIR {}: {}", dir.display(), io_reason(&e)))?;
    let mut out = Walk::default();
    let mut found = Vec::new();
    let mut ancestors = vec![root.clone()];
    visit(
        &root,
        &root,
        "",
        options,
        &mut ancestors,
        &mut found,
        &mut out,
    )?;

    // Two names on disk (NFC and NFD spellings) for one site path: refuse, naming both.
    found.sort_by(|a, b| a.rel_url.cmp(&b.rel_url));
    if let Some(pair) = found.windows(2).find(|p| p[0].rel_url == p[1].rel_url) {
        return Err(usage!(
            "{} and {} are both the site path {}: their names differ only in Unicode \
             normalisation (NFC and NFD)",
            pair[0].path.display(),
            pair[1].path.display(),
            pair[0].rel_url
        )
        .with_hint("rename or remove one of them; nothing was uploaded"));
    }

    let too_big: Vec<&Found> = found
        .iter()
        .filter(|f| f.size > options.max_file_size)
        .collect();
    if let Some(first) = too_big.first() {
        let more = match too_big.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        return Err(usage!(
            "{} is {}, over the API's limit of {} per file{more}",
            first.rel_url,
            human_bytes(first.size),
            human_bytes(options.max_file_size)
        )
        .with_hint("nothing was uploaded; remove the file from DIR or host it elsewhere"));
    }

    out.files = hash_all(found)?;
    out.files.sort_by(|a, b| a.rel_url.cmp(&b.rel_url));
    Ok(out)
}

fn visit(
    root: &Path,
    dir: &Path,
    prefix: &str,
    options: WalkOptions,
    ancestors: &mut Vec<PathBuf>,
    found: &mut Vec<Found>,
    out: &mut Walk,
) -> Result<(), UsageError> {
    let read_err = |e: std::io::Error| usage!("cannot read {}: {}", dir.display(), io_reason(&e));
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)
        .map_err(read_err)?
        .collect::<Result<_, _>>()
        .map_err(read_err)?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let os_name = entry.file_name();
        let Some(name) = os_name.to_str() else {
            return Err(usage!(
                "{}: the name is not valid UTF-8, so it cannot be a web path",
                entry.path().display()
            )
            .with_hint("rename the file, or move it out of DIR"));
        };
        let name: String = name.nfc().collect();
        let rel_url = format!("{prefix}/{name}");
        let well_known = prefix.is_empty() && name == ".well-known";
        let hidden = (name.starts_with('.') && !well_known) || skipped_by_default(&name);
        if hidden && (!options.include_hidden || never_published(&name)) {
            out.hidden.push(rel_url);
            continue;
        }
        if name.chars().any(|c| c.is_control() || c == '\\') {
            return Err(usage!(
                "{:?}: the name has a control character (such as a newline or tab) or a \
                 backslash, which a web path cannot carry as intended",
                entry.path().display().to_string()
            )
            .with_hint("rename the file, or move it out of DIR"));
        }
        let path = entry.path();
        let lmeta = fs::symlink_metadata(&path)
            .map_err(|e| usage!("cannot read {}: {}", path.display(), io_reason(&e)))?;
        let (meta, real) = if lmeta.file_type().is_symlink() {
            match fs::canonicalize(&path) {
                Ok(target) if target.starts_with(root) => match fs::metadata(&target) {
                    Ok(m) => (m, target),
                    Err(e) => {
                        out.links.push(format!("{rel_url} ({})", io_reason(&e)));
                        continue;
                    }
                },
                Ok(_) => {
                    out.links.push(format!("{rel_url} (points outside DIR)"));
                    continue;
                }
                Err(e) => {
                    out.links
                        .push(format!("{rel_url} ({})", broken_link_reason(&path, &e)));
                    continue;
                }
            }
        } else {
            (lmeta, path)
        };
        if meta.is_dir() {
            // A link to a folder above this one would loop forever.
            let canonical = fs::canonicalize(&real).unwrap_or_else(|_| real.clone());
            if ancestors.contains(&canonical) {
                out.links.push(format!("{rel_url} (a loop)"));
                continue;
            }
            ancestors.push(canonical);
            visit(root, &real, &rel_url, options, ancestors, found, out)?;
            ancestors.pop();
        } else if meta.is_file() {
            found.push(Found {
                path: real,
                rel_url,
                size: meta.len(),
            });
        } else {
            out.special.push(rel_url);
        }
    }
    Ok(())
}

/// Hashes the files on a few threads, streaming each one.
fn hash_all(found: Vec<Found>) -> Result<Vec<SiteFile>, UsageError> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8)
        .min(found.len().max(1));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<SiteFile>> = Mutex::new(Vec::with_capacity(found.len()));
    let failure: Mutex<Option<UsageError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(f) = found.get(i) else { break };
                match hash_file(&f.path) {
                    Ok((hash, size, modified)) => {
                        let file = SiteFile {
                            content_type: super::content_type(&f.path),
                            path: f.path.clone(),
                            rel_url: f.rel_url.clone(),
                            size,
                            hash,
                            modified,
                        };
                        results.lock().unwrap_or_else(|p| p.into_inner()).push(file);
                    }
                    Err(e) => {
                        let err = usage!("cannot read {}: {}", f.path.display(), io_reason(&e));
                        failure
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(err);
                        next.store(found.len(), Ordering::Relaxed);
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(results.into_inner().unwrap_or_else(|p| p.into_inner()))
}

/// SHA-256 of a file, its size as read, and its modification time.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64, Option<SystemTime>)> {
    let mut file = fs::File::open(path)?;
    let modified = file.metadata()?.modified().ok();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size, modified))
}

/// Why a link could not be resolved: it names nothing, or links lead round in a loop.
fn broken_link_reason(link: &Path, e: &std::io::Error) -> String {
    let Ok(to) = fs::read_link(link) else {
        return io_reason(e);
    };
    let to = link.parent().map_or(to.clone(), |p| p.join(&to));
    match fs::symlink_metadata(&to) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "points nowhere".into(),
        // The next step exists (it is itself a link), yet the whole chain cannot be resolved.
        Ok(m) if m.file_type().is_symlink() => "a loop of links".into(),
        _ => io_reason(e),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or folder".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// `1.5 MB`, `300.0 MB`, `12 B` (binary multiples, as the API's limit is).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, body: &[u8]) {
        let p = root.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, body).unwrap();
    }

    fn urls(w: &Walk) -> Vec<&str> {
        w.files.iter().map(|f| f.rel_url.as_str()).collect()
    }

    #[test]
    fn walks_hashes_and_types_files_in_path_order() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "index.html", b"<h1>hi</h1>");
        write(d.path(), "css/site.css", b"body{}");
        write(d.path(), "blog/first post/index.html", b"<p>1</p>");
        let w = walk(d.path(), WalkOptions::default()).unwrap();
        assert_eq!(
            urls(&w),
            [
                "/blog/first post/index.html",
                "/css/site.css",
                "/index.html"
            ]
        );
        let css = &w.files[1];
        assert_eq!(css.size, 6);
        assert_eq!(css.content_type, "text/css; charset=utf-8");
        assert_eq!(css.hash, hex::encode(Sha256::digest(b"body{}")));
        assert_eq!(w.total_bytes(), 11 + 6 + 8);
    }

    #[test]
    fn hidden_entries_are_skipped_and_some_are_never_published() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "index.html", b"x");
        write(d.path(), ".env", b"SECRET=1");
        write(d.path(), ".env.production", b"SECRET=2");
        write(d.path(), ".git/config", b"[core]");
        write(d.path(), ".well-known/security.txt", b"Contact: x");
        write(d.path(), "a/.hidden", b"h");
        write(d.path(), "a/.well-known/x", b"only the top one is special");
        write(d.path(), "node_modules/pkg/index.js", b"js");
        let w = walk(d.path(), WalkOptions::default()).unwrap();
        assert_eq!(urls(&w), ["/.well-known/security.txt", "/index.html"]);
        assert_eq!(
            w.hidden,
            [
                "/.env",
                "/.env.production",
                "/.git",
                "/a/.hidden",
                "/a/.well-known",
                "/node_modules"
            ]
        );
        let opts = WalkOptions {
            include_hidden: true,
            ..WalkOptions::default()
        };
        let w = walk(d.path(), opts).unwrap();
        assert_eq!(
            urls(&w),
            [
                "/.well-known/security.txt",
                "/a/.hidden",
                "/a/.well-known/x",
                "/index.html",
                "/node_modules/pkg/index.js"
            ]
        );
        assert_eq!(w.hidden, ["/.env", "/.env.production", "/.git"]);
    }

    #[test]
    fn secret_files_are_never_published_in_any_case() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "index.html", b"x");
        for f in [
            ".ENV",
            ".Env.Local",
            ".envrc",
            ".npmrc",
            ".ssh/id_ed25519",
            ".aws/credentials",
        ] {
            write(d.path(), f, b"secret");
        }
        let opts = WalkOptions {
            include_hidden: true,
            ..WalkOptions::default()
        };
        let w = walk(d.path(), opts).unwrap();
        assert_eq!(urls(&w), ["/index.html"]);
        assert_eq!(w.hidden.len(), 6, "{:?}", w.hidden);
    }

    #[cfg(unix)]
    #[test]
    fn links_inside_are_followed_and_links_outside_are_not() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "secret.txt", b"top secret");
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "index.html", b"x");
        write(d.path(), "real/page.html", b"p");
        symlink(outside.path().join("secret.txt"), d.path().join("leak.txt")).unwrap();
        symlink(outside.path(), d.path().join("leakdir")).unwrap();
        symlink(d.path().join("index.html"), d.path().join("home.html")).unwrap();
        symlink(d.path().join("real"), d.path().join("alias")).unwrap();
        symlink(d.path(), d.path().join("real/up")).unwrap();
        symlink(d.path().join("nowhere"), d.path().join("broken")).unwrap();
        symlink("loop-b", d.path().join("loop-a")).unwrap();
        symlink("loop-a", d.path().join("loop-b")).unwrap();
        let w = walk(d.path(), WalkOptions::default()).unwrap();
        assert_eq!(
            urls(&w),
            [
                "/alias/page.html",
                "/home.html",
                "/index.html",
                "/real/page.html"
            ]
        );
        let mut links = w.links.clone();
        links.sort();
        assert_eq!(
            links,
            [
                "/alias/up (a loop)",
                "/broken (points nowhere)",
                "/leak.txt (points outside DIR)",
                "/leakdir (points outside DIR)",
                "/loop-a (a loop of links)",
                "/loop-b (a loop of links)",
                "/real/up (a loop)",
            ]
        );
    }

    #[test]
    fn oversized_files_and_bad_dirs_are_usage_errors() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "index.html", b"x");
        write(d.path(), "big.bin", &[0u8; 11]);
        let opts = WalkOptions {
            include_hidden: false,
            max_file_size: 10,
        };
        let e = walk(d.path(), opts).unwrap_err();
        assert_eq!(
            e.message,
            "/big.bin is 11 B, over the API's limit of 10 B per file"
        );
        let e = walk(&d.path().join("missing"), WalkOptions::default()).unwrap_err();
        assert!(
            e.message.ends_with("no such file or folder"),
            "{}",
            e.message
        );
        let e = walk(&d.path().join("index.html"), WalkOptions::default()).unwrap_err();
        assert!(e.message.ends_with("is not a folder"), "{}", e.message);
    }

    #[test]
    fn names_are_nfc_and_clashes_and_control_characters_are_refused() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "cafe\u{301}.html", b"nfd");
        let w = walk(d.path(), WalkOptions::default()).unwrap();
        assert_eq!(
            urls(&w),
            ["/caf\u{e9}.html"],
            "NFD on disk is NFC on the site"
        );
        write(d.path(), "caf\u{e9}.html", b"nfc");
        let e = walk(d.path(), WalkOptions::default()).unwrap_err();
        assert!(
            e.message.contains("both the site path /caf\u{e9}.html"),
            "{}",
            e.message
        );
        for bad in ["new\nline.html", "tab\there.html", "back\\slash.html"] {
            let d = tempfile::tempdir().unwrap();
            write(d.path(), "index.html", b"x");
            write(d.path(), bad, b"x");
            let e = walk(d.path(), WalkOptions::default()).unwrap_err();
            assert!(
                e.message.contains("control character"),
                "{bad:?}: {}",
                e.message
            );
            assert!(
                !e.message.contains('\n'),
                "the name is shown escaped: {}",
                e.message
            );
        }
    }

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KB");
        assert_eq!(human_bytes(MAX_OBJECT_SIZE), "300.0 MB");
    }
}
