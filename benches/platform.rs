//! The benchmark harness: `cargo bench --bench platform`.
//!
//! It runs the release binary against an in-process emulator that adds 50 ms to every API request
//! (a realistic round trip to Cloudflare), and prints:
//! - `test-permissions` wall time, against its floor of three latency-bound round trips;
//! - `deploy-site` cold and warm for a 1,000-file site: wall time, requests and bytes sent;
//! - peak memory (VmHWM) of `deploy-site` publishing a site that holds one 200 MB file;
//! - `gc` over 1,000 tenants (`BENCH_GC_TENANTS`): wall time and requests, with garbage to find.
//!
//! - `domains --no-dns` over a zone of `BENCH_DOMAINS` (5,000) custom hostnames, each named by a
//!   host entry: wall time and requests, against pages × latency of the listing.
//!
//! `BENCH_ONLY=gc` (or `domains`) runs that case alone. `BENCH_ONLY=fleet` runs the fleet case alone:
//! `BENCH_FLEET_TENANTS` (100) tenants of `BENCH_FLEET_FILES` (200) files, half of them the same
//! in every tenant, deployed by one `deploy-sites --parallel 8` and by 100 `deploy-site`
//! processes run 8 at a time, each against a fresh emulator: wall time, requests, bytes.
//!
//! And, through `Storage` directly (the layer deploy-site, rollback and gc share; issue #9):
//! - a cold upload of `BENCH_S3_FILES` (20,000) 1 KB files over S3 at 64 in flight (target
//!   ≤ 30 s, near files ÷ 64 × latency);
//! - REST object PUTs: a short run of `BENCH_REST_FILES` (300), and from it a *projection*
//!   (labelled as such) of 2,400 under the 1,200-per-300-s window (target ≤ 11 minutes); with
//!   `BENCH_REST_FILES=2400` the real, paced run (about 5 minutes);
//! - peak memory (VmHWM) of a process uploading one `BENCH_MULTIPART_MB` (1,024) MB file over S3
//!   multipart, against a separate `cfsetup emulator` process (target < 64 MiB).
//!
//! Requests and bytes are counted by the emulator, not by cfsetup, so the figures are independent
//! of the code they measure. Set `BENCH_LATENCY_MS` to change the latency, `BENCH_FILES` the site
//! size, `BENCH_BIG_MB` the big file's size. `BENCH_CASES=platform` or `storage` runs one half.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cfsetup_emulator::{Emulator, Options, RecordedRequest};
use serde_json::{json, Value};

const ACCOUNT: &str = "com.cloudflare.api.account";
const ZONE: &str = "com.cloudflare.api.account.zone";
const EIGHT: [(&str, &str); 8] = [
    ("Account Settings Read", ACCOUNT),
    ("Workers R2 Storage Write", ACCOUNT),
    ("Workers Scripts Read", ACCOUNT),
    ("Workers Scripts Write", ACCOUNT),
    ("Workers Routes Write", ZONE),
    ("Zone Read", ZONE),
    ("SSL and Certificates Read", ZONE),
    ("SSL and Certificates Write", ZONE),
];

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Bench {
    emu: Emulator,
    token: String,
    dir: tempfile::TempDir,
}

impl Bench {
    fn cmd(&self) -> Command {
        let seed = self.emu.seed();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cfsetup"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            // One machine for every run: its ~/.cache/cfsetup (token id, shards, what was live)
            // carries over, as on a developer's machine or a CI runner with a cached folder.
            .env("HOME", self.dir.path())
            .env("NO_COLOR", "1")
            .env("CLOUDFLARE_API_BASE_URL", self.emu.base_url())
            .env("R2_S3_ENDPOINT", self.emu.s3_endpoint())
            .env("CLOUDFLARE_ACCOUNT_ID", &seed.account_id)
            .env("CLOUDFLARE_ZONE_ID", &seed.zone_id)
            .env("CLOUDFLARE_API_TOKEN", &self.token)
            .env("PLATFORM_DOMAIN", &seed.zone_name)
            .env(
                "SAAS_FALLBACK_ORIGIN",
                format!("fallback.{}", seed.zone_name),
            )
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs a command, returning its wall time and peak RSS (sampled from /proc every 5 ms).
    fn run(&self, args: &[&str]) -> (Duration, Option<u64>) {
        self.emu.clear_requests();
        let started = Instant::now();
        let mut child = self.cmd().args(args).spawn().expect("cfsetup runs");
        let status_file = format!("/proc/{}/status", child.id());
        let mut peak_kib: Option<u64> = None;
        loop {
            if let Ok(text) = std::fs::read_to_string(&status_file) {
                if let Some(kib) = text
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    peak_kib = Some(peak_kib.map_or(kib, |p| p.max(kib)));
                }
            }
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let elapsed = started.elapsed();
        let out = child.wait_with_output().expect("output");
        if !out.status.success() {
            panic!(
                "cfsetup {args:?} failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        (elapsed, peak_kib)
    }

    fn traffic(&self) -> (usize, u64, Vec<RecordedRequest>) {
        let reqs = self.emu.requests();
        let bytes = reqs.iter().map(|r| r.body_len).sum();
        (reqs.len(), bytes, reqs)
    }
}

fn policies(emu: &Emulator) -> Value {
    let seed = emu.seed();
    let group = |scope: &str| -> Vec<Value> {
        EIGHT
            .iter()
            .filter(|(_, s)| *s == scope)
            .map(|(n, s)| json!({ "id": emu.permission_group_id(n, s).expect("seeded group") }))
            .collect()
    };
    json!([
        { "effect": "allow", "resources": { format!("{ACCOUNT}.{}", seed.account_id): "*" },
          "permission_groups": group(ACCOUNT) },
        { "effect": "allow", "resources": { format!("{ZONE}.{}", seed.zone_id): "*" },
          "permission_groups": group(ZONE) },
    ])
}

/// A site of `n` distinct files of 1–8 KiB: pages, styles, scripts and binary assets.
fn make_site(root: &Path, n: u64) -> u64 {
    let mut total = 0;
    for i in 0..n {
        let (dir, ext) = match i % 4 {
            0 => ("pages", "html"),
            1 => ("css", "css"),
            2 => ("js", "js"),
            _ => ("img", "bin"),
        };
        let path = root.join(dir).join(format!("f{i:04}.{ext}"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let size = 1024 + (i * 7919 % 7168) as usize;
        let mut body = format!("file {i}\n").into_bytes();
        let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        while body.len() < size {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            body.push(b'a' + (x % 26) as u8);
        }
        total += body.len() as u64;
        std::fs::write(path, body).unwrap();
    }
    std::fs::write(root.join("index.html"), "<h1>bench</h1>").unwrap();
    total
}

fn make_big(root: &Path, mb: u64) {
    use std::io::Write;
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(root.join("index.html"), "<h1>big</h1>").unwrap();
    let mut f = std::io::BufWriter::new(std::fs::File::create(root.join("big.bin")).unwrap());
    let mut chunk = vec![0u8; 1 << 20];
    let mut x: u64 = 0x1234_5678_9ABC_DEF1;
    for _ in 0..mb {
        for b in chunk.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        f.write_all(&chunk).unwrap();
    }
}

/// Seeds `tenants` tenants straight into the bucket (no latency yet): each has 3 kept deploys of
/// 4 files (2 shared by every tenant, 2 its own), and one deploy dropped from its head whose copy,
/// shard and own blob are garbage. Returns the garbage blob count.
fn seed_tenants(emu: &Emulator, token: &str, tenants: u64) -> u64 {
    use cfsetup::cloudflare::r2::{BucketRef, ObjectBody};
    use cfsetup::cloudflare::{Auth, Client, ClientOptions};
    use cfsetup::site::manifest::{DeployCopy, FileEntry, Files, Head, Rules};
    use futures::stream::{self, StreamExt};

    let client = Client::new(
        &url::Url::parse(&emu.base_url()).unwrap(),
        Auth::Token(cfsetup::secret::Secret::new(token.to_string())),
        ClientOptions {
            max_in_flight: 64,
            // Seeding is set-up, not the measurement: no REST pacing.
            pacing: cfsetup::cloudflare::Pacing {
                window_limit: u32::MAX,
                window: Duration::from_secs(1),
            },
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let account = emu.seed().account_id.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut objects: Vec<(String, Vec<u8>)> = Vec::new();
    let blob = |body: &str| -> (String, FileEntry) {
        let hash = hex::encode(sha2::Sha256::digest(body.as_bytes()));
        (
            format!("blobs/{hash}"),
            FileEntry {
                hash,
                size: body.len() as u64,
                content_type: "text/html; charset=utf-8".into(),
            },
        )
    };
    use sha2::Digest;
    for shared in ["shared one", "shared two"] {
        let (k, _) = blob(shared);
        objects.push((k, shared.as_bytes().to_vec()));
    }
    let t0 = std::time::SystemTime::now() - Duration::from_secs(7200);
    for t in 0..tenants {
        let tenant = cfsetup::names::Tenant::new(&format!("tenant{t:04}")).unwrap();
        let mut head: Option<Head> = None;
        for v in 0..4u64 {
            let mut files = Files::new();
            for (i, body) in [
                "shared one".to_string(),
                "shared two".to_string(),
                format!("{tenant} page v{v}"),
                format!("{tenant} asset v{v}"),
            ]
            .iter()
            .enumerate()
            {
                let (k, e) = blob(body);
                objects.push((k, body.as_bytes().to_vec()));
                files.insert(format!("/f{i}.html"), e);
            }
            let copy = DeployCopy::build(
                &tenant,
                files,
                Rules::none("none"),
                t0 + Duration::from_secs(v),
                None,
            );
            // Format 3: the shards are content-addressed and shared, `shards/<hash>.json`.
            for (hash, bytes) in &copy.shard_bodies {
                objects.push((cfsetup::site::layout::cas_shard_key(hash), bytes.clone()));
            }
            objects.push((
                format!("sites/{tenant}/deploys/{}.json", copy.deploy_id),
                copy.to_bytes(),
            ));
            let (mut h, _) = Head::with_live(
                &tenant,
                head.as_ref(),
                copy.route.clone(),
                "bench".into(),
                std::time::SystemTime::now(),
            );
            h.kept.truncate(3);
            head = Some(h);
        }
        objects.push((
            format!("sites/{tenant}/manifest.json"),
            head.unwrap().to_bytes(),
        ));
    }
    objects.sort();
    objects.dedup_by(|a, b| a.0 == b.0);
    rt.block_on(async {
        let b = BucketRef {
            account: &account,
            name: "cfsetup-sites",
            jurisdiction: None,
        };
        stream::iter(objects)
            .map(|(k, body)| {
                let client = &client;
                async move {
                    client
                        .put_object(b, &k, ObjectBody::Bytes(body.into()), "application/json")
                        .await
                        .unwrap()
                }
            })
            .buffer_unordered(64)
            .collect::<Vec<()>>()
            .await;
    });
    // v0's page and asset per tenant.
    tenants * 2
}

/// `gc --grace 0s` over `tenants` seeded tenants, every request `latency` ms late.
fn bench_gc(latency: u64, tenants: u64) {
    let mut options = Options::new();
    options.rate_limit = None;
    let emu = Emulator::start(options).expect("emulator");
    let (_, token) = emu.mint_token("bench", policies(&emu));
    let bench = Bench {
        emu,
        token,
        dir: tempfile::tempdir().unwrap(),
    };
    bench.run(&["deploy-infra"]);
    eprintln!("seeding {tenants} tenants ...");
    let garbage = seed_tenants(&bench.emu, &bench.token, tenants);
    bench.emu.inject(cfsetup_emulator::Fault {
        method: None,
        path_contains: None,
        kind: cfsetup_emulator::FaultKind::Latency(Duration::from_millis(latency)),
        times: u32::MAX,
    });
    let (took, _) = bench.run(&["gc", "--grace", "0s"]);
    let (requests, _, log) = bench.traffic();
    let deletes = log
        .iter()
        .filter(|r| {
            r.method == "DELETE" || r.query.as_deref().is_some_and(|q| q.contains("delete"))
        })
        .count();
    println!(
        "| gc --grace 0s, {tenants} tenants ({garbage} garbage blobs, {} copies) | {:.2} s, {requests} requests ({deletes} delete calls) | reads concurrent, deletes batched | {} |",
        tenants,
        took.as_secs_f64(),
        if took.as_secs_f64() < 30.0 { "met" } else { "MISSED" }
    );
}

/// A fresh emulator with `latency` on every request, the Worker deployed, and a token.
fn fleet_bench(latency: u64) -> Bench {
    let mut options = Options::new();
    options.latency = Duration::from_millis(latency);
    // The fleet case measures requests and time, not the REST budget's 5-minute window.
    options.rate_limit = None;
    let emu = Emulator::start(options).expect("emulator");
    let (_, token) = emu.mint_token("bench", policies(&emu));
    let bench = Bench {
        emu,
        token,
        dir: tempfile::tempdir().unwrap(),
    };
    bench.run(&["deploy-infra"]);
    bench
}

/// `tenants` folders of `files` files of 1-2 KiB: the first half identical in every tenant (one
/// template), the second half the tenant's own.
fn make_fleet(root: &Path, tenants: u64, files: u64) {
    for t in 0..tenants {
        let dir = root.join(format!("t{t:03}"));
        std::fs::create_dir_all(dir.join("shared")).unwrap();
        std::fs::create_dir_all(dir.join("own")).unwrap();
        std::fs::write(dir.join("index.html"), format!("<h1>tenant {t}</h1>")).unwrap();
        for i in 0..files.saturating_sub(1) {
            let (sub, seed) = if i < files / 2 {
                ("shared", i)
            } else {
                ("own", 1_000_000 + t * files + i)
            };
            let mut body = format!("{sub} {seed}\n").into_bytes();
            body.resize(
                1024 + (seed * 7919 % 1024) as usize,
                b'a' + (seed % 26) as u8,
            );
            std::fs::write(dir.join(sub).join(format!("f{i:04}.txt")), body).unwrap();
        }
    }
}

/// One `deploy-sites` against 100 `deploy-site` processes, 8 at a time.
fn bench_fleet(latency: u64, tenants: u64, files: u64) {
    let root = tempfile::tempdir().unwrap();
    eprintln!("generating {tenants} tenants of {files} files ...");
    make_fleet(root.path(), tenants, files);
    let dirs: Vec<(String, String)> = (0..tenants)
        .map(|t| {
            let dir = root.path().join(format!("t{t:03}"));
            (format!("t{t:03}"), dir.to_str().unwrap().to_string())
        })
        .collect();

    eprintln!("{tenants} deploy-site processes, 8 at a time ...");
    let each = fleet_bench(latency);
    each.emu.clear_requests();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some((tenant, dir)) = dirs.get(i) else {
                    break;
                };
                let out = each
                    .cmd()
                    .args(["deploy-site", dir, tenant])
                    .output()
                    .expect("cfsetup runs");
                assert!(
                    out.status.success(),
                    "deploy-site {tenant}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            });
        }
    });
    let each_time = started.elapsed();
    let (each_requests, each_bytes, _) = each.traffic();

    eprintln!("one deploy-sites --parallel 8 ...");
    let fleet = fleet_bench(latency);
    let mut plan = String::new();
    for (tenant, dir) in &dirs {
        plan.push_str(&format!(
            "[[site]]\ntenant = \"{tenant}\"\ndir = {dir:?}\n\n"
        ));
    }
    let plan_path = fleet.dir.path().join("plan.toml");
    std::fs::write(&plan_path, plan).unwrap();
    let (fleet_time, _) = fleet.run(&[
        "deploy-sites",
        plan_path.to_str().unwrap(),
        "--parallel",
        "8",
    ]);
    let (fleet_requests, fleet_bytes, _) = fleet.traffic();

    // The 8 processes have 8 x 64 writes in flight; one run with as many.
    eprintln!("one deploy-sites --parallel 8 --concurrency 256 ...");
    let wide = fleet_bench(latency);
    let wide_plan = wide.dir.path().join("plan.toml");
    std::fs::copy(&plan_path, &wide_plan).unwrap();
    let (wide_time, _) = wide.run(&[
        "deploy-sites",
        wide_plan.to_str().unwrap(),
        "--parallel",
        "8",
        "--concurrency",
        "256",
    ]);
    let (wide_requests, wide_bytes, _) = wide.traffic();

    let mib = |b: u64| b as f64 / 1048576.0;
    println!("fleet benchmark: {tenants} tenants x {files} files (half shared), {latency} ms per request");
    println!();
    println!("| run | wall time | requests | bytes sent |");
    println!("|---|---|---|---|");
    println!(
        "| {tenants} `deploy-site` processes, 8 at a time | {:.1} s | {each_requests} | {:.1} MiB |",
        each_time.as_secs_f64(),
        mib(each_bytes)
    );
    println!(
        "| one `deploy-sites --parallel 8` | {:.1} s | {fleet_requests} | {:.1} MiB |",
        fleet_time.as_secs_f64(),
        mib(fleet_bytes)
    );
    println!(
        "| one `deploy-sites --parallel 8 --concurrency 256` | {:.1} s | {wide_requests} | {:.1} MiB |",
        wide_time.as_secs_f64(),
        mib(wide_bytes)
    );
}

/// `domains --no-dns` over `n` custom hostnames, each named by a host entry, every request
/// `latency` ms late. The listing is 50 a page: page 1, then the rest 8 at once.
fn bench_domains(latency: u64, n: u64) {
    let mut options = Options::new();
    options.rate_limit = None;
    let emu = Emulator::start(options).expect("emulator");
    let (_, token) = emu.mint_token("bench", policies(&emu));
    let bench = Bench {
        emu,
        token,
        dir: tempfile::tempdir().unwrap(),
    };
    bench.run(&["deploy-infra"]);
    eprintln!("seeding {n} custom hostnames and host entries ...");
    let hosts: Vec<String> = (0..n)
        .map(|i| format!("shop{i}.tenant{i}.example-shop.net"))
        .collect();
    bench.emu.insert_custom_hostnames(hosts.iter().cloned());
    assert!(bench.emu.insert_objects(
        "cfsetup-sites",
        hosts.iter().enumerate().map(|(i, h)| (
            format!("hosts/{h}.json"),
            format!("{{\"tenant\":\"tenant{i}\"}}").into_bytes()
        )),
    ));
    bench.emu.inject(cfsetup_emulator::Fault {
        method: None,
        path_contains: None,
        kind: cfsetup_emulator::FaultKind::Latency(Duration::from_millis(latency)),
        times: u32::MAX,
    });
    // The listing alone, through the library: 8 pages at once after the first, then one at a time.
    let listing = |concurrency: usize| -> (Duration, usize) {
        use cfsetup::cloudflare::{Auth, Client, ClientOptions};
        let client = Client::new(
            &url::Url::parse(&bench.emu.base_url()).unwrap(),
            Auth::Token(cfsetup::secret::Secret::new(bench.token.clone())),
            ClientOptions {
                max_in_flight: 64,
                ..ClientOptions::default()
            },
        )
        .unwrap();
        let zone = bench.emu.seed().zone_id.clone();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let started = Instant::now();
        let all = rt
            .block_on(client.all_custom_hostnames(&zone, concurrency))
            .expect("listing");
        (started.elapsed(), all.len())
    };
    bench.emu.clear_requests();
    let (fast, seen) = listing(8);
    let pages = bench
        .emu
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/custom_hostnames"))
        .count();
    assert_eq!(seen as u64, n, "every hostname once");
    let (slow, _) = listing(1);
    let rounds = 1 + (pages as u64).saturating_sub(1).div_ceil(8);
    println!(
        "| the listing alone, {n} custom hostnames | {:.2} s ({pages} pages: page 1, then 8 at once = {rounds} round trips x {latency} ms = {:.2} s); one page at a time {:.2} s ({pages} x {latency} ms = {:.2} s) | latency-bound | |",
        fast.as_secs_f64(),
        rounds as f64 * latency as f64 / 1000.0,
        slow.as_secs_f64(),
        pages as f64 * latency as f64 / 1000.0,
    );
    let (took, _) = bench.run(&["domains", "--no-dns", "--json"]);
    let (requests, _, log) = bench.traffic();
    let entry_reads = log
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("hosts/"))
        .count();
    println!(
        "| domains --no-dns, {n} custom hostnames each with a host entry | {:.2} s, {requests} requests ({pages} listing pages, {entry_reads} host-entry reads at 64 in flight: {entry_reads} / 64 x {latency} ms = {:.2} s) | latency-bound | |",
        took.as_secs_f64(),
        (entry_reads as f64 / 64.0).ceil() * latency as f64 / 1000.0,
    );
}

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    if std::env::var("BENCH_CHILD").as_deref() == Ok("multipart") {
        storage::multipart_child();
        return;
    }
    let cases = std::env::var("BENCH_CASES").unwrap_or_else(|_| "all".into());
    if cases == "all" || cases == "platform" {
        platform();
    }
    if cases == "all" || cases == "storage" {
        storage::run(env_num("BENCH_LATENCY_MS", 50));
    }
}

fn platform() {
    let latency = env_num("BENCH_LATENCY_MS", 50);
    let gc_tenants = env_num("BENCH_GC_TENANTS", 1000);
    if std::env::var("BENCH_ONLY").as_deref() == Ok("domains") {
        println!("| measurement | figure | target | |");
        println!("|---|---|---|---|");
        bench_domains(latency, env_num("BENCH_DOMAINS", 5000));
        // Only this case: not the storage half either.
        std::process::exit(0);
    }
    if std::env::var("BENCH_ONLY").as_deref() == Ok("gc") {
        println!("| measurement | figure | target | |");
        println!("|---|---|---|---|");
        bench_gc(latency, gc_tenants);
        return;
    }
    if std::env::var("BENCH_ONLY").as_deref() == Ok("fleet") {
        bench_fleet(
            latency,
            env_num("BENCH_FLEET_TENANTS", 100),
            env_num("BENCH_FLEET_FILES", 200),
        );
        return;
    }
    let files = env_num("BENCH_FILES", 1000);
    let big_mb = env_num("BENCH_BIG_MB", 200);

    let mut options = Options::new();
    options.latency = Duration::from_millis(latency);
    let emu = Emulator::start(options).expect("emulator");
    let (_, token) = emu.mint_token("bench", policies(&emu));
    let bench = Bench {
        emu,
        token,
        dir: tempfile::tempdir().unwrap(),
    };

    eprintln!("setting up: deploy-infra ...");
    bench.run(&["deploy-infra"]);

    // test-permissions: the floor is three latency-bound round trips in sequence (R2's check:
    // create the bucket beside the verify, list it over S3, delete it; tests/cli/test_permissions.rs
    // counts them).
    let mut times = Vec::new();
    for _ in 0..3 {
        times.push(bench.run(&["test-permissions"]).0);
    }
    times.sort();
    let tp = times[1];
    let (tp_requests, _, _) = bench.traffic();
    let floor = Duration::from_millis(3 * latency);

    eprintln!("generating a {files}-file site ...");
    let site: PathBuf = bench.dir.path().join("site");
    let site_bytes = make_site(&site, files);
    let site_arg = site.to_str().unwrap();

    let (cold, _) = bench.run(&["deploy-site", site_arg, "bench", "--no-prune"]);
    let (cold_requests, cold_bytes, _) = bench.traffic();
    let (warm, _) = bench.run(&["deploy-site", site_arg, "bench"]);
    let (warm_requests, warm_bytes, warm_log) = bench.traffic();

    eprintln!("generating a {big_mb} MB file ...");
    let big: PathBuf = bench.dir.path().join("big");
    make_big(&big, big_mb);
    let (big_time, peak) = bench.run(&["deploy-site", big.to_str().unwrap(), "big"]);
    let peak_mib = peak.unwrap_or(0) as f64 / 1024.0;

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!("cfsetup benchmark: emulator latency {latency} ms per request");
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| c.lines().find_map(|l| l
                .strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())))
            .unwrap_or_else(|| "unknown CPU".into())
    );
    println!();
    println!("| measurement | figure | target | |");
    println!("|---|---|---|---|");
    println!(
        "| test-permissions wall time (median of 3) | {:.0} ms, {tp_requests} requests | 3 round trips in sequence: a floor of {:.0} ms, ≤ 2 × that with process start | {} |",
        ms(tp),
        ms(floor),
        verdict(tp <= floor * 2)
    );
    println!(
        "| deploy-site cold, {files} files ({:.1} MiB) | {:.2} s, {cold_requests} requests, {:.1} MiB sent | latency- and concurrency-bound | {} |",
        site_bytes as f64 / 1048576.0,
        cold.as_secs_f64(),
        cold_bytes as f64 / 1048576.0,
        // 16 uploads in flight: the floor is about files/16 round trips.
        verdict(cold.as_secs_f64() < 3.0 * (files as f64 / 16.0 + 10.0) * latency as f64 / 1000.0)
    );
    println!(
        "| deploy-site warm, unchanged | {:.0} ms, {warm_requests} requests, {warm_bytes} bytes sent | ≤ 3 requests | {} |",
        ms(warm),
        verdict(warm_requests <= 3)
    );
    println!(
        "| deploy-site, one {big_mb} MB file: peak memory | {peak_mib:.1} MiB ({:.1} s) | < 64 MiB | {} |",
        big_time.as_secs_f64(),
        verdict(peak_mib > 0.0 && peak_mib < 64.0)
    );
    bench_gc(latency, gc_tenants);
    if warm_requests > 3 {
        println!();
        println!("warm deploy requests:");
        for r in warm_log {
            println!("  {} {}", r.method, r.path);
        }
    }
}

/// The object-storage cases, through `cfsetup::storage::Storage`.
mod storage {
    use std::io::{BufRead, BufReader, Write};
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use cfsetup::cloudflare::r2::BucketRef;
    use cfsetup::cloudflare::tokens::{NewToken, Policy, PolicyGroup};
    use cfsetup::cloudflare::{Auth, Client, ClientOptions, Pacing};
    use cfsetup::secret::Secret;
    use cfsetup::storage::{
        BucketLoc, Payload, PutOptions, RestStore, S3Credentials, S3Options, S3Store, Storage,
    };
    use cfsetup_emulator::{Api, Emulator, Options};
    use futures::stream::{self, TryStreamExt};
    use sha2::Digest;
    use url::Url;

    use super::env_num;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap()
    }

    fn quiet() -> ClientOptions {
        ClientOptions {
            ..ClientOptions::default()
        }
    }

    /// A token with Workers R2 Storage Write (minted over the REST API with the Global API Key,
    /// as a user would), and a bucket: `(client with the token, token id, bucket)`.
    async fn token_and_bucket(
        base: &str,
        email: &str,
        key: &str,
        account: &str,
        bucket: &str,
    ) -> (Client, String, BucketLoc) {
        let admin = Client::new(
            &Url::parse(base).unwrap(),
            Auth::GlobalKey {
                email: email.into(),
                key: Secret::new(key),
            },
            quiet(),
        )
        .unwrap();
        let group = admin
            .permission_groups(Some("Workers R2 Storage Write"), None)
            .await
            .unwrap()
            .into_iter()
            .find(|g| g.name == "Workers R2 Storage Write")
            .expect("the group");
        let mut resources = serde_json::Map::new();
        resources.insert(format!("com.cloudflare.api.account.{account}"), "*".into());
        let created = admin
            .create_token(&NewToken {
                name: "bench-storage".into(),
                policies: vec![Policy {
                    id: None,
                    effect: "allow".into(),
                    resources,
                    permission_groups: vec![PolicyGroup {
                        id: group.id,
                        name: None,
                    }],
                }],
                expires_on: None,
                not_before: None,
                condition: None,
            })
            .await
            .unwrap();
        let b = BucketRef {
            account,
            name: bucket,
            jurisdiction: None,
        };
        admin.create_bucket(b, None).await.unwrap();
        (
            admin.with_auth(Auth::Token(created.value)),
            created.token.id,
            BucketLoc {
                account: account.into(),
                name: cfsetup::names::BucketName::parse(bucket, "x").unwrap(),
                jurisdiction: None,
            },
        )
    }

    fn s3_storage(client: &Client, token_id: &str, bucket: BucketLoc, endpoint: &str) -> Storage {
        let Auth::Token(token) = client.auth() else {
            unreachable!("a token")
        };
        let creds = S3Credentials::from_token(token_id, token);
        let store = S3Store::new(
            client.clone(),
            bucket,
            Url::parse(endpoint).unwrap(),
            true,
            &creds,
            S3Options::default(),
        )
        .unwrap();
        Storage::s3(store)
    }

    fn files(dir: &Path, n: u64, size: usize) -> Vec<Payload> {
        std::fs::create_dir_all(dir).unwrap();
        (0..n)
            .map(|i| {
                let mut body = format!("file {i} ").into_bytes();
                body.resize(size, b'x');
                let path = dir.join(format!("f{i:05}"));
                std::fs::write(&path, &body).unwrap();
                Payload::File {
                    path,
                    len: size as u64,
                    sha256: hex::encode(sha2::Sha256::digest(&body)),
                }
            })
            .collect()
    }

    async fn upload(st: &Storage, payloads: Vec<Payload>, concurrency: usize) -> Duration {
        let started = Instant::now();
        stream::iter(
            payloads
                .into_iter()
                .map(Ok::<_, cfsetup::storage::StorageError>),
        )
        .try_for_each_concurrent(concurrency, |p| async move {
            let Payload::File { sha256, .. } = &p else {
                unreachable!()
            };
            let key = format!("blobs/{sha256}");
            st.put(&key, p, PutOptions::overwrite("application/octet-stream"))
                .await
                .map(|_| ())
        })
        .await
        .expect("the uploads");
        started.elapsed()
    }

    pub fn run(latency: u64) {
        let s3_files = env_num("BENCH_S3_FILES", 20_000);
        let rest_files = env_num("BENCH_REST_FILES", 300);
        let multipart_mb = env_num("BENCH_MULTIPART_MB", 1024);
        let dir = tempfile::tempdir().unwrap();
        let rt = rt();

        let mut options = Options::new();
        options.latency = Duration::from_millis(latency);
        let emu = Emulator::start(options).expect("emulator");
        let seed = emu.seed().clone();
        let (client, token_id, bucket) = rt.block_on(token_and_bucket(
            &emu.base_url(),
            &seed.email,
            &seed.global_key,
            &seed.account_id,
            "bench-objects",
        ));

        eprintln!("S3: uploading {s3_files} files of 1 KB at 64 in flight ...");
        let s3 = s3_storage(&client, &token_id, bucket.clone(), &emu.s3_endpoint());
        let payloads = files(&dir.path().join("s3"), s3_files, 1024);
        emu.clear_requests();
        let s3_time = rt.block_on(upload(&s3, payloads, 64));
        let reqs = emu.requests();
        let s3_reqs = reqs.iter().filter(|r| r.api == Api::S3).count();
        let rest_reqs = reqs.iter().filter(|r| r.api == Api::Rest).count();
        let floor = s3_files as f64 / 64.0 * latency as f64 / 1000.0;

        eprintln!("REST: uploading {rest_files} files of 1 KB at 16 in flight ...");
        // A fresh client, so the run starts from a fresh window: the setup's 3 REST calls with
        // the Global API Key would otherwise count in it (the limit is per user), making 2,403.
        let fresh = Client::new(
            &Url::parse(&emu.base_url()).unwrap(),
            client.auth().clone(),
            quiet(),
        )
        .unwrap();
        let rest = Storage::rest(RestStore::new(fresh, bucket));
        let payloads = files(&dir.path().join("rest"), rest_files, 1024);
        emu.clear_requests();
        let rest_time = rt.block_on(upload(&rest, payloads, 16));
        let rest_measured = emu.requests().iter().filter(|r| r.api == Api::Rest).count();
        // 2,400 from a fresh window: the pacer holds the second 1,200 until 300 s after the
        // first started; each batch then takes what the measured rate says.
        let n = 2400u64;
        let per_request = rest_time.as_secs_f64() / rest_measured.max(1) as f64;
        let last_batch = ((n - 1) % 1200 + 1) as f64;
        let projected = Pacing::default().estimate(n).as_secs_f64() + last_batch * per_request;
        drop(emu);

        eprintln!("multipart: a {multipart_mb} MB file in a separate process ...");
        let (mp_time, mp_peak_mib) =
            multipart_parent(&dir.path().join("big.bin"), multipart_mb, latency);

        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        println!();
        println!("object storage through `Storage`, emulator latency {latency} ms per request");
        println!();
        println!("| measurement | figure | target | |");
        println!("|---|---|---|---|");
        println!(
            "| S3 cold upload, {s3_files} files of 1 KB, 64 in flight | {:.1} s, {s3_reqs} S3 requests, {rest_reqs} REST | ≤ 30 s (floor {floor:.1} s) | {} |",
            s3_time.as_secs_f64(),
            verdict(s3_time.as_secs_f64() <= 30.0)
        );
        if rest_files >= n {
            println!(
                "| REST upload, {rest_files} files (measured, paced) | {:.1} min, {rest_measured} requests | ≤ 11 min for 2,400 | {} |",
                rest_time.as_secs_f64() / 60.0,
                verdict(rest_files > n || rest_time.as_secs_f64() <= 660.0)
            );
        } else {
            println!(
                "| REST upload, {rest_files} files (measured) | {:.1} s, {rest_measured} requests | | |",
                rest_time.as_secs_f64()
            );
            println!(
                "| REST upload, 2,400 files: PROJECTION from the {rest_files}-file run + the pacing window | {:.1} min | ≤ 11 min | {} |",
                projected / 60.0,
                verdict(projected <= 660.0)
            );
        }
        println!(
            "| S3 multipart upload of one {multipart_mb} MB file: peak memory of the uploading process | {mp_peak_mib:.1} MiB ({:.1} s) | < 64 MiB | {} |",
            mp_time.as_secs_f64(),
            verdict(mp_peak_mib > 0.0 && mp_peak_mib < 64.0)
        );
    }

    /// Writes the big file, starts `cfsetup emulator` in its own process (so the parts it holds
    /// are not counted), and runs this benchmark again as a child that only uploads the file,
    /// sampling the child's VmHWM.
    fn multipart_parent(path: &Path, mb: u64, latency: u64) -> (Duration, f64) {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
        let mut hasher = sha2::Sha256::new();
        let mut chunk = vec![0u8; 1 << 20];
        let mut x: u64 = 0x1234_5678_9ABC_DEF1;
        for _ in 0..mb {
            for b in chunk.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            hasher.update(&chunk);
            f.write_all(&chunk).unwrap();
        }
        drop(f);
        let sha = hex::encode(hasher.finalize());

        let mut emu = Command::new(env!("CARGO_BIN_EXE_cfsetup"))
            .args([
                "emulator",
                "--port",
                "0",
                "--latency-ms",
                &latency.to_string(),
            ])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cfsetup emulator runs");
        let mut vars = Vec::new();
        let mut lines = BufReader::new(emu.stdout.take().unwrap()).lines();
        while vars.len() < 6 {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some((k, v)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
                vars.push((k.to_string(), v.to_string()));
            }
        }
        let started = Instant::now();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env("BENCH_CHILD", "multipart")
            .env("BENCH_FILE", path)
            .env("BENCH_FILE_SHA256", &sha)
            .envs(vars)
            .stdout(Stdio::null())
            .spawn()
            .expect("the child runs");
        let status_file = format!("/proc/{}/status", child.id());
        let mut peak_kib = 0u64;
        loop {
            if let Ok(text) = std::fs::read_to_string(&status_file) {
                if let Some(kib) = text
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                {
                    peak_kib = peak_kib.max(kib);
                }
            }
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let elapsed = started.elapsed();
        let ok = child.wait().expect("wait").success();
        let _ = emu.kill();
        let _ = emu.wait();
        let _ = std::fs::remove_file(path);
        assert!(ok, "the multipart child failed");
        (elapsed, peak_kib as f64 / 1024.0)
    }

    /// The measured process: mint a token, make a bucket, upload one file over S3.
    pub fn multipart_child() {
        let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} is set"));
        let path = std::path::PathBuf::from(var("BENCH_FILE"));
        let len = std::fs::metadata(&path).unwrap().len();
        let rt = rt();
        rt.block_on(async {
            let (client, token_id, bucket) = token_and_bucket(
                &var("CLOUDFLARE_API_BASE_URL"),
                &var("CLOUDFLARE_EMAIL"),
                &var("CLOUDFLARE_GLOBAL_KEY"),
                &var("CLOUDFLARE_ACCOUNT_ID"),
                "bench-multipart",
            )
            .await;
            let endpoint = var("R2_S3_ENDPOINT");
            let st = s3_storage(&client, &token_id, bucket, &endpoint);
            st.put(
                "blobs/big",
                Payload::File {
                    path,
                    len,
                    sha256: var("BENCH_FILE_SHA256"),
                },
                PutOptions::overwrite("application/octet-stream"),
            )
            .await
            .expect("the multipart upload");
            let back = st.head("blobs/big").await.unwrap().expect("stored");
            assert_eq!(back.size, len);
            std::io::stderr().flush().ok();
        });
    }
}
