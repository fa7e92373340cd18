//! ACME renewal information (ARI, RFC 9773) in the plan: when an ACME server suggests a
//! renewal window for a deployed certificate, the certificate renews at this host's point of
//! that window (fixed per host and certificate), earlier or later than its own renewal point,
//! and the order announces which certificate it replaces. A server without ARI, or one that
//! does not answer, leaves the plan as it was.

use pki::Authority;
use pki::authority::acme::RenewalWindow;
use pki::rotation::{self, Decision, Reason};
use serde_json::json;
use time::OffsetDateTime;

use super::Run;
use super::backend::Signers;
use super::plan::Planned;
use crate::log::Event;
use crate::store::Store;

/// The latest point of a certificate's life, as a fraction, that an ARI window may open at.
const LATEST_ARI_POINT: f64 = 0.9;

/// Consults each ACME backend about the certificates it signs that are deployed and either
/// kept or merely due.
pub(crate) async fn consult(
    run: &Run<'_>,
    signers: &Signers,
    planned: &mut [Planned<'_>],
    store: &Store,
) {
    let now = run.started.at;
    for p in planned.iter_mut() {
        let Some(Authority::Acme(acme)) = signers
            .get(&p.cert.backend)
            .and_then(|s| s.authority.as_ref())
        else {
            continue;
        };
        let due_or_kept = match &p.decision {
            Decision::Keep { .. } => true,
            Decision::Issue { reason, .. } => *reason == Reason::Due,
            _ => false,
        };
        if !due_or_kept {
            continue;
        }
        let current = match (&p.current, &p.version) {
            (Some(c), _) => c.clone(),
            (None, Some(v)) => match store.certificate(&p.cert.name, v) {
                Ok(c) => c,
                Err(_) => continue,
            },
            (None, None) => continue,
        };
        let window = match acme.renewal_window(&current).await {
            Ok(Some(w)) => w,
            Ok(None) => continue,
            Err(e) => {
                let message = format!("no renewal information, renewing on its own schedule: {e}");
                run.opts
                    .log
                    .warn(Event::of("ari-failed", &p.cert.name, message));
                continue;
            }
        };
        // A window that ends before it starts, or opens past the last tenth of the
        // certificate's life, is not followed: the certificate keeps its own schedule.
        let lifetime = current.info().not_after - current.info().not_before;
        let latest = current.info().not_after - lifetime * (1.0 - LATEST_ARI_POINT);
        if window.end < window.start || window.start > latest {
            let message = format!(
                "the suggested window ({} to {}) is not usable; renewing on its own schedule",
                pki::error::Rfc3339(window.start),
                pki::error::Rfc3339(window.end)
            );
            run.opts
                .log
                .warn(Event::of("ari-failed", &p.cert.name, message));
            continue;
        }
        let phase = rotation::jitter_fraction(&run.config.host, &p.cert.name);
        p.decision = within(window, phase, now);
        if let Decision::Issue { detail, .. } = &p.decision {
            if let Err(e) = acme.replacing(&p.cert.request, &current) {
                run.opts
                    .log
                    .warn(Event::of("ari-failed", &p.cert.name, e.to_string()));
            }
            run.opts.log.info(
                Event::of("ari", &p.cert.name, detail.clone())
                    .with(
                        "window_start",
                        json!(pki::error::Rfc3339(window.start).to_string()),
                    )
                    .with(
                        "window_end",
                        json!(pki::error::Rfc3339(window.end).to_string()),
                    ),
            );
        }
    }
}

/// What a certificate's renewal window decides at `now`: kept until this host's point of the
/// window (`phase` of the way through), due from then on.
fn within(window: RenewalWindow, phase: f64, now: OffsetDateTime) -> Decision {
    let point = window.point(phase);
    if now < point {
        return Decision::Keep { renew_after: point };
    }
    Decision::Issue {
        reason: Reason::Due,
        detail: format!(
            "inside the renewal window the ACME server suggests ({} to {})",
            pki::error::Rfc3339(window.start),
            pki::error::Rfc3339(window.end)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_window_moves_renewal_earlier_or_later_than_the_point() {
        let window = RenewalWindow::new(
            datetime!(2027-01-20 0:00 UTC),
            datetime!(2027-01-22 0:00 UTC),
        );
        // Before the window, and before this host's point in it: kept until the point.
        for now in [
            datetime!(2027-01-01 0:00 UTC),
            datetime!(2027-01-20 23:00 UTC),
        ] {
            assert_eq!(
                within(window, 0.5, now),
                Decision::Keep {
                    renew_after: datetime!(2027-01-21 0:00 UTC)
                }
            );
        }
        // From the point on, through the window and past it: due.
        for now in [
            datetime!(2027-01-21 0:00 UTC),
            datetime!(2027-02-01 0:00 UTC),
        ] {
            let Decision::Issue { reason, detail } = within(window, 0.5, now) else {
                panic!("due at {now}");
            };
            assert_eq!(reason, Reason::Due);
            assert!(
                detail.contains("2027-01-20T00:00:00Z to 2027-01-22"),
                "{detail}"
            );
        }
        // Another host's point in the same window.
        assert!(matches!(
            within(window, 0.0, datetime!(2027-01-20 0:00 UTC)),
            Decision::Issue { .. }
        ));
    }
}
