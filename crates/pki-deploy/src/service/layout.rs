//! The versioned directory every target keeps beside its first file; the configured paths are
//! symlinks into its `current` version:
//!
//! ```text
//! /etc/nginx/ssl/web.crt -> .pki/web.key/current/web.crt
//! /etc/nginx/ssl/web.key -> .pki/web.key/current/web.key
//! /etc/nginx/ssl/.pki/web.key/current/{web.key,web.crt,.pki-version}   the version in service
//! /etc/nginx/ssl/.pki/web.key/20261125T031415.207Z-3e25501c-5d41c2a0/  the one before it
//! ```
//!
//! A version is named for the store version it renders and a digest of the target's settings;
//! its marker file (`.pki-version`) carries that id, also once it is `current`. Switching is
//! one `renameat2(RENAME_EXCHANGE)` of the new version's directory with `current`, so cert
//! and key always change together and no reader finds a file missing; the version that was in
//! service then takes back its own name, one rename away for rollback. Files that were in
//! place before the first deployment are kept as an `adopted` version, so even that deployment
//! can be rolled back. (A layout written by an older release, where `current` is a symlink to
//! a named version, is switched to this one by its next deployment.)
//!
//! A new version reuses the directory and files of the oldest version no longer kept,
//! rewriting them in place: a rotation in steady state allocates and frees no inodes, which
//! on ext4 without a journal (whose allocator skips recently freed inodes) is most of the
//! cost of a rotation of many certificates.
//!
//! Every change goes through `TargetDirs`: the directory of each file and the versioned
//! directory, each walked to from `/` without following a link and checked (see
//! [`pki::fsio::Dir`]), then written relative to its descriptor. Planning only reads (a few
//! `stat` calls by path); nothing is written by path. Pruning and reuse touch only
//! directories that carry the marker.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use pki::fsio::dir::Kind;
use pki::fsio::{Dir, Durability, FileMode, Links, Owners};
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

/// What a marker file says before the version id.
const MARKER_PREFIX: &str = "pki version ";

/// The marker file's content for version `id`.
fn marker_text(id: &str) -> String {
    format!("{MARKER_PREFIX}{id}\n")
}

/// The version id a marker file's content names.
fn marker_id(text: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(text).ok()?;
    let id = text.strip_prefix(MARKER_PREFIX)?.trim_end_matches('\n');
    (!id.is_empty() && !id.contains(['/', '\n'])).then(|| id.to_owned())
}

/// The version id in the marker of a version directory.
fn marked(dir: &Dir) -> Option<String> {
    let (text, _) = dir.read_file(MARKER, 256).ok()?;
    marker_id(&text)
}

/// The id of the version in service in `versions` (by path, for planning): the marker inside
/// `current`, or the name a `current` link from an older release points at.
fn current_at(versions: &Path) -> Option<String> {
    let here = versions.join(CURRENT);
    if fs::symlink_metadata(&here).ok()?.is_symlink() {
        return link_name(&here);
    }
    // Planning reads by path; the marker itself is never read through a link.
    let (text, _) = pki::fsio::read_private(&here.join(MARKER), 256).ok()?;
    marker_id(&text)
}

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
    let files = files_dir(target)?;
    // Looked up from the parent the targets of a host usually share.
    let base = files.parent()?;
    let current = versions_dir(target).join(CURRENT);
    Some(vec![
        crate::state::stamp_below(base, files.strip_prefix(base).ok()?, Links::Refuse)?,
        crate::state::stamp_below(base, current.strip_prefix(base).ok()?, Links::Follow)?,
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
    /// The version in service, as [`TargetDirs::open`] found it and [`switch`] changed it.
    current: Mutex<Option<String>>,
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
        let current = match versions.entry(CURRENT)?.map(|e| e.kind) {
            Some(Kind::Dir) => versions.sub(CURRENT).ok().as_ref().and_then(marked),
            Some(Kind::Symlink) => versions
                .read_link(CURRENT)
                .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned())),
            _ => None,
        };
        Ok(Self {
            parents,
            opened,
            versions,
            current: Mutex::new(current),
        })
    }

    /// The directory of the target's `i`th file.
    fn parent(&self, i: usize) -> &Dir {
        &self.opened[self.parents[i].1]
    }

    /// A version directory, checked: `current` for the version in service, else the
    /// directory of that name whose marker says so.
    pub(crate) fn version(&self, id: &str) -> Result<Dir> {
        if self.current().as_deref() == Some(id)
            && self.versions.entry(CURRENT)?.map(|e| e.kind) == Some(Kind::Dir)
        {
            return Ok(self.versions.sub(CURRENT)?);
        }
        if let Ok(dir) = self.versions.sub(id) {
            // A version of an older release (no marker) is only taken as the one in service.
            let legacy = self.current().as_deref() == Some(id);
            if legacy || marked(&dir).as_deref() == Some(id) {
                return Ok(dir);
            }
        }
        // A run killed between a switch's exchange and its rename left the version under the
        // other one's name: its marker finds it.
        for name in self.named()? {
            let Ok(dir) = self.versions.sub(&name) else {
                continue;
            };
            if marked(&dir).as_deref() == Some(id) {
                if self.versions.entry(id)?.is_some() {
                    // That name holds another misplaced version: they trade places.
                    self.versions.exchange(&name, id)?;
                } else {
                    self.versions.rename(&name, id)?;
                }
                return Ok(self.versions.sub(id)?);
            }
        }
        Err(pki::Error::Io {
            op: pki::error::IoOp::Read,
            path: self.versions.path().join(id),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no directory is marked as version {id}"),
            ),
        }
        .into())
    }

    /// The version in service.
    pub(crate) fn current(&self) -> Option<String> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_current(&self, id: &str) {
        *self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(id.to_owned());
    }

    /// The version directories other than `current`, by name.
    fn named(&self) -> Result<Vec<String>> {
        Ok(self
            .versions
            .entries()?
            .into_iter()
            .filter(|(n, k)| *k == Kind::Dir && !n.starts_with('.') && n != CURRENT)
            .map(|(n, _)| n)
            .collect())
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
    let current = current_at(versions);
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
    // The version directory is written whole before it becomes `current`.
    let mut dir = versions.join(CURRENT);
    if fs::symlink_metadata(&dir).is_ok_and(|m| m.is_symlink()) {
        dir = versions.join(want);
    }
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

/// A version for [`stage`] to write.
pub(crate) struct NewVersion<'a> {
    /// Its id.
    pub id: &'a str,
    /// Its files.
    pub files: Vec<Rendered>,
    /// Versions whose directory must not be reused (what a rollback returns to).
    pub keep: &'a [&'a str],
}

/// Writes version `id` of a target (the whole directory appears at once, or not at all). The
/// version in service is reused (it was made durable before it was switched to); a directory
/// of that id not in service is the leftover of an interrupted run, possibly never flushed to
/// disk, and is written again. The directory of the oldest version beyond those kept (and not
/// `pinned`) is reused, files and all, rather than a new one made beside it.
pub(crate) fn stage(
    dirs: &TargetDirs,
    version: NewVersion<'_>,
    durability: Durability,
) -> Result<()> {
    let NewVersion {
        id,
        files,
        keep: pinned,
    } = version;
    let versions = &dirs.versions;
    if dirs.current().as_deref() == Some(id) {
        return Ok(());
    }
    let temp = pki::fsio::temp_name(id);
    match reusable(dirs, id, pinned)? {
        Some(old) => versions.rename(&old, &temp)?,
        None => drop(versions.create_sub(&temp, 0o755)?),
    }
    let written = (|| -> Result<()> {
        let staging = versions.create_sub(&temp, 0o755)?;
        let keep: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        for (name, kind) in staging.entries()? {
            if name != MARKER && !keep.contains(&name.as_str()) {
                match kind {
                    Kind::Dir => staging.remove_tree(&name)?,
                    _ => staging.remove_file(&name)?,
                }
            }
        }
        let mut all = Vec::with_capacity(files.len() + 1);
        for f in &files {
            all.push(staging.rewrite(&f.name, &f.bytes, f.mode)?);
        }
        all.push(staging.rewrite(MARKER, marker_text(id).as_bytes(), FileMode::PUBLIC)?);
        if durability == Durability::Immediate {
            for f in &all {
                f.sync()?;
            }
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

/// The named version directory [`stage`] may reuse for `id`: a leftover of that very id, else
/// the oldest that would be pruned once `id` is in service. Only directories with the marker.
fn reusable(dirs: &TargetDirs, id: &str, pinned: &[&str]) -> Result<Option<String>> {
    let named = dirs.named()?;
    if named.iter().any(|n| n == id) {
        return Ok(Some(id.to_owned()));
    }
    let current = dirs.current();
    let mut all = named.clone();
    all.push(id.to_owned());
    if let Some(c) = current.as_ref().filter(|c| !named.contains(c)) {
        all.push(c.clone());
    }
    let mut keep: Vec<&str> = pinned.to_vec();
    keep.extend(current.as_deref());
    Ok(crate::store::expired(all, id, &keep)
        .into_iter()
        .filter(|v| named.contains(v))
        .find(|v| {
            dirs.versions
                .sub(v)
                .ok()
                .as_ref()
                .and_then(marked)
                .as_deref()
                == Some(v)
        }))
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
        if parent.entry(&name)?.is_none_or(|e| e.kind != Kind::File) {
            return Ok(None);
        }
        let (bytes, entry) = parent.read_file(&name, MAX_ADOPTED)?;
        files.push(Rendered {
            name,
            bytes,
            mode: FileMode::owned(entry.mode, Some(entry.uid), Some(entry.gid)),
        });
    }
    let adopted = NewVersion {
        id: ADOPTED,
        files,
        keep: &[],
    };
    stage(dirs, adopted, durability)?;
    if durability == Durability::Deferred {
        // The adopted copies must be on disk before the paths become links to them.
        dirs.versions.sync_filesystem()?;
    }
    switch(target, dirs, ADOPTED, durability)?;
    Ok(Some(ADOPTED.to_owned()))
}

/// Largest file adopted from before the first deployment (a keystore may hold many entries).
const MAX_ADOPTED: u64 = 64 << 20;

/// Makes `id` the version in service and every configured path the managed symlink.
pub(crate) fn switch(
    target: &TargetConfig,
    dirs: &TargetDirs,
    id: &str,
    durability: Durability,
) -> Result<()> {
    let versions = &dirs.versions;
    let current = dirs.current();
    if current.as_deref() != Some(id) {
        let incoming = versions.sub(id)?;
        if marked(&incoming).as_deref() != Some(id) {
            // An older release's version, about to be in service again: it becomes ours.
            incoming
                .rewrite(MARKER, marker_text(id).as_bytes(), FileMode::PUBLIC)?
                .sync()?;
        }
        match versions.entry(CURRENT)?.map(|e| e.kind) {
            None => versions.rename(id, CURRENT)?,
            Some(Kind::Dir) => {
                versions.exchange(id, CURRENT)?;
                // `id` now names the version that was in service: give it back its own name.
                let old = current.unwrap_or_else(|| format!("unmarked.{}", std::process::id()));
                if versions.entry(&old)?.is_some() {
                    versions.remove_tree(&old)?;
                }
                versions.rename(id, &old)?;
            }
            Some(_) => {
                // An older release's `current` link: the directory takes its place.
                versions.exchange(id, CURRENT)?;
                versions.remove_file(id)?;
            }
        }
        dirs.set_current(id);
        if durability == Durability::Immediate {
            versions.sync()?;
        }
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
    prune_in(&TargetDirs::open(target)?, verified)
}

/// [`prune`] in directories already open.
pub(crate) fn prune_in(dirs: &TargetDirs, verified: Option<&str>) -> Result<()> {
    dirs.versions.remove_stale_temps()?;
    for d in &dirs.opened {
        d.remove_stale_temps()?;
    }
    let Some(current) = dirs.current() else {
        return Ok(());
    };
    let mut all = dirs.named()?;
    if !all.contains(&current) {
        all.push(current.clone());
    }
    let pinned: Vec<&str> = verified.into_iter().chain([current.as_str()]).collect();
    for v in crate::store::expired(all, &current, &pinned) {
        if dirs
            .versions
            .sub(&v)
            .ok()
            .as_ref()
            .and_then(marked)
            .is_some()
        {
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

    /// A target of two files in a private temporary directory.
    fn beside(tmp: &Path) -> TargetConfig {
        let d = tmp.join("d");
        target(&[
            (d.join("key.pem").to_str().unwrap(), Content::Key),
            (d.join("cert.pem").to_str().unwrap(), Content::Cert),
        ])
    }

    fn private_tmp() -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o700)).unwrap();
        tmp
    }

    fn files_of(text: &str) -> Vec<Rendered> {
        ["key.pem", "cert.pem"]
            .into_iter()
            .map(|name| Rendered {
                name: name.to_owned(),
                bytes: Zeroizing::new(format!("{name} {text}").into_bytes()),
                mode: FileMode::PRIVATE,
            })
            .collect()
    }

    fn new<'a>(id: &'a str, keep: &'a [&'a str]) -> NewVersion<'a> {
        NewVersion {
            id,
            files: files_of(id),
            keep,
        }
    }

    /// Stages, switches to and prunes around version `id`, as a deployment does.
    fn deploy(t: &TargetConfig, id: &str) {
        let dirs = TargetDirs::open(t).unwrap();
        stage(&dirs, new(id, &[]), Durability::Immediate).unwrap();
        switch(t, &dirs, id, Durability::Immediate).unwrap();
        prune_in(&dirs, Some(id)).unwrap();
    }

    /// Every inode under the versions directory, by path below it.
    fn inodes(dir: &Path) -> std::collections::BTreeSet<u64> {
        use std::os::unix::fs::MetadataExt;
        let mut out = std::collections::BTreeSet::new();
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            out.insert(e.metadata().unwrap().ino());
            if e.file_type().unwrap().is_dir() {
                out.extend(inodes(&e.path()));
            }
        }
        out
    }

    fn read(path: &Path) -> String {
        String::from_utf8(pki::fsio::read_limited(path, 1000).unwrap()).unwrap()
    }

    #[test]
    fn steady_rotations_reuse_the_oldest_versions_inodes() {
        let tmp = private_tmp();
        let t = beside(tmp.path());
        let versions = versions_dir(&t).to_path_buf();
        let id = |k: u32| format!("2026010{k}T000000.000Z-0000000{k}-00000000");
        for k in 1..=3 {
            deploy(&t, &id(k));
        }
        let settled = inodes(&versions);
        for k in 4..=7 {
            deploy(&t, &id(k));
            assert_eq!(
                read(&tmp.path().join("d/cert.pem")),
                format!("cert.pem {}", id(k))
            );
            assert_eq!(current_at(&versions), Some(id(k)));
            // `current` and the versions kept before it; no inode made or freed.
            let mut names: Vec<String> = fs::read_dir(&versions)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            assert_eq!(names, [id(k - 2), id(k - 1), CURRENT.to_owned()]);
            assert_eq!(inodes(&versions), settled, "after version {k}");
        }
        // The previous version is one switch away, by its own name.
        let dirs = TargetDirs::open(&t).unwrap();
        switch(&t, &dirs, &id(6), Durability::Immediate).unwrap();
        assert_eq!(
            read(&tmp.path().join("d/key.pem")),
            format!("key.pem {}", id(6))
        );
        assert!(dirs.version(&id(7)).is_ok());
        assert_eq!(TargetDirs::open(&t).unwrap().current(), Some(id(6)));
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // an older release's files, written as it wrote them
    fn an_older_releases_link_layout_is_taken_over_and_can_be_rolled_back_to() {
        use std::os::unix::fs::symlink;
        let tmp = private_tmp();
        let t = beside(tmp.path());
        let versions = versions_dir(&t).to_path_buf();
        // As an older release left it: a named, unmarked version and `current` a link to it.
        fs::create_dir_all(versions.join("old")).unwrap();
        for f in ["key.pem", "cert.pem"] {
            fs::write(versions.join("old").join(f), format!("{f} old")).unwrap();
            symlink(
                link_target(&t, &tmp.path().join("d").join(f)),
                tmp.path().join("d").join(f),
            )
            .unwrap();
        }
        symlink("old", versions.join(CURRENT)).unwrap();
        assert_eq!(current_at(&versions).as_deref(), Some("old"));
        let dirs = TargetDirs::open(&t).unwrap();
        assert!(
            dirs.version("old").is_ok(),
            "the version in service, unmarked"
        );
        stage(&dirs, new("new", &["old"]), Durability::Immediate).unwrap();
        switch(&t, &dirs, "new", Durability::Immediate).unwrap();
        assert!(
            fs::symlink_metadata(versions.join(CURRENT))
                .unwrap()
                .is_dir()
        );
        assert_eq!(read(&tmp.path().join("d/cert.pem")), "cert.pem new");
        // Rolling back makes the old version ours (marked), in service again.
        switch(&t, &dirs, "old", Durability::Immediate).unwrap();
        assert_eq!(read(&tmp.path().join("d/cert.pem")), "cert.pem old");
        assert_eq!(current_at(&versions).as_deref(), Some("old"));
        assert_eq!(read(&versions.join("new/cert.pem")), "cert.pem new");
    }

    #[test]
    fn a_switch_killed_between_exchange_and_rename_is_found_by_its_marker() {
        let tmp = private_tmp();
        let t = beside(tmp.path());
        deploy(&t, "v1");
        let dirs = TargetDirs::open(&t).unwrap();
        stage(&dirs, new("v2", &[]), Durability::Immediate).unwrap();
        // The exchange happened, the rename did not: `v2` names what v1 was.
        dirs.versions.exchange("v2", CURRENT).unwrap();
        let dirs = TargetDirs::open(&t).unwrap();
        assert_eq!(dirs.current().as_deref(), Some("v2"));
        let v1 = dirs.version("v1").unwrap();
        assert!(v1.path().ends_with("v1"));
        assert_eq!(read(&v1.path().join("cert.pem")), "cert.pem v1");
        assert_eq!(read(&tmp.path().join("d/cert.pem")), "cert.pem v2");
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
