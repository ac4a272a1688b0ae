//! The REST backend: R2's object endpoints under `/accounts/{id}/r2/buckets/{bucket}/objects`,
//! through the one [`Client`] (docs/cloudflare-api.md §7 "Object REST endpoints").
//!
//! What the REST API lacks, and how this backend makes up for it:
//! - no documented HEAD: [`RestStore::head`] is a GET whose body is dropped;
//! - no documented conditional PUT: the `If-Match` / `If-None-Match` headers are sent anyway (an
//!   unreleased object_store R2 backend sends them), and the condition is also checked with a GET
//!   just before the write. The window between that check and the write stays open
//!   (docs/storage-layout.md "Over the REST API");
//! - no documented common prefixes: [`RestStore::list_prefixes`] lists every key below the prefix.
//!
//! It must not import commands, site or output; it reaches R2 only through `cloudflare::Client`.

use crate::cloudflare::r2::{BucketRef, ObjectBody, ObjectInfo, RawObject};
use crate::cloudflare::{Client, HashCheck};

use super::{
    prefixes_below, unquote_etag, BucketLoc, Object, ObjectMeta, Payload, PutMode, PutOptions,
    StorageError,
};

/// The REST object endpoint's limit: 300 MB per object (TS and Python SDK docs; wrangler
/// `MAX_UPLOAD_SIZE_BYTES` is 300 MiB, the figure `site::walk` uses too;
/// docs/cloudflare-api.md §7 "Object REST endpoints").
pub const REST_MAX_OBJECT_SIZE: u64 = 300 * 1024 * 1024;

/// One bucket over the REST API.
#[derive(Debug, Clone)]
pub struct RestStore {
    client: Client,
    bucket: BucketLoc,
}

impl RestStore {
    pub fn new(client: Client, bucket: BucketLoc) -> Self {
        RestStore { client, bucket }
    }

    pub fn bucket(&self) -> &BucketLoc {
        &self.bucket
    }

    fn r(&self) -> BucketRef<'_> {
        BucketRef {
            account: &self.bucket.account,
            name: &self.bucket.name,
            jurisdiction: self.bucket.jurisdiction.as_deref(),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Option<Object>, StorageError> {
        Ok(self
            .client
            .get_object_raw(self.r(), key)
            .await?
            .map(|raw| to_object(key, raw)))
    }

    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        Ok(self.get(key).await?.map(|o| o.meta))
    }

    pub async fn put(
        &self,
        key: &str,
        payload: Payload,
        options: PutOptions,
    ) -> Result<Option<String>, StorageError> {
        let mut headers: Vec<(&'static str, String)> = Vec::new();
        match &options.mode {
            PutMode::Overwrite => {}
            PutMode::Create => {
                if self.head(key).await?.is_some() {
                    return Err(StorageError::PreconditionFailed {
                        key: key.to_string(),
                    });
                }
                headers.push(("if-none-match", "*".to_string()));
            }
            PutMode::Update(expected) => {
                let current = self.head(key).await?.and_then(|m| m.etag);
                if current.as_deref() != Some(expected.as_str()) {
                    return Err(StorageError::PreconditionFailed {
                        key: key.to_string(),
                    });
                }
                headers.push(("if-match", format!("\"{expected}\"")));
            }
        }
        if let Some(cc) = &options.cache_control {
            headers.push(("cache-control", cc.clone()));
        }
        let mut check = None;
        let body = match payload {
            Payload::Bytes(b) => ObjectBody::Bytes(b),
            Payload::File { path, len, sha256 } => {
                if len > REST_MAX_OBJECT_SIZE {
                    return Err(StorageError::TooLarge {
                        key: key.to_string(),
                        size: len,
                        max: REST_MAX_OBJECT_SIZE,
                    });
                }
                let c = HashCheck::new(sha256);
                check = Some((path.clone(), c.clone()));
                ObjectBody::CheckedFile {
                    path,
                    len,
                    check: c,
                }
            }
        };
        let content_type = options
            .content_type
            .as_deref()
            .unwrap_or("application/octet-stream");
        match self
            .client
            .put_object_with(self.r(), key, body, content_type, headers)
            .await
        {
            Ok(result) => Ok(result.etag.as_deref().map(unquote_etag)),
            Err(e) if e.status() == Some(412) => Err(StorageError::PreconditionFailed {
                key: key.to_string(),
            }),
            Err(_) if check.as_ref().is_some_and(|(_, c)| c.mismatched()) => {
                let (path, c) = check.expect("checked above");
                Err(StorageError::ChangedOnDisk {
                    path,
                    expected: c.expected().to_string(),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        Ok(self.client.delete_object(self.r(), key).await?)
    }

    /// One DELETE per key, 8 at a time (the REST API has no batch delete).
    pub async fn delete_many(&self, keys: &[String]) -> Result<(), StorageError> {
        use futures::stream::{self, TryStreamExt};
        stream::iter(keys.iter().map(Ok::<_, StorageError>))
            .try_for_each_concurrent(8, |k| async move { self.delete(k).await })
            .await
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        Ok(self
            .client
            .list_objects(self.r(), prefix)
            .await?
            .into_iter()
            .map(listed)
            .collect())
    }

    pub async fn list_prefixes(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let all = self.client.list_objects(self.r(), prefix).await?;
        Ok(prefixes_below(prefix, all.iter().map(|o| o.key.as_str())))
    }
}

fn to_object(key: &str, raw: RawObject) -> Object {
    Object {
        meta: ObjectMeta {
            key: key.to_string(),
            size: raw.body.len() as u64,
            etag: raw.etag.as_deref().map(unquote_etag),
            last_modified: raw
                .last_modified
                .as_deref()
                .and_then(|d| httpdate::parse_http_date(d).ok()),
        },
        body: raw.body,
    }
}

fn listed(o: ObjectInfo) -> ObjectMeta {
    ObjectMeta {
        last_modified: o
            .last_modified
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok()),
        etag: o.etag.as_deref().map(unquote_etag),
        size: o.size,
        key: o.key,
    }
}
