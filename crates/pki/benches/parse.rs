//! The peer of `pki rotate --dry-run` in `scripts/bench rotate`: what deciding over deployed
//! certificates costs done the plain way, reading each file and parsing it with x509-parser
//! (no wrapper of ours), as a tool without a cache would have to.
//!
//! `cargo bench -p pki --bench parse -- DIR NAME [ROUNDS]` reads `DIR/*/NAME` (every
//! certificate a dry run of `scripts/bench` decides over) and prints the median of ROUNDS
//! passes (default 10).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
#![allow(clippy::disallowed_methods)] // benchmarks read the wall clock and files directly

use std::path::PathBuf;
use std::time::{Duration, Instant};

fn main() {
    // `cargo bench` passes `--bench`; the rest are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let [dir, name, rest @ ..] = args.as_slice() else {
        eprintln!("usage: parse DIR NAME [ROUNDS]");
        std::process::exit(2);
    };
    let rounds: usize = rest.first().map_or(10, |r| r.parse().expect("ROUNDS"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("DIR")
        .map(|e| e.unwrap().path().join(name))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut times: Vec<Duration> = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        let mut expiring = 0usize;
        for f in &files {
            let pem_bytes = std::fs::read(f).unwrap();
            let (_, pem) = x509_parser::pem::parse_x509_pem(&pem_bytes).unwrap();
            let (_, cert) = x509_parser::parse_x509_certificate(&pem.contents).unwrap();
            // The decision a dry run makes: due within 30 days?
            let left = cert.validity().time_to_expiration();
            if left.is_none_or(|d| d.whole_days() < 30) {
                expiring += 1;
            }
        }
        times.push(start.elapsed());
        std::hint::black_box(expiring);
    }
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "{:<40} {:8.2} ms median  ({} certificates, {rounds} rounds)",
        "x509-parser: read and parse each file",
        median.as_secs_f64() * 1e3,
        files.len()
    );
}
