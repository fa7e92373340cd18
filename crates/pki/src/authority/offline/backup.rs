//! A CA directory in one file, and back: `backup` copies a live CA (other `pki` processes may
//! be issuing) into a tar archive, `restore` unpacks one into a new directory and checks it.
//!
//! The inventory is copied with `VACUUM INTO`, a consistent snapshot taken in one read
//! transaction; copying `inventory.db` and its `-wal` as files could catch a commit half-way.
//! The keys are copied as they are on disk: encrypted unless the CA was made without a
//! passphrase. A manifest holds each file's SHA-256 and the number of certificates, and a
//! restore refuses an archive that does not match it.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files;
use super::inventory::Inventory;
use crate::cert::Certificate;
use crate::error::{Error, IoOp, Result};
use crate::fsio;

/// The manifest's name in the archive.
pub const MANIFEST: &str = "pki-ca-backup.json";
/// Largest PEM file taken into or out of an archive.
const MAX_PEM: u64 = 1 << 20;
/// Largest inventory restored.
const MAX_INVENTORY: u64 = 16 << 30;
/// The files of a CA directory an archive holds, besides the manifest.
const PEM_FILES: [&str; 4] = [
    files::ROOT_CERT,
    files::ROOT_KEY,
    files::INTERMEDIATE_CERT,
    files::INTERMEDIATE_KEY,
];

/// What an archive holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct Manifest {
    /// The archive format (1).
    pub format: u32,
    /// When the snapshot was taken (RFC 3339).
    pub created: String,
    /// Certificates in the inventory.
    pub certificates: u64,
    /// Each file and its SHA-256 (hex).
    pub files: Vec<(String, String)>,
}

fn io(op: IoOp, path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn sha256(bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies the CA in `ca_dir` into the archive `out` (0600, written atomically), while other
/// processes may go on issuing. Returns the manifest.
pub fn backup(ca_dir: &Path, out: &Path, now: time::OffsetDateTime) -> Result<Manifest> {
    let inventory = Inventory::open(&ca_dir.join(files::INVENTORY))?;
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let snapshot = fsio::temp_path(dir, files::INVENTORY);
    let result = archive(ca_dir, &inventory, &snapshot, (out, now));
    let _ = std::fs::remove_file(&snapshot);
    result
}

fn archive(
    ca_dir: &Path,
    inventory: &Inventory,
    snapshot: &Path,
    (out, now): (&Path, time::OffsetDateTime),
) -> Result<Manifest> {
    inventory.snapshot_into(snapshot)?;
    let certificates = Inventory::open(snapshot)?.count()?;
    let mut contents = Vec::new();
    for name in PEM_FILES {
        let path = ca_dir.join(name);
        // A root key kept elsewhere (`--root-key-out`) stays out of the backup.
        if name == files::ROOT_KEY && std::fs::symlink_metadata(&path).is_err() {
            continue;
        }
        contents.push((name, fsio::read_limited(&path, MAX_PEM)?));
    }
    // The intermediates a rollover retired: they still sign CRLs.
    let mut retired = super::rollover::retired_files(ca_dir)?;
    // A staged root (a root rollover under way) too.
    retired.extend(super::root_rollover::next_files(ca_dir));
    for name in &retired {
        contents.push((
            name.as_str(),
            fsio::read_limited(&ca_dir.join(name), MAX_PEM)?,
        ));
    }
    let db = std::fs::read(snapshot).map_err(io(IoOp::Read, snapshot))?;
    contents.push((files::INVENTORY, db));
    let manifest = Manifest {
        format: 1,
        created: crate::error::Rfc3339(now).to_string(),
        certificates,
        files: contents
            .iter()
            .map(|(n, b)| ((*n).to_owned(), sha256(b)))
            .collect(),
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::InvalidArgument {
        what: "manifest",
        value: e.to_string(),
        expected: "JSON",
    })?;
    let temp = fsio::temp_path(out.parent().unwrap_or(Path::new(".")), "backup");
    let written = write_tar(&temp, &json, &contents).and_then(|()| {
        std::fs::rename(&temp, out).map_err(io(IoOp::Rename, out))?;
        fsio::sync_dir(
            out.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written.map(|()| manifest)
}

fn write_tar(path: &Path, manifest: &[u8], contents: &[(&str, Vec<u8>)]) -> Result<()> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc_nofollow())
        .open(path)
        .map_err(io(IoOp::Create, path))?;
    let mut tar = tar::Builder::new(file);
    let mut add = |name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        tar.append_data(&mut header, name, bytes)
    };
    add(MANIFEST, manifest).map_err(io(IoOp::Write, path))?;
    for (name, bytes) in contents {
        add(name, bytes).map_err(io(IoOp::Write, path))?;
    }
    let mut file = tar.into_inner().map_err(io(IoOp::Write, path))?;
    file.flush().map_err(io(IoOp::Write, path))?;
    file.sync_all().map_err(io(IoOp::Sync, path))
}

/// `O_NOFOLLOW`: a temporary name is never a link (it is created, not opened).
fn libc_nofollow() -> i32 {
    rustix::fs::OFlags::NOFOLLOW.bits() as i32
}

/// What a restore found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Restored {
    /// The manifest of the archive.
    pub manifest: Manifest,
    /// The restored root.
    pub root: Certificate,
    /// The restored intermediate.
    pub intermediate: Certificate,
}

/// Unpacks the archive `file` into `dir` (which must not exist, or be an empty directory of
/// ours that no one else may write) and checks it: every file the manifest lists with its
/// digest, nothing else, an inventory that opens with the manifest's number of certificates,
/// and an intermediate the root signed. The files are unpacked and checked in a new
/// directory beside `dir`, which becomes `dir` only once everything holds.
pub fn restore(file: &Path, dir: &Path) -> Result<Restored> {
    let existing = match std::fs::symlink_metadata(dir) {
        Ok(m) => {
            use std::os::unix::fs::MetadataExt;
            let ours = m.is_dir()
                && m.uid() == rustix::process::geteuid().as_raw()
                && m.mode() & 0o022 == 0;
            let empty = std::fs::read_dir(dir)
                .map_err(io(IoOp::Read, dir))?
                .next()
                .is_none();
            if !ours || !empty {
                return Err(Error::OutputExists {
                    path: dir.to_path_buf(),
                });
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(io(IoOp::Read, dir)(e)),
    };
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staging = fsio::temp_path(parent, "restore");
    fsio::create_dir(&staging, 0o700)?;
    let restored = unpack(file, &staging);
    let placed = restored.and_then(|r| {
        if existing {
            std::fs::remove_dir(dir).map_err(io(IoOp::Remove, dir))?;
        }
        std::fs::rename(&staging, dir).map_err(io(IoOp::Rename, dir))?;
        fsio::sync_dir(parent)?;
        Ok(r)
    });
    if placed.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    placed
}

fn unpack(file: &Path, dir: &Path) -> Result<Restored> {
    let refuse = |problem: String| Error::InvalidArgument {
        what: "CA backup",
        value: format!("{}: {problem}", file.display()),
        expected: "an archive written by `pki ca backup`",
    };
    let archive = std::fs::File::open(file).map_err(io(IoOp::Read, file))?;
    let mut tar = tar::Archive::new(archive);
    let mut found: Vec<(String, Vec<u8>)> = Vec::new();
    for entry in tar.entries().map_err(io(IoOp::Read, file))? {
        let mut entry = entry.map_err(io(IoOp::Read, file))?;
        let name = entry
            .path()
            .map_err(io(IoOp::Read, file))?
            .to_string_lossy()
            .into_owned();
        let known = name == MANIFEST
            || name == files::INVENTORY
            || PEM_FILES.contains(&name.as_str())
            || super::rollover::is_retired_file(&name)
            || super::root_rollover::is_next_file(&name);
        if !known || entry.header().entry_type() != tar::EntryType::Regular {
            return Err(refuse(format!("unexpected entry {name:?}")));
        }
        let limit = if name == files::INVENTORY {
            MAX_INVENTORY
        } else {
            MAX_PEM
        };
        if entry.size() > limit || found.iter().any(|(n, _)| *n == name) {
            return Err(refuse(format!("entry {name:?} is too large or repeated")));
        }
        // The header's size is not trusted for the allocation.
        let mut bytes = Vec::with_capacity(entry.size().min(MAX_PEM) as usize);
        entry
            .by_ref()
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(io(IoOp::Read, file))?;
        found.push((name, bytes));
    }
    let manifest_bytes = found
        .iter()
        .find(|(n, _)| n == MANIFEST)
        .map(|(_, b)| b.clone())
        .ok_or_else(|| refuse("no manifest".to_owned()))?;
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| refuse(format!("unreadable manifest: {e}")))?;
    for required in [
        files::ROOT_CERT,
        files::INTERMEDIATE_CERT,
        files::INTERMEDIATE_KEY,
        files::INVENTORY,
    ] {
        if !manifest.files.iter().any(|(n, _)| n == required) {
            return Err(refuse(format!("{required} is not in the archive")));
        }
    }
    for (name, digest) in &manifest.files {
        let bytes = found
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b)
            .ok_or_else(|| refuse(format!("{name} is missing")))?;
        if sha256(bytes) != *digest {
            return Err(refuse(format!("{name} does not match its digest")));
        }
        let public = (name.ends_with(".pem") && !name.ends_with(".key.pem"))
            || name.ends_with(".retired")
            || name.ends_with("/activate");
        if super::rollover::is_retired_file(name) {
            fsio::create_dir(&dir.join(super::rollover::RETIRED_DIR), 0o700)?;
        }
        if super::root_rollover::is_next_file(name) {
            fsio::create_dir(&dir.join(super::root_rollover::NEXT_DIR), 0o700)?;
        }
        write_new(&dir.join(name), bytes, if public { 0o644 } else { 0o600 })?;
    }
    fsio::sync_dir(dir)?;
    let count = Inventory::open(&dir.join(files::INVENTORY))?.count()?;
    if count != manifest.certificates {
        return Err(refuse(format!(
            "the inventory holds {count} certificates, the manifest {}",
            manifest.certificates
        )));
    }
    let read = |name: &str| -> Result<Certificate> {
        let path: PathBuf = dir.join(name);
        Certificate::from_pem(
            &fsio::read_limited(&path, MAX_PEM)?,
            &path.display().to_string(),
        )
    };
    let (root, intermediate) = (read(files::ROOT_CERT)?, read(files::INTERMEDIATE_CERT)?);
    if !intermediate.is_signed_by(&root) {
        return Err(refuse(
            "the intermediate is not signed by the root".to_owned(),
        ));
    }
    Ok(Restored {
        manifest,
        root,
        intermediate,
    })
}

/// Writes a new file (never through a link, never over one) and syncs it.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc_nofollow())
        .open(path)
        .map_err(io(IoOp::Create, path))?;
    f.write_all(bytes).map_err(io(IoOp::Write, path))?;
    f.sync_all().map_err(io(IoOp::Sync, path))
}
