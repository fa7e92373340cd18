//! Backing off after failed ACME orders. An ACME server counts failed authorizations against
//! a rate limit (Let's Encrypt: 5 per name and account per hour): a hook run every 15
//! minutes that re-orders a failing certificate each time would soon be locked out. Each
//! failure in a row doubles the wait before the next order, from one hour up to a day; the
//! wait is kept in the run state, so it outlives the process. A forced run orders anyway; a
//! success clears it.

use time::{Duration, OffsetDateTime};

use crate::error::Error;
use crate::state::{Backoff, RunState};

/// The wait after the first failure.
const FIRST: Duration = Duration::hours(1);
/// The longest wait.
const LONGEST: Duration = Duration::days(1);

/// The wait after `failures` failed orders in a row.
pub(crate) fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (FIRST * 2i32.pow(doublings)).min(LONGEST)
}

/// Why `name` is not ordered now, if it is still waiting.
pub(crate) fn waiting(state: &RunState, name: &str, now: OffsetDateTime) -> Option<Error> {
    let b = state.certificates.get(name)?.backoff.as_ref()?;
    let until = OffsetDateTime::from_unix_timestamp(b.until).ok()?;
    (now < until).then(|| Error::BackingOff {
        failures: b.failures,
        until,
        last: b.last.clone(),
    })
}

/// Records the outcome of an order for `name`: a failure (with its text) lengthens the wait,
/// a success clears it.
pub(crate) fn record(
    state: &mut RunState,
    name: &str,
    failure: Option<String>,
    now: OffsetDateTime,
) {
    let entry = state.certificates.entry(name.to_owned()).or_default();
    match failure {
        None => entry.backoff = None,
        Some(last) => {
            let failures = entry.backoff.as_ref().map_or(0, |b| b.failures) + 1;
            entry.backoff = Some(Backoff {
                failures,
                until: (now + delay(failures)).unix_timestamp(),
                last,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn waits_double_up_to_a_day_and_a_success_clears_them() {
        assert_eq!(delay(1), Duration::hours(1));
        assert_eq!(delay(2), Duration::hours(2));
        assert_eq!(delay(5), Duration::hours(16));
        assert_eq!(delay(6), Duration::days(1));
        assert_eq!(delay(1000), Duration::days(1));
        let mut state = RunState::default();
        let t = datetime!(2027-01-01 0:00 UTC);
        assert!(waiting(&state, "www", t).is_none());
        record(&mut state, "www", Some("rateLimited".into()), t);
        record(&mut state, "www", Some("rateLimited".into()), t);
        let e = waiting(&state, "www", t + Duration::minutes(119)).unwrap();
        assert!(e.to_string().contains("2 failed order(s)"), "{e}");
        assert!(waiting(&state, "www", t + Duration::hours(2)).is_none());
        record(&mut state, "www", None, t);
        assert!(state.certificates["www"].backoff.is_none());
    }
}
