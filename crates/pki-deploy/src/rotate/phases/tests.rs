//! Each phase alone, on an offline CA and files targets in a temporary directory.

use std::path::{Path, PathBuf};

use pki::fsio::Durability;

use pki::authority::offline::{self, InitOptions, KeyProtection, OfflineCa};
use pki::{Authority, CertificateRequest, Profile, clock};

use super::*;
use crate::config::{Backend, Config, OfflineBackend};
use crate::exec::CommandSpec;
use crate::log::{Level, LogFormat};
use crate::rotate::backend::Signer;
use crate::rotate::plan::{self, PlanInput};
use crate::service::files::Files;
use crate::service::{Settings, TargetConfig};

struct Rig {
    dir: tempfile::TempDir,
    config: Config,
    issuers: std::collections::HashMap<String, Certificate>,
    trust: std::collections::HashMap<String, Vec<Certificate>>,
    issuer_since: std::collections::HashMap<String, time::OffsetDateTime>,
}

fn target(dir: &Path, reload: Option<&str>) -> TargetConfig {
    let mut files = Files::standard(dir);
    files.reload_command = reload.map(|r| CommandSpec::Shell(r.to_owned()));
    TargetConfig::new(files.into(), Settings::default()).unwrap()
}

/// An unencrypted CA and certificates `a` and `b`, each with one files target (`b` with this
/// reload command).
fn rig(reload_b: Option<&str>) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    offline::init(&ca, &InitOptions::new(KeyProtection::None), clock::now()).unwrap();
    let mut config = Config::new(
        dir.path().join("state"),
        "test-host",
        Backend::Offline(OfflineBackend::new(ca)),
    );
    for (name, reload) in [("a", None), ("b", reload_b)] {
        let request = CertificateRequest::new(
            &format!("{name}.example.internal"),
            [],
            Profile::Server,
            time::Duration::days(30),
        )
        .unwrap();
        let mut c = CertificateConfig::new(name, &request).unwrap();
        c.targets
            .push(target(&dir.path().join("out").join(name), reload));
        config.certificates.push(c);
    }
    Rig {
        dir,
        config,
        issuers: Default::default(),
        trust: Default::default(),
        issuer_since: Default::default(),
    }
}

impl Rig {
    /// The config's one backend, opened and unlocked.
    fn signers(&self) -> Signers {
        let Some(Backend::Offline(b)) = self.config.backend(crate::config::DEFAULT_BACKEND) else {
            unreachable!()
        };
        let mut ca = OfflineCa::open(&b.ca_dir).unwrap();
        ca.unlock(None).unwrap();
        let mut signers = Signers::default();
        signers.all.push(Signer {
            name: crate::config::DEFAULT_BACKEND.to_owned(),
            authority: Some(Authority::Offline(ca)),
            broken: None,
        });
        signers
    }

    fn store(&self) -> Store {
        Store::create(&self.config.state_dir).unwrap()
    }

    /// The work a run plans (every certificate reissued when `input.force`).
    fn work_with<'a>(&'a self, input: &PlanInput<'_>) -> Vec<Work<'a>> {
        let certs: Vec<_> = self.config.certificates.iter().collect();
        plan::plan(input, &certs)
            .into_iter()
            .map(Work::from_plan)
            .collect()
    }

    fn input<'a>(&'a self, store: &'a Store, state: &'a RunState) -> PlanInput<'a> {
        PlanInput {
            config: &self.config,
            store,
            state,
            issuers: &self.issuers,
            trust: &self.trust,
            issuer_since: &self.issuer_since,
            force: false,
            now: clock::now(),
        }
    }

    /// The work a run plans.
    fn work<'a>(&'a self, store: &Store, state: &RunState) -> Vec<Work<'a>> {
        self.work_with(&self.input(store, state))
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join("out").join(name)
    }
}

fn log() -> Logger {
    Logger::new(LogFormat::Human, Level::Error)
}

fn phase<'a>(store: &'a Store, log: &'a Logger) -> Phase<'a> {
    // Tests run a handful of certificates: every write is synced as it is made.
    static NOW: std::sync::LazyLock<Batch> =
        std::sync::LazyLock::new(|| Batch::new(Durability::Immediate));
    Phase {
        store,
        batch: &NOW,
        log,
        force: false,
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn issue_due_issues_missing_certificates_into_the_store_without_publishing() {
    let r = rig(None);
    let (store, state, log) = (r.store(), RunState::default(), log());
    let phase = phase(&store, &log);
    let mut work = r.work(&store, &state);
    let mut recorded = RunState::default();
    rt().block_on(issue_due(&mut work, &r.signers(), &mut recorded, &phase));
    // Every serial was recorded on its way, and dropped once the store held it.
    assert!(recorded.issued.is_empty(), "{:?}", recorded.issued);
    for w in &work {
        assert_eq!(w.action, CertAction::Issued);
        assert!(w.issued && w.material.is_some() && w.version.is_some());
        // Added, not yet current.
        assert_eq!(store.current(&w.cert.name), None);
        assert!(
            store
                .version_file(&w.cert.name, w.version.as_deref().unwrap())
                .is_file()
        );
    }
}

#[test]
fn issue_due_without_an_authority_fails_each_certificate_and_goes_on() {
    let r = rig(None);
    let (store, state, log) = (r.store(), RunState::default(), log());
    let phase = phase(&store, &log);
    let mut work = r.work(&store, &state);
    let none = Signers::default();
    rt().block_on(issue_due(
        &mut work,
        &none,
        &mut RunState::default(),
        &phase,
    ));
    assert!(work.iter().all(|w| w.action == CertAction::Failed
        && matches!(w.error.as_deref(), Some(Error::NoAuthority))));
}

#[test]
fn issue_due_fails_only_the_certificates_of_a_broken_backend() {
    let mut r = rig(None);
    r.config.certificates[1].backend = "public".to_owned();
    let (store, state, log) = (r.store(), RunState::default(), log());
    let phase = phase(&store, &log);
    let mut work = r.work(&store, &state);
    let mut signers = r.signers();
    signers.all.push(Signer {
        name: "public".to_owned(),
        authority: None,
        broken: Some(Arc::new(Error::Task {
            what: "the test",
            reason: "the ACME server is down".to_owned(),
        })),
    });
    rt().block_on(issue_due(
        &mut work,
        &signers,
        &mut RunState::default(),
        &phase,
    ));
    assert_eq!(work[0].action, CertAction::Issued);
    assert_eq!(work[1].action, CertAction::Failed);
    let error = work[1].error.as_ref().unwrap().to_string();
    assert!(error.contains("ACME server is down"), "{error}");
}

#[test]
fn publish_makes_the_new_versions_current() {
    let r = rig(None);
    let (store, state, log) = (r.store(), RunState::default(), log());
    let phase = phase(&store, &log);
    let mut work = r.work(&store, &state);
    rt().block_on(issue_due(
        &mut work,
        &r.signers(),
        &mut RunState::default(),
        &phase,
    ));
    publish(&mut work, &phase);
    for w in &work {
        assert_eq!(store.current(&w.cert.name), w.version);
        assert_eq!(w.published, w.version);
    }
}

#[test]
fn prepare_writes_beside_and_activate_switches_in_and_records_it() {
    let r = rig(None);
    let (store, mut state, log) = (r.store(), RunState::default(), log());
    let phase = phase(&store, &log);
    let mut work = r.work(&store, &state);
    rt().block_on(issue_due(
        &mut work,
        &r.signers(),
        &mut RunState::default(),
        &phase,
    ));
    publish(&mut work, &phase);
    prepare_targets(&mut work, &mut state, &phase);
    // Written beside; the configured path is untouched until activation.
    assert!(layout::versions_dir(work[0].targets[0].target).is_dir());
    assert!(!r.out("a").join("cert.pem").exists());
    rt().block_on(activate_targets(&mut work, &mut state, &phase));
    let cert = r.out("a").join("cert.pem");
    assert!(
        std::fs::symlink_metadata(&cert)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let served = Certificate::from_pem(&std::fs::read(&cert).unwrap(), "a").unwrap();
    assert_eq!(
        Some(served.der()),
        work[0].current.as_ref().map(Certificate::der)
    );
    let t = &work[0].targets[0];
    assert_eq!(
        t.result.as_ref().map(|r| r.action),
        Some(TargetAction::Deployed)
    );
    assert!(state.verified(t.target).is_some());
}

#[test]
fn a_failing_target_fails_its_certificate_only() {
    let r = rig(Some("exit 3"));
    let (store, mut state, log) = (r.store(), RunState::default(), log());
    let phase = phase(&store, &log);
    let mut work = r.work(&store, &state);
    rt().block_on(issue_due(
        &mut work,
        &r.signers(),
        &mut RunState::default(),
        &phase,
    ));
    publish(&mut work, &phase);
    prepare_targets(&mut work, &mut state, &phase);
    rt().block_on(activate_targets(&mut work, &mut state, &phase));
    let outcomes = finish(work, &mut state, &phase);
    assert!(outcomes[0].ok(), "{}", outcomes[0].failure_text());
    assert!(!outcomes[1].ok());
    let failed = &outcomes[1].targets[0];
    assert_eq!(failed.action, TargetAction::Failed);
    assert!(matches!(
        failed.error.as_deref(),
        Some(Error::Command {
            outcome: crate::error::CommandOutcome::Exited(3),
            ..
        })
    ));
    // A first deployment has nothing to roll back to.
    assert!(failed.rollback.is_none());
}

#[test]
fn finish_reports_a_redeployment_and_in_sync_targets() {
    let r = rig(None);
    let (store, mut state, log) = (r.store(), RunState::default(), log());
    let phase = phase(&store, &log);
    let mut work = r.work(&store, &state);
    rt().block_on(issue_due(
        &mut work,
        &r.signers(),
        &mut RunState::default(),
        &phase,
    ));
    publish(&mut work, &phase);
    prepare_targets(&mut work, &mut state, &phase);
    rt().block_on(activate_targets(&mut work, &mut state, &phase));
    finish(work, &mut state, &phase);
    // `a`'s target is redirected elsewhere: redeployed without issuing; `b` is in sync.
    std::fs::remove_file(r.out("a").join("cert.pem")).unwrap();
    let mut work = r.work(&store, &state);
    assert!(
        work.iter()
            .all(|w| !matches!(w.decision, Decision::Issue { .. }))
    );
    prepare_targets(&mut work, &mut state, &phase);
    rt().block_on(activate_targets(&mut work, &mut state, &phase));
    let outcomes = finish(work, &mut state, &phase);
    assert_eq!(outcomes[0].action, CertAction::Redeployed);
    assert_eq!(outcomes[1].action, CertAction::Kept);
    assert_eq!(outcomes[1].targets[0].action, TargetAction::InSync);
}

fn for_work(work: &[Work<'_>]) -> Batch {
    Batch::for_load(work.iter().map(Work::busy).sum())
}

#[test]
fn many_writes_defer_their_fsyncs() {
    let r = rig(None);
    let (store, state) = (r.store(), RunState::default());
    let work = r.work(&store, &state);
    assert_eq!(for_work(&work).durability, Durability::Immediate);
    let mut forced = r.input(&store, &state);
    forced.force = true;
    let many: Vec<Work<'_>> = (0..5).flat_map(|_| r.work_with(&forced)).collect();
    assert_eq!(for_work(&many).durability, Durability::Deferred);
}

#[test]
fn the_state_forgets_certificates_and_targets_no_longer_configured() {
    let r = rig(None);
    let mut state = RunState::default();
    for name in ["a", "gone"] {
        state
            .certificates
            .insert(name.to_owned(), Default::default());
    }
    let target = &r.config.certificates[0].targets[0];
    state.set_verified(target, "v1");
    state.verified.insert(
        "/elsewhere/.pki/cert.pem".to_owned(),
        state.mark(target).unwrap().clone(),
    );
    state.forget_unconfigured(&r.config);
    assert_eq!(state.certificates.keys().collect::<Vec<_>>(), ["a"]);
    assert_eq!(state.verified.len(), 1);
    assert_eq!(state.verified(target), Some("v1"));
}
