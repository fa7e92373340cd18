//! Intermediate rollover: a new intermediate under the same root becomes the issuer of new
//! leaves, and the one it replaces moves to `retired/`. Clients trust the root, so leaves of
//! both verify during the overlap; the retired intermediate keeps signing CRLs until the last
//! leaf issued before its retirement has expired.
//!
//! `retired/` holds, per retired intermediate, `intermediate-SERIAL.pem`, its key
//! `intermediate-SERIAL.key.pem` (as it was, encrypted) and `intermediate-SERIAL.retired` (the
//! Unix time it was retired).

use std::path::{Path, PathBuf};

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::subordinate::{Intermediate, Root};
use super::{CaSigner, KeyProtection, OfflineCa, SignedCrl, files, key_pem, naming, read_cert};
use crate::cert::{Certificate, CertificateInfo};
use crate::error::{Error, Result};
use crate::fsio;
use crate::key::{KeyAlgorithm, PrivateKey};
use crate::secret::SecretString;

/// The directory, inside a CA directory, of the intermediates a rollover replaced.
pub const RETIRED_DIR: &str = "retired";

/// Upper bound on the size of a retirement note.
const MAX_NOTE: u64 = 4096;

/// The intermediate [`OfflineCa::rotate_intermediate`] makes: how its key is stored (as the
/// current one is) and its lifetime.
#[derive(Debug)]
#[non_exhaustive]
pub struct NewIntermediate {
    /// The protection of the current key, and so of the new one.
    pub protection: KeyProtection,
    /// Its lifetime (cut to the root's).
    pub ttl: Duration,
}

impl NewIntermediate {
    /// An intermediate valid for `ttl`, its key stored with `protection`.
    pub fn new(protection: KeyProtection, ttl: Duration) -> Self {
        Self { protection, ttl }
    }
}

/// What [`OfflineCa::rotate_intermediate`] did.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Rollover {
    /// The intermediate that issues from now on.
    pub current: CertificateInfo,
    /// The one it replaced.
    pub retired: CertificateInfo,
    /// Where the replaced one was kept.
    pub retired_to: PathBuf,
}

/// An intermediate a rollover replaced.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Retired {
    /// Its certificate.
    pub certificate: Certificate,
    /// When it stopped issuing.
    pub retired_at: OffsetDateTime,
    key_path: PathBuf,
}

impl Retired {
    /// Its key file in `retired/` (encrypted as it was).
    pub fn key_path(&self) -> &Path {
        &self.key_path
    }
}

impl OfflineCa {
    /// Replaces the intermediate by a new one that `root` signs (same key algorithm, the
    /// lifetime `new` asks for cut to the root's, the root's name constraints). The current
    /// intermediate's key must open with `new.protection` (the new key is stored the same
    /// way); it is kept in `retired/` with its certificate. The new pair is staged in `next/`
    /// and activated at once, under the CA's rollover lock: a crash between the two leaves it
    /// for the next activation (`pki rotate`, `pki ca rotate-root --activate`) to finish. A
    /// process reading the CA during the switch may find a key that does not match and fail
    /// without signing.
    pub fn rotate_intermediate(
        &self,
        root: &Root,
        new: &NewIntermediate,
        now: OffsetDateTime,
    ) -> Result<Rollover> {
        let NewIntermediate { protection, ttl } = new;
        let ttl = *ttl;
        if root.certificate().der() != self.root.der() {
            return Err(Error::KeyMismatch {
                certificate: self.root.info().subject.clone(),
                key: "the root key given".to_owned(),
            });
        }
        // Proves the pair before it is retired (and the passphrase before it is reused).
        self.check_protection(protection)?;

        let old = self.intermediate.info();
        let algorithm = old.key_algorithm.unwrap_or(KeyAlgorithm::EcdsaP256);
        let key = PrivateKey::generate(algorithm)?;
        let organisation = naming::organisation_of_ca(root.certificate());
        let common_name = format!(
            "{} {}",
            naming::intermediate(organisation),
            naming::minute_stamp(now)
        );
        let certificate =
            root.sign_intermediate_key(&key, &Intermediate::new(&common_name, ttl), now)?;

        // Staged in next/ beside the root in place, then activated at once: the one
        // activation path, which a rerun (or the next `pki rotate`) finishes after a crash.
        let pair = super::root_rollover::Pair {
            root: &self.root,
            root_key: None,
            intermediate: &certificate,
            intermediate_key: &key_pem(&key, protection)?,
        };
        let _lock = super::root_rollover::lock(&self.dir)?;
        super::root_rollover::refuse_staged(&self.dir)?;
        super::root_rollover::stage_pair(&self.dir, &pair, now)?;
        super::root_rollover::activate_locked(&self.dir, now)?;
        let stem = self
            .dir
            .join(RETIRED_DIR)
            .join(format!("intermediate-{}", old.serial));
        Ok(Rollover {
            current: certificate.info().clone(),
            retired: old.clone(),
            retired_to: with_ext(&stem, "pem"),
        })
    }

    /// Checks that `protection` opens the intermediate key in place and that the key matches
    /// the certificate: a rollover stores its new keys the same way.
    pub(crate) fn check_protection(&self, protection: &KeyProtection) -> Result<()> {
        let key_path = self.dir.join(files::INTERMEDIATE_KEY);
        let origin = key_path.display().to_string();
        let passphrase = match protection {
            KeyProtection::Passphrase(p) => Some(p),
            KeyProtection::None => None,
        };
        let key = PrivateKey::from_pem_with_passphrase(
            &fsio::read_key_file(&key_path)?,
            &origin,
            passphrase,
        )?;
        CaSigner::new(self.intermediate.clone(), key, &origin).map(drop)
    }

    /// The roots a client of this CA should trust at `now`: its root, the one a root rollover
    /// staged (from the moment it is staged), and a root a rollover replaced while a leaf
    /// issued under it lives.
    pub fn trust_anchors(&self, now: OffsetDateTime) -> Result<Vec<Certificate>> {
        let mut anchors = vec![self.root.clone()];
        let staged = super::root_rollover::staged(&self.dir)?.map(|s| s.root);
        let retired = self.in_use(self.retired_roots()?, now)?;
        for cert in staged
            .into_iter()
            .chain(retired.into_iter().map(|r| r.certificate))
        {
            if !anchors.iter().any(|a| a.der() == cert.der()) {
                anchors.push(cert);
            }
        }
        Ok(anchors)
    }

    /// The intermediates earlier rollovers replaced, oldest first.
    pub fn retired(&self) -> Result<Vec<Retired>> {
        self.retired_of("intermediate")
    }

    /// The roots root rollovers replaced, oldest first.
    pub fn retired_roots(&self) -> Result<Vec<Retired>> {
        self.retired_of("root")
    }

    /// The retired CA certificates of one `kind` (`intermediate`, `root`), oldest first.
    fn retired_of(&self, kind: &str) -> Result<Vec<Retired>> {
        let prefix = format!("{RETIRED_DIR}/{kind}-");
        let mut out = Vec::new();
        for name in retired_files(&self.dir)? {
            let Some(stem) = name
                .strip_suffix(".retired")
                .filter(|n| n.starts_with(&prefix))
            else {
                continue;
            };
            let stem = self.dir.join(stem);
            let retired_at = read_time(&with_ext(&stem, "retired"), "retirement")?;
            out.push(Retired {
                certificate: read_cert(&with_ext(&stem, "pem"))?,
                retired_at,
                key_path: with_ext(&stem, "key.pem"),
            });
        }
        out.sort_by_key(|r| r.retired_at);
        Ok(out)
    }

    /// The retired intermediates that must still sign CRLs at `now`: valid, with a leaf
    /// issued before their retirement that has not expired.
    pub fn retired_in_use(&self, now: OffsetDateTime) -> Result<Vec<Retired>> {
        self.in_use(self.retired()?, now)
    }

    /// Those of `retired` still valid at `now` with a leaf issued before their retirement
    /// that has not expired.
    fn in_use(&self, all: Vec<Retired>, now: OffsetDateTime) -> Result<Vec<Retired>> {
        let mut out = Vec::new();
        for retired in all {
            let last_leaf = self.inventory.latest_expiry_issued_by(retired.retired_at)?;
            if retired.certificate.is_valid_at(now) && last_leaf.is_some_and(|t| t > now) {
                out.push(retired);
            }
        }
        Ok(out)
    }

    /// A CRL signed by each retired intermediate still in use, listing every revoked
    /// certificate that has not expired (its serials are random: an entry of another
    /// issuer's CRL names nothing of this one).
    pub fn retired_crls(
        &self,
        passphrase: Option<&SecretString>,
        next_update: Duration,
        now: OffsetDateTime,
    ) -> Result<Vec<SignedCrl>> {
        let mut out = Vec::new();
        for retired in self.retired_in_use(now)? {
            let origin = retired.key_path.display().to_string();
            let text = fsio::read_key_file(&retired.key_path)?;
            let key = PrivateKey::from_pem_with_passphrase(&text, &origin, passphrase)?;
            let signer = CaSigner::new(retired.certificate.clone(), key, &origin)?;
            out.push(self.crl_signed_by(&signer, next_update, now)?);
        }
        Ok(out)
    }
}

/// Whether `name` (relative to a CA directory) is a file of `retired/` as a rollover writes
/// it: `retired/intermediate-HEX.pem` or `retired/root-HEX.pem`, `.key.pem` or `.retired`.
pub(crate) fn is_retired_file(name: &str) -> bool {
    let Some(file) = name.strip_prefix("retired/") else {
        return false;
    };
    let Some(rest) = file
        .strip_prefix("intermediate-")
        .or_else(|| file.strip_prefix("root-"))
    else {
        return false;
    };
    let serial = [".key.pem", ".pem", ".retired"]
        .iter()
        .find_map(|ext| rest.strip_suffix(ext));
    serial.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The files of `retired/` in `ca_dir`, as names relative to it (none without a rollover).
pub(crate) fn retired_files(ca_dir: &Path) -> Result<Vec<String>> {
    let dir = ca_dir.join(RETIRED_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Error::Io {
                op: crate::error::IoOp::Read,
                path: dir,
                source: e,
            });
        }
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| format!("{RETIRED_DIR}/{}", e.file_name().to_string_lossy()))
        .filter(|n| is_retired_file(n))
        .collect();
    names.sort();
    Ok(names)
}

/// The Unix time a rollover's note file holds (when `what`: the retirement, the activation).
pub(crate) fn read_time(path: &Path, what: &str) -> Result<OffsetDateTime> {
    let text = fsio::read_limited(path, MAX_NOTE)?;
    std::str::from_utf8(&text)
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok())
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .ok_or_else(|| Error::Pem {
            origin: path.display().to_string(),
            problem: format!("expected the Unix time of the {what}"),
        })
}

pub(crate) fn with_ext(stem: &Path, ext: &str) -> PathBuf {
    let mut name = stem.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::super::{CaKeySource, InitOptions, init};
    use super::*;
    use crate::request::CertificateRequest;
    use crate::{Profile, clock};

    fn passphrase() -> SecretString {
        SecretString::new("correct horse battery".to_owned())
    }

    #[test]
    fn a_rollover_keeps_the_root_retires_the_old_intermediate_and_tracks_its_leaves() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        let now = clock::now();
        init(
            &dir,
            &InitOptions::new(KeyProtection::Passphrase(passphrase())),
            now,
        )
        .unwrap();
        let mut ca = OfflineCa::open(&dir).unwrap();
        ca.unlock(Some(&passphrase())).unwrap();
        let request = CertificateRequest::new(
            "a.example.internal",
            [],
            Profile::Server,
            Duration::days(30),
        )
        .unwrap();
        let old_leaf = ca.issue(&request, KeyAlgorithm::EcdsaP256, now).unwrap();
        let old = ca.intermediate().clone();

        let root = ca
            .unlock_root(None, &CaKeySource::Given(passphrase()))
            .unwrap();
        // A wrong passphrase for the intermediate changes nothing.
        let wrong = NewIntermediate::new(
            KeyProtection::Passphrase(SecretString::new("wrong".to_owned())),
            Duration::days(365),
        );
        assert!(ca.rotate_intermediate(&root, &wrong, now).is_err());
        assert!(ca.retired().unwrap().is_empty());

        let later = now + Duration::minutes(1);
        let new =
            NewIntermediate::new(KeyProtection::Passphrase(passphrase()), Duration::days(365));
        let done = ca.rotate_intermediate(&root, &new, later).unwrap();
        assert_eq!(done.retired.serial, old.info().serial);

        let mut ca = OfflineCa::open(&dir).unwrap();
        ca.unlock(Some(&passphrase())).unwrap();
        let new = ca.intermediate().clone();
        assert_ne!(new.der(), old.der());
        assert!(new.is_signed_by(ca.root()));
        assert_ne!(new.info().subject, old.info().subject);
        let new_leaf = ca.issue(&request, KeyAlgorithm::EcdsaP256, later).unwrap();
        assert!(new_leaf.certificate.is_signed_by(&new));
        assert!(old_leaf.certificate.is_signed_by(&old));
        assert!(PrivateKey::pem_is_encrypted(
            &std::fs::read(dir.join(files::INTERMEDIATE_KEY)).unwrap()
        ));

        let retired = ca.retired().unwrap();
        assert_eq!(retired.len(), 1);
        assert_eq!(retired[0].certificate.der(), old.der());
        assert_eq!(
            retired[0].retired_at.unix_timestamp(),
            later.unix_timestamp()
        );
        // In use while the leaf it signed lives; then not.
        assert_eq!(ca.retired_in_use(later).unwrap().len(), 1);
        let crls = ca
            .retired_crls(Some(&passphrase()), Duration::days(1), later)
            .unwrap();
        assert_eq!(crls.len(), 1);
        let (_, crl) = x509_parser::parse_x509_crl(&crls[0].der).unwrap();
        assert_eq!(crl.issuer().to_string(), old.info().subject);
        let after_last_leaf = old_leaf.certificate.info().not_after + Duration::days(1);
        // The new leaf (issued after the retirement) does not keep the old intermediate.
        assert!(ca.retired_in_use(after_last_leaf).unwrap().is_empty());
    }

    #[test]
    fn only_what_a_rollover_writes_counts_as_a_retired_file() {
        for good in [
            "retired/intermediate-0a1b.pem",
            "retired/intermediate-0a1b.key.pem",
            "retired/intermediate-0a1b.retired",
        ] {
            assert!(is_retired_file(good), "{good}");
        }
        for bad in [
            "retired/../root.key.pem",
            "retired/intermediate-.pem",
            "retired/intermediate-0a1b/x.pem",
            "retired/other.pem",
            "intermediate-0a1b.pem",
            "retired/intermediate-0a1b.pem.bak",
        ] {
            assert!(!is_retired_file(bad), "{bad}");
        }
    }
}
