//! Workers scripts and routes (cloudflare-api.md §8 and §9).

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
    /// `application/javascript+module` (wrangler `createWorkerUploadForm`; peers.md §3).
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

    /// `GET …/scripts/{name}/content/v2`: the main module's bytes, or `None` if there is no such
    /// script (TS SDK `content.ts`). Needs Workers Scripts Read.
    pub async fn script_content(&self, account: &str, name: &str) -> Result<Option<Bytes>, Error> {
        let req = Req::get(format!(
            "/accounts/{account}/workers/scripts/{}/content/v2",
            seg(name)
        ));
        Ok(self.call_raw(req).await?.map(|r| r.body))
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
