//! Human durations for TTLs and renewal windows: `90d`, `12h`, `1d12h`, `10y`, `30m`, `45s`.
//!
//! Units: `s`, `m` (minutes), `h`, `d`, `w` (7 days), `y` (365 days). Components may be combined
//! (`1d12h`); a bare number is seconds. Vault does not accept every one of these forms, so
//! [`vault_ttl`] renders a duration in the one form every Vault version parses.

use time::Duration;

use crate::error::{Error, Result};

const UNITS: [(char, i64); 6] = [
    ('y', 365 * 86_400),
    ('w', 7 * 86_400),
    ('d', 86_400),
    ('h', 3_600),
    ('m', 60),
    ('s', 1),
];

/// The longest duration accepted anywhere (100 years): longer values are typos, and keeping
/// them bounded keeps date arithmetic far from overflow.
pub const MAX: Duration = Duration::days(100 * 365);

/// Parses a duration such as `90d`, `1d12h` or `3600`.
pub fn parse(input: &str) -> Result<Duration> {
    let bad = |reason: &'static str| Error::InvalidDuration {
        input: input.to_owned(),
        reason,
    };
    let text = input.trim();
    if text.is_empty() {
        return Err(bad("empty"));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = text.parse().map_err(|_| bad("number too large"))?;
        return check_range(Duration::seconds(secs), input);
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    let mut seen_units = Vec::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let Some(&(unit, secs)) = UNITS.iter().find(|(u, _)| *u == c.to_ascii_lowercase()) else {
            return Err(bad("unknown unit (use s, m, h, d, w or y)"));
        };
        if digits.is_empty() {
            return Err(bad("a unit must follow a number"));
        }
        if seen_units.contains(&unit) {
            return Err(bad("a unit appears twice"));
        }
        seen_units.push(unit);
        let n: i64 = digits.parse().map_err(|_| bad("number too large"))?;
        digits.clear();
        total = n
            .checked_mul(secs)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| bad("too long"))?;
    }
    if !digits.is_empty() {
        return Err(bad("a number lacks its unit"));
    }
    check_range(Duration::seconds(total), input)
}

fn check_range(d: Duration, input: &str) -> Result<Duration> {
    if d <= Duration::ZERO {
        return Err(Error::InvalidDuration {
            input: input.to_owned(),
            reason: "must be positive",
        });
    }
    if d > MAX {
        return Err(Error::InvalidDuration {
            input: input.to_owned(),
            reason: "longer than 100 years",
        });
    }
    Ok(d)
}

/// Renders a duration compactly with the largest exact units, e.g. `90d`, `1d12h`, `45s`.
pub fn format(d: Duration) -> String {
    let mut secs = d.whole_seconds();
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    if secs < 0 {
        out.push('-');
        secs = -secs;
    }
    // Years and weeks are left out: "400d" is clearer than "1y35d" for certificate lifetimes.
    for (unit, size) in UNITS.iter().filter(|(u, _)| !matches!(u, 'y' | 'w')) {
        if secs >= *size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// A TTL as Vault and OpenBao parse it: whole seconds with an `s` suffix. Vault rejects
/// composite day values such as `1d12h`, but every version accepts `129600s`.
pub fn vault_ttl(d: Duration) -> String {
    format!("{}s", d.whole_seconds())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        assert_eq!(parse("90d").unwrap(), Duration::days(90));
        assert_eq!(parse("1d12h").unwrap(), Duration::hours(36));
        assert_eq!(parse("10y").unwrap(), Duration::days(3650));
        assert_eq!(parse("2w").unwrap(), Duration::days(14));
        assert_eq!(parse("3600").unwrap(), Duration::hours(1));
        assert_eq!(parse("5m30s").unwrap(), Duration::seconds(330));
        assert_eq!(parse(" 12H ").unwrap(), Duration::hours(12));
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "",
            "d",
            "10",
            "0d",
            "-5d",
            "10x",
            "1d1d",
            "5 d",
            "1.5d",
            "99999999999999999999y",
            "101y",
            "12h3",
        ] {
            if bad == "10" {
                continue; // ten seconds is valid
            }
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["90d", "1d12h", "45s", "2h30m", "3650d"] {
            assert_eq!(format(parse(s).unwrap()), s);
        }
        assert_eq!(vault_ttl(parse("1d12h").unwrap()), "129600s");
    }
}
