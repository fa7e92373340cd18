//! What a run did: per certificate and per target, typed, with the errors kept as errors so
//! that a caller can tell a sealed Vault from a probe that saw the wrong certificate. The CLI
//! renders them through `Display` and `Serialize`.

use std::fmt;
use std::sync::Arc;

use pki::Certificate;
use pki::rotation::Decision;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use time::OffsetDateTime;

use crate::error::Error;
use crate::service::deploy::Restored;

/// What happened to a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CertAction {
    /// Current and deployed everywhere: nothing to do.
    Kept,
    /// A new certificate was issued and deployed.
    Issued,
    /// Not reissued, but deployed again to a target that needed it.
    Redeployed,
    /// Issuing, storing or a target failed.
    Failed,
    /// A dry run: [`CertOutcome::decision`] says what would be done.
    Planned,
}

impl CertAction {
    /// The name as in logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kept => "kept",
            Self::Issued => "issued",
            Self::Redeployed => "redeployed",
            Self::Failed => "failed",
            Self::Planned => "planned",
        }
    }
}

impl fmt::Display for CertAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What happened to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TargetAction {
    /// It serves the store's version already.
    InSync,
    /// The version was deployed and proven.
    Deployed,
    /// The deployment failed (and was rolled back where possible).
    Failed,
    /// A dry run: it would be deployed.
    Stale,
}

impl TargetAction {
    /// The name as in logs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::InSync => "in-sync",
            Self::Deployed => "deployed",
            Self::Failed => "failed",
            Self::Stale => "stale",
        }
    }
}

impl fmt::Display for TargetAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the rollback after a failed deployment ended.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Rollback {
    /// The previous version is back.
    Restored(Arc<Restored>),
    /// It failed too: the target may serve nothing usable.
    Failed(Arc<Error>),
}

impl fmt::Display for Rollback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Restored(r) => r.fmt(f),
            Self::Failed(e) => write!(f, "FAILED: {e}"),
        }
    }
}

/// What happened to one target.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TargetResult {
    /// Its service and first path.
    pub label: String,
    /// What was done.
    pub action: TargetAction,
    /// Why it was (re)deployed.
    pub detail: Option<String>,
    /// The failure, if any.
    pub error: Option<Arc<Error>>,
    /// The rollback after a failure.
    pub rollback: Option<Rollback>,
}

impl TargetResult {
    /// A result without failure.
    pub(crate) fn new(label: String, action: TargetAction, detail: Option<String>) -> Self {
        Self {
            label,
            action,
            detail,
            error: None,
            rollback: None,
        }
    }

    /// A failure.
    pub(crate) fn failed(label: String, detail: Option<String>, error: Error) -> Self {
        Self {
            error: Some(Arc::new(error)),
            ..Self::new(label, TargetAction::Failed, detail)
        }
    }
}

/// What happened to one certificate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CertOutcome {
    /// Its name.
    pub name: String,
    /// The name of the backend that signs it.
    pub backend: String,
    /// The planner's decision (none when the run stopped before planning).
    pub decision: Option<Decision>,
    /// What was done.
    pub action: CertAction,
    /// The store's current certificate after the run.
    pub current: Option<Certificate>,
    /// The store's current version after the run.
    pub version: Option<String>,
    /// An issuance or store failure.
    pub error: Option<Arc<Error>>,
    /// Per target.
    pub targets: Vec<TargetResult>,
}

impl CertOutcome {
    /// Whether the certificate ended the run current and served by every target.
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.targets.iter().all(|t| t.error.is_none())
    }

    /// The failure in one line.
    pub fn failure_text(&self) -> String {
        if let Some(e) = &self.error {
            return e.to_string();
        }
        self.targets
            .iter()
            .filter_map(|t| {
                t.error.as_ref().map(|e| {
                    let rb = t
                        .rollback
                        .as_ref()
                        .map(|r| format!("; rollback: {r}"))
                        .unwrap_or_default();
                    format!("{}: {e}{rb}", t.label)
                })
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// The outcome of a run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunSummary {
    /// When it started.
    pub started: OffsetDateTime,
    /// When it ended.
    pub finished: OffsetDateTime,
    /// How long it took (monotonic clock).
    pub elapsed: std::time::Duration,
    /// Whether it only planned.
    pub dry_run: bool,
    /// Per certificate, in config order.
    pub certificates: Vec<CertOutcome>,
    /// Reports that could not be delivered.
    pub report_errors: Vec<Arc<Error>>,
    /// Why the run stopped before handling its certificates (the backend unreachable, the CA
    /// key locked): every certificate is then reported failed with this reason.
    pub error: Option<Arc<Error>>,
    /// Per `[[trust]]` file, in config order.
    pub trust: Vec<super::trust::TrustOutcome>,
}

impl RunSummary {
    /// Whether the run stopped early or any certificate failed.
    pub fn failed(&self) -> bool {
        self.error.is_some()
            || self.certificates.iter().any(|c| !c.ok())
            || self
                .trust
                .iter()
                .any(|t| t.action == super::trust::TrustAction::Failed)
    }

    /// How many certificates ended with `action`.
    pub fn count(&self, action: CertAction) -> usize {
        self.certificates
            .iter()
            .filter(|c| c.action == action)
            .count()
    }
}

/// An error as its message, for JSON.
fn message<E: fmt::Display>(e: &Option<E>) -> Option<String> {
    e.as_ref().map(ToString::to_string)
}

impl Serialize for TargetResult {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("target", &self.label)?;
        m.serialize_entry("action", &self.action)?;
        m.serialize_entry("detail", &self.detail)?;
        m.serialize_entry("error", &message(&self.error))?;
        m.serialize_entry("rollback", &message(&self.rollback))?;
        m.end()
    }
}

/// RFC 3339, the JSON form of every time.
fn rfc3339(t: OffsetDateTime) -> String {
    pki::error::Rfc3339(t).to_string()
}

impl Serialize for CertOutcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Current<'a> {
            serial: &'a pki::Serial,
            not_after: String,
            sha256_fingerprint: &'a str,
        }
        let current = self.current.as_ref().map(|c| Current {
            serial: &c.info().serial,
            not_after: rfc3339(c.info().not_after),
            sha256_fingerprint: &c.info().sha256_fingerprint,
        });
        let mut m = s.serialize_map(Some(8))?;
        m.serialize_entry("name", &self.name)?;
        m.serialize_entry("backend", &self.backend)?;
        m.serialize_entry("decision", &self.decision)?;
        m.serialize_entry("action", &self.action)?;
        m.serialize_entry("ok", &self.ok())?;
        m.serialize_entry("error", &message(&self.error))?;
        m.serialize_entry("current", &current)?;
        m.serialize_entry("targets", &self.targets)?;
        m.end()
    }
}

impl Serialize for RunSummary {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let report_errors: Vec<String> = self.report_errors.iter().map(|e| e.to_string()).collect();
        let mut m = s.serialize_map(Some(7))?;
        m.serialize_entry("dry_run", &self.dry_run)?;
        m.serialize_entry("started", &rfc3339(self.started))?;
        m.serialize_entry("finished", &rfc3339(self.finished))?;
        m.serialize_entry("ok", &!self.failed())?;
        m.serialize_entry("certificates", &self.certificates)?;
        m.serialize_entry("trust", &self.trust)?;
        m.serialize_entry("report_errors", &report_errors)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(targets: Vec<TargetResult>) -> CertOutcome {
        CertOutcome {
            name: "web".into(),
            backend: "default".into(),
            decision: Some(Decision::Keep {
                renew_after: OffsetDateTime::UNIX_EPOCH,
            }),
            action: CertAction::Kept,
            current: None,
            version: None,
            error: None,
            targets,
        }
    }

    #[test]
    fn a_failed_target_fails_the_certificate_and_names_the_rollback() {
        let ok = TargetResult::new("files /a".into(), TargetAction::Deployed, None);
        let mut bad = TargetResult::failed(
            "nginx /b".into(),
            None,
            Error::Probe {
                address: "127.0.0.1:1".into(),
                reason: "refused".into(),
            },
        );
        bad.rollback = Some(Rollback::Restored(Arc::new(Restored::Files)));
        let c = outcome(vec![ok.clone()]);
        assert!(c.ok());
        let c = outcome(vec![ok, bad]);
        assert!(!c.ok());
        assert_eq!(
            c.failure_text(),
            "nginx /b: probe of 127.0.0.1:1 failed: refused; rollback: previous files restored"
        );
    }

    #[test]
    fn json_keeps_the_shape_of_earlier_versions() {
        let c = outcome(vec![TargetResult::new(
            "files /a".into(),
            TargetAction::InSync,
            None,
        )]);
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["action"], "kept");
        assert_eq!(v["decision"]["action"], "keep");
        assert_eq!(v["targets"][0]["action"], "in-sync");
        assert_eq!(v["targets"][0]["target"], "files /a");
        assert!(v["error"].is_null() && v["ok"] == true);
    }
}
