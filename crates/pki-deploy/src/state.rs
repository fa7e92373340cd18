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

/// All certificates' history, and what each target was last proven to serve.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    /// By certificate name.
    pub certificates: BTreeMap<String, CertState>,
    /// By target (its versioned directory): the version last verified as served. A target
    /// whose `current` is ahead of this (a run killed between switch and proof) is deployed
    /// again.
    #[serde(default)]
    pub verified: BTreeMap<String, String>,
}

impl RunState {
    /// The version last verified on `target`.
    pub fn verified(&self, target: &crate::config::TargetConfig) -> Option<&str> {
        self.verified
            .get(&crate::target::versions_dir(target).display().to_string())
            .map(String::as_str)
    }

    /// Records what `target` was proven to serve.
    pub fn set_verified(&mut self, target: &crate::config::TargetConfig, version: &str) {
        self.verified.insert(
            crate::target::versions_dir(target).display().to_string(),
            version.to_owned(),
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
        let bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        fsio::write_atomic(&path(state_dir), &bytes, FileMode::PRIVATE)?;
        Ok(())
    }
}
