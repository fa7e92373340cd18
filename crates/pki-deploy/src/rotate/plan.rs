//! Planning: what the store holds for each certificate, what the planner decides, and whether
//! each target serves the store's version. No file is written.

use std::collections::HashMap;

use pki::Certificate;
use pki::rotation::{self, Decision, Moment, Observed};
use time::OffsetDateTime;

use crate::config::{CertificateConfig, Config};
use crate::service::layout::{self, Freshness};
use crate::state::{CachedCert, RunState};
use crate::store::Store;

/// One certificate's plan: the decision and each target's freshness.
#[derive(Debug)]
#[non_exhaustive]
pub struct Planned<'a> {
    /// The configured certificate.
    pub cert: &'a CertificateConfig,
    /// The store's current version.
    pub version: Option<String>,
    /// The store's current certificate, when it was read (not when cached facts sufficed).
    pub current: Option<Certificate>,
    /// What to do with the certificate.
    pub decision: Decision,
    /// Each target's state against the store's current version, in config order.
    pub targets: Vec<Freshness>,
    /// Freshly read facts to cache for the next run.
    pub fresh: Option<CachedCert>,
}

impl Planned<'_> {
    /// Whether a new certificate is to be issued (or, for a changed trust bundle, the one in
    /// place stored and deployed again).
    pub fn is_due(&self) -> bool {
        matches!(self.decision, Decision::Issue { .. })
    }

    /// Whether the backend must sign: due for a reason other than a changed trust bundle.
    pub fn needs_signing(&self) -> bool {
        matches!(self.decision, Decision::Issue { reason, .. } if reason != rotation::Reason::TrustChanged)
    }
}

/// What planning looks at.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct PlanInput<'a> {
    /// The config (its host seeds the jitter).
    pub config: &'a Config,
    /// The store.
    pub store: &'a Store,
    /// What earlier runs remember.
    pub state: &'a RunState,
    /// Each backend's current issuer, by backend name, when known: a certificate that its
    /// backend's issuer did not sign is reissued.
    pub issuers: &'a HashMap<String, Certificate>,
    /// Each backend's trust bundle, by backend name, when known: a certificate kept with
    /// other CAs is deployed again with these.
    pub trust: &'a HashMap<String, Vec<Certificate>>,
    /// Since when each backend's current issuer has been seen, by backend name (the start of
    /// an issuer rollover's spread), when it is a change the state recorded.
    pub issuer_since: &'a HashMap<String, OffsetDateTime>,
    /// Reissue whatever the state.
    pub force: bool,
    /// The time of the decisions.
    pub now: OffsetDateTime,
}

impl<'a> PlanInput<'a> {
    /// Planning `config` from `store` and `state` at `now`: not forced, no backend's issuer
    /// known (set the fields to change that).
    pub fn new(
        config: &'a Config,
        store: &'a Store,
        state: &'a RunState,
        now: OffsetDateTime,
    ) -> Self {
        static NONE: std::sync::LazyLock<HashMap<String, Certificate>> =
            std::sync::LazyLock::new(HashMap::new);
        static NO_TRUST: std::sync::LazyLock<HashMap<String, Vec<Certificate>>> =
            std::sync::LazyLock::new(HashMap::new);
        static NO_SINCE: std::sync::LazyLock<HashMap<String, OffsetDateTime>> =
            std::sync::LazyLock::new(HashMap::new);
        Self {
            config,
            store,
            state,
            issuers: &NONE,
            trust: &NO_TRUST,
            issuer_since: &NO_SINCE,
            force: false,
            now,
        }
    }
}

/// Below this many certificates a plan is made on one thread.
const PARALLEL_PLAN: usize = 512;
/// Most planning threads: each needs little but a core, and a few `stat` calls.
const MAX_PLAN_THREADS: usize = 8;

/// Plans every certificate of `certs`. Large configurations are planned on every core: each
/// certificate's observation is independent (a few `stat` calls, or reading its file), and the
/// results keep the order of `certs`.
pub fn plan<'c>(input: &PlanInput<'_>, certs: &[&'c CertificateConfig]) -> Vec<Planned<'c>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(MAX_PLAN_THREADS);
    let plan_part = |part: &[&'c CertificateConfig]| {
        let planned: Vec<_> = part.iter().map(|c| plan_one(input, c)).collect();
        crate::state::forget_bases();
        planned
    };
    if certs.len() < PARALLEL_PLAN || threads < 2 {
        return plan_part(certs);
    }
    let chunk = certs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = certs
            .chunks(chunk)
            .map(|part| scope.spawn(move || plan_part(part)))
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

/// Plans one certificate.
pub fn plan_one<'c>(input: &PlanInput<'_>, cert: &'c CertificateConfig) -> Planned<'c> {
    let obs = input.store.observe(
        &cert.name,
        crate::store::Expected::new(
            input.issuers.get(&cert.backend),
            input.trust.get(&cert.backend).map(Vec::as_slice),
        ),
        input.state.cache.get(&cert.name),
    );
    let mut moment = Moment::new(
        input.now,
        rotation::jitter_fraction(&input.config.host, &cert.name),
    );
    moment.force = input.force;
    moment.issuer_since = input.issuer_since.get(&cert.backend).copied();
    let mut desired = cert.desired();
    if let Some(crate::config::Backend::Acme(_)) = input.config.backend(&cert.backend) {
        // The ACME server decides the usages (clientAuth or not): more than asked is kept.
        desired.profile_match = rotation::ProfileMatch::Covers;
    }
    let decision = rotation::decide(&desired, &obs.observed, &moment);
    let targets = cert
        .targets
        .iter()
        .map(|t| match &obs.version {
            Some(v) if matches!(obs.observed, Observed::Present(_)) => {
                layout::freshness(t, v, input.state.mark(t))
            }
            _ => Freshness::Stale("no certificate in the store".to_owned()),
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
}
