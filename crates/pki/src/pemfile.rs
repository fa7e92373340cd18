//! PEM input: splitting text into labelled blocks with errors that say what was expected and
//! what was found, and rendering DER back to PEM.
//!
//! Inputs are bounded before they get here (see [`crate::fsio::read_limited`]); this module only
//! decides whether the text is the PEM we need.

use base64::Engine;

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
#[non_exhaustive]
pub struct Block {
    /// The label between `BEGIN` and the dashes.
    pub label: String,
    /// The decoded DER.
    pub der: Vec<u8>,
}

/// Splits `text` into PEM blocks. Text outside blocks (comments, `openssl x509 -text` output) is
/// ignored; an input with no block, an unterminated block, mismatched BEGIN/END labels or bad
/// base64 is an error naming `origin` (usually the file path). CRLF line ends are accepted.
///
/// Hand-written rather than the `pem` crate's: deciding what ten thousand deployed
/// certificates need reads ten thousand files, and this is several times faster.
pub fn parse_blocks(text: &[u8], origin: &str) -> Result<Vec<Block>> {
    let fail = |problem: &str| Error::Pem {
        origin: origin.to_owned(),
        problem: problem.to_owned(),
    };
    if text.iter().all(u8::is_ascii_whitespace) {
        return Err(fail("the input is empty"));
    }
    let mut blocks = Vec::new();
    let mut open: Option<(&[u8], Vec<u8>)> = None;
    for raw in text.split(|b| *b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw).trim_ascii();
        match &mut open {
            None => {
                if let Some(label) = line
                    .strip_prefix(b"-----BEGIN ")
                    .and_then(|l| l.strip_suffix(b"-----"))
                {
                    open = Some((label, Vec::with_capacity(2048)));
                }
            }
            Some((label, body)) => {
                if let Some(end) = line
                    .strip_prefix(b"-----END ")
                    .and_then(|l| l.strip_suffix(b"-----"))
                {
                    if end != *label {
                        return Err(Error::Pem {
                            origin: origin.to_owned(),
                            problem: format!(
                                "a block begins as {} but ends as {}",
                                String::from_utf8_lossy(label),
                                String::from_utf8_lossy(end)
                            ),
                        });
                    }
                    if body.is_empty() {
                        return Err(fail("a PEM block holds no data"));
                    }
                    let der = base64::engine::general_purpose::STANDARD
                        .decode(&body)
                        .map_err(|_| fail("invalid base64 inside a PEM block"))?;
                    blocks.push(Block {
                        label: String::from_utf8_lossy(label).into_owned(),
                        der,
                    });
                    open = None;
                } else if line.starts_with(b"-----BEGIN ") {
                    return Err(fail(
                        "a PEM block is not terminated by its END line (truncated file?)",
                    ));
                } else if line.contains(&b':') {
                    return Err(fail(
                        "PEM headers (legacy encryption, Proc-Type) are not supported; \
                         convert with `openssl pkcs8 -topk8`",
                    ));
                } else {
                    body.extend_from_slice(line);
                }
            }
        }
    }
    if open.is_some() {
        return Err(fail(
            "a PEM block is not terminated by its END line (truncated file?)",
        ));
    }
    if blocks.is_empty() {
        return Err(fail("no PEM block (-----BEGIN ...-----) found"));
    }
    Ok(blocks)
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
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
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
    fn mismatched_labels_and_headers() {
        let text = b"-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END X509 CRL-----\n";
        let err = parse_blocks(text, "m.pem").err().unwrap().to_string();
        assert!(
            err.contains("begins as CERTIFICATE but ends as X509 CRL"),
            "{err}"
        );
        let text = b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nMAMCAQE=\n-----END RSA PRIVATE KEY-----\n";
        assert!(parse_blocks(text, "h.pem").is_err());
        let twice = format!(
            "{}{}",
            encode("CERTIFICATE", b"ab"),
            encode("PRIVATE KEY", b"cd")
        );
        let blocks = parse_blocks(twice.as_bytes(), "t").unwrap();
        assert_eq!(blocks[0].der, b"ab");
        assert_eq!(blocks[1].label, "PRIVATE KEY");
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
