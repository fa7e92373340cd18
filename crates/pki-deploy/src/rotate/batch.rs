//! How a run makes its writes durable. A small run syncs every file as it writes it. A large
//! one defers: it writes everything of a phase, then makes it durable with one `syncfs` per
//! file system before the next phase publishes any of it. Meanwhile a thread keeps starting
//! `syncfs` on what was written so far, so the disk works while the run goes on signing and
//! writing, and the flush that publishes waits only for the rest.
//!
//! Each file system is opened before anything is written to it: `syncfs` reports the write
//! errors that happened since its descriptor was opened, and none may go unnoticed.

use std::fs::File;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use pki::error::IoOp;
use pki::fsio::Durability;

use crate::error::Error;

/// Above this many certificates or targets to handle, a run defers every fsync and makes each
/// phase durable with one `syncfs` per file system before publishing it.
pub(crate) const THRESHOLD: usize = 8;

/// A file system written to: the device and a descriptor opened before the writes.
#[derive(Debug, Clone)]
struct Watched {
    dev: u64,
    path: PathBuf,
    file: Arc<File>,
}

impl Watched {
    fn sync(&self) -> pki::Result<()> {
        nix::unistd::syncfs(&*self.file).map_err(|e| pki::Error::Io {
            op: IoOp::Sync,
            path: self.path.clone(),
            source: std::io::Error::from(e),
        })
    }
}

/// What the writeback thread and the run share.
#[derive(Debug, Default)]
struct Writeback {
    /// The file systems written to.
    watched: Vec<Watched>,
    /// Written to since the last flush began.
    dirty: bool,
    /// A flush is running in the thread.
    busy: bool,
    /// The first error the thread met, for the next [`Batch::flush`] to report.
    error: Option<pki::Error>,
    /// The batch is done: the thread ends.
    stop: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<Writeback>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Writeback> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writeback thread: flushes whenever the run wrote something since the last flush.
    fn work(&self) {
        let mut state = self.lock();
        loop {
            while !state.dirty && !state.stop {
                state = self
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if state.stop {
                return;
            }
            state.dirty = false;
            state.busy = true;
            let watched = state.watched.clone();
            drop(state);
            let synced = watched.iter().try_for_each(Watched::sync);
            state = self.lock();
            state.busy = false;
            if let Err(e) = synced {
                state.error.get_or_insert(e);
            }
            self.changed.notify_all();
        }
    }
}

/// The durability of a run's writes (see the module documentation).
#[derive(Debug)]
pub(crate) struct Batch {
    /// Per file, or deferred to a `syncfs` per phase.
    pub durability: Durability,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Batch {
    /// A batch writing with `durability`.
    pub(crate) fn new(durability: Durability) -> Self {
        Self {
            durability,
            shared: Arc::default(),
            thread: Mutex::new(None),
        }
    }

    /// The policy for `busy` files and directories to write: deferred when there are many.
    pub(crate) fn for_load(busy: usize) -> Self {
        Self::new(if busy > THRESHOLD {
            Durability::Deferred
        } else {
            Durability::Immediate
        })
    }

    fn deferred(&self) -> bool {
        self.durability == Durability::Deferred
    }

    /// Notes that the phase will write under `path` (which may not exist yet): its file
    /// system is opened now, once.
    pub(crate) fn watch(&self, path: &Path) {
        if !self.deferred() {
            return;
        }
        // The path is not checked yet (the phase does that next), and a service user may own
        // part of it: never follow a link at its end, never open anything but a directory (a
        // FIFO planted there would block the open for good).
        let Some((existing, file)) = path.ancestors().find_map(|p| {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(
                    nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK,
                )
                .open(p)
                .ok()?;
            Some((p, file))
        }) else {
            return;
        };
        let Ok(dev) = file.metadata().map(|m| m.dev()) else {
            return;
        };
        let mut state = self.shared.lock();
        if state.watched.iter().any(|w| w.dev == dev) {
            return;
        }
        state.watched.push(Watched {
            dev,
            path: existing.to_path_buf(),
            file: Arc::new(file),
        });
    }

    /// Says that something was written: the writeback thread flushes it when it is free.
    pub(crate) fn kick(&self) {
        if !self.deferred() {
            return;
        }
        self.shared.lock().dirty = true;
        self.shared.changed.notify_all();
        let mut thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner);
        if thread.is_none() {
            let shared = Arc::clone(&self.shared);
            *thread = Some(std::thread::spawn(move || shared.work()));
        }
    }

    /// Makes everything written so far durable (nothing to do when every write was synced
    /// already): waits for the thread's flush in progress, then syncs every file system
    /// written to.
    pub(crate) fn flush(&self) -> Result<(), Arc<Error>> {
        if !self.deferred() {
            return Ok(());
        }
        let mut state = self.shared.lock();
        while state.busy {
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.dirty = false;
        let earlier = state.error.take();
        let watched = state.watched.clone();
        drop(state);
        match earlier {
            Some(e) => Err(e),
            None => watched.iter().try_for_each(Watched::sync),
        }
        .map_err(|e| Arc::new(e.into()))
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self
            .thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deferred_batch_flushes_what_it_watches_and_an_immediate_one_does_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let batch = Batch::new(Durability::Deferred);
        batch.watch(&tmp.path().join("not/yet/made"));
        batch.watch(tmp.path());
        assert_eq!(batch.shared.lock().watched.len(), 1, "one file system");
        batch.kick();
        batch.kick();
        assert!(batch.flush().is_ok());
        assert!(!batch.shared.lock().busy);
        let now = Batch::new(Durability::Immediate);
        now.watch(tmp.path());
        now.kick();
        assert!(now.shared.lock().watched.is_empty());
        assert!(now.thread.lock().unwrap().is_none());
        assert!(now.flush().is_ok());
    }
}
