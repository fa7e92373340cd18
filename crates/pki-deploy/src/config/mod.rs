//! The rotation config: a TOML file validated into [`Config`]. Every error names the file, the
//! line and the key.
//!
//! This module is the frame: loading, the top level, the backend, the defaults and the
//! certificates. The reports read their own table (`config::report`); each target's common keys are
//! read by `config::target`, which hands the rest of the table to the service it names (see
//! [`crate::service`]). Positions come from the parsed document (`config::doc`).
//!
//! Relative paths are taken relative to the directory of the config file, so a run behaves the
//! same whatever the working directory (cron starts in `/`).

mod audit;
pub(crate) mod doc;
mod report;
mod target;
mod trust;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use pki::authority::acme::{self, AcmeSettings, Challenge};
use pki::authority::offline::{self, InitOptions, KeyProtection};
use pki::authority::vault::VaultSettings;
use pki::rotation::RenewAt;
use pki::{CertificateRequest, KeyAlgorithm, Profile, SubjectName, duration};
use serde::Deserialize;
use time::Duration;

use crate::error::{Error, Result};
use crate::report::ReportConfig;
use crate::service::TargetConfig;
use doc::{Source, Table};
pub use trust::TrustConfig;

pub use pki::request::DEFAULT_TTL;
pub use pki::rotation::{DEFAULT_JITTER, EARLIEST_RENEWAL};

/// How long a run may take unless configured otherwise.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::hours(1);

/// Largest config file read (ten thousand certificates take about 1.5 MiB).
const MAX_CONFIG: u64 = 64 << 20;

/// A validated configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The file it was read from (empty for a config built in code).
    pub file: PathBuf,
    /// The state directory: store, lock, run state.
    pub state_dir: PathBuf,
    /// This host's name, the seed of the renewal jitter.
    pub host: String,
    /// The longest a run may take before its watchdog stops it; a lock held twice as long is
    /// reported as stuck.
    pub run_timeout: Duration,
    /// Where certificates are signed, by name (the single `[backend]` table is named
    /// [`DEFAULT_BACKEND`]), in file order.
    pub backends: Vec<NamedBackend>,
    /// Reports.
    pub report: ReportConfig,
    /// The managed certificates.
    pub certificates: Vec<CertificateConfig>,
    /// Where trust bundles are written (`[[trust]]`).
    pub trust: Vec<TrustConfig>,
}

impl Config {
    /// A config with one backend, no certificates and no reports, for `host`, keeping its
    /// state in `state_dir`.
    pub fn new(state_dir: PathBuf, host: &str, backend: Backend) -> Self {
        Self {
            file: PathBuf::new(),
            state_dir,
            host: host.to_owned(),
            run_timeout: DEFAULT_RUN_TIMEOUT,
            backends: vec![NamedBackend {
                name: DEFAULT_BACKEND.to_owned(),
                backend,
            }],
            report: ReportConfig::default(),
            certificates: Vec::new(),
            trust: Vec::new(),
        }
    }

    /// The backend called `name`.
    pub fn backend(&self, name: &str) -> Option<&Backend> {
        self.backends
            .iter()
            .find(|b| b.name == name)
            .map(|b| &b.backend)
    }
}

/// The window a Vault issuer rollover's reissues are spread over unless `issuer_spread` says.
pub const DEFAULT_VAULT_ISSUER_SPREAD: Duration = Duration::days(1);

/// The name of the backend a single `[backend]` table declares, and of the one a
/// certificate built in code signs with.
pub const DEFAULT_BACKEND: &str = "default";

/// A backend and the name certificates pick it by.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NamedBackend {
    /// Its name (`[backends.NAME]`, or [`DEFAULT_BACKEND`]).
    pub name: String,
    /// What it is.
    pub backend: Backend,
}

/// The signing backend.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Backend {
    /// The offline CA in a directory.
    Offline(OfflineBackend),
    /// A PKI mount and role on Vault / OpenBao; settings not given here come from the
    /// environment (VAULT_ADDR, VAULT_CACERT, AppRole or token files).
    Vault(Box<VaultSettings>),
    /// An account on an ACME server (Let's Encrypt); its credentials are kept in the state
    /// directory unless `account_file` says otherwise.
    Acme(Box<AcmeSettings>),
}

/// The offline CA a run signs with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OfflineBackend {
    /// The CA directory.
    pub ca_dir: PathBuf,
    /// File holding the CA key passphrase (otherwise the run's options give it).
    pub passphrase_file: Option<PathBuf>,
    /// Create the CA when the directory holds none (demos, first runs).
    pub create: Option<CreateCa>,
}

impl OfflineBackend {
    /// The CA in `ca_dir`, which must exist.
    pub fn new(ca_dir: PathBuf) -> Self {
        Self {
            ca_dir,
            passphrase_file: None,
            create: None,
        }
    }
}

/// How to create a missing offline CA.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CreateCa {
    /// Organisation name.
    pub name: String,
    /// CA key algorithm.
    pub key_algorithm: KeyAlgorithm,
    /// Root lifetime.
    pub root_ttl: Duration,
    /// Intermediate lifetime.
    pub intermediate_ttl: Duration,
    /// Name constraints: DNS domains.
    pub permitted_dns: Vec<String>,
    /// Name constraints: IP ranges (with DNS domains and none of these, no IP at all).
    pub permitted_ip: Vec<String>,
    /// Issue wildcard names.
    pub allow_wildcards: bool,
    /// Store the keys unencrypted (demos only); otherwise the passphrase encrypts them.
    pub insecure_no_passphrase: bool,
}

impl Default for CreateCa {
    /// The offline CA's own defaults, keys encrypted.
    fn default() -> Self {
        Self {
            name: offline::DEFAULT_ORGANISATION.to_owned(),
            key_algorithm: KeyAlgorithm::default(),
            root_ttl: offline::DEFAULT_ROOT_TTL,
            intermediate_ttl: offline::DEFAULT_INTERMEDIATE_TTL,
            permitted_dns: Vec::new(),
            permitted_ip: Vec::new(),
            allow_wildcards: false,
            insecure_no_passphrase: false,
        }
    }
}

impl CreateCa {
    /// The options of [`offline::init`] for these settings.
    pub fn init_options(&self, protection: KeyProtection) -> InitOptions {
        let mut options = InitOptions::new(protection);
        options.name.clone_from(&self.name);
        options.key_algorithm = self.key_algorithm;
        options.root_ttl = self.root_ttl;
        options.intermediate_ttl = self.intermediate_ttl;
        options.permitted_dns.clone_from(&self.permitted_dns);
        options.permitted_ip.clone_from(&self.permitted_ip);
        if self.allow_wildcards {
            options.wildcards = pki::request::Wildcards::Allowed;
        }
        options
    }
}

/// One managed certificate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CertificateConfig {
    /// Its name: a directory name in the store, a label in reports.
    pub name: String,
    /// What is asked for: names, profile, lifetime.
    pub request: CertificateRequest,
    /// Key algorithm.
    pub key_algorithm: KeyAlgorithm,
    /// The name of the backend that signs it.
    pub backend: String,
    /// Renewal point.
    pub renew_at: RenewAt,
    /// Width of the renewal window, fraction of the lifetime (see [`pki::rotation::Desired`]).
    pub jitter: f64,
    /// The window an issuer rollover's reissues are spread over (see
    /// [`pki::rotation::Desired::issuer_spread`]).
    pub issuer_spread: Duration,
    /// Where it is deployed.
    pub targets: Vec<TargetConfig>,
    /// The config line of its table (0 when built in code).
    pub line: usize,
}

impl CertificateConfig {
    /// A certificate `name` (a file name) for `request`, with the default key, renewal point
    /// and jitter, and no targets yet.
    pub fn new(name: &str, request: &CertificateRequest) -> Result<Self> {
        let name = pki::name::file_component(name)?.to_owned();
        Ok(Self {
            name,
            request: request.clone(),
            key_algorithm: KeyAlgorithm::default(),
            backend: DEFAULT_BACKEND.to_owned(),
            renew_at: RenewAt::default(),
            jitter: DEFAULT_JITTER,
            issuer_spread: Duration::ZERO,
            targets: Vec::new(),
            line: 0,
        })
    }

    /// What the planner needs to know of it.
    pub fn desired(&self) -> pki::rotation::Desired {
        let mut desired = pki::rotation::Desired::new(&self.request, self.key_algorithm);
        desired.renew_at = self.renew_at;
        desired.jitter = self.jitter;
        desired.issuer_spread = self.issuer_spread;
        desired
    }
}

/// What validation depends on besides the text: this host's name (the jitter seed when the
/// config names none) and the uid that will write the files (the key-mode rules depend on it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Facts {
    /// The host name.
    pub host: String,
    /// The uid running the hook.
    pub writer: u32,
}

impl Facts {
    /// This host's name and the running uid.
    pub fn of_this_process() -> Self {
        Self {
            host: nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".to_owned()),
            writer: nix::unistd::geteuid().as_raw(),
        }
    }
}

/// The text of a private config file (`what` names it in errors), and what it is on disk.
fn read_text(path: &Path, what: &str) -> Result<(String, pki::fsio::dir::Entry)> {
    let fail = |message: String| Error::Config {
        file: path.to_path_buf(),
        line: None,
        message,
    };
    let (bytes, entry) = pki::fsio::read_private(path, MAX_CONFIG)
        .map_err(|e| fail(format!("cannot read {what}: {e}")))?;
    let text =
        String::from_utf8(bytes.to_vec()).map_err(|_| fail(format!("{what} is not UTF-8 text")))?;
    Ok((text, entry))
}

/// Reads and validates a config file, and checks that everything it makes the hook trust is
/// out of other users' reach (the rules are in the `audit` module's documentation).
pub fn load(path: &Path) -> Result<Config> {
    let (text, entry) = read_text(path, "the config file")?;
    let config = parse(&text, path)?;
    audit::audit(
        &config,
        &std::path::absolute(path).unwrap_or(path.to_path_buf()),
        &entry,
    )?;
    Ok(config)
}

/// Reads a file of ACME settings: the keys of an `acme` backend table, without `type` (the
/// CLI's `--acme-config`). The account is kept beside it, in `acme-account.json`, unless the
/// file names an `account_file`.
pub fn load_acme_settings(path: &Path) -> Result<AcmeSettings> {
    let (text, entry) = read_text(path, "the ACME settings")?;
    let src = Source::new(&text, path);
    let doc = src.document(&text)?;
    let Backend::Acme(mut settings) = acme_backend(doc)? else {
        return Err(src.error_at(1, "not ACME settings".to_owned()));
    };
    if settings.account_file.as_os_str().is_empty() {
        settings.account_file = src.path("acme-account.json");
    }
    // What the file makes the command trust (a dns-01 hook run as root, the CA file, the
    // account and EAB files) is checked as a rotation config's would be.
    let dir = settings
        .account_file
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let config = Config::new(dir, "localhost", Backend::Acme(settings.clone()));
    audit::audit(
        &config,
        &std::path::absolute(path).unwrap_or(path.to_path_buf()),
        &entry,
    )?;
    Ok(*settings)
}

/// Validates config text for this host and process; `path` names the file in errors and
/// anchors relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Config> {
    parse_with(text, path, &Facts::of_this_process())
}

/// Validates config text with the given facts about the host.
pub fn parse_with(text: &str, path: &Path, facts: &Facts) -> Result<Config> {
    let src = Source::new(text, path);
    let mut doc = src.document(text)?;
    let certificates = doc.take_tables("certificate", |_| "certificate.".to_owned())?;
    let trust_tables = doc.take_tables("trust", |_| "trust.".to_owned())?;
    let backends = backends(&mut doc)?;
    let mut defaults = match doc.take("defaults") {
        Some(d) => RawDefaults::read(doc.of("defaults.".into(), d, "defaults")?)?,
        None => RawDefaults::default(),
    };
    defaults.backends = backends.iter().map(|b| b.name.clone()).collect();
    defaults.acme_backends = backends
        .iter()
        .filter(|b| matches!(b.backend, Backend::Acme(_)))
        .map(|b| b.name.clone())
        .collect();
    defaults.vault_backends = backends
        .iter()
        .filter(|b| matches!(b.backend, Backend::Vault(_)))
        .map(|b| b.name.clone())
        .collect();
    let report = match doc.take("report") {
        Some(r) => report::read(doc.of("report.".into(), r, "report")?)?,
        None => ReportConfig::default(),
    };
    let top: RawTop = doc.read("the config")?;
    if top.state_dir.trim().is_empty() {
        return Err(doc.error("state_dir", "must not be empty"));
    }
    let certificates = certificates_of(certificates, &defaults, facts)?;
    let mut trust = Vec::new();
    for t in trust_tables {
        let entry = trust::read(t, &backends)?;
        let written_twice = certificates
            .iter()
            .flat_map(|c| c.targets.iter().flat_map(TargetConfig::files))
            .map(|f| f.path.as_path())
            .chain(trust.iter().map(|t: &TrustConfig| t.path.as_path()))
            .any(|p| p == entry.path);
        if written_twice {
            return Err(src.error_at(
                entry.line,
                format!("trust.path: {} is written twice", entry.path.display()),
            ));
        }
        trust.push(entry);
    }
    let state_dir = src.path(&top.state_dir);
    let mut backends = backends;
    for b in &mut backends {
        if let Backend::Acme(a) = &mut b.backend
            && a.account_file.as_os_str().is_empty()
        {
            a.account_file = state_dir.join("acme").join(format!("{}.json", b.name));
        }
    }
    Ok(Config {
        file: path.to_path_buf(),
        state_dir,
        host: top.host.unwrap_or_else(|| facts.host.clone()),
        run_timeout: top.run_timeout.unwrap_or(DEFAULT_RUN_TIMEOUT),
        backends,
        report,
        certificates,
        trust,
    })
}

/// Every certificate, with no name and no target file used twice.
fn certificates_of(
    tables: Vec<Table<'_>>,
    defaults: &RawDefaults,
    facts: &Facts,
) -> Result<Vec<CertificateConfig>> {
    let lines: Vec<_> = tables.iter().map(|t| (t.source(), t.line())).collect();
    let certificates = read_all(tables, defaults, facts)?;
    // Checked once all are read, by reference: ten thousand certificates need no copies.
    let mut names = HashSet::with_capacity(certificates.len());
    let mut paths: HashSet<&Path> = HashSet::new();
    for (c, (src, line)) in certificates.iter().zip(&lines) {
        let duplicate = |message: String| src.error_at(*line, message);
        if !names.insert(c.name.as_str()) {
            return Err(duplicate(format!(
                "certificate.name: {:?} is used twice",
                c.name
            )));
        }
        for f in c.targets.iter().flat_map(TargetConfig::files) {
            if !paths.insert(f.path.as_path()) {
                return Err(duplicate(format!(
                    "certificate {:?}: {} is written by two targets",
                    c.name,
                    f.path.display()
                )));
            }
        }
    }
    Ok(certificates)
}

/// From this many certificates on, they are read on two threads.
const PARALLEL_READ: usize = 512;

/// Reads every certificate table, in order; the first error in the file is the one reported.
fn read_all(
    tables: Vec<Table<'_>>,
    defaults: &RawDefaults,
    facts: &Facts,
) -> Result<Vec<CertificateConfig>> {
    let read = |part: Vec<Table<'_>>| -> Vec<Result<CertificateConfig>> {
        part.into_iter()
            .map(|t| certificate(t, defaults, facts))
            .collect()
    };
    if tables.len() < PARALLEL_READ {
        return read(tables).into_iter().collect();
    }
    let mut first = tables;
    let second = first.split_off(first.len() / 2);
    let (a, b) = std::thread::scope(|scope| {
        let other = scope.spawn(|| read(second));
        let a = read(first);
        // Reading a table cannot fail short of a bug; its panic is passed on.
        (
            a,
            other
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e)),
        )
    });
    a.into_iter().chain(b).collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTop {
    state_dir: String,
    host: Option<String>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    run_timeout: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOffline {
    ca_dir: Option<String>,
    passphrase_file: Option<String>,
    create: Option<RawCreate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCreate {
    name: Option<String>,
    key: Option<KeyAlgorithm>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    root_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    intermediate_ttl: Option<Duration>,
    #[serde(default)]
    permitted_dns: Vec<String>,
    #[serde(default)]
    permitted_ip: Vec<String>,
    #[serde(default)]
    allow_wildcards: bool,
    #[serde(default)]
    insecure_no_passphrase: bool,
}

/// The single `[backend]` (named [`DEFAULT_BACKEND`]) and every `[backends.NAME]`.
fn backends(doc: &mut Table<'_>) -> Result<Vec<NamedBackend>> {
    let mut all = Vec::new();
    if let Some(b) = doc.take("backend") {
        all.push(NamedBackend {
            name: DEFAULT_BACKEND.to_owned(),
            backend: backend(doc.of("backend.".into(), b, "backend")?)?,
        });
    }
    for (name, table) in doc.take_named_tables("backends", |n| format!("backends.{n}."))? {
        if pki::name::file_component(&name).is_err() || all.iter().any(|b| b.name == name) {
            return Err(table.source().error_at(
                table.line(),
                format!(
                    "backends.{name}: cannot name a backend (a file name, [a-z0-9._-], and \
                     not {DEFAULT_BACKEND:?} beside a [backend] table)"
                ),
            ));
        }
        all.push(NamedBackend {
            name,
            backend: backend(table)?,
        });
    }
    if all.is_empty() {
        return Err(doc.error("backend", "required ([backend], or [backends.NAME] tables)"));
    }
    Ok(all)
}

fn backend(mut table: Table<'_>) -> Result<Backend> {
    let kind: String = table
        .take_as("type")?
        .ok_or_else(|| table.error("type", "required (\"offline\", \"vault\" or \"acme\")"))?;
    match kind.as_str() {
        "acme" => acme_backend(table),
        "vault" => {
            let base = table.source().base().to_path_buf();
            let settings = table.read_via::<VaultSettings, _>("vault backends", |d| {
                VaultSettings::deserialize_relative(d, &base)
            })?;
            Ok(Backend::Vault(Box::new(settings)))
        }
        "offline" => {
            let raw: RawOffline = table.read("offline backends")?;
            let src = table.source();
            let ca_dir = raw
                .ca_dir
                .ok_or_else(|| table.error("ca_dir", "required for the offline backend"))?;
            let create = match raw.create {
                None => None,
                Some(c) if !c.insecure_no_passphrase && raw.passphrase_file.is_none() => {
                    return Err(table.error(
                        "create",
                        "needs backend.passphrase_file to encrypt the CA keys, or \
                         insecure_no_passphrase = true for a throwaway CA",
                    ));
                }
                Some(c) => {
                    let d = CreateCa::default();
                    Some(CreateCa {
                        name: c.name.unwrap_or(d.name),
                        key_algorithm: c.key.unwrap_or(d.key_algorithm),
                        root_ttl: c.root_ttl.unwrap_or(d.root_ttl),
                        intermediate_ttl: c.intermediate_ttl.unwrap_or(d.intermediate_ttl),
                        permitted_dns: c.permitted_dns,
                        permitted_ip: c.permitted_ip,
                        allow_wildcards: c.allow_wildcards,
                        insecure_no_passphrase: c.insecure_no_passphrase,
                    })
                }
            };
            Ok(Backend::Offline(OfflineBackend {
                ca_dir: src.path(&ca_dir),
                passphrase_file: raw.passphrase_file.as_deref().map(|p| src.path(p)),
                create,
            }))
        }
        other => Err(table.error(
            "type",
            format!("unknown backend {other:?} (expected \"offline\", \"vault\" or \"acme\")"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAcme {
    directory: Option<String>,
    ca_cert: Option<String>,
    #[serde(default)]
    contact: Vec<String>,
    #[serde(default)]
    terms_agreed: bool,
    eab_key_id: Option<String>,
    eab_hmac_file: Option<String>,
    account_file: Option<String>,
    challenge: Option<String>,
    listen: Option<std::net::SocketAddr>,
    webroot: Option<String>,
    dns_hook: Option<Vec<String>>,
    profile: Option<String>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    order_timeout: Option<Duration>,
}

/// The loopback port the built-in http-01 responder listens on unless `listen` says.
pub const DEFAULT_ACME_LISTEN: &str = "127.0.0.1:8402";

/// `type = "acme"`. The account file, unless given, is placed once the state directory is
/// known (`acme/NAME.json` in it).
fn acme_backend(mut table: Table<'_>) -> Result<Backend> {
    let raw: RawAcme = table.read("acme backends")?;
    let src = table.source();
    let directory = raw.directory.ok_or_else(|| {
        table.error(
            "directory",
            "required (a URL, \"letsencrypt\" or \"letsencrypt-staging\")",
        )
    })?;
    let url = acme::directory_url(&directory);
    if !url.starts_with("https://") {
        return Err(table.error("directory", format!("{url:?} is not an https:// URL")));
    }
    let challenge =
        match raw.challenge.as_deref().unwrap_or("http-01") {
            "http-01" => Challenge::Http01Responder {
                listen: raw.listen.unwrap_or_else(|| {
                    DEFAULT_ACME_LISTEN
                        .parse()
                        .unwrap_or(([127, 0, 0, 1], 8402).into())
                }),
            },
            "http-01-stateless" => Challenge::Http01Stateless,
            "webroot" => Challenge::Http01Webroot {
                dir: src.path(raw.webroot.as_deref().ok_or_else(|| {
                    table.error("webroot", "required with challenge = \"webroot\"")
                })?),
            },
            "dns-01" => Challenge::Dns01Hook {
                command: raw.dns_hook.filter(|c| !c.is_empty()).ok_or_else(|| {
                    table.error("dns_hook", "required with challenge = \"dns-01\" (argv)")
                })?,
            },
            other => {
                return Err(table.error(
                    "challenge",
                    format!(
                        "unknown challenge {other:?} (expected \"http-01\", \"http-01-stateless\", \
                     \"webroot\" or \"dns-01\")"
                    ),
                ));
            }
        };
    for c in &raw.contact {
        if !c.starts_with("mailto:") {
            return Err(table.error("contact", format!("{c:?} is not a mailto: URI")));
        }
    }
    let eab = match (raw.eab_key_id, raw.eab_hmac_file) {
        (Some(kid), Some(file)) => Some((kid, src.path(&file))),
        (None, None) => None,
        _ => return Err(table.error("eab_key_id", "give eab_key_id and eab_hmac_file together")),
    };
    let account_file = raw
        .account_file
        .as_deref()
        .map(|p| src.path(p))
        .unwrap_or_default();
    let mut settings = AcmeSettings::new(&directory, account_file, challenge);
    settings.ca_cert = raw.ca_cert.as_deref().map(|p| src.path(p));
    settings.contact = raw.contact;
    settings.terms_agreed = raw.terms_agreed;
    settings.eab = eab;
    settings.profile = raw.profile;
    if let Some(t) = raw.order_timeout {
        settings.order_timeout = std::time::Duration::try_from(t)
            .map_err(|_| table.error("order_timeout", "must be positive"))?;
    }
    Ok(Backend::Acme(Box::new(settings)))
}

/// What a certificate asks for besides its names, in `[[certificate]]` and in `[defaults]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    backend: Option<String>,
    profile: Option<Profile>,
    key: Option<KeyAlgorithm>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    ttl: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_percent")]
    renew_at: Option<f64>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    renew_before: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_percent")]
    jitter: Option<f64>,
    #[serde(default, deserialize_with = "de_opt_duration_or_zero")]
    issuer_spread: Option<Duration>,
}

/// `[defaults]`: what applies to every certificate that does not set its own, and to every
/// target.
#[derive(Default)]
pub(crate) struct RawDefaults {
    policy: RawPolicy,
    /// The names of the config's backends (not read from `[defaults]`).
    backends: Vec<String>,
    /// Those of them that are ACME servers.
    acme_backends: Vec<String>,
    /// Those of them that are Vault servers.
    vault_backends: Vec<String>,
    pub(crate) probe_timeout: Option<Duration>,
    pub(crate) command_timeout: Option<Duration>,
}

impl RawDefaults {
    /// Reads `[defaults]`.
    fn read(mut table: Table<'_>) -> Result<Self> {
        let mut timeout = |key: &str| -> Result<Option<Duration>> {
            match table.take_as::<String>(key)? {
                Some(t) => Ok(Some(duration::parse(&t).map_err(|e| table.error(key, e))?)),
                None => Ok(None),
            }
        };
        let probe_timeout = timeout("probe_timeout")?;
        let command_timeout = timeout("command_timeout")?;
        let policy: RawPolicy = table.read("[defaults]")?;
        if policy.renew_at.is_some() && policy.renew_before.is_some() {
            return Err(table.error("renew_before", "give renew_at or renew_before, not both"));
        }
        Ok(Self {
            policy,
            backends: Vec::new(),
            acme_backends: Vec::new(),
            vault_backends: Vec::new(),
            probe_timeout,
            command_timeout,
        })
    }
}

/// The names of a `[[certificate]]`, read before its policy.
struct RawNames {
    name: String,
    common_name: String,
    sans: Vec<SubjectName>,
}

impl RawNames {
    fn read(table: &mut Table<'_>) -> Result<Self> {
        let mut required = |key: &str| -> Result<String> {
            table
                .take_as(key)?
                .ok_or_else(|| table.error(key, "required"))
        };
        let name = required("name")?;
        let common_name = required("common_name")?;
        let sans = table.take_as("sans")?.unwrap_or_default();
        Ok(Self {
            name,
            common_name,
            sans,
        })
    }
}

fn certificate(
    mut table: Table<'_>,
    defaults: &RawDefaults,
    facts: &Facts,
) -> Result<CertificateConfig> {
    let targets = table.take_tables("target", |_| String::new())?;
    let names = RawNames::read(&mut table)?;
    let raw: RawPolicy = table.read("[[certificate]]")?;
    let name = pki::name::file_component(&names.name)
        .map_err(|e| table.error("name", e))?
        .to_owned();
    let table = table.rescoped(format!("certificate {name:?}: "));
    let policy = &defaults.policy;
    let profile = raw.profile.or(policy.profile).unwrap_or_default();
    let ttl = raw.ttl.or(policy.ttl).unwrap_or(DEFAULT_TTL);
    let request = CertificateRequest::new(&names.common_name, names.sans, profile, ttl)
        .map_err(|e| table.error("common_name/sans", e))?;
    let renew_at = renewal(&table, &raw, policy, ttl)?;
    check_renewal_point(&table, renew_at, ttl)?;
    let mut c = CertificateConfig::new(&name, &request)?;
    c.backend = backend_of(&table, &raw, defaults)?;
    // An ACME certificate renews at its point: the CA spreads renewals itself (ARI), and
    // renewing early spends its rate limits.
    let default_jitter = if defaults.acme_backends.contains(&c.backend) {
        0.0
    } else {
        DEFAULT_JITTER
    };
    let jitter = raw.jitter.or(policy.jitter).unwrap_or(default_jitter);
    // A Vault issuer rollover moves a fleet: spread over a day unless set. An offline CA
    // serves one host, whose certificates move at once.
    let default_spread = if defaults.vault_backends.contains(&c.backend) {
        DEFAULT_VAULT_ISSUER_SPREAD
    } else {
        Duration::ZERO
    };
    c.issuer_spread = raw
        .issuer_spread
        .or(policy.issuer_spread)
        .unwrap_or(default_spread);
    c.key_algorithm = raw.key.or(policy.key).unwrap_or_default();
    c.renew_at = renew_at;
    c.jitter = jitter;
    c.line = table.line();
    for t in targets {
        c.targets.push(target::read(t, &name, defaults, facts)?);
    }
    if c.targets.is_empty() {
        return Err(table.error("target", "at least one [[certificate.target]] is needed"));
    }
    Ok(c)
}

/// The backend a certificate names (or `[defaults]` does); with none named, the only one, or
/// the `[backend]` table's.
fn backend_of(table: &Table<'_>, raw: &RawPolicy, defaults: &RawDefaults) -> Result<String> {
    let known = &defaults.backends;
    let list = || {
        known
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match raw.backend.as_ref().or(defaults.policy.backend.as_ref()) {
        Some(name) if known.contains(name) => Ok(name.clone()),
        Some(name) => Err(table.error(
            "backend",
            format!("no backend {name:?} in this config (it has {})", list()),
        )),
        None if known.len() == 1 => Ok(known[0].clone()),
        None if known.iter().any(|n| n == DEFAULT_BACKEND) => Ok(DEFAULT_BACKEND.to_owned()),
        None => Err(table.error(
            "backend",
            format!("required with several backends (one of {})", list()),
        )),
    }
}

/// The renewal point: the certificate's `renew_at` or `renew_before`, else the defaults'.
fn renewal(
    table: &Table<'_>,
    raw: &RawPolicy,
    defaults: &RawPolicy,
    ttl: Duration,
) -> Result<RenewAt> {
    if raw.renew_at.is_some() && raw.renew_before.is_some() {
        return Err(table.error("renew_at", "give renew_at or renew_before, not both"));
    }
    let renew_at = match (raw.renew_at, raw.renew_before) {
        (Some(f), _) => RenewAt::Fraction(f),
        (_, Some(d)) => RenewAt::BeforeExpiry(d),
        _ => match (defaults.renew_at, defaults.renew_before) {
            (Some(f), _) => RenewAt::Fraction(f),
            (_, Some(d)) => RenewAt::BeforeExpiry(d),
            _ => RenewAt::default(),
        },
    };
    if let RenewAt::BeforeExpiry(d) = renew_at
        && d >= ttl
    {
        return Err(table.error(
            "renew_before",
            format!(
                "{} is not shorter than the lifetime {}; every run would renew",
                duration::format(d),
                duration::format(ttl)
            ),
        ));
    }
    Ok(renew_at)
}

/// Refuses a renewal point before the earliest renewal: a certificate renewed so soon after its
/// issue renews on nearly every run.
fn check_renewal_point(table: &Table<'_>, renew_at: RenewAt, ttl: Duration) -> Result<()> {
    let point = match renew_at {
        RenewAt::Fraction(f) => f,
        RenewAt::BeforeExpiry(d) => 1.0 - d / ttl,
        _ => return Ok(()),
    };
    if point < EARLIEST_RENEWAL {
        return Err(table.error(
            "renew_at",
            format!(
                "renewal at {:.0} % of the lifetime is earlier than {:.0} %; nearly every run \
                 would renew",
                point * 100.0,
                EARLIEST_RENEWAL * 100.0
            ),
        ));
    }
    Ok(())
}

/// A duration such as `"90d"` or `"1d12h"`.
pub(crate) fn de_opt_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    duration::parse(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// [`de_opt_duration`], where `"0"` (or `"0s"`) is allowed: none.
fn de_opt_duration_or_zero<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim_end_matches(|c: char| c.is_ascii_alphabetic()) == "0" {
        return Ok(Some(Duration::ZERO));
    }
    duration::parse(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// `"67%"` (or a plain number of percent) as a fraction.
fn de_opt_percent<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum P {
        Text(String),
        Int(i64),
        Float(f64),
    }
    let value = match P::deserialize(d)? {
        P::Text(s) => s
            .trim()
            .trim_end_matches('%')
            .trim()
            .parse::<f64>()
            .map_err(|_| {
                serde::de::Error::custom(format!("invalid percentage {s:?}, e.g. \"67%\""))
            })?,
        P::Int(i) => i as f64,
        P::Float(f) => f,
    };
    if !(0.0..=100.0).contains(&value) {
        return Err(serde::de::Error::custom(format!(
            "percentage {value} is outside 0–100"
        )));
    }
    Ok(Some(value / 100.0))
}

/// `p` made absolute against `base` when relative, without `.` and `dir/..` steps (the file
/// system is not consulted: the paths may not exist yet), so that messages and HAProxy's crt
/// names read as written.
pub(crate) fn resolve(base: &Path, p: &str) -> PathBuf {
    use std::path::Component;
    let p = Path::new(p);
    let joined = if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    };
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {}
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

#[cfg(test)]
mod tests;
