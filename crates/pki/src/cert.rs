//! A parsed view of a certificate (serial, names, validity, issuer, fingerprint, key), key
//! matching, and chain verification with rustls-webpki.

use std::fmt;
use std::net::IpAddr;

use rustls_pki_types::{CertificateDer, UnixTime};
use serde::Serialize;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

use crate::error::{Error, Result};
use crate::key::{KeyAlgorithm, PrivateKey};
use crate::name::SubjectName;
use crate::pemfile::{self, label};
use crate::profile::Profile;

/// A certificate serial number: a positive integer, kept as its minimal big-endian bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

/// Bytes of randomness in the serials we create: 128 bits, the house rule (CA/B Forum asks for
/// at least 64).
const SERIAL_RANDOM_BYTES: usize = 16;

impl Serial {
    /// A fresh random serial (128 bits from the system CSPRNG).
    pub fn random() -> Result<Self> {
        let rng = ring::rand::SystemRandom::new();
        loop {
            let mut bytes = [0u8; SERIAL_RANDOM_BYTES];
            ring::rand::SecureRandom::fill(&rng, &mut bytes).map_err(|_| Error::Random)?;
            let serial = Self::from_be_bytes(&bytes);
            // A zero serial is invalid; the chance is 2^-128 but the loop costs nothing.
            if !serial.0.is_empty() {
                return Ok(serial);
            }
        }
    }

    /// A serial from big-endian bytes; leading zero bytes (DER's sign padding) are dropped.
    pub fn from_be_bytes(bytes: &[u8]) -> Self {
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        Self(bytes[start..].to_vec())
    }

    /// Parses hex, with or without `:` or `-` separators and an optional `0x`, in any case, as
    /// openssl, Vault and this tool print serials.
    pub fn parse(input: &str) -> Result<Self> {
        let bad = || Error::InvalidArgument {
            what: "serial number",
            value: input.chars().take(80).collect(),
            expected: "hexadecimal, e.g. 3e:25:50:1c or 3E25501C",
        };
        let trimmed = input.trim();
        let hex_part = trimmed
            .strip_prefix("0x")
            .or_else(|| trimmed.strip_prefix("0X"))
            .unwrap_or(trimmed);
        // Decoded by hand: serials are parsed by the hundred thousand when a CRL is built, and
        // the inventory's own (even-length, separator-free) form takes the short path.
        if hex_part.len().is_multiple_of(2) && hex_part.len() <= 42 && !hex_part.is_empty() {
            let raw = hex_part.as_bytes();
            let mut bytes = Vec::with_capacity(raw.len() / 2);
            let mut ok = true;
            for pair in raw.chunks_exact(2) {
                match (nibble(pair[0]), nibble(pair[1])) {
                    (Some(h), Some(l)) => bytes.push(h << 4 | l),
                    _ => {
                        ok = false;
                        break;
                    }
                }
            }
            if ok {
                let serial = Self::from_be_bytes(&bytes);
                return if serial.0.is_empty() {
                    Err(bad())
                } else {
                    Ok(serial)
                };
            }
        }
        let digits = hex_part.bytes().filter(|b| !matches!(b, b':' | b'-'));
        let count = digits.clone().count();
        if count == 0 || count > 42 {
            return Err(bad());
        }
        let mut bytes = Vec::with_capacity(count.div_ceil(2));
        let mut pending: Option<u8> = if count % 2 == 1 { Some(0) } else { None };
        for d in digits {
            let Some(nibble) = nibble(d) else {
                return Err(bad());
            };
            match pending.take() {
                Some(high) => bytes.push(high << 4 | nibble),
                None => pending = Some(nibble),
            }
        }
        let serial = Self::from_be_bytes(&bytes);
        if serial.0.is_empty() {
            return Err(bad());
        }
        Ok(serial)
    }

    /// The minimal big-endian bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Lower-case hex without separators, e.g. `3e25501c`.
    pub fn to_hex(&self) -> String {
        hex(&self.0, "")
    }

    /// Lower-case colon-separated hex as Vault prints it, e.g. `3e:25:50:1c`.
    pub fn to_colon_hex(&self) -> String {
        hex(&self.0, ":")
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Serial {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

fn nibble(d: u8) -> Option<u8> {
    match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        b'A'..=b'F' => Some(d - b'A' + 10),
        _ => None,
    }
}

/// Hex-encodes bytes with a separator between bytes.
pub(crate) fn hex(bytes: &[u8], sep: &str) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * (2 + sep.len()));
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 {
            out.push_str(sep);
        }
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// The SHA-256 fingerprint of DER bytes as `AB:CD:…`, the way `openssl x509 -fingerprint
/// -sha256` prints it.
pub fn sha256_fingerprint(der: &[u8]) -> String {
    hex(
        ring::digest::digest(&ring::digest::SHA256, der).as_ref(),
        ":",
    )
    .to_ascii_uppercase()
}

/// What a certificate says about itself.
#[derive(Debug, Clone, Serialize)]
pub struct CertificateInfo {
    /// Serial number.
    pub serial: Serial,
    /// Subject distinguished name, RFC 4514 style.
    pub subject: String,
    /// The subject's common name, if any.
    pub common_name: Option<String>,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Subject alternative names we understand (DNS, IP, URI, e-mail).
    pub subject_alt_names: Vec<SubjectName>,
    /// Start of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// SHA-256 fingerprint of the DER, `AB:CD:…`.
    pub sha256_fingerprint: String,
    /// The key algorithm, when it is one we support.
    pub key_algorithm: Option<KeyAlgorithm>,
    /// A description of the public key, e.g. `EC P-256` or `RSA 2048`.
    pub key_description: String,
    /// Whether basicConstraints says CA:TRUE.
    pub is_ca: bool,
    /// The leaf profile its extended key usages amount to.
    pub profile: Option<Profile>,
    /// Whether subject and issuer are the same name (a root).
    pub self_issued: bool,
    /// DNS domains permitted by a name-constraints extension (CA certificates).
    pub permitted_dns_domains: Vec<String>,
    /// The whole name-constraints extension: DNS domains and IP ranges.
    pub constraints: crate::constraints::Constraints,
    #[serde(skip)]
    pub(crate) public_key_raw: Vec<u8>,
    #[serde(skip)]
    pub(crate) subject_key_id: Option<Vec<u8>>,
    #[serde(skip)]
    pub(crate) authority_key_id: Option<Vec<u8>>,
    #[serde(skip)]
    pub(crate) issuer_raw: Vec<u8>,
    #[serde(skip)]
    pub(crate) subject_raw: Vec<u8>,
    #[serde(skip)]
    pub(crate) spki_der: Vec<u8>,
}

/// A certificate: its DER and what it says.
#[derive(Debug, Clone)]
pub struct Certificate {
    der: Vec<u8>,
    info: CertificateInfo,
}

impl Certificate {
    /// Parses DER; `origin` names the source in errors.
    pub fn from_der(der: Vec<u8>, origin: &str) -> Result<Self> {
        let info = {
            let (rest, cert) = X509Certificate::from_der(&der).map_err(|e| Error::Certificate {
                origin: origin.to_owned(),
                problem: format!("not a valid X.509 certificate ({e})"),
            })?;
            if !rest.is_empty() {
                return Err(Error::Certificate {
                    origin: origin.to_owned(),
                    problem: format!("{} trailing bytes after the certificate", rest.len()),
                });
            }
            info_of(&cert, &der, origin)?
        };
        Ok(Self { der, info })
    }

    /// Parses the first certificate of a PEM text.
    pub fn from_pem(text: &[u8], origin: &str) -> Result<Self> {
        let mut all = Self::all_from_pem(text, origin)?;
        Ok(all.swap_remove(0))
    }

    /// Parses every certificate of a PEM text (a chain or bundle), in order.
    pub fn all_from_pem(text: &[u8], origin: &str) -> Result<Vec<Self>> {
        pemfile::blocks_labelled(text, origin, &[label::CERTIFICATE])?
            .into_iter()
            .enumerate()
            .map(|(i, b)| {
                let origin = if i == 0 {
                    origin.to_owned()
                } else {
                    format!("{origin} (certificate #{})", i + 1)
                };
                Self::from_der(b.der, &origin)
            })
            .collect()
    }

    /// DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// PEM encoding.
    pub fn pem(&self) -> String {
        pemfile::encode(label::CERTIFICATE, &self.der)
    }

    /// What the certificate says.
    pub fn info(&self) -> &CertificateInfo {
        &self.info
    }

    /// Whether `key` is the private half of this certificate's public key.
    pub fn matches_key(&self, key: &PrivateKey) -> bool {
        self.info.public_key_raw == key.public_key_raw()
    }

    /// Whether `now` lies within the validity period.
    pub fn is_valid_at(&self, now: OffsetDateTime) -> bool {
        self.info.not_before <= now && now <= self.info.not_after
    }

    /// The public key: the SubjectPublicKeyInfo's BIT STRING content.
    pub fn public_key_raw(&self) -> &[u8] {
        &self.info.public_key_raw
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.info.spki_der
    }

    /// Whether this certificate was issued by `issuer`: the issuer name matches and, when both
    /// carry key identifiers, the authority key identifier is the issuer's subject key
    /// identifier; otherwise the signature is verified with the issuer's key. No validity or
    /// constraint checks, so it answers for expired certificates too. Identifier comparison keeps
    /// this cheap enough to run over thousands of deployed certificates.
    pub fn is_signed_by(&self, issuer: &Self) -> bool {
        if self.info.issuer_raw != issuer.info.subject_raw {
            return false;
        }
        if let (Some(aki), Some(ski)) = (&self.info.authority_key_id, &issuer.info.subject_key_id) {
            return aki == ski;
        }
        let Ok((_, leaf)) = X509Certificate::from_der(&self.der) else {
            return false;
        };
        let Ok((_, ca)) = X509Certificate::from_der(&issuer.der) else {
            return false;
        };
        leaf.verify_signature(Some(ca.public_key())).is_ok()
    }
}

fn info_of(cert: &X509Certificate<'_>, der: &[u8], origin: &str) -> Result<CertificateInfo> {
    let bad = |problem: String| Error::Certificate {
        origin: origin.to_owned(),
        problem,
    };
    let time = |t: i64| {
        OffsetDateTime::from_unix_timestamp(t).map_err(|_| bad("validity date out of range".into()))
    };
    let serial = Serial::from_be_bytes(cert.raw_serial());
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let mut subject_alt_names = Vec::new();
    let mut is_ca = false;
    let mut profile = None;
    let mut subject_key_id = None;
    let mut authority_key_id = None;
    let mut permitted_dns_domains = Vec::new();
    let mut constraints = crate::constraints::Constraints::default();
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    if let Some(n) = subject_name_of(name) {
                        subject_alt_names.push(n);
                    }
                }
            }
            ParsedExtension::BasicConstraints(bc) => is_ca = bc.ca,
            ParsedExtension::ExtendedKeyUsage(eku) => {
                profile = Profile::from_eku(eku);
            }
            ParsedExtension::SubjectKeyIdentifier(id) => subject_key_id = Some(id.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                authority_key_id = aki.key_identifier.as_ref().map(|k| k.0.to_vec());
            }
            ParsedExtension::NameConstraints(nc) => {
                for subtree in nc.permitted_subtrees.iter().flatten() {
                    match subtree.base {
                        GeneralName::DNSName(d) => {
                            permitted_dns_domains.push(d.to_ascii_lowercase());
                        }
                        GeneralName::IPAddress(b) => {
                            constraints.permitted_ip.extend(ip_subtree(b));
                        }
                        _ => {}
                    }
                }
                for subtree in nc.excluded_subtrees.iter().flatten() {
                    if let GeneralName::IPAddress(b) = subtree.base {
                        constraints.excluded_ip.extend(ip_subtree(b));
                    }
                }
            }
            ParsedExtension::UnsupportedExtension { .. } if ext.critical => {
                return Err(bad(format!("unsupported critical extension {}", ext.oid)));
            }
            ParsedExtension::ParseError { error } => {
                return Err(bad(format!("malformed extension {}: {error}", ext.oid)));
            }
            _ => {}
        }
    }
    let spki = cert.public_key();
    let (identified, rsa_bits) = KeyAlgorithm::of_spki(spki);
    let key_description = match (&identified, rsa_bits) {
        (Ok(a), _) => a.name().to_owned(),
        (Err(_), Some(bits)) => format!("rsa-{bits}"),
        (Err(_), None) => format!("unsupported ({})", spki.algorithm.algorithm.to_id_string()),
    };
    Ok(CertificateInfo {
        serial,
        subject: cert.subject().to_string(),
        common_name,
        issuer: cert.issuer().to_string(),
        subject_alt_names,
        not_before: time(cert.validity().not_before.timestamp())?,
        not_after: time(cert.validity().not_after.timestamp())?,
        sha256_fingerprint: sha256_fingerprint(der),
        key_algorithm: identified.ok(),
        key_description,
        is_ca,
        profile,
        self_issued: cert.subject().as_raw() == cert.issuer().as_raw(),
        constraints: crate::constraints::Constraints {
            permitted_dns: permitted_dns_domains.clone(),
            ..constraints
        },
        permitted_dns_domains,
        public_key_raw: spki.subject_public_key.data.to_vec(),
        subject_key_id,
        authority_key_id,
        issuer_raw: cert.issuer().as_raw().to_vec(),
        subject_raw: cert.subject().as_raw().to_vec(),
        spki_der: spki.raw.to_vec(),
    })
}

pub(crate) fn subject_name_of(name: &GeneralName<'_>) -> Option<SubjectName> {
    match name {
        GeneralName::DNSName(d) => Some(SubjectName::Dns(d.to_ascii_lowercase())),
        GeneralName::URI(u) => Some(SubjectName::Uri((*u).to_owned())),
        GeneralName::RFC822Name(e) => Some(SubjectName::Email((*e).to_owned())),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => <[u8; 4]>::try_from(*bytes)
                .ok()
                .map(|b| SubjectName::Ip(IpAddr::from(b))),
            16 => <[u8; 16]>::try_from(*bytes)
                .ok()
                .map(|b| SubjectName::Ip(IpAddr::from(b))),
            _ => None,
        },
        _ => None,
    }
}

/// The purpose a chain is verified for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Usage {
    /// TLS server authentication.
    Server,
    /// TLS client authentication.
    Client,
}

/// What a chain is verified against: the intermediates that may be on the path, and the roots
/// trusted.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Trust<'a> {
    /// Intermediates (untrusted, used to build the path).
    pub intermediates: &'a [Certificate],
    /// Trust anchors.
    pub roots: &'a [Certificate],
}

impl<'a> Trust<'a> {
    /// Paths through `intermediates` to one of `roots`.
    pub fn new(intermediates: &'a [Certificate], roots: &'a [Certificate]) -> Self {
        Self {
            intermediates,
            roots,
        }
    }
}

/// Verifies `leaf` against a bundle as operators keep them (intermediates and the root in one
/// file): its self-signed certificates are the roots trusted, the others the intermediates, and
/// the purpose is the leaf's own profile (server unless it is client-only).
pub fn verify_bundle(
    leaf: &Certificate,
    bundle: &[Certificate],
    now: OffsetDateTime,
) -> Result<()> {
    let (roots, intermediates): (Vec<_>, Vec<_>) =
        bundle.iter().cloned().partition(|c| c.info().self_issued);
    if roots.is_empty() {
        return Err(Error::ChainInvalid {
            reason: "the bundle holds no root (self-signed) certificate to trust".to_owned(),
        });
    }
    let usage = match leaf.info().profile {
        Some(p) if !p.server() => Usage::Client,
        _ => Usage::Server,
    };
    verify_chain(leaf, &Trust::new(&intermediates, &roots), usage, now)
}

/// Verifies `leaf` up to one of the trusted roots at time `now`, for `usage`, with
/// rustls-webpki (signatures, validity, basic constraints, name constraints, EKU).
pub fn verify_chain(
    leaf: &Certificate,
    trust: &Trust<'_>,
    usage: Usage,
    now: OffsetDateTime,
) -> Result<()> {
    let Trust {
        intermediates,
        roots,
    } = *trust;
    let leaf_der = CertificateDer::from(leaf.der());
    let root_ders: Vec<CertificateDer<'_>> = roots
        .iter()
        .map(|r| CertificateDer::from(r.der()))
        .collect();
    let anchors = root_ders
        .iter()
        .map(|d| {
            webpki::anchor_from_trusted_cert(d).map_err(|e| Error::ChainInvalid {
                reason: format!("root is not a usable trust anchor: {e}"),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let inter: Vec<CertificateDer<'_>> = intermediates
        .iter()
        .map(|c| CertificateDer::from(c.der()))
        .collect();
    let ee = webpki::EndEntityCert::try_from(&leaf_der).map_err(|e| Error::ChainInvalid {
        reason: format!("leaf cannot be parsed by the verifier: {e}"),
    })?;
    let seconds = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    let when = UnixTime::since_unix_epoch(std::time::Duration::from_secs(seconds));
    let purpose = match usage {
        Usage::Server => webpki::KeyUsage::server_auth(),
        Usage::Client => webpki::KeyUsage::client_auth(),
    };
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &inter,
        when,
        purpose,
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| Error::ChainInvalid {
        reason: describe_webpki(&e),
    })
}

fn describe_webpki(e: &webpki::Error) -> String {
    use webpki::Error as E;
    match e {
        E::UnknownIssuer => "no path to a trusted root (unknown issuer)".to_owned(),
        E::CertExpired { .. } => "a certificate in the chain has expired".to_owned(),
        E::CertNotValidYet { .. } => "a certificate in the chain is not valid yet".to_owned(),
        E::InvalidSignatureForPublicKey => "a signature does not verify".to_owned(),
        E::NameConstraintViolation => "a name violates the CA's name constraints".to_owned(),
        E::RequiredEkuNotFoundContext(_) => {
            "the leaf lacks the extended key usage for this purpose".to_owned()
        }
        E::CaUsedAsEndEntity => "the leaf is a CA certificate".to_owned(),
        E::EndEntityUsedAsCa => "a leaf certificate is used as an issuer".to_owned(),
        other => format!("{other:?}"),
    }
}

/// An iPAddress subtree of name constraints: an address and a mask of the same length (8
/// bytes for IPv4, 32 for IPv6).
fn ip_subtree(bytes: &[u8]) -> Option<ipnet::IpNet> {
    let (addr, mask): (IpAddr, &[u8]) = match bytes.len() {
        8 => {
            let a: [u8; 4] = bytes[..4].try_into().ok()?;
            (a.into(), &bytes[4..])
        }
        32 => {
            let a: [u8; 16] = bytes[..16].try_into().ok()?;
            (a.into(), &bytes[16..])
        }
        _ => return None,
    };
    let prefix = mask.iter().map(|b| b.count_ones()).sum::<u32>();
    ipnet::IpNet::new(addr, u8::try_from(prefix).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_parse_forms() {
        let a = Serial::parse("3e:25:50:1c").unwrap();
        assert_eq!(a.to_hex(), "3e25501c");
        assert_eq!(Serial::parse("3E25501C").unwrap(), a);
        assert_eq!(Serial::parse("3e-25-50-1c").unwrap(), a);
        assert_eq!(Serial::parse("0x003e25501c").unwrap(), a);
        assert_eq!(a.to_colon_hex(), "3e:25:50:1c");
        assert_eq!(Serial::parse("abc").unwrap().to_hex(), "0abc");
        for bad in ["", "zz", "00", ":", "12 34"] {
            assert!(Serial::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn random_serials_are_positive_and_distinct() {
        let a = Serial::random().unwrap();
        let b = Serial::random().unwrap();
        assert_ne!(a, b);
        assert!(a.as_bytes().len() <= 16 && !a.as_bytes().is_empty());
    }
}
