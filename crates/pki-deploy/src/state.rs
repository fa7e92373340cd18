//! What a run remembers for the next: per certificate, the last success and the last result,
//! so that reports carry "last success" across runs. Written atomically at the end of a run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pki::error::IoOp;
use pki::fsio::{self, Dir, FileMode, Owners};
use pki::rotation::Current;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::service::TargetConfig;
use crate::service::layout;

/// The state file's name in the state directory.
pub const FILE: &str = "state.json";
/// Largest state file read (ten thousand certificates make a few megabytes).
const MAX_STATE: u64 = 64 << 20;

/// One certificate's history.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertState {
    /// Unix time of the last run that ended with this certificate served and current.
    pub last_success: Option<i64>,
    /// Unix time of the last run that looked at it.
    pub last_run: Option<i64>,
    /// `ok` or `failed`.
    pub last_result: Option<String>,
    /// The last error, if the last result was a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// ACME: the orders that failed in a row, and when the next may be placed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
}

/// Failed ACME orders in a row (see `rotate::backoff`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backoff {
    /// How many.
    pub failures: u32,
    /// Unix time before which no new order is placed.
    pub until: i64,
    /// The last failure.
    pub last: String,
}

/// What identifies a file's or directory's content without reading it: a digest of its inode,
/// size and change time. The ctime moves with every write, rename into or out of a directory,
/// chmod or chown, and unlike the mtime no one can set it back (a restore with `rsync -a` or
/// `tar` changes it). One number keeps the state file small: it holds one per certificate and
/// two per target.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Stamp(u64);

/// The stamp of `path` itself (a symlink is not followed), if it exists.
pub fn stamp(path: &Path) -> Option<Stamp> {
    std::fs::symlink_metadata(path).ok().map(|m| Stamp::of(&m))
}

/// The stamp of what `path` resolves to (symlinks followed), if it exists: one `stat` through a
/// `current` link identifies the version it points at without reading the link.
pub fn stamp_followed(path: &Path) -> Option<Stamp> {
    std::fs::metadata(path).ok().map(|m| Stamp::of(&m))
}

/// The stamp of `base/rel` (a last link followed or not), looked up from `base` kept open
/// (see [`pki::fsio::dir::stat_below`]): planning thousands of targets side by side walks
/// their common parent once, not once per `stat`. The same number as [`stamp`] or
/// [`stamp_followed`] of the whole path.
pub fn stamp_below(base: &Path, rel: &Path, links: fsio::Links) -> Option<Stamp> {
    let e = fsio::dir::stat_below(base, rel, links)?;
    Some(Stamp::from_parts(e.ino, e.size, e.ctime.0, e.ctime.1))
}

/// Closes the directories [`stamp_below`] keeps open on this thread (a plan is over: what
/// comes later must see the directories as they are then).
pub fn forget_bases() {
    fsio::dir::forget_bases();
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self::from_parts(m.ino(), m.size(), m.ctime(), m.ctime_nsec())
    }

    fn from_parts(ino: u64, size: u64, ctime: i64, ctime_nsec: i64) -> Self {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&ino.to_le_bytes());
        bytes[8..16].copy_from_slice(&size.to_le_bytes());
        bytes[16..24].copy_from_slice(&ctime.to_le_bytes());
        bytes[24..].copy_from_slice(&ctime_nsec.to_le_bytes());
        Self(fnv1a(&bytes))
    }
}

/// FNV-1a: stable across builds and platforms, which is all these digests need (they detect
/// change; nothing depends on them being hard to forge, since whoever can forge them can
/// write the files themselves).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = Fnv::default();
    h.write(bytes);
    h.0
}

/// FNV-1a fed piece by piece, with a separator after each piece so that pieces cannot run
/// into each other.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(pub(crate) u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    /// Adds bytes.
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        self.0 = bytes.iter().fold(self.0, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    }

    /// Adds one piece and a separator.
    pub(crate) fn piece(&mut self, bytes: &[u8]) -> &mut Self {
        self.write(bytes);
        self.write(&[0xff]);
        self
    }
}

/// A short identity of an issuer certificate for the cache: the first 128 bits of its SHA-256
/// fingerprint, in hex without separators (ten thousand copies of the full colon-separated form
/// made a megabyte of the state file).
pub fn issuer_id(issuer: &pki::Certificate) -> String {
    issuer
        .info()
        .sha256_fingerprint
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(32)
        .collect()
}

/// What a target was last proven to serve.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct TargetMark {
    /// The target's version (see [`layout::version_id`]).
    pub version: String,
    /// The stamps of the target's directories when it was verified (see
    /// [`layout::dir_stamps`]): while they are unchanged, the links and versions in
    /// them are known to be ours and are not read again.
    #[serde(default)]
    pub dirs: Option<Vec<Stamp>>,
}

/// The facts the planner needs about a store version, kept so that a run over thousands of
/// certificates with nothing due reads no certificate file. A version file never changes under
/// its id, so the facts stay true until the id does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct CachedCert {
    /// The store version these facts describe.
    pub version: String,
    /// The issuer certificate `facts.issuer_current` was computed against (see [`issuer_id`]).
    pub issuer: Option<String>,
    /// The version file's stamp when these facts were read: a file replaced, truncated or
    /// deleted since is read again.
    #[serde(default)]
    pub file: Option<Stamp>,
    /// What the planner needs.
    pub facts: Current,
}

impl CachedCert {
    /// Facts read from a version file now.
    pub(crate) fn new(
        version: String,
        issuer: Option<String>,
        file: Option<Stamp>,
        facts: Current,
    ) -> Self {
        Self {
            version,
            issuer,
            file,
            facts,
        }
    }
}

/// All certificates' history, what each target was last proven to serve, and cached facts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunState {
    /// By certificate name.
    pub certificates: BTreeMap<String, CertState>,
    /// By target (its versioned directory): the version last verified as served. A target
    /// whose `current` is ahead of this (a run killed between switch and proof) is deployed
    /// again.
    #[serde(default)]
    pub verified: BTreeMap<String, TargetMark>,
    /// By certificate name: facts about its current store version. (Files written before
    /// this layout kept them flat under `observed`, which is ignored: the cache is read again
    /// from the store once.)
    #[serde(default)]
    pub cache: BTreeMap<String, CachedCert>,
    /// By serial (hex): certificates the backend issued that are not in the store yet. Each
    /// is recorded, and the state saved, as soon as the backend's answer arrives, and dropped
    /// once the store holds it: what stays was lost between the two (a crash, a full disk) and
    /// is valid for nothing; [`RunState::orphans`] lists them to be revoked.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub issued: BTreeMap<String, IssuedRecord>,
    /// By backend name: its current issuer and since when runs have seen it, the start of an
    /// issuer rollover's spread.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub issuers: BTreeMap<String, IssuerSeen>,
}

/// A backend's current issuer, as runs saw it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuerSeen {
    /// The issuer (see [`issuer_id`]).
    pub id: String,
    /// The first run that saw it (Unix time).
    pub since: i64,
}

impl RunState {
    /// Records each backend's current issuer and returns, by backend, since when it has been
    /// seen: the time of this run for an issuer not seen before. The first issuer a state
    /// records has no start (it is no rollover).
    pub fn see_issuers(
        &mut self,
        issuers: &std::collections::HashMap<String, pki::Certificate>,
        now: time::OffsetDateTime,
    ) -> std::collections::HashMap<String, time::OffsetDateTime> {
        let mut since = std::collections::HashMap::new();
        for (backend, issuer) in issuers {
            let id = issuer_id(issuer);
            match self.issuers.get(backend) {
                Some(seen) if seen.id == id => {
                    if let Ok(t) = time::OffsetDateTime::from_unix_timestamp(seen.since) {
                        since.insert(backend.clone(), t);
                    }
                }
                known => {
                    if known.is_some() {
                        since.insert(backend.clone(), now);
                    }
                    self.issuers.insert(
                        backend.clone(),
                        IssuerSeen {
                            id,
                            since: now.unix_timestamp(),
                        },
                    );
                }
            }
        }
        since
    }
}

/// A certificate the backend issued, until the store holds it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuedRecord {
    /// The managed certificate it was issued for.
    pub name: String,
    /// Its expiry (Unix time).
    pub not_after: i64,
    /// When its issue was recorded (Unix time).
    pub recorded: i64,
}

impl RunState {
    /// The version last verified on `target`.
    pub fn verified(&self, target: &TargetConfig) -> Option<&str> {
        self.mark(target).map(|m| m.version.as_str())
    }

    /// The full record of what `target` was proven to serve.
    pub fn mark(&self, target: &TargetConfig) -> Option<&TargetMark> {
        self.verified.get(target.key())
    }

    /// Records what `target` was proven to serve, with its directories' stamps as they are now.
    pub fn set_verified(&mut self, target: &TargetConfig, version: &str) {
        self.verified.insert(
            target.key().to_owned(),
            TargetMark {
                version: version.to_owned(),
                dirs: layout::dir_stamps(target),
            },
        );
    }

    /// Forgets what `target` was proven to serve: its next run checks and deploys it again.
    pub fn clear_verified(&mut self, target: &TargetConfig) {
        self.verified.remove(target.key());
    }

    /// Forgets what the state holds of certificates and targets `config` no longer has (so
    /// that the file does not grow with every rename).
    pub fn forget_unconfigured(&mut self, config: &crate::config::Config) {
        let names: std::collections::HashSet<&str> = config
            .certificates
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        let targets: std::collections::HashSet<&str> = config
            .certificates
            .iter()
            .flat_map(|c| &c.targets)
            .map(TargetConfig::key)
            .collect();
        self.certificates.retain(|n, _| names.contains(n.as_str()));
        self.cache.retain(|n, _| names.contains(n.as_str()));
        self.verified.retain(|k, _| targets.contains(k.as_str()));
    }

    /// Records that the backend issued `cert` for `name`, before the store has it.
    pub fn record_issued(&mut self, name: &str, cert: &pki::Certificate, now: i64) {
        let info = cert.info();
        self.issued.insert(
            info.serial.to_hex(),
            IssuedRecord {
                name: name.to_owned(),
                not_after: info.not_after.unix_timestamp(),
                recorded: now,
            },
        );
    }

    /// The store holds `cert` now: it is no orphan.
    pub fn stored(&mut self, cert: &pki::Certificate) {
        self.issued.remove(&cert.info().serial.to_hex());
    }

    /// Issued certificates that never reached the store and have not expired at `now`, by
    /// serial (hex); expired ones are forgotten.
    pub fn orphans(&mut self, now: i64) -> Vec<(String, IssuedRecord)> {
        self.issued.retain(|_, r| r.not_after > now);
        self.issued
            .iter()
            .map(|(serial, r)| (serial.clone(), r.clone()))
            .collect()
    }

    /// Takes new stamps for a target whose mark still holds (after pruning changed its
    /// directories).
    pub fn restamp(&mut self, target: &TargetConfig) {
        if let Some(mark) = self.verified.get_mut(target.key()) {
            mark.dirs = layout::dir_stamps(target);
        }
    }
}

/// The state file of a state directory.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

impl RunState {
    /// Loads the state. A missing file is an empty state (a first run); an unreadable one is
    /// an empty state too, with the reason: the run still works from what is on disk (every
    /// target is checked again, rollbacks fall back to the version found in place), but the
    /// caller should say so.
    pub fn load(state_dir: &Path) -> (Self, Option<String>) {
        let file = path(state_dir);
        let bytes = match fsio::read_private(&file, MAX_STATE) {
            Ok((b, _)) => b,
            Err(pki::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return (Self::default(), None);
            }
            Err(e) => return (Self::default(), Some(e.to_string())),
        };
        match serde_json::from_slice(&bytes) {
            Ok(state) => (state, None),
            Err(e) => (
                Self::default(),
                Some(format!("{}: not a state file ({e})", file.display())),
            ),
        }
    }

    /// Saves the state atomically.
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        // Compact: with ten thousand certificates the state runs to megabytes.
        let bytes = serde_json::to_vec(self)
            .map_err(|e| Error::io(IoOp::Write, path(state_dir))(std::io::Error::other(e)))?;
        let dir = Dir::create(state_dir, 0o700, Owners::running())?;
        let mut staged = dir.stage(FILE, &bytes, FileMode::PRIVATE)?;
        staged.sync()?;
        staged.commit()?;
        dir.sync()?;
        Ok(())
    }
}
