//! The benchmark harness: `cargo bench --bench platform`.
//!
//! It runs the release binary against an in-process emulator that adds 50 ms to every API request
//! (a realistic round trip to Cloudflare), and prints:
//! - `test-permissions` wall time, against its floor of two latency-bound round trips;
//! - `deploy-site` cold and warm for a 1,000-file site: wall time, requests and bytes sent;
//! - peak memory (VmHWM) of `deploy-site` publishing a site that holds one 200 MB file;
//! - `gc` over 1,000 tenants (`BENCH_GC_TENANTS`): wall time and requests, with garbage to find.
//!
//! `BENCH_ONLY=gc` runs the gc case alone.
//!
//! Requests and bytes are counted by the emulator, not by cfsetup, so the figures are independent
//! of the code they measure. Set `BENCH_LATENCY_MS` to change the latency, `BENCH_FILES` the site
//! size, `BENCH_BIG_MB` the big file's size.

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
            notes: false,
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
        let tenant = format!("tenant{t:04}");
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
            for (k, shard) in copy.shards() {
                objects.push((
                    format!("sites/{tenant}/deploys/{}/shards/{k}.json", copy.deploy_id),
                    shard.to_bytes(),
                ));
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

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    let latency = env_num("BENCH_LATENCY_MS", 50);
    let gc_tenants = env_num("BENCH_GC_TENANTS", 1000);
    if std::env::var("BENCH_ONLY").as_deref() == Ok("gc") {
        println!("| measurement | figure | target | |");
        println!("|---|---|---|---|");
        bench_gc(latency, gc_tenants);
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

    // test-permissions: the floor is two latency-bound round trips (create, then delete).
    let mut times = Vec::new();
    for _ in 0..3 {
        times.push(bench.run(&["test-permissions"]).0);
    }
    times.sort();
    let tp = times[1];
    let (tp_requests, _, _) = bench.traffic();
    let floor = Duration::from_millis(2 * latency);

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
        "| test-permissions wall time (median of 3) | {:.0} ms, {tp_requests} requests | ≤ 3 × {:.0} ms floor = {:.0} ms | {} |",
        ms(tp),
        ms(floor),
        3.0 * ms(floor),
        verdict(tp <= floor * 3)
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
