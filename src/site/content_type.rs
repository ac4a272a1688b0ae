//! The Content-Type of a site file, from its extension.
//!
//! The Worker serves the type stored in the manifest (docs/storage-layout.md), so this is where a
//! browser's idea of each file is decided. Text types carry `; charset=utf-8`: without it a
//! browser guesses the encoding of CSS, JavaScript and JSON, and non-ASCII text can come out
//! garbled.
//!
//! It imports nothing of the crate.

use std::path::Path;

/// `text/html; charset=utf-8`, `image/png`, …; `application/octet-stream` when unknown.
pub fn content_type(path: &Path) -> String {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    // A few the mime_guess table lacks or gets wrong for the web.
    let essence = match ext.as_deref() {
        Some("js" | "mjs" | "cjs") => "text/javascript".to_string(),
        Some("webmanifest") => "application/manifest+json".to_string(),
        Some("wasm") => "application/wasm".to_string(),
        Some("map") => "application/json".to_string(),
        _ => mime_guess::from_path(path)
            .first_or_octet_stream()
            .essence_str()
            .to_string(),
    };
    if is_text(&essence) {
        format!("{essence}; charset=utf-8")
    } else {
        essence
    }
}

/// Types whose bytes are text, so a charset applies.
fn is_text(essence: &str) -> bool {
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence,
            "application/javascript"
                | "application/json"
                | "application/xml"
                | "application/x-javascript"
                | "application/ecmascript"
                | "application/toml"
                | "application/yaml"
                | "application/x-yaml"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_types_get_a_charset_and_binary_ones_do_not() {
        let ct = |p: &str| content_type(Path::new(p));
        assert_eq!(ct("index.html"), "text/html; charset=utf-8");
        assert_eq!(ct("css/site.css"), "text/css; charset=utf-8");
        assert_eq!(ct("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(ct("app.MJS"), "text/javascript; charset=utf-8");
        assert_eq!(ct("data.json"), "application/json; charset=utf-8");
        assert_eq!(ct("logo.svg"), "image/svg+xml; charset=utf-8");
        assert_eq!(ct("feed.xml"), "text/xml; charset=utf-8");
        assert_eq!(
            ct("site.webmanifest"),
            "application/manifest+json; charset=utf-8"
        );
        assert_eq!(ct("logo.png"), "image/png");
        assert_eq!(ct("font.woff2"), "font/woff2");
        assert_eq!(ct("app.wasm"), "application/wasm");
        assert_eq!(ct("LICENSE"), "application/octet-stream");
    }
}
