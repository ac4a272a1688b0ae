//! R2 buckets and objects over the REST API (docs/cloudflare-api.md §7).
//!
//! Every call for a bucket outside the default jurisdiction carries `cf-r2-jurisdiction`; getting
//! this wrong makes a bucket look missing (wrangler and the TS SDK send it on every bucket and
//! object call).
//!
//! Part of the API client (buckets and, for `storage::rest`, objects): it must not import commands,
//! storage, site or output.

use std::path::PathBuf;

use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::{object_key, seg, Body, Client, Error, Req};

/// Which bucket, in which account and jurisdiction.
#[derive(Debug, Clone, Copy)]
pub struct BucketRef<'a> {
    pub account: &'a str,
    pub name: &'a str,
    /// `None` is the default jurisdiction.
    pub jurisdiction: Option<&'a str>,
}

impl BucketRef<'_> {
    fn path(&self) -> String {
        format!("/accounts/{}/r2/buckets/{}", self.account, seg(self.name))
    }
    fn req(&self, mut req: Req) -> Req {
        if let Some(j) = self.jurisdiction {
            req = req.header("cf-r2-jurisdiction", j);
        }
        req
    }
}

/// A bucket (TS SDK `r2/buckets/buckets.ts` `Bucket`).
#[derive(Debug, Clone, Deserialize)]
pub struct Bucket {
    pub name: String,
    #[serde(default)]
    pub creation_date: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    #[serde(default)]
    pub jurisdiction: Option<String>,
}

#[derive(Deserialize)]
struct BucketList {
    #[serde(default)]
    buckets: Vec<Bucket>,
}

/// One object of a listing. `size` is a number here but a string in the PUT result, so both are
/// accepted.
#[derive(Debug, Clone, Deserialize)]
pub struct ObjectInfo {
    pub key: String,
    #[serde(default, deserialize_with = "lenient_u64")]
    pub size: u64,
    #[serde(default)]
    pub etag: Option<String>,
    /// RFC 3339 (`last_modified` in list items; `uploaded` appears only in the PUT result).
    #[serde(default)]
    pub last_modified: Option<String>,
}

/// An object read with `GET …/objects/{key}`: the raw bytes, with the metadata from the headers.
#[derive(Debug, Clone)]
pub struct RawObject {
    pub body: Bytes,
    /// As sent in the `ETag` header (quoted).
    pub etag: Option<String>,
    /// The `Last-Modified` header (an HTTP date), if any.
    pub last_modified: Option<String>,
}

/// The PUT result `{key, etag, size (a string!), uploaded, version, storage_class}`.
#[derive(Debug, Clone, Deserialize)]
pub struct PutResult {
    #[serde(default)]
    pub etag: Option<String>,
}

/// What to upload: bytes in memory (manifests) or a file streamed from disk (site files).
pub enum ObjectBody {
    Bytes(Bytes),
    File {
        path: PathBuf,
        len: u64,
    },
    /// A file whose bytes must hash to `check` as they are streamed, or the upload fails before
    /// its end and nothing is stored (`Storage`'s integrity check on the REST path).
    CheckedFile {
        path: PathBuf,
        len: u64,
        check: std::sync::Arc<super::client::HashCheck>,
    },
}

impl ObjectBody {
    fn into_body(self, content_type: &str) -> Body {
        let content_type = Some(content_type.to_string());
        match self {
            ObjectBody::Bytes(bytes) => Body::Raw {
                bytes,
                content_type,
            },
            ObjectBody::File { path, len } => Body::File {
                path,
                len,
                content_type,
                check: None,
            },
            ObjectBody::CheckedFile { path, len, check } => Body::File {
                path,
                len,
                content_type,
                check: Some(check),
            },
        }
    }
}

impl Client {
    /// `GET /accounts/{id}/r2/buckets` (cursor-paginated, `result.buckets`); needs Workers R2
    /// Storage Read or Write.
    pub async fn list_buckets(
        &self,
        account: &str,
        jurisdiction: Option<&str>,
        name_contains: Option<&str>,
    ) -> Result<Vec<Bucket>, Error> {
        let base = BucketRef {
            account,
            name: "",
            jurisdiction,
        };
        self.cursor_paged(
            |cursor| {
                base.req(
                    Req::get(format!("/accounts/{account}/r2/buckets"))
                        .query("per_page", 1000)
                        .query_opt("name_contains", name_contains)
                        .query_opt("cursor", cursor),
                )
            },
            |list: BucketList| list.buckets,
        )
        .await
    }

    /// `GET /accounts/{id}/r2/buckets/{name}`; `None` when it does not exist (404/10006) in this
    /// jurisdiction.
    pub async fn get_bucket(&self, b: BucketRef<'_>) -> Result<Option<Bucket>, Error> {
        self.call_optional(b.req(Req::get(b.path()))).await
    }

    /// `POST /accounts/{id}/r2/buckets {name, locationHint?}` (camelCase body; wrangler
    /// `createR2Bucket2`). 409/10004 means it exists already.
    pub async fn create_bucket(
        &self,
        b: BucketRef<'_>,
        location_hint: Option<&str>,
    ) -> Result<Bucket, Error> {
        let mut body = serde_json::json!({ "name": b.name });
        if let Some(h) = location_hint {
            body["locationHint"] = Value::from(h);
        }
        self.call(b.req(Req::post(format!("/accounts/{}/r2/buckets", b.account)).json(&body)))
            .await
    }

    /// `DELETE /accounts/{id}/r2/buckets/{name}`; only an empty bucket can be deleted.
    pub async fn delete_bucket(&self, b: BucketRef<'_>) -> Result<(), Error> {
        self.call::<Value>(b.req(Req::delete(b.path())))
            .await
            .map(|_| ())
    }

    /// `PUT …/objects/{key}` with the raw body (wrangler `putRemoteObject`). Files are streamed.
    /// The API's limit is 300 MB per object.
    pub async fn put_object(
        &self,
        b: BucketRef<'_>,
        key: &str,
        body: ObjectBody,
        content_type: &str,
    ) -> Result<(), Error> {
        self.put_object_with(b, key, body, content_type, Vec::new())
            .await
            .map(|_| ())
    }

    /// `GET …/objects/{key}`: the raw bytes, or `None` for 404.
    pub async fn get_object(&self, b: BucketRef<'_>, key: &str) -> Result<Option<Bytes>, Error> {
        Ok(self.get_object_raw(b, key).await?.map(|o| o.body))
    }

    /// `GET …/objects/{key}` with the `ETag` and `Last-Modified` headers, or `None` for 404.
    pub async fn get_object_raw(
        &self,
        b: BucketRef<'_>,
        key: &str,
    ) -> Result<Option<RawObject>, Error> {
        let req = Req::get(format!("{}/objects/{}", b.path(), object_key(key)));
        Ok(self.call_raw(b.req(req)).await?.map(|r| {
            let header = |name: &str| {
                r.headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            RawObject {
                etag: header("etag"),
                last_modified: header("last-modified"),
                body: r.body,
            }
        }))
    }

    /// `PUT …/objects/{key}` with extra request headers (`cache-control`, and the conditional
    /// `if-match` / `if-none-match`, which the REST endpoint does not document: docs/cloudflare-api.md
    /// §7 "Conditional writes"). Returns the PUT result.
    pub async fn put_object_with(
        &self,
        b: BucketRef<'_>,
        key: &str,
        body: ObjectBody,
        content_type: &str,
        headers: Vec<(&'static str, String)>,
    ) -> Result<PutResult, Error> {
        let body = body.into_body(content_type);
        let mut req = Req::put(format!("{}/objects/{}", b.path(), object_key(key))).body(body);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        self.call(b.req(req)).await
    }

    /// `DELETE …/objects/{key}`. A missing key is not an error.
    pub async fn delete_object(&self, b: BucketRef<'_>, key: &str) -> Result<(), Error> {
        let req = Req::delete(format!("{}/objects/{}", b.path(), object_key(key)));
        match self.call::<Value>(b.req(req)).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `GET …/objects?prefix=&per_page=1000&cursor=` (cursor-paginated; the result is an array and
    /// `result_info` carries `cursor` and `is_truncated`). R2 lists at most 1,000 keys per call, and
    /// may return fewer when the page's bytes are large (R2 docs, Workers API `R2ListOptions.limit`;
    /// kotx/render issue #39), so the cursor is followed whatever page size comes back.
    pub async fn list_objects(
        &self,
        b: BucketRef<'_>,
        prefix: &str,
    ) -> Result<Vec<ObjectInfo>, Error> {
        self.cursor_paged(
            |cursor| {
                b.req(
                    Req::get(format!("{}/objects", b.path()))
                        .query("prefix", prefix)
                        .query("per_page", 1000)
                        .query_opt("cursor", cursor),
                )
            },
            |items: Vec<ObjectInfo>| items,
        )
        .await
    }
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| serde::de::Error::custom("size is not a whole number")),
        Value::String(s) => s.parse().map_err(serde::de::Error::custom),
        Value::Null => Ok(0),
        _ => Err(serde::de::Error::custom(
            "size is neither a number nor a string",
        )),
    }
}
