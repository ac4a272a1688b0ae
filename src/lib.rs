//! cfsetup: set up and run a multi-tenant static-site platform on Cloudflare.
//!
//! Data flow: flags > environment > `.env` → [`config::Config`] (checked) → [`cloudflare::Client`]
//! → a command (plan, then apply) → a [`output::Report`] → table or JSON. The binary (`main.rs`) is
//! a thin shell around [`commands::main`].
//!
//! Layers, each importing only those before it: `error`, `names`, `secret`, `envfile`, `cli`,
//! `output`, `dns`, `cache` (leaves) → `config` → `transport` → `cloudflare` → `storage` → `exit`
//! (how an error is shown, and its exit status) → `site` → `platform` → `commands` → `main`. The
//! import graph has no circle.

pub mod cache;
pub mod cli;
pub mod cloudflare;
pub mod commands;
pub mod config;
pub mod dns;
pub mod envfile;
pub mod error;
pub mod exit;
pub mod names;
pub mod output;
pub mod permissions;
pub mod platform;
pub mod secret;
pub mod site;
pub mod storage;
pub mod transport;
