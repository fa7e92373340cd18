//! Where the Vault backend connects and how it authenticates: [`VaultSettings`], filled from a
//! config file and/or the environment.
//!
//! Secrets (tokens, AppRole ids) are never stored here: the settings name the *files* that hold
//! them, and the ambient sources (`VAULT_TOKEN`, `~/.vault-token`, `PKI_VAULT_ROLE_ID`,
//! `PKI_VAULT_SECRET_ID`) are consulted only when [`VaultSettings::with_env`] was called, so a
//! program that builds its settings from a file alone is not surprised by a token in its
//! environment.

use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};

/// Environment variable names read by [`VaultSettings::with_env`] and by the credential lookup.
pub mod env {
    /// Server address, e.g. `https://vault.example.internal:8200` (`BAO_ADDR` also works).
    pub const ADDR: [&str; 2] = ["VAULT_ADDR", "BAO_ADDR"];
    /// PEM file of the CA(s) to trust instead of the system roots (`BAO_CACERT` also works).
    pub const CACERT: [&str; 2] = ["VAULT_CACERT", "BAO_CACERT"];
    /// Directory of PEM CA files to trust instead of the system roots (`BAO_CAPATH` also works).
    pub const CAPATH: [&str; 2] = ["VAULT_CAPATH", "BAO_CAPATH"];
    /// Namespace sent as `X-Vault-Namespace` (`BAO_NAMESPACE` also works).
    pub const NAMESPACE: [&str; 2] = ["VAULT_NAMESPACE", "BAO_NAMESPACE"];
    /// The token itself (`BAO_TOKEN` also works). Read only after `with_env`.
    pub const TOKEN: [&str; 2] = ["VAULT_TOKEN", "BAO_TOKEN"];
    /// A file holding the token (mode 0600).
    pub const TOKEN_FILE: &str = "PKI_VAULT_TOKEN_FILE";
    /// AppRole role_id itself. Read only after `with_env`.
    pub const ROLE_ID: &str = "PKI_VAULT_ROLE_ID";
    /// AppRole secret_id itself. Read only after `with_env`.
    pub const SECRET_ID: &str = "PKI_VAULT_SECRET_ID";
    /// A file holding the AppRole role_id.
    pub const ROLE_ID_FILE: &str = "PKI_VAULT_ROLE_ID_FILE";
    /// A file holding the AppRole secret_id (mode 0600).
    pub const SECRET_ID_FILE: &str = "PKI_VAULT_SECRET_ID_FILE";
    /// Mount path of the AppRole auth method (default `approle`).
    pub const APPROLE_MOUNT: &str = "PKI_VAULT_APPROLE_MOUNT";
    /// Mount path of the PKI secrets engine (default `pki`).
    pub const MOUNT: &str = "PKI_VAULT_MOUNT";
    /// PKI role used to sign (no default).
    pub const ROLE: &str = "PKI_VAULT_ROLE";
    /// The cluster's other nodes, comma-separated.
    pub const NODES: &str = "PKI_VAULT_NODES";
    /// Mount path of the KV v2 engine (default `secret`).
    pub const KV_MOUNT: &str = "PKI_VAULT_KV_MOUNT";
    /// Overall timeout of one request, a duration such as `60s` (the Vault CLI's name).
    pub const REQUEST_TIMEOUT: &str = "VAULT_CLIENT_TIMEOUT";
    /// Timeout of establishing a connection, a duration such as `10s`.
    pub const CONNECT_TIMEOUT: &str = "PKI_VAULT_CONNECT_TIMEOUT";
    /// Retries after a transient failure (the Vault CLI's name).
    pub const MAX_RETRIES: &str = "VAULT_MAX_RETRIES";
    /// How long transient failures are retried, across the nodes, a duration such as `30s`.
    pub const RETRY_BUDGET: &str = "PKI_VAULT_RETRY_BUDGET";
}

/// Default PKI mount.
pub const DEFAULT_MOUNT: &str = "pki";
/// Default AppRole mount.
pub const DEFAULT_APPROLE_MOUNT: &str = "approle";
/// Default KV v2 mount.
pub const DEFAULT_KV_MOUNT: &str = "secret";
/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: StdDuration = StdDuration::from_secs(10);
/// Default request timeout (the Vault CLI's).
pub const DEFAULT_REQUEST_TIMEOUT: StdDuration = StdDuration::from_secs(60);
/// Default time over which transient failures (a node down, sealed, in an election) are
/// retried: longer than a Raft election with default timing (about 12 s, measured).
pub const DEFAULT_RETRY_BUDGET: StdDuration = StdDuration::from_secs(30);

/// How to reach and authenticate to Vault / OpenBao. Every field is optional; see
/// [`VaultSettings::with_env`] for the environment variables that fill the gaps.
///
/// Credentials, in order: AppRole when both a role_id and a secret_id are configured
/// (`role_id_file`/`secret_id_file`, or after `with_env` `PKI_VAULT_ROLE_ID`/
/// `PKI_VAULT_SECRET_ID`); otherwise a token from `VAULT_TOKEN`/`BAO_TOKEN` (after `with_env`),
/// then `token_file`, then `~/.vault-token` (after `with_env`). Token and secret_id files that
/// group or others can read are refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct VaultSettings {
    /// Server address, e.g. `https://vault.example.internal:8200`; or several, separated by
    /// commas (a config file may give a list): the first is tried first, the others are
    /// cluster nodes as in `nodes`.
    #[serde(default, deserialize_with = "de_addresses")]
    pub address: Option<String>,
    /// The other members of its cluster (`https://vault-2.example.internal:8200`, ...):
    /// requests go on to the next of the address and these when a node is down, sealed or
    /// without a leader, and a standby's redirect is followed, with the token or a login, only
    /// to one of them.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// PEM file of CA certificates to trust *instead of* the system roots.
    pub ca_cert: Option<PathBuf>,
    /// Directory of PEM CA files to trust instead of the system roots.
    pub ca_path: Option<PathBuf>,
    /// Namespace (OpenBao; Vault Enterprise).
    pub namespace: Option<String>,
    /// PKI secrets engine mount (default `pki`).
    pub mount: Option<String>,
    /// PKI role to sign with.
    pub role: Option<String>,
    /// File holding a token (mode 0600).
    pub token_file: Option<PathBuf>,
    /// File holding the AppRole role_id.
    pub role_id_file: Option<PathBuf>,
    /// File holding the AppRole secret_id (mode 0600).
    pub secret_id_file: Option<PathBuf>,
    /// AppRole auth mount (default `approle`).
    pub approle_mount: Option<String>,
    /// KV v2 mount (default `secret`).
    pub kv_mount: Option<String>,
    /// Let Vault generate the key (`issue/:role`) instead of sending a CSR for a key made here.
    #[serde(default)]
    pub server_keygen: bool,
    /// Connect timeout (default 10 s); written as a duration such as `"10s"`.
    #[serde(default, deserialize_with = "de_duration")]
    pub connect_timeout: Option<StdDuration>,
    /// Request timeout (default 60 s); written as a duration such as `"60s"`.
    #[serde(default, deserialize_with = "de_duration")]
    pub request_timeout: Option<StdDuration>,
    /// At most this many retries of a transient failure (default: as many as the retry budget
    /// allows).
    pub max_retries: Option<u32>,
    /// How long transient failures are retried, across the nodes (default 30 s); written as a
    /// duration such as `"30s"`.
    #[serde(default, deserialize_with = "de_duration")]
    pub retry_budget: Option<StdDuration>,
    /// Whether the ambient credential sources (`VAULT_TOKEN`, `~/.vault-token`,
    /// `PKI_VAULT_ROLE_ID`, `PKI_VAULT_SECRET_ID`) may be used; set by [`VaultSettings::with_env`].
    #[serde(skip)]
    pub secrets_from_env: bool,
}

/// One address, or a list of them (kept as one comma-separated value).
fn de_addresses<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Addresses {
        One(String),
        Many(Vec<String>),
    }
    Ok(Some(match Addresses::deserialize(d)? {
        Addresses::One(a) => a,
        Addresses::Many(list) if list.is_empty() => {
            return Err(serde::de::Error::custom("an empty list of addresses"));
        }
        Addresses::Many(list) => list.join(","),
    }))
}

/// A duration written as text (`"90s"`, `"1m30s"`).
fn de_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<StdDuration>, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn parse_duration(text: &str) -> Result<StdDuration> {
    let d = crate::duration::parse(text)?;
    Ok(StdDuration::from_secs(d.whole_seconds().unsigned_abs()))
}

/// The line of a byte offset in a text, 1-based.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

fn first_env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

fn fill<T>(slot: &mut Option<T>, value: Option<String>, convert: impl FnOnce(String) -> T) {
    if slot.is_none()
        && let Some(v) = value
    {
        *slot = Some(convert(v));
    }
}

impl VaultSettings {
    /// Reads the settings of a TOML file (a `vault.toml` of the keys below), paths relative to
    /// the file's directory. Errors give the file and line, never the text of the line, which
    /// could hold a token someone put there by mistake.
    pub fn from_toml(text: &str, file: &Path) -> Result<Self> {
        let base = file.parent().unwrap_or(Path::new("."));
        Self::deserialize_relative(
            toml::Deserializer::parse(text).map_err(|e| toml_error(text, file, &e))?,
            base,
        )
        .map_err(|e| toml_error(text, file, &e))
    }

    /// Deserializes the settings from any table (a file of their own, or one table of a larger
    /// config), with relative paths taken from `base`.
    pub fn deserialize_relative<'de, D: Deserializer<'de>>(
        deserializer: D,
        base: &Path,
    ) -> std::result::Result<Self, D::Error> {
        let mut settings = Self::deserialize(deserializer)?;
        settings.resolve_paths(|p| base.join(p));
        Ok(settings)
    }

    /// Resolves every file path set (CA file and directory, token and AppRole files) with
    /// `resolve`: a config file names them relative to itself.
    pub fn resolve_paths(&mut self, resolve: impl Fn(&Path) -> PathBuf) {
        for p in [
            &mut self.ca_cert,
            &mut self.ca_path,
            &mut self.token_file,
            &mut self.role_id_file,
            &mut self.secret_id_file,
        ]
        .into_iter()
        .flatten()
        {
            *p = resolve(p);
        }
    }

    /// Fills every unset field from the environment and allows the ambient credential sources:
    ///
    /// | field | variables |
    /// | --- | --- |
    /// | `address` | `VAULT_ADDR`, `BAO_ADDR` |
    /// | `nodes` | `PKI_VAULT_NODES` (comma-separated) |
    /// | `ca_cert` | `VAULT_CACERT`, `BAO_CACERT` |
    /// | `ca_path` | `VAULT_CAPATH`, `BAO_CAPATH` |
    /// | `namespace` | `VAULT_NAMESPACE`, `BAO_NAMESPACE` |
    /// | `mount`, `role`, `kv_mount`, `approle_mount` | `PKI_VAULT_MOUNT`, `PKI_VAULT_ROLE`, `PKI_VAULT_KV_MOUNT`, `PKI_VAULT_APPROLE_MOUNT` |
    /// | `token_file` | `PKI_VAULT_TOKEN_FILE` |
    /// | `role_id_file`, `secret_id_file` | `PKI_VAULT_ROLE_ID_FILE`, `PKI_VAULT_SECRET_ID_FILE` |
    /// | `request_timeout`, `connect_timeout` | `VAULT_CLIENT_TIMEOUT`, `PKI_VAULT_CONNECT_TIMEOUT` |
    /// | `max_retries` | `VAULT_MAX_RETRIES` |
    /// | `retry_budget` | `PKI_VAULT_RETRY_BUDGET` |
    ///
    /// The token (`VAULT_TOKEN`, `BAO_TOKEN`, `~/.vault-token`) and AppRole values
    /// (`PKI_VAULT_ROLE_ID`, `PKI_VAULT_SECRET_ID`) are read when connecting, not copied here.
    pub fn with_env(mut self) -> Result<Self> {
        fill(&mut self.address, first_env(&env::ADDR), |v| v);
        if self.nodes.is_empty()
            && let Some(list) = first_env(&[env::NODES])
        {
            self.nodes = list
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect();
        }
        fill(&mut self.ca_cert, first_env(&env::CACERT), PathBuf::from);
        fill(&mut self.ca_path, first_env(&env::CAPATH), PathBuf::from);
        fill(&mut self.namespace, first_env(&env::NAMESPACE), |v| v);
        fill(&mut self.mount, first_env(&[env::MOUNT]), |v| v);
        fill(&mut self.role, first_env(&[env::ROLE]), |v| v);
        fill(&mut self.kv_mount, first_env(&[env::KV_MOUNT]), |v| v);
        fill(
            &mut self.approle_mount,
            first_env(&[env::APPROLE_MOUNT]),
            |v| v,
        );
        fill(
            &mut self.token_file,
            first_env(&[env::TOKEN_FILE]),
            PathBuf::from,
        );
        fill(
            &mut self.role_id_file,
            first_env(&[env::ROLE_ID_FILE]),
            PathBuf::from,
        );
        fill(
            &mut self.secret_id_file,
            first_env(&[env::SECRET_ID_FILE]),
            PathBuf::from,
        );
        for (slot, name, setting) in [
            (
                &mut self.request_timeout,
                env::REQUEST_TIMEOUT,
                "request_timeout",
            ),
            (
                &mut self.connect_timeout,
                env::CONNECT_TIMEOUT,
                "connect_timeout",
            ),
            (&mut self.retry_budget, env::RETRY_BUDGET, "retry_budget"),
        ] {
            if slot.is_none()
                && let Some(text) = first_env(&[name])
            {
                *slot = Some(parse_duration(&text).map_err(|e| Error::VaultConfig {
                    setting,
                    problem: e.to_string(),
                })?);
            }
        }
        if self.max_retries.is_none()
            && let Some(text) = first_env(&[env::MAX_RETRIES])
        {
            self.max_retries = Some(text.trim().parse().map_err(|_| Error::VaultConfig {
                setting: "max_retries",
                problem: format!("{text:?} is not a number"),
            })?);
        }
        self.secrets_from_env = true;
        Ok(self)
    }

    /// The PKI mount, default `pki`.
    pub fn mount(&self) -> &str {
        self.mount.as_deref().unwrap_or(DEFAULT_MOUNT)
    }

    /// The KV v2 mount, default `secret`.
    pub fn kv_mount(&self) -> &str {
        self.kv_mount.as_deref().unwrap_or(DEFAULT_KV_MOUNT)
    }

    /// The AppRole mount, default `approle`.
    pub fn approle_mount(&self) -> &str {
        self.approle_mount
            .as_deref()
            .unwrap_or(DEFAULT_APPROLE_MOUNT)
    }

    pub(crate) fn connect_timeout(&self) -> StdDuration {
        self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT)
    }

    pub(crate) fn request_timeout(&self) -> StdDuration {
        self.request_timeout.unwrap_or(DEFAULT_REQUEST_TIMEOUT)
    }

    pub(crate) fn retry_budget(&self) -> StdDuration {
        self.retry_budget.unwrap_or(DEFAULT_RETRY_BUDGET)
    }

    pub(crate) fn max_retries(&self) -> Result<Option<u32>> {
        match self.max_retries {
            None => Ok(None),
            Some(n) if n <= 20 => Ok(Some(n)),
            Some(_) => Err(Error::VaultConfig {
                setting: "max_retries",
                problem: "must be a number from 0 to 20".to_owned(),
            }),
        }
    }
}

fn toml_error(text: &str, file: &Path, e: &toml::de::Error) -> Error {
    Error::ConfigFile {
        path: file.to_path_buf(),
        line: e.span().map(|s| line_of(text, s.start)),
        message: e.message().to_owned(),
    }
}

/// Checks that a mount or role name is a plain path (letters, digits, `-`, `_`, `.`, and `/`
/// between segments), so that it cannot smuggle `..`, a query or another endpoint into a URL.
pub(crate) fn check_path_name(what: &'static str, value: &str) -> Result<()> {
    let bad = |problem: &str| Error::VaultConfig {
        setting: what,
        problem: format!("{value:?} {problem}"),
    };
    if value.is_empty() || value.len() > 256 {
        return Err(bad("must have 1 to 256 characters"));
    }
    for segment in value.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            return Err(bad("has an empty, `.` or `..` path segment"));
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(bad("may hold only letters, digits, `-`, `_`, `.` and `/`"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let s = VaultSettings::default();
        assert_eq!(s.mount(), "pki");
        assert_eq!(s.kv_mount(), "secret");
        assert_eq!(s.approle_mount(), "approle");
        assert_eq!(s.request_timeout(), DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(s.max_retries().unwrap(), None);
        assert_eq!(s.retry_budget(), DEFAULT_RETRY_BUDGET);
        assert!(!s.secrets_from_env);
    }

    #[test]
    fn address_may_be_a_list() {
        let s: VaultSettings =
            toml::from_str("address = [\"https://a:8200\", \"https://b:8200\"]\n").unwrap();
        assert_eq!(s.address.as_deref(), Some("https://a:8200,https://b:8200"));
        let s: VaultSettings = toml::from_str("address = \"https://a:8200\"\n").unwrap();
        assert_eq!(s.address.as_deref(), Some("https://a:8200"));
        assert!(toml::from_str::<VaultSettings>("address = []\n").is_err());
    }

    #[test]
    fn config_keys_parse_and_unknown_keys_are_refused() {
        let s: VaultSettings = toml::from_str(
            "address = \"https://v:8200\"\nrole = \"web\"\nserver_keygen = true\nrequest_timeout = \"5s\"\n",
        )
        .unwrap();
        assert_eq!(s.role.as_deref(), Some("web"));
        assert!(s.server_keygen);
        assert_eq!(s.request_timeout(), StdDuration::from_secs(5));
        assert!(toml::from_str::<VaultSettings>("tokne = \"x\"\n").is_err());
        assert!(toml::from_str::<VaultSettings>("secrets_from_env = true\n").is_err());
    }

    #[test]
    fn path_names() {
        for ok in ["pki", "pki_int", "team/pki", "a.b-c"] {
            check_path_name("mount", ok).unwrap();
        }
        for bad in [
            "", "../sys", "pki/", "a//b", "pki?x=1", "pki#", "p ki", "a/./b",
        ] {
            assert!(check_path_name("mount", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_bad_timeout_names_the_line_and_not_the_text() {
        let e = VaultSettings::from_toml(
            "address = \"https://v:8200\"\nrequest_timeout = \"soon\"\n",
            Path::new("/etc/pki/vault.toml"),
        )
        .unwrap_err();
        assert!(matches!(e, Error::ConfigFile { line: Some(2), .. }), "{e}");
        let e = VaultSettings::from_toml("tokne = \"hvs.s3cr3t\"\n", Path::new("v.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("v.toml:1") && !e.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn relative_paths_are_taken_from_the_file() {
        let s = VaultSettings::from_toml(
            "ca_cert = \"ca.pem\"\ntoken_file = \"/etc/pki/token\"\n",
            Path::new("/etc/pki/vault/vault.toml"),
        )
        .unwrap();
        assert_eq!(
            s.ca_cert.as_deref(),
            Some(Path::new("/etc/pki/vault/ca.pem"))
        );
        assert_eq!(s.token_file.as_deref(), Some(Path::new("/etc/pki/token")));
    }
}
