//! A tenant's site as cfsetup publishes it: walking a folder, hashing, content types, the
//! manifest, the bucket's key layout and the coordination records (`docs/storage-layout.md` is
//! the contract with `worker/router.js`).
//!
//! Everything here is pure and local: no module in `site` sends a request or imports the API
//! client, so each piece is unit-tested on its own. The commands put them together with
//! [`Storage`](crate::storage::Storage).

pub mod content_type;
pub mod layout;
pub mod locks;
pub mod manifest;
pub mod rules;
pub mod walk;

pub use content_type::content_type;
pub use manifest::{DeployCopy, FileEntry, Head, Route, StoredHead};
pub use walk::{walk, SiteFile, Walk, WalkOptions};
