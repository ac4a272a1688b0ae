//! R2 buckets and objects over the REST API (docs/cloudflare-api.md §7).
//!
//! Buckets are keyed by (jurisdiction, name); the jurisdiction comes from the `cf-r2-jurisdiction`
//! header (default `default`). Object keys come from the raw path after `/objects/`: raw `/` and
//! `%2F` are both accepted, valid `%XX` escapes are decoded and a lone `%` is kept (docs/peers.md §3).
//!
//! Choices where the reference is silent: the ETag is the body's MD5 hex, as on the S3 API
//! (one ETag per object whichever API wrote it; `crate::s3`); deleting a missing key succeeds (R2 deletes are idempotent);
//! an over-size upload is 413 / 10011; an invalid key (not UTF-8 after decoding, or over 1,024
//! bytes) is 400 / 10020; an unparseable create body is 400 / 10005 like a bad name.

use super::{member_account, Ctx};
use crate::auth::Resource;
use crate::seed;
use crate::state::{Bucket, Object, State};
use crate::wire::{
    md5_hex, now_rfc3339, parse_json, parse_rfc3339, random_hex, ApiError, Outcome, Reply,
};
use bytes::Bytes;
use serde_json::{json, Value};

/// 300 MiB, the REST upload limit (docs/cloudflare-api.md §7; wrangler `MAX_UPLOAD_SIZE_BYTES`).
pub const MAX_OBJECT_SIZE: usize = 300 * 1024 * 1024;
const MAX_KEY_BYTES: usize = 1024;

pub fn route(ctx: &Ctx, state: &mut State, account: &str, rest: &[&str]) -> Outcome {
    let jurisdiction = ctx
        .header("cf-r2-jurisdiction")
        .filter(|j| !j.is_empty())
        .unwrap_or("default")
        .to_ascii_lowercase();
    let j = jurisdiction.as_str();
    match (ctx.method, rest) {
        ("GET", []) => list_buckets(ctx, state, account, j),
        ("POST", []) => create_bucket(ctx, state, account, j),
        ("GET" | "DELETE", [bucket]) => bucket_item(ctx, state, account, j, bucket),
        ("GET", [bucket, "objects"]) => list_objects(ctx, state, account, j, bucket),
        (_, [bucket, "objects", key @ ..]) if !key.is_empty() => {
            let raw = key.join("/");
            match ctx.method {
                "GET" | "PUT" | "DELETE" => object(ctx, state, account, j, bucket, &raw),
                _ => Err(ctx.no_route()),
            }
        }
        _ => Err(ctx.no_route()),
    }
}

const READ: &[&str] = &[seed::R2_READ, seed::R2_WRITE];
const WRITE: &[&str] = &[seed::R2_WRITE];

/// Authenticate, check membership, then the account-level R2 groups.
fn authorise_account(
    ctx: &Ctx,
    state: &State,
    account: &str,
    groups: &[&str],
) -> Result<(), ApiError> {
    let p = ctx.principal(state)?;
    member_account(account)?;
    if ctx.r2_refuses_global_key && matches!(p, crate::auth::Principal::GlobalKey) {
        return Err(ApiError::forbidden());
    }
    p.require(ctx.catalog, groups, Resource::Account(account))
}

/// REST object calls (PUT, GET, DELETE, list) need the **account-level** R2 groups (Workers R2
/// Storage Write, or Read for reads) on the account. A token holding only the bucket-scoped
/// "Workers R2 Storage Bucket Item Write/Read" (the dashboard's "Object Read & Write") is refused
/// with 403 / 10000, as workers-sdk #9235 reports live: REST object PUT with a bucket-scoped
/// token got 403 and needed "Admin Read & Write" (docs/cloudflare-api.md §7 "Object REST endpoints").
/// Bucket-scoped groups are for the S3 API (docs/cloudflare-api.md §7 "S3 credentials"), not for
/// these endpoints.
///
/// With `Options.r2_rest_accepts_bucket_tokens` the bucket-scoped groups on this bucket are
/// accepted too (the source covers only PUT; see that option).
fn authorise_object(
    ctx: &Ctx,
    state: &State,
    account: &str,
    (j, bucket): (&str, &str),
    write: bool,
) -> Result<(), ApiError> {
    let refused = match authorise_account(ctx, state, account, if write { WRITE } else { READ }) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    if ctx.r2_rest_accepts_bucket_tokens && refused.status == 403 {
        let p = ctx.principal(state)?;
        let groups: &[&str] = if write {
            &[seed::R2_ITEM_WRITE]
        } else {
            &[seed::R2_ITEM_READ, seed::R2_ITEM_WRITE]
        };
        let resource = Resource::Bucket {
            account,
            jurisdiction: j,
            name: bucket,
        };
        if matches!(p, crate::auth::Principal::Token(_)) && p.may(ctx.catalog, groups, resource) {
            return Ok(());
        }
    }
    Err(refused)
}

fn no_bucket() -> ApiError {
    ApiError::new(404, 10006, "The specified bucket does not exist.")
}

fn bucket_json(b: &Bucket) -> Value {
    json!({
        "name": b.name,
        "creation_date": b.creation_date,
        "location": b.location,
        "jurisdiction": b.jurisdiction,
        "storage_class": b.storage_class,
    })
}

/// `GET …/r2/buckets?cursor&per_page&name_contains&start_after`: `result:{buckets:[…]}`, cursor
/// paging with `result_info:{cursor?, per_page}`. The cursor is the hex of the last name returned.
fn list_buckets(ctx: &Ctx, state: &State, account: &str, j: &str) -> Outcome {
    authorise_account(ctx, state, account, READ)?;
    let per_page = ctx
        .query
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p > 0)
        .unwrap_or(20)
        .min(1000);
    let after = ctx
        .query
        .get("cursor")
        .and_then(decode_cursor)
        .or_else(|| ctx.query.get("start_after").map(str::to_string));
    let contains = ctx.query.get("name_contains");
    let mut names: Vec<&Bucket> = state
        .buckets
        .iter()
        .filter(|b| b.jurisdiction == j)
        .filter(|b| contains.is_none_or(|c| b.name.contains(c)))
        .filter(|b| after.as_deref().is_none_or(|a| b.name.as_str() > a))
        .collect();
    names.sort_by(|a, b| a.name.cmp(&b.name));
    let more = names.len() > per_page;
    names.truncate(per_page);
    let mut info = json!({"per_page": per_page});
    if more {
        if let Some(last) = names.last() {
            info["cursor"] = json!(hex::encode(&last.name));
        }
    }
    let buckets: Vec<Value> = names.into_iter().map(bucket_json).collect();
    Ok(Reply::list(json!({"buckets": buckets}), info))
}

/// `POST …/r2/buckets {name, locationHint?, storageClass?}`, JSON whatever the Content-Type.
/// Bad name 400 / 10005; exists 409 / 10004.
fn create_bucket(ctx: &Ctx, state: &mut State, account: &str, j: &str) -> Outcome {
    authorise_account(ctx, state, account, WRITE)?;
    let body = parse_json(ctx.body).ok().flatten().unwrap_or(Value::Null);
    let name = body.get("name").and_then(Value::as_str).unwrap_or("");
    if !valid_bucket_name(name) {
        return Err(ApiError::new(
            400,
            10005,
            "The specified bucket name is not valid.",
        ));
    }
    if state.bucket(j, name).is_some() {
        return Err(ApiError::new(
            409,
            10004,
            "The bucket you tried to create already exists, and you own it.",
        ));
    }
    let bucket = Bucket {
        name: name.to_string(),
        jurisdiction: j.to_string(),
        location: body
            .get("locationHint")
            .and_then(Value::as_str)
            .unwrap_or("enam")
            .to_ascii_lowercase(),
        storage_class: body
            .get("storageClass")
            .and_then(Value::as_str)
            .unwrap_or("Standard")
            .to_string(),
        creation_date: now_rfc3339(),
        objects: Default::default(),
    };
    let result = bucket_json(&bucket);
    state.buckets.push(bucket);
    Ok(Reply::ok(result))
}

/// `^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$` (wrangler `isValidR2BucketName`).
pub fn valid_bucket_name(name: &str) -> bool {
    let b = name.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    (3..=63).contains(&b.len())
        && b.first().is_some_and(edge)
        && b.last().is_some_and(edge)
        && b.iter().all(|c| edge(c) || *c == b'-')
}

/// `GET|DELETE …/r2/buckets/{name}`; delete of a non-empty bucket is 409 / 10008.
fn bucket_item(ctx: &Ctx, state: &mut State, account: &str, j: &str, name: &str) -> Outcome {
    let write = ctx.method == "DELETE";
    authorise_account(ctx, state, account, if write { WRITE } else { READ })?;
    let bucket = state.bucket(j, name).ok_or_else(no_bucket)?;
    if !write {
        return Ok(Reply::ok(bucket_json(bucket)));
    }
    if state.bucket_in_use(j, name) {
        return Err(ApiError::new(
            409,
            10008,
            "The bucket you tried to delete is not empty.",
        ));
    }
    state
        .buckets
        .retain(|b| !(b.jurisdiction == j && b.name == name));
    Ok(Reply::ok(json!({})))
}

/// Percent-decodes a key: valid escapes decoded, a lone `%` kept as is.
fn decode_key(raw: &str) -> Result<String, ApiError> {
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
    let key = String::from_utf8(bytes)
        .map_err(|_| ApiError::new(400, 10020, "The specified object key is not valid."))?;
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(ApiError::new(
            400,
            10020,
            "The specified object key is not valid.",
        ));
    }
    Ok(key)
}

fn object(
    ctx: &Ctx,
    state: &mut State,
    account: &str,
    j: &str,
    bucket: &str,
    raw: &str,
) -> Outcome {
    let write = ctx.method != "GET";
    authorise_object(ctx, state, account, (j, bucket), write)?;
    let key = decode_key(raw)?;
    let b = state.bucket_mut(j, bucket).ok_or_else(no_bucket)?;
    match ctx.method {
        "PUT" => put_object(ctx, b, key),
        "DELETE" => {
            b.objects.remove(&key);
            Ok(Reply::ok(json!({"key": key})))
        }
        _ => get_object(ctx, b, &key),
    }
}

/// `PUT …/objects/{key}`: raw body; keeps `content-type`, `cache-control` and the other system
/// metadata of [`crate::state::HTTP_METADATA`] (never the auth headers). Result `{key, etag, size (string), uploaded, version, storage_class}`.
fn put_object(ctx: &Ctx, b: &mut Bucket, key: String) -> Outcome {
    if ctx.body.len() > MAX_OBJECT_SIZE {
        return Err(too_large());
    }
    let etag = md5_hex(ctx.body);
    let obj = Object {
        body: ctx.body.to_vec(),
        content_type: ctx.header("content-type").map(str::to_string),
        cache_control: ctx.header("cache-control").map(str::to_string),
        etag: etag.clone(),
        uploaded: crate::wire::upload_time(),
        version: random_hex(32),
        http_extra: crate::state::http_extra(ctx.headers),
    };
    let result = json!({
        "key": key,
        "etag": etag,
        "size": ctx.body.len().to_string(),
        "uploaded": obj.uploaded,
        "version": obj.version,
        "storage_class": "Standard",
    });
    b.objects.insert(key, obj);
    Ok(Reply::ok(result))
}

pub fn too_large() -> ApiError {
    ApiError::new(
        413,
        10011,
        "Your proposed upload exceeds the maximum allowed object size.",
    )
}

/// `GET …/objects/{key}`: raw bytes with a quoted `ETag`, `Content-Type`, `Last-Modified`;
/// `If-None-Match` gives 304; a missing key is 404 / 10007 in JSON.
fn get_object(ctx: &Ctx, b: &Bucket, key: &str) -> Outcome {
    let obj = b
        .objects
        .get(key)
        .ok_or_else(|| ApiError::new(404, 10007, "The specified key does not exist."))?;
    let etag = format!("\"{}\"", obj.etag);
    let last_modified = parse_rfc3339(&obj.uploaded)
        .map(httpdate::fmt_http_date)
        .unwrap_or_default();
    let mut headers = vec![
        ("etag".to_string(), etag),
        ("last-modified".to_string(), last_modified),
    ];
    if let Some(cc) = &obj.cache_control {
        headers.push(("cache-control".into(), cc.clone()));
    }
    headers.extend(obj.http_extra.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(inm) = ctx.header("if-none-match") {
        let hit = inm.split(',').any(|t| {
            let t = t.trim().trim_start_matches("W/").trim_matches('"');
            t == "*" || t == obj.etag
        });
        if hit {
            return Ok(Reply::raw(304, headers, Bytes::new()));
        }
    }
    headers.push((
        "content-type".into(),
        obj.content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into()),
    ));
    Ok(Reply::raw(200, headers, Bytes::from(obj.body.clone())))
}

fn decode_cursor(c: &str) -> Option<String> {
    hex::decode(c).ok().and_then(|b| String::from_utf8(b).ok())
}

/// `GET …/objects?prefix&delimiter&cursor&per_page&start_after`: keys in lexicographic order,
/// `per_page` default and max 1000, common prefixes in `result_info.delimited`, an opaque
/// cursor while `is_truncated`.
fn list_objects(ctx: &Ctx, state: &State, account: &str, j: &str, bucket: &str) -> Outcome {
    authorise_object(ctx, state, account, (j, bucket), false)?;
    let b = state.bucket(j, bucket).ok_or_else(no_bucket)?;
    let q = &ctx.query;
    let prefix = q.get("prefix").unwrap_or("");
    let delimiter = q.get("delimiter").filter(|d| !d.is_empty());
    let per_page = q
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| *p > 0)
        .unwrap_or(1000)
        .min(1000);
    // Everything ≤ `after` is skipped; a delimited prefix is skipped whole.
    let after = q
        .get("cursor")
        .and_then(decode_cursor)
        .or_else(|| q.get("start_after").map(str::to_string));
    let w = b.walk(prefix, delimiter, after.as_deref(), per_page);
    let items: Vec<Value> = w
        .contents
        .iter()
        .map(|(key, obj)| {
            json!({
                "key": key,
                "size": obj.body.len(),
                "etag": obj.etag,
                "last_modified": obj.uploaded,
                "http_metadata": http_metadata(obj),
                "custom_metadata": {},
                "storage_class": "Standard",
            })
        })
        .collect();
    let (truncated, last_marker, delimited) = (w.truncated, w.next, w.prefixes);
    let mut info = json!({"is_truncated": truncated, "per_page": per_page});
    if truncated {
        if let Some(m) = &last_marker {
            info["cursor"] = json!(hex::encode(m));
        }
    }
    if delimiter.is_some() {
        info["delimited"] = json!(delimited);
    }
    Ok(Reply::list(Value::Array(items), info))
}

/// R2's `httpMetadata` of an object, as the REST listing shows it (`r2/api/s3/extensions.mdx`
/// names: `contentType`, `contentLanguage`, `contentDisposition`, `contentEncoding`,
/// `cacheControl`, `cacheExpiry`).
fn http_metadata(obj: &Object) -> Value {
    let mut m = json!({
        "contentType": obj.content_type,
        "cacheControl": obj.cache_control,
    });
    for (header, name) in [
        ("content-disposition", "contentDisposition"),
        ("content-encoding", "contentEncoding"),
        ("content-language", "contentLanguage"),
        ("expires", "cacheExpiry"),
    ] {
        if let Some(v) = obj.http_extra.get(header) {
            m[name] = json!(v);
        }
    }
    m
}
