//! `cfsetup emulator`: runs the local stand-in for the Cloudflare API until Ctrl-C.
//!
//! Its first lines on stdout are `export …` lines a user can paste into a shell (or `eval`).
//! The seeded Global API Key is the emulator's own fake credential, not a secret of the user's.

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
