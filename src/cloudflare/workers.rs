//! Workers scripts and routes (docs/cloudflare-api.md §8 and §9).
//!
//! Part of the API client: it must not import commands, storage, site or output.

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{seg, Body, Client, Error, Req};

/// One item of `GET /accounts/{id}/workers/scripts` (TS SDK `ScriptListResponse`).
#[derive(Debug, Clone, Deserialize)]
pub struct ScriptSummary {
    /// The script's name.
    pub id: String,
    #[serde(default)]
    pub modified_on: Option<String>,
    #[serde(default)]
    pub created_on: Option<String>,
}

/// `GET …/scripts/{name}/settings`: the fields cfsetup compares.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ScriptSettings {
    #[serde(default)]
    pub bindings: Vec<Value>,
    #[serde(default)]
    pub compatibility_date: Option<String>,
}

/// A module Worker to upload: `metadata` (main_module, bindings, compatibility_date, …) and the
/// one module it names.
#[derive(Debug, Clone)]
pub struct ScriptUpload {
    pub metadata: Value,
    pub main_module: String,
    pub source: Bytes,
}

/// A route: `script` absent means a placeholder that runs no Worker.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Route {
    pub id: String,
    pub pattern: String,
    #[serde(default)]
    pub script: Option<String>,
}

impl Client {
    /// `GET /accounts/{id}/workers/scripts` (single page); needs Workers Scripts Read.
    pub async fn list_scripts(&self, account: &str) -> Result<Vec<ScriptSummary>, Error> {
        self.call(Req::get(format!("/accounts/{account}/workers/scripts")))
            .await
    }

    /// `PUT /accounts/{id}/workers/scripts/{name}`, `multipart/form-data`: a `metadata` part
    /// (JSON) and the module as a part whose name and filename are `main_module`, typed
    /// `application/javascript+module` (wrangler `createWorkerUploadForm`; docs/peers.md §3).
    /// Needs Workers Scripts Write.
    pub async fn upload_script(
        &self,
        account: &str,
        name: &str,
        upload: &ScriptUpload,
    ) -> Result<Value, Error> {
        let upload = Arc::new(upload.clone());
        let make = move || {
            let meta = serde_json::to_vec(&upload.metadata).map_err(|e| e.to_string())?;
            let meta = reqwest::multipart::Part::bytes(meta)
                .mime_str("application/json")
                .map_err(|e| e.to_string())?;
            let module = reqwest::multipart::Part::stream(upload.source.clone())
                .file_name(upload.main_module.clone())
                .mime_str("application/javascript+module")
                .map_err(|e| e.to_string())?;
            Ok(reqwest::multipart::Form::new()
                .part("metadata", meta)
                .part(upload.main_module.clone(), module))
        };
        self.call(
            Req::put(format!("/accounts/{account}/workers/scripts/{}", seg(name)))
                .body(Body::Multipart(Arc::new(make))),
        )
        .await
    }

    /// `GET …/scripts/{name}/content/v2`: the main module's bytes, or `None` when the API says
    /// there is no such script (a 404 that is not an unknown route). Needs Workers Scripts Read.
    ///
    /// For a module Worker the answer is `multipart/form-data`, one part per module, and the
    /// response header `cf-entrypoint` names the entry part (docs/cloudflare-api.md §8 "Reading a
    /// script back": wrangler `fetchWorkerDefinitionFromDash`, workers-sdk PR #1645, cloudflare-go
    /// v0 `GetWorker`). Any other content type is the one module itself.
    ///
    /// The team's first notes said the *response* headers `CF-WORKER-MAIN-MODULE-PART` /
    /// `CF-WORKER-BODY-PART` name the entry part (citing the TS SDK `content.ts`); docs/cloudflare-api.md
    /// §8 records the correction: in `content.ts` those are *request* headers of `update()` (PUT
    /// `…/content`). The GET answer names its entry in `cf-entrypoint`: wrangler
    /// `packages/wrangler/src/versions/secrets/index.ts` reads `contentRes.headers.get("cf-entrypoint")`
    /// and throws "Got modules without cf-entrypoint header", and wrangler's init-from-dash helper
    /// uses `response.headers.get("cf-entrypoint") ?? "src/index.js"`. Wrangler runs against the
    /// real API every day, so its reading wins; the two old names are kept as fallbacks.
    pub async fn script_content(&self, account: &str, name: &str) -> Result<Option<Bytes>, Error> {
        let path = format!(
            "/accounts/{account}/workers/scripts/{}/content/v2",
            seg(name)
        );
        let Some(raw) = self.call_raw(Req::get(path.clone())).await? else {
            return Ok(None);
        };
        let header = |n: &str| raw.headers.get(n).and_then(|v| v.to_str().ok());
        let content_type = header("content-type").unwrap_or("");
        let main = header("cf-entrypoint")
            .or(header("cf-worker-main-module-part"))
            .or(header("cf-worker-body-part"));
        main_module(content_type, main, raw.body.clone())
            .map(Some)
            .map_err(|detail| Error::Decode {
                method: "GET".into(),
                path,
                at: "body".into(),
                detail,
            })
    }

    /// `GET …/scripts/{name}/settings`: bindings and compatibility date, or `None` if missing.
    pub async fn script_settings(
        &self,
        account: &str,
        name: &str,
    ) -> Result<Option<ScriptSettings>, Error> {
        self.call_optional(Req::get(format!(
            "/accounts/{account}/workers/scripts/{}/settings",
            seg(name)
        )))
        .await
    }

    /// `DELETE /accounts/{id}/workers/scripts/{name}?force=true`. A missing script (404) is fine.
    pub async fn delete_script(&self, account: &str, name: &str) -> Result<(), Error> {
        let req = Req::delete(format!("/accounts/{account}/workers/scripts/{}", seg(name)))
            .query("force", "true");
        match self.call::<Value>(req).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `GET /zones/{zone_id}/workers/routes` (single page).
    pub async fn list_routes(&self, zone: &str) -> Result<Vec<Route>, Error> {
        self.call(Req::get(format!("/zones/{zone}/workers/routes")))
            .await
    }

    /// `POST /zones/{zone_id}/workers/routes {pattern, script?}`; 409/10020 if the pattern exists.
    /// Needs Workers Routes Write on the zone. Older API versions answer only `{id}`.
    pub async fn create_route(
        &self,
        zone: &str,
        pattern: &str,
        script: Option<&str>,
    ) -> Result<Route, Error> {
        #[derive(Deserialize)]
        struct Created {
            id: String,
        }
        let body = route_body(pattern, script);
        let created: Created = self
            .call(Req::post(format!("/zones/{zone}/workers/routes")).json(&body))
            .await?;
        Ok(Route {
            id: created.id,
            pattern: pattern.to_string(),
            script: script.map(str::to_string),
        })
    }

    /// `PUT /zones/{zone_id}/workers/routes/{route_id} {pattern, script?}`.
    pub async fn update_route(
        &self,
        zone: &str,
        id: &str,
        pattern: &str,
        script: Option<&str>,
    ) -> Result<(), Error> {
        self.call::<Value>(
            Req::put(format!("/zones/{zone}/workers/routes/{}", seg(id)))
                .json(&route_body(pattern, script)),
        )
        .await
        .map(|_| ())
    }

    /// `DELETE /zones/{zone_id}/workers/routes/{route_id}`. A missing route (404) is fine.
    pub async fn delete_route(&self, zone: &str, id: &str) -> Result<(), Error> {
        match self
            .call::<Value>(Req::delete(format!(
                "/zones/{zone}/workers/routes/{}",
                seg(id)
            )))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn route_body(pattern: &str, script: Option<&str>) -> Value {
    let mut body = serde_json::json!({ "pattern": pattern });
    if let Some(s) = script {
        body["script"] = Value::from(s);
    }
    body
}

/// The entry module of a `content/v2` answer. A multipart body is split by its boundary (the
/// `multer` crate), and the part named by `main` (the `cf-entrypoint` header, matched
/// against the part's name or file name) is the entry; without the header, a single part is. A
/// non-multipart body is the module itself.
pub(crate) fn main_module(
    content_type: &str,
    main: Option<&str>,
    body: Bytes,
) -> Result<Bytes, String> {
    use futures::FutureExt;
    let is_multipart = content_type
        .split(';')
        .next()
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("multipart/form-data"));
    if !is_multipart {
        return Ok(body);
    }
    let boundary = multer::parse_boundary(content_type)
        .map_err(|e| format!("a multipart answer without a usable boundary: {e}"))?;
    let stream = futures::stream::once(async move { Ok::<Bytes, std::io::Error>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    let malformed = |e: multer::Error| format!("a malformed multipart answer: {e}");
    // The body is in memory, so every future completes at once.
    let pending = || "a multipart answer that ended early".to_string();
    let mut parts: Vec<(Option<String>, Option<String>, Bytes)> = Vec::new();
    while let Some(field) = form
        .next_field()
        .now_or_never()
        .ok_or_else(pending)?
        .map_err(malformed)?
    {
        let name = field.name().map(str::to_string);
        let file = field.file_name().map(str::to_string);
        let bytes = field
            .bytes()
            .now_or_never()
            .ok_or_else(pending)?
            .map_err(malformed)?;
        parts.push((name, file, bytes));
    }
    let named = |p: &&(Option<String>, Option<String>, Bytes), m: &str| {
        p.0.as_deref() == Some(m) || p.1.as_deref() == Some(m)
    };
    let found = match main {
        Some(m) => parts.iter().find(|p| named(p, m)),
        None if parts.len() == 1 => parts.first(),
        None => None,
    };
    match found {
        Some(p) => Ok(p.2.clone()),
        None => Err(format!(
            "no entry module among the {} part(s) of the answer (cf-entrypoint: {})",
            parts.len(),
            main.unwrap_or("absent")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(boundary: &str, parts: &[(&str, &str)]) -> Bytes {
        let mut b = String::new();
        for (name, body) in parts {
            b.push_str(&format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; \
                 filename=\"{name}\"\r\nContent-Type: application/javascript+module\r\n\r\n\
                 {body}\r\n"
            ));
        }
        b.push_str(&format!("--{boundary}--\r\n"));
        Bytes::from(b)
    }

    #[test]
    fn the_entry_part_is_found_by_the_header() {
        let body = form(
            "xyz",
            &[("util.js", "export const a = 1;"), ("index.js", "main")],
        );
        let ct = "multipart/form-data; boundary=xyz";
        assert_eq!(
            main_module(ct, Some("index.js"), body.clone()).unwrap(),
            "main"
        );
        assert_eq!(
            main_module(ct, Some("util.js"), body.clone()).unwrap(),
            "export const a = 1;"
        );
        assert!(main_module(ct, Some("other.js"), body.clone()).is_err());
        // Two parts and no header: which one is the entry is unknown.
        assert!(main_module(ct, None, body).is_err());
        let one = form("b", &[("router.js", "x")]);
        assert_eq!(
            main_module("multipart/form-data; boundary=b", None, one).unwrap(),
            "x"
        );
    }

    #[test]
    fn a_plain_body_is_the_module_and_a_bad_form_is_an_error() {
        let b = Bytes::from_static(b"export default {}");
        assert_eq!(
            main_module("application/javascript+module", Some("a.js"), b.clone()).unwrap(),
            b
        );
        assert!(main_module("multipart/form-data", Some("a.js"), b.clone()).is_err());
        assert!(main_module("multipart/form-data; boundary=q", Some("a.js"), b).is_err());
    }
}
