//! What is asked for: a common name, subject alternative names, a profile and a lifetime; and
//! certificate signing requests, which contribute their public key and vetted names only.

use time::Duration;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::{FromDer, ParsedExtension};

use crate::cert::subject_name_of;
use crate::error::{Error, Result};
use crate::key::{KeyAlgorithm, PrivateKey};
use crate::name::{self, SubjectName};
use crate::pemfile::{self, label};
use crate::profile::Profile;

/// Most names one certificate may carry; more is a mistake or an attack on the verifier.
pub const MAX_NAMES: usize = 100;

/// The lifetime of a leaf when none is asked for: 30 days.
pub const DEFAULT_TTL: Duration = Duration::days(30);

/// Whether a CA issues wildcard names (`*.example.internal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Wildcards {
    /// Refused (the default: a wildcard key serves every host of the domain).
    #[default]
    Refused,
    /// Allowed, as the CA was made with `--allow-wildcards`.
    Allowed,
}

/// A validated request for a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRequest {
    common_name: String,
    names: Vec<SubjectName>,
    profile: Profile,
    ttl: Duration,
}

impl CertificateRequest {
    /// Builds a request. The common name is validated and, when it is a host name or an IP
    /// address, added to the subject alternative names (clients ignore the CN); a server
    /// certificate's must be one, a client certificate's one-label name (`backup-agent`) stays
    /// in the subject only. Duplicates are dropped. A server certificate needs at least one DNS
    /// name or IP address.
    pub fn new(
        common_name: &str,
        names: impl IntoIterator<Item = SubjectName>,
        profile: Profile,
        ttl: Duration,
    ) -> Result<Self> {
        let common_name = name::common_name(common_name)?;
        let mut all = Vec::new();
        // A CN that looks like a host name must be a valid one; a display name ("Backup
        // Agent") is fine for client certificates and stays out of the SANs.
        let looks_like_name =
            !common_name.contains(char::is_whitespace) && common_name.contains(['.', '*', ':']);
        let parsed = SubjectName::parse(&common_name);
        let host = matches!(parsed, Ok(SubjectName::Dns(_) | SubjectName::Ip(_)));
        match parsed {
            Ok(n @ SubjectName::Ip(_)) => all.push(n),
            // A client's one-label name ("backup-agent") names someone, not a host: it stays
            // in the subject only. A server's is a host name.
            Ok(SubjectName::Dns(d)) if profile.server() || d.contains('.') => {
                all.push(SubjectName::Dns(d));
            }
            Ok(_) => {}
            Err(e) if looks_like_name => return Err(e),
            Err(_) => {}
        }
        if profile.server() && !host {
            return Err(Error::InvalidRequest(
                "a server certificate's common name must be a host name or an IP address",
            ));
        }
        for n in names {
            if !all.contains(&n) {
                all.push(n);
            }
        }
        if all.len() > MAX_NAMES {
            return Err(Error::InvalidRequest(
                "more than 100 subject alternative names",
            ));
        }
        if profile.server()
            && !all
                .iter()
                .any(|n| matches!(n, SubjectName::Dns(_) | SubjectName::Ip(_)))
        {
            return Err(Error::InvalidRequest(
                "a server certificate needs a DNS name or IP address (as common name or alternative name)",
            ));
        }
        if ttl <= Duration::ZERO || ttl > crate::duration::MAX {
            return Err(Error::InvalidRequest(
                "the TTL must be positive and at most 100 years",
            ));
        }
        Ok(Self {
            common_name,
            names: all,
            profile,
            ttl,
        })
    }

    /// A request for the successor of `cert`: the same common name, names and profile. The
    /// lifetime is `ttl`, or the original one rounded to the hour (which drops the backdating).
    pub fn renewal_of(cert: &crate::cert::Certificate, ttl: Option<Duration>) -> Result<Self> {
        let info = cert.info();
        let profile = info.profile.ok_or(Error::InvalidRequest(
            "the certificate has no serverAuth or clientAuth usage, so its profile is unknown",
        ))?;
        let common_name = match &info.common_name {
            Some(cn) => cn.clone(),
            None => info
                .subject_alt_names
                .first()
                .map(SubjectName::value)
                .ok_or(Error::InvalidRequest(
                    "the certificate has no name to renew",
                ))?,
        };
        let ttl = ttl.unwrap_or_else(|| {
            let hours = ((info.not_after - info.not_before).whole_minutes() + 30) / 60;
            Duration::hours(hours.max(1))
        });
        Self::new(
            &common_name,
            info.subject_alt_names.iter().cloned(),
            profile,
            ttl,
        )
    }

    /// The subject common name.
    pub fn common_name(&self) -> &str {
        &self.common_name
    }

    /// The subject alternative names, CN first when it is a name.
    pub fn names(&self) -> &[SubjectName] {
        &self.names
    }

    /// The profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The requested lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Checks every name against permitted DNS domains (empty = no constraint).
    pub fn check_permitted(&self, permitted: &[String]) -> Result<()> {
        if let Ok(cn) = SubjectName::parse(&self.common_name) {
            name::check_permitted(&cn, permitted)?;
        }
        self.names
            .iter()
            .try_for_each(|n| name::check_permitted(n, permitted))
    }

    /// Checks the request against a CA's name constraints (every name, and a common name that
    /// parses as one: some clients check it too) and its wildcard policy.
    pub fn check_constraints(
        &self,
        constraints: &crate::constraints::Constraints,
        wildcards: Wildcards,
    ) -> Result<()> {
        let cn = SubjectName::parse(&self.common_name).ok();
        for n in cn.iter().chain(&self.names) {
            if wildcards == Wildcards::Refused
                && let SubjectName::Dns(d) = n
                && d.starts_with("*.")
            {
                return Err(Error::NameRefused {
                    name: n.to_string(),
                    reason: "this CA issues no wildcard names (allow them with \
                             --allow-wildcards when the CA is made)"
                        .to_owned(),
                });
            }
            constraints.check(n)?;
        }
        Ok(())
    }

    /// Builds a PKCS#10 CSR for this request signed by `key` (for Vault's `sign/:role`, which
    /// takes the public key from a CSR).
    pub fn to_csr_pem(&self, key: &PrivateKey) -> Result<String> {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, self.common_name.as_str());
        params.subject_alt_names = crate::authority::offline::signer::san_types(&self.names)?;
        let csr = params.serialize_request(key.key_pair())?;
        Ok(csr.pem()?)
    }
}

/// Which public key a certificate is issued for.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum SubjectKey<'a> {
    /// A key we hold (generated or reused).
    Key(&'a PrivateKey),
    /// The key of a verified CSR.
    Csr(&'a Csr),
}

impl SubjectKey<'_> {
    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        match self {
            Self::Key(k) => k.algorithm(),
            Self::Csr(c) => c.key_algorithm(),
        }
    }
}

/// A parsed CSR whose signature verified and which asks for nothing a leaf may not have.
#[derive(Debug, Clone)]
pub struct Csr {
    der: Vec<u8>,
    spki_der: Vec<u8>,
    common_name: Option<String>,
    names: Vec<SubjectName>,
    key_algorithm: KeyAlgorithm,
}

const OID_SHA1_RSA: &str = "1.2.840.113549.1.1.5";
const OID_MD5_RSA: &str = "1.2.840.113549.1.1.4";
const OID_MD2_RSA: &str = "1.2.840.113549.1.1.2";
const OID_ECDSA_SHA1: &str = "1.2.840.10045.4.1";
const OID_DSA_SHA1: &str = "1.2.840.10040.4.3";

impl Csr {
    /// Parses and vets a PEM CSR.
    pub fn from_pem(text: &[u8], origin: &str) -> Result<Self> {
        let block = pemfile::single_block(text, origin, &[label::CSR, "NEW CERTIFICATE REQUEST"])?;
        Self::from_der(block.der, origin)
    }

    /// Parses and vets a DER CSR: the signature must verify with the CSR's own key, the key must
    /// be a supported algorithm, and requested extensions must not ask for CA powers or usages
    /// beyond TLS server and client authentication.
    pub fn from_der(der: Vec<u8>, origin: &str) -> Result<Self> {
        let bad = |problem: String| Error::Csr {
            origin: origin.to_owned(),
            problem,
        };
        let refuse = |problem: String| Error::CsrPolicy {
            origin: origin.to_owned(),
            problem,
        };
        let (rest, csr) = X509CertificationRequest::from_der(&der)
            .map_err(|e| bad(format!("not a valid PKCS#10 request ({e})")))?;
        if !rest.is_empty() {
            return Err(bad(format!(
                "{} trailing bytes after the request",
                rest.len()
            )));
        }
        let sig_oid = csr.signature_algorithm.algorithm.to_id_string();
        if [
            OID_SHA1_RSA,
            OID_MD5_RSA,
            OID_MD2_RSA,
            OID_ECDSA_SHA1,
            OID_DSA_SHA1,
        ]
        .contains(&sig_oid.as_str())
        {
            return Err(refuse(format!(
                "signature algorithm {sig_oid} (MD5/SHA-1) is too weak"
            )));
        }
        let info = &csr.certification_request_info;
        let key_algorithm = KeyAlgorithm::of_spki(&info.subject_pki).0.map_err(refuse)?;
        csr.verify_signature()
            .map_err(|_| bad("the request's signature does not verify".to_owned()))?;

        let common_name = info
            .subject
            .iter_common_name()
            .next()
            .map(|cn| {
                cn.as_str()
                    .map(str::to_owned)
                    .map_err(|_| bad("the common name is not valid text".to_owned()))
            })
            .transpose()?;
        let mut names = Vec::new();
        for ext in csr.requested_extensions().into_iter().flatten() {
            match ext {
                ParsedExtension::SubjectAlternativeName(san) => {
                    for general in &san.general_names {
                        let Some(n) = subject_name_of(general) else {
                            return Err(refuse(format!(
                                "subject alternative name {general} is of an unsupported type"
                            )));
                        };
                        // Re-validate through our own parser: the DER may hold anything.
                        let checked = SubjectName::parse(&n.to_string())
                            .map_err(|e| refuse(e.to_string()))?;
                        if !names.contains(&checked) {
                            names.push(checked);
                        }
                    }
                }
                ParsedExtension::BasicConstraints(bc) if bc.ca => {
                    return Err(refuse(
                        "it asks for CA:TRUE (basic constraints); leaf certificates are never CAs"
                            .to_owned(),
                    ));
                }
                ParsedExtension::BasicConstraints(_) => {}
                ParsedExtension::KeyUsage(ku) if (ku.key_cert_sign() || ku.crl_sign()) => {
                    return Err(refuse(
                        "it asks for keyCertSign or cRLSign key usage, reserved to CAs".to_owned(),
                    ));
                }
                ParsedExtension::ExtendedKeyUsage(eku) => {
                    if eku.any {
                        return Err(refuse(
                            "it asks for anyExtendedKeyUsage; only serverAuth and clientAuth \
                             are granted"
                                .to_owned(),
                        ));
                    }
                    let others = [
                        (eku.code_signing, "codeSigning"),
                        (eku.email_protection, "emailProtection"),
                        (eku.time_stamping, "timeStamping"),
                        (eku.ocsp_signing, "OCSPSigning"),
                    ];
                    if let Some((_, what)) = others.iter().find(|(asked, _)| *asked) {
                        return Err(refuse(format!(
                            "it asks for the {what} extended key usage; only serverAuth and \
                             clientAuth are granted"
                        )));
                    }
                    if let Some(oid) = eku.other.first() {
                        return Err(refuse(format!(
                            "it asks for extended key usage {oid}; only serverAuth and \
                             clientAuth are granted"
                        )));
                    }
                }
                ParsedExtension::NameConstraints(_) => {
                    return Err(refuse(
                        "it asks for name constraints, a CA extension".to_owned(),
                    ));
                }
                _ => {}
            }
        }
        if names.len() > MAX_NAMES {
            return Err(refuse("more than 100 subject alternative names".to_owned()));
        }
        Ok(Self {
            spki_der: info.subject_pki.raw.to_vec(),
            der,
            common_name,
            names,
            key_algorithm,
        })
    }

    /// The CSR's subject common name.
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// The CSR's subject alternative names (validated).
    pub fn names(&self) -> &[SubjectName] {
        &self.names
    }

    /// The algorithm of the CSR's public key.
    pub fn key_algorithm(&self) -> KeyAlgorithm {
        self.key_algorithm
    }

    /// The DER of the whole CSR.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The PEM of the whole CSR.
    pub fn pem(&self) -> String {
        pemfile::encode(label::CSR, &self.der)
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// A request from this CSR's names with the given profile and lifetime. `common_name`
    /// overrides the CSR's CN only if it names the same thing or the CSR has none; otherwise
    /// the CSR's first name stands in when it lacks a CN.
    pub fn to_request(
        &self,
        common_name: Option<&str>,
        profile: Profile,
        ttl: Duration,
    ) -> Result<CertificateRequest> {
        let cn = match (common_name, self.common_name()) {
            (Some(given), Some(in_csr)) if given != in_csr => {
                return Err(Error::InvalidRequest(
                    "the common name given differs from the CSR's; leave it out to use the CSR's",
                ));
            }
            (Some(given), _) => given.to_owned(),
            (None, Some(in_csr)) => in_csr.to_owned(),
            (None, None) => {
                self.names
                    .first()
                    .map(SubjectName::value)
                    .ok_or(Error::InvalidRequest(
                        "the CSR has neither a common name nor SANs",
                    ))?
            }
        };
        CertificateRequest::new(&cn, self.names.iter().cloned(), profile, ttl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(s: &str) -> SubjectName {
        SubjectName::parse(s).unwrap()
    }

    #[test]
    fn cn_becomes_a_san_once() {
        let r = CertificateRequest::new(
            "api.example.internal",
            [dns("api.example.internal"), dns("10.0.0.1")],
            Profile::Server,
            Duration::days(30),
        )
        .unwrap();
        assert_eq!(r.names().len(), 2);
    }

    #[test]
    fn server_needs_a_dns_name() {
        assert!(
            CertificateRequest::new("Alice Example", [], Profile::Server, Duration::days(1))
                .is_err()
        );
        assert!(
            CertificateRequest::new("Alice Example", [], Profile::Client, Duration::days(1))
                .is_ok()
        );
    }

    #[test]
    fn csr_round_trip() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let req = CertificateRequest::new(
            "db.example.internal",
            [dns("10.1.1.1")],
            Profile::Server,
            Duration::days(1),
        )
        .unwrap();
        let pem = req.to_csr_pem(&key).unwrap();
        let csr = Csr::from_pem(pem.as_bytes(), "csr").unwrap();
        assert_eq!(csr.common_name(), Some("db.example.internal"));
        assert_eq!(csr.names().len(), 2);
        assert_eq!(csr.key_algorithm(), KeyAlgorithm::EcdsaP256);
        let back = csr
            .to_request(None, Profile::Server, Duration::days(1))
            .unwrap();
        assert_eq!(back.names(), req.names());
    }

    #[test]
    fn csr_asking_for_ca_is_refused() {
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["x.example.internal".into()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = params
            .serialize_request(key.key_pair())
            .unwrap()
            .pem()
            .unwrap();
        let err = Csr::from_pem(pem.as_bytes(), "evil.csr")
            .unwrap_err()
            .to_string();
        assert!(err.contains("CA:TRUE") && err.contains("evil.csr"), "{err}");
    }
}
