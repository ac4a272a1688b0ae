//! The HTTP server: its own thread and multi-thread Tokio runtime, one hyper HTTP/1 connection
//! task per client, and the pipeline every request goes through.
//!
//! Pipeline for `/client/v4/…` (docs/cloudflare-api.md §1): read the body (≤ 300 MiB) → injected fault
//! (before auth; `Drop` closes the connection unanswered) → `Options.latency` → per-credential
//! rate limit (429 / 971 + `Retry-After`) → `routes::dispatch` under the state lock → save the state
//! file after a mutation, outside the lock and coalesced ([`crate::shared::Saver`]) → log the request (no secrets) → add `cf-ray` and the `Ratelimit` /
//! `Ratelimit-Policy` headers. `/__emulator/…` goes to `inspect` and skips all of that. Every
//! other path is R2's S3 API (`crate::s3::handle`, its own pipeline and body limit).

use crate::auth;
use crate::faults::ceil_secs;
use crate::inspect;
use crate::routes::{self, Ctx};
use crate::shared::Shared;
use crate::wire::{finish, random_hex, ApiError, Dropped, Query, RateHeaders, Reply};
use crate::{Api, FaultKind, RecordedRequest};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Largest body read: the R2 upload limit plus one byte, so "too large" can be told apart.
const MAX_BODY: usize = crate::routes::MAX_OBJECT_SIZE + 1;

/// The running server: stops it (oneshot) and joins its thread on drop.
pub struct Server {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Binds 127.0.0.1:`port` and serves on a new thread.
pub fn start(shared: Arc<Shared>, port: u16) -> io::Result<Server> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("cfsetup-emulator-worker")
        .build()?;
    let (tx, rx) = oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("cfsetup-emulator".into())
        .spawn(move || {
            rt.block_on(serve(listener, shared, rx));
            rt.shutdown_timeout(Duration::from_secs(1));
        })?;
    Ok(Server {
        addr,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cfsetup-emulator: error: cannot listen: {e}");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(shared.clone(), req, peer));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        }
    }
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let started = Instant::now();
    let p = req.uri().path();
    let under = |base: &str| {
        p.strip_prefix(base)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    if !under("/client/v4") && !under("/__emulator") {
        return crate::s3::handle(shared, req, peer, started).await;
    }
    let (parts, body) = req.into_parts();
    let method = parts.method.as_str().to_string();
    let full_path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().map(str::to_string);
    let ray = format!("{}-EMU", random_hex(16));
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Ok(finish(crate::routes::too_large().reply(), &ray, None));
        }
        Err(_) => return Err(Dropped),
    };

    if full_path == "/__emulator" || full_path.starts_with("/__emulator/") {
        let reply = inspect::handle(&shared, &method, &full_path, &body);
        return Ok(finish(reply, &ray, None));
    }
    let api_path = match full_path.strip_prefix("/client/v4") {
        Some(p) if p.starts_with('/') => p.to_string(),
        _ => {
            let e = ApiError::no_route();
            return Ok(finish(e.reply(), &ray, None));
        }
    };
    let log = |status: u16| {
        shared.log.lock().push(RecordedRequest {
            method: method.clone(),
            path: api_path.clone(),
            query: raw_query.clone(),
            status,
            auth: auth::auth_kind(&parts.headers).to_string(),
            body_len: body.len() as u64,
            api: Api::Rest,
            op: None,
            started,
            ended: Instant::now(),
        });
    };

    // Faults come before authentication.
    let fault = shared.faults.lock().take(Api::Rest, &method, &api_path);
    match fault {
        Some(FaultKind::Drop) => {
            log(0);
            return Err(Dropped);
        }
        Some(FaultKind::RateLimit { retry_after_secs }) => {
            let reply = rate_limited(retry_after_secs);
            log(reply.status);
            return Ok(finish(reply, &ray, None));
        }
        Some(FaultKind::ServerError { status }) => {
            let reply = server_error(status, &api_path);
            log(reply.status);
            return Ok(finish(reply, &ray, None));
        }
        Some(FaultKind::ApiError {
            status,
            code,
            message,
        }) => {
            let reply = ApiError::new(status, code, message).reply();
            log(reply.status);
            return Ok(finish(reply, &ray, None));
        }
        Some(FaultKind::Latency(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    if !shared.options.latency.is_zero() {
        tokio::time::sleep(shared.options.latency).await;
    }

    let mut rate = None;
    if let Some((quota, window)) = shared.options.rate_limit {
        let key = auth::credential_key(&parts.headers);
        let adm = shared
            .limiter
            .lock()
            .admit(&key, quota, window, Instant::now());
        rate = Some(RateHeaders {
            remaining: adm.remaining,
            reset_secs: adm.reset_secs,
            quota,
            window_secs: ceil_secs(window),
        });
        if !adm.allowed {
            let reply = rate_limited(adm.reset_secs);
            log(reply.status);
            return Ok(finish(reply, &ray, rate.as_ref()));
        }
    }

    let ctx = Ctx {
        method: &method,
        path: &api_path,
        query: Query::parse(raw_query.as_deref()),
        headers: &parts.headers,
        body: &body,
        client_ip: peer.ip(),
        catalog: &shared.catalog,
        withdrawn: shared.withdrawn.lock().clone(),
        activate_after: shared.options.activate_custom_hostnames_after,
        condition_keys: shared.options.condition_keys,
        max_per_page: shared.options.max_per_page,
        r2_refuses_global_key: shared.options.r2_refuses_global_key,
        r2_rest_accepts_bucket_tokens: shared.options.r2_rest_accepts_bucket_tokens,
    };
    let (reply, save) = {
        let mut state = shared.state.lock();
        let reply = routes::dispatch(&ctx, &mut state);
        let mutated = !matches!(method.as_str(), "GET" | "HEAD") && reply.status < 400;
        let save = mutated || state.dirty;
        state.dirty = false;
        (reply, save)
    };
    if save {
        shared.save_soon();
    }
    log(reply.status);
    Ok(finish(reply, &ray, rate.as_ref()))
}

/// 429 / 971 with `Retry-After` (docs/cloudflare-api.md §1 "Rate limit").
fn rate_limited(retry_after_secs: u64) -> Reply {
    ApiError::new(
        429,
        971,
        "Please wait and consider throttling your request speed",
    )
    .reply()
    .with_header("retry-after", retry_after_secs.to_string())
}

/// A 5xx with the product's internal-error code (docs/cloudflare-api.md §1 table: 10013 Workers,
/// 1500 custom hostnames, 10001 R2; 10001 elsewhere too, a choice).
fn server_error(status: u16, path: &str) -> Reply {
    let code = if path.contains("/workers/") {
        10013
    } else if path.contains("/custom_hostnames") {
        1500
    } else {
        10001
    };
    ApiError::new(status, code, "Internal server error (injected fault)").reply()
}
