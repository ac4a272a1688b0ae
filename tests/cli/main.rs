//! The one integration-test binary: the built `cfsetup` and its client against the emulator.
//!
//! Every CLI test goes through [`common::World`], which clears the environment, runs in a temp
//! directory, points the binary at an in-process emulator, and checks that no secret (the Global
//! API Key, any token value) ever appears on stderr.

mod common;

mod client;
mod create_token;
mod demo;
mod deploy_infra;
mod deploy_site;
mod deploy_sites;
mod destroy_infra;
mod doctor;
mod domains;
mod e2e;
mod foundation;
mod gc;
mod previews;
mod rotate_token;
mod round_trips;
mod safety;
mod shards;
mod sites;
mod skew;
mod storage;
mod stress;
mod test_permissions;
mod trial;
