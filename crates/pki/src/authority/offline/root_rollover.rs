//! Root rollover, the one that breaks fleets when done in one step. It takes two:
//!
//! 1. [`OfflineCa::stage_root`] makes a new root and an intermediate under it in `next/`. From
//!    then on the CA's trust bundle ([`OfflineCa::trust_anchors`]) holds both roots: every
//!    host's trust files and every deployed `ca` file get the new root, while the leaves stay
//!    where they are.
//! 2. Once the overlap has passed, [`activate_due`] (the first `pki rotate` after it, or
//!    `pki ca rotate-root --activate`) makes the staged pair current: new leaves come from it
//!    and the hook replaces the others (issuer-changed). The old root and intermediate move to
//!    `retired/`; the old root stays in the bundle, and the old intermediate signs CRLs, until
//!    the last leaf issued before the activation has expired.
//!
//! `next/` holds `root.pem`, `root.key.pem` (unless kept elsewhere), `intermediate.pem`,
//! `intermediate.key.pem` and `activate` (the Unix time from which it may be activated).

use std::path::{Path, PathBuf};

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::rollover::{RETIRED_DIR, with_ext};
use super::{CaNames, InitOptions, KeyProtection, OfflineCa, files, generate, key_pem, naming};
use crate::cert::{Certificate, CertificateInfo};
use crate::error::{Error, Result, Rfc3339};
use crate::fsio::{self, FileMode, StagedFile};
use crate::key::KeyAlgorithm;

/// The directory, inside a CA directory, of a staged root and intermediate.
pub const NEXT_DIR: &str = "next";
/// The file in `next/` holding the time from which the staged pair may be activated.
const ACTIVATE: &str = "activate";

/// The root [`OfflineCa::stage_root`] makes, with the intermediate under it.
#[derive(Debug)]
#[non_exhaustive]
pub struct NewRoot {
    /// The protection of the current keys, and so of the new ones.
    pub protection: KeyProtection,
    /// Lifetime of the new root.
    pub root_ttl: Duration,
    /// Lifetime of the new intermediate.
    pub intermediate_ttl: Duration,
    /// How long both roots are distributed before the new one may sign: long enough for every
    /// host's trust files to have it (two timer periods at least).
    pub overlap: Duration,
    /// Where to write the new root key instead of `next/` (a root kept offline).
    pub root_key_out: Option<PathBuf>,
}

impl NewRoot {
    /// A root and intermediate with the default lifetimes, keys stored with `protection`,
    /// activated after `overlap`.
    pub fn new(protection: KeyProtection, overlap: Duration) -> Self {
        Self {
            protection,
            root_ttl: super::DEFAULT_ROOT_TTL,
            intermediate_ttl: super::DEFAULT_INTERMEDIATE_TTL,
            overlap,
            root_key_out: None,
        }
    }
}

/// A staged root and intermediate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Staged {
    /// The new root.
    pub root: Certificate,
    /// The intermediate under it.
    pub intermediate: Certificate,
    /// From when it may be activated.
    pub activate_at: OffsetDateTime,
}

/// What staging or activating did, for the caller to show.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RootChange {
    /// The root that signs (staging: the new one, not yet active).
    pub root: CertificateInfo,
    /// The intermediate under it.
    pub intermediate: CertificateInfo,
    /// When the staged pair may be (or was) activated.
    #[serde(with = "time::serde::rfc3339")]
    pub activate_at: OffsetDateTime,
    /// The root it replaces (activation only).
    pub replaced: Option<CertificateInfo>,
}

/// The pair staged in `ca_dir`, if any.
pub fn staged(ca_dir: &Path) -> Result<Option<Staged>> {
    let next = ca_dir.join(NEXT_DIR);
    let note = next.join(ACTIVATE);
    if !note.is_file() {
        return Ok(None);
    }
    let activate_at = super::rollover::read_time(&note, "activation")?;
    Ok(Some(Staged {
        root: super::read_cert(&next.join(files::ROOT_CERT))?,
        intermediate: super::read_cert(&next.join(files::INTERMEDIATE_CERT))?,
        activate_at,
    }))
}

impl OfflineCa {
    /// Stages a new root and an intermediate under it in `next/` (see the module docs): same
    /// organisation, key algorithm and name constraints as the current root, names of their
    /// own, keys stored with `new.protection`, which must open the current intermediate key.
    /// Refused while another pair is staged.
    pub fn stage_root(&self, new: &NewRoot, now: OffsetDateTime) -> Result<RootChange> {
        refuse_staged(&self.dir)?;
        if let Some(out) = &new.root_key_out
            && std::fs::symlink_metadata(out).is_ok()
        {
            return Err(Error::OutputExists { path: out.clone() });
        }
        if new.root_key_out.is_none() && !self.dir.join(files::ROOT_KEY).exists() {
            // The current root key is kept offline: the new one must not land in the directory.
            return Err(Error::InvalidRequest(
                "the root key is kept outside the CA directory: give --root-key-out for the new one",
            ));
        }
        // The passphrase given is the one of the keys in place.
        self.check_protection(&new.protection)?;

        let info = self.root.info();
        let organisation = naming::organisation_of_ca(&self.root).to_owned();
        let mut options = InitOptions::new(KeyProtection::None);
        options.key_algorithm = info.key_algorithm.unwrap_or(KeyAlgorithm::EcdsaP256);
        options.root_ttl = new.root_ttl;
        options.intermediate_ttl = new.intermediate_ttl.min(new.root_ttl);
        let names = CaNames::new(&organisation, Some(&naming::date_stamp(now)));
        let ca = generate(&options, &names, &info.constraints, now)?;
        let activate_at = now + new.overlap;

        let root = Certificate::from_der(ca.root.der().to_vec(), "the new root")?;
        let intermediate =
            Certificate::from_der(ca.intermediate.der().to_vec(), "the new intermediate")?;
        let root_key = key_pem(&ca.root_key, &new.protection)?;
        let pair = Pair {
            root: &root,
            root_key: Some((&root_key, new.root_key_out.as_deref())),
            intermediate: &intermediate,
            intermediate_key: &key_pem(&ca.intermediate_key, &new.protection)?,
        };
        let _lock = lock(&self.dir)?;
        refuse_staged(&self.dir)?;
        stage_pair(&self.dir, &pair, activate_at)?;
        Ok(RootChange {
            root: root.info().clone(),
            intermediate: intermediate.info().clone(),
            activate_at,
            replaced: None,
        })
    }
}

/// A pair to stage: certificates and PEM keys (the root key, and where it goes when kept
/// outside `next/`; none when the root stays).
pub(crate) struct Pair<'a> {
    pub root: &'a Certificate,
    pub root_key: Option<(&'a crate::secret::SecretString, Option<&'a Path>)>,
    pub intermediate: &'a Certificate,
    pub intermediate_key: &'a crate::secret::SecretString,
}

/// Marks, in `next/`, a new root whose key was written outside the CA directory: activation
/// then removes the old root key from the directory (after retiring it).
const ROOT_KEY_ELSEWHERE: &str = "root.key.elsewhere";

/// How long a rollover waits for another one on the same CA.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// The CA directory's rollover lock (`rollover.lock`), held while the caller stages or
/// activates; waits for another holder at most [`LOCK_WAIT`].
pub(crate) fn lock(ca_dir: &Path) -> Result<std::fs::File> {
    let dir = fsio::Dir::open(ca_dir, fsio::Owners::running())?;
    let file = dir.open_file("rollover.lock", 0o600)?;
    let started = std::time::Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(e) => {
                return Err(Error::Io {
                    op: crate::error::IoOp::Lock,
                    path: ca_dir.join("rollover.lock"),
                    source: match e {
                        std::fs::TryLockError::Error(e) => e,
                        std::fs::TryLockError::WouldBlock => std::io::Error::new(
                            std::io::ErrorKind::WouldBlock,
                            "another rollover of this CA holds it",
                        ),
                    },
                });
            }
        }
    }
}

/// Refuses to stage while `next/` holds a pair (a root rollover waiting for its overlap, or
/// one cut short).
pub(crate) fn refuse_staged(ca_dir: &Path) -> Result<()> {
    match staged(ca_dir)? {
        Some(pair) => Err(Error::InvalidArgument {
            what: "CA directory",
            value: ca_dir.display().to_string(),
            expected: if pair.activate_at <= crate::clock::now() {
                "no staged pair in next/ (one is due: `pki ca rotate-root --activate` or the next \
                 `pki rotate` finishes it)"
            } else {
                "no staged pair in next/ (a root rollover waits for its overlap)"
            },
        }),
        None => Ok(()),
    }
}

/// Writes `pair` into `next/`, the activation time last (a directory without it is not
/// staged: a crash halfway leaves files the next staging overwrites).
pub(crate) fn stage_pair(
    ca_dir: &Path,
    pair: &Pair<'_>,
    activate_at: OffsetDateTime,
) -> Result<()> {
    let next = ca_dir.join(NEXT_DIR);
    fsio::create_dir(&next, 0o700)?;
    let mut staged = Vec::new();
    if let Some((key, elsewhere)) = pair.root_key {
        let path = elsewhere.map_or_else(|| next.join(files::ROOT_KEY), Path::to_path_buf);
        staged.push(StagedFile::create(
            &path,
            key.expose().as_bytes(),
            FileMode::PRIVATE,
        )?);
        if elsewhere.is_some() {
            staged.push(StagedFile::create(
                &next.join(ROOT_KEY_ELSEWHERE),
                path.display().to_string().as_bytes(),
                FileMode::PRIVATE,
            )?);
        }
    }
    staged.push(StagedFile::create(
        &next.join(files::INTERMEDIATE_KEY),
        pair.intermediate_key.expose().as_bytes(),
        FileMode::PRIVATE,
    )?);
    staged.push(StagedFile::create(
        &next.join(files::ROOT_CERT),
        pair.root.pem().as_bytes(),
        FileMode::PUBLIC,
    )?);
    staged.push(StagedFile::create(
        &next.join(files::INTERMEDIATE_CERT),
        pair.intermediate.pem().as_bytes(),
        FileMode::PUBLIC,
    )?);
    let note = format!("{}\n", activate_at.unix_timestamp());
    staged.push(StagedFile::create(
        &next.join(ACTIVATE),
        note.as_bytes(),
        FileMode::PUBLIC,
    )?);
    fsio::commit_all(staged)?;
    fsio::sync_dir(&next)?;
    fsio::sync_dir(ca_dir)
}

/// Makes the pair staged in `ca_dir` current when its activation time has come (`None`:
/// nothing staged, or not yet), under the CA's rollover lock. Whatever of the CA in place
/// differs from the pair is copied to `retired/` first (nothing there is ever overwritten),
/// then the pair replaces it and `next/` is removed: a call cut short anywhere is finished by
/// the next one.
pub fn activate_due(ca_dir: &Path, now: OffsetDateTime) -> Result<Option<RootChange>> {
    match staged(ca_dir)? {
        Some(pair) if now >= pair.activate_at => {}
        _ => return Ok(None),
    }
    let _lock = lock(ca_dir)?;
    activate_locked(ca_dir, now)
}

/// The activation, with the lock held. Whatever of the CA in place differs from the staged
/// pair (the intermediate; the root too after a root rollover) is copied to `retired/` first,
/// where nothing is ever overwritten; then the staged files replace the CA's, and `next/` is
/// removed last. Each step can be repeated, so a run cut short anywhere is finished by the
/// next call, which sees the same staged pair.
pub(crate) fn activate_locked(ca_dir: &Path, now: OffsetDateTime) -> Result<Option<RootChange>> {
    let Some(pair) = staged(ca_dir)? else {
        return Ok(None);
    };
    if now < pair.activate_at {
        return Ok(None);
    }
    let next = ca_dir.join(NEXT_DIR);
    let current_root = super::read_cert(&ca_dir.join(files::ROOT_CERT))?;
    let current_intermediate = super::read_cert(&ca_dir.join(files::INTERMEDIATE_CERT))?;
    let retired = ca_dir.join(RETIRED_DIR);
    fsio::create_dir(&retired, 0o700)?;
    let mut writes: Vec<(PathBuf, Vec<u8>, FileMode)> = Vec::new();
    let root_changes = current_root.der() != pair.root.der();
    for (kind, cert, key, changes) in [
        (
            "intermediate",
            &current_intermediate,
            files::INTERMEDIATE_KEY,
            current_intermediate.der() != pair.intermediate.der(),
        ),
        ("root", &current_root, files::ROOT_KEY, root_changes),
    ] {
        if changes {
            retire(
                &mut writes,
                (&retired, kind),
                (cert, &ca_dir.join(key)),
                now,
            )?;
        }
    }
    if let Some(bytes) = key_if_present(&next.join(files::ROOT_KEY))? {
        writes.push((ca_dir.join(files::ROOT_KEY), bytes, FileMode::PRIVATE));
    }
    let intermediate_key =
        key_if_present(&next.join(files::INTERMEDIATE_KEY))?.ok_or_else(|| {
            Error::NotACaDirectory {
                path: next.clone(),
                missing: files::INTERMEDIATE_KEY.to_owned(),
            }
        })?;
    writes.push((
        ca_dir.join(files::INTERMEDIATE_KEY),
        intermediate_key,
        FileMode::PRIVATE,
    ));
    writes.push((
        ca_dir.join(files::ROOT_CERT),
        pair.root.pem().into_bytes(),
        FileMode::PUBLIC,
    ));
    writes.push((
        ca_dir.join(files::INTERMEDIATE_CERT),
        pair.intermediate.pem().into_bytes(),
        FileMode::PUBLIC,
    ));
    let staged_files = writes
        .iter()
        .map(|(path, bytes, mode)| StagedFile::create(path, bytes, *mode))
        .collect::<Result<Vec<_>>>()?;
    fsio::commit_all(staged_files)?;
    if next.join(ROOT_KEY_ELSEWHERE).exists() {
        // The new root key is kept elsewhere: the old one (retired above, or by the run this
        // one finishes) must not stay beside a root it does not match.
        remove_if_present(&ca_dir.join(files::ROOT_KEY))?;
    }
    fsio::sync_dir(&retired)?;
    fsio::sync_dir(ca_dir)?;
    remove_next(&next)?;
    Ok(Some(RootChange {
        root: pair.root.info().clone(),
        intermediate: pair.intermediate.info().clone(),
        activate_at: pair.activate_at,
        replaced: root_changes.then(|| current_root.info().clone()),
    }))
}

/// Adds to `writes` the copies of a CA certificate of `kind` and its key (as it is on disk,
/// encrypted) into `retired/`, with the time of the retirement; a file already there stays
/// (a run cut short wrote it; the live key may already be the new one).
fn retire(
    writes: &mut Vec<(PathBuf, Vec<u8>, FileMode)>,
    (retired, kind): (&Path, &str),
    (cert, key_path): (&Certificate, &Path),
    now: OffsetDateTime,
) -> Result<()> {
    let stem = retired.join(format!("{kind}-{}", cert.info().serial));
    let absent = |p: &Path| std::fs::symlink_metadata(p).is_err();
    let pem = with_ext(&stem, "pem");
    if absent(&pem) {
        writes.push((pem, cert.pem().into_bytes(), FileMode::PUBLIC));
    }
    let key = with_ext(&stem, "key.pem");
    if absent(&key)
        && let Some(bytes) = key_if_present(key_path)?
    {
        writes.push((key, bytes, FileMode::PRIVATE));
    }
    let note = with_ext(&stem, "retired");
    if absent(&note) {
        writes.push((
            note,
            format!("{}\n", now.unix_timestamp()).into_bytes(),
            FileMode::PUBLIC,
        ));
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
            op: crate::error::IoOp::Remove,
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// The bytes of a key file (checked private), or `None` when there is none.
fn key_if_present(path: &Path) -> Result<Option<Vec<u8>>> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    Ok(Some(fsio::read_key_file(path)?.to_vec()))
}

/// Removes `next/` once its files are in place.
fn remove_next(next: &Path) -> Result<()> {
    // The activation time first: without it the directory is not staged any more.
    for name in std::iter::once(ACTIVATE).chain(NEXT_FILES) {
        remove_if_present(&next.join(name))?;
    }
    let _ = std::fs::remove_dir(next);
    if let Some(parent) = next.parent() {
        fsio::sync_dir(parent)?;
    }
    Ok(())
}

/// Why a staged pair is not activated yet, for messages.
pub fn not_yet(pair: &Staged) -> String {
    format!(
        "the new root {} may sign from {} (the overlap lets every host trust it first)",
        pair.root.info().subject,
        Rfc3339(pair.activate_at)
    )
}

/// The files of `next/` a backup carries, relative to the CA directory.
pub(crate) fn next_files(ca_dir: &Path) -> Vec<String> {
    NEXT_FILES
        .iter()
        .map(|f| format!("{NEXT_DIR}/{f}"))
        .filter(|n| std::fs::symlink_metadata(ca_dir.join(n)).is_ok())
        .collect()
}

/// Whether `name` (relative to a CA directory) is one of the files `next/` holds.
pub(crate) fn is_next_file(name: &str) -> bool {
    name.strip_prefix("next/")
        .is_some_and(|f| NEXT_FILES.contains(&f))
}

/// The files of a staged pair.
const NEXT_FILES: [&str; 6] = [
    files::ROOT_CERT,
    files::ROOT_KEY,
    files::INTERMEDIATE_CERT,
    files::INTERMEDIATE_KEY,
    ROOT_KEY_ELSEWHERE,
    ACTIVATE,
];

#[cfg(test)]
// The tests write what a crash leaves behind, file by file.
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::super::{CaKeySource, init};
    use super::*;
    use crate::key::PrivateKey;
    use crate::request::CertificateRequest;
    use crate::secret::SecretString;
    use crate::{Profile, clock};

    fn passphrase() -> SecretString {
        SecretString::new("correct horse battery".to_owned())
    }

    /// A CA with a root rollover staged (activation due at once) and the files it had.
    fn staged_ca(tmp: &Path) -> (PathBuf, Certificate, Certificate) {
        let dir = tmp.join("ca");
        let now = clock::now();
        init(
            &dir,
            &InitOptions::new(KeyProtection::Passphrase(passphrase())),
            now,
        )
        .unwrap();
        let ca = OfflineCa::open(&dir).unwrap();
        let (root, intermediate) = (ca.root().clone(), ca.intermediate().clone());
        let new = NewRoot::new(KeyProtection::Passphrase(passphrase()), Duration::ZERO);
        ca.stage_root(&new, now).unwrap();
        (dir, root, intermediate)
    }

    fn copy(from: &Path, to: &Path) {
        std::fs::copy(from, to).unwrap();
    }

    /// What an activation cut short at `step` left: the retired copies written, then the
    /// files of `next/` moved into place up to `step` (keys first, then certificates).
    fn cut_short(dir: &Path, old: (&Certificate, &Certificate), step: usize) {
        let retired = dir.join(RETIRED_DIR);
        std::fs::create_dir_all(&retired).unwrap();
        for (kind, cert, key) in [
            ("intermediate", old.1, files::INTERMEDIATE_KEY),
            ("root", old.0, files::ROOT_KEY),
        ] {
            let stem = retired.join(format!("{kind}-{}", cert.info().serial));
            std::fs::write(with_ext(&stem, "pem"), cert.pem()).unwrap();
            copy(&dir.join(key), &with_ext(&stem, "key.pem"));
            std::fs::write(with_ext(&stem, "retired"), "1\n").unwrap();
        }
        let next = dir.join(NEXT_DIR);
        for name in [
            files::ROOT_KEY,
            files::INTERMEDIATE_KEY,
            files::ROOT_CERT,
            files::INTERMEDIATE_CERT,
        ]
        .iter()
        .take(step)
        {
            copy(&next.join(name), &dir.join(name));
        }
    }

    #[test]
    fn an_activation_cut_short_anywhere_is_finished_by_the_next() {
        for step in 0..=4 {
            let tmp = tempfile::tempdir().unwrap();
            let (dir, old_root, old_intermediate) = staged_ca(tmp.path());
            let pair = staged(&dir).unwrap().unwrap();
            cut_short(&dir, (&old_root, &old_intermediate), step);
            let done = activate_due(&dir, clock::now()).unwrap();
            assert!(done.is_some(), "step {step}");
            assert!(staged(&dir).unwrap().is_none(), "step {step}: next/ left");
            // The CA is the staged pair, and it signs.
            let mut ca = OfflineCa::open(&dir).unwrap();
            assert_eq!(ca.root().der(), pair.root.der(), "step {step}");
            assert_eq!(
                ca.intermediate().der(),
                pair.intermediate.der(),
                "step {step}"
            );
            ca.unlock(Some(&passphrase())).unwrap();
            let request = CertificateRequest::new(
                "a.example.internal",
                [],
                Profile::Server,
                Duration::days(1),
            )
            .unwrap();
            let leaf = ca
                .issue(&request, KeyAlgorithm::EcdsaP256, clock::now())
                .unwrap();
            assert!(leaf.certificate.is_signed_by(&pair.intermediate));
            // The retired keys are the old ones, never the new ones written over them.
            let retired = ca.retired().unwrap();
            assert_eq!(retired[0].certificate.der(), old_intermediate.der());
            let key = PrivateKey::from_pem_with_passphrase(
                &fsio::read_key_file(retired[0].key_path()).unwrap(),
                "retired",
                Some(&passphrase()),
            )
            .unwrap();
            assert!(old_intermediate.matches_key(&key), "step {step}");
            let root = ca
                .unlock_root(None, &CaKeySource::Given(passphrase()))
                .unwrap();
            assert_eq!(root.certificate().der(), pair.root.der());
        }
    }

    #[test]
    fn a_root_key_kept_offline_needs_a_place_for_the_new_one() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        let mut options = InitOptions::new(KeyProtection::Passphrase(passphrase()));
        options.root_key_out = Some(tmp.path().join("root.key.pem"));
        init(&dir, &options, clock::now()).unwrap();
        let ca = OfflineCa::open(&dir).unwrap();
        let mut new = NewRoot::new(KeyProtection::Passphrase(passphrase()), Duration::ZERO);
        let refused = ca.stage_root(&new, clock::now()).unwrap_err();
        assert!(refused.to_string().contains("--root-key-out"), "{refused}");
        // An existing file is not overwritten.
        new.root_key_out = Some(tmp.path().join("root.key.pem"));
        assert!(matches!(
            ca.stage_root(&new, clock::now()),
            Err(Error::OutputExists { .. })
        ));
        new.root_key_out = Some(tmp.path().join("new-root.key.pem"));
        ca.stage_root(&new, clock::now()).unwrap();
        activate_due(&dir, clock::now()).unwrap().unwrap();
        assert!(!dir.join(files::ROOT_KEY).exists());
        let ca = OfflineCa::open(&dir).unwrap();
        ca.unlock_root(
            Some(&tmp.path().join("new-root.key.pem")),
            &CaKeySource::Given(passphrase()),
        )
        .unwrap();
    }
}
