//! What the server's connection tasks share with the [`crate::Emulator`] handle and with the
//! request handlers (REST routes, S3, inspection): options, state, faults, the request log, the
//! rate limiter and the state file's saver. It imports none of the handlers or the server.

use crate::faults::{Faults, Limiter};
use crate::seed::PermissionGroup;
use crate::state::State;
use crate::{Options, RecordedRequest};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Everything the connection tasks share with the [`crate::Emulator`] handle.
pub struct Shared {
    pub options: Options,
    pub catalog: Vec<PermissionGroup>,
    /// IDs of groups taken out of the listing by [`crate::Emulator::remove_permission_group`].
    pub withdrawn: Mutex<Vec<String>>,
    pub state: Mutex<State>,
    pub faults: Mutex<Faults>,
    pub log: Mutex<Vec<RecordedRequest>>,
    pub limiter: Mutex<Limiter>,
    pub saver: Saver,
    /// Conditional S3 PutObjects in flight by raw path (`Options.s3_conflict_409`).
    pub in_flight: Mutex<std::collections::HashMap<String, usize>>,
    /// The DNS server's records (`crate::dns`), loaded by tests.
    pub dns: std::sync::Arc<Mutex<crate::dns::Table>>,
}

/// Coalesced saves of the state file. Each mutation bumps `wanted` (after it released the state
/// lock); a saver takes `writing`, and skips if a save that began after its mutation has already
/// been written. The snapshot is a clone of the persisted fields taken under the state lock (a
/// memory copy); serialising and writing happen outside it, so other requests are not held up
/// by the disk. The save is done before the request is answered, so a client that got its answer
/// can read the file.
#[derive(Default)]
pub struct Saver {
    wanted: AtomicU64,
    written: AtomicU64,
    writing: Mutex<()>,
}

impl Shared {
    /// Saves the state file, if any, after a mutation the caller made and released the state lock
    /// on. A failure is reported on stderr and the server carries on.
    pub fn save_soon(&self) {
        let Some(path) = &self.options.state_file else {
            return;
        };
        let mine = self.saver.wanted.fetch_add(1, Ordering::SeqCst) + 1;
        let _writing = self.saver.writing.lock();
        if self.saver.written.load(Ordering::SeqCst) >= mine {
            return; // Someone else's snapshot, taken after our change, is on disk.
        }
        let (snapshot, generation) = {
            let state = self.state.lock();
            (state.snapshot(), self.saver.wanted.load(Ordering::SeqCst))
        };
        if let Err(e) = snapshot.save(path) {
            eprintln!(
                "cfsetup-emulator: warning: could not save state to {}: {e}",
                path.display()
            );
        }
        self.saver.written.store(generation, Ordering::SeqCst);
    }
}
