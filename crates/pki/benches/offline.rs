//! Offline CA benchmarks: library issuance against ring's own P-256 keygen + sign in the same
//! run, the passphrase KDF, CRL building and listing over a 100,000-row inventory.
//!
//! Run with `cargo bench -p pki --bench offline` (or `scripts/bench`, which adds the command-line
//! comparisons with openssl and cfssl). Figures are printed, one per line; BENCHMARKS.md records
//! them with the command that produced them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
#![allow(clippy::disallowed_methods)] // benchmarks read the wall clock

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pki::authority::offline::{
    self, CaSigner, InitOptions, Issued, KeyProtection, ListFilter, OfflineCa, RevocationReason,
    Signing,
};
use pki::{
    CertificateRequest, KeyAlgorithm, PrivateKey, Profile, SecretString, Serial, SubjectKey, clock,
};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn init_ca(dir: &Path, protection: KeyProtection) {
    let mut options = InitOptions::new(protection);
    options.name = "Bench".into();
    offline::init(dir, &options, clock::now()).unwrap();
}

fn signer(dir: &Path) -> CaSigner {
    let cert =
        pki::Certificate::from_pem(&std::fs::read(dir.join("intermediate.pem")).unwrap(), "i")
            .unwrap();
    let key = PrivateKey::from_pem(
        &std::fs::read(dir.join("intermediate.key.pem")).unwrap(),
        "k",
    )
    .unwrap();
    CaSigner::new(cert, key, "k").unwrap()
}

/// ring alone: P-256 key generation + one signature over a certificate-sized message.
fn ring_baseline(n: usize) -> Duration {
    let rng = SystemRandom::new();
    let tbs = [0x5au8; 600];
    let start = Instant::now();
    for _ in 0..n {
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, doc.as_ref(), &rng).unwrap();
        std::hint::black_box(pair.sign(&rng, &tbs).unwrap());
    }
    start.elapsed()
}

/// The library: new key, random serial, policy check, signed leaf, parsed back, cert and key PEM.
fn library_issue(signer: &CaSigner, request: &CertificateRequest, n: usize) -> Duration {
    let now = clock::now();
    let start = Instant::now();
    for _ in 0..n {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let serial = Serial::random().unwrap();
        let cert = signer
            .sign(request, SubjectKey::Key(&key), &Signing::new(&serial, now))
            .unwrap();
        std::hint::black_box((cert.pem(), key.to_pkcs8_pem()));
    }
    start.elapsed()
}

fn per_second(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let keep = args
        .iter()
        .position(|a| a == "--keep")
        .map(|i| PathBuf::from(&args[i + 1]));
    let quick = args.iter().any(|a| a == "--quick");
    let tmp = tempfile::tempdir().unwrap();

    // --- issuance, one core ---
    let plain = tmp.path().join("plain");
    init_ca(&plain, KeyProtection::None);
    let signer = signer(&plain);
    let request = CertificateRequest::new(
        "bench.example.internal",
        [pki::SubjectName::parse("10.0.0.1").unwrap()],
        Profile::Server,
        pki::duration::parse("30d").unwrap(),
    )
    .unwrap();
    let n = if quick { 2_000 } else { 20_000 };
    let rounds = 5;
    let mut ours = Vec::new();
    let mut ring = Vec::new();
    // Interleave the two so that machine noise hits both alike.
    for _ in 0..rounds {
        ring.push(ring_baseline(n));
        ours.push(library_issue(&signer, &request, n));
    }
    let ours_rate = per_second(n, median(ours));
    let ring_rate = per_second(n, median(ring));
    println!(
        "library issue P-256 leaf (keygen+sign+PEM), 1 core: {ours_rate:.0} certs/s ({:.1} us each)",
        1e6 / ours_rate
    );
    println!(
        "ring P-256 keygen+sign, same run, 1 core:           {ring_rate:.0} /s ({:.1} us each)",
        1e6 / ring_rate
    );
    println!(
        "ratio library / ring:                               {:.2}",
        ours_rate / ring_rate
    );

    // --- the passphrase KDF, on its own line ---
    let enc = tmp.path().join("encrypted");
    init_ca(
        &enc,
        KeyProtection::Passphrase(SecretString::new("bench passphrase".into())),
    );
    let pass = SecretString::new("bench passphrase".into());
    let mut unlocks = Vec::new();
    for _ in 0..7 {
        let mut ca = OfflineCa::open(&enc).unwrap();
        let t = Instant::now();
        ca.unlock(Some(&pass)).unwrap();
        unlocks.push(t.elapsed());
    }
    println!(
        "unlock encrypted CA key (scrypt N=2^14 r=8 p=1):    {:.1} ms median",
        median(unlocks).as_secs_f64() * 1e3
    );

    // --- 100,000-row inventory: list and CRL ---
    let rows = if quick { 10_000 } else { 100_000 };
    let big = keep.unwrap_or_else(|| tmp.path().join("big"));
    let _ = std::fs::remove_dir_all(&big);
    init_ca(&big, KeyProtection::None);
    let mut ca = OfflineCa::open(&big).unwrap();
    ca.unlock(None).unwrap();
    let now = clock::now();
    let t = Instant::now();
    let big_signer = self::signer(&big);
    let serials: Vec<Serial> = ca
        .inventory()
        .in_transaction(|inv| {
            let mut serials = Vec::with_capacity(rows);
            for i in 0..rows {
                let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256)?;
                let req = CertificateRequest::new(
                    &format!("host-{i}.example.internal"),
                    [],
                    Profile::Server,
                    pki::duration::parse("90d")?,
                )?;
                let serial = Serial::random()?;
                let cert =
                    big_signer.sign(&req, SubjectKey::Key(&key), &Signing::new(&serial, now))?;
                inv.insert(
                    &cert,
                    &Issued::new(Profile::Server, KeyAlgorithm::EcdsaP256, now),
                )?;
                serials.push(serial);
            }
            Ok(serials)
        })
        .unwrap();
    ca.inventory()
        .in_transaction(|inv| {
            for s in &serials {
                inv.revoke(s, RevocationReason::Superseded, now)?;
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "(setup: {rows} certificates issued and revoked in {:.1} s)",
        t.elapsed().as_secs_f64()
    );

    let mut lists = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        let records = ca.list(&ListFilter::default(), clock::now()).unwrap();
        lists.push(t.elapsed());
        assert_eq!(records.len(), rows);
    }
    println!(
        "library list of {rows} rows:                     {:.1} ms median",
        median(lists).as_secs_f64() * 1e3
    );

    let mut crls = Vec::new();
    let mut written = Vec::new();
    let mut size = 0;
    let out = tmp.path().join("crl.pem");
    for _ in 0..7 {
        let t = Instant::now();
        let crl = ca
            .crl(pki::duration::parse("7d").unwrap(), clock::now())
            .unwrap();
        crls.push(t.elapsed());
        pki::fsio::write_atomic(&out, crl.pem().as_bytes(), pki::fsio::FileMode::PUBLIC).unwrap();
        written.push(t.elapsed());
        assert_eq!(crl.entries, rows);
        size = crl.der.len();
    }
    println!(
        "CRL with {rows} revoked entries (inventory read + sign): {:.1} ms median, {:.2} MB DER",
        median(crls).as_secs_f64() * 1e3,
        size as f64 / 1e6
    );
    println!(
        "  ... plus PEM and a durable write (fsync):   {:.1} ms median",
        median(written).as_secs_f64() * 1e3
    );
}
