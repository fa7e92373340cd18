//! Deploy targets: render the files a service expects, switch them in atomically, make the
//! service load them, prove it serves them, and roll back when it does not.
//!
//! Every target keeps its own versioned directory next to its first file, and the configured
//! paths are symlinks into its `current` version:
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
//! version is one rename away for rollback. The run state records, per target, the last version
//! a probe proved to be served (or, without a probe, that was activated): a run killed between
//! switch and reload leaves `current` ahead of that record, and the next run finishes the job.
//! Files that were in place before the first deployment are kept as an `adopted` version, so
//! even that deployment can be rolled back.

pub mod haproxy;
pub mod redis;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use pki::fsio::{self, Durability, FileMode, StagedFile};
use pki::{Certificate, IssuedCertificate, SecretString, bundle};
use zeroize::Zeroizing;

use crate::config::{CertificateConfig, Content, TargetConfig, TargetKind};
use crate::error::{Error, Result};
use crate::probe::{self, Served};
use crate::store::{CURRENT, link_name};

/// Version id given to files found in place before the first deployment.
pub const ADOPTED: &str = "adopted";

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// The versioned directory of a target (beside its first file; a target has at least one).
pub fn versions_dir(target: &TargetConfig) -> PathBuf {
    let Some(first) = target.files.first().map(|f| f.path.as_path()) else {
        return PathBuf::from(".pki");
    };
    let dir = first.parent().unwrap_or(Path::new("/"));
    dir.join(".pki").join(basename(first))
}

/// A target's version of a store version: the store id and a digest of how the target renders
/// it (paths, contents, modes, owners, alias). A changed target configuration is a new version,
/// written beside the one in service instead of over it.
pub fn version_id(target: &TargetConfig, store_version: &str) -> String {
    let mut described = format!(
        "{:?}|{:o}|{:o}|{:?}|{:?}|{}",
        target.kind, target.key_mode, target.cert_mode, target.uid, target.gid, target.alias
    );
    for f in &target.files {
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
pub fn dir_stamps(target: &TargetConfig) -> Option<Vec<crate::state::Stamp>> {
    Some(vec![
        crate::state::stamp(files_dir(target)?)?,
        crate::state::stamp_followed(&versions_dir(target).join(CURRENT))?,
    ])
}

/// Refuses a target whose versioned directory another user could redirect: `.pki` and the
/// target's directory in it must be real directories of ours that no one else can write, and
/// so must the directory holding them (whoever can rename entries there can swap `.pki` for a
/// link to anywhere, and root would write keys there).
fn check_dirs(target: &TargetConfig) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let versions = versions_dir(target);
    let pki_dir = versions.parent().unwrap_or(Path::new("."));
    let holder = pki_dir.parent().unwrap_or(Path::new("/"));
    let me = nix::unistd::geteuid().as_raw();
    let unsafe_dir = |path: &Path, reason: String| Error::UnsafeDirectory {
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
            return Err(unsafe_dir(dir, "it is a symbolic link".to_owned()));
        }
        if !meta.is_dir() {
            return Err(unsafe_dir(dir, "it is not a directory".to_owned()));
        }
        if meta.uid() != me && meta.uid() != 0 {
            return Err(unsafe_dir(
                dir,
                format!(
                    "it belongs to uid {}, who could redirect where keys are written; keep \
                     certificate files in a directory owned by root",
                    meta.uid()
                ),
            ));
        }
        // Sticky directories (/tmp) still let others create the name first.
        if meta.mode() & 0o022 != 0 {
            return Err(unsafe_dir(
                dir,
                format!(
                    "its mode {:04o} lets other users write to it",
                    meta.mode() & 0o7777
                ),
            ));
        }
    }
    Ok(())
}

fn basename(path: &Path) -> String {
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
pub enum Sync {
    /// Deployed and verified.
    InSync,
    /// Needs a deployment; why.
    Stale(String),
}

/// The one directory holding all of a target's files, if they share one.
pub fn files_dir(target: &TargetConfig) -> Option<&Path> {
    let first = target.files.first()?.path.parent()?;
    target
        .files
        .iter()
        .all(|f| f.path.parent() == Some(first))
        .then_some(first)
}

/// Compares a target's deployed version, what the run state says was last verified there, and
/// its links with the store's version. While the directories of its files and versions have not
/// changed since the verification, the links are not read again.
pub fn state(
    target: &TargetConfig,
    store_version: &str,
    mark: Option<&crate::state::TargetMark>,
) -> Sync {
    let versions = versions_dir(target);
    let want = version_id(target, store_version);
    // Two stats: unchanged since the mark, `current` still resolves to the marked version.
    if let Some(mark) = mark.filter(|m| m.version == want && m.dirs.is_some())
        && dir_stamps(target) == mark.dirs
    {
        return Sync::InSync;
    }
    let current = link_name(&versions.join(CURRENT));
    if current.as_deref() != Some(want.as_str()) {
        return Sync::Stale(match current {
            None => "never deployed".to_owned(),
            Some(c) if c.starts_with(store_version) => {
                format!("its configuration changed since version {c} was deployed")
            }
            Some(c) => format!("serves version {c}, the store has {store_version}"),
        });
    }
    if mark.filter(|m| m.version == want).is_none() {
        return Sync::Stale("deployed but not verified (interrupted run?)".to_owned());
    }
    // The version directory is written whole before `current` points at it.
    let dir = versions.join(&want);
    if !dir.is_dir() {
        return Sync::Stale(format!(
            "version {want} is missing from {}",
            versions.display()
        ));
    }
    for f in &target.files {
        if !fs::symlink_metadata(dir.join(basename(&f.path))).is_ok_and(|m| m.is_file()) {
            return Sync::Stale(format!(
                "{} is missing from version {want}",
                basename(&f.path)
            ));
        }
    }
    for f in &target.files {
        if fs::read_link(&f.path).ok() != Some(link_target(target, &f.path)) {
            return Sync::Stale(format!("{} is not the managed link", f.path.display()));
        }
    }
    Sync::InSync
}

/// A rendered file: its name in the version directory, bytes, and mode.
struct Rendered {
    name: String,
    bytes: Zeroizing<Vec<u8>>,
    mode: FileMode,
}

fn render(target: &TargetConfig, material: &IssuedCertificate) -> Result<Vec<Rendered>> {
    let mut out = Vec::new();
    for f in &target.files {
        let bytes: Zeroizing<Vec<u8>> = match f.content {
            Content::Cert => Zeroizing::new(material.certificate.pem().into_bytes()),
            Content::Key => Zeroizing::new(bundle::key_pem(material)?.expose().as_bytes().to_vec()),
            Content::Chain => Zeroizing::new(bundle::chain_pem(material).into_bytes()),
            Content::Fullchain => Zeroizing::new(bundle::fullchain_pem(material).into_bytes()),
            Content::Ca => match &material.root {
                Some(r) => Zeroizing::new(r.pem().into_bytes()),
                None => Zeroizing::new(bundle::chain_pem(material).into_bytes()),
            },
            Content::Combined => {
                Zeroizing::new(bundle::combined_pem(material)?.expose().as_bytes().to_vec())
            }
            Content::Pkcs12 => {
                let password = keystore_password(target)?;
                Zeroizing::new(
                    bundle::pkcs12(material, &password, &target.alias)?
                        .expose()
                        .to_vec(),
                )
            }
        };
        let mode = if f.content.is_secret() {
            target.key_mode
        } else {
            target.cert_mode
        };
        out.push(Rendered {
            name: basename(&f.path),
            bytes,
            mode: FileMode {
                mode,
                uid: target.uid,
                gid: target.gid,
            },
        });
    }
    Ok(out)
}

fn keystore_password(target: &TargetConfig) -> Result<SecretString> {
    let path = target
        .keystore_password_file
        .as_deref()
        .ok_or(pki::Error::InvalidRequest(
            "a PKCS#12 keystore needs password_file",
        ))?;
    Ok(fsio::read_secret_file(path)?)
}

/// Writes version `id` of a target (the whole directory appears at once, or not at all). The
/// version in service is reused (it was made durable before it was switched to); any other
/// directory of that id is the leftover of an interrupted run, possibly never flushed to disk,
/// and is written again.
fn stage(
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
        fs::remove_dir_all(&final_dir)
            .map_err(io("cannot remove unfinished version", &final_dir))?;
    }
    // Service users must be able to traverse to their files: directories are 0755, files keep
    // their own (private) modes.
    fsio::create_dir(&versions, 0o755)?;
    let staging = fsio::temp_path(&versions, id);
    fsio::create_dir(&staging, 0o755)?;
    fs::set_permissions(&staging, fs::Permissions::from_mode(0o755))
        .map_err(io("cannot set the mode of", &staging))?;
    let written = (|| {
        let staged = files
            .iter()
            .map(|f| StagedFile::create(&staging.join(&f.name), &f.bytes, f.mode))
            .collect::<pki::Result<Vec<_>>>()?;
        fsio::commit_all_with(staged, durability)?;
        fs::rename(&staging, &final_dir).map_err(io("cannot move into place", &final_dir))?;
        fsio::sync_dir_with(&versions, durability)?;
        Ok(())
    })();
    if written.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    written
}

/// Files found where the target writes, from before the first deployment, become the version
/// `adopted`, so that the first deployment can be rolled back to them.
fn adopt(target: &TargetConfig, durability: Durability) -> Result<Option<String>> {
    let versions = versions_dir(target);
    if link_name(&versions.join(CURRENT)).is_some() {
        return Ok(link_name(&versions.join(CURRENT)));
    }
    let existing: Vec<_> = target
        .files
        .iter()
        .filter(|f| fs::symlink_metadata(&f.path).is_ok_and(|m| m.is_file()))
        .collect();
    if existing.len() != target.files.len() {
        // Nothing (or only part) to fall back to: a first deployment with nothing to restore.
        return Ok(None);
    }
    let mut files = Vec::new();
    for f in existing {
        let meta = fs::metadata(&f.path).map_err(io("cannot read", &f.path))?;
        let bytes = Zeroizing::new(fsio::read_limited(&f.path, 64 << 20)?);
        files.push(Rendered {
            name: basename(&f.path),
            bytes,
            mode: FileMode {
                mode: meta.permissions().mode() & 0o7777,
                uid: Some(std::os::unix::fs::MetadataExt::uid(&meta)),
                gid: Some(std::os::unix::fs::MetadataExt::gid(&meta)),
            },
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

/// Points `current` at `id` and makes every configured path the managed symlink.
fn switch(target: &TargetConfig, id: &str, durability: Durability) -> Result<()> {
    let versions = versions_dir(target);
    fsio::replace_symlink(&versions.join(CURRENT), Path::new(id))?;
    fsio::sync_dir_with(&versions, durability)?;
    let mut dirs: Vec<PathBuf> = Vec::new();
    for f in &target.files {
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
    for f in &target.files {
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
        fs::remove_dir_all(&path).map_err(io("cannot remove old version", &path))?;
    }
    Ok(())
}

/// The certificate a version of a target holds (for probing after a rollback).
fn version_leaf(target: &TargetConfig, id: &str) -> Option<Certificate> {
    let dir = versions_dir(target).join(id);
    target.files.iter().find_map(|f| match f.content {
        Content::Cert | Content::Fullchain | Content::Combined => {
            let p = dir.join(basename(&f.path));
            fsio::read_limited(&p, fsio::MAX_PEM_INPUT)
                .ok()
                .and_then(|t| Certificate::from_pem(&t, "deployed").ok())
        }
        _ => None,
    })
}

/// The combined PEM a version holds (HAProxy rollback through the runtime API).
fn version_combined(target: &TargetConfig, id: &str) -> Option<String> {
    let path = target.path_of(Content::Combined)?;
    let p = versions_dir(target).join(id).join(basename(path));
    fsio::read_limited(&p, fsio::MAX_PEM_INPUT)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

/// The SNI name a probe sends.
pub fn server_name(cert: &CertificateConfig, target: &TargetConfig) -> String {
    if let Some(n) = target.probe.as_ref().and_then(|p| p.server_name.clone()) {
        return n;
    }
    let dns = cert.names.iter().find_map(|n| match n {
        pki::SubjectName::Dns(d) if !d.starts_with('*') => Some(d.clone()),
        _ => None,
    });
    dns.unwrap_or_else(|| {
        target
            .probe
            .as_ref()
            .and_then(|p| {
                p.address
                    .rsplit_once(':')
                    .map(|(h, _)| h.trim_matches(['[', ']']).to_owned())
            })
            .unwrap_or_else(|| "localhost".to_owned())
    })
}

/// What happened to one target.
#[derive(Debug)]
pub enum Outcome {
    /// The new version is served (or activated, for targets without a probe).
    Deployed {
        /// What the probe saw, if there is a probe.
        served: Option<Box<Served>>,
    },
    /// It failed; the previous version was restored (`rollback` says whether that worked).
    Failed {
        /// Why the deployment failed.
        error: Error,
        /// The rollback's outcome (what was restored): `None` when there was nothing to roll
        /// back to.
        rollback: Option<Result<String>>,
    },
}

/// Runs the target's test command (nginx -t) against what `current` now points at. HAProxy's
/// test runs only before a reload fallback (the runtime API checks the payload itself).
async fn check(target: &TargetConfig, env: &[(&str, String)]) -> Result<()> {
    match (&target.test_command, target.kind) {
        (Some(test), kind) if kind != TargetKind::Haproxy => {
            crate::exec::run(test, env, target.command_timeout).await?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Makes the service load what `current` points at: HAProxy's runtime API (with a reload as
/// fallback), Redis's CONFIG SET, or the reload command.
async fn load(target: &TargetConfig, combined: Option<&str>, env: &[(&str, String)]) -> Result<()> {
    match target.kind {
        TargetKind::Haproxy => {
            let mut hot = Err(Error::ServiceRefused {
                service: "HAProxy".to_owned(),
                reply: "no runtime API socket configured".to_owned(),
            });
            if let (Some(socket), Some(pem), Some(path)) =
                (&target.socket, combined, target.path_of(Content::Combined))
            {
                hot = haproxy::hot_update(socket, path, pem).await;
            }
            if let Err(e) = hot {
                // Fall back to a reload, which reads the new file from disk.
                let Some(reload) = &target.reload_command else {
                    return Err(e);
                };
                if let Some(test) = &target.test_command {
                    crate::exec::run(test, env, target.command_timeout).await?;
                }
                crate::exec::run(reload, env, target.command_timeout).await?;
            }
        }
        TargetKind::Redis => {
            let socket = target
                .socket
                .as_deref()
                .ok_or(pki::Error::InvalidRequest("redis needs a socket"))?;
            let password = target
                .password_file
                .as_deref()
                .map(fsio::read_secret_file)
                .transpose()?;
            let cert_path = target.path_of(Content::Fullchain).unwrap_or(Path::new(""));
            let key_path = target.path_of(Content::Key).unwrap_or(Path::new(""));
            redis::reload(
                socket,
                password,
                cert_path,
                key_path,
                target.path_of(Content::Ca),
            )
            .await?;
        }
        _ => {
            if let Some(reload) = &target.reload_command {
                crate::exec::run(reload, env, target.command_timeout).await?;
            }
        }
    }
    Ok(())
}

/// Proves with a probe that the service serves `leaf` (nothing to prove without a probe).
async fn prove(
    cert: &CertificateConfig,
    target: &TargetConfig,
    leaf: Option<&Certificate>,
) -> Result<Option<Served>> {
    match (&target.probe, leaf) {
        (Some(p), Some(leaf)) => Ok(Some(
            probe::expect(p, &server_name(cert, target), leaf).await?,
        )),
        _ => Ok(None),
    }
}

fn hook_env(
    cert: &CertificateConfig,
    target: &TargetConfig,
    material: &IssuedCertificate,
) -> Vec<(&'static str, String)> {
    let info = material.certificate.info();
    vec![
        ("PKI_CERT_NAME", cert.name.clone()),
        ("PKI_SERIAL", info.serial.to_hex()),
        (
            "PKI_NOT_AFTER",
            pki::error::Rfc3339(info.not_after).to_string(),
        ),
        (
            "PKI_FILES",
            target
                .files
                .iter()
                .map(|f| f.path.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
        ),
    ]
}

/// A version written into a target's directory, not yet switched in.
#[derive(Debug, Clone)]
pub struct Prepared {
    id: String,
    previous: Option<String>,
    /// Files found in place were adopted as the version `adopted` (now verified as served).
    pub adopted: bool,
}

impl Prepared {
    /// The version prepared.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// Renders and writes the target's version of store version `store_version` (adopting files
/// found in place on a first deployment). Nothing the service reads changes yet.
pub fn prepare(
    target: &TargetConfig,
    store_version: &str,
    material: &IssuedCertificate,
    durability: Durability,
    verified: Option<&str>,
) -> Result<Prepared> {
    if target.files.is_empty() {
        return Err(pki::Error::InvalidRequest("a target needs at least one file").into());
    }
    check_dirs(target)?;
    let id = version_id(target, store_version);
    let versions = versions_dir(target);
    let had_current = link_name(&versions.join(CURRENT)).is_some();
    // `adopt` returns the version in place: the adopted files, or the current version.
    let in_place = adopt(target, durability)?;
    let adopted_now = !had_current && in_place.is_some();
    // Roll back to what was last proven served; a version switched to by a run that was
    // killed before verifying it is not a safe place to return to. Without any record (a
    // first deployment, or a lost state file) the version in place is the best there is.
    let previous = verified
        .map(str::to_owned)
        .or(in_place)
        .filter(|p| *p != id && versions.join(p).is_dir());
    stage(target, &id, render(target, material)?, durability)?;
    Ok(Prepared {
        id,
        previous,
        adopted: adopted_now,
    })
}

/// Switches a prepared version in, tests, reloads or hot-swaps, and probes; on any failure
/// switches back to the previous version, has the service load it again and checks that it is
/// served. A deferred batch must be synced between [`prepare`] and this.
pub async fn activate(
    cert: &CertificateConfig,
    target: &TargetConfig,
    prepared: &Prepared,
    material: &IssuedCertificate,
    durability: Durability,
) -> Outcome {
    let id = prepared.id.as_str();
    let env = hook_env(cert, target, material);
    let env_refs: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.clone())).collect();
    let combined = version_combined(target, id);
    // Whether the service was asked to load the new files: a rollback then asks it to load
    // the previous ones; a failure before that needs only the files switched back.
    let mut loaded = false;
    let attempt = async {
        switch(target, id, durability)?;
        check(target, &env_refs).await?;
        loaded = true;
        load(target, combined.as_deref(), &env_refs).await?;
        prove(cert, target, Some(&material.certificate)).await
    }
    .await;
    match attempt {
        Ok(served) => match prune(target, Some(id)) {
            Ok(()) => Outcome::Deployed {
                served: served.map(Box::new),
            },
            Err(error) => Outcome::Failed {
                error,
                rollback: None,
            },
        },
        Err(error) => {
            let rollback = match &prepared.previous {
                Some(prev) => Some(roll_back(cert, target, prev, loaded, &env_refs).await),
                None => None,
            };
            Outcome::Failed { error, rollback }
        }
    }
}

/// Switches back to `previous`, makes the service load it again if it was asked to load the
/// new version, and proves the previous certificate is served. Returns what was restored.
async fn roll_back(
    cert: &CertificateConfig,
    target: &TargetConfig,
    previous: &str,
    loaded: bool,
    env: &[(&str, String)],
) -> Result<String> {
    switch(target, previous, Durability::Immediate)?;
    let reload = if loaded {
        load(target, version_combined(target, previous).as_deref(), env).await
    } else {
        Ok(())
    };
    let leaf = version_leaf(target, previous);
    // The probe decides: a reload command that fails again (it failed once already) does not
    // matter if the service still serves the previous certificate.
    match (prove(cert, target, leaf.as_ref()).await?, reload) {
        (Some(served), Ok(())) => Ok(format!(
            "previous certificate restored and served ({})",
            served.describe()
        )),
        (Some(served), Err(e)) => Ok(format!(
            "previous files restored; reloading them failed too ({e}), but the service still serves \
             the previous certificate ({})",
            served.describe()
        )),
        (None, Ok(())) => Ok("previous files restored".to_owned()),
        (None, Err(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OutputFile;

    fn target(paths: &[(&str, Content)]) -> TargetConfig {
        TargetConfig {
            kind: TargetKind::Files,
            files: paths
                .iter()
                .map(|(p, c)| OutputFile {
                    path: PathBuf::from(p),
                    content: *c,
                })
                .collect(),
            uid: None,
            gid: None,
            key_mode: 0o600,
            cert_mode: 0o644,
            test_command: None,
            reload_command: None,
            command_timeout: time::Duration::seconds(5),
            socket: None,
            password_file: None,
            keystore_password_file: None,
            alias: "x".into(),
            probe: None,
            line: 1,
        }
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
}
