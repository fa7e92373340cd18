//! One run of the rotation hook: take the lock, open the backend, observe and plan
//! ([`plan`]), then the phases over one work item per certificate ([`phases`]: issue what is
//! due, publish it in the store, prepare every target, activate and prove each, finish and
//! prune), save the state and report. One failing certificate or target does not stop the
//! others; a run that stops early (backend unreachable, CA key locked) still reports.

mod ari;
pub(crate) mod backend;
mod backoff;
mod batch;
pub mod phases;
pub mod plan;
pub mod summary;
pub mod trust;

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pki::error::IoOp;
use pki::fsio::{Dir, Owners};
use pki::{SecretString, clock};
use time::OffsetDateTime;

use crate::config::{CertificateConfig, Config};
use crate::error::{Error, Result};
use crate::log::{Event, Logger};
use crate::state::RunState;
use crate::store::Store;
use batch::Batch;
use phases::{Phase, Work};
use plan::PlanInput;
pub use summary::{CertAction, CertOutcome, Rollback, RunSummary, TargetAction, TargetResult};
pub use trust::{TrustAction, TrustOutcome};

/// Options of a run.
#[derive(Debug)]
#[non_exhaustive]
pub struct Options {
    /// Plan only: say what would be done and change nothing.
    pub dry_run: bool,
    /// Reissue every selected certificate.
    pub force: bool,
    /// Only these certificates (empty: all).
    pub only: Vec<String>,
    /// Where log lines go.
    pub log: Logger,
    /// The offline CA's passphrase, when the config names no passphrase file.
    pub ca_passphrase: Option<SecretString>,
}

impl Options {
    /// A full run of every certificate, logging with `log`.
    pub fn new(log: Logger) -> Self {
        Self {
            dry_run: false,
            force: false,
            only: Vec::new(),
            log,
            ca_passphrase: None,
        }
    }
}

/// The run lock: a non-blocking exclusive `flock` on `<state_dir>/lock`, released when dropped
/// or when the process dies (even by SIGKILL). The file says which process took it and when.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Takes the lock, or fails at once: [`Error::LockHeld`] while another run holds it, or
/// [`Error::LockStuck`] when that run has held it for longer than `stuck_after` (a run that
/// hangs past its watchdog must not keep every later run quietly doing nothing).
pub fn lock(state_dir: &Path, stuck_after: time::Duration) -> Result<Lock> {
    let dir = Dir::create(state_dir, 0o700, Owners::running())?;
    let path = state_dir.join("lock");
    let mut file = dir.open_file("lock", 0o600)?;
    match file.try_lock() {
        Ok(()) => {
            // Who holds it, for the run that finds it held.
            let holder = format!("{} {}\n", std::process::id(), clock::now().unix_timestamp());
            let written = file
                .set_len(0)
                .and_then(|()| file.write_all(holder.as_bytes()));
            written.map_err(Error::io(IoOp::Write, &path))?;
            Ok(Lock { _file: file })
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.take(256).read_to_string(&mut text);
            let mut words = text.split_whitespace();
            let pid = words.next().and_then(|w| w.parse::<u32>().ok());
            let since = words
                .next()
                .and_then(|w| w.parse::<i64>().ok())
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok());
            match (pid, since) {
                (Some(pid), Some(since)) if clock::now() - since > stuck_after => {
                    Err(Error::LockStuck { path, pid, since })
                }
                _ => Err(Error::LockHeld { path }),
            }
        }
        Err(std::fs::TryLockError::Error(source)) => Err(Error::io(IoOp::Lock, path)(source)),
    }
}

/// The certificates a run looks at (all, or those named in `only`).
pub fn selected<'a>(config: &'a Config, only: &[String]) -> Result<Vec<&'a CertificateConfig>> {
    for name in only {
        if !config.certificates.iter().any(|c| &c.name == name) {
            return Err(Error::Config {
                file: config.file.clone(),
                line: None,
                message: format!("no certificate named {name:?}"),
            });
        }
    }
    Ok(config
        .certificates
        .iter()
        .filter(|c| only.is_empty() || only.contains(&c.name))
        .collect())
}

/// When a run started, by both clocks.
#[derive(Debug, Clone, Copy)]
struct Started {
    at: OffsetDateTime,
    timer: std::time::Instant,
}

impl Started {
    fn now() -> Self {
        Self {
            at: clock::now(),
            timer: std::time::Instant::now(),
        }
    }

    /// The summary of a run that changed things.
    fn finished(self, certificates: Vec<CertOutcome>) -> RunSummary {
        RunSummary {
            started: self.at,
            finished: clock::now(),
            elapsed: self.timer.elapsed(),
            dry_run: false,
            certificates,
            report_errors: Vec::new(),
            error: None,
            trust: Vec::new(),
        }
    }

    /// The summary of a dry run.
    fn planned(self, certificates: Vec<CertOutcome>) -> RunSummary {
        RunSummary {
            dry_run: true,
            ..self.finished(certificates)
        }
    }
}

/// One run in progress.
#[derive(Debug, Clone, Copy)]
struct Run<'a> {
    config: &'a Config,
    opts: &'a Options,
    started: Started,
    /// The trust phase's outcomes, once it ran: a run that stops after it reports them too.
    trust: &'a std::sync::Mutex<Vec<TrustOutcome>>,
}

/// Runs the hook once. A run that stops early (backend unreachable, CA key locked) still
/// reports, every certificate failed with the reason, before returning the error.
pub async fn run(config: &Config, opts: &Options) -> Result<RunSummary> {
    // Targets side by side share their parents: each is walked to and checked once a run.
    let _walks = pki::fsio::dir::WalkCache::start();
    let trust = std::sync::Mutex::new(Vec::new());
    let run = Run {
        config,
        opts,
        started: Started::now(),
        trust: &trust,
    };
    let certs = selected(config, &opts.only)?;
    let _lock = if opts.dry_run {
        None
    } else {
        match lock(&config.state_dir, config.run_timeout * 2) {
            Ok(lock) => Some(lock),
            Err(e @ Error::LockStuck { .. }) => {
                // Not this run's failure to hide: monitoring hears of it every time.
                let e = Arc::new(e);
                run.stopped(&certs, &e).await;
                return Err(Arc::try_unwrap(e).unwrap_or_else(|e| Error::Task {
                    what: "the lock",
                    reason: e.to_string(),
                }));
            }
            Err(e) => return Err(e),
        }
    };
    let limit =
        std::time::Duration::try_from(config.run_timeout).unwrap_or(std::time::Duration::MAX);
    let outcome = match tokio::time::timeout(limit, run.locked(&certs)).await {
        Ok(outcome) => outcome,
        Err(_) => Err(Error::Watchdog {
            limit: config.run_timeout,
        }),
    };
    match outcome {
        Err(e) if !opts.dry_run => {
            let e = Arc::new(e);
            run.stopped(&certs, &e).await;
            // The report's copies are gone: the error is ours again.
            Err(Arc::try_unwrap(e).unwrap_or_else(|e| Error::Task {
                what: "the run",
                reason: e.to_string(),
            }))
        }
        result => result,
    }
}

/// Opens the store, removing what a run killed mid-write left behind.
fn open_store(config: &Config, opts: &Options) -> Result<Store> {
    if opts.dry_run {
        return Ok(Store::open(&config.state_dir));
    }
    let store = Store::create(&config.state_dir)?;
    // Leftovers of a run killed mid-write (the state file, the metrics file).
    Dir::open(&config.state_dir, Owners::running())?.remove_stale_temps()?;
    if let Some(dir) = config.report.textfile.as_deref().and_then(Path::parent)
        && dir.is_dir()
    {
        Dir::open(dir, Owners::running())?.remove_stale_temps()?;
    }
    Ok(store)
}

/// The state earlier runs left; an unreadable one is set aside (not in a dry run) and the run
/// goes on from what is on disk.
fn load_state(config: &Config, opts: &Options) -> RunState {
    let (state, unreadable) = RunState::load(&config.state_dir);
    if let Some(problem) = unreadable {
        let mut message = format!(
            "{problem}: starting from an empty state (every target is checked again; a rollback \
             returns to the version in place)"
        );
        if !opts.dry_run {
            // Kept for a look, not overwritten by this run's state.
            let file = crate::state::path(&config.state_dir);
            let aside = file.with_extension("json.unreadable");
            if std::fs::rename(&file, &aside).is_ok() {
                message.push_str(&format!("; the file was moved to {}", aside.display()));
            }
        }
        opts.log.warn(Event::run("state-unreadable", message));
    }
    state
}

/// The phases from issuing to activation. The authorities are closed once everything due is
/// issued, in a thread: closing an offline CA checkpoints its inventory (a sync of the
/// database), which need not hold up the targets.
async fn execute(
    work: &mut [Work<'_>],
    signers: backend::Signers,
    state: &mut RunState,
    phase: &Phase<'_>,
) {
    phases::issue_due(work, &signers, state, phase).await;
    let closing = std::thread::spawn(move || drop(signers));
    phases::publish(work, phase);
    phases::prepare_targets(work, state, phase);
    phases::activate_targets(work, state, phase).await;
    let _ = closing.join();
}

impl Run<'_> {
    /// Everything a run does under its lock.
    async fn locked(self, certs: &[&CertificateConfig]) -> Result<RunSummary> {
        let Self { config, opts, .. } = self;
        let store = open_store(config, opts)?;
        let mut signers = backend::open_all(config, opts, certs).await?;
        // The certificates of a backend that did not open fail; the others go on.
        let (live, down): (Vec<&CertificateConfig>, Vec<&CertificateConfig>) = certs
            .iter()
            .partition(|c| signers.broken(&c.backend).is_none());
        let down: Vec<CertOutcome> = down
            .into_iter()
            .filter_map(|c| Some(failed(&store, c, signers.broken(&c.backend)?.clone())))
            .collect();
        let mut state = load_state(config, opts);
        let issuer_since = state.see_issuers(&signers.issuers, self.started.at);
        let input = PlanInput {
            config,
            store: &store,
            state: &state,
            issuers: &signers.issuers,
            trust: &signers.trust,
            issuer_since: &issuer_since,
            force: opts.force,
            now: self.started.at,
        };
        let mut planned = plan::plan(&input, &live);
        ari::consult(&self, &signers, &mut planned, &store).await;
        // Trust files first: a host trusts a new root before anything it talks to moves. They
        // are kept in sync by every run, `--only` ones too (whose reports would otherwise
        // say nothing of them).
        let trust = trust::deploy_all(config, &signers, opts).await;
        if let Ok(mut kept) = self.trust.lock() {
            kept.clone_from(&trust);
        }
        if opts.dry_run {
            let outcomes = planned.into_iter().map(phases::planned_outcome).collect();
            let mut summary = self.started.planned(in_order(certs, outcomes, down));
            summary.trust = trust;
            return Ok(summary);
        }
        // A signing key is unlocked only when something it signs is to be issued.
        let due: Vec<&str> = planned
            .iter()
            .filter(|p| p.needs_signing())
            .map(|p| p.cert.backend.as_str())
            .collect();
        backend::unlock_due(&mut signers, &due, config, opts)?;
        for p in &planned {
            if let Some(fresh) = &p.fresh {
                state.cache.insert(p.cert.name.clone(), fresh.clone());
            }
        }
        let mut work: Vec<Work<'_>> = planned.into_iter().map(Work::from_plan).collect();
        let batch = Batch::for_load(work.iter().map(Work::busy).sum());
        let store = store.with_durability(batch.durability);
        let phase = Phase {
            store: &store,
            batch: &batch,
            log: &opts.log,
            force: opts.force,
        };
        execute(&mut work, signers, &mut state, &phase).await;
        let outcomes = in_order(certs, phases::finish(work, &mut state, &phase), down);
        let mut summary = self.started.finished(outcomes);
        summary.trust = trust;
        Ok(self.conclude(&store, state, summary).await)
    }

    /// Reports a run that stopped before handling its certificates: each is failed with the
    /// reason, with the store's current certificate so that expiry metrics stay.
    async fn stopped(self, certs: &[&CertificateConfig], error: &Arc<Error>) {
        let config = self.config;
        let (state, _) = RunState::load(&config.state_dir);
        let store = Store::open(&config.state_dir);
        let certificates = certs
            .iter()
            .map(|c| failed(&store, c, error.clone()))
            .collect();
        let mut summary = self.started.finished(certificates);
        summary.error = Some(error.clone());
        summary.trust = self.trust.lock().map(|t| t.clone()).unwrap_or_default();
        for e in crate::report::deliver(&config.report, &summary, &state, &config.host).await {
            self.opts
                .log
                .warn(Event::run("report-failed", e.to_string()));
        }
    }

    /// Records the run in the state, saves it, and delivers the reports.
    async fn conclude(
        self,
        store: &Store,
        mut state: RunState,
        mut summary: RunSummary,
    ) -> RunSummary {
        let config = self.config;
        // Reports name every current certificate; those planned from cached facts are read now.
        for o in summary
            .certificates
            .iter_mut()
            .filter(|o| o.current.is_none())
        {
            if let Some(v) = &o.version {
                o.current = store.certificate(&o.name, v).ok();
            }
        }
        let finished = summary.finished.unix_timestamp();
        for o in &summary.certificates {
            let entry = state.certificates.entry(o.name.clone()).or_default();
            entry.last_run = Some(finished);
            if o.ok() {
                entry.last_success = Some(finished);
                entry.last_result = Some("ok".to_owned());
                entry.last_error = None;
            } else {
                entry.last_result = Some("failed".to_owned());
                entry.last_error = Some(o.failure_text());
            }
        }
        if self.opts.only.is_empty() {
            state.forget_unconfigured(config);
        }
        if let Err(e) = state.save(&config.state_dir) {
            summary.report_errors.push(Arc::new(e));
        }
        for e in crate::report::deliver(&config.report, &summary, &state, &config.host).await {
            self.opts
                .log
                .warn(Event::run("report-failed", e.to_string()));
            summary.report_errors.push(Arc::new(e));
        }
        summary
    }
}

/// A certificate failed before it was planned, with the store's current certificate so that
/// expiry metrics stay.
fn failed(store: &Store, cert: &CertificateConfig, error: Arc<Error>) -> CertOutcome {
    let version = store.current(&cert.name);
    let current = version
        .as_ref()
        .and_then(|v| store.certificate(&cert.name, v).ok());
    CertOutcome {
        name: cert.name.clone(),
        backend: cert.backend.clone(),
        decision: None,
        action: CertAction::Failed,
        current,
        version,
        error: Some(error),
        targets: Vec::new(),
    }
}

/// The outcomes of the planned certificates and of those failed before planning, in the
/// order of `certs`.
fn in_order(
    certs: &[&CertificateConfig],
    mut outcomes: Vec<CertOutcome>,
    down: Vec<CertOutcome>,
) -> Vec<CertOutcome> {
    if down.is_empty() {
        return outcomes;
    }
    let position: std::collections::HashMap<&str, usize> = certs
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    outcomes.extend(down);
    outcomes.sort_by_key(|o| position.get(o.name.as_str()).copied().unwrap_or(usize::MAX));
    outcomes
}

/// The state directory's store path, for tests and tools.
pub fn store_dir(config: &Config) -> PathBuf {
    config.state_dir.join(crate::store::DIR)
}
