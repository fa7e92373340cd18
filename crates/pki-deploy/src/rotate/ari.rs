//! ACME renewal information (ARI, RFC 9773) in the plan: when an ACME server suggests a
//! renewal window for a deployed certificate, the certificate renews at this host's point of
//! that window (fixed per host and certificate), earlier or later than its own renewal point,
//! and the order announces which certificate it replaces. A server without ARI, or one that
//! does not answer, leaves the plan as it was.

use pki::Authority;
use pki::rotation::{self, Decision, Reason};
use serde_json::json;

use super::Run;
use super::backend::Signers;
use super::plan::Planned;
use crate::log::Event;
use crate::store::Store;

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
        let point = window.point(rotation::jitter_fraction(&run.config.host, &p.cert.name));
        let span = format!(
            "{} to {}",
            pki::error::Rfc3339(window.start),
            pki::error::Rfc3339(window.end)
        );
        if now < point {
            p.decision = Decision::Keep { renew_after: point };
            continue;
        }
        if let Err(e) = acme.replacing(&p.cert.request, &current) {
            run.opts
                .log
                .warn(Event::of("ari-failed", &p.cert.name, e.to_string()));
        }
        run.opts.log.info(
            Event::of(
                "ari",
                &p.cert.name,
                format!("inside the renewal window the ACME server suggests ({span})"),
            )
            .with("window", json!(span)),
        );
        p.decision = Decision::Issue {
            reason: Reason::Due,
            detail: format!("inside the renewal window the ACME server suggests ({span})"),
        };
    }
}
