//! Directories reached without following a symbolic link, and the file operations done
//! relative to them.
//!
//! A root process that writes keys into directories other users can touch must not be
//! redirected: a link planted in the path, or a directory swapped for one between a check and
//! its use, would make it write, chmod or delete anywhere. [`Dir::open`] walks a path from `/`
//! one component at a time (`openat` with `O_NOFOLLOW | O_DIRECTORY`) and checks each one the
//! way OpenSSH's StrictModes does: a directory owned by root or the running user, that no one
//! else may write to. The one exception is a root-owned sticky directory such as `/tmp`, whose
//! other users cannot rename or remove what is not theirs; the next component must then be
//! ours. The directory reached must not be writable by anyone else at all. Every later
//! operation (create, rename, link, unlink, read, list, chmod) is relative to the descriptor
//! kept, so swapping a path component afterwards changes nothing.

use std::ffi::OsString;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use zeroize::Zeroizing;

use super::{FileMode, TEMP_PREFIX, temp_name};
use crate::error::{Access, Error, IoOp, Result, Unsafe};

/// Who may own the directories on a checked path besides root: the running user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Owners {
    /// The uid besides root.
    pub uid: u32,
}

impl Owners {
    /// Root and the user this process runs as.
    pub fn running() -> Self {
        Self {
            uid: rustix::process::geteuid().as_raw(),
        }
    }

    /// Whether `uid` may own a directory (or a file) we trust.
    pub fn allows(self, uid: u32) -> bool {
        uid == 0 || uid == self.uid
    }
}

/// What a directory entry is, without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// Anything else (FIFO, socket, device).
    Other,
}

impl Kind {
    fn of(t: FileType) -> Self {
        match t {
            FileType::RegularFile => Self::File,
            FileType::Directory => Self::Dir,
            FileType::Symlink => Self::Symlink,
            _ => Self::Other,
        }
    }
}

/// What `stat` says of an entry, without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entry {
    /// What it is.
    pub kind: Kind,
    /// Permission bits (with set-id and sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Inode.
    pub ino: u64,
    /// Change time, seconds and nanoseconds.
    pub ctime: (i64, i64),
}

/// What a `stat` says, as an [`Entry`].
pub(crate) fn entry_of_stat(st: &rfs::Stat) -> Entry {
    Entry::of(st)
}

impl Entry {
    /// What `std::fs` metadata says, as an entry.
    pub fn of_metadata(m: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        let t = m.file_type();
        Self {
            kind: if t.is_symlink() {
                Kind::Symlink
            } else if t.is_file() {
                Kind::File
            } else if t.is_dir() {
                Kind::Dir
            } else {
                Kind::Other
            },
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            size: m.size(),
            ino: m.ino(),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    fn of(st: &rfs::Stat) -> Self {
        Self {
            kind: Kind::of(FileType::from_raw_mode(st.st_mode)),
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: u64::try_from(st.st_size).unwrap_or(0),
            ino: st.st_ino,
            ctime: (st.st_ctime, i64::try_from(st.st_ctime_nsec).unwrap_or(0)),
        }
    }
}

/// Where a directory stands on a checked path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// On the way: it may be a root-owned sticky directory such as `/tmp`.
    Passed,
    /// The directory worked in: no one else may write to it.
    Worked,
}

/// An open directory whose path from `/` was checked.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
    owners: Owners,
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

fn unsafe_at(path: &Path, access: Access, reason: Unsafe) -> Error {
    Error::UnsafePath {
        path: path.to_path_buf(),
        access,
        reason,
    }
}

fn io_at(op: IoOp, path: &Path) -> impl FnOnce(Errno) -> Error + '_ {
    move |e| Error::Io {
        op,
        path: path.to_path_buf(),
        source: io::Error::from(e),
    }
}

/// A file name as the kernel takes it: one component, no slash, not `.` or `..`.
fn component(name: &str) -> Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(Error::Io {
            op: IoOp::Create,
            path: PathBuf::from(name),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
        });
    }
    Ok(name)
}

/// `path` made absolute against the working directory, without `.` and `..` (lexically: the
/// walk never goes through a link, so there is no link for `..` to leave).
fn absolute(path: &Path) -> Result<PathBuf> {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::Io {
                op: IoOp::Read,
                path: PathBuf::from("."),
                source: e,
            })?
            .join(path)
    };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}

/// How many base directories each thread keeps open for [`stat_below`].
const BASES: usize = 4;

thread_local! {
    static OPEN_BASES: std::cell::RefCell<Vec<(PathBuf, OwnedFd)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// What `stat` says of `base/rel` (a last link followed or not), looked up from `base`
/// opened once per thread (the last few are kept, until [`forget_bases`]): statting many
/// paths below one directory then walks it once instead of once per path. For planning only:
/// like a `stat` by path, it follows links on the way and checks nothing.
pub fn stat_below(base: &Path, rel: &Path, links: super::Links) -> Option<Entry> {
    let flags = match links {
        super::Links::Follow => AtFlags::empty(),
        super::Links::Refuse => AtFlags::SYMLINK_NOFOLLOW,
    };
    OPEN_BASES.with_borrow_mut(|bases| {
        let at = match bases.iter().position(|(p, _)| p == base) {
            Some(i) => i,
            None => {
                let path = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
                let fd = rfs::open(base, path, Mode::empty()).ok()?;
                bases.insert(0, (base.to_path_buf(), fd));
                bases.truncate(BASES);
                0
            }
        };
        rfs::statat(&bases[at].1, rel, flags)
            .ok()
            .map(|st| Entry::of(&st))
    })
}

/// Closes the directories [`stat_below`] keeps open on this thread.
pub fn forget_bases() {
    OPEN_BASES.with_borrow_mut(Vec::clear);
}

/// The directories the last walk went through, kept while a [`WalkCache`] lives.
struct Chain {
    users: usize,
    dirs: Vec<Dir>,
}

static CHAIN: Mutex<Chain> = Mutex::new(Chain {
    users: 0,
    dirs: Vec::new(),
});

/// While a value of this type lives, [`Dir::open`] and [`Dir::create`] start from the
/// directories the previous walk checked, as far as the two paths agree, instead of from `/`:
/// a run that writes beside a thousand certificates walks their common parents once. Only
/// root or the running user can change a directory that passed the check, so what was
/// checked holds until the cache is dropped; keep it for one run, not for the life of a
/// long-running process.
#[derive(Debug)]
#[must_use = "the cache lives as long as this value"]
pub struct WalkCache(());

impl WalkCache {
    /// Starts caching walks (nested caches share one; the last dropped clears it).
    pub fn start() -> Self {
        CHAIN.lock().unwrap_or_else(PoisonError::into_inner).users += 1;
        Self(())
    }
}

impl Drop for WalkCache {
    fn drop(&mut self) {
        let mut chain = CHAIN.lock().unwrap_or_else(PoisonError::into_inner);
        chain.users = chain.users.saturating_sub(1);
        if chain.users == 0 {
            chain.dirs.clear();
        }
    }
}

impl Dir {
    /// Opens `path`, checking every directory from `/` (see the module documentation).
    pub fn open(path: &Path, owners: Owners) -> Result<Self> {
        Self::walk(path, owners, None)
    }

    /// Opens `path` like [`Dir::open`], creating what is missing with `mode` (set with
    /// `fchmod`, whatever the umask).
    pub fn create(path: &Path, mode: u32, owners: Owners) -> Result<Self> {
        Self::walk(path, owners, Some(mode))
    }

    /// Checks `path` and every directory above it as places to pass through (a root-owned
    /// sticky directory such as `/tmp` passes): for the nearest existing parent of a
    /// directory still to be made, which [`Dir::create`] will check as its own.
    pub fn check_passage(path: &Path, owners: Owners) -> Result<()> {
        Self::walk_to(path, owners, None, Place::Passed).map(drop)
    }

    fn walk(path: &Path, owners: Owners, create: Option<u32>) -> Result<Self> {
        Self::walk_to(path, owners, create, Place::Worked)
    }

    fn walk_to(path: &Path, owners: Owners, create: Option<u32>, end: Place) -> Result<Self> {
        let path = absolute(path)?;
        let access = if create.is_some() {
            Access::Write
        } else {
            Access::Read
        };
        let names: Vec<OsString> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                _ => None,
            })
            .collect();
        let mut chain = CHAIN.lock().unwrap_or_else(PoisonError::into_inner);
        let mut fresh = Vec::new();
        let caching = chain.users > 0;
        let walked = if caching { &mut chain.dirs } else { &mut fresh };
        // Keep what the last walk checked on the way to this one (a directory checked as the
        // end of a walk passes as a step too; the end is checked again below).
        let kept = walked
            .iter()
            .zip(
                std::iter::once(Path::new("/").to_path_buf()).chain(names.iter().scan(
                    PathBuf::from("/"),
                    |p, n| {
                        p.push(n);
                        Some(p.clone())
                    },
                )),
            )
            .take_while(|(d, p)| d.path == *p && d.owners == owners)
            .count();
        walked.truncate(kept);
        if walked.is_empty() {
            let root = Path::new("/");
            let fd = rfs::open(root, DIR_FLAGS, Mode::empty()).map_err(io_at(IoOp::Read, root))?;
            let dir = Self {
                fd,
                path: PathBuf::from("/"),
                owners,
            };
            dir.check(access, Place::Passed)?;
            walked.push(dir);
        }
        for name in &names[walked.len() - 1..] {
            let Some(last) = walked.last() else { break };
            let next = last.step(name, create, access)?;
            next.check(access, Place::Passed)?;
            walked.push(next);
        }
        let Some(last) = walked.last() else {
            return Err(unsafe_at(&path, access, Unsafe::NotADirectory));
        };
        last.check(access, end)?;
        if caching {
            let fd = last.fd.try_clone().map_err(|e| Error::Io {
                op: IoOp::Read,
                path: last.path.clone(),
                source: e,
            })?;
            return Ok(Self {
                fd,
                path: last.path.clone(),
                owners,
            });
        }
        fresh
            .pop()
            .ok_or_else(|| unsafe_at(&path, access, Unsafe::NotADirectory))
    }

    /// One step down, creating the directory when asked and missing.
    fn step(&self, name: &OsString, create: Option<u32>, access: Access) -> Result<Self> {
        let path = self.path.join(name);
        let opened = match rfs::openat(&self.fd, name.as_os_str(), DIR_FLAGS, Mode::empty()) {
            Err(Errno::NOENT) if create.is_some() => {
                let mode = create.unwrap_or(0o700);
                match rfs::mkdirat(&self.fd, name.as_os_str(), Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(io_at(IoOp::CreateDir, &path)(e)),
                }
                let fd = rfs::openat(&self.fd, name.as_os_str(), DIR_FLAGS, Mode::empty());
                if let Ok(fd) = &fd {
                    rfs::fchmod(fd, Mode::from_raw_mode(mode))
                        .map_err(io_at(IoOp::Chmod, &path))?;
                }
                fd
            }
            other => other,
        };
        let fd = opened.map_err(|e| match e {
            // With O_DIRECTORY, a link is "not a directory": say which it is.
            Errno::LOOP | Errno::NOTDIR => {
                let link = rfs::statat(&self.fd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                    .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink);
                let reason = if link {
                    Unsafe::Symlink
                } else {
                    Unsafe::NotADirectory
                };
                unsafe_at(&path, access, reason)
            }
            e => io_at(IoOp::Read, &path)(e),
        })?;
        Ok(Self {
            fd,
            path,
            owners: self.owners,
        })
    }

    /// The StrictModes rule for one component.
    fn check(&self, access: Access, place: Place) -> Result<()> {
        let st = rfs::fstat(&self.fd).map_err(io_at(IoOp::Read, &self.path))?;
        let mode = st.st_mode & 0o7777;
        if !self.owners.allows(st.st_uid) {
            return Err(unsafe_at(&self.path, access, Unsafe::Owner(st.st_uid)));
        }
        let shared = mode & 0o022 != 0;
        let sticky_root = mode & 0o1000 != 0 && st.st_uid == 0;
        if shared && (place == Place::Worked || !sticky_root) {
            return Err(unsafe_at(&self.path, access, Unsafe::Writable(mode)));
        }
        Ok(())
    }

    /// The directory's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A subdirectory, checked like every component.
    pub fn sub(&self, name: &str) -> Result<Self> {
        let sub = self.step(&OsString::from(component(name)?), None, Access::Read)?;
        sub.check(Access::Read, Place::Worked)?;
        Ok(sub)
    }

    /// A subdirectory, created with `mode` when missing; its mode is set to `mode` either way.
    pub fn create_sub(&self, name: &str, mode: u32) -> Result<Self> {
        let sub = self.step(&OsString::from(component(name)?), Some(mode), Access::Write)?;
        rfs::fchmod(&sub.fd, Mode::from_raw_mode(mode)).map_err(io_at(IoOp::Chmod, &sub.path))?;
        sub.check(Access::Write, Place::Worked)?;
        Ok(sub)
    }

    /// Sets the directory's own mode.
    pub fn chmod(&self, mode: u32) -> Result<()> {
        rfs::fchmod(&self.fd, Mode::from_raw_mode(mode)).map_err(io_at(IoOp::Chmod, &self.path))
    }

    /// What `name` is, without following it; `None` when it does not exist.
    pub fn entry(&self, name: &str) -> Result<Option<Entry>> {
        match rfs::statat(&self.fd, component(name)?, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Entry::of(&st))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(io_at(IoOp::Read, &self.path.join(name))(e)),
        }
    }

    /// The target of the symbolic link `name`; `None` when it is absent or not a link.
    pub fn read_link(&self, name: &str) -> Option<PathBuf> {
        let target = rfs::readlinkat(&self.fd, component(name).ok()?, Vec::new()).ok()?;
        Some(PathBuf::from(OsString::from_vec(target.into_bytes())))
    }

    /// The entries of the directory, `.` and `..` left out.
    pub fn entries(&self) -> Result<Vec<(String, Kind)>> {
        let mut reader = rfs::Dir::read_from(&self.fd).map_err(io_at(IoOp::Read, &self.path))?;
        let mut out = Vec::new();
        while let Some(entry) = reader.read() {
            let entry = entry.map_err(io_at(IoOp::Read, &self.path))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            out.push((
                String::from_utf8_lossy(name).into_owned(),
                Kind::of(entry.file_type()),
            ));
        }
        Ok(out)
    }

    /// Reads the regular file `name` (never through a link, never blocking on a FIFO or a
    /// device), at most `limit` bytes.
    pub fn read_file(&self, name: &str, limit: u64) -> Result<(Zeroizing<Vec<u8>>, Entry)> {
        let path = self.path.join(name);
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd =
            rfs::openat(&self.fd, component(name)?, flags, Mode::empty()).map_err(|e| match e {
                Errno::LOOP => unsafe_at(&path, Access::Read, Unsafe::Symlink),
                e => io_at(IoOp::Read, &path)(e),
            })?;
        super::read::read_fd(fd, &path, limit)
    }

    /// Opens the regular file `name` for reading and writing, creating it (with `mode`) when
    /// missing; never through a link. For lock files.
    pub fn open_file(&self, name: &str, mode: u32) -> Result<std::fs::File> {
        let path = self.path.join(name);
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rfs::openat(&self.fd, component(name)?, flags, Mode::from_raw_mode(mode))
            .map_err(|e| match e {
                Errno::LOOP => unsafe_at(&path, Access::Write, Unsafe::Symlink),
                e => io_at(IoOp::Create, &path)(e),
            })?;
        let st = rfs::fstat(&fd).map_err(io_at(IoOp::Read, &path))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(unsafe_at(&path, Access::Write, Unsafe::NotARegularFile));
        }
        if !self.owners.allows(st.st_uid) {
            return Err(unsafe_at(&path, Access::Write, Unsafe::Owner(st.st_uid)));
        }
        Ok(std::fs::File::from(fd))
    }

    /// Writes `contents` under a fresh temporary name in this directory, with its final mode
    /// and owner; [`Staged::commit`] renames it to `name`.
    pub fn stage(&self, name: &str, contents: &[u8], mode: FileMode) -> Result<Staged<'_>> {
        let temp = temp_name(component(name)?);
        let temp_path = self.path.join(&temp);
        // Created owner-only: a key is readable by no one else, not even for a moment.
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rfs::openat(&self.fd, temp.as_str(), flags, Mode::from_raw_mode(0o600))
            .map_err(io_at(IoOp::Create, &temp_path))?;
        let mut staged = Staged {
            dir: self,
            temp,
            name: name.to_owned(),
            file: Some(std::fs::File::from(fd)),
            committed: false,
        };
        staged.fill(contents, mode)?;
        Ok(staged)
    }

    /// Makes `name` a symbolic link to `target`, atomically (a new link under a temporary name
    /// renamed over it).
    pub fn replace_symlink(&self, name: &str, target: &Path) -> Result<()> {
        let temp = temp_name(component(name)?);
        let temp_path = self.path.join(&temp);
        rfs::symlinkat(target.as_os_str(), &self.fd, temp.as_str())
            .map_err(io_at(IoOp::Create, &temp_path))?;
        if let Err(e) = rfs::renameat(&self.fd, temp.as_str(), &self.fd, name) {
            let _ = rfs::unlinkat(&self.fd, temp.as_str(), AtFlags::empty());
            return Err(io_at(IoOp::Rename, &self.path.join(name))(e));
        }
        Ok(())
    }

    /// Writes `contents` into the file `name` in place, keeping its inode (created when
    /// missing), with its final mode and owner: for reusing the files of a version directory
    /// that nothing reads any more, so that a rotation frees and allocates no inodes (which
    /// costs dearly on ext4 without a journal, whose allocator skips recently freed inodes).
    /// Anything but a regular file with a single link is replaced by a new file.
    pub fn rewrite(&self, name: &str, contents: &[u8], mode: FileMode) -> Result<Rewritten> {
        let path = self.path.join(name);
        let flags = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let reusable = match rfs::openat(&self.fd, component(name)?, flags, Mode::empty()) {
            Ok(fd) => {
                let st = rfs::fstat(&fd).map_err(io_at(IoOp::Read, &path))?;
                (FileType::from_raw_mode(st.st_mode) == FileType::RegularFile && st.st_nlink == 1)
                    .then_some((fd, Some(Entry::of(&st))))
            }
            Err(Errno::NOENT) => None,
            // A link or something that cannot be opened for writing: replaced below.
            Err(Errno::LOOP | Errno::NXIO | Errno::ISDIR | Errno::OPNOTSUPP) => None,
            Err(e) => return Err(io_at(IoOp::Write, &path)(e)),
        };
        let (fd, was) = match reusable {
            Some(found) => found,
            None => {
                match self.entry(name)? {
                    Some(e) if e.kind == Kind::Dir => self.remove_tree(name)?,
                    Some(_) => self.remove_file(name)?,
                    None => {}
                }
                let create = flags | OFlags::CREATE | OFlags::EXCL;
                let fd = rfs::openat(&self.fd, name, create, Mode::from_raw_mode(0o600))
                    .map_err(io_at(IoOp::Create, &path))?;
                (fd, None)
            }
        };
        let mut file = std::fs::File::from(fd);
        // Owner and mode are set only when they differ: each change is an inode update.
        let settled = was.is_some_and(|e| {
            e.mode == mode.mode
                && mode.uid.is_none_or(|u| u == e.uid)
                && mode.gid.is_none_or(|g| g == e.gid)
        });
        if settled {
            write_all(&mut file, &path, contents)?;
        } else {
            fill(&mut file, &path, contents, mode)?;
        }
        let len = u64::try_from(contents.len()).unwrap_or(u64::MAX);
        if was.is_some_and(|e| e.size > len) {
            rfs::ftruncate(&file, len).map_err(io_at(IoOp::Write, &path))?;
        }
        Ok(Rewritten { file, path })
    }

    /// Swaps the names `a` and `b` atomically (`renameat2` with `RENAME_EXCHANGE`): each then
    /// names what the other did, and no reader ever finds either missing.
    pub fn exchange(&self, a: &str, b: &str) -> Result<()> {
        rfs::renameat_with(
            &self.fd,
            component(a)?,
            &self.fd,
            component(b)?,
            rfs::RenameFlags::EXCHANGE,
        )
        .map_err(io_at(IoOp::Rename, &self.path.join(b)))
    }

    /// Makes `to` a second name (a hard link) of the file `from`, replacing what `to` named,
    /// atomically; `from` is not followed if it is a link.
    pub fn link_over(&self, from: &str, to: &str) -> Result<()> {
        let temp = temp_name(component(to)?);
        rfs::linkat(
            &self.fd,
            component(from)?,
            &self.fd,
            temp.as_str(),
            AtFlags::empty(),
        )
        .map_err(io_at(IoOp::Create, &self.path.join(&temp)))?;
        let renamed = rfs::renameat(&self.fd, temp.as_str(), &self.fd, to);
        // Renaming a name onto another name of the same file changes nothing: the temporary
        // name stays and goes here (as it does when the rename failed).
        let _ = rfs::unlinkat(&self.fd, temp.as_str(), AtFlags::empty());
        renamed.map_err(io_at(IoOp::Rename, &self.path.join(to)))
    }

    /// Renames `from` to `to` within this directory.
    pub fn rename(&self, from: &str, to: &str) -> Result<()> {
        rfs::renameat(&self.fd, component(from)?, &self.fd, component(to)?)
            .map_err(io_at(IoOp::Rename, &self.path.join(to)))
    }

    /// Removes the file or link `name` (absent is fine).
    pub fn remove_file(&self, name: &str) -> Result<()> {
        match rfs::unlinkat(&self.fd, component(name)?, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(io_at(IoOp::Remove, &self.path.join(name))(e)),
        }
    }

    /// Removes the directory `name` and everything in it, never following a link: a link is
    /// removed, not what it points to (absent is fine).
    pub fn remove_tree(&self, name: &str) -> Result<()> {
        let sub = match rfs::openat(&self.fd, component(name)?, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => Self {
                fd,
                path: self.path.join(name),
                owners: self.owners,
            },
            Err(Errno::NOENT) => return Ok(()),
            Err(Errno::LOOP | Errno::NOTDIR) => return self.remove_file(name),
            Err(e) => return Err(io_at(IoOp::Remove, &self.path.join(name))(e)),
        };
        for (entry, kind) in sub.entries()? {
            match kind {
                Kind::Dir => sub.remove_tree(&entry)?,
                _ => sub.remove_file(&entry)?,
            }
        }
        match rfs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(io_at(IoOp::Remove, &sub.path)(e)),
        }
    }

    /// Flushes the directory's entries (renames, new names) to disk.
    pub fn sync(&self) -> Result<()> {
        rfs::fsync(&self.fd).map_err(io_at(IoOp::Sync, &self.path))
    }

    /// Flushes the whole file system the directory is on (`syncfs(2)`).
    pub fn sync_filesystem(&self) -> Result<()> {
        rfs::syncfs(&self.fd).map_err(io_at(IoOp::Sync, &self.path))
    }

    /// Removes temporary entries a killed writer left here (see [`super::remove_stale_temps`]).
    pub fn remove_stale_temps(&self) -> Result<usize> {
        let mut removed = 0;
        for (name, kind) in self.entries()? {
            let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
                continue;
            };
            if super::writer_alive(rest) {
                continue;
            }
            match kind {
                Kind::Dir => self.remove_tree(&name)?,
                _ => self.remove_file(&name)?,
            }
            removed += 1;
        }
        Ok(removed)
    }
}

/// A file written in full under a temporary name in a [`Dir`], waiting to be renamed into
/// place. Dropping it uncommitted removes the temporary file.
#[derive(Debug)]
pub struct Staged<'a> {
    dir: &'a Dir,
    temp: String,
    name: String,
    file: Option<std::fs::File>,
    committed: bool,
}

/// Gives an open file its owner and mode, then writes `contents` from where it stands.
fn fill(file: &mut std::fs::File, path: &Path, contents: &[u8], mode: FileMode) -> Result<()> {
    if mode.uid.is_some() || mode.gid.is_some() {
        rfs::fchown(
            &*file,
            mode.uid.map(rustix::fs::Uid::from_raw),
            mode.gid.map(rustix::fs::Gid::from_raw),
        )
        .map_err(io_at(IoOp::Chown, path))?;
    }
    // After the owner: the umask may have removed bits the file needs, and a chown clears
    // set-id bits.
    rfs::fchmod(&*file, Mode::from_raw_mode(mode.mode)).map_err(io_at(IoOp::Chmod, path))?;
    write_all(file, path, contents)
}

fn write_all(file: &mut std::fs::File, path: &Path, contents: &[u8]) -> Result<()> {
    file.write_all(contents).map_err(|e| Error::Io {
        op: IoOp::Write,
        path: path.to_path_buf(),
        source: e,
    })
}

/// A file [`Dir::rewrite`] wrote in place.
#[derive(Debug)]
pub struct Rewritten {
    file: std::fs::File,
    path: PathBuf,
}

impl Rewritten {
    /// Flushes the data to disk now (a deferred batch calls `syncfs` instead).
    pub fn sync(&self) -> Result<()> {
        self.file.sync_all().map_err(|e| Error::Io {
            op: IoOp::Sync,
            path: self.path.clone(),
            source: e,
        })
    }
}

impl Staged<'_> {
    fn fill(&mut self, contents: &[u8], mode: FileMode) -> Result<()> {
        let path = self.dir.path.join(&self.temp);
        match self.file.as_mut() {
            Some(file) => fill(file, &path, contents, mode),
            None => Ok(()),
        }
    }

    /// Flushes the data to disk now (a deferred batch calls `syncfs` instead).
    pub fn sync(&mut self) -> Result<()> {
        match &self.file {
            Some(f) => f.sync_all().map_err(|e| Error::Io {
                op: IoOp::Sync,
                path: self.dir.path.join(&self.temp),
                source: e,
            }),
            None => Ok(()),
        }
    }

    /// Renames the file into place (the caller syncs the directory).
    pub fn commit(mut self) -> Result<()> {
        self.file = None;
        self.dir.rename(&self.temp, &self.name)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staged<'_> {
    fn drop(&mut self) {
        if !self.committed {
            let _ = self.dir.remove_file(&self.temp);
        }
    }
}

/// Reads from a descriptor to its end (helper for tests of what was written).
#[cfg(test)]
fn read_all(mut f: std::fs::File) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = io::Read::read_to_end(&mut f, &mut v);
    v
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // fixtures written directly
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    fn private_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    #[test]
    fn a_link_anywhere_on_the_path_is_refused() {
        let tmp = private_dir();
        std::fs::create_dir(tmp.path().join("real")).unwrap();
        symlink(tmp.path().join("real"), tmp.path().join("link")).unwrap();
        let e = Dir::open(&tmp.path().join("link/x"), Owners::running()).unwrap_err();
        assert!(
            matches!(&e, Error::UnsafePath { reason: Unsafe::Symlink, path, .. } if path.ends_with("link")),
            "{e}"
        );
        assert!(Dir::open(&tmp.path().join("real"), Owners::running()).is_ok());
    }

    #[test]
    fn a_directory_others_may_write_is_refused_unless_sticky_above_ours() {
        let tmp = private_dir();
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = Dir::create(&shared.join("mine"), 0o755, Owners::running()).unwrap_err();
        assert!(
            matches!(
                e,
                Error::UnsafePath {
                    reason: Unsafe::Writable(0o777),
                    ..
                }
            ),
            "{e}"
        );
        // /tmp itself (root-owned, sticky) is a fine place to pass through when we are root.
        if rustix::process::geteuid().is_root() {
            std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
            assert!(Dir::create(&shared.join("mine"), 0o755, Owners::running()).is_ok());
            assert!(
                Dir::open(&shared, Owners::running()).is_err(),
                "worked in itself"
            );
        }
    }

    #[test]
    fn created_directories_get_their_mode_whatever_the_umask() {
        let tmp = private_dir();
        let d = Dir::create(&tmp.path().join("a/b"), 0o755, Owners::running()).unwrap();
        for p in [tmp.path().join("a"), tmp.path().join("a/b")] {
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, 0o755, "{}", p.display());
        }
        let sub = d.create_sub("c", 0o700).unwrap();
        assert!(sub.path().ends_with("a/b/c"));
    }

    #[test]
    fn files_are_staged_renamed_and_removed_relative_to_the_directory() {
        let tmp = private_dir();
        let d = Dir::create(&tmp.path().join("w"), 0o755, Owners::running()).unwrap();
        d.stage("key.pem", b"secret", FileMode::PRIVATE)
            .unwrap()
            .commit()
            .unwrap();
        let meta = std::fs::metadata(tmp.path().join("w/key.pem")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let f = std::fs::File::open(tmp.path().join("w/key.pem")).unwrap();
        assert_eq!(read_all(f), b"secret");
        drop(d.stage("dropped", b"x", FileMode::PUBLIC).unwrap());
        let names: Vec<_> = d.entries().unwrap().into_iter().map(|e| e.0).collect();
        assert_eq!(names, ["key.pem"]);
        d.replace_symlink("link", Path::new("key.pem")).unwrap();
        assert_eq!(d.read_link("link").unwrap(), Path::new("key.pem"));
        assert_eq!(d.entry("link").unwrap().unwrap().kind, Kind::Symlink);
    }

    #[test]
    fn a_rewrite_keeps_the_inode_unless_the_file_has_other_names() {
        use std::os::unix::fs::MetadataExt;
        let tmp = private_dir();
        let d = Dir::create(&tmp.path().join("w"), 0o755, Owners::running()).unwrap();
        let path = tmp.path().join("w/f");
        d.rewrite("f", b"a longer first text", FileMode::PUBLIC)
            .unwrap();
        let ino = std::fs::metadata(&path).unwrap().ino();
        d.rewrite("f", b"short", FileMode::PRIVATE)
            .unwrap()
            .sync()
            .unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.ino(), meta.mode() & 0o777), (ino, 0o600));
        assert_eq!(std::fs::read(&path).unwrap(), b"short");
        // Another name of the same file (a service user's hard link) is left as it was.
        std::fs::hard_link(&path, tmp.path().join("other")).unwrap();
        d.rewrite("f", b"new", FileMode::PRIVATE).unwrap();
        assert_ne!(std::fs::metadata(&path).unwrap().ino(), ino);
        assert_eq!(std::fs::read(tmp.path().join("other")).unwrap(), b"short");
        // A link in its place is replaced, not followed.
        symlink(tmp.path().join("other"), tmp.path().join("w/l")).unwrap();
        d.rewrite("l", b"mine", FileMode::PRIVATE).unwrap();
        assert_eq!(d.entry("l").unwrap().unwrap().kind, Kind::File);
        assert_eq!(std::fs::read(tmp.path().join("other")).unwrap(), b"short");
    }

    #[test]
    fn exchange_swaps_two_names_and_link_over_adds_a_name() {
        use std::os::unix::fs::MetadataExt;
        let tmp = private_dir();
        let d = Dir::create(&tmp.path().join("w"), 0o755, Owners::running()).unwrap();
        d.create_sub("a", 0o755)
            .unwrap()
            .rewrite("x", b"in a", FileMode::PUBLIC)
            .unwrap();
        d.rewrite("b", b"file b", FileMode::PUBLIC).unwrap();
        d.exchange("a", "b").unwrap();
        assert_eq!(d.entry("a").unwrap().unwrap().kind, Kind::File);
        assert_eq!(std::fs::read(tmp.path().join("w/b/x")).unwrap(), b"in a");
        d.link_over("a", "current").unwrap();
        // Again, onto the very same file: nothing changes and no temporary name is left.
        d.link_over("a", "current").unwrap();
        let ino = |n: &str| {
            std::fs::metadata(tmp.path().join("w").join(n))
                .unwrap()
                .ino()
        };
        assert_eq!(ino("a"), ino("current"));
        let mut names: Vec<_> = d.entries().unwrap().into_iter().map(|e| e.0).collect();
        names.sort();
        assert_eq!(names, ["a", "b", "current"]);
    }

    #[test]
    fn cached_walks_reuse_checked_parents_and_still_check_the_end() {
        let tmp = private_dir();
        let _cache = WalkCache::start();
        let a = Dir::create(&tmp.path().join("p/a"), 0o755, Owners::running()).unwrap();
        let b = Dir::create(&tmp.path().join("p/b"), 0o755, Owners::running()).unwrap();
        assert!(a.path().ends_with("p/a") && b.path().ends_with("p/b"));
        // The end of a walk is checked as such even when the chain passed it before.
        std::fs::set_permissions(tmp.path().join("p"), std::fs::Permissions::from_mode(0o777))
            .unwrap();
        assert!(Dir::open(&tmp.path().join("p"), Owners::running()).is_err());
        std::fs::set_permissions(tmp.path().join("p"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        assert!(Dir::open(&tmp.path().join("p/a"), Owners::running()).is_ok());
    }

    #[test]
    fn a_tree_is_removed_without_following_its_links() {
        let tmp = private_dir();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), b"x").unwrap();
        let d = Dir::create(&tmp.path().join("w"), 0o755, Owners::running()).unwrap();
        std::fs::create_dir_all(tmp.path().join("w/v/deeper")).unwrap();
        symlink(&outside, tmp.path().join("w/v/deeper/out")).unwrap();
        d.remove_tree("v").unwrap();
        assert!(d.entry("v").unwrap().is_none());
        assert!(outside.join("keep").exists());
    }

    #[test]
    fn a_fifo_is_refused_at_once_not_waited_for() {
        let tmp = private_dir();
        let d = Dir::open(tmp.path(), Owners::running()).unwrap();
        rustix::fs::mknodat(&d.fd, "fifo", FileType::Fifo, Mode::from_raw_mode(0o600), 0).unwrap();
        let e = d.read_file("fifo", 100).unwrap_err();
        assert!(
            matches!(
                e,
                Error::UnsafePath {
                    reason: Unsafe::NotARegularFile,
                    ..
                }
            ),
            "{e}"
        );
        symlink("/etc/passwd", tmp.path().join("link")).unwrap();
        let e = d.read_file("link", 100_000).unwrap_err();
        assert!(
            matches!(
                e,
                Error::UnsafePath {
                    reason: Unsafe::Symlink,
                    ..
                }
            ),
            "{e}"
        );
    }
}
