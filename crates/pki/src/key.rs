//! Private keys: the supported algorithms, generation, PKCS#8 in clear and PBES2-encrypted
//! PKCS#8 for CA keys at rest.
//!
//! ECDSA and Ed25519 keys come from ring. ring cannot generate RSA keys, so those come from the
//! pure-Rust `rsa` crate; every signature, RSA included, is made by ring.

use std::fmt;
use std::str::FromStr;

use pkcs8::der::{Decode, Encode, pem::LineEnding};
use rcgen::{KeyPair, PublicKeyData, SignatureAlgorithm};
use rustls_pki_types::PrivatePkcs8KeyDer;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::error::{Error, KeyProblem, Result};
use crate::pemfile::{self, label};
use crate::secret::{SecretBytes, SecretString};

/// A key algorithm for leaves and CAs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 with SHA-256 (the default: fast, small, universally supported).
    #[default]
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    /// ECDSA on NIST P-384 with SHA-384.
    #[serde(rename = "ecdsa-p384")]
    EcdsaP384,
    /// Ed25519 (internal consumers only: some TLS stacks and Java versions lack it).
    #[serde(rename = "ed25519")]
    Ed25519,
    /// RSA 2048 with PKCS#1 v1.5 SHA-256 signatures.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// RSA 3072.
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    /// RSA 4096.
    #[serde(rename = "rsa-4096")]
    Rsa4096,
}

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_ED25519: &str = "1.3.101.112";
const OID_RSA: &str = "1.2.840.113549.1.1.1";

impl KeyAlgorithm {
    /// Every supported algorithm.
    pub const ALL: [Self; 6] = [
        Self::EcdsaP256,
        Self::EcdsaP384,
        Self::Ed25519,
        Self::Rsa2048,
        Self::Rsa3072,
        Self::Rsa4096,
    ];

    /// The name used in configs and on the command line, e.g. `ecdsa-p256`.
    pub fn name(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::EcdsaP384 => "ecdsa-p384",
            Self::Ed25519 => "ed25519",
            Self::Rsa2048 => "rsa-2048",
            Self::Rsa3072 => "rsa-3072",
            Self::Rsa4096 => "rsa-4096",
        }
    }

    /// Whether this is an RSA algorithm.
    pub fn is_rsa(self) -> bool {
        matches!(self, Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096)
    }

    fn rsa_bits(self) -> Option<usize> {
        match self {
            Self::Rsa2048 => Some(2048),
            Self::Rsa3072 => Some(3072),
            Self::Rsa4096 => Some(4096),
            _ => None,
        }
    }

    /// The signature algorithm a key of this kind signs with.
    pub(crate) fn signature_algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            Self::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            Self::Ed25519 => &rcgen::PKCS_ED25519,
            Self::Rsa2048 | Self::Rsa3072 | Self::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
        }
    }

    /// Vault's `key_type` and `key_bits` for this algorithm (`ed25519` has no size: 0).
    pub fn vault_params(self) -> (&'static str, u32) {
        match self {
            Self::EcdsaP256 => ("ec", 256),
            Self::EcdsaP384 => ("ec", 384),
            Self::Ed25519 => ("ed25519", 0),
            Self::Rsa2048 => ("rsa", 2048),
            Self::Rsa3072 => ("rsa", 3072),
            Self::Rsa4096 => ("rsa", 4096),
        }
    }

    /// The algorithm of a parsed SubjectPublicKeyInfo, or why it is not one we accept; the
    /// modulus size in bits comes along for RSA keys (to describe one of an unsupported size).
    pub(crate) fn of_spki(
        spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
    ) -> (std::result::Result<Self, String>, Option<usize>) {
        let oid = spki.algorithm.algorithm.to_id_string();
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .map(|o| o.to_id_string());
        let (rsa_bits, exponent) = match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
                (Some(rsa.key_size()), Some(rsa.try_exponent()))
            }
            _ => (None, None),
        };
        let identified = match exponent {
            // Any other exponent (3 above all) is legal but weak against padding mistakes,
            // and nothing generates one on purpose: refused.
            Some(Ok(e)) if e != 65537 => Err(format!("RSA public exponent {e} is not 65537")),
            Some(Err(_)) => Err("RSA public exponent is not a number we accept".to_owned()),
            _ => Self::identify(&oid, curve.as_deref(), rsa_bits),
        };
        (identified, rsa_bits)
    }

    /// Identifies the algorithm of a SubjectPublicKeyInfo's algorithm OID, curve parameter and,
    /// for RSA, modulus size in bits.
    fn identify(
        oid: &str,
        curve: Option<&str>,
        rsa_bits: Option<usize>,
    ) -> std::result::Result<Self, String> {
        match (oid, curve) {
            (OID_EC_PUBLIC_KEY, Some(OID_P256)) => Ok(Self::EcdsaP256),
            (OID_EC_PUBLIC_KEY, Some(OID_P384)) => Ok(Self::EcdsaP384),
            (OID_EC_PUBLIC_KEY, Some(other)) => Err(format!(
                "EC curve {other} is not supported (use P-256 or P-384)"
            )),
            (OID_EC_PUBLIC_KEY, None) => Err("EC key without a named curve".to_owned()),
            (OID_ED25519, _) => Ok(Self::Ed25519),
            (OID_RSA, _) => match rsa_bits {
                Some(2048) => Ok(Self::Rsa2048),
                Some(3072) => Ok(Self::Rsa3072),
                Some(4096) => Ok(Self::Rsa4096),
                Some(bits) if bits < 2048 => Err(format!(
                    "RSA key of {bits} bits is too weak (at least 2048)"
                )),
                Some(bits) => Err(format!(
                    "RSA key of {bits} bits is not supported (2048, 3072 or 4096)"
                )),
                None => Err("RSA key of unknown size".to_owned()),
            },
            (other, _) => Err(format!("key algorithm {other} is not supported")),
        }
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyAlgorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| Error::InvalidArgument {
                what: "key algorithm",
                value: s.to_owned(),
                expected: "ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072 or rsa-4096",
            })
    }
}

/// A private key: its algorithm and a ring-backed key pair. The PKCS#8 bytes it holds are
/// wiped on drop; `Debug` never shows them; there is no `Clone`.
pub struct PrivateKey {
    algorithm: KeyAlgorithm,
    pair: KeyPair,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, [redacted])", self.algorithm)
    }
}

impl Drop for PrivateKey {
    fn drop(&mut self) {
        self.pair.zeroize();
    }
}

impl PrivateKey {
    /// Generates a fresh key.
    pub fn generate(algorithm: KeyAlgorithm) -> Result<Self> {
        let fail = |reason: String| Error::KeyGeneration { algorithm, reason };
        let from_der = |der: &[u8]| {
            KeyPair::from_pkcs8_der_and_sign_algo(
                &PrivatePkcs8KeyDer::from(der),
                algorithm.signature_algorithm(),
            )
            .map_err(|e| fail(e.to_string()))
        };
        let pair = match algorithm.rsa_bits() {
            None if algorithm == KeyAlgorithm::Ed25519 => {
                // ring writes Ed25519 keys as PKCS#8 v2 (with the public key), which OpenSSL
                // 3.0 cannot load; re-encode as v1, which every consumer reads.
                let v2 = KeyPair::generate_for(algorithm.signature_algorithm())
                    .map_err(|e| fail(e.to_string()))?;
                let info = pkcs8::PrivateKeyInfoRef::from_der(v2.serialized_der())
                    .map_err(|e| fail(e.to_string()))?;
                let v1 = zeroize::Zeroizing::new(
                    pkcs8::PrivateKeyInfoRef::new(info.algorithm, info.private_key)
                        .to_der()
                        .map_err(|e| fail(e.to_string()))?,
                );
                from_der(&v1)?
            }
            None => KeyPair::generate_for(algorithm.signature_algorithm())
                .map_err(|e| fail(e.to_string()))?,
            Some(bits) => {
                use rsa::pkcs8::EncodePrivateKey;
                let key = rsa::PrivateKey::new(&mut getrandom::SysRng, bits)
                    .map_err(|e| fail(e.to_string()))?;
                let der = key.to_pkcs8_der().map_err(|e| fail(e.to_string()))?;
                from_der(der.as_bytes())?
            }
        };
        Ok(Self { algorithm, pair })
    }

    /// Reads a PKCS#8 DER key, recognising its algorithm.
    pub fn from_pkcs8_der(der: &[u8], origin: &str) -> Result<Self> {
        let bad = |problem: KeyProblem| Error::Key {
            origin: origin.to_owned(),
            problem,
        };
        let info = pkcs8::PrivateKeyInfoRef::from_der(der)
            .map_err(|e| bad(KeyProblem::Malformed(e.to_string())))?;
        let oid = info.algorithm.oid.to_string();
        let curve = info
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.decode_as::<pkcs8::ObjectIdentifier>().ok())
            .map(|o| o.to_string());
        let rsa_bits = if oid == OID_RSA {
            let pair = ring::rsa::KeyPair::from_pkcs8(der)
                .map_err(|e| bad(KeyProblem::Malformed(e.to_string())))?;
            Some(ring::signature::KeyPair::public_key(&pair).modulus_len() * 8)
        } else {
            None
        };
        let algorithm = KeyAlgorithm::identify(&oid, curve.as_deref(), rsa_bits)
            .map_err(|m| bad(KeyProblem::Unsupported(m)))?;
        let pair = KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(der),
            algorithm.signature_algorithm(),
        )
        .map_err(|e| bad(KeyProblem::Malformed(e.to_string())))?;
        Ok(Self { algorithm, pair })
    }

    /// Reads a clear PKCS#8 PEM key (`BEGIN PRIVATE KEY`). An encrypted key, or a legacy
    /// PKCS#1 / SEC1 key, is refused with an error that says so.
    pub fn from_pem(text: &[u8], origin: &str) -> Result<Self> {
        let block = pemfile::single_block(
            text,
            origin,
            &[
                label::PRIVATE_KEY,
                label::ENCRYPTED_PRIVATE_KEY,
                "RSA PRIVATE KEY",
                "EC PRIVATE KEY",
            ],
        )?;
        let der = SecretBytes::new(block.der);
        match block.label.as_str() {
            label::PRIVATE_KEY => Self::from_pkcs8_der(der.expose(), origin),
            label::ENCRYPTED_PRIVATE_KEY => Err(Error::Key {
                origin: origin.to_owned(),
                problem: KeyProblem::PassphraseRequired,
            }),
            legacy => Err(Error::Key {
                origin: origin.to_owned(),
                problem: KeyProblem::Unsupported(format!(
                    "{legacy} is a legacy format; convert it with `openssl pkcs8 -topk8 -nocrypt`"
                )),
            }),
        }
    }

    /// Whether a PEM text holds an encrypted key (`BEGIN ENCRYPTED PRIVATE KEY`).
    pub fn pem_is_encrypted(text: &[u8]) -> bool {
        text.windows(label::ENCRYPTED_PRIVATE_KEY.len())
            .any(|w| w == label::ENCRYPTED_PRIVATE_KEY.as_bytes())
    }

    /// Reads a key that may be encrypted: an encrypted key needs `passphrase`, a clear one
    /// ignores it.
    pub fn from_pem_with_passphrase(
        text: &[u8],
        origin: &str,
        passphrase: Option<&SecretString>,
    ) -> Result<Self> {
        if !Self::pem_is_encrypted(text) {
            return Self::from_pem(text, origin);
        }
        let Some(passphrase) = passphrase else {
            return Err(Error::Key {
                origin: origin.to_owned(),
                problem: KeyProblem::PassphraseRequired,
            });
        };
        let block = pemfile::single_block(text, origin, &[label::ENCRYPTED_PRIVATE_KEY])?;
        let der = decrypt_pkcs8(&block.der, passphrase, origin)?;
        Self::from_pkcs8_der(der.expose(), origin)
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The PKCS#8 DER encoding of the key.
    pub fn pkcs8_der(&self) -> &[u8] {
        self.pair.serialized_der()
    }

    /// The key as clear PKCS#8 PEM (`BEGIN PRIVATE KEY`).
    pub fn to_pkcs8_pem(&self) -> SecretString {
        SecretString::new(pemfile::encode(
            label::PRIVATE_KEY,
            self.pair.serialized_der(),
        ))
    }

    /// The key as PBES2-encrypted PKCS#8 PEM: scrypt (N = 2^14, r = 8, p = 1) and AES-256-CBC,
    /// the strongest setting that `openssl pkey` still opens within its default memory limit.
    pub fn to_encrypted_pem(&self, passphrase: &SecretString) -> Result<String> {
        if passphrase.is_empty() {
            return Err(Error::EmptyPassphrase);
        }
        let info = pkcs8::PrivateKeyInfoRef::from_der(self.pair.serialized_der()).map_err(|e| {
            Error::Key {
                origin: "generated key".to_owned(),
                problem: KeyProblem::Malformed(e.to_string()),
            }
        })?;
        let doc = info
            .encrypt(passphrase.expose().as_bytes())
            .map_err(|e| Error::KeyEncryption(e.to_string()))?;
        let pem = doc
            .to_pem(label::ENCRYPTED_PRIVATE_KEY, LineEnding::LF)
            .map_err(|e| Error::KeyEncryption(e.to_string()))?;
        Ok(pem.as_str().to_owned())
    }

    /// The public key as raw bytes (the SubjectPublicKeyInfo BIT STRING content).
    pub fn public_key_raw(&self) -> &[u8] {
        self.pair.public_key_raw()
    }

    /// The public key as a DER SubjectPublicKeyInfo.
    pub fn public_key_spki(&self) -> Vec<u8> {
        self.pair.subject_public_key_info()
    }

    pub(crate) fn key_pair(&self) -> &KeyPair {
        &self.pair
    }
}

/// Bounds on the key-derivation work a key file may ask for: a hostile file must not make us
/// allocate gigabytes (scrypt) or spin for minutes (PBKDF2), and a trivially weak one is refused.
const MAX_SCRYPT_LOG_N: u32 = 20;
const MIN_PBKDF2_ITERATIONS: u32 = 1_000;
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;

fn decrypt_pkcs8(der: &[u8], passphrase: &SecretString, origin: &str) -> Result<SecretBytes> {
    let bad = |problem: KeyProblem| Error::Key {
        origin: origin.to_owned(),
        problem,
    };
    let info = pkcs8::EncryptedPrivateKeyInfoRef::from_der(der)
        .map_err(|e| bad(KeyProblem::Malformed(e.to_string())))?;
    let pkcs8::pkcs5::EncryptionScheme::Pbes2(params) = &info.encryption_algorithm else {
        return Err(bad(KeyProblem::Unsupported(
            "PBES1 encryption (use PBES2)".to_owned(),
        )));
    };
    match &params.kdf {
        pkcs8::pkcs5::pbes2::Kdf::Scrypt(s) => {
            let log_n = s.cost_parameter.trailing_zeros();
            if log_n > MAX_SCRYPT_LOG_N || s.block_size > 32 || s.parallelization > 16 {
                return Err(bad(KeyProblem::Unsupported(
                    "scrypt parameters beyond the accepted work factor".to_owned(),
                )));
            }
        }
        pkcs8::pkcs5::pbes2::Kdf::Pbkdf2(p) => {
            if p.iteration_count < MIN_PBKDF2_ITERATIONS {
                return Err(bad(KeyProblem::Unsupported(format!(
                    "PBKDF2 with {} iterations is too weak",
                    p.iteration_count
                ))));
            }
            if p.iteration_count > MAX_PBKDF2_ITERATIONS {
                return Err(bad(KeyProblem::Unsupported(
                    "PBKDF2 iteration count beyond the accepted work factor".to_owned(),
                )));
            }
        }
        _ => {
            return Err(bad(KeyProblem::Unsupported(
                "unknown key-derivation function".to_owned(),
            )));
        }
    }
    // pkcs5 reports a wrong passphrase either as a padding failure or, for some passphrases,
    // as garbage that fails to decode; both mean the same to the operator.
    let doc = info
        .decrypt(passphrase.expose().as_bytes())
        .map_err(|_| bad(KeyProblem::WrongPassphrase))?;
    Ok(SecretBytes::new(doc.as_bytes().to_vec()))
}

/// The public key held in a PKCS#8 private key (the bytes of a SubjectPublicKeyInfo's BIT
/// STRING), read without loading the key for signing: EC keys carry it, RSA keys carry the
/// modulus and exponent, Ed25519 derives it from the seed. Comparing it with a certificate's is
/// how thousands of deployed pairs are checked quickly.
pub fn pkcs8_public_key(der: &[u8]) -> Result<Vec<u8>> {
    let malformed = |m: String| Error::Key {
        origin: "PKCS#8 key".to_owned(),
        problem: KeyProblem::Malformed(m),
    };
    let info = pkcs8::PrivateKeyInfoRef::from_der(der).map_err(|e| malformed(e.to_string()))?;
    if let Some(public) = info.public_key.as_ref().and_then(|p| p.as_bytes()) {
        return Ok(public.to_vec());
    }
    let private = info.private_key.as_bytes();
    match info.algorithm.oid.to_string().as_str() {
        OID_EC_PUBLIC_KEY => {
            // ECPrivateKey ::= SEQUENCE { version, privateKey, [0] parameters, [1] publicKey }
            let seq = der_tlv(private, 0x30).ok_or_else(|| malformed("ECPrivateKey".into()))?;
            let mut rest = seq;
            while let Some((tag, content, next)) = der_next(rest) {
                if tag == 0xa1 {
                    let bits = der_tlv(content, 0x03)
                        .filter(|b| b.first() == Some(&0))
                        .ok_or_else(|| malformed("EC public key".into()))?;
                    return Ok(bits[1..].to_vec());
                }
                rest = next;
            }
        }
        OID_RSA => {
            use pkcs8::der::Encode;
            let key = rsa::pkcs1::RsaPrivateKeyRef::from_der(private)
                .map_err(|e| malformed(e.to_string()))?;
            let public = rsa::pkcs1::RsaPublicKeyRef {
                modulus: key.modulus,
                public_exponent: key.public_exponent,
            };
            return public.to_der().map_err(|e| malformed(e.to_string()));
        }
        OID_ED25519 => {
            let seed = der_tlv(private, 0x04).ok_or_else(|| malformed("Ed25519 seed".into()))?;
            let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(seed)
                .map_err(|e| malformed(e.to_string()))?;
            return Ok(ring::signature::KeyPair::public_key(&pair)
                .as_ref()
                .to_vec());
        }
        _ => {}
    }
    // Anything else: load it properly.
    Ok(PrivateKey::from_pkcs8_der(der, "PKCS#8 key")?
        .public_key_raw()
        .to_vec())
}

/// Splits the first DER element of `input`: (tag, content, rest). Short and long lengths.
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| acc << 8 | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The content of the first element of `input` if it has `tag`.
fn der_tlv(input: &[u8], tag: u8) -> Option<&[u8]> {
    der_next(input)
        .filter(|(t, _, _)| *t == tag)
        .map(|(_, c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_names_every_algorithm() {
        let params: Vec<_> = KeyAlgorithm::ALL.iter().map(|a| a.vault_params()).collect();
        assert_eq!(
            params,
            [
                ("ec", 256),
                ("ec", 384),
                ("ed25519", 0),
                ("rsa", 2048),
                ("rsa", 3072),
                ("rsa", 4096)
            ]
        );
    }

    #[test]
    fn every_algorithm_generates_and_round_trips() {
        for alg in KeyAlgorithm::ALL {
            let key = PrivateKey::generate(alg).unwrap();
            assert_eq!(key.algorithm(), alg);
            let pem = key.to_pkcs8_pem();
            let back = PrivateKey::from_pem(pem.expose().as_bytes(), "test").unwrap();
            assert_eq!(back.algorithm(), alg);
            assert_eq!(back.public_key_raw(), key.public_key_raw());
        }
    }

    #[test]
    fn encrypted_round_trip_and_wrong_passphrase() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let pass = SecretString::new("correct horse".into());
        let pem = key.to_encrypted_pem(&pass).unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        let back = PrivateKey::from_pem_with_passphrase(pem.as_bytes(), "k", Some(&pass)).unwrap();
        assert_eq!(back.public_key_raw(), key.public_key_raw());
        let wrong = SecretString::new("wrong".into());
        let err = PrivateKey::from_pem_with_passphrase(pem.as_bytes(), "k", Some(&wrong))
            .unwrap_err()
            .to_string();
        assert!(err.contains("wrong passphrase"), "{err}");
        let err = PrivateKey::from_pem_with_passphrase(pem.as_bytes(), "k", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("passphrase"), "{err}");
    }

    #[test]
    fn fast_public_key_matches_the_full_parse() {
        for alg in KeyAlgorithm::ALL {
            let key = PrivateKey::generate(alg).unwrap();
            assert_eq!(
                pkcs8_public_key(key.pkcs8_der()).unwrap(),
                key.public_key_raw(),
                "{alg}"
            );
        }
        assert!(pkcs8_public_key(b"\x30\x03\x02\x01\x00").is_err());
    }

    #[test]
    fn debug_hides_key() {
        let key = PrivateKey::generate(KeyAlgorithm::Ed25519).unwrap();
        assert_eq!(format!("{key:?}"), "PrivateKey(ed25519, [redacted])");
    }
}
