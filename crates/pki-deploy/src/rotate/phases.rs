//! The phases of a run, each over the same work items (one per certificate, holding one per
//! target): `issue_due` issues and stores what is due, `publish` makes the new versions
//! current in the store, `prepare_targets` writes every target's new version beside the one
//! in service, `activate_targets` switches each in, loads and proves it (rolling back on
//! failure), and `finish` collects the outcomes and prunes. A failing certificate or target
//! never stops the others: its work item carries the error to the end.
//!
//! Large runs defer every fsync and make each phase durable with one `syncfs` per file system
//! before the next phase publishes any of it (`Batch`).

use std::sync::Arc;

use pki::rotation::Decision;
use pki::{Certificate, IssuedCertificate, clock};
use serde_json::json;

use super::backend::{Signer, Signers};
use super::batch::Batch;
use super::plan::Planned;
use super::summary::{CertAction, CertOutcome, Rollback, TargetAction, TargetResult};
use crate::config::CertificateConfig;
use crate::error::{Error, Result};
use crate::log::{Event, Logger};
use crate::service::TargetConfig;
use crate::service::deploy::{self, Outcome, Preparation, Prepared};
use crate::service::layout::{self, Freshness};
use crate::state::RunState;
use crate::store::Store;

/// One certificate in flight through the phases.
#[derive(Debug)]
pub(crate) struct Work<'a> {
    /// The configured certificate.
    pub cert: &'a CertificateConfig,
    /// The planner's decision.
    pub decision: Decision,
    /// What happened so far.
    pub action: CertAction,
    /// The store version the targets get: the current one, or the one issued now.
    pub version: Option<String>,
    /// The store's current version (moves to the new one once published).
    pub published: Option<String>,
    /// The current certificate (the new one once issued).
    pub current: Option<Certificate>,
    /// The certificate, chain and key the targets are rendered from, once loaded.
    pub material: Option<IssuedCertificate>,
    /// Issued in this run.
    pub issued: bool,
    /// Why the certificate failed (issuing or storing).
    pub error: Option<Arc<Error>>,
    /// Its targets.
    pub targets: Vec<TargetWork<'a>>,
}

/// One target in flight.
#[derive(Debug)]
pub(crate) struct TargetWork<'a> {
    /// The configured target.
    pub target: &'a TargetConfig,
    /// Whether it serves the store's version (as planned).
    pub freshness: Freshness,
    /// The version written beside the one in service, waiting to be activated.
    pub prepared: Option<(Prepared, String)>,
    /// How it ended.
    pub result: Option<TargetResult>,
}

impl<'a> Work<'a> {
    /// The work of a planned certificate.
    pub(crate) fn from_plan(p: Planned<'a>) -> Self {
        Self {
            cert: p.cert,
            decision: p.decision,
            action: CertAction::Kept,
            version: p.version.clone(),
            published: p.version,
            current: p.current,
            material: None,
            issued: false,
            error: None,
            targets: p
                .cert
                .targets
                .iter()
                .zip(p.targets)
                .map(|(target, freshness)| TargetWork {
                    target,
                    freshness,
                    prepared: None,
                    result: None,
                })
                .collect(),
        }
    }

    fn fail(&mut self, error: Error) {
        self.action = CertAction::Failed;
        self.error = Some(Arc::new(error));
        self.material = None;
    }

    /// How many files and directories this certificate will write.
    pub(crate) fn busy(&self) -> usize {
        if matches!(self.decision, Decision::Issue { .. }) {
            self.targets.len() + 1
        } else {
            self.targets
                .iter()
                .filter(|t| t.freshness != Freshness::InSync)
                .count()
        }
    }
}

/// What every phase works with: the store (writing with the batch's durability), the batch
/// and the log.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Phase<'a> {
    /// The store.
    pub store: &'a Store,
    /// How writes are made durable.
    pub batch: &'a Batch,
    /// Where log lines go.
    pub log: &'a Logger,
    /// A forced run: everything is issued now, an ACME backoff notwithstanding.
    pub force: bool,
}

/// Phase 1: issues every due certificate and adds it to the store. Certificates are issued
/// as batches, one per backend and key algorithm (Vault answers several at once, the offline
/// CA records a batch in few commits).
pub(crate) async fn issue_due(
    work: &mut [Work<'_>],
    signers: &Signers,
    state: &mut RunState,
    phase: &Phase<'_>,
) {
    let log = phase.log;
    let mut due = Vec::new();
    for (i, w) in work.iter_mut().enumerate() {
        let Decision::Issue { reason, detail } = &w.decision else {
            continue;
        };
        if *reason == pki::rotation::Reason::TrustChanged {
            refresh_trust(w, signers.trust.get(&w.cert.backend), phase);
            continue;
        }
        log.info(
            Event::of(
                "renew",
                &w.cert.name,
                format!("issuing a new certificate: {reason} ({detail})"),
            )
            .with("reason", json!(reason.name())),
        );
        due.push(i);
    }
    let mut groups: Vec<(&str, pki::KeyAlgorithm)> = Vec::new();
    for &i in &due {
        let group = (work[i].cert.backend.as_str(), work[i].cert.key_algorithm);
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    for (backend, algorithm) in groups {
        let members: Vec<usize> = due
            .iter()
            .copied()
            .filter(|&i| {
                (work[i].cert.backend.as_str(), work[i].cert.key_algorithm) == (backend, algorithm)
            })
            .collect();
        let Some(authority) = authority_for(signers.get(backend), &members, work, phase) else {
            continue;
        };
        let acme = matches!(authority, pki::Authority::Acme(_));
        let members = if acme {
            held_back(members, work, state, phase)
        } else {
            members
        };
        let requests: Vec<_> = members
            .iter()
            .map(|&i| work[i].cert.request.clone())
            .collect();
        let mut results: Vec<Option<pki::Result<IssuedCertificate>>> =
            std::iter::repeat_with(|| None)
                .take(members.len())
                .collect();
        let batch = pki::authority::Batch::new(&requests, algorithm);
        authority
            .issue_many(&batch, clock::now(), |k, result| {
                results[k] = Some(result);
                std::ops::ControlFlow::Continue(())
            })
            .await;
        let answered = members.iter().zip(&results).filter_map(|(&i, r)| match r {
            Some(Ok(issued)) => Some((work[i].cert.name.as_str(), &issued.certificate)),
            _ => None,
        });
        record_issued(answered, state, phase);
        if acme {
            record_orders(&members, &results, work, state);
        }
        phase.batch.watch(phase.store.root());
        for (&i, result) in members.iter().zip(results) {
            let result = result.unwrap_or(Err(pki::Error::InvalidRequest("not issued")));
            let name = work[i].cert.name.as_str();
            let trust = signers.trust.get(backend);
            let stored = result
                .map(|issued| with_trust(issued, trust))
                .map_err(Error::from)
                .and_then(|issued| store_issued(name, issued, state, phase));
            issued(&mut work[i], stored, phase);
            phase.batch.kick();
        }
    }
}

/// What the backend issued, with the backend's trust bundle when the answer carries none
/// (Vault's).
fn with_trust(
    mut issued: IssuedCertificate,
    trust: Option<&Vec<Certificate>>,
) -> IssuedCertificate {
    if let Some(bundle) = trust.filter(|_| issued.trust.is_empty()) {
        issued.trust.clone_from(bundle);
    }
    issued
}

/// Adds what the backend issued to the store; an answer that cannot be stored is logged as an
/// orphan, to revoke.
fn store_issued(
    name: &str,
    issued: IssuedCertificate,
    state: &mut RunState,
    phase: &Phase<'_>,
) -> Result<(String, IssuedCertificate)> {
    let id = phase
        .store
        .add(name, &issued, clock::now_precise())
        .inspect_err(|_| {
            let serial = issued.certificate.info().serial.to_hex();
            phase.log.warn(
                Event::of(
                    "orphaned",
                    name,
                    format!(
                        "serial {serial} was issued but not stored; \
                         `pki rotate --orphans` lists it, to be revoked"
                    ),
                )
                .with("serial", json!(serial)),
            );
        })?;
    state.stored(&issued.certificate);
    Ok((id, issued))
}

/// A certificate kept with another trust bundle than its backend's: the same certificate and
/// key are stored again, with the backend's bundle, as a new version that every target gets
/// (its `ca` files change; the certificate served does not).
fn refresh_trust(w: &mut Work<'_>, bundle: Option<&Vec<Certificate>>, phase: &Phase<'_>) {
    let name = w.cert.name.as_str();
    let (Some(bundle), Some(version)) = (bundle, w.version.clone()) else {
        w.fail(Error::NoAuthority);
        return;
    };
    phase.log.info(Event::of(
        "trust-changed",
        name,
        format!(
            "the backend's trust bundle changed ({} CA(s)): deploying it with the certificate in place",
            bundle.len()
        ),
    ));
    phase.batch.watch(phase.store.root());
    let stored = phase.store.load(name, &version).and_then(|mut material| {
        material.trust.clone_from(bundle);
        let id = phase.store.add(name, &material, clock::now_precise())?;
        Ok((id, material))
    });
    phase.batch.kick();
    match stored {
        Ok((id, material)) => {
            w.current = Some(material.certificate.clone());
            w.version = Some(id);
            w.material = Some(material);
            w.issued = true;
        }
        Err(e) => {
            phase
                .log
                .error(Event::of("store-failed", name, e.to_string()));
            w.fail(e);
        }
    }
}

/// Each ACME order's outcome, for the backoff.
fn record_orders(
    members: &[usize],
    results: &[Option<pki::Result<IssuedCertificate>>],
    work: &[Work<'_>],
    state: &mut RunState,
) {
    let now = clock::now();
    for (&i, r) in members.iter().zip(results) {
        let failure = match r {
            Some(Ok(_)) => None,
            Some(Err(e)) => Some(e.to_string()),
            None => Some("not ordered".to_owned()),
        };
        super::backoff::record(state, &work[i].cert.name, failure, now);
    }
}

/// The members an ACME server may be asked for now: those still waiting after failed orders
/// fail with the wait (a forced run orders them anyway).
fn held_back(
    members: Vec<usize>,
    work: &mut [Work<'_>],
    state: &RunState,
    phase: &Phase<'_>,
) -> Vec<usize> {
    let now = clock::now();
    members
        .into_iter()
        .filter(|&i| {
            let w = &mut work[i];
            match super::backoff::waiting(state, &w.cert.name, now) {
                Some(e) if !phase.force => {
                    phase
                        .log
                        .error(Event::of("issue-failed", &w.cert.name, e.to_string()));
                    w.fail(e);
                    false
                }
                _ => true,
            }
        })
        .collect()
}

/// The authority of a group's signer, or `None` with each of `members` failed: with the backend's
/// error when it is broken, else for want of an authority.
fn authority_for<'s>(
    signer: Option<&'s Signer>,
    members: &[usize],
    work: &mut [Work<'_>],
    phase: &Phase<'_>,
) -> Option<&'s pki::Authority> {
    match signer.map(|s| (&s.authority, &s.broken)) {
        Some((_, Some(broken))) => {
            for &i in members {
                let w = &mut work[i];
                phase
                    .log
                    .error(Event::of("issue-failed", &w.cert.name, broken.to_string()));
                w.action = CertAction::Failed;
                w.error = Some(broken.clone());
            }
            None
        }
        Some((Some(authority), None)) => Some(authority),
        _ => {
            for &i in members {
                issued(&mut work[i], Err(Error::NoAuthority), phase);
            }
            None
        }
    }
}

/// Writes down every serial a batch got before anything else is done with it: a run that
/// dies (or a store that fails) after the backend answered leaves it listed as an orphan.
fn record_issued<'c>(
    issued: impl Iterator<Item = (&'c str, &'c Certificate)>,
    state: &mut RunState,
    phase: &Phase<'_>,
) {
    let now = clock::now().unix_timestamp();
    let mut any = false;
    for (name, cert) in issued {
        state.record_issued(name, cert, now);
        any = true;
    }
    if any && let Err(e) = state.save(phase.store.state_dir()) {
        phase.log.warn(Event::run(
            "state-failed",
            format!("cannot record the serials just issued: {e}"),
        ));
    }
}

/// Records what issuing one certificate gave.
fn issued(w: &mut Work<'_>, result: Result<(String, IssuedCertificate)>, phase: &Phase<'_>) {
    let log = phase.log;
    let name = w.cert.name.as_str();
    match result {
        Ok((id, issued)) => {
            let info = issued.certificate.info();
            let message = format!(
                "issued serial {}, valid until {}",
                info.serial,
                pki::error::Rfc3339(info.not_after)
            );
            log.info(
                Event::of("issued", name, message)
                    .with("serial", json!(info.serial.to_hex()))
                    .with(
                        "not_after",
                        json!(pki::error::Rfc3339(info.not_after).to_string()),
                    )
                    .with("common_name", json!(info.common_name))
                    .with("version", json!(id)),
            );
            for warning in &issued.warnings {
                log.warn(Event::of("authority-warning", name, warning.clone()));
            }
            w.current = Some(issued.certificate.clone());
            w.action = CertAction::Issued;
            w.version = Some(id);
            w.material = Some(issued);
            w.issued = true;
        }
        Err(e) => {
            log.error(Event::of("issue-failed", name, e.to_string()));
            w.fail(e);
        }
    }
}

/// Phase 2: makes the new versions current in the store, once their files are durable.
pub(crate) fn publish(work: &mut [Work<'_>], phase: &Phase<'_>) {
    let Phase {
        store, batch, log, ..
    } = *phase;
    let written = batch.flush();
    for w in work.iter_mut().filter(|w| w.issued && w.error.is_none()) {
        let switched = written.clone().and_then(|()| {
            let id = w.version.as_deref().unwrap_or_default();
            store.switch(&w.cert.name, id).map_err(Arc::new)
        });
        match switched {
            Ok(()) => w.published.clone_from(&w.version),
            Err(e) => {
                log.error(Event::of("store-failed", &w.cert.name, e.to_string()));
                w.action = CertAction::Failed;
                w.error = Some(e);
                w.material = None;
                w.version = None;
                w.issued = false;
            }
        }
    }
    // The switches become durable with the targets' versions, in one flush before phase 4.
}

/// Phase 3: writes every target's new version beside the one in service (nothing a service
/// reads changes yet). Targets in sync are done.
pub(crate) fn prepare_targets(work: &mut [Work<'_>], state: &mut RunState, phase: &Phase<'_>) {
    let Phase {
        store, batch, log, ..
    } = *phase;
    for w in work.iter_mut() {
        let Some(version) = w.version.clone() else {
            continue;
        };
        if w.error.is_some() {
            continue;
        }
        let issued = w.issued;
        let new_version = if matches!(
            w.decision,
            Decision::Issue {
                reason: pki::rotation::Reason::TrustChanged,
                ..
            }
        ) {
            "trust bundle changed"
        } else {
            "new certificate"
        };
        for t in &mut w.targets {
            let label = t.target.label();
            let why = match (&t.freshness, issued) {
                (_, true) => new_version.to_owned(),
                (Freshness::Stale(why), false) => why.clone(),
                (_, false) => {
                    t.result = Some(TargetResult::new(label, TargetAction::InSync, None));
                    continue;
                }
            };
            if w.material.is_none() {
                match store.load(&w.cert.name, &version) {
                    Ok(m) => w.material = Some(m),
                    Err(e) => {
                        t.result = Some(TargetResult::failed(label, Some(why), e));
                        continue;
                    }
                }
            }
            let Some(material) = &w.material else {
                continue;
            };
            let mut how = Preparation::new(&version);
            how.verified = state.verified(t.target);
            how.durability = batch.durability;
            batch.watch(layout::versions_dir(t.target));
            let prepared = deploy::prepare(t.target, material, &how);
            batch.kick();
            match prepared {
                Ok(p) => {
                    if p.adopted() {
                        // The files found in place were being served: a rollback returns there.
                        state.set_verified(t.target, layout::ADOPTED);
                    }
                    t.prepared = Some((p, why));
                }
                Err(e) => {
                    log.error(
                        Event::of("deploy-failed", &w.cert.name, format!("{label}: {e}"))
                            .with("target", json!(label)),
                    );
                    t.result = Some(TargetResult::failed(label, Some(why), e));
                }
            }
        }
    }
}

/// Phase 4: once the prepared versions are durable, switches each in, has its service load
/// it and proves it is served; a failure rolls that target back.
pub(crate) async fn activate_targets(
    work: &mut [Work<'_>],
    state: &mut RunState,
    phase: &Phase<'_>,
) {
    let Phase { batch, log, .. } = *phase;
    // The new versions and the store's switches (phase 2) are on disk before any service
    // sees a new file.
    let written = batch.flush();
    for w in work.iter_mut() {
        let cert = w.cert;
        for t in &mut w.targets {
            let (Some((prepared, why)), Some(material)) = (t.prepared.take(), &w.material) else {
                continue;
            };
            let outcome = match &written {
                Err(e) => Outcome::Failed {
                    error: Error::Task {
                        what: "flushing the new versions",
                        reason: e.to_string(),
                    },
                    rollback: None,
                },
                Ok(()) => deploy::activate(cert, t.target, &prepared, material).await,
            };
            let activated = Activated {
                cert,
                target: t.target,
                prepared: &prepared,
                why,
            };
            t.result = Some(activated.record(outcome, state, log));
        }
    }
    // No flush of the switches themselves: each is one atomic rename of a durable version,
    // and one lost to a power cut is found by the next run (the directories no longer match
    // the state's stamps) and made again.
}

/// A target that went through activation.
struct Activated<'a> {
    cert: &'a CertificateConfig,
    target: &'a TargetConfig,
    prepared: &'a Prepared,
    /// Why it was deployed.
    why: String,
}

impl Activated<'_> {
    /// Logs the outcome and keeps the run state's record of what the target serves.
    fn record(self, outcome: Outcome, state: &mut RunState, log: &Logger) -> TargetResult {
        let Self {
            cert,
            target,
            prepared,
            why,
        } = self;
        let label = target.label();
        match outcome {
            Outcome::Deployed { served } => {
                state.set_verified(target, prepared.id());
                let proof = served
                    .map(|s| format!(", served: {}", s.describe()))
                    .unwrap_or_default();
                let message = format!("{label}: deployed ({why}){proof}");
                log.info(Event::of("deployed", &cert.name, message).with("target", json!(label)));
                TargetResult::new(label, TargetAction::Deployed, Some(why))
            }
            Outcome::Failed { error, rollback } => {
                if state.verified(target) == Some(prepared.id()) {
                    // A repair of the version marked as served failed: that mark no longer holds,
                    // and the next run must try again.
                    state.clear_verified(target);
                }
                let rollback = rollback.map(|r| match r {
                    Ok(restored) => Rollback::Restored(Arc::new(restored)),
                    Err(e) => Rollback::Failed(Arc::new(e)),
                });
                let shown = rollback
                    .as_ref()
                    .map(|r| format!("; rollback: {r}"))
                    .unwrap_or_default();
                let message = format!("{label}: {error}{shown}");
                log.error(
                    Event::of("deploy-failed", &cert.name, message).with("target", json!(label)),
                );
                let mut result = TargetResult::failed(label, Some(why), error);
                result.rollback = rollback;
                result
            }
        }
    }
}

/// Phase 5: the outcomes, in config order; old store versions and target versions are pruned
/// (every target, deployed now or not: a run killed earlier may have left temporary files
/// beside a target that is otherwise in sync).
pub(crate) fn finish(
    work: Vec<Work<'_>>,
    state: &mut RunState,
    phase: &Phase<'_>,
) -> Vec<CertOutcome> {
    let Phase { store, log, .. } = *phase;
    let outcomes = work
        .into_iter()
        .map(|w| {
            let name = w.cert.name.clone();
            if let Err(e) = store.prune(&name) {
                log.warn(Event::of("prune-failed", &name, e.to_string()));
            }
            let mut targets = Vec::with_capacity(w.targets.len());
            for t in w.targets {
                // A deployment pruned its target when it succeeded.
                let deployed = t
                    .result
                    .as_ref()
                    .is_some_and(|r| r.action == TargetAction::Deployed);
                let pruned = if deployed {
                    Ok(())
                } else {
                    layout::prune(t.target, state.verified(t.target))
                };
                if let Err(e) = pruned {
                    let label = t.target.label();
                    log.warn(Event::of("prune-failed", &name, format!("{label}: {e}")));
                }
                if let Some(result) = t.result {
                    if matches!(result.action, TargetAction::Deployed | TargetAction::InSync) {
                        // Pruning changed the directories the mark describes.
                        state.restamp(t.target);
                    }
                    targets.push(result);
                }
            }
            let action = match w.action {
                CertAction::Kept if targets.iter().any(|t| t.action == TargetAction::Deployed) => {
                    CertAction::Redeployed
                }
                other => other,
            };
            CertOutcome {
                name,
                backend: w.cert.backend.clone(),
                decision: Some(w.decision),
                action,
                current: w.current,
                version: w.published,
                error: w.error,
                targets,
            }
        })
        .collect();
    crate::state::forget_bases();
    outcomes
}

/// The outcome of a certificate that was only planned (a dry run).
pub(crate) fn planned_outcome(p: Planned<'_>) -> CertOutcome {
    let targets = p
        .cert
        .targets
        .iter()
        .zip(&p.targets)
        .map(|(t, s)| match s {
            Freshness::Stale(why) => {
                TargetResult::new(t.label(), TargetAction::Stale, Some(why.clone()))
            }
            _ => TargetResult::new(t.label(), TargetAction::InSync, None),
        })
        .collect();
    CertOutcome {
        name: p.cert.name.clone(),
        backend: p.cert.backend.clone(),
        decision: Some(p.decision),
        action: CertAction::Planned,
        current: p.current,
        version: p.version,
        error: None,
        targets,
    }
}

#[cfg(test)]
mod tests;
