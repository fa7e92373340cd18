//! The versioned store: every issued certificate of a managed name, each version one file
//! holding the leaf, its chain, the root and the key, and `current`, a second name (a hard
//! link) of the version in service, switched atomically, so a reader never sees a new
//! certificate with an old key. Previous versions stay for rollback and audit.
//!
//! ```text
//! <state_dir>/certs/<name>/
//!     20261125T031415.207Z-3e25501c.pem    leaf, intermediates, root, PKCS#8 key (mode 0600)
//!     20261126T031415.362Z-9a0b1c2d.pem
//!     current                              the same file as 20261126T031415.362Z-9a0b1c2d.pem
//! ```
//!
//! One file per version keeps a run over thousands of certificates light on the file system:
//! a new version rewrites the file of the oldest version beyond those kept, and `current` is
//! a link to an existing inode, so a rotation in steady state allocates and frees no inodes.
//! (An older release's `current` symlink is replaced by the next switch.) Services never read
//! the store: targets render what each service expects.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pki::fsio::dir::Kind;
use pki::fsio::{Dir, Durability, FileMode, Owners};
use pki::pemfile::{self, label};
use pki::rotation::{Checked, Current, Observed};
use pki::{Certificate, IssuedCertificate, PrivateKey, fsio};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::state::CachedCert;

/// Versions kept besides the current one.
pub const KEEP_PREVIOUS: usize = 2;

/// Name of the symlink to the current version.
pub const CURRENT: &str = "current";

const EXTENSION: &str = ".pem";

/// The store under a state directory.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    durability: Durability,
    /// The checked store directory, once [`Store::create`] opened it (a dry run only reads).
    dir: Option<Arc<Dir>>,
}

/// What the store holds for a name: the current version and what the planner needs to know.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Observation {
    /// The current version's id, if any.
    pub version: Option<String>,
    /// For the planner.
    pub observed: Observed,
    /// The current certificate, when it was read (not when the facts came from the cache).
    pub certificate: Option<Certificate>,
    /// Facts to remember for the next run, when they were freshly read.
    pub fresh: Option<CachedCert>,
}

/// Of the version ids `all`, those to remove: everything but `current`, the
/// [`KEEP_PREVIOUS`] before it and `pinned`; versions after `current` are leftovers of a run
/// that never switched to them. Ids sort by time, except `adopted`, which is older than any.
/// Nothing is removed when `current` is not among them.
pub(crate) fn expired(mut all: Vec<String>, current: &str, pinned: &[&str]) -> Vec<String> {
    all.sort_by(|a, b| {
        let adopted = |v: &String| v != crate::service::layout::ADOPTED;
        adopted(a).cmp(&adopted(b)).then_with(|| a.cmp(b))
    });
    let Some(pos) = all.iter().position(|v| v == current) else {
        return Vec::new();
    };
    let keep_from = pos.saturating_sub(KEEP_PREVIOUS);
    all.into_iter()
        .enumerate()
        .filter(|(i, v)| !(keep_from..=pos).contains(i) && !pinned.contains(&v.as_str()))
        .map(|(_, v)| v)
        .collect()
}

/// Reads the target of a symlink as a plain name; `None` when absent or not a symlink.
pub(crate) fn link_name(link: &Path) -> Option<String> {
    fs::read_link(link)
        .ok()
        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// A version id: the time to the millisecond and the start of the serial, sortable by time
/// (two rotations in one second must still sort in order: pruning keeps the newest).
pub(crate) fn version_id(cert: &Certificate, at: OffsetDateTime) -> String {
    let t = at.to_offset(time::UtcOffset::UTC);
    let serial = cert.info().serial.to_hex();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z-{}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond(),
        &serial[..serial.len().min(8)]
    )
}

/// The version file's content: leaf, intermediates, root, the other CAs of the trust bundle,
/// key.
fn render(issued: &IssuedCertificate) -> Result<Zeroizing<String>> {
    let mut out = Zeroizing::new(issued.certificate.pem());
    for c in &issued.chain {
        out.push_str(&c.pem());
    }
    if let Some(root) = &issued.root {
        out.push_str(&root.pem());
    }
    for c in &issued.trust {
        if issued.root.as_ref().is_none_or(|r| r.der() != c.der()) {
            out.push_str(&c.pem());
        }
    }
    out.push_str(pki::bundle::key_pem(issued)?.expose());
    Ok(out)
}

/// What the backend expects of a current version (each part `None` when unknown): signed by
/// its current issuer, carrying its trust bundle.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct Expected<'a> {
    /// The backend's current issuer.
    pub issuer: Option<&'a Certificate>,
    /// The backend's trust bundle (not checked when empty: the backend gives none).
    pub trust: Option<&'a [Certificate]>,
}

impl<'a> Expected<'a> {
    /// Expecting `issuer` and `trust`.
    pub fn new(issuer: Option<&'a Certificate>, trust: Option<&'a [Certificate]>) -> Self {
        Self {
            issuer,
            trust: trust.filter(|t| !t.is_empty()),
        }
    }

    /// What cached facts were checked against: the issuer's id, then each CA's of the bundle.
    fn id(&self) -> Option<String> {
        if self.issuer.is_none() && self.trust.is_none() {
            return None;
        }
        let mut id = self.issuer.map(crate::state::issuer_id).unwrap_or_default();
        for c in self.trust.unwrap_or_default() {
            id.push('+');
            id.push_str(&crate::state::issuer_id(c));
        }
        Some(id)
    }
}

/// The store's directory in a state directory.
pub const DIR: &str = "certs";

impl Store {
    /// The store of `state_dir`, as it is: a dry run reads without creating anything.
    pub fn open(state_dir: &Path) -> Self {
        Self {
            root: state_dir.join(DIR),
            durability: Durability::Immediate,
            dir: None,
        }
    }

    /// The same store, writing with `durability`: a deferred batch must be synced before
    /// [`Store::switch`] publishes what [`Store::add`] wrote.
    #[must_use]
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The store of `state_dir`, its directories created (0700: it holds private keys) and
    /// every directory on the way checked (see [`pki::fsio::Dir`]).
    pub fn create(state_dir: &Path) -> Result<Self> {
        let mut store = Self::open(state_dir);
        let state = Dir::create(state_dir, 0o700, Owners::running())?;
        state.chmod(0o700)?;
        store.dir = Some(Arc::new(state.create_sub(DIR, 0o700)?));
        Ok(store)
    }

    /// The checked directory of a managed name, created when missing.
    fn name_dir(&self, name: &str) -> Result<Dir> {
        let root = self.dir.as_ref().ok_or_else(|| Error::StoreReadOnly {
            path: self.root.clone(),
        })?;
        Ok(root.create_sub(name, 0o700)?)
    }

    /// The store's root directory (for syncing a deferred batch).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The state directory the store is in.
    pub fn state_dir(&self) -> &Path {
        self.root.parent().unwrap_or(&self.root)
    }

    /// The directory of a managed name.
    pub fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The current version id of a name: the version file `current` is another name of.
    pub fn current(&self, name: &str) -> Option<String> {
        use std::os::unix::fs::{DirEntryExt, MetadataExt};
        let dir = self.dir(name);
        let here = dir.join(CURRENT);
        let meta = fs::symlink_metadata(&here).ok()?;
        let id = |n: String| n.strip_suffix(EXTENSION).map(str::to_owned);
        if meta.is_symlink() {
            return link_name(&here).and_then(id);
        }
        fs::read_dir(&dir)
            .ok()?
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.file_name()
                    .as_encoded_bytes()
                    .ends_with(EXTENSION.as_bytes())
            })
            .find(|e| e.ino() == meta.ino())
            .and_then(|e| id(e.file_name().to_string_lossy().into_owned()))
            .filter(|v| !v.starts_with('.'))
    }

    /// The file of a version.
    pub fn version_file(&self, name: &str, id: &str) -> PathBuf {
        self.dir(name).join(format!("{id}{EXTENSION}"))
    }

    /// Observes the current version: parses the certificate and checks that the key matches,
    /// reading the key's public half without loading it for signing. Facts cached for this very
    /// version (and checked against this very issuer) are used instead of reading the file.
    pub fn observe(
        &self,
        name: &str,
        expected: Expected<'_>,
        cached: Option<&CachedCert>,
    ) -> Observation {
        let Expected { issuer, trust } = expected;
        let issuer_id = expected.id();
        // One stat through `current`: the same inode, size and ctime as when the facts were
        // read means the same version file, untouched (a switch, a deletion, a truncation or
        // a replacement all change it), and the link need not be read.
        let file = crate::state::stamp_below(
            &self.root,
            &Path::new(name).join(CURRENT),
            fsio::Links::Follow,
        );
        if let Some(c) =
            cached.filter(|c| c.issuer == issuer_id && file.is_some() && c.file == file)
        {
            return Observation {
                version: Some(c.version.clone()),
                observed: Observed::Present(c.facts.clone()),
                certificate: None,
                fresh: None,
            };
        }
        let Some(version) = self.current(name) else {
            return Observation {
                version: None,
                observed: Observed::Missing,
                certificate: None,
                fresh: None,
            };
        };
        let path = self.version_file(name, &version);
        let unusable = |why: String| Observation {
            version: Some(version.clone()),
            observed: Observed::Unusable(why),
            certificate: None,
            fresh: None,
        };
        let origin = path.display().to_string();
        let text = match fsio::read_private(&path, fsio::MAX_PEM_INPUT) {
            Ok((t, _)) => t,
            Err(e) => return unusable(e.to_string()),
        };
        // One pass over the file: the leaf is the first certificate, the key the only key.
        let blocks = match pemfile::parse_blocks(&text, &origin) {
            Ok(b) => b,
            Err(e) => return unusable(e.to_string()),
        };
        let leaf = blocks.iter().find(|b| b.label == label::CERTIFICATE);
        let key = blocks.iter().find(|b| b.label == label::PRIVATE_KEY);
        // The CAs it carries (self-issued, after the leaf) against the backend's bundle.
        let trust_current = trust.map(|bundle| {
            let mut held: Vec<Vec<u8>> = blocks
                .iter()
                .filter(|b| b.label == label::CERTIFICATE)
                .skip(1)
                .filter_map(|b| Certificate::from_der(b.der.clone(), &origin).ok())
                .filter(|c| c.info().self_issued)
                .map(|c| c.der().to_vec())
                .collect();
            let mut wanted: Vec<Vec<u8>> = bundle.iter().map(|c| c.der().to_vec()).collect();
            held.sort();
            wanted.sort();
            held == wanted
        });
        let (Some(leaf), Some(key)) = (leaf, key) else {
            return unusable(format!("{origin}: a certificate and a key are expected"));
        };
        let cert = match Certificate::from_der(leaf.der.clone(), &origin) {
            Ok(c) => c,
            Err(e) => return unusable(e.to_string()),
        };
        let key_matches = match pki::key::pkcs8_public_key(&key.der) {
            Ok(public) => public == cert.public_key_raw(),
            Err(e) => return unusable(e.to_string()),
        };
        // The parsed blocks hold the key's DER: wipe it now.
        for mut b in blocks {
            zeroize::Zeroize::zeroize(&mut b.der);
        }
        let mut checked = Checked::default();
        checked.key_matches = key_matches;
        checked.issuer_current = issuer.map(|i| cert.is_signed_by(i));
        checked.trust_current = trust_current;
        let current = Current::from_certificate(&cert, checked);
        let fresh = CachedCert::new(version.clone(), issuer_id, file, current.clone());
        Observation {
            version: Some(version),
            observed: Observed::Present(current),
            certificate: Some(cert),
            fresh: Some(fresh),
        }
    }

    /// The leaf of a version (for reports when the plan used cached facts).
    pub fn certificate(&self, name: &str, id: &str) -> Result<Certificate> {
        let path = self.version_file(name, id);
        let (text, _) = fsio::read_private(&path, fsio::MAX_PEM_INPUT)?;
        Ok(Certificate::from_pem(&text, &path.display().to_string())?)
    }

    /// Writes a new version without switching to it; returns its id, made of `at` (to the
    /// millisecond) and the serial. With immediate durability the file is fsync'd.
    pub fn add(
        &self,
        name: &str,
        issued: &IssuedCertificate,
        at: OffsetDateTime,
    ) -> Result<String> {
        let dir = self.name_dir(name)?;
        let mut id = version_id(&issued.certificate, at);
        let mut n = 1;
        while dir.entry(&format!("{id}{EXTENSION}"))?.is_some() {
            n += 1;
            id = format!("{}.{n}", version_id(&issued.certificate, at));
        }
        let content = render(issued)?;
        let file = format!("{id}{EXTENSION}");
        let temp = fsio::temp_name(&file);
        if let Some(old) = self.reusable(name, &dir, &id)? {
            dir.rename(&format!("{old}{EXTENSION}"), &temp)?;
        }
        let written = (|| -> Result<()> {
            let f = dir.rewrite(&temp, content.as_bytes(), FileMode::PRIVATE)?;
            if self.durability == Durability::Immediate {
                f.sync()?;
            }
            dir.rename(&temp, &file)?;
            if self.durability == Durability::Immediate {
                dir.sync()?;
            }
            Ok(())
        })();
        if written.is_err() {
            let _ = dir.remove_file(&temp);
        }
        written.map(|()| id)
    }

    /// The oldest version file that will be pruned once `id` is current: [`Store::add`]
    /// rewrites it rather than making a new one.
    fn reusable(&self, name: &str, dir: &Dir, id: &str) -> Result<Option<String>> {
        let current = self.current(name);
        let pinned: Vec<&str> = current.as_deref().into_iter().collect();
        let mut all = versions_in(dir)?;
        all.push(id.to_owned());
        Ok(expired(all, id, &pinned).into_iter().next())
    }

    /// Makes `id` the current version (one atomic rename).
    pub fn switch(&self, name: &str, id: &str) -> Result<()> {
        let dir = self.name_dir(name)?;
        dir.link_over(&format!("{id}{EXTENSION}"), CURRENT)?;
        if self.durability == Durability::Immediate {
            dir.sync()?;
        }
        Ok(())
    }

    /// The issued material of a version, key included, for deploying.
    pub fn load(&self, name: &str, id: &str) -> Result<IssuedCertificate> {
        let path = self.version_file(name, id);
        let origin = path.display().to_string();
        let (text, _) = fsio::read_private(&path, fsio::MAX_PEM_INPUT)?;
        let mut certs = Certificate::all_from_pem(&text, &origin)?.into_iter();
        let certificate = certs.next().ok_or_else(|| pki::Error::Pem {
            origin: origin.clone(),
            problem: "no certificate".to_owned(),
        })?;
        let (roots, chain): (Vec<_>, Vec<_>) = certs.partition(|c| c.info().self_issued);
        let private_key = PrivateKey::from_pem(&text, &origin)?;
        if !certificate.matches_key(&private_key) {
            return Err(pki::Error::KeyMismatch {
                certificate: origin.clone(),
                key: origin,
            }
            .into());
        }
        let mut issued = IssuedCertificate::new(
            certificate,
            chain,
            roots.first().cloned(),
            Some(private_key),
        );
        issued.trust = roots;
        Ok(issued)
    }

    /// Removes versions older than the current one and the [`KEEP_PREVIOUS`] before it, any
    /// newer one a killed run wrote but never switched to, and temporary files.
    pub fn prune(&self, name: &str) -> Result<()> {
        let dir = self.name_dir(name)?;
        dir.remove_stale_temps()?;
        let Some(current) = self.current(name) else {
            return Ok(());
        };
        for old in &expired(versions_in(&dir)?, &current, &[]) {
            dir.remove_file(&format!("{old}{EXTENSION}"))?;
        }
        Ok(())
    }
}

/// The version ids of the files in a name's directory.
fn versions_in(dir: &Dir) -> Result<Vec<String>> {
    Ok(dir
        .entries()?
        .into_iter()
        .filter(|(n, k)| *k == Kind::File && !n.starts_with('.'))
        .filter_map(|(n, _)| n.strip_suffix(EXTENSION).map(str::to_owned))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use pki::authority::offline::{self, InitOptions, KeyProtection, OfflineCa};
    use pki::{CertificateRequest, KeyAlgorithm, Profile, clock};

    use super::*;

    fn issue(ca: &OfflineCa) -> IssuedCertificate {
        let request = CertificateRequest::new(
            "s.example.internal",
            [],
            Profile::Server,
            time::Duration::days(3),
        )
        .unwrap();
        ca.issue(&request, KeyAlgorithm::EcdsaP256, clock::now())
            .unwrap()
    }

    fn private_tmp() -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o700)).unwrap();
        tmp
    }

    fn ca(tmp: &Path) -> OfflineCa {
        let dir = tmp.join("ca");
        offline::init(&dir, &InitOptions::new(KeyProtection::None), clock::now()).unwrap();
        let mut ca = OfflineCa::open(&dir).unwrap();
        ca.unlock_from(&offline::CaKeySource::Nothing).unwrap();
        ca
    }

    #[test]
    fn current_is_a_second_name_and_new_versions_reuse_the_oldest_file() {
        let tmp = private_tmp();
        let ca = ca(tmp.path());
        let store = Store::create(&tmp.path().join("state")).unwrap();
        let dir = store.dir("s");
        let mut inodes = Vec::new();
        for k in 0..6 {
            let at = clock::now() + time::Duration::seconds(k);
            let issued = issue(&ca);
            let id = store.add("s", &issued, at).unwrap();
            store.switch("s", &id).unwrap();
            store.prune("s").unwrap();
            assert_eq!(store.current("s").as_deref(), Some(id.as_str()));
            let current = fs::symlink_metadata(dir.join(CURRENT)).unwrap();
            assert!(current.is_file());
            assert_eq!(
                current.ino(),
                fs::metadata(store.version_file("s", &id)).unwrap().ino()
            );
            let loaded = store.load("s", &id).unwrap();
            assert_eq!(
                loaded.certificate.info().serial,
                issued.certificate.info().serial
            );
            inodes.push(current.ino());
        }
        // Three versions kept; from the fourth on, each reuses the file of the oldest.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), KEEP_PREVIOUS + 2);
        assert_eq!(inodes[3], inodes[0]);
        assert_eq!(inodes[4], inodes[1]);
        assert_eq!(inodes[5], inodes[2]);
    }

    #[test]
    fn an_older_releases_current_link_is_read_and_replaced() {
        let tmp = private_tmp();
        let ca = ca(tmp.path());
        let store = Store::create(&tmp.path().join("state")).unwrap();
        let first = store.add("s", &issue(&ca), clock::now()).unwrap();
        std::os::unix::fs::symlink(format!("{first}{EXTENSION}"), store.dir("s").join(CURRENT))
            .unwrap();
        assert_eq!(store.current("s").as_deref(), Some(first.as_str()));
        let later = clock::now() + time::Duration::seconds(1);
        let second = store.add("s", &issue(&ca), later).unwrap();
        store.switch("s", &second).unwrap();
        assert!(
            fs::symlink_metadata(store.dir("s").join(CURRENT))
                .unwrap()
                .is_file()
        );
        assert_eq!(store.current("s").as_deref(), Some(second.as_str()));
    }
}
