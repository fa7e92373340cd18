//! Signing with a CA key held in memory: leaf certificates built from policy (never from a
//! CSR's extensions), and CRLs.

use rcgen::{
    CertificateParams, CertificateRevocationListParams, DistinguishedName, DnType, IsCa, Issuer,
    KeyIdMethod, KeyPair, PublicKeyData, RevokedCertParams, SanType, SerialNumber,
    SignatureAlgorithm,
};
use time::{Duration, OffsetDateTime};

use crate::cert::{Certificate, Serial};
use crate::error::{Error, Result, Rfc3339};
use crate::key::PrivateKey;
use crate::name::SubjectName;
use crate::request::{CertificateRequest, SubjectKey, Wildcards};

/// How far NotBefore is set in the past, so that a peer whose clock is a little behind does not
/// reject a brand-new certificate (Vault uses 30 s, Let's Encrypt one hour).
pub const BACKDATE: Duration = Duration::minutes(5);

/// What makes one signature unique: the serial and the time it is made.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Signing<'a> {
    /// The serial (128 random bits, see [`Serial::random`]).
    pub serial: &'a Serial,
    /// The time of signing: NotBefore is backdated from it.
    pub now: OffsetDateTime,
}

impl<'a> Signing<'a> {
    /// A signature with `serial` at `now`.
    pub fn new(serial: &'a Serial, now: OffsetDateTime) -> Self {
        Self { serial, now }
    }
}

/// The number and dates of a CRL.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct CrlTerms {
    /// Its CRL number (each one larger than the last).
    pub number: u64,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// How long it is valid: nextUpdate is thisUpdate plus this.
    pub valid_for: Duration,
}

impl CrlTerms {
    /// CRL number `number`, valid from `this_update` for `valid_for`.
    pub fn new(number: u64, this_update: OffsetDateTime, valid_for: Duration) -> Self {
        Self {
            number,
            this_update,
            valid_for,
        }
    }
}

/// A CA certificate with its private key, ready to sign.
pub struct CaSigner {
    certificate: Certificate,
    issuer: Issuer<'static, PrivateKey>,
    permitted_dns: Vec<String>,
    wildcards: Wildcards,
}

impl std::fmt::Debug for CaSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaSigner")
            .field("subject", &self.certificate.info().subject)
            .finish_non_exhaustive()
    }
}

impl PublicKeyData for PrivateKey {
    fn der_bytes(&self) -> &[u8] {
        self.key_pair().der_bytes()
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.key_pair().algorithm()
    }
}

impl rcgen::SigningKey for PrivateKey {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        self.key_pair().sign(msg)
    }
}

impl CaSigner {
    /// Pairs a CA certificate with its key; the key must match and the certificate must be a CA.
    pub fn new(certificate: Certificate, key: PrivateKey, key_origin: &str) -> Result<Self> {
        if !certificate.matches_key(&key) {
            return Err(Error::KeyMismatch {
                certificate: certificate.info().subject.clone(),
                key: key_origin.to_owned(),
            });
        }
        if !certificate.info().is_ca {
            return Err(Error::Certificate {
                origin: certificate.info().subject.clone(),
                problem: "not a CA certificate (basicConstraints CA:FALSE)".to_owned(),
            });
        }
        let issuer = Issuer::from_ca_cert_der(&certificate.der().to_vec().into(), key)?;
        let permitted_dns = certificate.info().permitted_dns_domains.clone();
        Ok(Self {
            certificate,
            issuer,
            permitted_dns,
            wildcards: Wildcards::default(),
        })
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// The same signer, issuing wildcard names or not (refused unless said otherwise).
    #[must_use]
    pub fn with_wildcards(mut self, wildcards: Wildcards) -> Self {
        self.wildcards = wildcards;
        self
    }

    /// DNS domains the CA's name constraints permit (empty: unconstrained).
    pub fn permitted_dns(&self) -> &[String] {
        &self.permitted_dns
    }

    /// Checks that the CA can sign `request` at `now`: the CA is valid, the names are inside its
    /// name constraints and the lifetime ends before the CA's.
    pub fn check(&self, request: &CertificateRequest, now: OffsetDateTime) -> Result<()> {
        let ca = self.certificate.info();
        if !self.certificate.is_valid_at(now) {
            return Err(Error::CaNotValid {
                ca: ca.subject.clone(),
                now: Rfc3339(now),
                not_before: Rfc3339(ca.not_before),
                not_after: Rfc3339(ca.not_after),
            });
        }
        request.check_constraints(&ca.constraints, self.wildcards)?;
        let not_after = now + request.ttl();
        if not_after > ca.not_after {
            return Err(Error::TtlBeyondCa {
                ca: ca.subject.clone(),
                requested: Rfc3339(not_after),
                ca_not_after: Rfc3339(ca.not_after),
                max_days: (ca.not_after - now).whole_days(),
            });
        }
        Ok(())
    }

    /// Signs a leaf for `request` and `key` with the serial and time of `at`, after
    /// [`CaSigner::check`].
    pub fn sign(
        &self,
        request: &CertificateRequest,
        key: SubjectKey<'_>,
        at: &Signing<'_>,
    ) -> Result<Certificate> {
        self.check(request, at.now)?;
        let params = leaf_params(request, key.algorithm(), at)?;
        let cert = match key {
            SubjectKey::Key(k) => params.signed_by(k, &self.issuer)?,
            SubjectKey::Csr(csr) => {
                let spki = rcgen::SubjectPublicKeyInfo::from_der(csr.spki_der())?;
                params.signed_by(&spki, &self.issuer)?
            }
        };
        Certificate::from_der(cert.der().to_vec(), "newly signed certificate")
    }

    /// Signs a CRL listing `revoked` with the number and dates of `terms`.
    pub fn sign_crl(
        &self,
        revoked: Vec<RevokedCertParams>,
        terms: &CrlTerms,
    ) -> Result<rcgen::CertificateRevocationList> {
        // The CRL's authority key identifier must equal the issuer's SKI, or `openssl verify
        // -crl_check` cannot match them; rcgen does not take it from the issuer by itself.
        let key_identifier_method = match &self.certificate.info().subject_key_id {
            Some(ski) => KeyIdMethod::PreSpecified(ski.clone()),
            None => KeyIdMethod::Sha256,
        };
        let params = CertificateRevocationListParams {
            this_update: terms.this_update,
            next_update: terms.this_update + terms.valid_for,
            crl_number: SerialNumber::from_slice(&terms.number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: revoked,
            key_identifier_method,
        };
        Ok(params.signed_by(&self.issuer)?)
    }
}

/// Leaf parameters, every field set explicitly: rcgen's defaults (validity 1975–4096, a serial
/// derived from the public key, no key identifiers) are unfit for a CA.
fn leaf_params(
    request: &CertificateRequest,
    algorithm: crate::key::KeyAlgorithm,
    at: &Signing<'_>,
) -> Result<CertificateParams> {
    let now = at.now;
    let mut params = CertificateParams::default();
    params.serial_number = Some(SerialNumber::from_slice(at.serial.as_bytes()));
    params.not_before = now - BACKDATE;
    params.not_after = now + request.ttl();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, request.common_name());
    params.distinguished_name = dn;
    params.subject_alt_names = san_types(request.names())?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = request.profile().key_usages(algorithm);
    params.extended_key_usages = request.profile().extended_key_usages();
    params.use_authority_key_identifier_extension = true;
    params.key_identifier_method = KeyIdMethod::Sha256;
    Ok(params)
}

/// Our names as rcgen SAN values.
pub(crate) fn san_types(names: &[SubjectName]) -> Result<Vec<SanType>> {
    names
        .iter()
        .map(|n| {
            Ok(match n {
                SubjectName::Dns(d) => SanType::DnsName(d.as_str().try_into()?),
                SubjectName::Ip(ip) => SanType::IpAddress(*ip),
                SubjectName::Uri(u) => SanType::URI(u.as_str().try_into()?),
                SubjectName::Email(e) => SanType::Rfc822Name(e.as_str().try_into()?),
            })
        })
        .collect()
}

/// A key pair for tests and benchmarks that need an rcgen handle.
#[doc(hidden)]
pub fn key_pair_of(key: &PrivateKey) -> &KeyPair {
    key.key_pair()
}
