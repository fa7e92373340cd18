//! `pki doctor`: checks what a rotation needs, each with a verdict and a one-line fix: the
//! config, the state directory, each backend (reachable, authenticated, its clock), each
//! target's files (present, owner, mode), what each service serves now against the
//! files on disk and the store, and each trust file against its backend's bundle. Changes
//! nothing and creates nothing (no ACME account).

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use pki::authority::offline::{CaKeySource, OfflineCa};
use pki::{Certificate, clock};
use pki_deploy::config::{self, Backend, Config};
use pki_deploy::service::{Content, deploy};
use pki_deploy::store::Store;
use serde::Serialize;

use crate::output::{self, Format};

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// The rotation config.
    #[arg(long, value_name = "FILE", default_value = "/etc/pki/rotate.toml")]
    pub config: PathBuf,
}

/// One check.
#[derive(Serialize)]
struct Check {
    check: String,
    ok: bool,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

/// The checks made so far.
#[derive(Default)]
struct Checks(Vec<Check>);

impl Checks {
    fn pass(&mut self, check: impl Into<String>, detail: impl Into<String>) {
        self.0.push(Check {
            check: check.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
        });
    }

    fn fail(
        &mut self,
        check: impl Into<String>,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.0.push(Check {
            check: check.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        });
    }
}

/// How far Vault's clock may be from ours before certificates look not yet valid.
const MAX_SKEW: time::Duration = time::Duration::seconds(30);

pub(crate) async fn run(a: DoctorArgs, format: Format) -> Result<u8> {
    let mut checks = Checks::default();
    match config::load(&a.config) {
        Ok(config) => {
            checks.pass(
                "config",
                format!("{} is valid and safe to trust", a.config.display()),
            );
            state_dir(&config, &mut checks);
            for named in &config.backends {
                backend(&named.name, &named.backend, &mut checks).await;
            }
            targets(&config, &mut checks).await;
            trust_files(&config, &mut checks).await;
        }
        Err(e) => checks.fail(
            "config",
            e.to_string(),
            "correct the file at the line named (or its owner and mode), then run pki doctor again",
        ),
    }
    let failed = checks.0.iter().any(|c| !c.ok);
    if format.is_json() {
        output::print_json(&checks.0)?;
    } else {
        for c in &checks.0 {
            let verdict = if c.ok { "OK  " } else { "FAIL" };
            match &c.fix {
                Some(fix) => println!("{verdict} {}: {} -- fix: {fix}", c.check, c.detail),
                None => println!("{verdict} {}: {}", c.check, c.detail),
            }
        }
    }
    Ok(u8::from(failed))
}

fn state_dir(config: &Config, checks: &mut Checks) {
    let dir = &config.state_dir;
    let name = "state dir";
    match std::fs::symlink_metadata(dir) {
        Ok(m) if !m.is_dir() => checks.fail(
            name,
            format!("{} is not a directory", dir.display()),
            "remove it; the next run creates the directory",
        ),
        Ok(m) if m.uid() != nix::unistd::geteuid().as_raw() || m.mode() & 0o022 != 0 => checks
            .fail(
                name,
                format!(
                    "{} is owned by uid {} with mode {:04o}",
                    dir.display(),
                    m.uid(),
                    m.mode() & 0o7777
                ),
                format!(
                    "chown {} {}; chmod 0700 {}",
                    nix::unistd::geteuid(),
                    dir.display(),
                    dir.display()
                ),
            ),
        Ok(_) => {
            let (_, unreadable) = pki_deploy::state::RunState::load(dir);
            match unreadable {
                Some(problem) => checks.fail(
                    name,
                    problem,
                    "move state.json aside; the next run starts afresh and checks every target",
                ),
                None => checks.pass(name, format!("{} is ours and private", dir.display())),
            }
        }
        Err(_) => checks.pass(
            name,
            format!(
                "{} does not exist yet (the first run makes it)",
                dir.display()
            ),
        ),
    }
}

async fn backend(name: &str, backend: &Backend, checks: &mut Checks) {
    let check = format!("backend {name}");
    match backend {
        Backend::Offline(o) => match OfflineCa::open(&o.ca_dir) {
            Ok(mut ca) => {
                let source = match &o.passphrase_file {
                    Some(f) => CaKeySource::File(f.clone()),
                    None => match pki::process::env_secret("PKI_CA_PASSPHRASE") {
                        Some(p) => CaKeySource::Given(p),
                        None => CaKeySource::Nothing,
                    },
                };
                match ca.unlock_from(&source) {
                    Ok(()) => {
                        let until = ca.intermediate().info().not_after;
                        checks.pass(
                            check,
                            format!(
                                "the CA in {} unlocks; its intermediate is valid until {}",
                                o.ca_dir.display(),
                                output::Utc(until)
                            ),
                        );
                    }
                    Err(e) => checks.fail(
                        check,
                        format!("the CA key does not unlock: {e}"),
                        "set passphrase_file in [backend] (0600), or PKI_CA_PASSPHRASE for the run",
                    ),
                }
            }
            Err(e) => checks.fail(
                check,
                e.to_string(),
                "point ca_dir at the CA (`pki ca init`), or set [backend.create]",
            ),
        },
        Backend::Vault(settings) => vault(&check, settings, checks).await,
        Backend::Acme(settings) => acme(&check, settings, checks).await,
        _ => checks.pass(check, "not checked by this version"),
    }
}

async fn vault(check: &str, settings: &pki::authority::vault::VaultSettings, checks: &mut Checks) {
    let settings = match settings.clone().with_env() {
        Ok(s) => s,
        Err(e) => {
            return checks.fail(
                check,
                e.to_string(),
                "set the address and credentials in the config or the environment",
            );
        }
    };
    let authority = match pki::authority::vault::VaultAuthority::connect(&settings).await {
        Ok(a) => a,
        Err(e) => {
            return checks.fail(
                check,
                e.to_string(),
                "check the address, ca_cert and credentials",
            );
        }
    };
    match authority.client().read("auth/token/lookup-self").await {
        Ok(Some(data)) => {
            let ttl = data
                .data
                .as_ref()
                .and_then(|d| d.get("ttl"))
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(0);
            if ttl > 0 && ttl < 86_400 {
                checks.fail(
                    check,
                    format!("authenticated, but the token expires in {ttl} s"),
                    "use AppRole (role_id_file, secret_id_file) or a periodic token",
                );
            } else {
                let left = if ttl == 0 {
                    "no expiry".to_owned()
                } else {
                    format!("{ttl} s left")
                };
                checks.pass(
                    check,
                    format!(
                        "{} answers; the token is valid ({left})",
                        authority.client().address()
                    ),
                );
            }
        }
        // Every token may look itself up (Vault's default policy): a refusal means the token
        // or the AppRole credentials are not valid.
        Ok(None) => checks.fail(
            check,
            "auth/token/lookup-self answered nothing",
            "check the Vault address: it may not be Vault",
        ),
        Err(e) => checks.fail(
            check,
            format!("the credentials are refused: {e}"),
            "renew the token (token_file, VAULT_TOKEN) or check role_id_file and secret_id_file",
        ),
    }
    match server_date(authority.client().primary_address(), &settings).await {
        Ok(Some(date)) => {
            let skew = date - clock::now();
            if skew.abs() > MAX_SKEW {
                checks.fail(
                    "clock",
                    format!("Vault's clock is {} s from ours", skew.whole_seconds()),
                    "run timesyncd or chrony on this host and on Vault's",
                );
            } else {
                checks.pass(
                    "clock",
                    format!("within {} s of Vault's", skew.whole_seconds().abs()),
                );
            }
        }
        Ok(None) => checks.pass("clock", "Vault sent no Date header to compare with"),
        Err(e) => checks.fail("clock", e, "check that Vault answers sys/health"),
    }
}

/// Largest answer doctor reads from a server.
const MAX_ANSWER: usize = 1 << 20;

/// An HTTP client trusting `ca_cert` / `ca_path` alone when given (else the system roots),
/// bounded in time, following no redirect.
fn client(
    ca_cert: Option<&std::path::Path>,
    ca_path: Option<&std::path::Path>,
) -> std::result::Result<reqwest::Client, String> {
    let roots = pki::tls::roots(ca_cert, ca_path).map_err(|e| e.to_string())?;
    let tls = pki::tls::client_config(roots).map_err(|e| e.to_string())?;
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())
}

/// The `Date` of Vault's `sys/health` answer.
async fn server_date(
    address: &str,
    settings: &pki::authority::vault::VaultSettings,
) -> std::result::Result<Option<time::OffsetDateTime>, String> {
    let http = client(settings.ca_cert.as_deref(), settings.ca_path.as_deref())?;
    let answer = http
        .get(format!(
            "{}/v1/sys/health?standbyok=true",
            address.trim_end_matches('/')
        ))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let date = answer
        .headers()
        .get("date")
        .and_then(|d| d.to_str().ok())
        .and_then(|d| {
            time::OffsetDateTime::parse(d, &time::format_description::well_known::Rfc2822).ok()
        });
    Ok(date)
}

async fn acme(check: &str, settings: &pki::authority::acme::AcmeSettings, checks: &mut Checks) {
    let reach = async {
        let http = client(settings.ca_cert.as_deref(), None)?;
        let mut answer = http
            .get(&settings.directory)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = answer.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = answer.chunk().await.map_err(|e| e.to_string())? {
            if bytes.len() + chunk.len() > MAX_ANSWER {
                return Err(format!("the answer is larger than {MAX_ANSWER} bytes"));
            }
            bytes.extend_from_slice(&chunk);
        }
        let body: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        if status.is_success() && body.get("newOrder").is_some() {
            Ok(())
        } else {
            Err(format!("{status}: not an ACME directory"))
        }
    };
    match reach.await {
        Ok(()) => {
            let account = if settings.account_file.exists() {
                "the account is kept"
            } else {
                "no account yet (the first run creates it)"
            };
            checks.pass(check, format!("{} answers; {account}", settings.directory));
        }
        Err(e) => checks.fail(
            check,
            format!("{}: {e}", settings.directory),
            "check the directory URL, ca_cert and the network path",
        ),
    }
}

async fn targets(config: &Config, checks: &mut Checks) {
    let store = Store::open(&config.state_dir);
    let me = nix::unistd::geteuid().as_raw();
    for cert in &config.certificates {
        let current: Option<Certificate> = store
            .current(&cert.name)
            .and_then(|v| store.certificate(&cert.name, &v).ok());
        for target in &cert.targets {
            let check = format!("{} {}", cert.name, target.label());
            let settings = target.settings();
            let mut problems = Vec::new();
            for f in target.files() {
                match std::fs::metadata(&f.path) {
                    Err(_) => problems.push(format!("{} is missing", f.path.display())),
                    Ok(m) => {
                        let want = if f.content.is_secret() {
                            target.key_mode()
                        } else {
                            settings.cert_mode
                        };
                        let owner = settings.uid.unwrap_or(me);
                        if m.mode() & 0o777 != want || m.uid() != owner {
                            problems.push(format!(
                                "{} is uid {} mode {:04o}, expected uid {owner} mode {want:04o}",
                                f.path.display(),
                                m.uid(),
                                m.mode() & 0o777
                            ));
                        }
                    }
                }
            }
            if problems.is_empty() {
                checks.pass(
                    format!("{check} files"),
                    "present, owner and mode as configured",
                );
            } else {
                checks.fail(
                    format!("{check} files"),
                    problems.join("; "),
                    format!(
                        "pki rotate --config {} redeploys them",
                        config.file.display()
                    ),
                );
            }
            served(config, (cert, target), current.as_ref(), checks).await;
        }
    }
}

/// Each `[[trust]]` file: a regular file (not a link) holding the backend's trust bundle now.
async fn trust_files(config: &Config, checks: &mut Checks) {
    for t in &config.trust {
        let check = format!("trust {}", t.path.display());
        let fix = format!("pki rotate --config {} writes it", config.file.display());
        let held = match std::fs::symlink_metadata(&t.path) {
            Err(_) => {
                checks.fail(check, "missing", fix);
                continue;
            }
            Ok(m) if !m.file_type().is_file() => {
                checks.fail(
                    check,
                    "not a regular file (a link?)",
                    format!("remove it; {fix}"),
                );
                continue;
            }
            Ok(_) => pki::fsio::read_limited(&t.path, pki::fsio::MAX_PEM_INPUT)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    Certificate::all_from_pem(&bytes, &t.path.display().to_string())
                        .map_err(|e| e.to_string())
                }),
        };
        let held = match held {
            Ok(h) => h,
            Err(e) => {
                checks.fail(check, e, fix);
                continue;
            }
        };
        match bundle_of(config, &t.backend).await {
            Ok(Some(bundle)) if same_cas(&held, &bundle) => checks.pass(
                check,
                format!("holds the {} CA(s) of backend {}", bundle.len(), t.backend),
            ),
            Ok(Some(bundle)) => checks.fail(
                check,
                format!(
                    "holds {} CA(s), not the {} of backend {}'s trust bundle",
                    held.len(),
                    bundle.len(),
                    t.backend
                ),
                fix,
            ),
            Ok(None) => checks.pass(check, format!("holds {} CA(s)", held.len())),
            Err(e) => checks.fail(
                check,
                format!("cannot get backend {}'s trust bundle: {e}", t.backend),
                "see the backend's check above",
            ),
        }
    }
}

/// The trust bundle of the backend called `name` now (`None` for one that has none).
async fn bundle_of(config: &Config, name: &str) -> Result<Option<Vec<Certificate>>> {
    let now = clock::now();
    Ok(match config.backend(name) {
        Some(Backend::Offline(o)) => Some(OfflineCa::open(&o.ca_dir)?.trust_anchors(now)?),
        Some(Backend::Vault(settings)) => {
            let settings = settings.as_ref().clone().with_env()?;
            let vault = pki::authority::vault::VaultAuthority::connect(&settings).await?;
            Some(vault.trust_anchors(now).await?)
        }
        _ => None,
    })
}

fn same_cas(a: &[Certificate], b: &[Certificate]) -> bool {
    let ders = |c: &[Certificate]| {
        let mut d: Vec<Vec<u8>> = c.iter().map(|c| c.der().to_vec()).collect();
        d.sort();
        d
    };
    ders(a) == ders(b)
}

/// What the service serves now, against the file on disk and the store's current certificate.
async fn served(
    config: &Config,
    (cert, target): (
        &config::CertificateConfig,
        &pki_deploy::service::TargetConfig,
    ),
    current: Option<&Certificate>,
    checks: &mut Checks,
) {
    let Some(probe) = target.probe() else {
        return;
    };
    let check = format!("{} {} serves", cert.name, target.label());
    let on_disk = [Content::Cert, Content::Fullchain, Content::Combined]
        .into_iter()
        .find_map(|c| target.path_of(c))
        .and_then(|p| pki::fsio::read_limited(p, pki::fsio::MAX_PEM_INPUT).ok())
        .and_then(|b| Certificate::from_pem(&b, "the deployed file").ok());
    match pki_deploy::probe::once(probe, &deploy::server_name(cert, target)).await {
        Err(e) => checks.fail(
            check,
            e.to_string(),
            "start or reload the service; check the probe address",
        ),
        Ok(s) => {
            let same = |c: Option<&Certificate>| c.is_some_and(|c| c.der() == s.leaf.der());
            let served = s.describe();
            match (same(on_disk.as_ref()), same(current)) {
                (true, true) => {
                    checks.pass(check, format!("{served}, as on disk and in the store"))
                }
                (false, _) => checks.fail(
                    check,
                    format!("{served}, not the certificate on disk"),
                    "reload the service so that it reads its files",
                ),
                (true, false) => checks.fail(
                    check,
                    format!("{served}, not the store's current certificate"),
                    format!("pki rotate --config {} redeploys it", config.file.display()),
                ),
            }
        }
    }
}
