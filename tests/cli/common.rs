//! Test harness shared by every module: an emulator, a temp directory, and the binary with a
//! cleared environment.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Mutex;

use assert_cmd::Command;
use cfsetup_emulator::{Emulator, Options, RecordedRequest};
use serde_json::{json, Value};

pub const ACCOUNT_SCOPE: &str = "com.cloudflare.api.account";
pub const ZONE_SCOPE: &str = "com.cloudflare.api.account.zone";

/// The 8 permissions by name and scope, as the tests know them (independently of src/).
pub const EIGHT: [(&str, &str); 8] = [
    ("Account Settings Read", ACCOUNT_SCOPE),
    ("Workers R2 Storage Write", ACCOUNT_SCOPE),
    ("Workers Scripts Read", ACCOUNT_SCOPE),
    ("Workers Scripts Write", ACCOUNT_SCOPE),
    ("Workers Routes Write", ZONE_SCOPE),
    ("Zone Read", ZONE_SCOPE),
    ("SSL and Certificates Read", ZONE_SCOPE),
    ("SSL and Certificates Write", ZONE_SCOPE),
];

/// One emulator, one temp directory, and the secrets that must never reach stderr.
pub struct World {
    pub emu: Emulator,
    pub dir: tempfile::TempDir,
    secrets: Mutex<Vec<String>>,
}

impl World {
    pub fn new() -> Self {
        Self::with_options(Options::new())
    }

    pub fn with_options(options: Options) -> Self {
        let emu = Emulator::start(options).expect("the emulator starts");
        let dir = tempfile::tempdir().expect("a temp dir");
        World {
            secrets: Mutex::new(vec![emu.seed().global_key.clone()]),
            emu,
            dir,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn account_id(&self) -> String {
        self.emu.seed().account_id.clone()
    }

    pub fn zone_id(&self) -> String {
        self.emu.seed().zone_id.clone()
    }

    pub fn zone_name(&self) -> String {
        self.emu.seed().zone_name.clone()
    }

    /// Remember a value that must never appear on stderr.
    pub fn secret(&self, value: &str) {
        self.secrets.lock().unwrap().push(value.to_string());
    }

    /// The binary with only PATH, HOME, NO_COLOR and the emulator's URLs (REST and S3) set, run in
    /// the temp dir.
    pub fn bare(&self) -> Command {
        let mut cmd = Command::cargo_bin("cfsetup").expect("the binary is built");
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path())
            .env("NO_COLOR", "1")
            .env("CLOUDFLARE_API_BASE_URL", self.emu.base_url())
            .env("R2_S3_ENDPOINT", self.emu.s3_endpoint())
            .current_dir(self.path());
        cmd
    }

    /// The binary with the account and zone IDs set.
    pub fn ids(&self) -> Command {
        let mut cmd = self.bare();
        cmd.env("CLOUDFLARE_ACCOUNT_ID", self.account_id())
            .env("CLOUDFLARE_ZONE_ID", self.zone_id());
        cmd
    }

    /// Method 1: email + Global API Key (and the IDs).
    pub fn with_global_key(&self) -> Command {
        let mut cmd = self.ids();
        cmd.env("CLOUDFLARE_EMAIL", &self.emu.seed().email)
            .env("CLOUDFLARE_GLOBAL_KEY", &self.emu.seed().global_key);
        cmd
    }

    /// A token (and the IDs).
    pub fn with_token(&self, token: &str) -> Command {
        self.secret(token);
        let mut cmd = self.ids();
        cmd.env("CLOUDFLARE_API_TOKEN", token);
        cmd
    }

    /// Runs the command, checks that stderr carries no secret, and returns the output.
    pub fn run(&self, cmd: &mut Command) -> Run {
        let out = cmd.output().expect("the binary runs");
        let run = Run(out);
        let stderr = run.stderr();
        for s in self.secrets.lock().unwrap().iter() {
            assert!(
                !stderr.contains(s.as_str()),
                "a secret leaked on stderr:\n{stderr}"
            );
        }
        // Token values shown on stdout are secrets from now on.
        for word in run
            .stdout()
            .split(|c: char| c.is_whitespace() || c == '"' || c == '=')
        {
            if word.starts_with("cfut_") {
                self.secret(word);
            }
        }
        run
    }

    /// A policy list granting the named permission groups on the seeded account and zone, each on
    /// a resource of its own scope.
    pub fn policies(&self, perms: &[(&str, &str)]) -> Value {
        let id = |name: &str, scope: &str| {
            self.emu
                .permission_group_id(name, scope)
                .unwrap_or_else(|| panic!("the emulator has no group {name} ({scope})"))
        };
        let account: Vec<Value> = perms
            .iter()
            .filter(|(_, s)| *s == ACCOUNT_SCOPE)
            .map(|(n, s)| json!({ "id": id(n, s) }))
            .collect();
        let zone: Vec<Value> = perms
            .iter()
            .filter(|(_, s)| *s == ZONE_SCOPE)
            .map(|(n, s)| json!({ "id": id(n, s) }))
            .collect();
        let mut policies = Vec::new();
        if !account.is_empty() {
            policies.push(json!({
                "effect": "allow",
                "resources": { format!("{ACCOUNT_SCOPE}.{}", self.account_id()): "*" },
                "permission_groups": account,
            }));
        }
        if !zone.is_empty() {
            policies.push(json!({
                "effect": "allow",
                "resources": { format!("{ZONE_SCOPE}.{}", self.zone_id()): "*" },
                "permission_groups": zone,
            }));
        }
        Value::Array(policies)
    }

    /// A token holding all 8 permissions, minted directly in the emulator.
    pub fn full_token(&self) -> String {
        self.mint(&EIGHT)
    }

    /// A token holding exactly these permissions.
    pub fn mint(&self, perms: &[(&str, &str)]) -> String {
        let (_, value) = self.emu.mint_token("test token", self.policies(perms));
        self.secret(&value);
        value
    }

    /// A token holding all 8 but `missing`.
    pub fn token_without(&self, missing: &str) -> String {
        let perms: Vec<_> = EIGHT
            .iter()
            .copied()
            .filter(|(n, _)| *n != missing)
            .collect();
        self.mint(&perms)
    }

    /// Requests the emulator saw that change something.
    pub fn writes(&self) -> Vec<RecordedRequest> {
        self.emu
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET" && r.method != "HEAD")
            .collect()
    }

    pub fn file(&self, rel: &str) -> PathBuf {
        self.path().join(rel)
    }
}

/// A finished run.
pub struct Run(pub Output);

impl Run {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.0.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout()))
    }
    /// Asserts the exit status, showing both streams when it differs.
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code(),
            code,
            "exit status\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        self
    }
    pub fn success(self) -> Self {
        self.expect_code(0)
    }
}
