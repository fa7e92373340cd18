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
//!
//! Every change goes through [`TargetDirs`]: the directory of each file and the versioned
//! directory, each walked to from `/` without following a link and checked (see
//! [`pki::fsio::Dir`]), then written relative to its descriptor. Planning only reads (a few
//! `stat` calls by path); nothing is written by path. Each version directory carries a marker,
//! and pruning removes only marked versions.

use std::fs;
use std::path::{Path, PathBuf};

use pki::fsio::{Dir, Durability, FileMode, Owners};
use pki::{Certificate, IssuedCertificate};
use zeroize::Zeroizing;

use super::TargetConfig;
use crate::error::Result;
use crate::state::{Stamp, TargetMark};
use crate::store::{CURRENT, link_name};

/// The file in every version directory that says it is ours: pruning removes nothing else.
const MARKER: &str = ".pki-version";

/// Version id given to files found in place before the first deployment.
pub const ADOPTED: &str = "adopted";

/// The versioned directory of a target (beside its first file).
pub fn versions_dir(target: &TargetConfig) -> &Path {
    target.versions_dir()
}

/// The versioned directory for a list of files: `.pki/<name>` beside the first.
pub(crate) fn versions_dir_of(files: &[super::OutputFile]) -> PathBuf {
    let Some(first) = files.first().map(|f| f.path.as_path()) else {
        return PathBuf::from(".pki");
    };
    let dir = first.parent().unwrap_or(Path::new("/"));
    dir.join(".pki").join(basename(first))
}

/// A digest of how a target renders a store version: service, modes, owners, what the service
/// adds (a keystore's alias), and every path with its content. A changed target configuration
/// is a new version, written beside the one in service instead of over it.
pub(crate) fn settings_digest(
    service: &super::Service,
    settings: &super::Settings,
    key_mode: u32,
    files: &[super::OutputFile],
) -> u32 {
    use std::os::unix::ffi::OsStrExt;
    let id = |v: Option<u32>| {
        v.map_or([0xff; 5], |n| {
            let b = n.to_le_bytes();
            [1, b[0], b[1], b[2], b[3]]
        })
    };
    let mut h = crate::state::Fnv::default();
    h.piece(service.name().as_bytes())
        .piece(&key_mode.to_le_bytes())
        .piece(&settings.cert_mode.to_le_bytes())
        .piece(&id(settings.uid))
        .piece(&id(settings.gid))
        .piece(service.ops().describe().as_bytes());
    for f in files {
        h.piece(f.path.as_os_str().as_bytes())
            .piece(&[f.content as u8]);
    }
    h.0 as u32
}

/// A target's version of a store version: the store id and the digest of the target's
/// settings.
pub fn version_id(target: &TargetConfig, store_version: &str) -> String {
    format!("{store_version}-{:08x}", target.digest())
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

/// The checked directories of a target: the one holding each of its files, and its versions.
#[derive(Debug)]
pub(crate) struct TargetDirs {
    /// The directory of each file, in the order of [`TargetConfig::files`].
    parents: Vec<(PathBuf, usize)>,
    opened: Vec<Dir>,
    /// `.pki/<first file's name>`.
    pub(crate) versions: Dir,
}

impl TargetDirs {
    /// Opens (and creates when missing) every directory the target writes into, refusing any
    /// that another user could redirect. Service users must be able to reach their files:
    /// directories made here are 0755 (files keep their own, private modes).
    pub(crate) fn open(target: &TargetConfig) -> Result<Self> {
        let owners = Owners::running();
        let mut parents = Vec::new();
        let mut opened: Vec<Dir> = Vec::new();
        let mut paths: Vec<PathBuf> = Vec::new();
        for f in target.files() {
            let parent = f.path.parent().unwrap_or(Path::new("/")).to_path_buf();
            let index = match paths.iter().position(|p| *p == parent) {
                Some(i) => i,
                None => {
                    opened.push(Dir::create(&parent, 0o755, owners)?);
                    paths.push(parent.clone());
                    paths.len() - 1
                }
            };
            parents.push((parent, index));
        }
        let holder = opened
            .first()
            .ok_or_else(|| pki::Error::InvalidRequest("a target needs at least one file"))?;
        let first = target
            .files()
            .first()
            .map(|f| basename(&f.path))
            .unwrap_or_default();
        let versions = holder
            .create_sub(".pki", 0o755)?
            .create_sub(&first, 0o755)?;
        Ok(Self {
            parents,
            opened,
            versions,
        })
    }

    /// The directory of the target's `i`th file.
    fn parent(&self, i: usize) -> &Dir {
        &self.opened[self.parents[i].1]
    }

    /// A version directory, checked.
    pub(crate) fn version(&self, id: &str) -> Result<Dir> {
        Ok(self.versions.sub(id)?)
    }

    /// The version `current` points at.
    pub(crate) fn current(&self) -> Option<String> {
        self.versions
            .read_link(CURRENT)
            .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
    }
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
    links_intact(target, versions, &want)
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
    dirs: &TargetDirs,
    id: &str,
    files: Vec<Rendered>,
    durability: Durability,
) -> Result<()> {
    let versions = &dirs.versions;
    if versions.entry(id)?.is_some() {
        if dirs.current().as_deref() == Some(id) {
            return Ok(());
        }
        versions.remove_tree(id)?;
    }
    let temp = format!("{}{id}.{}", pki::fsio::TEMP_PREFIX, std::process::id());
    versions.remove_tree(&temp)?;
    let staging = versions.create_sub(&temp, 0o755)?;
    let written = (|| -> Result<()> {
        let marker = format!("pki version {id}\n");
        let mut all = Vec::with_capacity(files.len() + 1);
        for f in &files {
            all.push(staging.stage(&f.name, &f.bytes, f.mode)?);
        }
        all.push(staging.stage(MARKER, marker.as_bytes(), FileMode::PUBLIC)?);
        for mut f in all {
            if durability == Durability::Immediate {
                f.sync()?;
            }
            f.commit()?;
        }
        if durability == Durability::Immediate {
            staging.sync()?;
        }
        versions.rename(&temp, id)?;
        if durability == Durability::Immediate {
            versions.sync()?;
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = versions.remove_tree(&temp);
    }
    written
}

/// Files found where the target writes, from before the first deployment, become the version
/// [`ADOPTED`], so that the first deployment can be rolled back to them. Each is read once,
/// through its directory's descriptor, only if it is a regular file (never through a link,
/// never a FIFO or a device). Returns the version in place afterwards, if any.
pub(crate) fn adopt(
    target: &TargetConfig,
    dirs: &TargetDirs,
    durability: Durability,
) -> Result<Option<String>> {
    if let Some(current) = dirs.current() {
        return Ok(Some(current));
    }
    let mut files = Vec::new();
    for (i, f) in target.files().iter().enumerate() {
        let name = basename(&f.path);
        let parent = dirs.parent(i);
        // Nothing (or only part) to fall back to: a first deployment with nothing to restore.
        if parent
            .entry(&name)?
            .is_none_or(|e| e.kind != pki::fsio::dir::Kind::File)
        {
            return Ok(None);
        }
        let (bytes, entry) = parent.read_file(&name, MAX_ADOPTED)?;
        files.push(Rendered {
            name,
            bytes,
            mode: FileMode::owned(entry.mode, Some(entry.uid), Some(entry.gid)),
        });
    }
    stage(dirs, ADOPTED, files, durability)?;
    if durability == Durability::Deferred {
        // The adopted copies must be on disk before the paths become links to them.
        dirs.versions.sync_filesystem()?;
    }
    switch(target, dirs, ADOPTED, durability)?;
    Ok(Some(ADOPTED.to_owned()))
}

/// Largest file adopted from before the first deployment (a keystore may hold many entries).
const MAX_ADOPTED: u64 = 64 << 20;

/// Points `current` at `id` and makes every configured path the managed symlink.
pub(crate) fn switch(
    target: &TargetConfig,
    dirs: &TargetDirs,
    id: &str,
    durability: Durability,
) -> Result<()> {
    dirs.versions.replace_symlink(CURRENT, Path::new(id))?;
    if durability == Durability::Immediate {
        dirs.versions.sync()?;
    }
    let mut changed: Vec<usize> = Vec::new();
    for (i, f) in target.files().iter().enumerate() {
        let want = link_target(target, &f.path);
        let name = basename(&f.path);
        let parent = dirs.parent(i);
        if parent.read_link(&name).as_deref() != Some(want.as_path()) {
            parent.replace_symlink(&name, &want)?;
            let index = dirs.parents[i].1;
            if !changed.contains(&index) {
                changed.push(index);
            }
        }
    }
    if durability == Durability::Immediate {
        for i in changed {
            dirs.opened[i].sync()?;
        }
    }
    Ok(())
}

/// Removes old versions (keeping current, `verified` and a few before; only directories that
/// carry the marker) and temporary files a killed run left.
pub fn prune(target: &TargetConfig, verified: Option<&str>) -> Result<()> {
    if !versions_dir(target).is_dir() {
        return Ok(());
    }
    let dirs = TargetDirs::open(target)?;
    dirs.versions.remove_stale_temps()?;
    for d in &dirs.opened {
        d.remove_stale_temps()?;
    }
    let Some(current) = dirs.current() else {
        return Ok(());
    };
    let all: Vec<String> = dirs
        .versions
        .entries()?
        .into_iter()
        .filter(|(n, k)| *k == pki::fsio::dir::Kind::Dir && !n.starts_with('.'))
        .map(|(n, _)| n)
        .collect();
    let pinned: Vec<&str> = verified.into_iter().collect();
    for v in crate::store::expired(all, &current, &pinned) {
        let marked = dirs
            .versions
            .sub(&v)
            .ok()
            .and_then(|d| d.entry(MARKER).ok().flatten())
            .is_some();
        if marked {
            dirs.versions.remove_tree(&v)?;
        }
    }
    Ok(())
}

/// The certificate a version of a target holds (for probing after a rollback).
pub(crate) fn version_leaf(target: &TargetConfig, version: &Dir) -> Option<Certificate> {
    target
        .files()
        .iter()
        .filter(|f| f.content.has_leaf())
        .find_map(|f| {
            let (bytes, _) = version
                .read_file(&basename(&f.path), pki::fsio::MAX_PEM_INPUT)
                .ok()?;
            Certificate::from_pem(&bytes, "deployed").ok()
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
