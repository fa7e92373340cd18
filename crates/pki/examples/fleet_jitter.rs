//! A fleet's renewals as the planner spreads them: 10,000 hosts with 5 certificates each
//! (30 days, renewed at two thirds of their life, brought forward by up to the default jitter
//! of 5 % of the lifetime, one fraction per host and certificate), the hook running every 15
//! minutes, over 90 days with a fixed clock. Prints, per scenario, the renewals per hour: the
//! peak, the mean and their ratio. Every renewal time comes from `rotation::decide`.
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
    for (scenario, first_issue) in [
        (
            "all hosts deployed at once (a fleet rebuilt from Ansible)",
            Box::new(|_h: usize| start) as Box<dyn Fn(usize) -> OffsetDateTime>,
        ),
        (
            "hosts deployed evenly over the first 30 days",
            Box::new(move |h: usize| start + TTL * (h as f64 / HOSTS as f64)),
        ),
    ] {
        let hours = SPAN.whole_hours() as usize;
        let mut per_hour = vec![0u32; hours];
        let mut renewals = 0u64;
        for h in 0..HOSTS {
            let host = format!("host-{h}.example.internal");
            for (name, desired, template) in &certs {
                let jitter = rotation::jitter_fraction(&host, name);
                let mut issued = ceil_to_tick(first_issue(h), start);
                loop {
                    let mut current = template.clone();
                    current.not_before = issued;
                    current.not_after = issued + TTL;
                    let observed = Observed::Present(current);
                    let Decision::Keep { renew_after } =
                        rotation::decide(desired, &observed, &Moment::new(issued, jitter))
                    else {
                        return Err("a fresh certificate was not kept".into());
                    };
                    issued = ceil_to_tick(renew_after, start);
                    if issued >= start + SPAN {
                        break;
                    }
                    per_hour[((issued - start).whole_hours()) as usize] += 1;
                    renewals += 1;
                }
            }
        }
        let peak = per_hour.iter().copied().max().unwrap_or(0);
        let mean = renewals as f64 / hours as f64;
        let busiest = per_hour.iter().position(|&n| n == peak).unwrap_or(0);
        // From the first renewal on: the weeks before it, when nothing is due yet, would
        // flatter no design.
        let first = per_hour.iter().position(|&n| n > 0).unwrap_or(0);
        let steady = renewals as f64 / (hours - first) as f64;
        println!("{scenario}:");
        println!(
            "  {renewals} renewals; per hour: peak {peak} (day {}), mean {mean:.1} over 90 days \
             (peak / mean {:.2}), mean {steady:.1} from the first renewal on day {} \
             (peak / mean {:.2})",
            busiest / 24,
            f64::from(peak) / mean,
            first / 24,
            f64::from(peak) / steady
        );
    }
    Ok(())
}

/// The first run of the hook at or after `t` (runs fall every [`TICK`] from `start`).
fn ceil_to_tick(t: OffsetDateTime, start: OffsetDateTime) -> OffsetDateTime {
    let since = (t - start).whole_seconds().max(0);
    let tick = TICK.whole_seconds();
    start + Duration::seconds((since + tick - 1) / tick * tick)
}
