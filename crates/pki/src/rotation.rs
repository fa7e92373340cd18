//! The renewal planner: `(observed certificates, policy, now) -> plan`, with a reason for every
//! decision.
//!
//! Pure: no I/O and no clock. The caller observes what is deployed, passes the time in, and gets
//! back what to do. Jitter is deterministic per host and certificate, so that a fleet spreads
//! its renewals without any coordination and a re-run on the same host makes the same decision.
//!
//! Each certificate renews at a slot of its own: the last point, at or before the renewal
//! point, of a grid fixed in absolute time whose period is the width of the jitter window and
//! whose phase is the host's [`jitter_fraction`]. A certificate renewed at its slot finds its
//! next slot exactly one period later, so a fleet issued all at once (rebuilt from Ansible)
//! spreads over one period at its first renewal and stays spread, instead of renewing in waves
//! for ever.

use std::fmt;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::cert::Certificate;
use crate::key::KeyAlgorithm;
use crate::name::SubjectName;
use crate::profile::Profile;

/// When a certificate becomes due for renewal.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum RenewAt {
    /// After this fraction of the lifetime has elapsed (0.0–1.0; default 2/3).
    Fraction(f64),
    /// This long before expiry.
    BeforeExpiry(Duration),
}

impl Default for RenewAt {
    fn default() -> Self {
        Self::Fraction(2.0 / 3.0)
    }
}

/// What a certificate should be: [`Desired::new`], then the renewal settings that differ from
/// the defaults.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Desired {
    /// Subject common name.
    pub common_name: String,
    /// Subject alternative names (the common name included when it is a name).
    pub names: Vec<SubjectName>,
    /// Profile.
    pub profile: Profile,
    /// Key algorithm.
    pub key_algorithm: KeyAlgorithm,
    /// Renewal point.
    pub renew_at: RenewAt,
    /// How the deployed certificate's profile must match [`Desired::profile`].
    pub profile_match: ProfileMatch,
    /// Width of the window before the renewal point in which the renewal slot falls, as a
    /// fraction of the lifetime; capped so that the window never opens before
    /// [`EARLIEST_RENEWAL`] of the lifetime. 0 renews at the renewal point itself.
    pub jitter: f64,
    /// How long after its backend's issuer changed (an issuer rollover) the certificates it did
    /// not sign are reissued over: each at its own point of this window (its jitter phase),
    /// none later than its renewal slot. Zero reissues them at once.
    pub issuer_spread: Duration,
}

/// How strictly a certificate's profile (its EKUs) must match the one asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ProfileMatch {
    /// The same usages, no more: a changed profile is reissued.
    #[default]
    Exact,
    /// At least the usages asked for: for an authority that decides the EKUs itself (an ACME
    /// server adding clientAuth), where reissuing would bring the same usages back forever.
    Covers,
}

/// The default jitter: the widest window, from [`EARLIEST_RENEWAL`] of the lifetime to the
/// renewal point (from day 3 to day 20 of a 30-day certificate renewed at two thirds).
pub const DEFAULT_JITTER: f64 = 1.0;

/// The earliest renewal, as a fraction of the lifetime, that jitter may bring a renewal to.
pub const EARLIEST_RENEWAL: f64 = 0.1;

impl Desired {
    /// What `request` asks for, with a key of `key_algorithm`, renewed at the default point
    /// (two thirds of the lifetime) with the default jitter.
    pub fn new(request: &crate::request::CertificateRequest, key_algorithm: KeyAlgorithm) -> Self {
        Self {
            common_name: request.common_name().to_owned(),
            names: request.names().to_vec(),
            profile: request.profile(),
            key_algorithm,
            renew_at: RenewAt::default(),
            profile_match: ProfileMatch::Exact,
            jitter: DEFAULT_JITTER,
            issuer_spread: Duration::ZERO,
        }
    }
}

/// What is deployed now, as far as the planner needs to know.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Observed {
    /// Nothing deployed.
    Missing,
    /// Files exist but cannot be used; the text says why.
    Unusable(String),
    /// A parsed certificate.
    Present(Current),
}

/// The facts about a deployed certificate: few enough to be kept between runs, so that a host
/// with thousands of certificates need not read them all every time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Current {
    /// Subject common name.
    pub common_name: Option<String>,
    /// Subject alternative names.
    pub names: Vec<SubjectName>,
    /// Profile from the EKUs.
    pub profile: Option<Profile>,
    /// Key algorithm.
    pub key_algorithm: Option<KeyAlgorithm>,
    /// Start of validity.
    #[serde(with = "time::serde::timestamp")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::timestamp")]
    pub not_after: OffsetDateTime,
    /// Whether the private key matches the certificate.
    pub key_matches: bool,
    /// Whether it was issued by the backend's current CA (`None`: unknown, not checked).
    pub issuer_current: Option<bool>,
    /// Whether the CAs kept with it are the backend's trust bundle (`None`: not checked).
    #[serde(default)]
    pub trust_current: Option<bool>,
}

/// What the caller found out about a certificate that the certificate itself does not say
/// (the default: nothing proven, a key that does not match, the issuer not checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Checked {
    /// Whether the private key kept with it matches.
    pub key_matches: bool,
    /// Whether the backend's current CA signed it (`None`: not checked).
    pub issuer_current: Option<bool>,
    /// Whether the CAs kept with it are the backend's trust bundle (`None`: not checked).
    pub trust_current: Option<bool>,
}

impl Current {
    /// The facts of `certificate` with what the caller `checked` (it may hold only the public
    /// half of the key, and knows the backend's issuer).
    pub fn from_certificate(certificate: &Certificate, checked: Checked) -> Self {
        let info = certificate.info();
        Self {
            common_name: info.common_name.clone(),
            names: info.subject_alt_names.clone(),
            profile: info.profile,
            key_algorithm: info.key_algorithm,
            not_before: info.not_before,
            not_after: info.not_after,
            key_matches: checked.key_matches,
            issuer_current: checked.issuer_current,
            trust_current: checked.trust_current,
        }
    }
}

/// Why a certificate is (re)issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Reason {
    /// No certificate is deployed.
    Missing,
    /// The deployed files cannot be parsed or read.
    Unusable,
    /// The private key does not match the certificate.
    KeyMismatch,
    /// The names differ from the configuration.
    NamesChanged,
    /// The profile differs from the configuration.
    ProfileChanged,
    /// The key algorithm differs from the configuration.
    KeyAlgorithmChanged,
    /// Issued by a CA other than the backend's current one.
    IssuerChanged,
    /// The backend's trust bundle changed (a root rollover): the certificate stays, its `ca`
    /// files are deployed again with the new bundle.
    TrustChanged,
    /// Expired.
    Expired,
    /// Past its renewal point.
    Due,
    /// The caller asked for a new certificate whatever the state.
    Forced,
}

impl Reason {
    /// A short kebab-case name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Unusable => "unusable",
            Self::KeyMismatch => "key-mismatch",
            Self::NamesChanged => "names-changed",
            Self::ProfileChanged => "profile-changed",
            Self::KeyAlgorithmChanged => "key-algorithm-changed",
            Self::IssuerChanged => "issuer-changed",
            Self::TrustChanged => "trust-changed",
            Self::Expired => "expired",
            Self::Due => "due",
            Self::Forced => "forced",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The decision for one certificate.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Decision {
    /// Keep it; renewal is due at `renew_after`.
    Keep {
        /// When it becomes due (its slot: jitter applied).
        #[serde(with = "time::serde::rfc3339")]
        renew_after: OffsetDateTime,
    },
    /// Issue a new certificate.
    Issue {
        /// Why.
        reason: Reason,
        /// Detail for the operator (what changed, what was found).
        detail: String,
    },
}

/// Deterministic jitter in `[0, 1)` for a host and a certificate name (SHA-256 of both).
pub fn jitter_fraction(host: &str, name: &str) -> f64 {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(host.as_bytes());
    ctx.update(&[0]);
    ctx.update(name.as_bytes());
    let digest = ctx.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    // 53 bits: exactly representable in an f64.
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

/// When a certificate valid from `not_before` to `not_after` becomes due, before jitter.
pub fn renewal_point(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    renew_at: RenewAt,
) -> OffsetDateTime {
    let lifetime = not_after - not_before;
    match renew_at {
        RenewAt::Fraction(f) => not_before + lifetime * f.clamp(0.0, 1.0),
        RenewAt::BeforeExpiry(d) => not_after - d,
    }
}

/// The circumstances of a decision: the time, this host's jitter for the certificate, and
/// whether a new certificate is wanted whatever the state.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Moment {
    /// The time of the decision.
    pub now: OffsetDateTime,
    /// [`jitter_fraction`] for this host and certificate.
    pub jitter: f64,
    /// Reissue whatever the state.
    pub force: bool,
    /// Since when the backend's current issuer has been seen (the start of an issuer
    /// rollover's spread); `None`: unknown, a certificate of another issuer is due at once.
    pub issuer_since: Option<OffsetDateTime>,
}

impl Moment {
    /// A decision at `now` with this jitter fraction, not forced.
    pub fn new(now: OffsetDateTime, jitter: f64) -> Self {
        Self {
            now,
            jitter,
            force: false,
            issuer_since: None,
        }
    }

    /// The same moment, forcing a new certificate.
    #[must_use]
    pub fn forced(mut self) -> Self {
        self.force = true;
        self
    }
}

/// Decides what to do with one certificate.
pub fn decide(desired: &Desired, observed: &Observed, at: &Moment) -> Decision {
    let issue = |reason, detail: String| Decision::Issue { reason, detail };
    let now = at.now;
    let current = match observed {
        Observed::Missing => return issue(Reason::Missing, "no certificate deployed".to_owned()),
        Observed::Unusable(why) => return issue(Reason::Unusable, why.clone()),
        Observed::Present(c) => c,
    };
    if at.force {
        return issue(Reason::Forced, "a new certificate was asked for".to_owned());
    }
    if !current.key_matches {
        return issue(
            Reason::KeyMismatch,
            "the private key does not match the certificate".to_owned(),
        );
    }
    if current.not_after <= now {
        return issue(
            Reason::Expired,
            format!("expired {}", rfc3339(current.not_after)),
        );
    }
    // Another issuer signed it: due at once, or at its turn in the rollover's spread (the
    // checks below still apply meanwhile).
    let mut issuer_turn = None;
    if current.issuer_current == Some(false) {
        let detail = "issued by a CA other than the backend's current one";
        match at
            .issuer_since
            .filter(|_| desired.issuer_spread > Duration::ZERO)
        {
            Some(since) => {
                let turn = (since + desired.issuer_spread * at.jitter.clamp(0.0, 1.0))
                    .min(renewal_slot(current, desired, at.jitter));
                if now >= turn {
                    return issue(
                        Reason::IssuerChanged,
                        format!(
                            "{detail} (its turn {} in the spread from {})",
                            rfc3339(turn),
                            rfc3339(since)
                        ),
                    );
                }
                issuer_turn = Some(turn);
            }
            None => return issue(Reason::IssuerChanged, detail.to_owned()),
        }
    }
    if let Some(detail) = names_differ(desired, current) {
        return issue(Reason::NamesChanged, detail);
    }
    // Settings of one value each: the first that differs decides.
    let changes = [
        (
            Reason::ProfileChanged,
            "profile",
            !profile_matches(current.profile, desired),
            current.profile.map_or("none", Profile::name),
            desired.profile.name(),
        ),
        (
            Reason::KeyAlgorithmChanged,
            "key",
            current.key_algorithm != Some(desired.key_algorithm),
            current.key_algorithm.map_or("unknown", KeyAlgorithm::name),
            desired.key_algorithm.name(),
        ),
    ];
    if let Some((reason, what, _, have, want)) = changes.into_iter().find(|c| c.2) {
        return issue(reason, format!("{what} {have} instead of {want}"));
    }
    let renew_after = renewal_slot(current, desired, at.jitter);
    if now >= renew_after {
        return issue(
            Reason::Due,
            format!(
                "renewal point {} passed; expires {}",
                rfc3339(renew_after),
                rfc3339(current.not_after)
            ),
        );
    }
    if current.trust_current == Some(false) {
        return issue(
            Reason::TrustChanged,
            "the backend's trust bundle changed: its CA files are deployed again".to_owned(),
        );
    }
    Decision::Keep {
        renew_after: issuer_turn.map_or(renew_after, |t| t.min(renew_after)),
    }
}

/// The renewal slot of `current`: the last point at or before its renewal point of the grid
/// whose period is the jitter window and whose phase is `phase` (see the module docs).
pub fn renewal_slot(current: &Current, desired: &Desired, phase: f64) -> OffsetDateTime {
    let lifetime = current.not_after - current.not_before;
    let earliest = current.not_before + lifetime * EARLIEST_RENEWAL;
    // A `renew_before` as long as the lifetime the CA actually granted (shorter than the one
    // asked for: a role's max_ttl, an ACME profile) would make it due at once, on every run.
    let point =
        renewal_point(current.not_before, current.not_after, desired.renew_at).max(earliest);
    let window = (point - earliest).min(lifetime * desired.jitter.clamp(0.0, 1.0));
    // Whole seconds: the grid must not move when the lifetime differs by a fraction of a
    // second from one issue to the next.
    let period = window.as_seconds_f64().round() as i64;
    if period <= 0 {
        return point;
    }
    let offset = (phase.clamp(0.0, 1.0) * period as f64) as i64 % period;
    let t = point.unix_timestamp();
    let slot = (t - offset).div_euclid(period) * period + offset;
    OffsetDateTime::from_unix_timestamp(slot).unwrap_or(point)
}

fn profile_matches(current: Option<Profile>, desired: &Desired) -> bool {
    match (current, desired.profile_match) {
        (Some(p), ProfileMatch::Exact) => p == desired.profile,
        (Some(p), ProfileMatch::Covers) => {
            (p.server() || !desired.profile.server()) && (p.client() || !desired.profile.client())
        }
        (None, _) => false,
    }
}

fn names_differ(desired: &Desired, current: &Current) -> Option<String> {
    if current.common_name.as_deref() != Some(desired.common_name.as_str()) {
        return Some(format!(
            "common name {:?} instead of {:?}",
            current.common_name.as_deref().unwrap_or(""),
            desired.common_name
        ));
    }
    let mut want = desired.names.clone();
    let mut have = current.names.clone();
    want.sort();
    want.dedup();
    have.sort();
    have.dedup();
    if want == have {
        return None;
    }
    let added: Vec<String> = want
        .iter()
        .filter(|n| !have.contains(n))
        .map(ToString::to_string)
        .collect();
    let removed: Vec<String> = have
        .iter()
        .filter(|n| !want.contains(n))
        .map(ToString::to_string)
        .collect();
    Some(format!(
        "names changed (add: {}; remove: {})",
        if added.is_empty() {
            "-".to_owned()
        } else {
            added.join(", ")
        },
        if removed.is_empty() {
            "-".to_owned()
        } else {
            removed.join(", ")
        }
    ))
}

fn rfc3339(t: OffsetDateTime) -> String {
    crate::error::Rfc3339(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn desired() -> Desired {
        Desired {
            common_name: "web.example.internal".into(),
            names: vec![SubjectName::parse("web.example.internal").unwrap()],
            profile: Profile::Server,
            key_algorithm: KeyAlgorithm::EcdsaP256,
            renew_at: RenewAt::default(),
            profile_match: ProfileMatch::Exact,
            jitter: 0.0,
            issuer_spread: Duration::ZERO,
        }
    }

    fn current() -> Current {
        Current {
            common_name: Some("web.example.internal".into()),
            names: vec![SubjectName::parse("web.example.internal").unwrap()],
            profile: Some(Profile::Server),
            key_algorithm: Some(KeyAlgorithm::EcdsaP256),
            not_before: datetime!(2026-01-01 0:00 UTC),
            not_after: datetime!(2026-01-31 0:00 UTC),
            key_matches: true,
            issuer_current: Some(true),
            trust_current: Some(true),
        }
    }

    fn reason(d: Decision) -> Option<Reason> {
        match d {
            Decision::Issue { reason, .. } => Some(reason),
            Decision::Keep { .. } => None,
        }
    }

    /// An issuer rollover with a spread: each certificate at its phase of the window from
    /// the change, none past its renewal slot; other reasons are not held back.
    #[test]
    fn an_issuer_change_is_spread_by_the_phase() {
        let since = datetime!(2026-01-10 0:00 UTC);
        let now = datetime!(2026-01-10 6:00 UTC);
        let mut d = desired();
        d.issuer_spread = Duration::hours(24);
        let mut c = current();
        c.issuer_current = Some(false);
        let at = |phase: f64| Moment {
            issuer_since: Some(since),
            ..Moment::new(now, phase)
        };
        let observed = Observed::Present(c.clone());
        // Phase 0.1: its turn (02:24) has come.
        assert_eq!(
            reason(decide(&d, &observed, &at(0.1))),
            Some(Reason::IssuerChanged)
        );
        // Phase 0.5: kept until noon.
        assert_eq!(
            decide(&d, &observed, &at(0.5)),
            Decision::Keep {
                renew_after: datetime!(2026-01-10 12:00 UTC)
            }
        );
        // Unknown start, or no spread: at once.
        assert_eq!(
            reason(decide(&d, &observed, &Moment::new(now, 0.5))),
            Some(Reason::IssuerChanged)
        );
        let mut at_once = d.clone();
        at_once.issuer_spread = Duration::ZERO;
        assert_eq!(
            reason(decide(&at_once, &observed, &at(0.5))),
            Some(Reason::IssuerChanged)
        );
        // A names change is not held back by the spread.
        let mut renamed = c;
        renamed.common_name = Some("other".into());
        assert_eq!(
            reason(decide(&d, &Observed::Present(renamed), &at(0.5))),
            Some(Reason::NamesChanged)
        );
    }

    #[test]
    fn keeps_until_two_thirds_then_renews() {
        let now = datetime!(2026-01-15 0:00 UTC);
        let c = Observed::Present(current());
        assert_eq!(reason(decide(&desired(), &c, &Moment::new(now, 0.0))), None);
        // 2/3 of 30 days = day 20.
        assert_eq!(
            reason(decide(
                &desired(),
                &c,
                &Moment::new(datetime!(2026-01-20 23:00 UTC), 0.0)
            )),
            None
        );
        assert_eq!(
            reason(decide(
                &desired(),
                &c,
                &Moment::new(datetime!(2026-01-21 0:00 UTC), 0.0)
            )),
            Some(Reason::Due)
        );
    }

    fn slot(phase: f64, current: &Current) -> OffsetDateTime {
        let mut d = desired();
        d.jitter = DEFAULT_JITTER;
        renewal_slot(current, &d, phase)
    }

    #[test]
    fn the_slot_falls_between_the_earliest_renewal_and_the_renewal_point() {
        let c = current();
        // 10 % and 2/3 of 30 days: day 3 and day 20.
        let (earliest, point) = (
            datetime!(2026-01-04 0:00 UTC),
            datetime!(2026-01-21 0:00 UTC),
        );
        let mut d = desired();
        d.jitter = DEFAULT_JITTER;
        for i in 0..100 {
            let phase = f64::from(i) / 100.0;
            let at = slot(phase, &c);
            assert!(earliest <= at && at <= point, "{phase}: {at}");
            let seen = Observed::Present(c.clone());
            let before = Moment::new(at - Duration::seconds(1), phase);
            assert_eq!(reason(decide(&d, &seen, &before)), None, "{phase}");
            assert_eq!(
                reason(decide(&d, &seen, &Moment::new(at, phase))),
                Some(Reason::Due),
                "{phase}"
            );
        }
        // A narrower jitter narrows the window: 5 % of 30 days before day 20.
        d.jitter = 0.05;
        for i in 0..100 {
            let at = renewal_slot(&c, &d, f64::from(i) / 100.0);
            assert!(point - Duration::hours(36) <= at && at <= point, "{at}");
        }
    }

    #[test]
    fn a_certificate_renewed_at_its_slot_renews_one_period_later() {
        let period = Duration::days(17);
        for phase in [0.0, 0.3, 0.99] {
            let first = slot(phase, &current());
            // Issued at the first run after its slot, backdated as Vault does.
            let mut next = current();
            next.not_before = first + Duration::minutes(7) - Duration::seconds(30);
            next.not_after = next.not_before + Duration::days(30);
            assert_eq!(slot(phase, &next), first + period, "{phase}");
        }
    }

    #[test]
    fn certificates_issued_at_once_spread_over_the_whole_window() {
        let c = current();
        let earliest = datetime!(2026-01-04 0:00 UTC);
        let mut tenths = [0u32; 10];
        for h in 0..2000 {
            let at = slot(jitter_fraction(&format!("host-{h}"), "web"), &c);
            let tenth = ((at - earliest) / Duration::days(17) * 10.0) as usize;
            tenths[tenth.min(9)] += 1;
        }
        assert!(
            tenths.iter().all(|&n| (140..260).contains(&n)),
            "{tenths:?}"
        );
    }

    #[test]
    fn a_renewal_point_before_issue_is_brought_to_the_earliest_renewal() {
        let mut d = desired();
        // 40 days before expiry, of a certificate granted 30: never before day 3.
        d.renew_at = RenewAt::BeforeExpiry(Duration::days(40));
        assert_eq!(
            renewal_slot(&current(), &d, 0.5),
            datetime!(2026-01-04 0:00 UTC)
        );
    }

    #[test]
    fn no_jitter_renews_at_the_point() {
        let mut d = desired();
        d.jitter = 0.0;
        assert_eq!(
            renewal_slot(&current(), &d, 0.7),
            datetime!(2026-01-21 0:00 UTC)
        );
    }

    #[test]
    fn before_expiry_rule() {
        let mut d = desired();
        d.renew_at = RenewAt::BeforeExpiry(Duration::days(7));
        let c = Observed::Present(current());
        assert_eq!(
            reason(decide(
                &d,
                &c,
                &Moment::new(datetime!(2026-01-23 23:00 UTC), 0.0)
            )),
            None
        );
        assert_eq!(
            reason(decide(
                &d,
                &c,
                &Moment::new(datetime!(2026-01-24 0:00 UTC), 0.0)
            )),
            Some(Reason::Due)
        );
    }

    #[test]
    fn every_reason() {
        let now = datetime!(2026-01-02 0:00 UTC);
        let d = desired();
        assert_eq!(
            reason(decide(&d, &Observed::Missing, &Moment::new(now, 0.0))),
            Some(Reason::Missing)
        );
        assert_eq!(
            reason(decide(
                &d,
                &Observed::Unusable("bad".into()),
                &Moment::new(now, 0.0)
            )),
            Some(Reason::Unusable)
        );
        let with = |f: &dyn Fn(&mut Current)| {
            let mut c = current();
            f(&mut c);
            reason(decide(&d, &Observed::Present(c), &Moment::new(now, 0.0)))
        };
        assert_eq!(with(&|c| c.key_matches = false), Some(Reason::KeyMismatch));
        assert_eq!(
            with(&|c| c.not_after = datetime!(2026-01-01 12:00 UTC)),
            Some(Reason::Expired)
        );
        assert_eq!(
            with(&|c| c.issuer_current = Some(false)),
            Some(Reason::IssuerChanged)
        );
        assert_eq!(with(&|c| c.issuer_current = None), None);
        // A changed trust bundle redeploys what is in place, unless something else reissues.
        assert_eq!(
            with(&|c| c.trust_current = Some(false)),
            Some(Reason::TrustChanged)
        );
        assert_eq!(
            with(&|c| {
                c.trust_current = Some(false);
                c.issuer_current = Some(false);
            }),
            Some(Reason::IssuerChanged)
        );
        assert_eq!(with(&|c| c.trust_current = None), None);
        assert_eq!(
            with(&|c| c.names.push(SubjectName::parse("10.0.0.1").unwrap())),
            Some(Reason::NamesChanged)
        );
        assert_eq!(
            with(&|c| c.common_name = Some("x".into())),
            Some(Reason::NamesChanged)
        );
        assert_eq!(
            with(&|c| c.profile = Some(Profile::Client)),
            Some(Reason::ProfileChanged)
        );
        // An authority that decides the usages itself: more than asked is kept, less is not.
        let covers = |has: Profile, wanted: Profile| {
            let mut d = desired();
            d.profile = wanted;
            d.profile_match = ProfileMatch::Covers;
            let mut c = current();
            c.profile = Some(has);
            reason(decide(&d, &Observed::Present(c), &Moment::new(now, 0.0)))
        };
        assert_eq!(covers(Profile::ServerClient, Profile::Server), None);
        assert_eq!(
            covers(Profile::Server, Profile::ServerClient),
            Some(Reason::ProfileChanged)
        );
        assert_eq!(
            with(&|c| c.key_algorithm = Some(KeyAlgorithm::Rsa2048)),
            Some(Reason::KeyAlgorithmChanged)
        );
        assert_eq!(
            reason(decide(
                &d,
                &Observed::Present(current()),
                &Moment::new(now, 0.0).forced()
            )),
            Some(Reason::Forced)
        );
    }

    #[test]
    fn jitter_is_deterministic_and_spread() {
        assert_eq!(
            jitter_fraction("web-1", "api"),
            jitter_fraction("web-1", "api")
        );
        assert_ne!(
            jitter_fraction("web-1", "api"),
            jitter_fraction("web-2", "api")
        );
        let values: Vec<f64> = (0..1000)
            .map(|i| jitter_fraction(&format!("h{i}"), "c"))
            .collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!((0.45..0.55).contains(&mean), "{mean}");
    }
}
