//! The versioned store: every issued certificate of a managed name in a directory of its own,
//! and a `current` symlink switched atomically, so a reader never sees a new certificate with an
//! old key. Previous versions stay for rollback.
//!
//! ```text
//! <state_dir>/certs/<name>/
//!     20261125T031415Z-3e25501c/   cert.pem key.pem chain.pem fullchain.pem ca.pem
//!     20261126T031415Z-9a0b1c2d/   …
//!     current -> 20261126T031415Z-9a0b1c2d
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use pki::fsio::Durability;
use pki::rotation::{Current, Observed};
use pki::{Certificate, IssuedCertificate, PrivateKey, bundle, fsio};
use time::OffsetDateTime;

use crate::error::{Error, Result};

/// Versions kept besides the current one.
pub const KEEP_PREVIOUS: usize = 2;

/// Name of the symlink to the current version.
pub const CURRENT: &str = "current";

/// The store under a state directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// What the store holds for a name: the current version and what the planner needs to know.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The current version's id, if any.
    pub version: Option<String>,
    /// For the planner.
    pub observed: Observed,
    /// The current certificate, when it parses.
    pub certificate: Option<Certificate>,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Reads the target of a symlink as a plain name; `None` when absent or not a symlink.
pub(crate) fn link_name(link: &Path) -> Option<String> {
    fs::read_link(link)
        .ok()
        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// A version id: the issue time and the start of the serial, sortable by time.
pub(crate) fn version_id(cert: &Certificate, now: OffsetDateTime) -> String {
    let t = now.to_offset(time::UtcOffset::UTC);
    let serial = cert.info().serial.to_hex();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z-{}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        &serial[..serial.len().min(8)]
    )
}

impl Store {
    /// Opens the store of `state_dir`, creating its directories (0700: it holds private keys)
    /// when `create` is set; a dry run reads without creating anything.
    pub fn open_at(state_dir: &Path, create: bool) -> Result<Self> {
        let root = state_dir.join("certs");
        if create {
            fsio::create_dir(state_dir, 0o700)?;
            fsio::create_dir(&root, 0o700)?;
        }
        Ok(Self { root })
    }

    /// The directory of a managed name.
    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The current version id of a name.
    pub fn current(&self, name: &str) -> Option<String> {
        link_name(&self.dir(name).join(CURRENT))
    }

    /// The directory of a version.
    pub fn version_dir(&self, name: &str, id: &str) -> PathBuf {
        self.dir(name).join(id)
    }

    /// Observes the current version: parses the certificate and checks that the key matches,
    /// reading the key's public half without loading it for signing.
    pub fn observe(&self, name: &str, issuer: Option<&Certificate>) -> Observation {
        let Some(version) = self.current(name) else {
            return Observation {
                version: None,
                observed: Observed::Missing,
                certificate: None,
            };
        };
        let dir = self.version_dir(name, &version);
        let unusable = |why: String| Observation {
            version: Some(version.clone()),
            observed: Observed::Unusable(why),
            certificate: None,
        };
        let cert_path = dir.join(bundle::files::CERT);
        let cert = match fsio::read_limited(&cert_path, fsio::MAX_PEM_INPUT)
            .and_then(|t| Certificate::from_pem(&t, &cert_path.display().to_string()))
        {
            Ok(c) => c,
            Err(e) => return unusable(e.to_string()),
        };
        let key_path = dir.join(bundle::files::KEY);
        let key_matches = match fsio::read_limited(&key_path, fsio::MAX_PEM_INPUT).and_then(|t| {
            let t = zeroize::Zeroizing::new(t);
            let block = pki::pemfile::single_block(
                &t,
                &key_path.display().to_string(),
                &[pki::pemfile::label::PRIVATE_KEY],
            )?;
            let der = zeroize::Zeroizing::new(block.der);
            pki::key::pkcs8_public_key(&der)
        }) {
            Ok(public) => public == cert.public_key_raw(),
            Err(e) => return unusable(e.to_string()),
        };
        let info = cert.info();
        let current = Current {
            common_name: info.common_name.clone(),
            names: info.subject_alt_names.clone(),
            profile: info.profile,
            key_algorithm: info.key_algorithm,
            not_before: info.not_before,
            not_after: info.not_after,
            key_matches,
            issuer_current: issuer.map(|i| cert.is_signed_by(i)),
        };
        Observation {
            version: Some(version),
            observed: Observed::Present(current),
            certificate: Some(cert),
        }
    }

    /// Writes a new version (every file fsync'd) without switching to it; returns its id.
    pub fn add(
        &self,
        name: &str,
        issued: &IssuedCertificate,
        now: OffsetDateTime,
        durability: Durability,
    ) -> Result<String> {
        let base = self.dir(name);
        fsio::create_dir(&base, 0o700)?;
        let mut id = version_id(&issued.certificate, now);
        let mut n = 1;
        while base.join(&id).exists() {
            n += 1;
            id = format!("{}.{n}", version_id(&issued.certificate, now));
        }
        // Staged under a temporary name and renamed whole: a version directory either holds
        // every file or does not exist.
        let staging = base.join(format!("{}{id}.{}", fsio::TEMP_PREFIX, std::process::id()));
        if let Err(e) = bundle::write_dir_with(&staging, issued, false, durability) {
            let _ = fs::remove_dir_all(&staging);
            return Err(e.into());
        }
        let target = base.join(&id);
        fs::rename(&staging, &target).map_err(io("cannot move into place", &target))?;
        fsio::sync_dir_with(&base, durability)?;
        Ok(id)
    }

    /// Makes `id` the current version (one atomic rename).
    pub fn switch(&self, name: &str, id: &str, durability: Durability) -> Result<()> {
        let base = self.dir(name);
        fsio::replace_symlink(&base.join(CURRENT), Path::new(id))?;
        fsio::sync_dir_with(&base, durability)?;
        Ok(())
    }

    /// The store's root directory (for syncing a deferred batch).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The issued material of a version, key included, for deploying.
    pub fn load(&self, name: &str, id: &str) -> Result<IssuedCertificate> {
        let dir = self.version_dir(name, id);
        let read = |f: &str| {
            let p = dir.join(f);
            fsio::read_limited(&p, fsio::MAX_PEM_INPUT).map(|t| (t, p.display().to_string()))
        };
        let (cert, origin) = read(bundle::files::CERT)?;
        let certificate = Certificate::from_pem(&cert, &origin)?;
        let (chain, origin) = read(bundle::files::CHAIN)?;
        let chain = if chain.iter().all(u8::is_ascii_whitespace) {
            Vec::new()
        } else {
            Certificate::all_from_pem(&chain, &origin)?
        };
        let root = match read(bundle::files::CA) {
            Ok((t, origin)) => Some(Certificate::from_pem(&t, &origin)?),
            Err(_) => None,
        };
        let (key, origin) = read(bundle::files::KEY)?;
        let key = zeroize::Zeroizing::new(key);
        let private_key = PrivateKey::from_pem(&key, &origin)?;
        if !certificate.matches_key(&private_key) {
            return Err(pki::Error::KeyMismatch {
                certificate: dir.join(bundle::files::CERT).display().to_string(),
                key: origin,
            }
            .into());
        }
        Ok(IssuedCertificate {
            certificate,
            chain,
            root,
            private_key: Some(private_key),
            warnings: Vec::new(),
        })
    }

    /// Removes versions older than the current one and the [`KEEP_PREVIOUS`] before it, and
    /// temporary files left by an interrupted run.
    pub fn prune(&self, name: &str) -> Result<()> {
        let base = self.dir(name);
        fsio::remove_stale_temps(&base)?;
        let current = self.current(name);
        let mut versions: Vec<String> = match fs::read_dir(&base) {
            Ok(entries) => entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect(),
            Err(_) => return Ok(()),
        };
        versions.sort();
        // Keep the current version and the few before it (rollback); drop older ones and any
        // newer one a killed run wrote but never switched to.
        let keep: Vec<&String> = match current
            .as_ref()
            .and_then(|c| versions.iter().position(|v| v == c))
        {
            Some(pos) => versions[pos.saturating_sub(KEEP_PREVIOUS)..=pos]
                .iter()
                .collect(),
            None => return Ok(()),
        };
        for old in versions.iter().filter(|v| !keep.contains(v)) {
            let path = base.join(old);
            fs::remove_dir_all(&path).map_err(io("cannot remove old version", &path))?;
        }
        Ok(())
    }
}
