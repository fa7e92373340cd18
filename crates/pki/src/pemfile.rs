//! PEM input: splitting text into labelled blocks with errors that say what was expected and
//! what was found, and rendering DER back to PEM.
//!
//! Inputs are bounded before they get here (see [`crate::fsio::read_limited`]); this module only
//! decides whether the text is the PEM we need.

use crate::error::{Error, Result};

/// Labels of the PEM blocks this crate reads and writes.
pub mod label {
    /// An X.509 certificate.
    pub const CERTIFICATE: &str = "CERTIFICATE";
    /// A PKCS#8 private key in clear.
    pub const PRIVATE_KEY: &str = "PRIVATE KEY";
    /// A PBES2-encrypted PKCS#8 private key.
    pub const ENCRYPTED_PRIVATE_KEY: &str = "ENCRYPTED PRIVATE KEY";
    /// A PKCS#10 certificate signing request.
    pub const CSR: &str = "CERTIFICATE REQUEST";
    /// A certificate revocation list.
    pub const CRL: &str = "X509 CRL";
}

/// One decoded PEM block.
pub struct Block {
    /// The label between `BEGIN` and the dashes.
    pub label: String,
    /// The decoded DER.
    pub der: Vec<u8>,
}

/// Splits `text` into PEM blocks. Text outside blocks (comments, `openssl x509 -text` output) is
/// ignored; an input with no block, an unterminated block or bad base64 is an error naming
/// `origin` (usually the file path).
pub fn parse_blocks(text: &[u8], origin: &str) -> Result<Vec<Block>> {
    if text.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::Pem {
            origin: origin.to_owned(),
            problem: "the input is empty".to_owned(),
        });
    }
    let blocks = pem::parse_many(text).map_err(|e| Error::Pem {
        origin: origin.to_owned(),
        problem: describe(&e),
    })?;
    if blocks.is_empty() {
        let problem = if text.windows(10).any(|w| w == b"-----BEGIN") {
            "a PEM block is not terminated by its END line (truncated file?)"
        } else {
            "no PEM block (-----BEGIN ...-----) found"
        };
        return Err(Error::Pem {
            origin: origin.to_owned(),
            problem: problem.to_owned(),
        });
    }
    Ok(blocks
        .into_iter()
        .map(|p| Block {
            label: p.tag().to_owned(),
            der: p.into_contents(),
        })
        .collect())
}

fn describe(e: &pem::PemError) -> String {
    match e {
        pem::PemError::MismatchedTags(a, b) => {
            format!("a block begins as {a} but ends as {b}")
        }
        pem::PemError::MalformedFraming => "malformed BEGIN/END lines".to_owned(),
        pem::PemError::MissingBeginTag => "missing BEGIN line".to_owned(),
        pem::PemError::MissingEndTag => {
            "a PEM block is not terminated by its END line (truncated file?)".to_owned()
        }
        pem::PemError::MissingData => "a PEM block holds no data".to_owned(),
        pem::PemError::InvalidData(_) => "invalid base64 inside a PEM block".to_owned(),
        pem::PemError::InvalidHeader(_) => "invalid header line inside a PEM block".to_owned(),
        pem::PemError::NotUtf8(_) => "a PEM block is not valid UTF-8".to_owned(),
    }
}

/// The blocks of `text` with one of the accepted labels, in order. An input holding only other
/// labels is an error that names what was found.
pub fn blocks_labelled(text: &[u8], origin: &str, accepted: &[&str]) -> Result<Vec<Block>> {
    let blocks = parse_blocks(text, origin)?;
    let found: Vec<String> = blocks.iter().map(|b| b.label.clone()).collect();
    let wanted: Vec<Block> = blocks
        .into_iter()
        .filter(|b| accepted.contains(&b.label.as_str()))
        .collect();
    if wanted.is_empty() {
        return Err(Error::Pem {
            origin: origin.to_owned(),
            problem: format!(
                "expected {}, found {}",
                accepted.join(" or "),
                found.join(", ")
            ),
        });
    }
    Ok(wanted)
}

/// The single block of `text` with one of the accepted labels (more than one is an error).
pub fn single_block(text: &[u8], origin: &str, accepted: &[&str]) -> Result<Block> {
    let mut blocks = blocks_labelled(text, origin, accepted)?;
    if blocks.len() > 1 {
        return Err(Error::Pem {
            origin: origin.to_owned(),
            problem: format!("expected one {} block, found {}", accepted[0], blocks.len()),
        });
    }
    blocks.pop().ok_or_else(|| Error::Pem {
        origin: origin.to_owned(),
        problem: "no block".to_owned(),
    })
}

/// Renders DER as PEM with LF line endings and 64-column lines.
pub fn encode(label: &str, der: &[u8]) -> String {
    let block = pem::Pem::new(label, der);
    pem::encode_config(
        &block,
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_garbage_are_errors() {
        for (input, needle) in [
            (&b""[..], "empty"),
            (b"  \n\t", "empty"),
            (b"hello world", "no PEM block"),
            (b"-----BEGIN CERTIFICATE-----\nMIIB", "not terminated"),
            (
                b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
                "base64",
            ),
        ] {
            let err = parse_blocks(input, "x.pem").err().unwrap().to_string();
            assert!(err.contains("x.pem"), "{err}");
            assert!(err.contains(needle), "{err} should contain {needle}");
        }
    }

    #[test]
    fn wrong_label_names_both() {
        let text = encode("RSA PRIVATE KEY", b"\x30\x00");
        let err = single_block(text.as_bytes(), "k.pem", &[label::PRIVATE_KEY])
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("expected PRIVATE KEY, found RSA PRIVATE KEY"),
            "{err}"
        );
    }

    #[test]
    fn crlf_and_surrounding_text_are_accepted() {
        let text = format!(
            "Certificate:\r\n  junk\r\n{}trailing\r\n",
            encode("CERTIFICATE", b"\x30\x03\x02\x01\x01").replace('\n', "\r\n")
        );
        let blocks = blocks_labelled(text.as_bytes(), "c.pem", &[label::CERTIFICATE]).unwrap();
        assert_eq!(blocks.len(), 1);
        assert_eq!(blocks[0].der, b"\x30\x03\x02\x01\x01");
    }
}
