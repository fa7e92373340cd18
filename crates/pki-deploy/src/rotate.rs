//! One run of the rotation hook: take the lock, observe, plan, issue, store, deploy, verify,
//! roll back on failure, report. Each step is a function of its own; one failing certificate or
//! target does not stop the others.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use pki::authority::offline::{self, InitOptions, KeyProtection, OfflineCa};
use pki::fsio::Durability;
use pki::rotation::{self, Decision, Desired, Observed};
use pki::{Authority, Certificate, CertificateRequest, SecretString, clock, fsio};
use serde_json::json;
use time::OffsetDateTime;

use crate::config::{Backend, CertificateConfig, Config};
use crate::error::{Error, Result};
use crate::log::Logger;
use crate::state::RunState;
use crate::store::Store;
use crate::target::{self, Outcome, Sync};

/// Options of a run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Plan only: print what would be done and change nothing.
    pub dry_run: bool,
    /// Reissue every selected certificate.
    pub force: bool,
    /// Only these certificates (empty: all).
    pub only: Vec<String>,
    /// Where log lines go.
    pub log: Logger,
}

/// What happened to one target.
#[derive(Debug, Clone)]
pub struct TargetResult {
    /// Kind and first path.
    pub label: String,
    /// `in-sync`, `deployed`, `failed` or `stale` (dry run).
    pub action: &'static str,
    /// Why it was (re)deployed or why it failed.
    pub detail: Option<String>,
    /// The failure, if any.
    pub error: Option<String>,
    /// The rollback's outcome after a failure.
    pub rollback: Option<String>,
}

/// What happened to one certificate.
#[derive(Debug, Clone)]
pub struct CertOutcome {
    /// Its name.
    pub name: String,
    /// The planner's decision.
    pub decision: Decision,
    /// `kept`, `issued`, `redeployed`, `failed` or `planned`.
    pub action: &'static str,
    /// The store's current certificate after the run.
    pub current: Option<Certificate>,
    /// The store's current version after the run.
    pub version: Option<String>,
    /// An issuance or store failure.
    pub error: Option<String>,
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
            return e.clone();
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
    pub report_errors: Vec<String>,
    /// Why the run stopped before handling its certificates (the backend unreachable, the CA
    /// key locked): every certificate is then reported failed with this reason.
    pub error: Option<String>,
}

impl RunSummary {
    /// Whether the run stopped early or any certificate failed.
    pub fn failed(&self) -> bool {
        self.error.is_some() || self.certificates.iter().any(|c| !c.ok())
    }
}

/// The run lock: a non-blocking exclusive `flock` on `<state_dir>/lock`, released when dropped
/// or when the process dies (even by SIGKILL).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Takes the lock, or fails at once with [`Error::LockHeld`].
pub fn lock(state_dir: &Path) -> Result<Lock> {
    fsio::create_dir(state_dir, 0o700)?;
    let path = state_dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|source| Error::Io {
            what: "cannot open the lock file",
            path: path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Lock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::LockHeld { path }),
        Err(std::fs::TryLockError::Error(source)) => Err(Error::Io {
            what: "cannot lock",
            path,
            source,
        }),
    }
}

/// The passphrase of an offline CA: its file, else `PKI_CA_PASSPHRASE`. A run from cron never
/// prompts.
fn passphrase(file: Option<&Path>) -> Result<Option<SecretString>> {
    if let Some(f) = file {
        return Ok(Some(fsio::read_secret_file(f)?));
    }
    Ok(std::env::var("PKI_CA_PASSPHRASE")
        .ok()
        .filter(|v| !v.is_empty())
        .map(SecretString::new))
}

/// Opens the backend; creates the offline CA first when the config asks for it and it is
/// missing (never in a dry run). `unlock` loads the signing key.
pub async fn open_backend(
    config: &Config,
    unlock: bool,
    dry_run: bool,
    log: &Logger,
) -> Result<Option<Authority>> {
    match &config.backend {
        Backend::Vault(settings) => {
            let settings = settings.as_ref().clone().with_env();
            Ok(Some(Authority::Vault(
                pki::authority::vault::VaultAuthority::connect(&settings).await?,
            )))
        }
        Backend::Offline {
            ca_dir,
            passphrase_file,
            create,
        } => {
            let exists = ca_dir.join(offline::files::INVENTORY).is_file();
            if !exists {
                match create {
                    Some(c) if !dry_run => {
                        let protection = if c.insecure_no_passphrase {
                            KeyProtection::None
                        } else {
                            KeyProtection::Passphrase(
                                passphrase(passphrase_file.as_deref())?
                                    .ok_or(pki::Error::EmptyPassphrase)?,
                            )
                        };
                        offline::init(
                            ca_dir,
                            &InitOptions {
                                name: c.name.clone(),
                                key_algorithm: c.key_algorithm,
                                root_ttl: c.root_ttl,
                                intermediate_ttl: c.intermediate_ttl,
                                permitted_dns: c.permitted_dns.clone(),
                                protection,
                                root_key_out: None,
                            },
                            clock::now(),
                        )?;
                        log.info(
                            "ca-created",
                            "",
                            &format!("created the CA in {}", ca_dir.display()),
                            &[],
                        );
                    }
                    Some(_) => return Ok(None),
                    None => {}
                }
            }
            let mut ca = OfflineCa::open(ca_dir)?;
            if unlock {
                let pass = if ca.key_is_encrypted()? {
                    passphrase(passphrase_file.as_deref())?
                } else {
                    None
                };
                ca.unlock(pass.as_ref())?;
            }
            Ok(Some(Authority::Offline(ca)))
        }
    }
}

/// What the planner needs for a configured certificate.
pub fn desired(cert: &CertificateConfig) -> Desired {
    Desired {
        common_name: cert.common_name.clone(),
        names: cert.names.clone(),
        profile: cert.profile,
        key_algorithm: cert.key_algorithm,
        renew_at: cert.renew_at,
        jitter: cert.jitter,
    }
}

/// The certificates a run looks at (all, or those named with `--only`).
pub fn selected<'a>(config: &'a Config, only: &[String]) -> Result<Vec<&'a CertificateConfig>> {
    for name in only {
        if !config.certificates.iter().any(|c| &c.name == name) {
            return Err(Error::Config {
                file: config.file.clone(),
                line: None,
                message: format!("--only {name}: no certificate of that name"),
            });
        }
    }
    Ok(config
        .certificates
        .iter()
        .filter(|c| only.is_empty() || only.contains(&c.name))
        .collect())
}

/// One certificate's plan: the decision and each target's state.
pub struct Planned<'a> {
    /// The configured certificate.
    pub cert: &'a CertificateConfig,
    /// The store's current version.
    pub version: Option<String>,
    /// The store's current certificate.
    pub current: Option<Certificate>,
    /// What to do with the certificate.
    pub decision: Decision,
    /// Each target's state against the store's current version.
    pub targets: Vec<Sync>,
    /// Freshly read facts to cache for the next run.
    pub fresh: Option<crate::state::CachedCert>,
}

/// Below this many certificates a plan is made on one thread.
const PARALLEL_PLAN: usize = 512;

/// Observes the store and the targets and decides, for every selected certificate. Large
/// configurations are planned on every core: each certificate's observation is independent
/// (a few `stat` calls, or reading its file), and the results keep the config's order.
pub fn plan<'a>(
    config: &'a Config,
    certs: &[&'a CertificateConfig],
    store: &Store,
    state: &RunState,
    issuer: Option<&Certificate>,
    force: bool,
    now: OffsetDateTime,
) -> Vec<Planned<'a>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(8);
    if certs.len() < PARALLEL_PLAN || threads < 2 {
        return plan_some(config, certs, store, state, issuer, force, now);
    }
    let chunk = certs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = certs
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || plan_some(config, part, store, state, issuer, force, now))
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| {
                // A planning thread cannot fail short of a bug; its panic is passed on.
                p.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
            })
            .collect()
    })
}

fn plan_some<'a>(
    config: &'a Config,
    certs: &[&'a CertificateConfig],
    store: &Store,
    state: &RunState,
    issuer: Option<&Certificate>,
    force: bool,
    now: OffsetDateTime,
) -> Vec<Planned<'a>> {
    certs
        .iter()
        .map(|cert| {
            let obs = store.observe(&cert.name, issuer, state.observed.get(&cert.name));
            let jitter = rotation::jitter_fraction(&config.host, &cert.name);
            let decision = rotation::decide(&desired(cert), &obs.observed, jitter, force, now);
            let targets = cert
                .targets
                .iter()
                .map(|t| match &obs.version {
                    Some(v) if matches!(obs.observed, Observed::Present(_)) => {
                        target::state(t, v, state.mark(t))
                    }
                    _ => Sync::Stale("no certificate in the store".to_owned()),
                })
                .collect();
            Planned {
                cert,
                version: obs.version,
                current: obs.certificate,
                decision,
                targets,
                fresh: obs.fresh,
            }
        })
        .collect()
}

/// Runs the hook once. A run that stops early (backend unreachable, CA key locked) still
/// reports, every certificate failed with the reason, before returning the error.
pub async fn run(config: &Config, opts: &Options) -> Result<RunSummary> {
    let started = clock::now();
    let timer = std::time::Instant::now();
    let certs = selected(config, &opts.only)?;
    let _lock = if opts.dry_run {
        None
    } else {
        Some(lock(&config.state_dir)?)
    };
    match run_locked(config, opts, &certs, started, timer).await {
        Err(e) if !opts.dry_run => {
            report_stopped(config, &certs, started, timer, &e, &opts.log).await;
            Err(e)
        }
        result => result,
    }
}

/// Reports a run that stopped before handling its certificates: each is failed with the
/// reason, with the store's current certificate so that expiry metrics stay.
async fn report_stopped(
    config: &Config,
    certs: &[&CertificateConfig],
    started: OffsetDateTime,
    timer: std::time::Instant,
    error: &Error,
    log: &Logger,
) {
    let (state, _) = RunState::load(&config.state_dir);
    let store = Store::open_at(&config.state_dir, false).ok();
    let finished = clock::now();
    let reason = error.to_string();
    let certificates = certs
        .iter()
        .map(|c| {
            let version = store.as_ref().and_then(|s| s.current(&c.name));
            let current = match (&store, &version) {
                (Some(s), Some(v)) => s.certificate(&c.name, v).ok(),
                _ => None,
            };
            CertOutcome {
                name: c.name.clone(),
                decision: Decision::Keep {
                    renew_after: finished,
                },
                action: "failed",
                current,
                version,
                error: Some(reason.clone()),
                targets: Vec::new(),
            }
        })
        .collect();
    let summary = RunSummary {
        started,
        finished,
        elapsed: timer.elapsed(),
        dry_run: false,
        certificates,
        report_errors: Vec::new(),
        error: Some(reason),
    };
    for e in crate::report::deliver(&config.report, &summary, &state, &config.host).await {
        log.warn("report-failed", "", &e.to_string(), &[]);
    }
}

async fn run_locked(
    config: &Config,
    opts: &Options,
    certs: &[&CertificateConfig],
    started: OffsetDateTime,
    timer: std::time::Instant,
) -> Result<RunSummary> {
    let log = &opts.log;
    let store = Store::open_at(&config.state_dir, !opts.dry_run)?;
    if !opts.dry_run {
        // Leftovers of a run killed mid-write (the state file, the metrics file).
        fsio::remove_stale_temps(&config.state_dir)?;
        if let Some(dir) = config.report.textfile.as_deref().and_then(Path::parent) {
            fsio::remove_stale_temps(dir)?;
        }
    }
    let backend = open_backend(config, false, opts.dry_run, log).await?;
    let issuer = match &backend {
        Some(b) => Some(b.current_issuer().await?),
        None => None,
    };
    let (mut state, unreadable) = RunState::load(&config.state_dir);
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
        log.warn("state-unreadable", "", &message, &[]);
    }
    let planned = plan(
        config,
        certs,
        &store,
        &state,
        issuer.as_ref(),
        opts.force,
        started,
    );
    if opts.dry_run {
        return Ok(RunSummary {
            started,
            finished: clock::now(),
            elapsed: timer.elapsed(),
            dry_run: true,
            certificates: planned.into_iter().map(planned_outcome).collect(),
            report_errors: Vec::new(),
            error: None,
        });
    }
    // The signing key is unlocked only when something is to be issued.
    let needs_key = planned
        .iter()
        .any(|p| matches!(p.decision, Decision::Issue { .. }));
    // (A Vault backend is already logged in: nothing to unlock.)
    let backend = match (&backend, needs_key) {
        (Some(Authority::Offline(_)), true) => open_backend(config, true, false, log).await?,
        _ => backend,
    };
    for p in &planned {
        if let Some(fresh) = &p.fresh {
            state.observed.insert(p.cert.name.clone(), fresh.clone());
        }
    }
    let mut outcomes = execute(planned, backend.as_ref(), &store, &mut state, log).await;
    // Reports name every current certificate; those planned from cached facts are read now.
    for o in outcomes.iter_mut().filter(|o| o.current.is_none()) {
        if let Some(v) = &o.version {
            o.current = store.certificate(&o.name, v).ok();
        }
    }
    let finished = clock::now();
    for o in &outcomes {
        let entry = state.certificates.entry(o.name.clone()).or_default();
        entry.last_run = Some(finished.unix_timestamp());
        if o.ok() {
            entry.last_success = Some(finished.unix_timestamp());
            entry.last_result = Some("ok".to_owned());
            entry.last_error = None;
        } else {
            entry.last_result = Some("failed".to_owned());
            entry.last_error = Some(o.failure_text());
        }
    }
    let mut summary = RunSummary {
        started,
        finished,
        elapsed: timer.elapsed(),
        dry_run: false,
        certificates: outcomes,
        report_errors: Vec::new(),
        error: None,
    };
    if let Err(e) = state.save(&config.state_dir) {
        summary.report_errors.push(e.to_string());
    }
    for e in crate::report::deliver(&config.report, &summary, &state, &config.host).await {
        log.warn("report-failed", "", &e.to_string(), &[]);
        summary.report_errors.push(e.to_string());
    }
    Ok(summary)
}

fn planned_outcome(p: Planned<'_>) -> CertOutcome {
    CertOutcome {
        name: p.cert.name.clone(),
        action: "planned",
        targets: p
            .cert
            .targets
            .iter()
            .zip(&p.targets)
            .map(|(t, s)| TargetResult {
                label: t.label(),
                action: if *s == Sync::InSync {
                    "in-sync"
                } else {
                    "stale"
                },
                detail: match s {
                    Sync::InSync => None,
                    Sync::Stale(why) => Some(why.clone()),
                },
                error: None,
                rollback: None,
            })
            .collect(),
        decision: p.decision,
        current: p.current,
        version: p.version,
        error: None,
    }
}

/// Above this many certificates or targets to handle, a run defers every fsync and makes each
/// phase durable with one `syncfs` per file system before publishing it.
const BATCH_THRESHOLD: usize = 8;

/// One certificate in flight through the phases of a run.
struct Work<'a> {
    planned: Planned<'a>,
    outcome: CertOutcome,
    version: Option<String>,
    material: Option<pki::IssuedCertificate>,
    fresh: bool,
}

/// Issues what is due, stores it, and deploys to every target that needs it. One failing
/// certificate or target never stops the others.
async fn execute(
    planned: Vec<Planned<'_>>,
    backend: Option<&Authority>,
    store: &Store,
    state: &mut RunState,
    log: &Logger,
) -> Vec<CertOutcome> {
    let busy = planned
        .iter()
        .map(|p| {
            if matches!(p.decision, Decision::Issue { .. }) {
                p.cert.targets.len() + 1
            } else {
                p.targets.iter().filter(|t| **t != Sync::InSync).count()
            }
        })
        .sum::<usize>();
    let durability = if busy > BATCH_THRESHOLD {
        Durability::Deferred
    } else {
        Durability::Immediate
    };
    let mut work: Vec<Work<'_>> = planned
        .into_iter()
        .map(|p| Work {
            outcome: CertOutcome {
                name: p.cert.name.clone(),
                decision: p.decision.clone(),
                action: "kept",
                current: p.current.clone(),
                version: p.version.clone(),
                error: None,
                targets: Vec::new(),
            },
            version: p.version.clone(),
            material: None,
            fresh: false,
            planned: p,
        })
        .collect();

    // 1. Issue and store every due certificate.
    let mut new_versions = Vec::new();
    for w in &mut work {
        let Decision::Issue { reason, detail } = &w.planned.decision else {
            continue;
        };
        let name = w.outcome.name.clone();
        log.info(
            "renew",
            &name,
            &format!("issuing a new certificate: {reason} ({detail})"),
            &[("reason", json!(reason.name()))],
        );
        match issue(w.planned.cert, backend, store, durability).await {
            Ok((id, issued)) => {
                let info = issued.certificate.info();
                log.info(
                    "issued",
                    &name,
                    &format!(
                        "issued serial {}, valid until {}",
                        info.serial,
                        pki::error::Rfc3339(info.not_after)
                    ),
                    &[
                        ("serial", json!(info.serial.to_hex())),
                        ("version", json!(id)),
                    ],
                );
                for warning in &issued.warnings {
                    log.warn("authority-warning", &name, warning, &[]);
                }
                let lifetime = info.not_after - info.not_before;
                if lifetime < w.planned.cert.ttl * 0.9 {
                    // Vault caps TTLs at the role's max_ttl or the CA's own expiry.
                    log.warn(
                        "ttl-shortened",
                        &name,
                        &format!(
                            "the authority issued {} instead of the {} asked for: renewals \
                             come that much sooner",
                            pki::duration::format(lifetime),
                            pki::duration::format(w.planned.cert.ttl)
                        ),
                        &[],
                    );
                }
                w.outcome.current = Some(issued.certificate.clone());
                w.outcome.action = "issued";
                new_versions.push(w.outcome.name.clone());
                w.version = Some(id);
                w.material = Some(issued);
                w.fresh = true;
            }
            Err(e) => {
                log.error("issue-failed", &name, &e.to_string(), &[]);
                w.outcome.action = "failed";
                w.outcome.error = Some(e.to_string());
            }
        }
    }
    // 2. Publish the new versions in the store: their files first, then the switches.
    let synced = |paths: &[PathBuf]| -> std::result::Result<(), String> {
        if durability == Durability::Deferred {
            fsio::sync_filesystems(paths).map_err(|e| e.to_string())
        } else {
            Ok(())
        }
    };
    let store_synced = synced(&[store.root().to_path_buf()]);
    for w in work.iter_mut().filter(|w| w.fresh) {
        let switched = store_synced.clone().and_then(|()| {
            let id = w.version.as_deref().unwrap_or_default();
            store
                .switch(&w.outcome.name, id, durability)
                .map_err(|e| e.to_string())
        });
        match switched {
            Ok(()) => w.outcome.version = w.version.clone(),
            Err(e) => {
                log.error("store-failed", &w.outcome.name, &e, &[]);
                w.outcome.action = "failed";
                w.outcome.error = Some(e);
                w.fresh = false;
                w.material = None;
                w.version = None;
            }
        }
    }
    if let Err(e) = synced(&[store.root().to_path_buf()]) {
        log.warn("sync-failed", "", &e, &[]);
    }

    // 3. Write each target's new version, then (once synced) switch, reload and prove.
    let mut prepared: Vec<(usize, usize, target::Prepared, String)> = Vec::new();
    let mut results: Vec<Vec<Option<TargetResult>>> = work
        .iter()
        .map(|w| vec![None; w.planned.cert.targets.len()])
        .collect();
    for (wi, w) in work.iter_mut().enumerate() {
        let Some(version) = w.version.clone() else {
            continue;
        };
        if w.outcome.error.is_some() {
            continue;
        }
        for (ti, (t, sync)) in w
            .planned
            .cert
            .targets
            .iter()
            .zip(&w.planned.targets)
            .enumerate()
        {
            let why = match (w.fresh, sync) {
                (true, _) => "new certificate".to_owned(),
                (false, Sync::InSync) => {
                    results[wi][ti] = Some(TargetResult {
                        label: t.label(),
                        action: "in-sync",
                        detail: None,
                        error: None,
                        rollback: None,
                    });
                    continue;
                }
                (false, Sync::Stale(why)) => why.clone(),
            };
            let failed = |e: String| TargetResult {
                label: t.label(),
                action: "failed",
                detail: Some(why.clone()),
                error: Some(e),
                rollback: None,
            };
            if w.material.is_none() {
                match store.load(&w.outcome.name, &version) {
                    Ok(m) => w.material = Some(m),
                    Err(e) => {
                        results[wi][ti] = Some(failed(e.to_string()));
                        continue;
                    }
                }
            }
            let Some(material) = w.material.as_ref() else {
                continue;
            };
            match target::prepare(t, &version, material, durability, state.verified(t)) {
                Ok(p) => {
                    if p.adopted {
                        // The files found in place were being served: that is what a
                        // rollback returns to.
                        state.set_verified(t, target::ADOPTED);
                    }
                    prepared.push((wi, ti, p, why));
                }
                Err(e) => {
                    log.error(
                        "deploy-failed",
                        &w.outcome.name,
                        &format!("{}: {e}", t.label()),
                        &[("target", json!(t.label()))],
                    );
                    results[wi][ti] = Some(failed(e.to_string()));
                }
            }
        }
    }
    let target_dirs: Vec<PathBuf> = prepared
        .iter()
        .map(|(wi, ti, _, _)| target::versions_dir(&work[*wi].planned.cert.targets[*ti]))
        .collect();
    let targets_synced = synced(&target_dirs);
    for (wi, ti, p, why) in &prepared {
        let w = &work[*wi];
        let t = &w.planned.cert.targets[*ti];
        let name = &w.outcome.name;
        let mut result = TargetResult {
            label: t.label(),
            action: "deployed",
            detail: Some(why.clone()),
            error: None,
            rollback: None,
        };
        let outcome = match (&targets_synced, w.material.as_ref()) {
            (Err(e), _) => Outcome::Failed {
                error: Error::Io {
                    what: "cannot flush",
                    path: target::versions_dir(t),
                    source: std::io::Error::other(e.clone()),
                },
                rollback: None,
            },
            (Ok(()), Some(material)) => {
                target::activate(w.planned.cert, t, p, material, durability).await
            }
            (Ok(()), None) => continue,
        };
        match outcome {
            Outcome::Deployed { served } => {
                state.set_verified(t, p.id());
                let proof = served
                    .map(|s| format!(", served: {}", s.describe()))
                    .unwrap_or_default();
                log.info(
                    "deployed",
                    name,
                    &format!("{}: deployed ({why}){proof}", t.label()),
                    &[("target", json!(t.label()))],
                );
            }
            Outcome::Failed { error, rollback } => {
                if state.verified(t) == Some(p.id()) {
                    // A repair of the version marked as served failed: that mark no longer
                    // holds, and the next run must try again.
                    state.clear_verified(t);
                }
                let rb = match rollback {
                    None => None,
                    Some(Ok(restored)) => Some(restored),
                    Some(Err(e)) => Some(format!("FAILED: {e}")),
                };
                log.error(
                    "deploy-failed",
                    name,
                    &format!(
                        "{}: {error}{}",
                        t.label(),
                        rb.as_ref()
                            .map(|r| format!("; rollback: {r}"))
                            .unwrap_or_default()
                    ),
                    &[("target", json!(t.label()))],
                );
                result.action = "failed";
                result.error = Some(error.to_string());
                result.rollback = rb;
            }
        }
        results[*wi][*ti] = Some(result);
    }
    if let Err(e) = synced(&target_dirs) {
        log.warn("sync-failed", "", &e, &[]);
    }

    // 4. Collect, prune.
    work.into_iter()
        .zip(results)
        .map(|(w, results)| {
            let mut outcome = w.outcome.clone();
            outcome.targets = results.into_iter().flatten().collect();
            if outcome.action == "kept" && outcome.targets.iter().any(|t| t.action == "deployed") {
                outcome.action = "redeployed";
            }
            if let Err(e) = store.prune(&outcome.name) {
                log.warn("prune-failed", &outcome.name, &e.to_string(), &[]);
            }
            // Every target, deployed now or not: a run killed earlier may have left temporary
            // files beside a target that is otherwise in sync.
            for t in &w.planned.cert.targets {
                if let Err(e) = target::prune(t, state.verified(t)) {
                    log.warn(
                        "prune-failed",
                        &outcome.name,
                        &format!("{}: {e}", t.label()),
                        &[],
                    );
                }
                let label = t.label();
                if outcome
                    .targets
                    .iter()
                    .any(|r| r.label == label && matches!(r.action, "deployed" | "in-sync"))
                {
                    // Pruning changed the directories the mark describes.
                    state.restamp(t);
                }
            }
            outcome
        })
        .collect()
}

/// Issues a certificate for the configured request and adds it to the store (not yet current).
async fn issue(
    cert: &CertificateConfig,
    backend: Option<&Authority>,
    store: &Store,
    durability: Durability,
) -> Result<(String, pki::IssuedCertificate)> {
    let backend = backend.ok_or(pki::Error::InvalidRequest("no backend to issue with"))?;
    let now = clock::now();
    let request = CertificateRequest::new(
        &cert.common_name,
        cert.names.iter().cloned(),
        cert.profile,
        cert.ttl,
    )?;
    let issued = backend.issue(&request, cert.key_algorithm, now).await?;
    let id = store.add(&cert.name, &issued, now, durability)?;
    Ok((id, issued))
}

/// The state directory's store path, for tests and tools.
pub fn store_dir(config: &Config) -> PathBuf {
    config.state_dir.join("certs")
}
