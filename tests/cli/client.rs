//! The API client on its own, against the emulator (and, for malformed answers the emulator never
//! gives, a tiny canned-response server): both auth schemes, every error class, both paging
//! styles, retries with their request counts, and decode errors that name the JSON path.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use cfsetup::cloudflare::{Auth, Client, ClientOptions, Error, RetryPolicy};
use cfsetup::secret::Secret;
use cfsetup_emulator::{Fault, FaultKind};
use url::Url;

use crate::common::{World, ACCOUNT_SCOPE, EIGHT};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn fast_retries() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy {
            max_retries: 3,
            max_rate_limit_retries: 4,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_retry_after: Duration::from_secs(5),
        },
        ..ClientOptions::default()
    }
}

fn client(w: &World, auth: Auth) -> Client {
    Client::new(
        &Url::parse(&w.emu.base_url()).unwrap(),
        auth,
        fast_retries(),
    )
    .unwrap()
}

fn global(w: &World) -> Auth {
    Auth::GlobalKey {
        email: w.emu.seed().email.clone(),
        key: Secret::new(w.emu.seed().global_key.clone()),
    }
}

fn token(value: &str) -> Auth {
    Auth::Token(Secret::new(value))
}

fn count(w: &World, method: &str, path: &str) -> usize {
    w.emu
        .requests()
        .iter()
        .filter(|r| r.method == method && r.path == path)
        .count()
}

#[test]
fn both_auth_schemes_work() {
    let w = World::new();
    let rt = rt();
    let user = rt.block_on(client(&w, global(&w)).get_user()).unwrap();
    assert_eq!(user.email.as_deref(), Some(w.emu.seed().email.as_str()));
    let t = w.full_token();
    let status = rt.block_on(client(&w, token(&t)).verify_token()).unwrap();
    assert_eq!(status.status, "active");
    let auths: Vec<String> = w.emu.requests().iter().map(|r| r.auth.clone()).collect();
    assert_eq!(auths, ["global-key", "token"]);
}

#[test]
fn each_error_class_is_typed() {
    let w = World::new();
    let rt = rt();
    let account = w.account_id();

    // 403/10000: a valid token without the permission.
    let zone_only = w.mint(&[("Zone Read", "com.cloudflare.api.account.zone")]);
    let e = rt
        .block_on(client(&w, token(&zone_only)).get_account(&account))
        .unwrap_err();
    assert!(e.is_permission_denied(), "{e}");
    assert!(e
        .hint()
        .unwrap()
        .contains("Account Settings Read on account"));

    // 9103: a wrong Global API Key.
    let bad_key = Auth::GlobalKey {
        email: w.emu.seed().email.clone(),
        key: Secret::new("0".repeat(37)),
    };
    let e = rt.block_on(client(&w, bad_key).get_user()).unwrap_err();
    assert!(e.has_code(9103), "{e}");

    // 1000: a token the API does not know.
    let e = rt
        .block_on(client(&w, token("cfut_unknown")).verify_token())
        .unwrap_err();
    assert!(e.has_code(1000), "{e}");
    assert!(e.is_invalid_credential());

    // 6003: a malformed Authorization header.
    let e = rt
        .block_on(client(&w, token("two words")).verify_token())
        .unwrap_err();
    assert!(e.has_code(6003), "{e}");

    // 404 becomes `None` where absence is an answer.
    let b = cfsetup::cloudflare::r2::BucketRef {
        account: &account,
        name: "no-such-bucket",
        jurisdiction: None,
    };
    assert!(rt
        .block_on(client(&w, global(&w)).get_bucket(b))
        .unwrap()
        .is_none());

    // Transport: nothing listens there.
    let dead = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/client/v4", dead.local_addr().unwrap());
    drop(dead);
    let c = Client::new(&Url::parse(&url).unwrap(), global(&w), fast_retries()).unwrap();
    let e = rt.block_on(c.get_user()).unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e}");
    assert_eq!(c.stats().requests, 4, "connection failures are retried");
}

#[test]
fn page_pagination_walks_every_page_and_stops() {
    let w = World::new();
    for i in 0..60 {
        w.emu.mint_token(
            &format!("t{i}"),
            w.policies(&[("Zone Read", "com.cloudflare.api.account.zone")]),
        );
    }
    let tokens = rt().block_on(client(&w, global(&w)).list_tokens()).unwrap();
    assert_eq!(tokens.len(), 60);
    assert_eq!(count(&w, "GET", "/user/tokens"), 2, "two pages of 50");
}

#[test]
fn page_pagination_follows_the_per_page_the_server_returned() {
    // The server caps per_page at 7, below the 50 asked for: a short page is not the last one.
    let w = World::with_options(cfsetup_emulator::Options {
        max_per_page: Some(7),
        ..cfsetup_emulator::Options::new()
    });
    for i in 0..20 {
        w.emu.mint_token(
            &format!("t{i}"),
            w.policies(&[("Zone Read", "com.cloudflare.api.account.zone")]),
        );
    }
    let tokens = rt().block_on(client(&w, global(&w)).list_tokens()).unwrap();
    assert_eq!(tokens.len(), 20);
    assert_eq!(count(&w, "GET", "/user/tokens"), 3, "pages of 7, 7 and 6");
}

#[test]
fn page_pagination_without_result_info_goes_on_until_an_empty_page() {
    let page = |ids: &[&str]| {
        let items: Vec<String> = ids
            .iter()
            .map(|id| format!(r#"{{"id":"{id}","name":"n"}}"#))
            .collect();
        http(
            "200 OK",
            "content-type: application/json\r\n",
            &format!(
                r#"{{"success":true,"errors":[],"messages":[],"result":[{}]}}"#,
                items.join(",")
            ),
        )
    };
    let url = canned(vec![page(&["a", "b"]), page(&["c"]), page(&[])]);
    let c = Client::new(&Url::parse(&url).unwrap(), token("t"), fast_retries()).unwrap();
    let tokens = rt().block_on(c.list_tokens()).unwrap();
    let ids: Vec<&str> = tokens.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(c.stats().requests, 3);
}

#[test]
fn cursor_pagination_walks_every_page() {
    let w = World::new();
    let rt = rt();
    let c = client(&w, global(&w));
    let account = w.account_id();
    let b = cfsetup::cloudflare::r2::BucketRef {
        account: &account,
        name: "paging",
        jurisdiction: None,
    };
    rt.block_on(c.create_bucket(b, None)).unwrap();
    rt.block_on(async {
        use futures::StreamExt;
        futures::stream::iter(0..1005)
            .map(|i| {
                let c = c.clone();
                async move {
                    c.put_object(
                        b,
                        &format!("k/{i:05}"),
                        cfsetup::cloudflare::r2::ObjectBody::Bytes(bytes::Bytes::from_static(b"x")),
                        "text/plain",
                    )
                    .await
                }
            })
            .buffer_unordered(16)
            .for_each(|r| async move { r.unwrap() })
            .await
    });
    w.emu.clear_requests();
    let all = rt.block_on(c.list_objects(b, "k/")).unwrap();
    assert_eq!(all.len(), 1005);
    assert_eq!(all[0].key, "k/00000");
    assert_eq!(all[1004].size, 1);
    assert_eq!(w.emu.requests().len(), 2, "two pages of at most 1000");
}

#[test]
fn rate_limits_and_server_errors_are_retried() {
    let w = World::new();
    let rt = rt();
    let c = client(&w, global(&w));
    let account = w.account_id();
    let path = format!("/accounts/{account}");
    w.emu.inject(Fault {
        method: Some("GET".into()),
        path_contains: Some(path.clone()),
        kind: FaultKind::RateLimit {
            retry_after_secs: 1,
        },
        times: 1,
    });
    w.emu.inject(Fault {
        method: Some("GET".into()),
        path_contains: Some(path.clone()),
        kind: FaultKind::ServerError { status: 503 },
        times: 1,
    });
    w.emu.inject(Fault {
        method: Some("GET".into()),
        path_contains: Some(path.clone()),
        kind: FaultKind::Drop,
        times: 1,
    });
    let got = rt.block_on(c.get_account(&account)).unwrap();
    assert_eq!(got.id, account);
    assert_eq!(
        count(&w, "GET", &path),
        4,
        "429, 503, dropped, then success"
    );
    assert_eq!(c.stats().retries, 3);
}

#[test]
fn a_create_is_not_repeated_after_a_server_error_but_is_after_a_429() {
    let w = World::new();
    let rt = rt();
    let c = client(&w, global(&w));
    let new = cfsetup::cloudflare::tokens::NewToken {
        name: "once".into(),
        policies: serde_json::from_value(w.policies(&EIGHT[..1])).unwrap(),
        expires_on: None,
        not_before: None,
        condition: None,
    };
    w.emu.inject(Fault {
        method: Some("POST".into()),
        path_contains: Some("/user/tokens".into()),
        kind: FaultKind::ServerError { status: 500 },
        times: 1,
    });
    assert!(rt.block_on(c.create_token(&new)).is_err());
    assert_eq!(count(&w, "POST", "/user/tokens"), 1);

    w.emu.inject(Fault {
        method: Some("POST".into()),
        path_contains: Some("/user/tokens".into()),
        kind: FaultKind::RateLimit {
            retry_after_secs: 0,
        },
        times: 1,
    });
    let created = rt.block_on(c.create_token(&new)).unwrap();
    assert_eq!(created.token.name, "once");
    assert_eq!(count(&w, "POST", "/user/tokens"), 3);
    let _ = ACCOUNT_SCOPE;
}

#[test]
fn retries_give_up_with_the_rate_limit_hint() {
    let w = World::new();
    let c = client(&w, global(&w));
    w.emu.inject(Fault {
        method: None,
        path_contains: Some("/user".into()),
        kind: FaultKind::RateLimit {
            retry_after_secs: 0,
        },
        times: 10,
    });
    let e = rt().block_on(c.get_user()).unwrap_err();
    assert_eq!(e.status(), Some(429));
    assert!(e.hint().unwrap().starts_with("rate limited"));
    assert_eq!(count(&w, "GET", "/user"), 5, "1 try + 4 rate-limit retries");
}

/// Serves `responses` in order, one per connection, on a loopback port.
fn canned(responses: Vec<String>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for response in responses {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let mut buf = [0u8; 8192];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.write_all(response.as_bytes());
        }
    });
    format!("http://{addr}/client/v4")
}

fn http(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n{headers}\r\n{body}",
        body.len()
    )
}

#[test]
fn an_unknown_route_is_an_error_never_absent() {
    // 404 / 7000 "No route for that URI" (docs/cloudflare-api.md §1): the path is wrong, so neither a
    // JSON call nor a raw one may read it as "no such bucket" or "no such script".
    let no_route = || {
        http(
            "404 Not Found",
            "content-type: application/json\r\n",
            r#"{"success":false,"errors":[{"code":7000,"message":"No route for that URI"}],"messages":[],"result":null}"#,
        )
    };
    let url = canned(vec![no_route(), no_route()]);
    let c = Client::new(&Url::parse(&url).unwrap(), token("t"), fast_retries()).unwrap();
    let account = "0".repeat(32);
    let b = cfsetup::cloudflare::r2::BucketRef {
        account: &account,
        name: "sites",
        jurisdiction: None,
    };
    let rt = rt();
    let e = rt.block_on(c.get_bucket(b)).unwrap_err();
    assert!(e.is_unknown_route() && !e.is_not_found(), "{e}");
    assert!(
        e.to_string().starts_with(&format!(
            "GET /accounts/{account}/r2/buckets/sites failed with HTTP 404: No route for that URI (code 7000)"
        )),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("no route for GET"), "{e:?}");
    let e = rt
        .block_on(c.script_content(&account, "router"))
        .unwrap_err();
    assert!(e.has_code(7000), "{e}");

    // Against the emulator: an unknown route is 404 / 7000 too, and a real absence stays None.
    let w = World::new();
    let wrong = format!("{}/v5", w.emu.base_url());
    let c = Client::new(&Url::parse(&wrong).unwrap(), global(&w), fast_retries()).unwrap();
    let acct = w.account_id();
    let b = cfsetup::cloudflare::r2::BucketRef {
        account: &acct,
        name: "sites",
        jurisdiction: None,
    };
    let e = rt.block_on(c.get_bucket(b)).unwrap_err();
    assert_eq!((e.status(), e.codes()), (Some(404), vec![7000]), "{e}");
    assert!(rt
        .block_on(client(&w, global(&w)).get_bucket(b))
        .unwrap()
        .is_none());
}

#[test]
fn decode_errors_name_the_field() {
    let url = canned(vec![http(
        "200 OK",
        "content-type: application/json\r\n",
        r#"{"success":true,"errors":[],"messages":[],"result":{"id":"abc","status":7}}"#,
    )]);
    let c = Client::new(&Url::parse(&url).unwrap(), token("t"), fast_retries()).unwrap();
    let e = rt().block_on(c.verify_token()).unwrap_err();
    match &e {
        Error::Decode { at, .. } => assert_eq!(at, "result.status"),
        other => panic!("{other}"),
    }
    assert!(e
        .to_string()
        .contains("unexpected response at `result.status`"));
}

#[test]
fn a_waf_challenge_is_named_with_its_ray() {
    let url = canned(vec![http(
        "403 Forbidden",
        "content-type: text/html\r\ncf-mitigated: challenge\r\ncf-ray: 8abc-EMU\r\n",
        "<html>Just a moment...</html>",
    )]);
    let c = Client::new(&Url::parse(&url).unwrap(), token("t"), fast_retries()).unwrap();
    let e = rt().block_on(c.get_user()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::NotJson {
                challenge: true,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("cf-ray 8abc-EMU"), "{e}");
    assert!(e.hint().unwrap().contains("firewall"));
}

#[test]
fn secrets_never_show_in_debug_output() {
    let w = World::new();
    let c = client(&w, global(&w));
    let dbg = format!("{c:?}");
    assert!(!dbg.contains(&w.emu.seed().global_key), "{dbg}");
    assert!(dbg.contains("(redacted)"));
}

#[test]
fn a_client_with_other_credentials_shares_the_budget_and_the_counters() {
    let w = World::new();
    let c = client(&w, global(&w));
    let t = w.full_token();
    let with_token = c.with_auth(token(&t));
    let rt = rt();
    rt.block_on(with_token.verify_token()).unwrap();
    rt.block_on(c.get_user()).unwrap();
    assert_eq!(c.stats().requests, 2, "one rate-limit budget per user");
    assert_eq!(with_token.stats(), c.stats());
    let auths: Vec<String> = w.emu.requests().iter().map(|r| r.auth.clone()).collect();
    assert_eq!(auths, ["token", "global-key"]);
}
