//! What a run remembers for the next: per certificate, the last success and the last result,
//! so that reports carry "last success" across runs. Written atomically at the end of a run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pki::fsio::{self, FileMode};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// The state file's name in the state directory.
pub const FILE: &str = "state.json";

/// One certificate's history.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertState {
    /// Unix time of the last run that ended with this certificate served and current.
    pub last_success: Option<i64>,
    /// Unix time of the last run that looked at it.
    pub last_run: Option<i64>,
    /// `ok` or `failed`.
    pub last_result: Option<String>,
    /// The last error, if the last result was a failure.
    pub last_error: Option<String>,
}

/// What a target was last proven to serve.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TargetMark {
    /// The version.
    pub version: String,
    /// Modification time (ns) of the directory holding the target's files when it was
    /// verified: unchanged, the links in it are known to be ours and need no re-reading.
    #[serde(default)]
    pub dir_mtime: Option<i128>,
}

/// The facts the planner needs about a store version, kept so that a run over thousands of
/// certificates with nothing due reads no certificate file. A version file never changes under
/// its id, so the facts stay true until the id does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CachedCert {
    /// The store version these facts describe.
    pub version: String,
    /// Subject common name.
    pub common_name: Option<String>,
    /// Subject alternative names.
    pub names: Vec<pki::SubjectName>,
    /// Profile.
    pub profile: Option<pki::Profile>,
    /// Key algorithm.
    pub key_algorithm: Option<pki::KeyAlgorithm>,
    /// NotBefore, Unix seconds.
    pub not_before: i64,
    /// NotAfter, Unix seconds.
    pub not_after: i64,
    /// Whether the key matches.
    pub key_matches: bool,
    /// SHA-256 of the issuer certificate `issuer_current` was computed against.
    pub issuer: Option<String>,
    /// Whether that issuer signed it.
    pub issuer_current: Option<bool>,
}

/// All certificates' history, what each target was last proven to serve, and cached facts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    /// By certificate name.
    pub certificates: BTreeMap<String, CertState>,
    /// By target (its versioned directory): the version last verified as served. A target
    /// whose `current` is ahead of this (a run killed between switch and proof) is deployed
    /// again.
    #[serde(default)]
    pub verified: BTreeMap<String, TargetMark>,
    /// By certificate name: facts about its current store version.
    #[serde(default)]
    pub observed: BTreeMap<String, CachedCert>,
}

/// Modification time of a directory in nanoseconds.
pub fn dir_mtime(dir: &Path) -> Option<i128> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir)
        .ok()
        .map(|m| i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()))
}

impl RunState {
    /// The version last verified on `target`.
    pub fn verified(&self, target: &crate::config::TargetConfig) -> Option<&str> {
        self.mark(target).map(|m| m.version.as_str())
    }

    /// The full record of what `target` was proven to serve.
    pub fn mark(&self, target: &crate::config::TargetConfig) -> Option<&TargetMark> {
        self.verified
            .get(&crate::target::versions_dir(target).display().to_string())
    }

    /// Records what `target` was proven to serve, with its directory's current mtime.
    pub fn set_verified(&mut self, target: &crate::config::TargetConfig, version: &str) {
        self.verified.insert(
            crate::target::versions_dir(target).display().to_string(),
            TargetMark {
                version: version.to_owned(),
                dir_mtime: crate::target::files_dir(target).and_then(dir_mtime),
            },
        );
    }
}

/// The state file of a state directory.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE)
}

impl RunState {
    /// Loads the state; a missing or unreadable file is an empty state (it only feeds reports).
    pub fn load(state_dir: &Path) -> Self {
        fsio::read_limited(&path(state_dir), 64 << 20)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Saves the state atomically.
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        // Compact: with ten thousand certificates the state runs to megabytes.
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        fsio::write_atomic(&path(state_dir), &bytes, FileMode::PRIVATE)?;
        Ok(())
    }
}
