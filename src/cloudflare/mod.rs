//! The one Cloudflare API client. Only this module speaks HTTP, but for R2's S3 API, which
//! `storage::s3` signs and sends over this client's connection pool.
//!
//! `client.rs` is the transport (auth, envelope, errors, retries, pacing, pagination); each other
//! file is one API area with typed calls whose doc comments name their source in
//! docs/cloudflare-api.md. Commands see typed results or an [`Error`], never raw JSON or HTTP.
//! This module must not import commands, reports or output.

pub(crate) mod client;
mod error;

pub mod accounts;
pub mod custom_hostnames;
pub mod dns;
pub mod r2;
pub mod tokens;
pub mod workers;

pub use client::{
    estimate_rest_duration, Auth, Client, ClientOptions, HashCheck, Pacing, RetryPolicy,
    StatsSnapshot,
};
pub use error::{required_permission, ApiMessage, Error};

pub(crate) use client::{object_key, seg, Body, Req};
