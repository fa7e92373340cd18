//! Reading files the way a root process must: opened once, without blocking (a FIFO or a
//! device never hangs the reader), checked on the descriptor (a regular file, its owner and
//! mode) and read from that same descriptor, never past a size limit. What is checked is what
//! is read: there is no window between a `stat` and an `open` for a swap.

use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, FileType, Mode, OFlags};
use rustix::io::Errno;
use zeroize::Zeroizing;

use super::dir::{Entry, Owners};
use crate::error::{Access, Error, IoOp, Result, Unsafe};
use crate::secret::SecretString;

/// Largest secret file read (a token, a passphrase, a password).
const MAX_SECRET: u64 = 64 * 1024;

use super::Links;

fn open(path: &Path, links: Links) -> Result<OwnedFd> {
    let mut flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC;
    if links == Links::Refuse {
        flags |= OFlags::NOFOLLOW;
    }
    rfs::open(path, flags, Mode::empty()).map_err(|e| match e {
        Errno::LOOP if links == Links::Refuse => Error::UnsafePath {
            path: path.to_path_buf(),
            access: Access::Read,
            reason: Unsafe::Symlink,
        },
        e => Error::Io {
            op: IoOp::Read,
            path: path.to_path_buf(),
            source: io::Error::from(e),
        },
    })
}

/// Reads an open descriptor: a regular file of at most `limit` bytes, into a buffer that is
/// wiped when dropped (the file may hold a key).
pub(crate) fn read_fd(fd: OwnedFd, path: &Path, limit: u64) -> Result<(Zeroizing<Vec<u8>>, Entry)> {
    let st = rfs::fstat(&fd).map_err(|e| Error::Io {
        op: IoOp::Read,
        path: path.to_path_buf(),
        source: io::Error::from(e),
    })?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(Error::UnsafePath {
            path: path.to_path_buf(),
            access: Access::Read,
            reason: Unsafe::NotARegularFile,
        });
    }
    let entry = entry_of(&st);
    if entry.size > limit {
        return Err(Error::InputTooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    // Sized once from the file's size: growing would leave copies of key material behind.
    let capacity = usize::try_from(entry.size.min(limit)).unwrap_or(0) + 1;
    let mut data = Zeroizing::new(Vec::with_capacity(capacity));
    // The size may have grown since fstat: the bound holds while reading too.
    std::fs::File::from(fd)
        .take(limit + 1)
        .read_to_end(&mut data)
        .map_err(|e| Error::Io {
            op: IoOp::Read,
            path: path.to_path_buf(),
            source: e,
        })?;
    if data.len() as u64 > limit {
        return Err(Error::InputTooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok((data, entry))
}

fn entry_of(st: &rfs::Stat) -> Entry {
    // The one constructor lives in `dir`; a stat of a file says the same things.
    super::dir::entry_of_stat(st)
}

/// Reads a file an operator names (a certificate to inspect, a CSR, a CA bundle): a symbolic
/// link at the end is followed, but it must lead to a regular file of at most `limit` bytes.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>> {
    let (data, _) = read_fd(open(path, Links::Follow)?, path, limit)?;
    Ok(data.to_vec())
}

/// Reads a file the product keeps (a config, a key, the state): not through a link, a regular
/// file of at most `limit` bytes.
pub fn read_private(path: &Path, limit: u64) -> Result<(Zeroizing<Vec<u8>>, Entry)> {
    read_fd(open(path, Links::Refuse)?, path, limit)
}

/// Reads a file that holds a secret (passphrase, token, password): not through a link, a
/// regular file owned by the running user, that group and others may neither read nor write.
pub fn read_secret_file(path: &Path) -> Result<SecretString> {
    let (bytes, entry) = read_private(path, MAX_SECRET)?;
    check_secret(path, &entry)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| Error::Io {
        op: IoOp::Read,
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"),
    })?;
    Ok(SecretString::from_file_content(text.to_owned()))
}

/// The rule for a secret file, on what its descriptor says: private to its owner, who is us.
fn check_secret(path: &Path, entry: &Entry) -> Result<()> {
    if entry.mode & 0o077 != 0 {
        return Err(Error::InsecurePermissions {
            path: path.to_path_buf(),
            mode: entry.mode & 0o777,
        });
    }
    let me = Owners::running().uid;
    if entry.uid != me {
        return Err(Error::UnsafePath {
            path: PathBuf::from(path),
            access: Access::Read,
            reason: Unsafe::Owner(entry.uid),
        });
    }
    Ok(())
}

/// Reads a private key file: not through a link, a regular file of at most
/// [`super::MAX_PEM_INPUT`] bytes, owned by the running user and that group and others may
/// neither read nor write (as OpenSSH and PostgreSQL refuse loose private keys). The checks
/// are made on the descriptor that is read.
pub fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let (bytes, entry) = read_private(path, super::MAX_PEM_INPUT)?;
    check_secret(path, &entry)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    #[test]
    fn a_secret_file_must_be_a_private_regular_file_of_ours() {
        let tmp = tempfile::tempdir().unwrap();
        let secret = tmp.path().join("token");
        crate::fsio::write_atomic(&secret, b"s3cr3t\n", crate::fsio::FileMode::PRIVATE).unwrap();
        assert_eq!(read_secret_file(&secret).unwrap().expose(), "s3cr3t");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            read_secret_file(&secret),
            Err(Error::InsecurePermissions { mode: 0o640, .. })
        ));
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = tmp.path().join("link");
        symlink(&secret, &link).unwrap();
        assert!(matches!(
            read_secret_file(&link),
            Err(Error::UnsafePath {
                reason: Unsafe::Symlink,
                ..
            })
        ));
        // A link an operator names for a public input is followed.
        assert_eq!(read_limited(&link, 100).unwrap(), b"s3cr3t\n");
    }

    #[test]
    fn a_fifo_where_a_secret_should_be_fails_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        for e in [
            read_secret_file(&fifo).map(|_| ()).unwrap_err(),
            read_limited(&fifo, 10).map(|_| ()).unwrap_err(),
        ] {
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
        }
        assert!(matches!(
            read_limited(Path::new("/dev/zero"), 1000),
            Err(Error::UnsafePath {
                reason: Unsafe::NotARegularFile,
                ..
            })
        ));
    }
}
