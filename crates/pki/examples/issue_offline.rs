//! Issue a certificate from an offline CA made on the spot, write it as PEM files, and verify
//! it against the CA.
//!
//! ```sh
//! cargo run -p pki --example issue_offline
//! ```

use pki::authority::offline::{self, InitOptions, KeyProtection, OfflineCa};
use pki::bundle::{self, Existing};
use pki::{Certificate, CertificateRequest, KeyAlgorithm, Profile, SubjectName, cert, clock};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let work = tempfile::tempdir()?;
    let now = clock::now();

    // A root and an intermediate limited to one zone and one private network (without a
    // permitted range such a CA signs no IP address). Real CAs encrypt their keys:
    // `KeyProtection::Passphrase(…)`.
    let mut options = InitOptions::new(KeyProtection::None);
    options.name = "Example Internal".into();
    options.permitted_dns = vec!["example.internal".into()];
    options.permitted_ip = vec!["10.0.0.0/8".into()];
    let ca_dir = work.path().join("ca");
    offline::init(&ca_dir, &options, now)?;

    let mut ca = OfflineCa::open(&ca_dir)?;
    ca.unlock(None)?;
    let request = CertificateRequest::new(
        "api.example.internal",
        [SubjectName::parse("10.0.0.7")?],
        Profile::Server,
        pki::request::DEFAULT_TTL,
    )?;
    let issued = ca.issue(&request, KeyAlgorithm::EcdsaP256, now)?;
    let files = bundle::write_dir(&work.path().join("api"), &issued, Existing::Refuse)?;

    // Check it the way a client would: up to the root, for a TLS server.
    let mut chain: Vec<Certificate> = issued.chain.clone();
    chain.extend(issued.root.clone());
    cert::verify_bundle(&issued.certificate, &chain, now)?;

    let info = issued.certificate.info();
    println!("issued serial {} for {:?}", info.serial, info.common_name);
    for f in files {
        println!("  wrote {}", f.display());
    }
    Ok(())
}
