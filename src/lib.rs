//! cfsetup: set up and run a multi-tenant static-site platform on Cloudflare.
//!
//! Data flow: flags > environment > `.env` → [`config::Config`] (checked) → [`cloudflare::Client`]
//! → a command (plan, then apply) → a [`output::Report`] → table or JSON. The binary (`main.rs`) is
//! a thin shell around [`commands::main`].

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
