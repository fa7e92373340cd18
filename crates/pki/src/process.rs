//! The process's own hygiene while it holds keys and tokens: no core dump, and secrets taken
//! out of its environment once read.
//!
//! A crash dump (systemd-coredump keeps them) or another process of the same user attaching
//! would see an unlocked CA key, a Vault token or a secret_id. [`harden`] makes the process
//! non-dumpable (`PR_SET_DUMPABLE 0`, which also bars same-user `ptrace` and makes
//! `/proc/PID/*` root's) and sets `RLIMIT_CORE` to 0.
//!
//! Secrets passed in variables (`PKI_CA_PASSPHRASE`, `VAULT_TOKEN`, ...) stay readable in
//! `/proc/PID/environ` for as long as the process runs. A program calls
//! [`keep_env_secrets`] first thing, then removes them from its environment (that takes
//! `unsafe`, since nothing may touch the environment concurrently: the binary does it in
//! `main` before starting any thread). The library reads such variables through
//! [`env_secret`], which finds the values kept.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::secret::SecretString;

/// The variables that hold secrets, read by this crate.
pub const SECRET_VARIABLES: &[&str] = &[
    "PKI_CA_PASSPHRASE",
    "VAULT_TOKEN",
    "BAO_TOKEN",
    "PKI_VAULT_ROLE_ID",
    "PKI_VAULT_SECRET_ID",
];

fn kept() -> &'static Mutex<BTreeMap<String, SecretString>> {
    static KEPT: OnceLock<Mutex<BTreeMap<String, SecretString>>> = OnceLock::new();
    KEPT.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// Makes the process non-dumpable and its core size limit 0. Errors are returned for the
/// caller to report; the process is no less safe for trying.
pub fn harden() -> std::io::Result<()> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)?;
    let none = rustix::process::Rlimit {
        current: Some(0),
        maximum: Some(0),
    };
    rustix::process::setrlimit(rustix::process::Resource::Core, none)?;
    Ok(())
}

/// Keeps the value of each of `names` that is set (and not empty) for [`env_secret`], and
/// returns those names: the caller removes them from the environment.
pub fn keep_env_secrets<'a>(names: &[&'a str]) -> Vec<&'a str> {
    let mut kept = kept().lock().unwrap_or_else(PoisonError::into_inner);
    let mut present = Vec::new();
    for name in names {
        if let Ok(value) = std::env::var(name)
            && !value.is_empty()
        {
            kept.insert((*name).to_owned(), SecretString::new(value));
            present.push(*name);
        }
    }
    present
}

/// A secret variable: the value [`keep_env_secrets`] kept, else the environment's.
pub fn env_secret(name: &str) -> Option<SecretString> {
    let kept = kept().lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(v) = kept.get(name) {
        return Some(v.duplicate());
    }
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(SecretString::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hardening_leaves_the_process_undumpable_without_cores() {
        harden().unwrap();
        assert_eq!(
            rustix::process::dumpable_behavior().unwrap(),
            rustix::process::DumpableBehavior::NotDumpable
        );
        let core = rustix::process::getrlimit(rustix::process::Resource::Core);
        assert_eq!((core.current, core.maximum), (Some(0), Some(0)));
    }

    #[test]
    fn kept_secrets_are_found_after_the_environment_forgot_them() {
        // No variable of this name is set: nothing is kept, and nothing is found.
        assert!(keep_env_secrets(&["PKI_TEST_NOT_SET_ANYWHERE"]).is_empty());
        assert!(env_secret("PKI_TEST_NOT_SET_ANYWHERE").is_none());
        kept().lock().unwrap().insert(
            "PKI_TEST_KEPT".to_owned(),
            SecretString::new("s3".to_owned()),
        );
        assert_eq!(env_secret("PKI_TEST_KEPT").unwrap().expose(), "s3");
    }
}
