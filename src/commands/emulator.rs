//! `cfsetup emulator`: runs the local stand-in for the Cloudflare API until Ctrl-C.
//!
//! Its first lines on stdout are `export …` lines a user can paste into a shell (or `eval`).
//! The seeded Global API Key is the emulator's own fake credential, not a secret of the user's.
//! The `--s3-*` flags map one to one onto the emulator's `Options` knobs (each documented
//! there): by default R2's S3 API takes the strict side of every open question.
//!
//! It imports only `cli` and `output`; the emulator crate does the rest.

use std::io::Write;
use std::time::Duration;

use cfsetup_emulator::{Emulator, Options};

use crate::cli::EmulatorArgs;
use crate::output::Ui;

pub async fn run(args: &EmulatorArgs, ui: &Ui) -> anyhow::Result<()> {
    let mut options = Options::new();
    options.port = args.port;
    options.latency = Duration::from_millis(args.latency_ms);
    options.state_file = args.state.clone();
    options.s3_presigned_post = args.s3_presigned_post;
    options.s3_presigned_payload_lenient = args.s3_presigned_payload_lenient;
    options.s3_unsigned_content_sha256_lenient = args.s3_unsigned_content_sha256_lenient;
    options.s3_conflict_409 = args.s3_conflict_409;
    options.s3_write_limit_per_key = args.s3_write_limit_per_key;
    options.s3_complete_honours_conditions = args.s3_complete_honours_conditions;
    let emulator = Emulator::start(options).map_err(|e| {
        anyhow::anyhow!("cannot start the emulator on 127.0.0.1:{}: {e}", args.port)
    })?;
    let seed = emulator.seed();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "export CLOUDFLARE_API_BASE_URL={}",
        emulator.base_url()
    )?;
    writeln!(out, "export R2_S3_ENDPOINT={}", emulator.s3_endpoint())?;
    writeln!(out, "export CLOUDFLARE_EMAIL={}", seed.email)?;
    writeln!(out, "export CLOUDFLARE_GLOBAL_KEY={}", seed.global_key)?;
    writeln!(out, "export CLOUDFLARE_ACCOUNT_ID={}", seed.account_id)?;
    writeln!(out, "export CLOUDFLARE_ZONE_ID={}", seed.zone_id)?;
    out.flush()?;
    drop(out);
    ui.note(format!(
        "emulator listening on {} (zone {}); inspect it at http://{}/__emulator/state; Ctrl-C stops it",
        emulator.base_url(),
        seed.zone_name,
        emulator.addr()
    ));
    ui.note(format!(
        "its DNS server for tenants' domains (records loaded with POST /__emulator/dns) is {}: \
         set CFSETUP_DNS_SERVER={} for domains and deploy-site to ask it",
        emulator.dns_addr(),
        emulator.dns_addr()
    ));
    tokio::signal::ctrl_c().await?;
    drop(emulator);
    Ok(())
}
