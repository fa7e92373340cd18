//! Plan a rotation with the pure planner: what happens to one certificate on each day of its
//! life, with a fixed clock and this host's jitter.
//!
//! ```sh
//! cargo run -p pki --example plan_rotation
//! ```

use pki::authority::offline::{self, InitOptions, KeyProtection, OfflineCa};
use pki::rotation::{self, Current, Decision, Desired, Moment, Observed};
use pki::{CertificateRequest, KeyAlgorithm, Profile};
use time::Duration;
use time::macros::datetime;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let request = CertificateRequest::new(
        "web.example.internal",
        [],
        Profile::Server,
        Duration::days(30),
    )?;
    let desired = Desired::new(&request, KeyAlgorithm::EcdsaP256);

    // A certificate that matches the request, issued on a fixed day by a throwaway CA, and
    // observed as the rotation hook would.
    let issued_on = datetime!(2026-12-01 09:00 UTC);
    let work = tempfile::tempdir()?;
    let ca_dir = work.path().join("ca");
    offline::init(&ca_dir, &InitOptions::new(KeyProtection::None), issued_on)?;
    let mut ca = OfflineCa::open(&ca_dir)?;
    ca.unlock(None)?;
    let cert = ca
        .issue(&request, KeyAlgorithm::EcdsaP256, issued_on)?
        .certificate;
    let mut checked = rotation::Checked::default();
    checked.key_matches = true;
    checked.issuer_current = Some(true);
    let observed = Observed::Present(Current::from_certificate(&cert, checked));

    let jitter = rotation::jitter_fraction("web-1.example.internal", "web");
    for day in [0, 10, 19, 20, 21, 29, 31] {
        let now = issued_on + Duration::days(day);
        match rotation::decide(&desired, &observed, &Moment::new(now, jitter)) {
            Decision::Keep { renew_after } => {
                println!(
                    "day {day:>2}: keep, renew after {}",
                    pki::error::Rfc3339(renew_after)
                )
            }
            Decision::Issue { reason, detail } => {
                println!("day {day:>2}: issue ({reason}: {detail})")
            }
            other => println!("day {day:>2}: {other:?}"),
        }
    }
    // Nothing deployed at all: issue at once.
    let missing = rotation::decide(
        &desired,
        &Observed::Missing,
        &Moment::new(issued_on, jitter),
    );
    println!("nothing deployed: {missing:?}");
    Ok(())
}
