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
use super::{
    CaNames, CaSigner, InitOptions, KeyProtection, OfflineCa, files, generate, key_pem, naming,
};
use crate::cert::{Certificate, CertificateInfo};
use crate::error::{Error, Result, Rfc3339};
use crate::fsio::{self, FileMode, StagedFile};
use crate::key::{KeyAlgorithm, PrivateKey};

/// The directory, inside a CA directory, of a staged root and intermediate.
pub const NEXT_DIR: &str = "next";
/// The file in `next/` holding the time from which the staged pair may be activated.
const ACTIVATE: &str = "activate";
/// Upper bound on the size of the activation time file.
const MAX_NOTE: u64 = 4096;

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
    let text = fsio::read_limited(&note, MAX_NOTE)?;
    let activate_at = std::str::from_utf8(&text)
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok())
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .ok_or_else(|| Error::Pem {
            origin: note.display().to_string(),
            problem: "expected the Unix time of the activation".to_owned(),
        })?;
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
        let next = self.dir.join(NEXT_DIR);
        if staged(&self.dir)?.is_some() {
            return Err(Error::CaExists { path: next });
        }
        // The passphrase given is the one of the keys in place.
        let key_path = self.dir.join(files::INTERMEDIATE_KEY);
        let origin = key_path.display().to_string();
        let passphrase = match &new.protection {
            KeyProtection::Passphrase(p) => Some(p),
            KeyProtection::None => None,
        };
        let key = PrivateKey::from_pem_with_passphrase(
            &fsio::read_key_file(&key_path)?,
            &origin,
            passphrase,
        )?;
        CaSigner::new(self.intermediate.clone(), key, &origin)?;

        let info = self.root.info();
        let organisation = info
            .common_name
            .as_deref()
            .and_then(naming::organisation_of)
            .unwrap_or(super::DEFAULT_ORGANISATION)
            .to_owned();
        let mut options = InitOptions::new(KeyProtection::None);
        options.key_algorithm = info.key_algorithm.unwrap_or(KeyAlgorithm::EcdsaP256);
        options.root_ttl = new.root_ttl;
        options.intermediate_ttl = new.intermediate_ttl.min(new.root_ttl);
        let stamp = format!(
            "{}-{:02}-{:02}",
            now.year(),
            u8::from(now.month()),
            now.day()
        );
        let names = CaNames::new(&organisation, Some(&stamp));
        let ca = generate(&options, &names, &info.constraints, now)?;
        let activate_at = now + new.overlap;

        fsio::create_dir(&next, 0o700)?;
        let root_key_path = new
            .root_key_out
            .clone()
            .unwrap_or_else(|| next.join(files::ROOT_KEY));
        let note = format!("{}\n", activate_at.unix_timestamp());
        let root_key = key_pem(&ca.root_key, &new.protection)?;
        let intermediate_key = key_pem(&ca.intermediate_key, &new.protection)?;
        // The activation time last: a directory without it is not staged (a crash halfway
        // leaves files that the next stage_root overwrites).
        let staged_files = vec![
            StagedFile::create(
                &root_key_path,
                root_key.expose().as_bytes(),
                FileMode::PRIVATE,
            )?,
            StagedFile::create(
                &next.join(files::INTERMEDIATE_KEY),
                intermediate_key.expose().as_bytes(),
                FileMode::PRIVATE,
            )?,
            StagedFile::create(
                &next.join(files::ROOT_CERT),
                ca.root.pem().as_bytes(),
                FileMode::PUBLIC,
            )?,
            StagedFile::create(
                &next.join(files::INTERMEDIATE_CERT),
                ca.intermediate.pem().as_bytes(),
                FileMode::PUBLIC,
            )?,
            StagedFile::create(&next.join(ACTIVATE), note.as_bytes(), FileMode::PUBLIC)?,
        ];
        fsio::commit_all(staged_files)?;
        fsio::sync_dir(&next)?;
        fsio::sync_dir(&self.dir)?;
        let root = Certificate::from_der(ca.root.der().to_vec(), "the new root")?;
        let intermediate =
            Certificate::from_der(ca.intermediate.der().to_vec(), "the new intermediate")?;
        Ok(RootChange {
            root: root.info().clone(),
            intermediate: intermediate.info().clone(),
            activate_at,
            replaced: None,
        })
    }
}

/// Makes the pair staged in `ca_dir` current when its activation time has come (`None`:
/// nothing staged, or not yet). The root and intermediate in place move to `retired/`, keys
/// as they are; every file is written durably before `next/` is removed, and an activation
/// cut short is finished by the next call.
pub fn activate_due(ca_dir: &Path, now: OffsetDateTime) -> Result<Option<RootChange>> {
    let Some(pair) = staged(ca_dir)? else {
        return Ok(None);
    };
    if now < pair.activate_at {
        return Ok(None);
    }
    let next = ca_dir.join(NEXT_DIR);
    let current_root = super::read_cert(&ca_dir.join(files::ROOT_CERT))?;
    if current_root.der() == pair.root.der() {
        // Activated already; only `next/` was left.
        remove_next(&next)?;
        return Ok(None);
    }
    let current_intermediate = super::read_cert(&ca_dir.join(files::INTERMEDIATE_CERT))?;
    let retired = ca_dir.join(RETIRED_DIR);
    fsio::create_dir(&retired, 0o700)?;
    let note = format!("{}\n", now.unix_timestamp());
    let mut writes: Vec<(PathBuf, Vec<u8>, FileMode)> = Vec::new();
    for (kind, cert, key) in [
        ("root", &current_root, files::ROOT_KEY),
        (
            "intermediate",
            &current_intermediate,
            files::INTERMEDIATE_KEY,
        ),
    ] {
        let stem = retired.join(format!("{kind}-{}", cert.info().serial));
        writes.push((
            with_ext(&stem, "pem"),
            cert.pem().into_bytes(),
            FileMode::PUBLIC,
        ));
        if let Some(bytes) = key_if_present(&ca_dir.join(key))? {
            writes.push((with_ext(&stem, "key.pem"), bytes, FileMode::PRIVATE));
        }
        writes.push((
            with_ext(&stem, "retired"),
            note.clone().into_bytes(),
            FileMode::PUBLIC,
        ));
    }
    let new_root_key = key_if_present(&next.join(files::ROOT_KEY))?;
    if let Some(bytes) = &new_root_key {
        writes.push((
            ca_dir.join(files::ROOT_KEY),
            bytes.clone(),
            FileMode::PRIVATE,
        ));
    }
    let new_intermediate_key =
        key_if_present(&next.join(files::INTERMEDIATE_KEY))?.ok_or_else(|| {
            Error::NotACaDirectory {
                path: next.clone(),
                missing: files::INTERMEDIATE_KEY.to_owned(),
            }
        })?;
    writes.push((
        ca_dir.join(files::INTERMEDIATE_KEY),
        new_intermediate_key,
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
    if new_root_key.is_none() {
        // The new root key is kept elsewhere: the old one (retired above) must not stay
        // beside a root it does not match.
        match std::fs::remove_file(ca_dir.join(files::ROOT_KEY)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Io {
                    op: crate::error::IoOp::Remove,
                    path: ca_dir.join(files::ROOT_KEY),
                    source: e,
                });
            }
            _ => {}
        }
    }
    fsio::sync_dir(&retired)?;
    fsio::sync_dir(ca_dir)?;
    remove_next(&next)?;
    Ok(Some(RootChange {
        root: pair.root.info().clone(),
        intermediate: pair.intermediate.info().clone(),
        activate_at: pair.activate_at,
        replaced: Some(current_root.info().clone()),
    }))
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
        match std::fs::remove_file(next.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Io {
                    op: crate::error::IoOp::Remove,
                    path: next.join(name),
                    source: e,
                });
            }
            _ => {}
        }
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
const NEXT_FILES: [&str; 5] = [
    files::ROOT_CERT,
    files::ROOT_KEY,
    files::INTERMEDIATE_CERT,
    files::INTERMEDIATE_KEY,
    ACTIVATE,
];
