//! `Storage` and `storage::open` against the emulator's REST and S3 APIs: which API each
//! `--via` picks, the `auto` fallback and its one note, `--via s3` failing, integrity (a file
//! changed after hashing is refused and not stored), multipart, S3 retries, and the exit codes
//! of the CLI for the new options.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use cfsetup::cli::{GlobalArgs, Via};
use cfsetup::cloudflare::r2::BucketRef;
use cfsetup::cloudflare::{Auth, Client, ClientOptions, RetryPolicy};
use cfsetup::config::{Config, Vars};
use cfsetup::secret::Secret;
use cfsetup::storage::{open_with, OpenSetup};
use cfsetup::storage::{BucketLoc, Payload, PutMode, PutOptions, S3Options, Storage, StorageError};
use cfsetup_emulator::{Api, Fault, FaultKind};
use serde_json::json;
use sha2::Digest;
use url::Url;

use crate::common::{World, ACCOUNT_SCOPE};

const MIB: usize = 1024 * 1024;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        max_rate_limit_retries: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(5),
    }
}

/// A token with these account-level groups, a client with it, and a bucket `site`.
struct Setup {
    client: Client,
    token_id: String,
    bucket: BucketLoc,
}

fn setup(w: &World, rt: &tokio::runtime::Runtime, groups: &[&str]) -> Setup {
    let ids: Vec<_> = groups
        .iter()
        .map(|g| json!({"id": w.emu.permission_group_id(g, ACCOUNT_SCOPE).unwrap()}))
        .collect();
    let (token_id, value) = w.emu.mint_token(
        "storage-test",
        json!([{
            "effect": "allow",
            "resources": {format!("com.cloudflare.api.account.{}", w.account_id()): "*"},
            "permission_groups": ids,
        }]),
    );
    w.secret(&value);
    let options = ClientOptions {
        retry: fast_retries(),
        ..ClientOptions::default()
    };
    let client = Client::new(
        &Url::parse(&w.emu.base_url()).unwrap(),
        Auth::Token(Secret::new(value)),
        options,
    )
    .unwrap();
    // The bucket is made with the Global API Key, so a token without R2 Write still has one.
    let admin = client.with_auth(Auth::GlobalKey {
        email: w.emu.seed().email.clone(),
        key: Secret::new(w.emu.seed().global_key.clone()),
    });
    let bucket = BucketLoc {
        account: w.account_id(),
        name: cfsetup::names::BucketName::parse("site", "x").unwrap(),
        jurisdiction: None,
    };
    rt.block_on(admin.create_bucket(
        BucketRef {
            account: &bucket.account,
            name: &bucket.name,
            jurisdiction: None,
        },
        None,
    ))
    .unwrap();
    Setup {
        client,
        token_id,
        bucket,
    }
}

fn config(w: &World, via: Option<Via>, env: &[(&str, &str)]) -> Config {
    let mut process: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    process
        .entry("R2_S3_ENDPOINT".into())
        .or_insert_with(|| w.emu.s3_endpoint());
    let args = GlobalArgs {
        via,
        ..GlobalArgs::default()
    };
    Config::from_parts(
        &args,
        Vars::new(process, HashMap::new()),
        "/nonexistent/.env".into(),
    )
    .unwrap()
}

fn small_parts() -> S3Options {
    S3Options {
        multipart_threshold: 5 * MIB as u64,
        part_size: 5 * MIB as u64,
        ..S3Options::default()
    }
}

fn store(
    w: &World,
    rt: &tokio::runtime::Runtime,
    s: &Setup,
    via: Option<Via>,
    token_id: Option<&str>,
) -> Storage {
    rt.block_on(open_with(
        &config(w, via, &[]),
        &s.client,
        s.bucket.clone(),
        OpenSetup {
            token_id: token_id.map(str::to_string),
            s3: Some(small_parts()),
        },
    ))
    .unwrap()
}

fn rest_object_requests(w: &World) -> usize {
    w.emu
        .requests()
        .iter()
        .filter(|r| r.api == Api::Rest && r.path.contains("/objects"))
        .count()
}

fn s3_requests(w: &World) -> usize {
    w.emu.requests().iter().filter(|r| r.api == Api::S3).count()
}

fn sha256(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

fn file(w: &World, name: &str, bytes: &[u8]) -> Payload {
    let path = w.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    Payload::File {
        path,
        len: bytes.len() as u64,
        sha256: sha256(bytes),
    }
}

#[test]
fn auto_with_a_token_uses_s3_for_every_object_operation() {
    let w = World::new();
    let rt = rt();
    let s = setup(&w, &rt, &["Workers R2 Storage Write"]);
    let st = store(&w, &rt, &s, None, None);
    assert_eq!(st.via(), "S3");
    assert!(st.conditional_writes_are_atomic());
    rt.block_on(async {
        let opts = PutOptions::overwrite("text/plain");
        let etag = st
            .put(
                "sites/a/x.txt",
                Payload::Bytes(Bytes::from("hello")),
                opts.clone(),
            )
            .await
            .unwrap()
            .expect("an etag");
        let o = st.get("sites/a/x.txt").await.unwrap().unwrap();
        assert_eq!(&o.body[..], b"hello");
        assert_eq!(o.meta.etag.as_deref(), Some(etag.as_str()));
        let r = st.get_range("sites/a/x.txt", 1..3).await.unwrap().unwrap();
        assert_eq!(&r.body[..], b"el");
        assert_eq!(st.head("sites/a/x.txt").await.unwrap().unwrap().size, 5);
        assert!(st.head("missing").await.unwrap().is_none());
        assert!(st.get("missing").await.unwrap().is_none());

        // Conditional writes are the server's: Create on an existing key and Update with a
        // stale ETag are both 412.
        let create = opts.clone().with_mode(PutMode::Create);
        let e = st
            .put("sites/a/x.txt", Payload::Bytes(Bytes::from("x")), create)
            .await
            .unwrap_err();
        assert!(e.is_precondition_failed(), "{e}");
        let stale = opts.clone().with_mode(PutMode::Update("0000".into()));
        let e = st
            .put("sites/a/x.txt", Payload::Bytes(Bytes::from("x")), stale)
            .await
            .unwrap_err();
        assert!(e.is_precondition_failed(), "{e}");
        let fresh = opts.clone().with_mode(PutMode::Update(etag));
        st.put("sites/a/x.txt", Payload::Bytes(Bytes::from("y")), fresh)
            .await
            .unwrap();

        for t in ["b", "c"] {
            st.put(
                &format!("sites/{t}/m.json"),
                Payload::Bytes(Bytes::from("{}")),
                opts.clone(),
            )
            .await
            .unwrap();
        }
        let listed: Vec<_> = st
            .list("sites/")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        assert_eq!(
            listed,
            ["sites/a/x.txt", "sites/b/m.json", "sites/c/m.json"]
        );
        assert_eq!(
            st.list_prefixes("sites/").await.unwrap(),
            ["sites/a/", "sites/b/", "sites/c/"]
        );
        st.delete("sites/a/x.txt").await.unwrap();
        st.delete("sites/a/x.txt").await.unwrap();
        st.delete_many(&[
            "sites/b/m.json".into(),
            "sites/c/m.json".into(),
            "nope".into(),
        ])
        .await
        .unwrap();
        assert!(st.list("").await.unwrap().is_empty());
    });
    assert_eq!(rest_object_requests(&w), 0, "no object went over REST");
    assert!(st.fallback_note().is_none());
    assert!(s.client.stats().s3_requests as usize >= s3_requests(&w));
}

#[test]
fn a_5_mib_plus_1_byte_file_round_trips_in_two_parts() {
    let w = World::new();
    let rt = rt();
    let s = setup(&w, &rt, &["Workers R2 Storage Write"]);
    let st = store(&w, &rt, &s, Some(Via::S3), Some(&s.token_id));
    let bytes: Vec<u8> = (0..5 * MIB + 1).map(|i| (i * 31 % 251) as u8).collect();
    let payload = file(&w, "big.bin", &bytes);
    let key = format!("blobs/{}", sha256(&bytes));
    rt.block_on(async {
        st.put(
            &key,
            payload,
            PutOptions::overwrite("application/octet-stream"),
        )
        .await
        .unwrap();
        let back = st.get(&key).await.unwrap().unwrap();
        assert!(back.body[..] == bytes[..], "byte for byte");
    });
    let parts = w
        .emu
        .requests()
        .iter()
        .filter(|r| r.api == Api::S3 && r.method == "PUT")
        .filter(|r| r.query.as_deref().is_some_and(|q| q.contains("partNumber")))
        .count();
    assert_eq!(parts, 2);
    assert!(w.emu.pending_uploads().is_empty());
}

/// A file edited after it was hashed (same size) is refused on every path: S3 single PUT, S3
/// multipart, and REST. Nothing is stored under the old hash.
#[test]
fn a_file_changed_after_hashing_is_refused_and_not_stored() {
    let w = World::new();
    let rt = rt();
    let s = setup(&w, &rt, &["Workers R2 Storage Write"]);
    let s3 = store(&w, &rt, &s, Some(Via::S3), Some(&s.token_id));
    let rest = store(&w, &rt, &s, Some(Via::Rest), None);
    assert_eq!(rest.via(), "REST");
    for (name, st, size) in [
        ("small", &s3, 1000),
        ("multipart", &s3, 5 * MIB + 1),
        ("rest", &rest, 1000),
    ] {
        let original = vec![b'a'; size];
        let payload = file(&w, name, &original);
        let key = format!("blobs/{name}-{}", sha256(&original));
        // Edited after hashing, keeping the size.
        let mut edited = original.clone();
        edited[size - 1] = b'b';
        std::fs::write(w.path().join(name), &edited).unwrap();
        let e = rt
            .block_on(st.put(&key, payload, PutOptions::overwrite("text/plain")))
            .unwrap_err();
        assert!(
            matches!(e, StorageError::ChangedOnDisk { .. }),
            "{name}: {e}"
        );
        assert!(
            w.emu.objects("site").iter().all(|o| o.key != key),
            "{name}: nothing stored"
        );
    }
    assert!(
        w.emu.pending_uploads().is_empty(),
        "the multipart upload was aborted"
    );
}

/// In `auto`, refused keys (here a wrong key id: InvalidAccessKeyId) switch the run to REST
/// once, with one note naming the code and the likely cause; `--via s3` fails instead.
#[test]
fn auto_falls_back_to_rest_once_and_via_s3_fails() {
    let w = World::new();
    let rt = rt();
    let s = setup(&w, &rt, &["Workers R2 Storage Write"]);
    let st = store(&w, &rt, &s, None, Some("0123456789abcdef0123456789abcdef"));
    rt.block_on(async {
        let keys: Vec<String> = (0..8).map(|i| format!("k/{i}")).collect();
        let puts = keys.iter().map(|k| {
            st.put(
                k,
                Payload::Bytes(Bytes::from("v")),
                PutOptions::overwrite("text/plain"),
            )
        });
        for r in futures::future::join_all(puts).await {
            r.unwrap();
        }
        assert_eq!(st.list("k/").await.unwrap().len(), 8);
    });
    assert_eq!(st.via(), "REST");
    assert_eq!(st.max_object_size(), 300 * 1024 * 1024);
    let note = st.fallback_note().expect("a note");
    assert!(note.contains("InvalidAccessKeyId"), "{note}");
    assert!(note.contains("Workers R2 Storage Write"), "{note}");
    // After the switch, S3 is not tried again.
    let s3_before = s3_requests(&w);
    rt.block_on(st.head("k/1")).unwrap().unwrap();
    assert_eq!(s3_requests(&w), s3_before);

    let strict = store(
        &w,
        &rt,
        &s,
        Some(Via::S3),
        Some("0123456789abcdef0123456789abcdef"),
    );
    let e = rt.block_on(strict.get("k/1")).unwrap_err();
    assert!(e.is_s3_auth_refusal(), "{e}");
    assert_eq!(e.s3_code(), Some("InvalidAccessKeyId"));
}

/// A token whose keys S3 accepts but which lacks R2 permission: AccessDenied, a fallback too.
#[test]
fn a_token_without_r2_permission_is_access_denied_over_s3() {
    let w = World::new();
    let rt = rt();
    let s = setup(&w, &rt, &["Account Settings Read"]);
    let st = store(&w, &rt, &s, Some(Via::S3), None);
    let e = rt.block_on(st.head("x")).unwrap_err();
    assert_eq!(e.s3_code(), Some("AccessDenied"), "{e}");
    assert!(e.is_s3_auth_refusal());
}

#[test]
fn s3_retries_429_and_503_then_succeeds() {
    let w = World::new();
    let rt = rt();
    let s = setup(&w, &rt, &["Workers R2 Storage Write"]);
    let st = store(&w, &rt, &s, Some(Via::S3), Some(&s.token_id));
    for kind in [
        FaultKind::RateLimit {
            retry_after_secs: 0,
        },
        FaultKind::ServerError { status: 503 },
    ] {
        w.emu.inject_for(
            Api::S3,
            Fault {
                method: Some("PUT".into()),
                path_contains: None,
                kind,
                times: 2,
            },
        );
    }
    w.emu.inject_for(
        Api::S3,
        Fault {
            method: Some("PUT".into()),
            path_contains: None,
            kind: FaultKind::ServerError { status: 500 },
            times: 1,
        },
    );
    let before = s.client.stats();
    rt.block_on(st.put(
        "k",
        Payload::Bytes(Bytes::from("v")),
        PutOptions::overwrite("text/plain"),
    ))
    .unwrap();
    let after = s.client.stats();
    assert_eq!(after.s3_retries - before.s3_retries, 5);
    assert_eq!(after.requests, before.requests, "no REST request");

    // A 4xx other than 429 is not retried.
    let before = s.client.stats();
    let e = rt
        .block_on(st.put(
            "k",
            Payload::Bytes(Bytes::from("v")),
            PutOptions::overwrite("text/plain").with_mode(PutMode::Create),
        ))
        .unwrap_err();
    assert!(e.is_precondition_failed());
    assert_eq!(s.client.stats().s3_retries, before.s3_retries);
}

#[test]
fn via_and_s3_endpoint_resolve_with_flag_over_env() {
    let w = World::new();
    let c = config(&w, None, &[("CFSETUP_VIA", "REST")]);
    assert_eq!(c.via, Via::Rest);
    let c = config(&w, Some(Via::S3), &[("CFSETUP_VIA", "rest")]);
    assert_eq!(c.via, Via::S3);
    let c = config(&w, None, &[]);
    assert_eq!(c.via, Via::Auto);
    assert_eq!(
        c.s3_endpoint.unwrap().as_str().trim_end_matches('/'),
        w.emu.s3_endpoint().trim_end_matches('/')
    );
    let bad = Config::from_parts(
        &GlobalArgs::default(),
        Vars::new(
            [(
                "R2_S3_ENDPOINT".to_string(),
                "http://example.com".to_string(),
            )]
            .into(),
            HashMap::new(),
        ),
        "/nonexistent/.env".into(),
    );
    assert!(bad.is_err(), "plain http only to loopback");
}

#[test]
fn via_rest_or_the_global_key_gives_rest_and_via_s3_with_it_is_a_usage_error() {
    let w = World::new();
    let rt = rt();
    let client = Client::new(
        &Url::parse(&w.emu.base_url()).unwrap(),
        Auth::GlobalKey {
            email: w.emu.seed().email.clone(),
            key: Secret::new(w.emu.seed().global_key.clone()),
        },
        ClientOptions::default(),
    )
    .unwrap();
    let bucket = BucketLoc {
        account: w.account_id(),
        name: cfsetup::names::BucketName::parse("site", "x").unwrap(),
        jurisdiction: None,
    };
    let st = rt
        .block_on(cfsetup::storage::open(
            &config(&w, None, &[]),
            &client,
            bucket.clone(),
        ))
        .unwrap();
    assert_eq!(st.via(), "REST");
    let e = rt
        .block_on(cfsetup::storage::open(
            &config(&w, Some(Via::S3), &[]),
            &client,
            bucket,
        ))
        .unwrap_err();
    assert_eq!(cfsetup::exit::exit_code(&e), 2, "{e:#}");
    assert!(w.emu.requests().is_empty(), "no request was made");
}

#[test]
fn cli_via_s3_with_the_global_key_and_a_bad_cfsetup_via_exit_2() {
    let w = World::new();
    let out = w
        .bare()
        .env("CLOUDFLARE_EMAIL", &w.emu.seed().email)
        .env("CLOUDFLARE_GLOBAL_KEY", &w.emu.seed().global_key)
        .env("CLOUDFLARE_ACCOUNT_ID", w.account_id())
        .env("CLOUDFLARE_ZONE_ID", w.zone_id())
        .args(["--via", "s3", "test-permissions"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--via s3 needs an API token"));
    assert!(w.emu.requests().is_empty(), "refused before any request");

    let out = w
        .bare()
        .env("CFSETUP_VIA", "ftp")
        .env("CLOUDFLARE_API_TOKEN", "x".repeat(40))
        .args(["test-permissions"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CFSETUP_VIA"));
    let out = w
        .bare()
        .args(["--via", "ftp", "test-permissions"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn r2_check(json: &serde_json::Value) -> (String, String) {
    let c = json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["permission"] == "Workers R2 Storage Write")
        .expect("the R2 check")
        .clone();
    (
        c["result"].as_str().unwrap().to_string(),
        c["detail"].as_str().unwrap().to_string(),
    )
}

#[test]
fn test_permissions_lists_its_bucket_over_s3_and_stores_nothing() {
    let w = World::new();
    let token = w.full_token();
    let run = w
        .run(w.with_token(&token).args(["--json", "test-permissions"]))
        .success();
    let json: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(json["checks"].as_array().unwrap().len(), 8);
    let (result, detail) = r2_check(&json);
    assert_eq!(result, "passed");
    assert!(detail.contains("REST and S3"), "{detail}");
    let s3: Vec<_> = w
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.api == Api::S3)
        .map(|r| (r.method, r.status))
        .collect();
    // One listing (ListObjectsV2) with the derived keys: S3 accepts them; R2 Storage Write was
    // proven by the bucket's creation over REST.
    assert_eq!(s3, [("GET".to_string(), 200)]);
    assert_eq!(w.emu.count_s3_op("ListObjectsV2"), 1);
    assert!(w
        .emu
        .buckets()
        .iter()
        .all(|b| !b.starts_with("cfsetup-check-")));
}

/// S3 fails where REST works: the check still passes, with a warning that deploys will use REST.
#[test]
fn test_permissions_passes_with_a_warning_when_only_rest_works() {
    let w = World::new();
    let token = w.full_token();
    w.emu.inject_for(
        Api::S3,
        Fault {
            method: Some("GET".into()),
            path_contains: None,
            kind: FaultKind::ServerError { status: 501 },
            times: 20,
        },
    );
    let run = w
        .run(w.with_token(&token).args(["--json", "test-permissions"]))
        .success();
    let json: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let (result, detail) = r2_check(&json);
    assert_eq!(result, "passed");
    assert!(
        detail.contains("warning") && detail.contains("deploys will use REST"),
        "{detail}"
    );
    assert!(detail.contains("NotImplemented"), "{detail}");
    assert_eq!(json["passed"], 8);
    let rest_listings = w
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.api == Api::Rest && r.method == "GET" && r.path.ends_with("/objects"))
        .count();
    assert_eq!(rest_listings, 1, "the bucket listed over REST instead");
}

/// The REST pacing against the emulator's own sliding-window limiter (scaled down: 30 per 5 s):
/// 70 object PUTs, none refused, in three windows.
#[test]
fn rest_pacing_keeps_under_the_emulator_s_own_limit() {
    let mut options = cfsetup_emulator::Options::new();
    options.rate_limit = Some((30, Duration::from_secs(5)));
    options.latency = Duration::from_millis(50);
    let w = World::with_options(options);
    let rt = rt();
    let client = Client::new(
        &Url::parse(&w.emu.base_url()).unwrap(),
        Auth::GlobalKey {
            email: w.emu.seed().email.clone(),
            key: Secret::new(w.emu.seed().global_key.clone()),
        },
        ClientOptions {
            pacing: cfsetup::cloudflare::Pacing {
                window_limit: 30,
                window: Duration::from_secs(5),
            },
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let bucket = BucketLoc {
        account: w.account_id(),
        name: cfsetup::names::BucketName::parse("site", "x").unwrap(),
        jurisdiction: None,
    };
    rt.block_on(client.create_bucket(
        BucketRef {
            account: &bucket.account,
            name: &bucket.name,
            jurisdiction: None,
        },
        None,
    ))
    .unwrap();
    let st = Storage::rest(cfsetup::storage::RestStore::new(client.clone(), bucket));
    let started = std::time::Instant::now();
    rt.block_on(async {
        use futures::stream::{self, StreamExt};
        let keys: Vec<String> = (0..69).map(|i| format!("k/{i}")).collect();
        stream::iter(keys.iter())
            .for_each_concurrent(16, |k| {
                let st = &st;
                async move {
                    st.put(
                        k,
                        Payload::Bytes(Bytes::from("v")),
                        PutOptions::overwrite("text/plain"),
                    )
                    .await
                    .unwrap();
                }
            })
            .await;
    });
    let took = started.elapsed();
    let refused = w.emu.requests().iter().filter(|r| r.status == 429).count();
    eprintln!("took {took:?}, {refused} refused");
    assert_eq!(refused, 0);
    // Windows of 5 s + the 2 s arrival margin: the 61st..70th start about 14 s in.
    assert!(took < Duration::from_secs(18), "{took:?}");
}

/// Every S3 request is signed in the Authorization-header form, never presigned: multipart
/// (CreateMultipartUpload, UploadPart, CompleteMultipartUpload) and DeleteObjects are POSTs, which
/// R2 documents no presigned form for (docs/cloudflare-api.md §7 "Signing: use the header form").
/// So a file above the multipart threshold goes up in parts and `delete_many` is one batch.
#[test]
fn multipart_and_delete_many_are_header_signed_posts() {
    let w = World::new();
    let rt = rt();
    let s = setup(&w, &rt, &["Workers R2 Storage Write"]);
    let st = store(&w, &rt, &s, Some(Via::S3), Some(&s.token_id));
    let bytes: Vec<u8> = (0..5 * MIB + 1).map(|i| (i * 31 % 251) as u8).collect();
    let key = format!("blobs/{}", sha256(&bytes));
    rt.block_on(async {
        let payload = file(&w, "big.bin", &bytes);
        st.put(
            &key,
            payload,
            PutOptions::overwrite("application/octet-stream"),
        )
        .await
        .unwrap();
        let back = st.get(&key).await.unwrap().unwrap();
        assert!(back.body[..] == bytes[..], "byte for byte");
        let keys: Vec<String> = (0..20).map(|i| format!("d/{i}")).collect();
        for k in &keys {
            st.put(
                k,
                Payload::Bytes(Bytes::from("v")),
                PutOptions::overwrite("text/plain"),
            )
            .await
            .unwrap();
        }
        let mut all = keys.clone();
        all.push(key.clone());
        all.push("missing".into());
        st.delete_many(&all).await.unwrap();
        assert!(st.list("d/").await.unwrap().is_empty());
        assert!(st.head(&key).await.unwrap().is_none());
    });
    let requests: Vec<_> = w
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.api == Api::S3)
        .collect();
    assert!(
        requests.iter().all(|r| r.auth == "sigv4"),
        "every S3 request is header-signed: {:?}",
        requests
            .iter()
            .filter(|r| r.auth != "sigv4")
            .collect::<Vec<_>>()
    );
    let posts = requests.iter().filter(|r| r.method == "POST").count();
    assert_eq!(posts, 3, "create, complete, one DeleteObjects");
    assert!(requests.iter().any(|r| r
        .query
        .as_deref()
        .is_some_and(|q| q.contains("partNumber=2"))));
    assert!(w.emu.pending_uploads().is_empty());
}

/// A conditional write of a multipart-sized file is refused before any request: R2 documents
/// no conditions on CompleteMultipartUpload.
#[test]
fn a_conditional_multipart_write_is_refused_before_any_request() {
    let w = World::new();
    let rt = rt();
    let s = setup(&w, &rt, &["Workers R2 Storage Write"]);
    let st = store(&w, &rt, &s, Some(Via::S3), Some(&s.token_id));
    let bytes: Vec<u8> = vec![7; 5 * MIB + 1];
    let before = w.emu.requests().len();
    let e = rt
        .block_on(st.put(
            "blobs/x",
            file(&w, "big.bin", &bytes),
            PutOptions::overwrite("application/octet-stream").with_mode(PutMode::Create),
        ))
        .unwrap_err();
    assert!(
        matches!(e, StorageError::ConditionalMultipart { .. }),
        "{e}"
    );
    assert_eq!(w.emu.requests().len(), before, "nothing was sent");
}

/// `auto` falls back to REST at once when R2's S3 host cannot be reached (here a closed port),
/// says so once naming the endpoint, and the call completes over REST; `--via s3` fails and
/// names the endpoint.
#[test]
fn auto_falls_back_to_rest_when_s3_cannot_be_reached() {
    let w = World::new();
    let rt = rt();
    let s = setup(&w, &rt, &["Workers R2 Storage Write"]);
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        format!("http://127.0.0.1:{port}")
    };
    let cfg = |via| config(&w, via, &[("R2_S3_ENDPOINT", closed.as_str())]);
    let open = |via| {
        rt.block_on(open_with(
            &cfg(via),
            &s.client,
            s.bucket.clone(),
            OpenSetup {
                token_id: Some(s.token_id.clone()),
                s3: None,
            },
        ))
        .unwrap()
    };
    let st = open(None);
    let started = std::time::Instant::now();
    rt.block_on(st.put(
        "k",
        Payload::Bytes(Bytes::from("v")),
        PutOptions::overwrite("text/plain"),
    ))
    .unwrap();
    assert!(rt.block_on(st.head("k")).unwrap().is_some());
    eprintln!("fell back after {:?}", started.elapsed());
    assert_eq!(st.via(), "REST");
    let note = st.fallback_note().expect("a note");
    assert!(
        note.contains(&closed) && note.contains("could not be reached"),
        "{note}"
    );
    assert!(note.contains("firewall"), "{note}");

    let strict = open(Some(Via::S3));
    let e = rt.block_on(strict.head("k")).unwrap_err();
    assert!(e.to_string().contains(&closed), "{e}");
}

/// R2's other refusals of the keys fall back too: 400 InvalidArgument for a key id that is not
/// 32 characters, and SignatureDoesNotMatch for a prefixed token's keys
/// (`s3_refuses_prefixed_tokens`), while a legacy token's keys still work.
#[test]
fn a_short_key_id_and_refused_prefixed_tokens_fall_back_in_auto() {
    let w = World::with_options(cfsetup_emulator::Options {
        s3_refuses_prefixed_tokens: true,
        ..cfsetup_emulator::Options::new()
    });
    let rt = rt();
    let s = setup(&w, &rt, &["Workers R2 Storage Write"]);
    let put = |st: &Storage| {
        rt.block_on(st.put(
            "k",
            Payload::Bytes(Bytes::from("v")),
            PutOptions::overwrite("text/plain"),
        ))
        .unwrap();
        rt.block_on(st.head("k")).unwrap().unwrap();
    };

    // A 31-character key id: InvalidArgument, also on a HEAD, whose error has no body.
    let short = &s.token_id[1..];
    for first_head in [false, true] {
        let st = store(&w, &rt, &s, None, Some(short));
        if first_head {
            rt.block_on(st.head("k")).unwrap();
        } else {
            put(&st);
        }
        assert_eq!(st.via(), "REST");
        let note = st.fallback_note().expect("a note");
        assert!(note.contains("InvalidArgument"), "{note}");
    }
    let strict = store(&w, &rt, &s, Some(Via::S3), Some(short));
    let e = rt.block_on(strict.head("k")).unwrap_err();
    assert!(e.is_s3_auth_refusal(), "{e}");
    assert_eq!(e.s3_code(), Some("InvalidArgument"));

    // The prefixed token's own id: refused, a fallback with the new-format hint.
    let st = store(&w, &rt, &s, None, None);
    put(&st);
    assert_eq!(st.via(), "REST");
    let note = st.fallback_note().expect("a note");
    assert!(note.contains("SignatureDoesNotMatch"), "{note}");
    assert!(note.contains("new-format token"), "{note}");
    let strict = store(&w, &rt, &s, Some(Via::S3), None);
    assert!(rt
        .block_on(strict.head("k"))
        .unwrap_err()
        .is_s3_auth_refusal());

    // A legacy token's keys are accepted.
    let (id, value) = w.emu.mint_legacy_token(
        "legacy",
        json!([{
            "effect": "allow",
            "resources": {format!("com.cloudflare.api.account.{}", w.account_id()): "*"},
            "permission_groups": [{"id": w.emu.permission_group_id("Workers R2 Storage Write", ACCOUNT_SCOPE).unwrap()}],
        }]),
    );
    w.secret(&value);
    let legacy = Setup {
        client: s.client.with_auth(Auth::Token(Secret::new(value))),
        token_id: id,
        bucket: s.bucket.clone(),
    };
    let st = store(&w, &rt, &legacy, None, Some(&legacy.token_id));
    put(&st);
    assert_eq!(st.via(), "S3");
    assert!(st.fallback_note().is_none());
}

/// R2's S3 host unreachable (a closed port, as a firewall would make it): test-permissions still
/// passes its R2 check, over REST, with a warning naming the endpoint and the likely cause, and
/// without retrying the dead host.
#[test]
fn test_permissions_passes_over_rest_when_s3_cannot_be_reached() {
    let w = World::new();
    let token = w.full_token();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        format!("http://127.0.0.1:{port}")
    };
    let run = w
        .run(
            w.with_token(&token)
                .env("R2_S3_ENDPOINT", &closed)
                .args(["--json", "test-permissions"]),
        )
        .success();
    let json: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert_eq!(json["passed"], 8);
    let (result, detail) = r2_check(&json);
    assert_eq!(result, "passed");
    assert!(detail.contains("could not be reached"), "{detail}");
    assert!(detail.contains(&closed), "{detail}");
    assert!(detail.contains("firewall"), "{detail}");
    assert!(detail.contains("deploys will use REST"), "{detail}");
}

/// With `-v`, a SignatureDoesNotMatch from R2's S3 API shows the payload line of the canonical
/// request the server computed beside the hash cfsetup signed, so a first failure on a live
/// account says which side read the payload differently. Here the keys are wrong on purpose: the
/// token id of one token with the value of another.
#[test]
fn a_signature_mismatch_shows_both_payload_lines_with_v() {
    let w = World::new();
    let token = w.full_token();
    let (other_id, other_value) = w.emu.mint_token(
        "other",
        w.policies(&[("Workers R2 Storage Write", ACCOUNT_SCOPE)]),
    );
    w.secret(&other_value);
    std::fs::create_dir_all(w.file("site")).unwrap();
    std::fs::write(w.file("site/index.html"), "hi").unwrap();
    let run = w.run(
        w.with_token(&token)
            .env("CLOUDFLARE_API_TOKEN_ID", &other_id)
            .env("PLATFORM_DOMAIN", w.zone_name())
            .args(["-v", "--via", "s3", "deploy-site", "site", "acme"]),
    );
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let stderr = run.stderr();
    assert!(stderr.contains("SignatureDoesNotMatch"), "{stderr}");
    assert!(
        stderr.contains("the server's canonical request ends with payload line"),
        "{stderr}"
    );
    assert!(stderr.contains("cfsetup signed payload"), "{stderr}");
}
