//! Deploy targets: one module per service, and the mechanism they share.
//!
//! | module | what it owns |
//! | --- | --- |
//! | [`files`] | any PEM layout in a directory, an optional reload command |
//! | [`haproxy`] | the combined PEM, the runtime API hot swap (`set ssl cert` + `commit`), the reload fallback |
//! | [`nginx`] | full chain + key, `nginx -t` before `nginx -s reload` |
//! | [`mariadb`] | full chain + key (+ CA), `FLUSH SSL`, the MySQL probe |
//! | [`postgres`] | full chain + key (+ CA), the key mode rule (0600 own / 0640 root), reload, the PostgreSQL probe |
//! | [`redis`] | full chain + key (+ CA), `CONFIG SET tls-*` on the unix socket |
//! | [`keystore`] | PKCS#12 (Java, Solr) and/or PEM with a PKCS#8 key (Elasticsearch, Neo4j) |
//! | [`layout`] | the versioned directory beside a target's files: stage, adopt, switch, prune, checks |
//! | [`deploy`] | one target's deployment: prepare, then activate (switch, test, load, prove), roll back |
//!
//! Each service module holds its config keys (a serde struct of its own) and their validation,
//! its defaults (commands, key mode, the user the service reads keys as, the probe protocol),
//! the files it renders, and how it checks and loads a version. The validated config is typed:
//! a [`TargetConfig`] holds the common settings and a [`Service`], one variant per service
//! carrying exactly its fields.
//!
//! Adding a service: a new module implementing the crate's `Kind` and `Ops` traits, one line in the
//! `services!` list below, and its row in README.md.

pub mod deploy;
pub mod layout;
mod tls_files;

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use pki::{IssuedCertificate, bundle};
use serde::de::DeserializeOwned;
use time::Duration;
use zeroize::Zeroizing;

use crate::error::Result;
use crate::exec::CommandSpec;
use crate::probe::{ProbeConfig, ProbeProtocol};

/// What a rendered file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Content {
    /// The leaf.
    Cert,
    /// The private key (PKCS#8).
    Key,
    /// Intermediates.
    Chain,
    /// Leaf + intermediates.
    Fullchain,
    /// The trust bundle (see [`pki::bundle::ca_pem`]).
    Ca,
    /// Leaf + intermediates + key (HAProxy).
    Combined,
    /// PKCS#12 keystore.
    Pkcs12,
    /// PKCS#12 truststore: the trust bundle as Java trusted-certificate entries.
    Truststore,
}

impl Content {
    /// Whether the content includes the private key (and needs the private mode).
    pub fn is_secret(self) -> bool {
        matches!(self, Self::Key | Self::Combined | Self::Pkcs12)
    }

    /// Whether the content starts with the leaf certificate (what a rollback probes for).
    pub fn has_leaf(self) -> bool {
        matches!(self, Self::Cert | Self::Fullchain | Self::Combined)
    }
}

/// One file a target writes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OutputFile {
    /// Where (as the service is configured to read it).
    pub path: PathBuf,
    /// What.
    pub content: Content,
}

impl OutputFile {
    /// A file at `path` holding `content`.
    pub fn new(path: impl Into<PathBuf>, content: Content) -> Self {
        Self {
            path: path.into(),
            content,
        }
    }
}

/// A target setting that cannot work, and the config key it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Invalid {
    /// The key at fault.
    pub key: &'static str,
    /// What is wrong.
    pub problem: String,
}

impl Invalid {
    /// A problem with `key`.
    pub fn new(key: &'static str, problem: impl Into<String>) -> Self {
        Self {
            key,
            problem: problem.into(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.problem)
    }
}

impl std::error::Error for Invalid {}

/// The settings every target has, whatever its service.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settings {
    /// Owner uid of the files (`None`: whoever runs the hook).
    pub uid: Option<u32>,
    /// Group gid of the files (`None`: the hook's group).
    pub gid: Option<u32>,
    /// Mode of files holding the key (`None`: the service's default).
    pub key_mode: Option<u32>,
    /// Mode of the other files.
    pub cert_mode: u32,
    /// Time limit for each test or reload command.
    pub command_timeout: Duration,
    /// How to probe the live service.
    pub probe: Option<ProbeConfig>,
}

/// Time a test or reload command may run unless configured otherwise.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::seconds(60);
/// Mode of certificate files unless configured otherwise.
pub const DEFAULT_CERT_MODE: u32 = 0o644;

impl Default for Settings {
    fn default() -> Self {
        Self {
            uid: None,
            gid: None,
            key_mode: None,
            cert_mode: DEFAULT_CERT_MODE,
            command_timeout: DEFAULT_COMMAND_TIMEOUT,
            probe: None,
        }
    }
}

/// A validated deploy target: the service, the common settings, and the files they imply.
#[derive(Debug, Clone)]
pub struct TargetConfig {
    service: Service,
    settings: Settings,
    key_mode: u32,
    files: Vec<OutputFile>,
    /// `.pki/<first file's name>` beside the first file, as a path and as text (the run
    /// state's key for the target).
    versions: (PathBuf, String),
    /// A digest of everything that shapes the rendered files (see [`layout::version_id`]).
    digest: u32,
    /// The config line of its table (0 for a target built in code).
    pub line: usize,
}

impl TargetConfig {
    /// Checks a target whose files are written by the user running this process.
    pub fn new(service: Service, settings: Settings) -> std::result::Result<Self, Invalid> {
        Self::with_writer(service, settings, nix::unistd::geteuid().as_raw())
    }

    /// Checks a target whose files are written by `writer` (the uid running the hook): the
    /// rules on key modes depend on who owns the key.
    pub fn with_writer(
        service: Service,
        settings: Settings,
        writer: u32,
    ) -> std::result::Result<Self, Invalid> {
        let ops = service.ops();
        let files = ops.files();
        if files.is_empty() {
            return Err(Invalid::new("files", "a target needs at least one file"));
        }
        for f in &files {
            let name = f.path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.is_empty() || name.starts_with(pki::fsio::TEMP_PREFIX) || name == ".pki" {
                return Err(Invalid::new(
                    "path",
                    format!("{} is not a usable file name", f.path.display()),
                ));
            }
        }
        let owner = settings.uid.unwrap_or(writer);
        if let Some(user) = ops.reads_key_as()
            && owner == 0
            && settings.gid.is_none()
        {
            // The service runs as its own user: a key only root can read stops it.
            return Err(Invalid::new(
                "group",
                format!(
                    "{user} reads the key as its own user: set group (the service's group, \
                     with key_mode \"0640\") or owner"
                ),
            ));
        }
        let key_mode = settings
            .key_mode
            .unwrap_or_else(|| ops.default_key_mode(owner));
        check_key_mode(key_mode)?;
        ops.check_key_mode(owner, key_mode)
            .map_err(|m| Invalid::new("key_mode", m))?;
        if ops.needs_probe() && settings.probe.is_none() {
            return Err(Invalid::new(
                "probe",
                "required: a rotation is proven by a handshake with the live service \
                 (probe = { address = \"127.0.0.1:443\" })",
            ));
        }
        let versions = layout::versions_dir_of(&files);
        let digest = layout::settings_digest(&service, &settings, key_mode, &files);
        let key = versions.display().to_string();
        Ok(Self {
            service,
            settings,
            key_mode,
            files,
            versions: (versions, key),
            digest,
            line: 0,
        })
    }

    /// The directory beside the first file that holds the target's versions.
    pub fn versions_dir(&self) -> &Path {
        &self.versions.0
    }

    /// The target's identity in the run state (its versions directory, as text).
    pub fn key(&self) -> &str {
        &self.versions.1
    }

    /// A digest of the settings that shape its files.
    pub(crate) fn digest(&self) -> u32 {
        self.digest
    }

    /// The service.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// The common settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The files it writes.
    pub fn files(&self) -> &[OutputFile] {
        &self.files
    }

    /// Mode of files holding the key.
    pub fn key_mode(&self) -> u32 {
        self.key_mode
    }

    /// The probe, if any.
    pub fn probe(&self) -> Option<&ProbeConfig> {
        self.settings.probe.as_ref()
    }

    /// A short description for messages: the service and the first path.
    pub fn label(&self) -> String {
        match self.files.first() {
            Some(f) => format!("{} {}", self.service.name(), f.path.display()),
            None => self.service.name().to_owned(),
        }
    }

    /// The path of the first file with this content.
    pub fn path_of(&self, content: Content) -> Option<&Path> {
        self.files
            .iter()
            .find(|f| f.content == content)
            .map(|f| f.path.as_path())
    }

    pub(crate) fn ops(&self) -> &dyn Ops {
        self.service.ops()
    }
}

/// Read and write bits only, never readable by others, readable by the owner.
fn check_key_mode(mode: u32) -> std::result::Result<(), Invalid> {
    if mode & 0o004 != 0 {
        return Err(Invalid::new(
            "key_mode",
            format!("{mode:04o} lets every user read the private key"),
        ));
    }
    if mode & 0o400 == 0 {
        return Err(Invalid::new(
            "key_mode",
            format!("{mode:04o} does not let the owner read the key"),
        ));
    }
    Ok(())
}

/// A future of a service step, boxed so that [`Ops`] stays object safe.
pub(crate) type StepFuture<'a> = Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

/// One step of a deployment as a service sees it: the target, the version directory being
/// loaded (the new one, or the previous one during a rollback) and the hook environment.
pub(crate) struct Step<'a> {
    /// The target.
    pub target: &'a TargetConfig,
    /// The version directory whose files the configured paths now point into.
    pub version: &'a pki::fsio::Dir,
    /// `PKI_*` variables for commands.
    pub env: &'a [(&'static str, String)],
}

impl Step<'_> {
    /// Runs a configured command with the hook environment and the target's time limit.
    pub(crate) async fn run(&self, command: &CommandSpec) -> Result<()> {
        crate::exec::run(command, self.env, self.target.settings.command_timeout).await?;
        Ok(())
    }
}

/// What a service runs and reads besides the files it writes (see [`Ops::uses`]).
#[derive(Debug, Default)]
pub(crate) struct Uses<'a> {
    /// Commands (test, reload).
    pub commands: Vec<&'a CommandSpec>,
    /// Files holding a secret (a password).
    pub secrets: Vec<&'a Path>,
}

/// How a service's table becomes the typed service: its `type` names and its own keys.
pub(crate) trait Kind: Ops + Sized {
    /// The names that select it in `type = "…"` (the first is its name).
    const NAMES: &'static [&'static str];
    /// Its keys, as serde reads them (besides the common ones the frame reads).
    type Raw: DeserializeOwned;
    /// Validates its keys.
    fn from_raw(raw: Self::Raw, paths: &Paths<'_>) -> std::result::Result<Self, Invalid>;
}

/// What a service does: the files it writes, the rules it imposes, how it loads a version.
pub(crate) trait Ops: fmt::Debug + Send + Sync {
    /// The files, in the order they are written.
    fn files(&self) -> Vec<OutputFile>;

    /// The service reads the key as its own user (its name, for messages): a key owned by root
    /// then needs a group.
    fn reads_key_as(&self) -> Option<&'static str> {
        None
    }

    /// The key mode when none is configured, given the key's owner.
    fn default_key_mode(&self, _owner: u32) -> u32 {
        0o600
    }

    /// Refuses a key mode the service itself would refuse.
    fn check_key_mode(&self, _owner: u32, _mode: u32) -> std::result::Result<(), String> {
        Ok(())
    }

    /// Whether a rotation must be proven by a probe.
    fn needs_probe(&self) -> bool {
        true
    }

    /// The probe protocol when none is configured.
    fn probe_protocol(&self) -> ProbeProtocol {
        ProbeProtocol::Tls
    }

    /// What goes into one of its files.
    fn render(
        &self,
        file: &OutputFile,
        material: &IssuedCertificate,
    ) -> Result<Zeroizing<Vec<u8>>> {
        render_pem(file.content, material)
    }

    /// Settings besides files, modes and owners that change what is rendered (they name a new
    /// version of the target when they change).
    fn describe(&self) -> String {
        String::new()
    }

    /// The commands it runs and the secret files it reads, for the audit of a config run as
    /// root (see [`crate::config::audit`]).
    fn uses(&self) -> Uses<'_> {
        Uses::default()
    }

    /// Checks the new files before the service loads them (`nginx -t`).
    fn check<'a>(&'a self, _step: &'a Step<'a>) -> StepFuture<'a> {
        Box::pin(async { Ok(()) })
    }

    /// Makes the service load what the configured paths point at.
    fn load<'a>(&'a self, step: &'a Step<'a>) -> StepFuture<'a>;
}

/// The PEM renderings every service may use.
pub(crate) fn render_pem(
    content: Content,
    material: &IssuedCertificate,
) -> Result<Zeroizing<Vec<u8>>> {
    let text = |s: String| Zeroizing::new(s.into_bytes());
    Ok(match content {
        Content::Cert => text(material.certificate.pem()),
        Content::Key => Zeroizing::new(bundle::key_pem(material)?.expose().as_bytes().to_vec()),
        Content::Chain => text(bundle::chain_pem(material)),
        Content::Fullchain => text(bundle::fullchain_pem(material)),
        Content::Ca => text(bundle::ca_pem(material)),
        Content::Combined => {
            Zeroizing::new(bundle::combined_pem(material)?.expose().as_bytes().to_vec())
        }
        Content::Pkcs12 | Content::Truststore => {
            return Err(pki::Error::InvalidRequest("PKCS#12 needs a keystore target").into());
        }
    })
}

/// Resolves the paths a service table names: relative to the config file's directory.
pub(crate) struct Paths<'a> {
    /// The directory relative paths start from.
    pub base: &'a Path,
    /// The certificate the target belongs to (a keystore's default alias).
    pub certificate: &'a str,
}

impl Paths<'_> {
    /// A path as configured, made absolute and without `.` or `..` steps.
    pub(crate) fn path(&self, p: &str) -> PathBuf {
        crate::config::resolve(self.base, p)
    }

    /// A required path.
    pub(crate) fn required(
        &self,
        key: &'static str,
        value: Option<String>,
    ) -> std::result::Result<PathBuf, Invalid> {
        value
            .map(|p| self.path(&p))
            .ok_or_else(|| Invalid::new(key, "required"))
    }
}

/// How an exchange on a service's control socket (HAProxy runtime API, Redis) went wrong.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The socket failed: connect, read, write, the deadline, an answer that is not text.
    Io(std::io::Error),
    /// The service answered and refused: what it said.
    Refused(String),
}

/// A command as TOML writes it: an argv list or a shell line.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum RawCommand {
    /// `["nginx", "-s", "reload"]`
    Argv(Vec<String>),
    /// `"systemctl reload nginx"`
    Shell(String),
}

/// A configured command, or `None`; an empty one is refused.
pub(crate) fn command(
    key: &'static str,
    raw: Option<RawCommand>,
) -> std::result::Result<Option<CommandSpec>, Invalid> {
    let Some(raw) = raw else { return Ok(None) };
    let spec = match raw {
        RawCommand::Argv(a) => CommandSpec::from_argv(a),
        RawCommand::Shell(s) => CommandSpec::from_shell(s),
    };
    spec.map(Some)
        .ok_or_else(|| Invalid::new(key, "an empty command"))
}

/// Declares the services: the [`Service`] enum, its dispatch and its parser, from one list.
macro_rules! services {
    ($($(#[$doc:meta])* $variant:ident($module:ident::$ty:ident),)*) => {
        $(pub mod $module;)*

        /// The service a target deploys to, with exactly the settings that service takes.
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub enum Service {
            $($(#[$doc])* $variant($module::$ty),)*
        }

        impl Service {
            /// The `type` names, for messages.
            pub const TYPES: &'static [&'static str] =
                &[$(<$module::$ty as Kind>::NAMES[0],)*];

            /// Its name as in `type = "…"`.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => <$module::$ty as Kind>::NAMES[0],)*
                }
            }

            pub(crate) fn ops(&self) -> &dyn Ops {
                match self {
                    $(Self::$variant(s) => s,)*
                }
            }

            /// Reads the table of the service named `kind`, or `None` for an unknown name.
            pub(crate) fn parse(
                kind: &str,
                table: &mut crate::config::doc::Table<'_>,
                paths: &Paths<'_>,
            ) -> Option<Result<Self>> {
                $(
                    if <$module::$ty as Kind>::NAMES.contains(&kind) {
                        return Some(table.read_as::<$module::$ty>(paths).map(Self::$variant));
                    }
                )*
                None
            }
        }

        $(
            impl From<$module::$ty> for Service {
                fn from(s: $module::$ty) -> Self {
                    Self::$variant(s)
                }
            }
        )*
    };
}

services! {
    /// Any PEM files in a directory.
    Files(files::Files),
    /// HAProxy's combined PEM and runtime API.
    Haproxy(haproxy::Haproxy),
    /// Nginx.
    Nginx(nginx::Nginx),
    /// MariaDB / MySQL.
    Mariadb(mariadb::Mariadb),
    /// PostgreSQL.
    Postgres(postgres::Postgres),
    /// Redis.
    Redis(redis::Redis),
    /// A Java keystore and/or PEM for the JVM services.
    Keystore(keystore::Keystore),
}
