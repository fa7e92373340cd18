//! Atomic, durable file output and bounded file input.
//!
//! A file is written as a temporary file in the same directory, created with its final mode
//! (so a private key is never readable by anyone else, not even for a moment), given its owner
//! and group, filled, fsync'd, renamed over the target, and the directory is fsync'd so the
//! rename survives a power cut. A failure at any step removes the temporary file. Temporary
//! files carry [`TEMP_PREFIX`] so that a run interrupted by `kill -9` can be cleaned up later.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, IoOp, Result};

pub mod dir;

/// Whether a symbolic link at the end of a path is followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Links {
    /// What the link points to is used.
    Follow,
    /// A link is not followed: it is refused (opening) or looked at itself (`stat`).
    Refuse,
}
mod read;

pub use dir::{Dir, Owners};
pub use read::{read_key_file, read_limited, read_private, read_secret_file};

/// Prefix of every temporary file this crate creates.
pub const TEMP_PREFIX: &str = ".pki-tmp-";

/// Largest certificate, key, CSR or chain file read (1 MiB): far above any real one, far below
/// what would hurt if someone points us at `/dev/zero` or a disk image.
pub const MAX_PEM_INPUT: u64 = 1 << 20;

/// Mode, owner and group of a file to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileMode {
    /// Permission bits, e.g. `0o600`.
    pub mode: u32,
    /// Owner uid; `None` keeps the writing process's.
    pub uid: Option<u32>,
    /// Group gid; `None` keeps the writing process's.
    pub gid: Option<u32>,
}

impl FileMode {
    /// Owner read/write only, for private keys.
    pub const PRIVATE: Self = Self::new(0o600);
    /// World-readable, for certificates.
    pub const PUBLIC: Self = Self::new(0o644);

    /// A mode with the process's own owner and group.
    pub const fn new(mode: u32) -> Self {
        Self {
            mode,
            uid: None,
            gid: None,
        }
    }

    /// A mode with this owner and group (`None` keeps the process's).
    pub const fn owned(mode: u32, uid: Option<u32>, gid: Option<u32>) -> Self {
        Self { mode, uid, gid }
    }
}

fn io_err(op: IoOp, path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// When written data reaches the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// Every file and directory is fsync'd as it is written: the default.
    #[default]
    Immediate,
    /// Nothing is fsync'd; the caller makes a whole batch durable with [`sync_filesystems`]
    /// before it publishes any of it (a thousand certificates: two syncfs calls instead of
    /// twenty thousand fsyncs).
    Deferred,
}

/// Writes `contents` to `path` atomically and durably with the given mode and owner.
pub fn write_atomic(path: &Path, contents: &[u8], mode: FileMode) -> Result<()> {
    commit_all(vec![StagedFile::create(path, contents, mode)?])
}

/// Makes staged files durable and moves them into place, in order, then syncs their
/// directories. All contents are flushed before the first rename, so no target ever names a
/// file whose data could be lost.
pub fn commit_all(staged: Vec<StagedFile>) -> Result<()> {
    commit_all_with(staged, Durability::Immediate)
}

/// [`commit_all`], with the fsyncs left to the caller when `durability` is deferred.
pub fn commit_all_with(staged: Vec<StagedFile>, durability: Durability) -> Result<()> {
    let mut staged = staged;
    if durability == Durability::Immediate {
        sync_together(&mut staged)?;
    }
    for file in &mut staged {
        file.file = None;
    }
    let mut dirs: Vec<PathBuf> = Vec::new();
    for file in staged {
        let dir = parent_of(&file.target).to_path_buf();
        file.commit()?;
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs.iter().try_for_each(|d| sync_dir_with(d, durability))
}

/// Makes the files' data durable before any of them is renamed into place: one `syncfs` per
/// file system they are on, instead of an fsync each (each of which, on ext4, waits for its
/// own journal commit or device flush). `syncfs` reports the write errors of the file system
/// since the descriptor it is given was opened, and each file was opened before it was
/// written.
fn sync_together(staged: &mut [StagedFile]) -> Result<()> {
    if staged.len() < 2 {
        return staged.iter_mut().try_for_each(StagedFile::sync);
    }
    let mut done: Vec<u64> = Vec::new();
    for f in staged.iter() {
        let Some(file) = &f.file else { continue };
        let dev = file.metadata().map_err(io_err(IoOp::Sync, &f.temp))?.dev();
        if !done.contains(&dev) {
            nix::unistd::syncfs(file).map_err(|e| Error::Io {
                op: IoOp::Sync,
                path: f.temp.clone(),
                source: io::Error::from(e),
            })?;
            done.push(dev);
        }
    }
    Ok(())
}

/// Fsyncs a directory, unless durability is deferred.
pub fn sync_dir_with(dir: &Path, durability: Durability) -> Result<()> {
    match durability {
        Durability::Immediate => sync_dir(dir),
        Durability::Deferred => Ok(()),
    }
}

/// Flushes every file system holding one of `paths` (once each, `syncfs(2)`): the end of a
/// deferred batch.
pub fn sync_filesystems(paths: &[PathBuf]) -> Result<()> {
    let mut done: Vec<u64> = Vec::new();
    for p in paths {
        // Whatever sits at the path (a FIFO, a device) opens at once and is never read: only
        // its file system matters.
        let f = match OpenOptions::new()
            .read(true)
            .custom_flags(nix_flags::O_NONBLOCK | nix_flags::O_CLOEXEC)
            .open(p)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(IoOp::Sync, p)(e)),
        };
        let meta = f.metadata().map_err(io_err(IoOp::Sync, p))?;
        if done.contains(&meta.dev()) {
            continue;
        }
        nix::unistd::syncfs(&f).map_err(|e| Error::Io {
            op: IoOp::Sync,
            path: p.clone(),
            source: io::Error::from(e),
        })?;
        done.push(meta.dev());
    }
    Ok(())
}

/// A file written in full under a temporary name next to its target, waiting for
/// [`commit_all`]. Dropping it uncommitted removes the temporary file.
#[derive(Debug)]
pub struct StagedFile {
    temp: PathBuf,
    target: PathBuf,
    file: Option<File>,
    committed: bool,
}

impl StagedFile {
    /// Writes `contents` to a fresh temporary file beside `target`, with its final mode and
    /// owner. The data is flushed to disk by [`commit_all`].
    pub fn create(target: &Path, contents: &[u8], mode: FileMode) -> Result<Self> {
        let dir = parent_of(target);
        let name = target.file_name().ok_or_else(|| Error::Io {
            op: IoOp::Write,
            path: target.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a file path"),
        })?;
        let temp = temp_path(dir, &name.to_string_lossy());
        let mut staged = Self {
            temp,
            target: target.to_path_buf(),
            file: None,
            committed: false,
        };
        // `staged` removes the temporary file if anything below fails.
        staged.fill(contents, mode)?;
        Ok(staged)
    }

    fn fill(&mut self, contents: &[u8], mode: FileMode) -> Result<()> {
        let path = self.temp.clone();
        // Created owner-only (never 0666 & ~umask): a key file is not readable by anyone else
        // for a single moment. The final mode is applied once the owner is right.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix_flags::O_NOFOLLOW | nix_flags::O_CLOEXEC)
            .open(&path)
            .map_err(io_err(IoOp::Create, &path))?;
        if mode.uid.is_some() || mode.gid.is_some() {
            std::os::unix::fs::fchown(&file, mode.uid, mode.gid)
                .map_err(io_err(IoOp::Chown, &path))?;
        }
        // The umask may have removed bits the target needs (0644 under umask 077); chmod sets
        // exactly the mode asked for, after the owner is right.
        file.set_permissions(fs::Permissions::from_mode(mode.mode))
            .map_err(io_err(IoOp::Chmod, &path))?;
        file.write_all(contents)
            .map_err(io_err(IoOp::Write, &path))?;
        self.file = Some(file);
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        // Once flushed, the descriptor is closed; there is nothing left to flush.
        match self.file.take() {
            Some(f) => f.sync_all().map_err(io_err(IoOp::Sync, &self.temp)),
            None => Ok(()),
        }
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes the data and renames the temporary file over the target. The caller syncs the
    /// directory afterwards (see [`commit_all`], which does both for a set of files).
    pub fn commit(mut self) -> Result<()> {
        self.sync()?;
        fs::rename(&self.temp, &self.target).map_err(io_err(IoOp::Rename, &self.target))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Bits for `open(2)` that std does not name.
mod nix_flags {
    pub(super) const O_NOFOLLOW: i32 = nix::fcntl::OFlag::O_NOFOLLOW.bits();
    pub(super) const O_CLOEXEC: i32 = nix::fcntl::OFlag::O_CLOEXEC.bits();
    pub(super) const O_NONBLOCK: i32 = nix::fcntl::OFlag::O_NONBLOCK.bits();
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A temporary name in `dir` for `name`: `<TEMP_PREFIX><name>.<pid>.<random>`, the pattern
/// [`remove_stale_temps`] recognises (it removes the entry once that pid is gone).
pub fn temp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(temp_name(name))
}

/// A temporary name for `name`: `<TEMP_PREFIX><name>.<pid>.<random>` (see [`temp_path`]).
pub fn temp_name(name: &str) -> String {
    format!(
        "{TEMP_PREFIX}{name}.{}.{}",
        std::process::id(),
        random_suffix()
    )
}

pub(crate) fn random_suffix() -> String {
    let mut bytes = [0u8; 6];
    // A weak suffix only risks a create_new collision, which is reported, never a clobber.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    crate::cert::hex(&bytes, "")
}

/// Points the symlink `link` at `target`, atomically: a new link is made under a temporary name
/// and renamed over `link`, so a reader finds either the old target or the new one, never
/// nothing. The caller syncs the directory.
pub fn replace_symlink(link: &Path, target: &Path) -> Result<()> {
    let name = link.file_name().ok_or_else(|| Error::Io {
        op: IoOp::Write,
        path: link.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "not a file path"),
    })?;
    let temp = temp_path(parent_of(link), &name.to_string_lossy());
    std::os::unix::fs::symlink(target, &temp).map_err(io_err(IoOp::Create, &temp))?;
    if let Err(e) = fs::rename(&temp, link) {
        let _ = fs::remove_file(&temp);
        return Err(io_err(IoOp::Rename, link)(e));
    }
    Ok(())
}

/// Fsyncs a directory.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(IoOp::Sync, dir))
}

/// Creates a directory and any missing parents, each with `mode` (less the umask). An existing
/// directory is left as it is.
pub fn create_dir(path: &Path, mode: u32) -> Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(io_err(IoOp::CreateDir, path))
}

/// Sets the mode of `path` (a directory the caller just made or checked).
pub fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err(IoOp::Chmod, path))
}

/// Removes temporary files left in `dir` by a process that was killed mid-write. Only files
/// with [`TEMP_PREFIX`] whose writer process is gone are removed (see [`temp_path`]).
pub fn remove_stale_temps(dir: &Path) -> Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(IoOp::Read, dir)(e)),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
            continue;
        };
        if writer_alive(rest) {
            continue;
        }
        let path = entry.path();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let result = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        match result {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(IoOp::Remove, &path)(e)),
        }
    }
    Ok(removed)
}

/// Temporary names end in `.<pid>.<random>`; the writer is alive when that pid exists and is
/// not us (our own leftovers are by definition abandoned).
pub(crate) fn writer_alive(rest: &str) -> bool {
    let mut parts = rest.rsplit('.');
    let _random = parts.next();
    let Some(pid) = parts.next().and_then(|p| p.parse::<i32>().ok()) else {
        return false;
    };
    if pid == std::process::id() as i32 {
        return false;
    }
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncing_the_file_system_of_a_fifo_never_waits_on_it() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let started = std::time::Instant::now();
        sync_filesystems(&[fifo, tmp.path().join("missing"), tmp.path().to_path_buf()]).unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn writes_with_mode_and_no_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        write_atomic(&key, b"secret", FileMode::PRIVATE).unwrap();
        assert_eq!(fs::read(&key).unwrap(), b"secret");
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let cert = dir.path().join("cert.pem");
        write_atomic(&cert, b"public", FileMode::PUBLIC).unwrap();
        assert_eq!(
            fs::metadata(&cert).unwrap().permissions().mode() & 0o777,
            0o644
        );
        write_atomic(&key, b"secret2", FileMode::PRIVATE).unwrap();
        assert_eq!(fs::read(&key).unwrap(), b"secret2");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn dropped_stage_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("x");
        drop(StagedFile::create(&target, b"x", FileMode::PUBLIC).unwrap());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn read_limited_refuses_big_and_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big");
        write_atomic(&big, &vec![b'a'; 2000], FileMode::PUBLIC).unwrap();
        assert!(matches!(
            read_limited(&big, 1000),
            Err(Error::InputTooLarge { .. })
        ));
        assert!(read_limited(&big, 2000).is_ok());
        assert!(read_limited(dir.path(), 10).is_err());
    }

    #[test]
    fn stale_temps_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let stale = dir
            .path()
            .join(format!("{TEMP_PREFIX}cert.pem.999999999.abcd"));
        File::create(&stale).unwrap();
        File::create(dir.path().join("cert.pem")).unwrap();
        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 1);
        assert!(!stale.exists());
    }
}
