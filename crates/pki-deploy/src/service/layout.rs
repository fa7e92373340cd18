//! The versioned directory every target keeps beside its first file; the configured paths are
//! symlinks into its `current` version:
//!
//! ```text
//! /etc/nginx/ssl/web.crt -> .pki/web.key/current/web.crt
//! /etc/nginx/ssl/web.key -> .pki/web.key/current/web.key
//! /etc/nginx/ssl/.pki/web.key/20261125T031415.207Z-3e25501c-5d41c2a0/{web.key,web.crt}
//! /etc/nginx/ssl/.pki/web.key/current  -> 20261125T031415.207Z-3e25501c-5d41c2a0
//! ```
//!
//! A version is named for the store version it renders and a digest of the target's settings.
//! Switching `current` is one rename, so cert and key always change together, and the previous
//! version is one rename away for rollback. Files that were in place before the first
//! deployment are kept as an `adopted` version, so even that deployment can be rolled back.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use pki::error::IoOp;
use pki::fsio::{self, Durability, FileMode, StagedFile};
use pki::{Certificate, IssuedCertificate};
use zeroize::Zeroizing;

use super::TargetConfig;
use crate::error::{Error, Result, Unsafe};
use crate::state::{Stamp, TargetMark};
use crate::store::{CURRENT, link_name};

/// Version id given to files found in place before the first deployment.
pub const ADOPTED: &str = "adopted";

/// The versioned directory of a target (beside its first file).
pub fn versions_dir(target: &TargetConfig) -> PathBuf {
    let Some(first) = target.files().first().map(|f| f.path.as_path()) else {
        return PathBuf::from(".pki");
    };
    let dir = first.parent().unwrap_or(Path::new("/"));
    dir.join(".pki").join(basename(first))
}

/// A target's version of a store version: the store id and a digest of how the target renders
/// it (service, paths, contents, modes, owners, and what the service adds). A changed target
/// configuration is a new version, written beside the one in service instead of over it.
pub fn version_id(target: &TargetConfig, store_version: &str) -> String {
    let settings = target.settings();
    let mut described = format!(
        "{}|{:o}|{:o}|{:?}|{:?}|{}",
        target.service().name(),
        target.key_mode(),
        settings.cert_mode,
        settings.uid,
        settings.gid,
        target.ops().describe()
    );
    for f in target.files() {
        described.push_str(&format!("|{}={:?}", f.path.display(), f.content));
    }
    format!(
        "{store_version}-{:08x}",
        crate::state::fnv1a(described.as_bytes()) as u32
    )
}

/// The stamps a verification mark keeps: the directory holding the target's files (its links)
/// and the version directory `current` resolves to (which version, and its files). `None` when
/// the files span directories (such a target's links are always read).
pub fn dir_stamps(target: &TargetConfig) -> Option<Vec<Stamp>> {
    Some(vec![
        crate::state::stamp(files_dir(target)?)?,
        crate::state::stamp_followed(&versions_dir(target).join(CURRENT))?,
    ])
}

/// Refuses a target whose versioned directory another user could redirect: `.pki` and the
/// target's directory in it must be real directories of ours that no one else can write, and
/// so must the directory holding them (whoever can rename entries there can swap `.pki` for a
/// link to anywhere, and root would write keys there).
pub(crate) fn check_dirs(target: &TargetConfig) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let versions = versions_dir(target);
    let pki_dir = versions.parent().unwrap_or(Path::new("."));
    let holder = pki_dir.parent().unwrap_or(Path::new("/"));
    let me = nix::unistd::geteuid().as_raw();
    let unsafe_dir = |path: &Path, reason| Error::UnsafeDirectory {
        path: path.to_path_buf(),
        reason,
    };
    for (dir, follow) in [
        (holder, true),
        (pki_dir, false),
        (versions.as_path(), false),
    ] {
        let meta = if follow {
            fs::metadata(dir)
        } else {
            fs::symlink_metadata(dir)
        };
        let Ok(meta) = meta else {
            continue; // created by us, below a directory that passed
        };
        if meta.file_type().is_symlink() {
            return Err(unsafe_dir(dir, Unsafe::Symlink));
        }
        if !meta.is_dir() {
            return Err(unsafe_dir(dir, Unsafe::NotADirectory));
        }
        if meta.uid() != me && meta.uid() != 0 {
            return Err(unsafe_dir(dir, Unsafe::Owner(meta.uid())));
        }
        // Sticky directories (/tmp) still let others create the name first.
        if meta.mode() & 0o022 != 0 {
            return Err(unsafe_dir(dir, Unsafe::Writable(meta.mode() & 0o7777)));
        }
    }
    Ok(())
}

/// The file name of a path, as text.
pub(crate) fn basename(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// What the configured path should point at.
fn link_target(target: &TargetConfig, path: &Path) -> PathBuf {
    let versions = versions_dir(target);
    let inside = versions.join(CURRENT).join(basename(path));
    // Relative when the file sits beside the versioned directory: the tree can be moved or
    // seen through a chroot (HAProxy) and still resolve.
    match (path.parent(), versions.parent().and_then(Path::parent)) {
        (Some(p), Some(v)) if p == v => Path::new(".pki")
            .join(versions.file_name().unwrap_or_default())
            .join(CURRENT)
            .join(basename(path)),
        _ => inside,
    }
}

/// Whether a target serves the store's version.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Freshness {
    /// Deployed and verified.
    InSync,
    /// Needs a deployment; why.
    Stale(String),
}

/// The one directory holding all of a target's files, if they share one.
pub fn files_dir(target: &TargetConfig) -> Option<&Path> {
    let first = target.files().first()?.path.parent()?;
    target
        .files()
        .iter()
        .all(|f| f.path.parent() == Some(first))
        .then_some(first)
}

/// Compares a target's deployed version, what the run state says was last verified there, and
/// its links with the store's version. While the directories of its files and versions have not
/// changed since the verification, the links are not read again.
pub fn freshness(
    target: &TargetConfig,
    store_version: &str,
    mark: Option<&TargetMark>,
) -> Freshness {
    let versions = versions_dir(target);
    let want = version_id(target, store_version);
    // Two stats: unchanged since the mark, `current` still resolves to the marked version.
    if let Some(mark) = mark.filter(|m| m.version == want && m.dirs.is_some())
        && dir_stamps(target) == mark.dirs
    {
        return Freshness::InSync;
    }
    let current = link_name(&versions.join(CURRENT));
    if current.as_deref() != Some(want.as_str()) {
        return Freshness::Stale(match current {
            None => "never deployed".to_owned(),
            Some(c) if c.starts_with(store_version) => {
                format!("its configuration changed since version {c} was deployed")
            }
            Some(c) => format!("serves version {c}, the store has {store_version}"),
        });
    }
    if mark.filter(|m| m.version == want).is_none() {
        return Freshness::Stale("deployed but not verified (interrupted run?)".to_owned());
    }
    links_intact(target, &versions, &want)
}

/// The version directory holds every file and every configured path is the managed link.
fn links_intact(target: &TargetConfig, versions: &Path, want: &str) -> Freshness {
    // The version directory is written whole before `current` points at it.
    let dir = versions.join(want);
    if !dir.is_dir() {
        return Freshness::Stale(format!(
            "version {want} is missing from {}",
            versions.display()
        ));
    }
    for f in target.files() {
        if !fs::symlink_metadata(dir.join(basename(&f.path))).is_ok_and(|m| m.is_file()) {
            return Freshness::Stale(format!(
                "{} is missing from version {want}",
                basename(&f.path)
            ));
        }
    }
    for f in target.files() {
        if fs::read_link(&f.path).ok() != Some(link_target(target, &f.path)) {
            return Freshness::Stale(format!("{} is not the managed link", f.path.display()));
        }
    }
    Freshness::InSync
}

/// A rendered file: its name in the version directory, bytes, and mode.
pub(crate) struct Rendered {
    name: String,
    bytes: Zeroizing<Vec<u8>>,
    mode: FileMode,
}

/// Renders every file of a target from issued material.
pub(crate) fn render(target: &TargetConfig, material: &IssuedCertificate) -> Result<Vec<Rendered>> {
    let settings = target.settings();
    target
        .files()
        .iter()
        .map(|f| {
            let mode = if f.content.is_secret() {
                target.key_mode()
            } else {
                settings.cert_mode
            };
            Ok(Rendered {
                name: basename(&f.path),
                bytes: target.ops().render(f, material)?,
                mode: FileMode::owned(mode, settings.uid, settings.gid),
            })
        })
        .collect()
}

/// Writes version `id` of a target (the whole directory appears at once, or not at all). The
/// version in service is reused (it was made durable before it was switched to); any other
/// directory of that id is the leftover of an interrupted run, possibly never flushed to disk,
/// and is written again.
pub(crate) fn stage(
    target: &TargetConfig,
    id: &str,
    files: Vec<Rendered>,
    durability: Durability,
) -> Result<()> {
    let versions = versions_dir(target);
    let final_dir = versions.join(id);
    if final_dir.is_dir() {
        if link_name(&versions.join(CURRENT)).as_deref() == Some(id) {
            return Ok(());
        }
        fs::remove_dir_all(&final_dir).map_err(Error::io(IoOp::Remove, &final_dir))?;
    }
    // Service users must be able to traverse to their files: directories are 0755, files keep
    // their own (private) modes.
    fsio::create_dir(&versions, 0o755)?;
    let staging = fsio::temp_path(&versions, id);
    fsio::create_dir(&staging, 0o755)?;
    fs::set_permissions(&staging, fs::Permissions::from_mode(0o755))
        .map_err(Error::io(IoOp::Chmod, &staging))?;
    let written = (|| {
        let staged = files
            .iter()
            .map(|f| StagedFile::create(&staging.join(&f.name), &f.bytes, f.mode))
            .collect::<pki::Result<Vec<_>>>()?;
        fsio::commit_all_with(staged, durability)?;
        fs::rename(&staging, &final_dir).map_err(Error::io(IoOp::Rename, &final_dir))?;
        fsio::sync_dir_with(&versions, durability)?;
        Ok(())
    })();
    if written.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    written
}

/// Files found where the target writes, from before the first deployment, become the version
/// [`ADOPTED`], so that the first deployment can be rolled back to them. Returns the version in
/// place afterwards, if any.
pub(crate) fn adopt(target: &TargetConfig, durability: Durability) -> Result<Option<String>> {
    let versions = versions_dir(target);
    if let Some(current) = link_name(&versions.join(CURRENT)) {
        return Ok(Some(current));
    }
    let existing: Vec<_> = target
        .files()
        .iter()
        .filter(|f| fs::symlink_metadata(&f.path).is_ok_and(|m| m.is_file()))
        .collect();
    if existing.len() != target.files().len() {
        // Nothing (or only part) to fall back to: a first deployment with nothing to restore.
        return Ok(None);
    }
    let mut files = Vec::new();
    for f in existing {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(&f.path).map_err(Error::io(IoOp::Read, &f.path))?;
        let bytes = Zeroizing::new(fsio::read_limited(&f.path, MAX_ADOPTED)?);
        files.push(Rendered {
            name: basename(&f.path),
            bytes,
            mode: FileMode::owned(
                meta.permissions().mode() & 0o7777,
                Some(meta.uid()),
                Some(meta.gid()),
            ),
        });
    }
    stage(target, ADOPTED, files, durability)?;
    if durability == Durability::Deferred {
        // The adopted copies must be on disk before the paths become links to them.
        fsio::sync_filesystems(std::slice::from_ref(&versions))?;
    }
    switch(target, ADOPTED, durability)?;
    Ok(Some(ADOPTED.to_owned()))
}

/// Largest file adopted from before the first deployment (a keystore may hold many entries).
const MAX_ADOPTED: u64 = 64 << 20;

/// Points `current` at `id` and makes every configured path the managed symlink.
pub(crate) fn switch(target: &TargetConfig, id: &str, durability: Durability) -> Result<()> {
    let versions = versions_dir(target);
    fsio::replace_symlink(&versions.join(CURRENT), Path::new(id))?;
    fsio::sync_dir_with(&versions, durability)?;
    let mut dirs: Vec<PathBuf> = Vec::new();
    for f in target.files() {
        let want = link_target(target, &f.path);
        if fs::read_link(&f.path).ok().as_deref() != Some(want.as_path()) {
            if let Some(parent) = f.path.parent() {
                fsio::create_dir(parent, 0o755)?;
                if !dirs.iter().any(|d| d == parent) {
                    dirs.push(parent.to_path_buf());
                }
            }
            fsio::replace_symlink(&f.path, &want)?;
        }
    }
    for d in dirs {
        fsio::sync_dir_with(&d, durability)?;
    }
    Ok(())
}

/// Removes old versions (keeping current, `verified` and a few before) and temporary files.
pub fn prune(target: &TargetConfig, verified: Option<&str>) -> Result<()> {
    let versions = versions_dir(target);
    if !versions.is_dir() {
        return Ok(());
    }
    check_dirs(target)?;
    fsio::remove_stale_temps(&versions)?;
    for f in target.files() {
        if let Some(parent) = f.path.parent() {
            fsio::remove_stale_temps(parent)?;
        }
    }
    let Some(current) = link_name(&versions.join(CURRENT)) else {
        return Ok(());
    };
    let all: Vec<String> = match fs::read_dir(&versions) {
        Ok(entries) => entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect(),
        Err(_) => return Ok(()),
    };
    let pinned: Vec<&str> = verified.into_iter().collect();
    for v in crate::store::expired(all, &current, &pinned) {
        let path = versions.join(v);
        fs::remove_dir_all(&path).map_err(Error::io(IoOp::Remove, &path))?;
    }
    Ok(())
}

/// The directory of a version.
pub(crate) fn version_dir(target: &TargetConfig, id: &str) -> PathBuf {
    versions_dir(target).join(id)
}

/// The certificate a version of a target holds (for probing after a rollback).
pub(crate) fn version_leaf(target: &TargetConfig, id: &str) -> Option<Certificate> {
    let dir = version_dir(target, id);
    target
        .files()
        .iter()
        .filter(|f| f.content.has_leaf())
        .find_map(|f| {
            let p = dir.join(basename(&f.path));
            fsio::read_limited(&p, fsio::MAX_PEM_INPUT)
                .ok()
                .and_then(|t| Certificate::from_pem(&t, "deployed").ok())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::files::Files;
    use crate::service::{Content, OutputFile, Settings};

    fn target(paths: &[(&str, Content)]) -> TargetConfig {
        let mut files = Files::standard(Path::new("/x"));
        files.files = paths.iter().map(|(p, c)| OutputFile::new(*p, *c)).collect();
        TargetConfig::with_writer(files.into(), Settings::default(), 0).unwrap()
    }

    #[test]
    fn links_are_relative_beside_and_absolute_elsewhere() {
        let t = target(&[
            ("/etc/ssl/private/web.key", Content::Key),
            ("/etc/ssl/certs/web.crt", Content::Fullchain),
        ]);
        assert_eq!(versions_dir(&t), Path::new("/etc/ssl/private/.pki/web.key"));
        assert_eq!(
            link_target(&t, Path::new("/etc/ssl/private/web.key")),
            Path::new(".pki/web.key/current/web.key")
        );
        assert_eq!(
            link_target(&t, Path::new("/etc/ssl/certs/web.crt")),
            Path::new("/etc/ssl/private/.pki/web.key/current/web.crt")
        );
    }

    #[test]
    fn a_changed_setting_is_a_new_version() {
        let a = target(&[("/d/key.pem", Content::Key), ("/d/cert.pem", Content::Cert)]);
        let b = target(&[
            ("/d/key.pem", Content::Key),
            ("/d/cert.pem", Content::Fullchain),
        ]);
        assert_ne!(version_id(&a, "v1"), version_id(&b, "v1"));
        assert_eq!(version_id(&a, "v1"), version_id(&a.clone(), "v1"));
        assert!(version_id(&a, "v1").starts_with("v1-"));
    }
}
