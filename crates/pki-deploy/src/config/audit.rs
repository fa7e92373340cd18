//! Whether a config may be run: everything it makes the hook trust must be out of other users'
//! reach. A config another user could edit, or a directory on its way they could write, is
//! code execution as root through `reload_command`; so is a program it runs that they could
//! replace, and a secret file they own could be swapped for one that hands them the token.
//!
//! The rule is OpenSSH's StrictModes, as [`pki::fsio::Dir`] applies it to every directory from
//! `/`: owned by root or the running user, not writable by group or others (a root-owned
//! sticky directory such as `/tmp` may be passed through). It holds for the config file and
//! its directory, `state_dir`, `ca_dir`, the programs of argv-form commands (found in `PATH`
//! as they will be when run) and the CA bundles that decide whom Vault or a reporter trusts.
//! Secret files (passphrase, token, secret_id, passwords) must moreover belong to the running
//! user and be private to it; so must the config itself when it holds an Uptime Kuma push URL
//! (which carries the monitor's token) instead of naming a `push_url_file`. A shell command line is run by `/bin/sh`; what it calls is the
//! operator's to keep safe.

use std::path::{Path, PathBuf};

use pki::error::Unsafe;
use pki::fsio::dir::Entry;
use pki::fsio::{Dir, Owners};

use super::{Backend, Config};
use crate::error::{Error, Result};
use crate::exec::CommandSpec;

/// What a file is trusted with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// Read for what it says (a config, a CA bundle) or run (a program).
    Content,
    /// Holds a secret: it must be ours and private too.
    Secret,
}

/// Checks that `config`, read from `file` (whose descriptor said `entry`), may be run.
pub(crate) fn audit(config: &Config, file: &Path, entry: &Entry) -> Result<()> {
    let owners = Owners::running();
    // An Uptime Kuma push URL written in the config makes the config a secret file.
    let holds_secret = config
        .report
        .uptime_kuma
        .as_ref()
        .is_some_and(|k| k.push_url.is_some());
    let trust = if holds_secret {
        Trust::Secret
    } else {
        Trust::Content
    };
    check_entry(file, entry, trust, owners)?;
    check_way(file, owners)?;
    check_dir(&config.state_dir, owners)?;
    let mut files: Vec<(&Path, Trust)> = Vec::new();
    for named in &config.backends {
        match &named.backend {
            Backend::Offline(o) => {
                check_dir(&o.ca_dir, owners)?;
                files.extend(o.passphrase_file.as_deref().map(|p| (p, Trust::Secret)));
            }
            Backend::Vault(v) => {
                files.extend(v.token_file.as_deref().map(|p| (p, Trust::Secret)));
                files.extend(v.secret_id_file.as_deref().map(|p| (p, Trust::Secret)));
                files.extend(v.role_id_file.as_deref().map(|p| (p, Trust::Content)));
                files.extend(v.ca_cert.as_deref().map(|p| (p, Trust::Content)));
                if let Some(dir) = v.ca_path.as_deref() {
                    check_dir(dir, owners)?;
                }
            }
            Backend::Acme(a) => {
                files.extend(a.ca_cert.as_deref().map(|p| (p, Trust::Content)));
                files.extend(a.eab.as_ref().map(|(_, p)| (p.as_path(), Trust::Secret)));
                // Written on the first run; once there, it holds the account key.
                if std::fs::symlink_metadata(&a.account_file).is_ok() {
                    files.push((a.account_file.as_path(), Trust::Secret));
                }
            }
        }
    }
    let report = &config.report;
    if let Some(n) = &report.ntfy {
        files.extend(n.token_file.as_deref().map(|p| (p, Trust::Secret)));
        files.extend(n.ca_cert.as_deref().map(|p| (p, Trust::Content)));
    }
    if let Some(k) = &report.uptime_kuma {
        files.extend(k.push_url_file.as_deref().map(|p| (p, Trust::Secret)));
        files.extend(k.ca_cert.as_deref().map(|p| (p, Trust::Content)));
    }
    let mut programs = Vec::new();
    for named in &config.backends {
        if let Backend::Acme(a) = &named.backend
            && let pki::authority::acme::Challenge::Dns01Hook { command } = &a.challenge
            && let Some((program_name, args)) = command.split_first()
        {
            // The dns-01 hook runs as this process: it is checked like a reload command.
            programs.extend(program(&CommandSpec::Argv {
                program: program_name.clone(),
                args: args.to_vec(),
            }));
        }
    }
    for t in config.certificates.iter().flat_map(|c| &c.targets) {
        let uses = t.ops().uses();
        files.extend(uses.secrets.into_iter().map(|p| (p, Trust::Secret)));
        programs.extend(uses.commands.into_iter().filter_map(program));
    }
    for t in &config.trust {
        programs.extend(t.reload_command.as_ref().and_then(program));
    }
    for program in &programs {
        files.push((program, Trust::Content));
    }
    for (path, trust) in files {
        check_file(path, trust, owners)?;
    }
    Ok(())
}

/// The file an argv-form command runs, looked up in `PATH` as it will be; `None` for a shell
/// line or a program not found (running it then fails, and says so).
fn program(command: &CommandSpec) -> Option<PathBuf> {
    let CommandSpec::Argv { program, .. } = command else {
        return None;
    };
    let program = Path::new(program);
    if program.is_absolute() {
        return Some(program.to_path_buf());
    }
    std::env::split_paths(&crate::exec::search_path())
        .filter(|d| d.is_absolute())
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// A directory (or, when it does not exist yet, the nearest one that does, which it will be
/// made in) and every directory above it.
fn check_dir(path: &Path, owners: Owners) -> Result<()> {
    if path.exists() {
        return Dir::open(path, owners).map(drop).map_err(refused);
    }
    match path.ancestors().find(|p| p.exists()) {
        Some(existing) => Dir::check_passage(existing, owners).map_err(refused),
        None => Ok(()),
    }
}

/// A file named by the config, and every directory on its way. A secret is read without
/// following a link, so it must not be one; a program or a CA bundle may be reached through
/// links (`/bin` is one on Debian), each then checked where it lives and where it leads.
fn check_file(path: &Path, trust: Trust, owners: Owners) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        // A missing file is the reader's error to report, with its own words.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(refused(io(path, e))),
    };
    check_way(path, owners)?;
    let real = std::fs::canonicalize(path).map_err(|e| refused(io(path, e)))?;
    let entry = if meta.is_symlink() && trust == Trust::Content {
        check_way(&real, owners)?;
        std::fs::symlink_metadata(&real).map_err(|e| refused(io(&real, e)))?
    } else {
        meta
    };
    check_entry(path, &entry_of(&entry), trust, owners)
}

/// Every directory above `path` as `stat` sees it (links followed): owned by root or us, and
/// not writable by others, except a root-owned sticky one on the way (`/tmp`).
fn check_way(path: &Path, owners: Owners) -> Result<()> {
    let dirs: Vec<&Path> = path.ancestors().skip(1).collect();
    for (i, dir) in dirs.iter().rev().enumerate() {
        let meta = std::fs::metadata(dir).map_err(|e| refused(io(dir, e)))?;
        let entry = entry_of(&meta);
        let holder = i + 1 == dirs.len();
        let reason = if !meta.is_dir() {
            Some(Unsafe::NotADirectory)
        } else if !owners.allows(entry.uid) {
            Some(Unsafe::Owner(entry.uid))
        } else if entry.mode & 0o022 != 0 && (holder || entry.mode & 0o1000 == 0 || entry.uid != 0)
        {
            Some(Unsafe::Writable(entry.mode))
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(refused(pki::Error::UnsafePath {
                path: dir.to_path_buf(),
                access: pki::error::Access::Read,
                reason,
            }));
        }
    }
    Ok(())
}

fn entry_of(meta: &std::fs::Metadata) -> Entry {
    Entry::of_metadata(meta)
}

fn io(path: &Path, source: std::io::Error) -> pki::Error {
    pki::Error::Io {
        op: pki::error::IoOp::Read,
        path: path.to_path_buf(),
        source,
    }
}

/// One file's own owner and mode (from a `stat` that did not follow a link).
fn check_entry(path: &Path, entry: &Entry, trust: Trust, owners: Owners) -> Result<()> {
    use pki::fsio::dir::Kind;
    let unsafe_for = |reason| {
        refused(pki::Error::UnsafePath {
            path: path.to_path_buf(),
            access: pki::error::Access::Read,
            reason,
        })
    };
    match entry.kind {
        Kind::File => {}
        Kind::Symlink => return Err(unsafe_for(Unsafe::Symlink)),
        _ => return Err(unsafe_for(Unsafe::NotARegularFile)),
    }
    let ours = match trust {
        Trust::Content => owners.allows(entry.uid),
        Trust::Secret => entry.uid == owners.uid,
    };
    if !ours {
        return Err(unsafe_for(Unsafe::Owner(entry.uid)));
    }
    let forbidden = match trust {
        Trust::Content => 0o022,
        Trust::Secret => 0o077,
    };
    if entry.mode & forbidden != 0 {
        return Err(unsafe_for(Unsafe::Writable(entry.mode)));
    }
    Ok(())
}

/// A failed check as the config error that stops the run (exit 2), naming the path.
fn refused(e: pki::Error) -> Error {
    let file = match &e {
        pki::Error::UnsafePath { path, .. } => path.clone(),
        pki::Error::Io { path, .. } => path.clone(),
        _ => PathBuf::new(),
    };
    Error::Config {
        file,
        line: None,
        message: format!("refusing to run this config: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{PermissionsExt, symlink};

    use super::*;

    fn private_tmp() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        tmp
    }

    #[allow(clippy::disallowed_methods)] // fixtures
    fn file(path: &Path, mode: u32) {
        std::fs::write(path, "x").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_secret_must_be_ours_and_private_and_content_not_writable_by_others() {
        let tmp = private_tmp();
        let owners = Owners::running();
        let p = tmp.path().join("token");
        file(&p, 0o600);
        assert!(check_file(&p, Trust::Secret, owners).is_ok());
        file(&p, 0o640);
        let e = check_file(&p, Trust::Secret, owners)
            .unwrap_err()
            .to_string();
        assert!(e.contains("token") && e.contains("0640"), "{e}");
        assert!(check_file(&p, Trust::Content, owners).is_ok());
        file(&p, 0o664);
        assert!(check_file(&p, Trust::Content, owners).is_err());
        let link = tmp.path().join("link");
        file(&p, 0o600);
        symlink(&p, &link).unwrap();
        let e = check_file(&link, Trust::Secret, owners)
            .unwrap_err()
            .to_string();
        assert!(e.contains("symbolic link"), "{e}");
    }

    #[test]
    fn a_directory_others_may_write_is_refused_where_it_would_be_made() {
        let tmp = private_tmp();
        let shared = tmp.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_dir(&shared.join("state/not/yet"), Owners::running()).unwrap_err();
        assert!(e.is_config() && e.to_string().contains("shared"), "{e}");
    }
}
