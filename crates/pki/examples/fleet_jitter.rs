//! A fleet's renewals as the planner spreads them: 10,000 hosts with 5 certificates each
//! (30 days, renewal point at two thirds of their life, the default jitter: each renews at a
//! slot of its own between 10 % of the lifetime and the renewal point), the hook running every
//! 15 minutes, over 90 days with a fixed clock. Prints, per scenario, the renewals per hour:
//! the peak, the mean and their ratio, and the mean time between two renewals of a
//! certificate. Every renewal time comes from `rotation::decide`.
//!
//! ```sh
//! cargo run --release -p pki --example fleet_jitter
//! ```

use pki::authority::offline::{self, InitOptions, KeyProtection, OfflineCa};
use pki::rotation::{self, Current, Decision, Desired, Moment, Observed};
use pki::{CertificateRequest, KeyAlgorithm, Profile};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const HOSTS: usize = 10_000;
const NAMES: [&str; 5] = ["web", "api", "db", "cache", "search"];
const TTL: Duration = Duration::days(30);
const SPAN: Duration = Duration::days(90);
/// How often the hook runs (a cron line every 15 minutes).
const TICK: Duration = Duration::minutes(15);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = datetime!(2027-01-04 00:00 UTC);
    // One real certificate per name, observed as the hook would; the simulation moves only
    // its dates.
    let work = tempfile::tempdir()?;
    let ca_dir = work.path().join("ca");
    offline::init(&ca_dir, &InitOptions::new(KeyProtection::None), start)?;
    let mut ca = OfflineCa::open(&ca_dir)?;
    ca.unlock(None)?;
    let mut certs = Vec::new();
    for name in NAMES {
        let request = CertificateRequest::new(
            &format!("{name}.example.internal"),
            [],
            Profile::Server,
            TTL,
        )?;
        let cert = ca
            .issue(&request, KeyAlgorithm::EcdsaP256, start)?
            .certificate;
        let mut checked = rotation::Checked::default();
        checked.key_matches = true;
        checked.issuer_current = Some(true);
        let current = Current::from_certificate(&cert, checked);
        certs.push((
            name,
            Desired::new(&request, KeyAlgorithm::EcdsaP256),
            current,
        ));
    }

    println!(
        "{HOSTS} hosts x {} certificates, {} days, renewed by rotation::decide, hook every {} min",
        NAMES.len(),
        SPAN.whole_days(),
        TICK.whole_minutes()
    );
    for (scenario, deployed_by, first_issue) in [
        (
            "all hosts deployed at once (a fleet rebuilt from Ansible)",
            Duration::ZERO,
            Box::new(|_h: usize| start) as Box<dyn Fn(usize) -> OffsetDateTime>,
        ),
        (
            "hosts deployed evenly over the first 30 days",
            TTL,
            Box::new(move |h: usize| start + TTL * (h as f64 / HOSTS as f64)),
        ),
    ] {
        let hours = SPAN.whole_hours() as usize;
        let mut per_hour = vec![0u32; hours];
        let mut renewals = 0u64;
        // Time between two renewals of one certificate, summed (the cost of spreading).
        let (mut gaps, mut gap_count) = (Duration::ZERO, 0u32);
        for h in 0..HOSTS {
            let host = format!("host-{h}.example.internal");
            for (name, desired, template) in &certs {
                let jitter = rotation::jitter_fraction(&host, name);
                let mut issued = ceil_to_tick(first_issue(h), start);
                let first_issued = issued;
                loop {
                    let mut current = template.clone();
                    // Backdated by 30 s, as Vault does.
                    current.not_before = issued - Duration::seconds(30);
                    current.not_after = issued + TTL;
                    let observed = Observed::Present(current);
                    let Decision::Keep { renew_after } =
                        rotation::decide(desired, &observed, &Moment::new(issued, jitter))
                    else {
                        return Err("a fresh certificate was not kept".into());
                    };
                    let next = ceil_to_tick(renew_after, start);
                    if next >= start + SPAN {
                        break;
                    }
                    if issued > first_issued {
                        gaps += next - issued;
                        gap_count += 1;
                    }
                    issued = next;
                    per_hour[((issued - start).whole_hours()) as usize] += 1;
                    renewals += 1;
                }
            }
        }
        let peak = per_hour.iter().copied().max().unwrap_or(0);
        let mean = renewals as f64 / hours as f64;
        let busiest = per_hour.iter().position(|&n| n == peak).unwrap_or(0);
        // The steady mean: from the first renewal on, once every host is deployed. Hours
        // when nothing is due yet, or the fleet is still growing, would flatter any design.
        let first = per_hour.iter().position(|&n| n > 0).unwrap_or(0);
        let from = first.max(deployed_by.whole_hours() as usize);
        let steady = f64::from(per_hour[from..].iter().sum::<u32>()) / (hours - from) as f64;
        println!("{scenario}:");
        println!(
            "  {renewals} renewals; per hour: peak {peak} (day {}), mean {mean:.1} over 90 days \
             (peak / mean {:.2}); from day {} on (first renewal, every host deployed) mean \
             {steady:.1}, peak / mean {:.2}",
            busiest / 24,
            f64::from(peak) / mean,
            from / 24,
            f64::from(peak) / steady
        );
        if gap_count > 0 {
            println!(
                "  a certificate renewed again after {:.1} days on average (renewal point: {} days)",
                (gaps / gap_count).as_seconds_f64() / 86_400.0,
                TTL.whole_days() * 2 / 3
            );
        }
    }
    Ok(())
}

/// The first run of the hook at or after `t` (runs fall every [`TICK`] from `start`).
fn ceil_to_tick(t: OffsetDateTime, start: OffsetDateTime) -> OffsetDateTime {
    let since = (t - start).whole_seconds().max(0);
    let tick = TICK.whole_seconds();
    start + Duration::seconds((since + tick - 1) / tick * tick)
}
