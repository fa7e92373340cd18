//! Zeroizing holders for secrets: passphrases, tokens, private key PEM.
//!
//! These types deliberately implement neither `Clone` nor `Serialize`, and their `Debug` output is
//! `[redacted]`, so a secret cannot leak through a log line, an error message or a stray copy.
//! The memory is wiped when the value is dropped.

use std::fmt;

use zeroize::Zeroizing;

/// A secret string (passphrase, Vault token, secret value), wiped on drop.
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    /// Wraps a string; the caller's copy moves in and is wiped with this value.
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// Reads a secret from the first line of a file's content, dropping a trailing newline
    /// (`\n` or `\r\n`), as secret files written by `echo` or editors end with one.
    pub fn from_file_content(mut content: String) -> Self {
        if content.ends_with('\n') {
            content.pop();
            if content.ends_with('\r') {
                content.pop();
            }
        }
        Self::new(content)
    }

    /// The secret itself. Keep the borrow short and never format it into a message.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// An explicit copy (the type has no `Clone`, so every copy is visible in the code).
    pub fn duplicate(&self) -> Self {
        Self::new(self.0.as_str().to_owned())
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

/// Secret bytes (private key DER, decrypted material), wiped on drop.
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    /// Wraps bytes; they are wiped with this value.
    pub fn new(value: Vec<u8>) -> Self {
        Self(Zeroizing::new(value))
    }

    /// The bytes themselves.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = SecretString::new("hunter2".into());
        assert_eq!(format!("{s:?}"), "[redacted]");
        let b = SecretBytes::new(vec![1, 2, 3]);
        assert_eq!(format!("{b:?}"), "[redacted]");
    }

    #[test]
    fn file_content_drops_one_newline() {
        assert_eq!(
            SecretString::from_file_content("abc\n".into()).expose(),
            "abc"
        );
        assert_eq!(
            SecretString::from_file_content("abc\r\n".into()).expose(),
            "abc"
        );
        assert_eq!(
            SecretString::from_file_content("abc \n\n".into()).expose(),
            "abc \n"
        );
    }
}
