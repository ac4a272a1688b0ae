//! A tenant's site as cfsetup publishes it: walking a folder, hashing, content types, the
//! manifest, and the bucket's key layout (`docs/storage-layout.md` is the contract with
//! `worker/router.js`).
//!
//! Everything here is pure and local: no module in `site` sends a request or imports the API
//! client, so each piece is unit-tested on its own. `commands::deploy_site` and
//! `commands::rollback` put them together with the client.

pub mod content_type;
pub mod layout;
pub mod manifest;
pub mod rules;
pub mod walk;

pub use content_type::content_type;
pub use manifest::{FileEntry, Manifest};
pub use walk::{walk, SiteFile, Walk, WalkOptions};
