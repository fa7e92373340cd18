//! Run the rotation hook from a config built in code: a throwaway offline CA, one certificate
//! deployed as the five PEM files to a directory. A second run finds nothing to do.
//!
//! ```sh
//! cargo run -p pki-deploy --example rotate_in_code
//! ```

use pki::{CertificateRequest, Profile};
use pki_deploy::config::{Backend, CertificateConfig, Config, CreateCa, OfflineBackend};
use pki_deploy::log::{Level, LogFormat, Logger};
use pki_deploy::rotate::{self, CertAction};
use pki_deploy::service::files::Files;
use pki_deploy::service::{Settings, TargetConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let work = tempfile::tempdir()?;

    // The CA is created on the first run; its keys stay unencrypted only because it is a demo.
    let mut offline = OfflineBackend::new(work.path().join("ca"));
    let mut create = CreateCa::default();
    create.insecure_no_passphrase = true;
    offline.create = Some(create);
    let mut config = Config::new(
        work.path().join("state"),
        "example-host",
        Backend::Offline(offline),
    );

    let request = CertificateRequest::new(
        "web.example.internal",
        [],
        Profile::Server,
        pki::request::DEFAULT_TTL,
    )?;
    let mut web = CertificateConfig::new("web", &request)?;
    let files = Files::standard(&work.path().join("deploy/web"));
    web.targets
        .push(TargetConfig::new(files.into(), Settings::default())?);
    config.certificates.push(web);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let options = rotate::Options::new(Logger::new(LogFormat::Human, Level::Info));
    for run in ["first", "second"] {
        let summary = runtime.block_on(rotate::run(&config, &options))?;
        for c in &summary.certificates {
            println!("{run} run: {} {}", c.name, c.action);
        }
        assert!(!summary.failed(), "the run failed");
    }
    let again = runtime.block_on(rotate::run(&config, &options))?;
    assert_eq!(
        again.count(CertAction::Kept),
        1,
        "nothing is due on a later run"
    );
    println!(
        "deployed: {}",
        work.path().join("deploy/web/cert.pem").display()
    );
    Ok(())
}
