//! Where the passphrase of an offline CA's keys comes from: a file, an environment variable
//! or the caller. One rule for every front end: a file must be private to its owner and hold a
//! passphrase; an empty variable counts as unset.

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::secret::SecretString;

/// The source of the CA key passphrase.
#[non_exhaustive]
pub enum CaKeySource {
    /// A file holding the passphrase (mode 0600 or stricter; one trailing newline is dropped).
    File(PathBuf),
    /// The environment variable of this name.
    Env(String),
    /// The passphrase itself, gathered by the caller (a prompt, a secret store).
    Given(SecretString),
    /// None: only an unencrypted key can be used.
    Nothing,
}

impl fmt::Debug for CaKeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(p) => f.debug_tuple("File").field(p).finish(),
            Self::Env(name) => f.debug_tuple("Env").field(name).finish(),
            Self::Given(_) => f.write_str("Given([redacted])"),
            Self::Nothing => f.write_str("Nothing"),
        }
    }
}

impl CaKeySource {
    /// The passphrase, when the source holds one. A file that others may read, or that is
    /// empty, is an error; an unset or empty variable gives `None`.
    pub fn passphrase(&self) -> Result<Option<SecretString>> {
        match self {
            Self::File(path) => {
                let secret = crate::fsio::read_secret_file(path)?;
                if secret.is_empty() {
                    return Err(Error::EmptyPassphraseFile { path: path.clone() });
                }
                Ok(Some(secret))
            }
            Self::Env(name) => Ok(crate::process::env_secret(name)),
            Self::Given(p) => Ok(Some(p.duplicate())),
            Self::Nothing => Ok(None),
        }
    }

    /// The passphrase that encrypts new CA keys: the source must hold one.
    pub fn required(&self) -> Result<SecretString> {
        self.passphrase()?.ok_or(Error::EmptyPassphrase)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_file_must_be_private_and_hold_a_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pass");
        crate::fsio::write_atomic(&path, b"s3cret\n", crate::fsio::FileMode::PRIVATE).unwrap();
        let got = CaKeySource::File(path.clone())
            .passphrase()
            .unwrap()
            .unwrap();
        assert_eq!(got.expose(), "s3cret");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            CaKeySource::File(path.clone()).passphrase(),
            Err(Error::InsecurePermissions { .. })
        ));
        crate::fsio::write_atomic(&path, b"\n", crate::fsio::FileMode::PRIVATE).unwrap();
        assert!(matches!(
            CaKeySource::File(path).passphrase(),
            Err(Error::EmptyPassphraseFile { .. })
        ));
    }

    #[test]
    fn given_and_nothing() {
        let given = CaKeySource::Given(SecretString::new("p".into()));
        assert_eq!(given.passphrase().unwrap().unwrap().expose(), "p");
        assert!(format!("{given:?}").contains("redacted"));
        assert!(CaKeySource::Nothing.passphrase().unwrap().is_none());
        assert!(matches!(
            CaKeySource::Nothing.required(),
            Err(Error::EmptyPassphrase)
        ));
    }
}
