//! The only place that reads the system clock.
//!
//! Everything else takes `now` as a parameter, so that tests can place a run at any instant
//! (an expired CA, a certificate past its renewal point) without touching the machine's clock.

use time::OffsetDateTime;

/// The current time in UTC, truncated to whole seconds (X.509 times have second precision and
/// comparisons against them should not depend on sub-second noise).
#[allow(clippy::disallowed_methods)] // the one sanctioned clock read
pub fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// The current time in UTC with full precision: for ordering things made within one second
/// (version names), never for comparing with certificate times.
#[allow(clippy::disallowed_methods)] // the one sanctioned clock read
pub fn now_precise() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}
