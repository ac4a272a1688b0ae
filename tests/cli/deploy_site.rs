//! `deploy-site` and `rollback` against the emulator: incremental uploads, the atomic switch, an
//! interrupted deploy, hidden files, rollback, the custom hostname and `--wait`, and the checks
//! that refuse bad input before any request.

use std::collections::BTreeMap;

use cfsetup::cloudflare::r2::BucketRef;
use cfsetup::cloudflare::{Auth, Client, ClientOptions};
use cfsetup::secret::Secret;
use cfsetup_emulator::{Fault, FaultKind, Options};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::World;

pub(crate) const BUCKET: &str = "cfsetup-sites";
const DOMAIN: &str = "shop.acme-store.com";

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A world with the bucket (and, if asked, the fallback origin) made through the client, and a
/// token with the 8 permissions. The request log starts empty.
pub(crate) struct Site {
    pub(crate) w: World,
    pub(crate) token: String,
}

impl Site {
    pub(crate) fn new() -> Self {
        Self::with_options(Options::new())
    }

    pub(crate) fn with_options(options: Options) -> Self {
        let w = World::with_options(options);
        let token = w.full_token();
        let client = Client::new(
            &url::Url::parse(&w.emu.base_url()).unwrap(),
            Auth::Token(Secret::new(token.clone())),
            ClientOptions::default(),
        )
        .unwrap();
        let account = w.account_id();
        let zone = w.zone_id();
        let fallback = format!("fallback.{}", w.zone_name());
        rt().block_on(async {
            let b = BucketRef {
                account: &account,
                name: BUCKET,
                jurisdiction: None,
            };
            client.create_bucket(b, None).await.unwrap();
            client.put_fallback_origin(&zone, &fallback).await.unwrap();
        });
        w.emu.clear_requests();
        Site { w, token }
    }

    /// `cfsetup deploy-site` with the token, the IDs and PLATFORM_DOMAIN set.
    pub(crate) fn cmd(&self) -> assert_cmd::Command {
        let mut cmd = self.w.with_token(&self.token);
        cmd.env("PLATFORM_DOMAIN", self.w.zone_name());
        cmd
    }

    pub(crate) fn deploy(&self, extra: &[&str]) -> crate::common::Run {
        let mut cmd = self.cmd();
        cmd.args(["--json", "deploy-site", "site", "acme"])
            .args(extra);
        self.w.run(&mut cmd)
    }

    pub(crate) fn write(&self, rel: &str, body: &[u8]) {
        let p = self.w.file("site").join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    }

    pub(crate) fn objects(&self) -> BTreeMap<String, Vec<u8>> {
        self.w
            .emu
            .objects(BUCKET)
            .into_iter()
            .map(|o| (o.key, o.body))
            .collect()
    }

    /// The head of acme.
    pub(crate) fn live(&self) -> Value {
        self.head("acme")
    }

    pub(crate) fn head(&self, tenant: &str) -> Value {
        serde_json::from_slice(&self.objects()[&format!("sites/{tenant}/manifest.json")]).unwrap()
    }

    /// The deploy copy of acme's live deploy.
    pub(crate) fn live_copy(&self) -> Value {
        let id = self.live()["live"]["deploy_id"]
            .as_str()
            .unwrap()
            .to_string();
        serde_json::from_slice(&self.objects()[&format!("sites/acme/deploys/{id}.json")]).unwrap()
    }

    /// The files of acme's live deploy: every entry of the shards its Route names by hash
    /// (format 3), as one `{"files": …}` object.
    pub(crate) fn live_files(&self) -> Value {
        let objects = self.objects();
        let mut files = serde_json::Map::new();
        for h in self.live()["live"]["shard_hashes"].as_array().unwrap() {
            let key = format!("shards/{}.json", h.as_str().unwrap());
            let shard: Value = serde_json::from_slice(&objects[&key]).unwrap();
            files.extend(shard["files"].as_object().unwrap().clone());
        }
        serde_json::json!({ "files": files })
    }

    /// The paths of acme's live deploy.
    pub(crate) fn live_paths(&self) -> Vec<String> {
        self.live_files()["files"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    pub(crate) fn writes(&self) -> Vec<String> {
        self.w
            .writes()
            .into_iter()
            .map(|r| format!("{} {}", r.method, short(&r.path)))
            .collect()
    }
}

/// `/accounts/…/r2/buckets/cfsetup-sites/objects/blobs/x` (REST) or `/cfsetup-sites/blobs/x`
/// (S3) → `objects/blobs/x`.
pub(crate) fn short(path: &str) -> String {
    if let Some(key) = path.strip_prefix(&format!("/{BUCKET}/")) {
        return format!("objects/{key}");
    }
    match path.find("/objects/") {
        Some(i) => path[i + 1..].to_string(),
        None => path.to_string(),
    }
}

/// The requests the emulator saw, without the one token verification that derives S3 keys.
pub(crate) fn requests_but_verify(w: &World) -> Vec<cfsetup_emulator::RecordedRequest> {
    w.emu
        .requests()
        .into_iter()
        .filter(|r| !r.path.ends_with("/tokens/verify"))
        .collect()
}

pub(crate) fn sha(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

fn basic_site(s: &Site) {
    s.write("index.html", b"<h1>Acme</h1>");
    s.write("about.html", b"<h1>About</h1>");
    s.write("css/site.css", b"body { color: green }");
    s.write("copy-a.txt", b"same bytes");
    s.write("copy-b.txt", b"same bytes");
}

#[test]
fn a_first_deploy_uploads_each_distinct_file_once_and_switches_last() {
    let s = Site::new();
    basic_site(&s);
    let out = s.deploy(&[]).success();
    let j = out.json();
    assert_eq!(j["files"], 5);
    assert_eq!(j["uploaded"], 4, "two identical files make one blob");
    assert_eq!(j["unchanged"], 0);
    assert_eq!(j["bytes_sent"], 13 + 14 + 21 + 10);
    assert_eq!(j["changed"], true);
    assert_eq!(
        j["urls"],
        serde_json::json!([format!("https://acme.{}/", s.w.zone_name())])
    );

    let writes = s.writes();
    assert_eq!(writes.len(), 9, "{writes:#?}");
    assert!(
        writes[0].starts_with("PUT objects/locks/deploys/"),
        "the intent first: {writes:#?}"
    );
    let id = j["deploy_id"].as_str().unwrap();
    let head = s.live();
    let shard_hash = head["live"]["shard_hashes"][0]
        .as_str()
        .unwrap()
        .to_string();
    // After the marker wait, at once: the blobs, the shard and the copy.
    let mut uploads: Vec<String> = writes[1..7].to_vec();
    uploads.sort();
    assert!(
        uploads[..4]
            .iter()
            .all(|w| w.starts_with("PUT objects/blobs/")),
        "{writes:#?}"
    );
    assert_eq!(uploads[4], format!("PUT objects/shards/{shard_hash}.json"));
    assert_eq!(
        uploads[5],
        format!("PUT objects/sites/acme/deploys/{id}.json")
    );
    assert_eq!(
        writes[7], "PUT objects/sites/acme/manifest.json",
        "the head is switched last"
    );
    assert_eq!(
        writes[8],
        writes[0].replace("PUT", "DELETE"),
        "the intent is deleted"
    );

    let objects = s.objects();
    for body in [
        &b"<h1>Acme</h1>"[..],
        b"<h1>About</h1>",
        b"body { color: green }",
        b"same bytes",
    ] {
        assert_eq!(objects[&format!("blobs/{}", sha(body))], body);
    }
    assert_eq!(head["format"], 3);
    assert_eq!(head["tenant"], "acme");
    assert_eq!(head["live"]["deploy_id"], id);
    assert_eq!(head["live"]["files"], 5);
    assert_eq!(head["live"]["shards"], 1);
    assert_eq!(head["live"]["not_found"], "spa");
    assert_eq!(head["kept"], serde_json::json!([id]));
    let copy = s.live_copy();
    assert_eq!(copy["format"], 3);
    assert_eq!(copy["route"], head["live"]);
    assert!(
        copy.get("files").is_none(),
        "a format 3 copy names shards, not files"
    );
    // The shard is stored under the SHA-256 of its bytes.
    let shard_bytes = &objects[&format!("shards/{shard_hash}.json")];
    assert_eq!(sha(shard_bytes), shard_hash);
    let shard: Value = serde_json::from_slice(shard_bytes).unwrap();
    assert_eq!(
        shard["files"]["/css/site.css"],
        serde_json::json!({"hash": sha(b"body { color: green }"), "size": 21, "content_type": "text/css; charset=utf-8"})
    );
    assert_eq!(
        shard["files"]["/copy-a.txt"]["hash"],
        shard["files"]["/copy-b.txt"]["hash"]
    );
    assert_eq!(shard["files"].as_object().unwrap().len(), 5);
    assert!(
        !objects.keys().any(|k| k.starts_with("locks/")),
        "no lock record is left behind"
    );
    let content_types: BTreeMap<String, Option<String>> =
        s.w.emu
            .objects(BUCKET)
            .into_iter()
            .map(|o| (o.key, o.content_type))
            .collect();
    assert_eq!(
        content_types[&format!("blobs/{}", sha(b"<h1>Acme</h1>"))].as_deref(),
        Some("text/html; charset=utf-8")
    );
}

#[test]
fn an_unchanged_redeploy_makes_one_request_and_writes_nothing() {
    let s = Site::new();
    basic_site(&s);
    let first = s.deploy(&[]).success().json();
    s.w.emu.clear_requests();
    let again = s.deploy(&[]).success().json();
    assert_eq!(again["uploaded"], 0);
    assert_eq!(again["unchanged"], 5);
    assert_eq!(again["changed"], false);
    assert_eq!(again["deploy_id"], first["deploy_id"]);
    // One request: the head (and, over S3, the one token verification its keys come from).
    let requests = requests_but_verify(&s.w);
    assert_eq!(requests.len(), 1, "{requests:#?}");
    assert_eq!(short(&requests[0].path), "objects/sites/acme/manifest.json");
    assert!(s.w.emu.requests().len() <= 2);

    // The table says the same.
    s.w.emu.clear_requests();
    let mut cmd = s.cmd();
    cmd.args(["deploy-site", "site", "acme"]);
    let out = s.w.run(&mut cmd).success();
    assert!(
        out.stdout()
            .starts_with("acme is up to date: nothing to upload\n"),
        "{}",
        out.stdout()
    );
    assert!(s.w.writes().is_empty());
}

#[test]
fn changing_one_file_uploads_one_blob_and_one_manifest() {
    let s = Site::new();
    basic_site(&s);
    let first = s.deploy(&[]).success().json();
    s.write("css/site.css", b"body { color: blue }");
    s.w.emu.clear_requests();
    let j = s.deploy(&[]).success().json();
    assert_eq!(j["uploaded"], 1);
    assert_eq!(j["unchanged"], 4);
    assert_eq!(j["previous_deploy_id"], first["deploy_id"]);
    let id = j["deploy_id"].as_str().unwrap();
    let writes = s.writes();
    let shard_hash = s.live()["live"]["shard_hashes"][0]
        .as_str()
        .unwrap()
        .to_string();
    let mut uploads = writes[1..4].to_vec();
    uploads.sort();
    assert_eq!(
        [&uploads[0], &uploads[1], &uploads[2], &writes[4]],
        [
            &format!("PUT objects/blobs/{}", sha(b"body { color: blue }")),
            &format!("PUT objects/shards/{shard_hash}.json"),
            &format!("PUT objects/sites/acme/deploys/{id}.json"),
            &"PUT objects/sites/acme/manifest.json".to_string(),
        ],
        "the old blob stays: the kept previous deploy still names it"
    );
    assert_eq!(
        writes.len(),
        6,
        "the intent and its deletion around: {writes:#?}"
    );
    assert_eq!(j["checked"], 1, "only the changed file's blob is checked");
    let reads: Vec<String> =
        s.w.emu
            .requests()
            .iter()
            .map(|r| {
                format!(
                    "{} {} {}",
                    r.method,
                    short(&r.path),
                    r.query.clone().unwrap_or_default()
                )
            })
            .collect();
    assert!(
        !reads.iter().any(|r| r.contains("prefix=blobs")),
        "blobs/ is never listed: {reads:#?}"
    );
    assert!(s
        .objects()
        .contains_key(&format!("blobs/{}", sha(b"body { color: green }"))));
}

#[test]
fn an_interrupted_deploy_leaves_the_old_site_whole_and_a_rerun_finishes_it() {
    let s = Site::new();
    basic_site(&s);
    s.deploy(&[]).success();
    let before = s.objects()["sites/acme/manifest.json"].clone();
    s.w.emu.clear_requests();
    s.write("index.html", b"<h1>Acme v2</h1>");
    s.write("new.html", b"<p>new</p>");
    s.w.emu.inject(Fault {
        method: Some("PUT".into()),
        path_contains: Some("/blobs/".into()),
        kind: FaultKind::ServerError { status: 500 },
        times: 50,
    });
    let out = s.deploy(&[]).expect_code(1);
    // With --json the error is JSON on stdout too (docs/cli.md), and no report.
    assert_eq!(out.json()["error"]["exit_code"], 1, "{}", out.stdout());
    assert!(
        out.stderr().contains("the live site is unchanged"),
        "{}",
        out.stderr()
    );
    let objects = s.objects();
    assert_eq!(
        objects["sites/acme/manifest.json"], before,
        "the live manifest is untouched"
    );
    for entry in s.live_files()["files"].as_object().unwrap().values() {
        let key = format!("blobs/{}", entry["hash"].as_str().unwrap());
        assert!(objects.contains_key(&key), "{key} is missing");
    }
    assert!(
        s.writes()
            .iter()
            .all(|w| w.starts_with("PUT objects/blobs/")
                || w.starts_with("PUT objects/shards/")
                || w.starts_with("PUT objects/sites/acme/deploys/")
                || w.contains("objects/locks/deploys/")),
        "only new immutable objects (and the intent) were written, never the head: {:#?}",
        s.writes()
    );

    s.w.emu.clear_faults();
    let j = s.deploy(&[]).success().json();
    assert_eq!(j["uploaded"], 2);
    assert_eq!(
        s.live_files()["files"]["/new.html"]["hash"],
        sha(b"<p>new</p>")
    );
    assert_eq!(
        s.objects()[&format!("blobs/{}", sha(b"<h1>Acme v2</h1>"))],
        b"<h1>Acme v2</h1>"
    );
}

#[test]
fn dotfiles_never_reach_the_bucket_unless_asked_and_git_and_env_never() {
    let s = Site::new();
    s.write("index.html", b"<h1>Acme</h1>");
    s.write(".env", b"CLOUDFLARE_API_TOKEN=very-secret");
    s.write(".git/config", b"[remote] url=secret");
    s.write(".well-known/security.txt", b"Contact: mailto:sec@acme.test");
    let out = s.deploy(&[]).success();
    assert_eq!(out.json()["hidden_skipped"], 2);
    assert!(
        out.stderr()
            .contains("skipped 2 hidden file(s) or folder(s): /.env, /.git"),
        "{}",
        out.stderr()
    );
    assert_eq!(
        s.live_paths(),
        ["/.well-known/security.txt", "/index.html"],
        ".well-known is published: sites need it"
    );

    let out = s.deploy(&["--include-hidden"]).success();
    assert_eq!(out.json()["hidden_skipped"], 2);
    assert_eq!(s.live_paths(), ["/.well-known/security.txt", "/index.html"]);
    let objects = s.objects();
    for secret in [
        &b"CLOUDFLARE_API_TOKEN=very-secret"[..],
        b"[remote] url=secret",
    ] {
        assert!(!objects.contains_key(&format!("blobs/{}", sha(secret))));
        assert!(objects.values().all(|body| body != secret));
    }
}

#[cfg(unix)]
#[test]
fn a_link_out_of_the_folder_is_skipped_with_a_warning() {
    let s = Site::new();
    s.write("index.html", b"<h1>Acme</h1>");
    std::fs::write(s.w.file("outside.txt"), b"private").unwrap();
    std::os::unix::fs::symlink(s.w.file("outside.txt"), s.w.file("site/leak.txt")).unwrap();
    std::os::unix::fs::symlink(s.w.file("site/index.html"), s.w.file("site/home.html")).unwrap();
    let out = s.deploy(&[]).success();
    assert!(
        out.stderr()
            .contains("warning: skipped the link /leak.txt (points outside DIR)"),
        "{}",
        out.stderr()
    );
    assert_eq!(s.live_paths(), ["/home.html", "/index.html"]);
    assert!(!s
        .objects()
        .contains_key(&format!("blobs/{}", sha(b"private"))));
}

#[test]
fn rollback_switches_the_head_back_and_forward_with_a_cas() {
    let s = Site::new();
    s.write("index.html", b"v1");
    let v1 = s.deploy(&[]).success().json()["deploy_id"]
        .as_str()
        .unwrap()
        .to_string();
    s.write("index.html", b"v2");
    let v2 = s.deploy(&[]).success().json()["deploy_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(v2 > v1, "ids sort by deploy, even within one second");
    assert_eq!(s.live()["kept"], serde_json::json!([v2, v1]));

    let rollback = |extra: &[&str]| {
        let mut cmd = s.w.with_token(&s.token);
        cmd.args(["--json", "rollback", "acme"]).args(extra);
        s.w.run(&mut cmd)
    };
    let list = rollback(&["--list"]).success().json();
    assert_eq!(list["deploys"][0]["deploy_id"], v2.as_str());
    assert_eq!(list["deploys"][0]["live"], true);
    assert_eq!(list["deploys"][1]["deploy_id"], v1.as_str());
    assert_eq!(list["deploys"][1]["live"], false);

    s.w.emu.clear_requests();
    let dry = rollback(&["--dry-run"]).success().json();
    assert_eq!(
        (dry["from"].as_str(), dry["to"].as_str()),
        (Some(v2.as_str()), Some(v1.as_str()))
    );
    assert_eq!(dry["direction"], "back");
    assert!(s.w.writes().is_empty(), "a dry run writes nothing");

    let done = rollback(&[]).success().json();
    assert_eq!(done["to"], v1.as_str());
    assert_eq!(done["direction"], "back");
    assert_eq!(s.writes(), ["PUT objects/sites/acme/manifest.json"]);
    assert_eq!(s.live()["live"]["deploy_id"], v1.as_str());
    assert_eq!(s.live_files()["files"]["/index.html"]["hash"], sha(b"v1"));

    // v1 is the oldest kept deploy: nothing before it.
    let out = rollback(&[]).expect_code(1);
    assert!(
        out.stderr()
            .contains("no kept deploy older than the live one"),
        "{}",
        out.stderr()
    );
    // Forward again by a unique start of the id; the table says "forward", not "back".
    let mut cmd = s.w.with_token(&s.token);
    cmd.args(["rollback", "acme", &v2[..20]]);
    let out = s.w.run(&mut cmd).success();
    assert!(
        out.stdout()
            .starts_with(&format!("Rolled acme forward from {v1} to {v2}")),
        "{}",
        out.stdout()
    );
    assert_eq!(s.live()["live"]["deploy_id"], v2.as_str());
    // A redeploy of v1's files after a rollback uploads nothing.
    s.write("index.html", b"v1");
    let j = s.deploy(&[]).success().json();
    assert_eq!(j["uploaded"], 0);

    // Over REST (the CAS only checked before the write) a rollback holds an intent meanwhile.
    s.w.emu.clear_requests();
    let mut cmd = s.w.with_token(&s.token);
    cmd.env("CFSETUP_VIA", "rest")
        .args(["--json", "rollback", "acme"]);
    s.w.run(&mut cmd).success();
    let writes = s.writes();
    assert_eq!(writes.len(), 3, "{writes:#?}");
    assert!(
        writes[0].starts_with("PUT objects/locks/deploys/"),
        "{writes:#?}"
    );
    assert_eq!(writes[1], "PUT objects/sites/acme/manifest.json");
    assert_eq!(writes[2], writes[0].replace("PUT", "DELETE"));
}

#[test]
fn rollback_refuses_bad_versions_before_any_request_and_ambiguous_ones_with_exit_2() {
    let s = Site::new();
    for v in ["../../etc", "*", "", "a b"] {
        s.w.emu.clear_requests();
        let mut cmd = s.w.with_token(&s.token);
        cmd.args(["rollback", "acme", v]);
        let out = s.w.run(&mut cmd).expect_code(2);
        // An empty value is caught by the check every option and argument gets.
        let why = if v.is_empty() {
            "VERSION is empty"
        } else {
            "is neither a deploy id"
        };
        assert!(out.stderr().contains(why), "{v:?}: {}", out.stderr());
        assert!(s.w.emu.requests().is_empty(), "{v:?}");
    }
    s.write("index.html", b"v1");
    s.deploy(&[]).success();
    s.write("index.html", b"v2");
    s.deploy(&[]).success();
    let mut cmd = s.w.with_token(&s.token);
    cmd.args(["rollback", "acme", "20"]);
    let out = s.w.run(&mut cmd).expect_code(2);
    assert!(
        out.stderr().contains("could be any of 2 deploys"),
        "{}",
        out.stderr()
    );
}
#[test]
fn the_custom_hostname_is_created_once_and_the_dns_table_is_printed() {
    let s = Site::new();
    basic_site(&s);
    let mut cmd = s.cmd();
    cmd.args(["deploy-site", "site", "acme", DOMAIN]);
    let out = s.w.run(&mut cmd).success();
    let stdout = out.stdout();
    let zone = s.w.zone_name();
    assert!(
        stdout.contains(&format!("https://acme.{zone}/")),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("https://{DOMAIN}/")), "{stdout}");
    assert!(
        stdout.contains(&format!("Custom hostname {DOMAIN} (created)")),
        "{stdout}"
    );
    let cname = format!("  CNAME  {DOMAIN}  ");
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&cname))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.contains(&format!("  fallback.{zone}  ")), "{stdout}");
    assert!(
        stdout.contains(&format!("  TXT    _cf-custom-hostname.{DOMAIN}")),
        "{stdout}"
    );
    assert_eq!(
        s.objects()[&format!("hosts/{DOMAIN}.json")],
        br#"{"tenant":"acme"}"#
    );

    let j = s.deploy(&[DOMAIN]).success().json();
    let ch = &j["custom_hostnames"][0];
    assert_eq!(ch["action"], "exists");
    assert_eq!(j["host_entries"][0]["action"], "unchanged");
    let ownership = ch["dns_records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == format!("_cf-custom-hostname.{DOMAIN}"))
        .expect("the ownership TXT record");
    assert_eq!(ownership["type"], "TXT");
    let posts =
        s.w.emu
            .requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/custom_hostnames"))
            .count();
    assert_eq!(posts, 1, "created once");
    assert_eq!(s.w.emu.custom_hostnames().len(), 1);

    // Now active (the emulator activates after 2 reads): a warm deploy with DOMAIN makes 3
    // requests: the live manifest, the host entry, the custom hostname.
    s.w.emu.clear_requests();
    let j = s.deploy(&[DOMAIN]).success().json();
    assert_eq!(j["custom_hostnames"][0]["status"], "active");
    let requests = requests_but_verify(&s.w);
    assert!(requests.len() <= 3, "{requests:#?}");
    assert!(s.w.writes().is_empty());
}

#[test]
fn wait_polls_until_the_hostname_and_certificate_are_active() {
    let s = Site::new();
    basic_site(&s);
    let out = s
        .deploy(&[DOMAIN, "--wait", "1m", "--cname-target", "edge.example.net"])
        .success();
    let ch = &out.json()["custom_hostnames"][0];
    assert_eq!(ch["wait"], "active");
    assert_eq!(ch["status"], "active");
    assert_eq!(ch["ssl_status"], "active");
    assert_eq!(ch["pending"], serde_json::json!([]));
    assert_eq!(ch["dns_records"][0]["value"], "edge.example.net");
    assert!(
        out.stderr()
            .contains(&format!("{DOMAIN}: hostname active, certificate active")),
        "{}",
        out.stderr()
    );
}

#[test]
fn wait_times_out_with_exit_1_and_says_what_is_pending() {
    let mut options = Options::new();
    options.activate_custom_hostnames_after = None;
    let s = Site::with_options(options);
    basic_site(&s);
    let out = s.deploy(&[DOMAIN, "--wait", "2s"]).expect_code(1);
    let ch = &out.json()["custom_hostnames"][0];
    assert_eq!(ch["wait"], "timed out");
    assert_eq!(ch["pending"][0], "hostname pending");
    assert!(
        out.stderr().contains("still pending: hostname pending"),
        "{}",
        out.stderr()
    );
    // The site itself is live.
    assert_eq!(s.live()["tenant"], "acme");
}

#[test]
fn a_domain_of_another_tenant_is_refused_before_any_write() {
    let s = Site::new();
    basic_site(&s);
    s.deploy(&[DOMAIN]).success();
    s.w.emu.clear_requests();
    let mut cmd = s.cmd();
    cmd.args(["deploy-site", "site", "globex", DOMAIN]);
    let before = s.objects();
    let out = s.w.run(&mut cmd).expect_code(1);
    assert!(
        out.stderr().contains("already attached to tenant \"acme\""),
        "{}",
        out.stderr()
    );
    // The only write is the run's own intent, sent beside the head and host reads (a tenant
    // this machine has not seen: docs/storage-layout.md "deploy-site" step 1) and deleted
    // before the exit: the bucket is as it was.
    assert!(
        s.w.writes()
            .iter()
            .all(|r| short(&r.path).starts_with("objects/locks/deploys/")),
        "{:#?}",
        s.w.writes()
    );
    assert_eq!(s.objects(), before);
}

#[test]
fn dry_run_plans_without_writing() {
    let s = Site::new();
    basic_site(&s);
    let j = s.deploy(&[DOMAIN, "--dry-run"]).success().json();
    assert_eq!(j["dry_run"], true);
    assert_eq!(j["uploaded"], 4);
    assert_eq!(j["host_entries"][0]["action"], "would create");
    assert_eq!(j["custom_hostnames"][0]["action"], "would create");
    assert!(s.w.writes().is_empty());
    assert!(s.objects().is_empty());
}

/// Every refusal: exit 2, a message naming the problem, and no write (no request at all unless
/// the platform domain has to be read from the zone).
#[test]
fn bad_input_exits_2_before_any_write() {
    let s = Site::new();
    basic_site(&s);
    let check = |args: &[&str], env: &[(&str, &str)], needle: &str, requests_allowed: bool| {
        s.w.emu.clear_requests();
        let mut cmd = s.w.with_token(&s.token);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.arg("deploy-site").args(args);
        let out = s.w.run(&mut cmd).expect_code(2);
        assert!(out.stderr().contains(needle), "{args:?}: {}", out.stderr());
        assert!(out.stdout().is_empty());
        if requests_allowed {
            assert!(s.w.writes().is_empty(), "{args:?}");
        } else {
            assert!(
                s.w.emu.requests().is_empty(),
                "{args:?}: {:#?}",
                s.w.emu.requests()
            );
        }
    };
    let zone = s.w.zone_name();
    let pd = [("PLATFORM_DOMAIN", zone.as_str())];
    check(
        &["site", "Acme!"],
        &pd,
        "TENANT \"Acme!\" is not a valid tenant slug",
        false,
    );
    check(&["nope", "acme"], &pd, "DIR nope does not exist", false);
    check(&["site/index.html", "acme"], &pd, "is not a folder", false);
    check(
        &["site", "acme", "not a host"],
        &pd,
        "DOMAIN is not a hostname",
        false,
    );
    let in_zone = format!("shop.{zone}");
    check(
        &["site", "acme", &in_zone],
        &pd,
        "is in the platform's own domain",
        false,
    );
    check(
        &["site", "acme", &zone],
        &pd,
        "is in the platform's own domain",
        false,
    );
    // Without PLATFORM_DOMAIN the zone's name is read first, and still nothing is written.
    check(
        &["site", "acme", &in_zone],
        &[],
        "is in the platform's own domain",
        true,
    );
    check(
        &["site", "acme", "--wait"],
        &pd,
        "--wait waits for DOMAIN",
        false,
    );
    check(
        &["site", "acme", "--concurrency", "0"],
        &pd,
        "--concurrency 0 is out of range",
        false,
    );

    let big = s.w.file("site/video.mp4");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(301 * 1024 * 1024)
        .unwrap();
    // Over REST (300 MiB an object); S3 takes far larger files.
    check(
        &["site", "acme"],
        &[("PLATFORM_DOMAIN", zone.as_str()), ("CFSETUP_VIA", "rest")],
        "/video.mp4 is 301.0 MB, over the API's limit of 300.0 MB",
        false,
    );
    assert!(s.objects().is_empty());
}

#[test]
fn a_missing_bucket_says_to_run_deploy_infra() {
    let s = Site::new();
    basic_site(&s);
    let out = s.deploy(&["--bucket", "no-such-bucket"]).expect_code(1);
    assert!(
        out.stderr().contains("run `cfsetup deploy-infra` first"),
        "{}",
        out.stderr()
    );
}

#[test]
fn the_head_keeps_the_newest_10_and_deploys_never_delete_anything() {
    let s = Site::new();
    let mut ids = Vec::new();
    for v in 0..12 {
        s.write("index.html", format!("v{v}").as_bytes());
        let j = s.deploy(&[]).success().json();
        ids.push(j["deploy_id"].as_str().unwrap().to_string());
        if v == 10 {
            assert_eq!(j["dropped_from_kept"], serde_json::json!([ids[0]]));
        }
    }
    let kept: Vec<String> = s.live()["kept"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let mut want: Vec<String> = ids[2..].to_vec();
    want.reverse();
    assert_eq!(kept, want);
    let objects = s.objects();
    assert!(
        objects.contains_key(&format!("sites/acme/deploys/{}.json", ids[0])),
        "copies are left to gc"
    );
    for v in 0..12 {
        assert!(objects.contains_key(&format!("blobs/{}", sha(format!("v{v}").as_bytes()))));
    }
    assert!(
        !s.w.emu
            .requests()
            .iter()
            .any(|r| r.method == "DELETE" && !r.path.contains("/locks/")),
        "a deploy deletes no blob and no copy"
    );

    // --no-prune keeps every id in the head.
    s.write("index.html", b"v12");
    let j = s.deploy(&["--no-prune"]).success().json();
    assert_eq!(j["dropped_from_kept"], serde_json::json!([]));
    assert_eq!(s.live()["kept"].as_array().unwrap().len(), 11);
}

impl Site {
    /// Writes an object straight into the bucket, as another machine would.
    pub(crate) fn put(&self, key: &str, body: &[u8]) {
        let client = Client::new(
            &url::Url::parse(&self.w.emu.base_url()).unwrap(),
            Auth::Token(Secret::new(self.token.clone())),
            ClientOptions::default(),
        )
        .unwrap();
        let account = self.w.account_id();
        rt().block_on(async {
            let b = BucketRef {
                account: &account,
                name: BUCKET,
                jurisdiction: None,
            };
            client
                .put_object(
                    b,
                    key,
                    cfsetup::cloudflare::r2::ObjectBody::Bytes(body.to_vec().into()),
                    "application/json",
                )
                .await
                .unwrap();
        });
    }

    /// Deletes an object straight from the bucket.
    pub(crate) fn delete(&self, key: &str) {
        let client = Client::new(
            &url::Url::parse(&self.w.emu.base_url()).unwrap(),
            Auth::Token(Secret::new(self.token.clone())),
            ClientOptions::default(),
        )
        .unwrap();
        let account = self.w.account_id();
        rt().block_on(async {
            let b = BucketRef {
                account: &account,
                name: BUCKET,
                jurisdiction: None,
            };
            client.delete_object(b, key).await.unwrap();
        });
    }

    /// `cfsetup --json <args>` with the token and PLATFORM_DOMAIN.
    pub(crate) fn run(&self, args: &[&str]) -> crate::common::Run {
        let mut cmd = self.cmd();
        cmd.arg("--json").args(args);
        self.w.run(&mut cmd)
    }
}

/// Cost follows the change, not the bucket (#9): a new tenant deployed into a bucket that already
/// holds 50,000 other blobs makes requests in proportion to its own files. No request lists
/// `blobs/`, and no blob of anyone else is read.
#[test]
fn a_new_tenant_in_a_bucket_of_50_000_blobs_costs_requests_for_its_own_files_only() {
    let s = Site::new();
    let others = (0..50_000u32).map(|i| {
        let body = format!("someone else's file {i}").into_bytes();
        (format!("blobs/{}", sha(&body)), body)
    });
    assert!(s.w.emu.insert_objects(BUCKET, others));
    let files = 40;
    for i in 0..files {
        s.write(
            &format!("page-{i}.html"),
            format!("<p>page {i}</p>").as_bytes(),
        );
    }
    s.write("index.html", b"<h1>new tenant</h1>");
    s.w.emu.clear_requests();
    s.deploy(&[]).success();

    let requests = s.w.emu.requests();
    let listings_of_blobs: Vec<_> = requests
        .iter()
        .filter(|r| {
            r.method == "GET"
                && (r.query.as_deref().unwrap_or("").contains("prefix=blobs")
                    || r.path.ends_with("/objects") && r.query.as_deref().unwrap_or("").is_empty())
        })
        .collect();
    assert!(listings_of_blobs.is_empty(), "{listings_of_blobs:#?}");
    // One check (or create-only PUT) and at most one upload per new file, plus a fixed handful:
    // the verify, the head, the intent and its deletion, the gc-marker listing, the shard, the
    // deploy copy and the switch.
    let own = files + 1;
    assert!(
        requests.len() <= 2 * own + 12,
        "{} requests for {own} files in a bucket of 50,000 blobs",
        requests.len()
    );
    let blob_reads = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/blobs/"))
        .count();
    assert_eq!(blob_reads, 0, "no blob is downloaded to learn it exists");
}

/// S3 refusing the token's keys (a prefixed token, `s3_refuses_prefixed_tokens`): in auto the
/// deploy says so once on stderr, uploads over REST and succeeds; `--via s3` fails with exit 1.
#[test]
fn auto_falls_back_to_rest_with_one_note_and_via_s3_exits_1() {
    let s = Site::with_options(Options {
        s3_refuses_prefixed_tokens: true,
        ..Options::new()
    });
    basic_site(&s);
    let mut cmd = s.cmd();
    cmd.args(["--via", "s3", "deploy-site", "site", "acme"]);
    let strict = s.w.run(&mut cmd).expect_code(1);
    assert!(
        strict.stderr().contains("SignatureDoesNotMatch"),
        "{}",
        strict.stderr()
    );
    assert!(!s.objects().contains_key("sites/acme/manifest.json"));

    s.w.emu.clear_requests();
    let run = s.deploy(&[]).success();
    let stderr = run.stderr();
    assert_eq!(
        stderr.matches("cfsetup: note: R2's S3 API refused").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("SignatureDoesNotMatch"), "{stderr}");
    assert_eq!(run.json()["uploaded"], 4);
    let requests = s.w.emu.requests();
    let s3_ok = requests
        .iter()
        .filter(|r| r.api == cfsetup_emulator::Api::S3 && r.status < 300)
        .count();
    assert_eq!(s3_ok, 0, "nothing went over S3");
    let rest_puts = requests
        .iter()
        .filter(|r| r.api == cfsetup_emulator::Api::Rest && r.method == "PUT")
        .filter(|r| r.path.contains("/objects/"))
        .count();
    assert!(rest_puts >= 5, "blobs and manifests over REST: {rest_puts}");
    assert!(s.objects().contains_key("sites/acme/manifest.json"));
}

/// `CLOUDFLARE_API_TOKEN_ID` gives S3 its Access Key ID without a verify call: a warm deploy
/// with a DOMAIN makes no verify call. A stale id still falls back in auto, saying so.
#[test]
fn with_the_token_id_set_a_warm_deploy_makes_no_verify_call() {
    let s = Site::new();
    let client = Client::new(
        &url::Url::parse(&s.w.emu.base_url()).unwrap(),
        Auth::Token(Secret::new(s.token.clone())),
        ClientOptions::default(),
    )
    .unwrap();
    let id = rt().block_on(client.verify_token()).unwrap().id;
    basic_site(&s);
    // Twice: the emulator activates the custom hostname after 2 reads.
    for _ in 0..2 {
        let mut cmd = s.cmd();
        cmd.args(["--json", "deploy-site", "site", "acme", DOMAIN]);
        s.w.run(&mut cmd).success();
    }
    s.w.emu.clear_requests();
    let mut cmd = s.cmd();
    cmd.env("CLOUDFLARE_API_TOKEN_ID", &id)
        .args(["--json", "deploy-site", "site", "acme", DOMAIN]);
    let run = s.w.run(&mut cmd).success();
    assert!(!run.stderr().contains("note: R2's S3"), "{}", run.stderr());
    let requests = s.w.emu.requests();
    assert!(
        !requests.iter().any(|r| r.path.ends_with("/tokens/verify")),
        "{requests:#?}"
    );
    // The head, the host entry, the custom hostname: the target of 3.
    assert_eq!(requests.len(), 3, "{requests:#?}");

    // Another token's id: S3 refuses the keys; auto falls back and names the setting.
    s.w.emu.clear_requests();
    let mut cmd = s.cmd();
    cmd.env(
        "CLOUDFLARE_API_TOKEN_ID",
        "0123456789abcdef0123456789abcdef",
    )
    .args(["deploy-site", "site", "acme", DOMAIN]);
    let run = s.w.run(&mut cmd).success();
    assert_eq!(run.stderr().matches("cfsetup: note: R2's S3").count(), 1);
    assert!(
        run.stderr().contains("CLOUDFLARE_API_TOKEN_ID") && run.stderr().contains("stale"),
        "{}",
        run.stderr()
    );

    // Not an id: refused before any request.
    s.w.emu.clear_requests();
    let mut cmd = s.cmd();
    cmd.env("CLOUDFLARE_API_TOKEN_ID", "ABC")
        .args(["deploy-site", "site", "acme"]);
    let run = s.w.run(&mut cmd).expect_code(2);
    assert!(
        run.stderr().contains("CLOUDFLARE_API_TOKEN_ID"),
        "{}",
        run.stderr()
    );
    assert!(s.w.emu.requests().is_empty());
}
