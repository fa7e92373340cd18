//! The rotation config: a TOML file read into raw serde structs that refuse unknown keys, then
//! validated into [`Config`]. Every error names the file, the line and the key.
//!
//! Relative paths are taken relative to the directory of the config file, so a run behaves the
//! same whatever the working directory (cron starts in `/`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};

use pki::authority::vault::VaultSettings;
use pki::rotation::RenewAt;
use pki::{KeyAlgorithm, Profile, SubjectName, duration};
use serde::Deserialize;
use time::Duration;
use toml::Spanned;

use crate::error::{Error, Result};

/// Default lifetime of issued certificates.
pub const DEFAULT_TTL: Duration = Duration::days(30);
/// The earliest renewal point allowed once jitter is taken off, as a fraction of the lifetime.
const MIN_RENEW_POINT: f64 = 0.1;
/// Default largest jitter (fraction of the lifetime).
pub const DEFAULT_JITTER: f64 = 0.05;
/// Default time a probe waits for the new certificate to be served.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::seconds(10);
/// Default time a test or reload command may run.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::seconds(60);
/// Default warning window for expiring certificates in reports.
pub const DEFAULT_EXPIRY_WARNING: Duration = Duration::days(14);

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub file: PathBuf,
    /// The state directory: store, lock, run state.
    pub state_dir: PathBuf,
    /// This host's name, the seed of the renewal jitter.
    pub host: String,
    /// Where certificates are signed.
    pub backend: Backend,
    /// Reports.
    pub report: ReportConfig,
    /// The managed certificates.
    pub certificates: Vec<CertificateConfig>,
}

/// The signing backend.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Backend {
    /// The offline CA in a directory.
    Offline {
        /// The CA directory.
        ca_dir: PathBuf,
        /// File holding the CA key passphrase.
        passphrase_file: Option<PathBuf>,
        /// Create the CA when the directory holds none (demos, first runs).
        create: Option<CreateCa>,
    },
    /// A PKI mount and role on Vault / OpenBao; settings not given here come from the
    /// environment (VAULT_ADDR, VAULT_CACERT, AppRole or token files).
    Vault(Box<VaultSettings>),
}

/// How to create a missing offline CA.
#[derive(Debug, Clone)]
pub struct CreateCa {
    /// Organisation name.
    pub name: String,
    /// CA key algorithm.
    pub key_algorithm: KeyAlgorithm,
    /// Root lifetime.
    pub root_ttl: Duration,
    /// Intermediate lifetime.
    pub intermediate_ttl: Duration,
    /// Name constraints.
    pub permitted_dns: Vec<String>,
    /// Store the keys unencrypted (demos only); otherwise `passphrase_file` encrypts them.
    pub insecure_no_passphrase: bool,
}

/// Report settings.
#[derive(Debug, Clone, Default)]
pub struct ReportConfig {
    /// Prometheus textfile collector file.
    pub textfile: Option<PathBuf>,
    /// Certificates expiring within this window are reported (ntfy, log).
    pub expiry_warning: Option<Duration>,
    /// ntfy notifications.
    pub ntfy: Option<NtfyConfig>,
    /// Uptime Kuma push monitor.
    pub uptime_kuma: Option<KumaConfig>,
}

/// ntfy settings.
#[derive(Debug, Clone)]
pub struct NtfyConfig {
    /// Topic URL, e.g. `https://ntfy.example.internal/pki`.
    pub url: String,
    /// File holding an access token (sent as a Bearer token).
    pub token_file: Option<PathBuf>,
    /// Priority: 1–5 or min, low, default, high, max/urgent.
    pub priority: String,
    /// Tags.
    pub tags: Vec<String>,
    /// A CA bundle for the server's certificate (otherwise the system roots).
    pub ca_cert: Option<PathBuf>,
}

/// Uptime Kuma settings.
#[derive(Debug, Clone)]
pub struct KumaConfig {
    /// Push URL (it embeds the monitor's token: keep the config file private).
    pub push_url: Option<String>,
    /// File holding the push URL, so the token stays out of the config.
    pub push_url_file: Option<PathBuf>,
    /// A CA bundle for the server's certificate.
    pub ca_cert: Option<PathBuf>,
}

/// One managed certificate.
#[derive(Debug, Clone)]
pub struct CertificateConfig {
    /// Its name: a directory name in the store, a label in reports.
    pub name: String,
    /// Subject common name.
    pub common_name: String,
    /// Subject alternative names (the CN is added when it is a name).
    pub names: Vec<SubjectName>,
    /// Profile.
    pub profile: Profile,
    /// Key algorithm.
    pub key_algorithm: KeyAlgorithm,
    /// Lifetime.
    pub ttl: Duration,
    /// Renewal point.
    pub renew_at: RenewAt,
    /// Largest jitter, fraction of the lifetime.
    pub jitter: f64,
    /// Where it is deployed.
    pub targets: Vec<TargetConfig>,
    /// The config line of its table.
    pub line: usize,
}

/// The kinds of deploy targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// Any files, optional reload command.
    Files,
    /// HAProxy combined PEM, runtime API hot update.
    Haproxy,
    /// Nginx full chain + key, `nginx -t` then reload.
    Nginx,
    /// MariaDB / MySQL, `FLUSH SSL`.
    Mariadb,
    /// PostgreSQL, reload.
    Postgres,
    /// Redis, `CONFIG SET tls-cert-file … tls-key-file …`.
    Redis,
    /// PKCS#12 keystore and/or PEM with a PKCS#8 key (Java, Solr, Elasticsearch, Neo4j).
    Keystore,
}

impl TargetKind {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "files" => Self::Files,
            "haproxy" => Self::Haproxy,
            "nginx" => Self::Nginx,
            "mariadb" | "mysql" => Self::Mariadb,
            "postgres" | "postgresql" => Self::Postgres,
            "redis" => Self::Redis,
            "keystore" => Self::Keystore,
            _ => return None,
        })
    }

    /// The kind's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Files => "files",
            Self::Haproxy => "haproxy",
            Self::Nginx => "nginx",
            Self::Mariadb => "mariadb",
            Self::Postgres => "postgres",
            Self::Redis => "redis",
            Self::Keystore => "keystore",
        }
    }
}

/// What a rendered file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// The leaf.
    Cert,
    /// The private key (PKCS#8).
    Key,
    /// Intermediates.
    Chain,
    /// Leaf + intermediates.
    Fullchain,
    /// The root.
    Ca,
    /// Leaf + intermediates + key (HAProxy).
    Combined,
    /// PKCS#12 keystore.
    Pkcs12,
}

impl Content {
    /// Whether the content includes the private key (and needs the private mode).
    pub fn is_secret(self) -> bool {
        matches!(self, Self::Key | Self::Combined | Self::Pkcs12)
    }
}

/// One file a target writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFile {
    /// Where (as the service is configured to read it).
    pub path: PathBuf,
    /// What.
    pub content: Content,
}

/// A command to run: an argv, or a shell line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandSpec {
    /// Executed directly.
    Argv(Vec<String>),
    /// Run with `/bin/sh -c`.
    Shell(String),
}

impl CommandSpec {
    /// How the command reads in messages.
    pub fn display(&self) -> String {
        match self {
            Self::Argv(a) => a.join(" "),
            Self::Shell(s) => s.clone(),
        }
    }
}

/// The protocol a probe speaks before TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeProtocol {
    /// TLS straight away.
    Tls,
    /// PostgreSQL SSLRequest, then TLS.
    Postgres,
    /// MySQL/MariaDB greeting and SSL request packet, then TLS.
    Mysql,
}

/// How to check what a service serves.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// `host:port` to connect to.
    pub address: String,
    /// SNI server name (default: the certificate's common name when it is a DNS name).
    pub server_name: Option<String>,
    /// Protocol.
    pub protocol: ProbeProtocol,
    /// How long to wait for the expected certificate.
    pub timeout: Duration,
}

/// A validated deploy target.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// The kind.
    pub kind: TargetKind,
    /// Files to write.
    pub files: Vec<OutputFile>,
    /// Owner uid of the files (default: root / the running user).
    pub uid: Option<u32>,
    /// Group gid of the files.
    pub gid: Option<u32>,
    /// Mode of files holding the key.
    pub key_mode: u32,
    /// Mode of the other files.
    pub cert_mode: u32,
    /// Command validating the new files before the reload (nginx -t).
    pub test_command: Option<CommandSpec>,
    /// Command making the service load the new files.
    pub reload_command: Option<CommandSpec>,
    /// Time limit for each command.
    pub command_timeout: Duration,
    /// HAProxy admin socket (runtime API).
    pub socket: Option<PathBuf>,
    /// Redis password file (AUTH) for the socket.
    pub password_file: Option<PathBuf>,
    /// PKCS#12 password file.
    pub keystore_password_file: Option<PathBuf>,
    /// PKCS#12 alias.
    pub alias: String,
    /// How to probe the live service.
    pub probe: Option<ProbeConfig>,
    /// The config line of its table.
    pub line: usize,
}

impl TargetConfig {
    /// A short description for messages: kind and first path.
    pub fn label(&self) -> String {
        match self.files.first() {
            Some(f) => format!("{} {}", self.kind.name(), f.path.display()),
            None => self.kind.name().to_owned(),
        }
    }

    /// The path of the first file with this content.
    pub fn path_of(&self, content: Content) -> Option<&Path> {
        self.files
            .iter()
            .find(|f| f.content == content)
            .map(|f| f.path.as_path())
    }
}

// ---- raw TOML -----------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Spanned<String>,
    host: Option<String>,
    backend: Spanned<toml::Table>,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    report: RawReport,
    #[serde(default, rename = "certificate")]
    certificates: Vec<Spanned<RawCertificate>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    ca_dir: Option<String>,
    passphrase_file: Option<String>,
    create: Option<RawCreate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCreate {
    #[serde(default = "default_ca_name")]
    name: String,
    #[serde(default)]
    key: KeyAlgorithm,
    #[serde(default, deserialize_with = "de_opt_duration")]
    root_ttl: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    intermediate_ttl: Option<Duration>,
    #[serde(default)]
    permitted_dns: Vec<String>,
    #[serde(default)]
    insecure_no_passphrase: bool,
}

fn default_ca_name() -> String {
    "Example Internal".to_owned()
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
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
    #[serde(default, deserialize_with = "de_opt_duration")]
    probe_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    command_timeout: Option<Duration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReport {
    textfile: Option<String>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    expiry_warning: Option<Duration>,
    ntfy: Option<RawNtfy>,
    uptime_kuma: Option<RawKuma>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNtfy {
    url: String,
    token_file: Option<String>,
    #[serde(default = "default_priority")]
    priority: String,
    #[serde(default)]
    tags: Vec<String>,
    ca_cert: Option<String>,
}

fn default_priority() -> String {
    "high".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKuma {
    push_url: Option<String>,
    push_url_file: Option<String>,
    ca_cert: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCertificate {
    name: String,
    common_name: String,
    #[serde(default)]
    sans: Vec<SubjectName>,
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
    #[serde(default, rename = "target")]
    targets: Vec<Spanned<RawTarget>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    #[serde(rename = "type")]
    kind: String,
    // files
    dir: Option<String>,
    #[serde(default)]
    files: Option<Vec<String>>,
    // paths
    cert: Option<String>,
    key: Option<String>,
    chain: Option<String>,
    fullchain: Option<String>,
    ca: Option<String>,
    combined: Option<String>,
    pem: Option<String>,
    pkcs12: Option<String>,
    // ownership
    owner: Option<IdValue>,
    group: Option<IdValue>,
    key_mode: Option<ModeValue>,
    cert_mode: Option<ModeValue>,
    // commands
    test_command: Option<RawCommand>,
    reload_command: Option<RawCommand>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    command_timeout: Option<Duration>,
    // service specifics
    socket: Option<String>,
    password_file: Option<String>,
    alias: Option<String>,
    probe: Option<RawProbe>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawCommand {
    Argv(Vec<String>),
    Shell(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IdValue {
    Number(u32),
    Name(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ModeValue {
    Number(u32),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    address: String,
    server_name: Option<String>,
    protocol: Option<String>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    timeout: Option<Duration>,
}

fn de_opt_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    duration::parse(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// `"67%"` (or a plain number of percent) as a fraction.
fn de_opt_percent<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
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

// ---- loading and validation ---------------------------------------------------------------

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
        file: path.to_path_buf(),
        line: None,
        message: format!("cannot read the config file: {e}"),
    })?;
    parse(&text, path)
}

/// Validates config text; `path` names the file in errors and anchors relative paths.
pub fn parse(text: &str, path: &Path) -> Result<Config> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let (line, snippet) = e
            .span()
            .map(|s| position(text, s))
            .unwrap_or((0, String::new()));
        Error::Config {
            file: path.to_path_buf(),
            line: (line > 0).then_some(line),
            message: if snippet.is_empty() {
                e.message().to_owned()
            } else {
                format!("{} (in `{snippet}`)", e.message())
            },
        }
    })?;
    Validator {
        text,
        lines: Lines::new(text),
        file: path,
        base: base_dir(path),
    }
    .config(raw)
}

fn base_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// 1-based line of a span and the text of that line.
fn position(text: &str, span: Range<usize>) -> (usize, String) {
    let line = Lines::new(text).line_of(span.start);
    let snippet = text.lines().nth(line - 1).unwrap_or("").trim().to_owned();
    (line, snippet)
}

/// Line starts of a text, for mapping byte offsets to line numbers in O(log n): a config may
/// list ten thousand certificates.
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { starts }
    }

    fn line_of(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

struct Validator<'a> {
    text: &'a str,
    lines: Lines,
    file: &'a Path,
    base: PathBuf,
}

impl Validator<'_> {
    /// The line of `key = …` in the table starting at byte `from` (a table's span may cover
    /// only its header: the search runs to the next table header).
    fn key_line(&self, from: usize, key: &str) -> Option<usize> {
        let rest = self.text.get(from..)?;
        let end = rest
            .match_indices("\n[")
            .map(|(i, _)| i)
            .find(|i| *i > 0)
            .unwrap_or(rest.len());
        rest[..end]
            .lines()
            .position(|l| {
                l.trim_start()
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
            .map(|i| self.lines.line_of(from) + i)
    }

    /// The line of `key = …` in the table headed `[header]`, else of the header, if any.
    fn header_key_line(&self, header: &str, key: &str) -> Option<usize> {
        let marker = format!("[{header}]");
        let at = self
            .text
            .match_indices(&marker)
            .map(|(i, _)| i)
            .find(|i| *i == 0 || self.text[..*i].ends_with('\n'))?;
        self.key_line(at, key)
            .or_else(|| Some(self.lines.line_of(at)))
    }

    /// An error about `key` of the table `[header]`.
    fn key_err(&self, header: &str, key: &str, message: String) -> Error {
        Error::Config {
            file: self.file.to_path_buf(),
            line: self.header_key_line(header, key),
            message,
        }
    }

    /// An error from a table deserialized without positions (the backend): the line of the
    /// key the message names, else the table's first line.
    fn table_err(&self, span: &Range<usize>, prefix: &str, e: &toml::de::Error) -> Error {
        let message = e.message();
        let line = message
            .split('`')
            .nth(1)
            .and_then(|k| self.key_line(span.start, k))
            .unwrap_or_else(|| self.lines.line_of(span.start));
        Error::Config {
            file: self.file.to_path_buf(),
            line: Some(line),
            message: format!("{prefix}: {message}"),
        }
    }

    fn err(&self, span: Option<Range<usize>>, message: String) -> Error {
        Error::Config {
            file: self.file.to_path_buf(),
            line: span.map(|s| self.lines.line_of(s.start)),
            message,
        }
    }

    fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        normalize(&if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        })
    }

    fn config(&self, raw: RawConfig) -> Result<Config> {
        if raw.state_dir.get_ref().trim().is_empty() {
            return Err(self.err(
                Some(raw.state_dir.span()),
                "state_dir: must not be empty".into(),
            ));
        }
        let host = match raw.host {
            Some(h) => h,
            None => nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".to_owned()),
        };
        let backend = self.backend(&raw.backend)?;
        let defaults = &raw.defaults;
        if defaults.renew_at.is_some() && defaults.renew_before.is_some() {
            return Err(self.key_err(
                "defaults",
                "renew_before",
                "defaults: give renew_at or renew_before, not both".into(),
            ));
        }
        let report = self.report(raw.report)?;
        let mut certificates = Vec::new();
        let mut seen = HashSet::new();
        let mut paths_seen: HashSet<PathBuf> = HashSet::new();
        for cert in raw.certificates {
            let span = cert.span();
            let c = self.certificate(cert.into_inner(), span.clone(), defaults)?;
            if !seen.insert(c.name.clone()) {
                return Err(self.err(
                    Some(span),
                    format!("certificate.name: {:?} is used twice", c.name),
                ));
            }
            for t in &c.targets {
                for f in &t.files {
                    if !paths_seen.insert(f.path.clone()) {
                        return Err(self.err(
                            Some(span),
                            format!(
                                "certificate {:?}: {} is written by two targets",
                                c.name,
                                f.path.display()
                            ),
                        ));
                    }
                }
            }
            certificates.push(c);
        }
        Ok(Config {
            file: self.file.to_path_buf(),
            state_dir: self.path(raw.state_dir.get_ref()),
            host,
            backend,
            report,
            certificates,
        })
    }

    fn backend(&self, raw: &Spanned<toml::Table>) -> Result<Backend> {
        let span = Some(raw.span());
        let mut table = raw.get_ref().clone();
        let kind = match table.remove("type") {
            Some(toml::Value::String(k)) => k,
            Some(_) => return Err(self.err(span, "backend.type: must be a string".into())),
            None => {
                return Err(self.err(
                    span,
                    "backend.type: required (\"offline\" or \"vault\")".into(),
                ));
            }
        };
        match kind.as_str() {
            "vault" => {
                let mut settings: VaultSettings = toml::Value::Table(table)
                    .try_into()
                    .map_err(|e: toml::de::Error| self.table_err(&raw.span(), "backend", &e))?;
                settings.resolve_paths(|p| self.path(&p.display().to_string()));
                for (key, value) in [
                    ("connect_timeout", &settings.connect_timeout),
                    ("request_timeout", &settings.request_timeout),
                ] {
                    if let Some(v) = value {
                        duration::parse(v)
                            .map_err(|e| self.err(span.clone(), format!("backend.{key}: {e}")))?;
                    }
                }
                Ok(Backend::Vault(Box::new(settings)))
            }
            "offline" => {
                let b: RawBackend = toml::Value::Table(table)
                    .try_into()
                    .map_err(|e: toml::de::Error| self.table_err(&raw.span(), "backend", &e))?;
                let ca_dir = b.ca_dir.as_deref().ok_or_else(|| {
                    self.err(
                        span.clone(),
                        "backend.ca_dir: required for the offline backend".into(),
                    )
                })?;
                let create = match &b.create {
                    None => None,
                    Some(c) => {
                        if !c.insecure_no_passphrase && b.passphrase_file.is_none() {
                            return Err(self.err(
                                span,
                                "backend.create: needs backend.passphrase_file to encrypt the CA keys, \
                                 or insecure_no_passphrase = true for a throwaway CA"
                                    .into(),
                            ));
                        }
                        Some(CreateCa {
                            name: c.name.clone(),
                            key_algorithm: c.key,
                            root_ttl: c.root_ttl.unwrap_or(Duration::days(3650)),
                            intermediate_ttl: c.intermediate_ttl.unwrap_or(Duration::days(3 * 365)),
                            permitted_dns: c.permitted_dns.clone(),
                            insecure_no_passphrase: c.insecure_no_passphrase,
                        })
                    }
                };
                Ok(Backend::Offline {
                    ca_dir: self.path(ca_dir),
                    passphrase_file: b.passphrase_file.as_deref().map(|p| self.path(p)),
                    create,
                })
            }
            other => Err(self.err(
                span,
                format!(
                    "backend.type: unknown backend {other:?} (expected \"offline\" or \"vault\")"
                ),
            )),
        }
    }

    fn report(&self, raw: RawReport) -> Result<ReportConfig> {
        let ntfy = raw.ntfy.map(|n| NtfyConfig {
            url: n.url,
            token_file: n.token_file.map(|p| self.path(&p)),
            priority: n.priority,
            tags: n.tags,
            ca_cert: n.ca_cert.map(|p| self.path(&p)),
        });
        if let Some(n) = &ntfy {
            if !n.url.starts_with("http://") && !n.url.starts_with("https://") {
                return Err(self.key_err(
                    "report.ntfy",
                    "url",
                    format!("report.ntfy.url: {:?} is not an http(s) URL", n.url),
                ));
            }
            let ok_priority = matches!(
                n.priority.as_str(),
                "1" | "2" | "3" | "4" | "5" | "min" | "low" | "default" | "high" | "max" | "urgent"
            );
            if !ok_priority {
                return Err(self.key_err(
                    "report.ntfy",
                    "priority",
                    format!("report.ntfy.priority: {:?} is not 1–5, min, low, default, high, max or urgent", n.priority),
                ));
            }
        }
        let uptime_kuma = match raw.uptime_kuma {
            None => None,
            Some(k) => {
                if k.push_url.is_some() == k.push_url_file.is_some() {
                    return Err(self.key_err(
                        "report.uptime_kuma",
                        "push_url",
                        "report.uptime_kuma: give exactly one of push_url and push_url_file".into(),
                    ));
                }
                Some(KumaConfig {
                    push_url: k.push_url,
                    push_url_file: k.push_url_file.map(|p| self.path(&p)),
                    ca_cert: k.ca_cert.map(|p| self.path(&p)),
                })
            }
        };
        Ok(ReportConfig {
            textfile: raw.textfile.map(|p| self.path(&p)),
            expiry_warning: raw.expiry_warning,
            ntfy,
            uptime_kuma,
        })
    }

    fn certificate(
        &self,
        raw: RawCertificate,
        span: Range<usize>,
        defaults: &RawDefaults,
    ) -> Result<CertificateConfig> {
        let at = Some(span.clone());
        let name = pki::name::file_component(&raw.name)
            .map_err(|e| self.err(at.clone(), format!("certificate.name: {e}")))?
            .to_owned();
        let ctx = |key: &str| format!("certificate {name:?}: {key}");
        let profile = raw.profile.or(defaults.profile).unwrap_or_default();
        let key_algorithm = raw.key.or(defaults.key).unwrap_or_default();
        let ttl = raw.ttl.or(defaults.ttl).unwrap_or(DEFAULT_TTL);
        let request =
            pki::CertificateRequest::new(&raw.common_name, raw.sans.iter().cloned(), profile, ttl)
                .map_err(|e| self.err(at.clone(), format!("{}: {e}", ctx("common_name/sans"))))?;
        if raw.renew_at.is_some() && raw.renew_before.is_some() {
            return Err(self.err(
                at,
                format!(
                    "{}: give renew_at or renew_before, not both",
                    ctx("renew_at")
                ),
            ));
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
            return Err(self.err(
                at,
                format!(
                    "{}: {} is not shorter than the lifetime {}; every run would renew",
                    ctx("renew_before"),
                    duration::format(d),
                    duration::format(ttl)
                ),
            ));
        }
        let jitter = raw.jitter.or(defaults.jitter).unwrap_or(DEFAULT_JITTER);
        // The earliest point a certificate can become due, as a fraction of its lifetime: at or
        // near zero, a certificate would be due as soon as it is issued and every run renews.
        let point = match renew_at {
            RenewAt::Fraction(f) => f,
            RenewAt::BeforeExpiry(d) => 1.0 - d / ttl,
        };
        if point - jitter < MIN_RENEW_POINT {
            return Err(self.err(
                at,
                format!(
                    "{}: renewal at {:.0} % of the lifetime, brought forward by up to {:.0} % of \
                     jitter, could fall on the day of issue; every run would renew",
                    ctx("renew_at"),
                    point * 100.0,
                    jitter * 100.0
                ),
            ));
        }
        let mut targets = Vec::new();
        for t in raw.targets {
            let tspan = t.span();
            targets.push(self.target(t.into_inner(), tspan, &name, defaults)?);
        }
        if targets.is_empty() {
            return Err(self.err(
                at,
                format!(
                    "{}: at least one [[certificate.target]] is needed",
                    ctx("target")
                ),
            ));
        }
        Ok(CertificateConfig {
            name,
            common_name: request.common_name().to_owned(),
            names: request.names().to_vec(),
            profile,
            key_algorithm,
            ttl,
            renew_at,
            jitter,
            targets,
            line: self.lines.line_of(span.start),
        })
    }

    #[allow(clippy::too_many_lines)] // one table of per-kind rules reads best in one place
    fn target(
        &self,
        raw: RawTarget,
        span: Range<usize>,
        cert: &str,
        defaults: &RawDefaults,
    ) -> Result<TargetConfig> {
        let at = Some(span.clone());
        let kind = TargetKind::parse(&raw.kind).ok_or_else(|| {
            self.err(
                at.clone(),
                format!(
                    "certificate {cert:?}: target.type: unknown type {:?} (files, haproxy, nginx, \
                     mariadb, postgres, redis, keystore)",
                    raw.kind
                ),
            )
        })?;
        let key_of = |k: &str| format!("certificate {cert:?}: target {}: {k}", kind.name());
        // The key's own line when it is in the table, else the table's.
        let fail = |k: &str, m: &str| Error::Config {
            file: self.file.to_path_buf(),
            line: self
                .key_line(span.start, k)
                .or_else(|| at.clone().map(|a| self.lines.line_of(a.start))),
            message: format!("{}: {m}", key_of(k)),
        };
        // Keys that only some kinds take.
        let allowed: &[&str] = match kind {
            TargetKind::Files => &[
                "dir",
                "files",
                "cert",
                "key",
                "chain",
                "fullchain",
                "ca",
                "combined",
                "reload_command",
            ],
            TargetKind::Haproxy => &["pem", "socket", "reload_command", "test_command"],
            TargetKind::Nginx => &["cert", "key", "test_command", "reload_command"],
            TargetKind::Mariadb => &["cert", "key", "ca", "reload_command"],
            TargetKind::Postgres => &["cert", "key", "ca", "reload_command"],
            TargetKind::Redis => &["cert", "key", "ca", "socket", "password_file"],
            TargetKind::Keystore => &[
                "pkcs12",
                "password_file",
                "alias",
                "cert",
                "key",
                "reload_command",
            ],
        };
        let present = [
            ("dir", raw.dir.is_some()),
            ("files", raw.files.is_some()),
            ("cert", raw.cert.is_some()),
            ("key", raw.key.is_some()),
            ("chain", raw.chain.is_some()),
            ("fullchain", raw.fullchain.is_some()),
            ("ca", raw.ca.is_some()),
            ("combined", raw.combined.is_some()),
            ("pem", raw.pem.is_some()),
            ("pkcs12", raw.pkcs12.is_some()),
            ("test_command", raw.test_command.is_some()),
            ("reload_command", raw.reload_command.is_some()),
            ("socket", raw.socket.is_some()),
            ("password_file", raw.password_file.is_some()),
            ("alias", raw.alias.is_some()),
        ];
        for (key, is_set) in present {
            if is_set && !allowed.contains(&key) {
                return Err(fail(key, &format!("not a key of {} targets", kind.name())));
            }
        }
        let require = |v: &Option<String>, k: &str| {
            v.as_deref()
                .map(|p| self.path(p))
                .ok_or_else(|| fail(k, "required"))
        };
        let out = |path: PathBuf, content| OutputFile { path, content };
        let mut files = Vec::new();
        match kind {
            TargetKind::Files => {
                let dir = raw.dir.as_deref().map(|d| self.path(d));
                let names = [
                    ("cert", Content::Cert, &raw.cert, "cert.pem"),
                    ("key", Content::Key, &raw.key, "key.pem"),
                    ("chain", Content::Chain, &raw.chain, "chain.pem"),
                    (
                        "fullchain",
                        Content::Fullchain,
                        &raw.fullchain,
                        "fullchain.pem",
                    ),
                    ("ca", Content::Ca, &raw.ca, "ca.pem"),
                    ("combined", Content::Combined, &raw.combined, "combined.pem"),
                ];
                let selected: Vec<&str> = match &raw.files {
                    Some(list) if list.is_empty() => {
                        return Err(fail("files", "an empty list: name at least one file"));
                    }
                    Some(list) => list.iter().map(String::as_str).collect(),
                    None => {
                        let explicit: Vec<&str> = names
                            .iter()
                            .filter(|n| n.2.is_some())
                            .map(|n| n.0)
                            .collect();
                        if explicit.is_empty() {
                            vec!["cert", "key", "chain", "fullchain", "ca"]
                        } else {
                            explicit
                        }
                    }
                };
                for s in &selected {
                    let Some((_, content, given, default)) = names.iter().find(|n| n.0 == *s)
                    else {
                        return Err(fail(
                            "files",
                            &format!(
                                "unknown file {s:?} (cert, key, chain, fullchain, ca, combined)"
                            ),
                        ));
                    };
                    let path = match (given, &dir) {
                        (Some(p), Some(d)) if !Path::new(p).is_absolute() => d.join(p),
                        (Some(p), _) => self.path(p),
                        (None, Some(d)) => d.join(default),
                        (None, None) => {
                            return Err(fail(
                                "dir",
                                &format!("required unless every file has a path ({s} has none)"),
                            ));
                        }
                    };
                    files.push(out(path, *content));
                }
            }
            TargetKind::Haproxy => files.push(out(require(&raw.pem, "pem")?, Content::Combined)),
            TargetKind::Nginx => {
                files.push(out(require(&raw.key, "key")?, Content::Key));
                files.push(out(require(&raw.cert, "cert")?, Content::Fullchain));
            }
            TargetKind::Mariadb | TargetKind::Postgres | TargetKind::Redis => {
                files.push(out(require(&raw.key, "key")?, Content::Key));
                files.push(out(require(&raw.cert, "cert")?, Content::Fullchain));
                if let Some(ca) = &raw.ca {
                    files.push(out(self.path(ca), Content::Ca));
                }
            }
            TargetKind::Keystore => {
                if let Some(p) = &raw.pkcs12 {
                    files.push(out(self.path(p), Content::Pkcs12));
                }
                if raw.key.is_some() != raw.cert.is_some() {
                    return Err(fail("cert", "the PEM variant needs both cert and key"));
                }
                if let (Some(k), Some(c)) = (&raw.key, &raw.cert) {
                    files.push(out(self.path(k), Content::Key));
                    files.push(out(self.path(c), Content::Fullchain));
                }
                if files.is_empty() {
                    return Err(fail(
                        "pkcs12",
                        "give pkcs12 (with password_file), or cert and key, or both",
                    ));
                }
                if raw.pkcs12.is_some() && raw.password_file.is_none() {
                    return Err(fail("password_file", "required with pkcs12"));
                }
            }
        }
        for f in &files {
            let name = f.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.is_empty() || name.starts_with(pki::fsio::TEMP_PREFIX) || name == ".pki" {
                return Err(fail(
                    "path",
                    &format!("{} is not a usable file name", f.path.display()),
                ));
            }
        }
        let uid = raw
            .owner
            .map(|o| user(o).map_err(|m| fail("owner", &m)))
            .transpose()?;
        let gid = raw
            .group
            .map(|g| group(g).map_err(|m| fail("group", &m)))
            .transpose()?;
        // Who will own the files: the configured owner, else whoever runs the hook.
        let owner = uid.unwrap_or_else(|| nix::unistd::geteuid().as_raw());
        let service = match kind {
            TargetKind::Mariadb => Some("MariaDB"),
            TargetKind::Redis => Some("Redis"),
            TargetKind::Postgres => Some("PostgreSQL"),
            TargetKind::Keystore => Some("the keystore's service"),
            _ => None,
        };
        if let Some(service) = service
            && owner == 0
            && gid.is_none()
        {
            // These services run as their own user: a key only root can read stops them.
            return Err(fail(
                "group",
                &format!(
                    "{service} reads the key as its own user: set group (the service's group, \
                     with key_mode \"0640\") or owner"
                ),
            ));
        }
        let default_key_mode = match kind {
            // PostgreSQL: 0600 when it owns the key, 0640 when root owns it.
            TargetKind::Postgres if owner != 0 => 0o600,
            // The service user reads the key through the group.
            TargetKind::Mariadb
            | TargetKind::Redis
            | TargetKind::Keystore
            | TargetKind::Postgres => 0o640,
            _ => 0o600,
        };
        let key_mode = match raw.key_mode {
            Some(m) => mode(m).map_err(|m| fail("key_mode", &m))?,
            None => default_key_mode,
        };
        let cert_mode = match raw.cert_mode {
            Some(m) => mode(m).map_err(|m| fail("cert_mode", &m))?,
            None => 0o644,
        };
        if key_mode & 0o004 != 0 {
            return Err(fail(
                "key_mode",
                &format!("{key_mode:04o} lets every user read the private key"),
            ));
        }
        if key_mode & 0o400 == 0 {
            return Err(fail(
                "key_mode",
                &format!("{key_mode:04o} does not let the owner read the key"),
            ));
        }
        if kind == TargetKind::Postgres {
            let allowed = if owner == 0 { 0o640 } else { 0o600 };
            if key_mode & !allowed != 0 {
                return Err(fail(
                    "key_mode",
                    &format!(
                        "PostgreSQL refuses a key with more than 0600 when it owns it, or 0640 \
                         when root does (this key: owner uid {owner}, mode {key_mode:04o})"
                    ),
                ));
            }
        }
        let command = |c: RawCommand, k: &str| match c {
            RawCommand::Argv(a) if a.is_empty() => Err(fail(k, "an empty command")),
            RawCommand::Argv(a) => Ok(CommandSpec::Argv(a)),
            RawCommand::Shell(s) if s.trim().is_empty() => Err(fail(k, "an empty command")),
            RawCommand::Shell(s) => Ok(CommandSpec::Shell(s)),
        };
        let test_command = match raw.test_command {
            Some(c) => Some(command(c, "test_command")?),
            None if kind == TargetKind::Nginx => Some(CommandSpec::Argv(vec![
                "nginx".into(),
                "-t".into(),
                "-q".into(),
            ])),
            None => None,
        };
        let reload_command = match raw.reload_command {
            Some(c) => Some(command(c, "reload_command")?),
            None => match kind {
                TargetKind::Nginx => Some(CommandSpec::Argv(vec![
                    "nginx".into(),
                    "-s".into(),
                    "reload".into(),
                ])),
                TargetKind::Mariadb => Some(CommandSpec::Argv(vec![
                    "mariadb".into(),
                    "-e".into(),
                    "FLUSH SSL".into(),
                ])),
                TargetKind::Postgres => Some(CommandSpec::Argv(vec![
                    "systemctl".into(),
                    "reload".into(),
                    "postgresql".into(),
                ])),
                _ => None,
            },
        };
        if kind == TargetKind::Haproxy && raw.socket.is_none() && reload_command.is_none() {
            return Err(fail(
                "socket",
                "give the admin socket (runtime API), a reload_command, or both",
            ));
        }
        if kind == TargetKind::Redis && raw.socket.is_none() {
            return Err(fail(
                "socket",
                "required: the unix socket where CONFIG SET is sent",
            ));
        }
        let probe = match raw.probe {
            Some(p) => Some(
                self.probe(p, kind, defaults)
                    .map_err(|m| fail("probe", &m))?,
            ),
            None => None,
        };
        let needs_probe = !matches!(kind, TargetKind::Files | TargetKind::Keystore);
        if needs_probe && probe.is_none() {
            return Err(fail(
                "probe",
                "required: a rotation is proven by a handshake with the live service (probe = { address = \"127.0.0.1:443\" })",
            ));
        }
        Ok(TargetConfig {
            kind,
            files,
            uid,
            gid,
            key_mode,
            cert_mode,
            test_command,
            reload_command,
            command_timeout: raw
                .command_timeout
                .or(defaults.command_timeout)
                .unwrap_or(DEFAULT_COMMAND_TIMEOUT),
            socket: raw.socket.as_deref().map(|p| self.path(p)),
            password_file: if kind == TargetKind::Keystore {
                None
            } else {
                raw.password_file.as_deref().map(|p| self.path(p))
            },
            keystore_password_file: if kind == TargetKind::Keystore {
                raw.password_file.as_deref().map(|p| self.path(p))
            } else {
                None
            },
            alias: raw.alias.unwrap_or_else(|| cert.to_owned()),
            probe,
            line: self.lines.line_of(span.start),
        })
    }

    fn probe(
        &self,
        raw: RawProbe,
        kind: TargetKind,
        defaults: &RawDefaults,
    ) -> std::result::Result<ProbeConfig, String> {
        let protocol = match raw.protocol.as_deref() {
            Some("tls") => ProbeProtocol::Tls,
            Some("postgres") => ProbeProtocol::Postgres,
            Some("mysql") | Some("mariadb") => ProbeProtocol::Mysql,
            Some(other) => return Err(format!("protocol {other:?} (tls, postgres, mysql)")),
            None => match kind {
                TargetKind::Postgres => ProbeProtocol::Postgres,
                TargetKind::Mariadb => ProbeProtocol::Mysql,
                _ => ProbeProtocol::Tls,
            },
        };
        // host:port, with [v6] brackets or a name.
        let ok = raw.address.parse::<SocketAddr>().is_ok()
            || raw
                .address
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !ok {
            return Err(format!("address {:?} is not host:port", raw.address));
        }
        Ok(ProbeConfig {
            address: raw.address,
            server_name: raw.server_name,
            protocol,
            timeout: raw
                .timeout
                .or(defaults.probe_timeout)
                .unwrap_or(DEFAULT_PROBE_TIMEOUT),
        })
    }
}

/// Removes `.` and `dir/..` pairs without touching the file system (the paths may not exist
/// yet), so messages and HAProxy's crt names read as written.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
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

/// A mode for certificate and key files: read and write bits only, no one but the owner may
/// write. A TOML number is taken as written (`0o640` is octal, `640` is decimal 640, which is
/// no such mode): write modes as strings such as `"0640"`.
fn mode(m: ModeValue) -> std::result::Result<u32, String> {
    let v = match m {
        ModeValue::Number(n) => {
            if n > 0o777 {
                return Err(format!(
                    "{n} is not a file mode (a TOML number is decimal: write \"{n:0>4}\" or 0o{n})"
                ));
            }
            n
        }
        ModeValue::Text(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .map_err(|_| format!("{s:?} is not an octal mode such as \"0640\""))?,
    };
    if v > 0o777 {
        return Err(format!(
            "{v:04o} is not allowed: set-id and sticky bits have no place on these files"
        ));
    }
    if v & 0o111 != 0 {
        return Err(format!(
            "{v:04o} makes a certificate or key file executable"
        ));
    }
    if v & 0o022 != 0 {
        return Err(format!(
            "{v:04o} lets other users than the owner rewrite the file"
        ));
    }
    Ok(v)
}

fn user(v: IdValue) -> std::result::Result<u32, String> {
    match v {
        IdValue::Number(n) => Ok(n),
        IdValue::Name(name) => match nix::unistd::User::from_name(&name) {
            Ok(Some(u)) => Ok(u.uid.as_raw()),
            _ => Err(format!("no user {name:?} on this host")),
        },
    }
}

fn group(v: IdValue) -> std::result::Result<u32, String> {
    match v {
        IdValue::Number(n) => Ok(n),
        IdValue::Name(name) => match nix::unistd::Group::from_name(&name) {
            Ok(Some(g)) => Ok(g.gid.as_raw()),
            _ => Err(format!("no group {name:?} on this host")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
state_dir = "state"
[backend]
type = "offline"
ca_dir = "ca"

[[certificate]]
name = "web"
common_name = "web.example.internal"
[[certificate.target]]
type = "files"
dir = "out"
"#;

    fn err(text: &str) -> String {
        parse(text, Path::new("/etc/pki/rotate.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn minimal_config_and_defaults() {
        let c = parse(MINIMAL, Path::new("/etc/pki/rotate.toml")).unwrap();
        assert_eq!(c.state_dir, Path::new("/etc/pki/state"));
        let cert = &c.certificates[0];
        assert_eq!(cert.ttl, DEFAULT_TTL);
        assert_eq!(cert.renew_at, RenewAt::default());
        assert_eq!(cert.targets[0].files.len(), 5);
        assert_eq!(cert.targets[0].key_mode, 0o600);
        assert_eq!(cert.line, 7);
    }

    #[test]
    fn unknown_keys_name_line_and_key() {
        let text = MINIMAL.replace("ca_dir = \"ca\"", "ca_dir = \"ca\"\ncolour = \"blue\"");
        let e = err(&text);
        assert!(
            e.contains("/etc/pki/rotate.toml:6:") && e.contains("colour"),
            "{e}"
        );
    }

    #[test]
    fn wrong_types_and_values() {
        let e = err(&MINIMAL.replace("name = \"web\"", "name = 5"));
        assert!(e.contains(":8:"), "{e}");
        let e = err(&MINIMAL.replace("name = \"web\"", "name = \"../web\""));
        assert!(e.contains("certificate.name") && e.contains(":7:"), "{e}");
        let e = err(&MINIMAL.replace(
            "common_name = \"web.example.internal\"",
            "common_name = \"web.example.internal\"\nttl = \"3q\"",
        ));
        assert!(e.contains("3q") && e.contains(":10:"), "{e}");
        let e = err(&MINIMAL.replace("type = \"files\"", "type = \"apache\""));
        assert!(e.contains("apache") && e.contains("target.type"), "{e}");
        let e = err(&MINIMAL.replace("dir = \"out\"", "dir = \"out\"\nsocket = \"/x\""));
        assert!(
            e.contains("socket") && e.contains("not a key of files"),
            "{e}"
        );
        let e = err(&MINIMAL.replace(
            "common_name = \"web.example.internal\"",
            "common_name = \"web.example.internal\"\nrenew_before = \"40d\"",
        ));
        assert!(e.contains("renew_before"), "{e}");
        for renew in ["renew_at = \"5%\"", "renew_at = \"20%\"\njitter = 15"] {
            let e = err(&MINIMAL.replace(
                "common_name = \"web.example.internal\"",
                &format!("common_name = \"web.example.internal\"\n{renew}"),
            ));
            assert!(e.contains("every run would renew"), "{renew}: {e}");
        }
    }

    fn with_target(target: &str) -> String {
        MINIMAL.replace("type = \"files\"\ndir = \"out\"", target)
    }

    #[test]
    fn modes_are_octal_and_least_privilege() {
        let e = err(&with_target(
            "type = \"files\"\ndir = \"out\"\nkey_mode = 600",
        ));
        assert!(e.contains("decimal") && e.contains("\"0600\""), "{e}");
        let ok = parse(
            &with_target("type = \"files\"\ndir = \"out\"\nkey_mode = 0o640"),
            Path::new("x.toml"),
        )
        .unwrap();
        assert_eq!(ok.certificates[0].targets[0].key_mode, 0o640);
        for (mode, why) in [
            ("\"0644\"", "every user read"),
            ("\"0660\"", "rewrite"),
            ("\"0700\"", "executable"),
            ("\"4600\"", "set-id"),
            ("\"0200\"", "owner read"),
        ] {
            let e = err(&with_target(&format!(
                "type = \"files\"\ndir = \"out\"\nkey_mode = {mode}"
            )));
            assert!(e.contains("key_mode") && e.contains(why), "{mode}: {e}");
        }
        let text = with_target("type = \"files\"\ndir = \"out\"\ncert_mode = \"0666\"");
        let e = err(&text);
        // The key's own line, not the table's.
        let line = text
            .lines()
            .position(|l| l.starts_with("cert_mode"))
            .unwrap()
            + 1;
        assert!(
            e.contains("cert_mode") && e.contains(&format!(":{line}:")),
            "{e}"
        );
        // A missing key: the table's header line.
        let text = format!("{MINIMAL}\n[report.uptime_kuma]\nca_cert = \"/x\"\n");
        let line = text
            .lines()
            .position(|l| l == "[report.uptime_kuma]")
            .unwrap()
            + 1;
        let e = err(&text);
        assert!(
            e.contains("push_url") && e.contains(&format!(":{line}:")),
            "{e}"
        );
    }

    #[test]
    fn an_empty_file_list_is_refused() {
        let e = err(&with_target("type = \"files\"\ndir = \"out\"\nfiles = []"));
        assert!(e.contains("files") && e.contains("empty"), "{e}");
    }

    #[test]
    fn services_running_as_their_own_user_must_be_able_to_read_the_key() {
        if !nix::unistd::geteuid().is_root() {
            return; // the rule is about keys written by root
        }
        let redis = "type = \"redis\"\ncert = \"/etc/redis/tls/r.crt\"\nkey = \"/etc/redis/tls/r.key\"\n\
                     socket = \"/run/redis/redis.sock\"\nprobe = { address = \"127.0.0.1:6379\" }";
        let e = err(&with_target(redis));
        assert!(e.contains("group") && e.contains("Redis"), "{e}");
        let c = parse(
            &with_target(&format!("{redis}\ngroup = 0")),
            Path::new("x.toml"),
        )
        .unwrap();
        assert_eq!(c.certificates[0].targets[0].key_mode, 0o640);

        let pg = "type = \"postgres\"\ncert = \"/etc/pg/s.crt\"\nkey = \"/etc/pg/s.key\"\n\
                  probe = { address = \"127.0.0.1:5432\" }";
        // Owned by root: 0640 by default, and never more.
        let c = parse(
            &with_target(&format!("{pg}\ngroup = 0")),
            Path::new("x.toml"),
        )
        .unwrap();
        assert_eq!(c.certificates[0].targets[0].key_mode, 0o640);
        // Owned by the server: 0600 by default, and 0640 is refused.
        let c = parse(
            &with_target(&format!("{pg}\nowner = 1")),
            Path::new("x.toml"),
        )
        .unwrap();
        assert_eq!(c.certificates[0].targets[0].key_mode, 0o600);
        let e = err(&with_target(&format!(
            "{pg}\nowner = 1\nkey_mode = \"0640\""
        )));
        assert!(e.contains("PostgreSQL refuses"), "{e}");
    }

    #[test]
    fn service_targets_need_a_probe() {
        let text = MINIMAL.replace(
            "type = \"files\"\ndir = \"out\"",
            "type = \"nginx\"\ncert = \"/etc/nginx/web.crt\"\nkey = \"/etc/nginx/web.key\"",
        );
        assert!(err(&text).contains("probe"));
        let text = text.replace(
            "key = \"/etc/nginx/web.key\"",
            "key = \"/etc/nginx/web.key\"\nprobe = { address = \"127.0.0.1:443\" }",
        );
        let c = parse(&text, Path::new("x.toml")).unwrap();
        let t = &c.certificates[0].targets[0];
        assert_eq!(
            t.test_command,
            Some(CommandSpec::Argv(vec![
                "nginx".into(),
                "-t".into(),
                "-q".into()
            ]))
        );
    }

    #[test]
    fn percentages() {
        let text = MINIMAL.replace(
            "common_name = \"web.example.internal\"",
            "common_name = \"web.example.internal\"\nrenew_at = \"75%\"\njitter = 2",
        );
        let c = parse(&text, Path::new("x.toml")).unwrap();
        assert_eq!(c.certificates[0].renew_at, RenewAt::Fraction(0.75));
        assert!((c.certificates[0].jitter - 0.02).abs() < 1e-9);
        assert!(err(&text.replace("75%", "175%")).contains("outside"));
    }
}
