//! A subordinate CA for a key held elsewhere (Vault's intermediate): the offline root signs the
//! CSR's public key into a certificate built from policy, never from the CSR's extensions.

use rcgen::Issuer;
use time::{Duration, OffsetDateTime};

use super::{BACKDATE, CaSpec, ca_params, naming};
use crate::cert::Certificate;
use crate::error::{Error, Result, Rfc3339};
use crate::key::PrivateKey;
use crate::request::Csr;

/// The intermediate a root is asked to sign: its name and lifetime.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Intermediate<'a> {
    /// Its common name.
    pub common_name: &'a str,
    /// Its lifetime (cut to the root's).
    pub ttl: Duration,
}

impl<'a> Intermediate<'a> {
    /// An intermediate `common_name` valid for `ttl`.
    pub fn new(common_name: &'a str, ttl: Duration) -> Self {
        Self { common_name, ttl }
    }
}

/// A root certificate with its private key, able to sign subordinate CAs.
pub struct Root {
    certificate: Certificate,
    key: PrivateKey,
}

impl std::fmt::Debug for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Root")
            .field("certificate", &self.certificate.info().subject)
            .finish_non_exhaustive()
    }
}

impl Root {
    /// Pairs a root certificate with its key; refuses a key that does not match.
    pub fn new(certificate: Certificate, key: PrivateKey) -> Result<Self> {
        if !certificate.matches_key(&key) {
            return Err(Error::KeyMismatch {
                certificate: certificate.info().subject.clone(),
                key: "the root key".to_owned(),
            });
        }
        Ok(Self { certificate, key })
    }

    /// The root certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.certificate
    }

    /// Signs `csr`'s key as the intermediate CA `spec` describes (path length 0, keyCertSign +
    /// cRLSign, the root's DNS name constraints), never valid beyond the root.
    pub fn sign_intermediate(
        &self,
        csr: &Csr,
        spec: &Intermediate<'_>,
        now: OffsetDateTime,
    ) -> Result<Certificate> {
        let spki = rcgen::SubjectPublicKeyInfo::from_der(csr.spki_der())?;
        self.sign_intermediate_key(&spki, spec, now)
    }

    /// [`Root::sign_intermediate`] for a public key at hand (a key this process generated).
    pub(crate) fn sign_intermediate_key(
        &self,
        public_key: &impl rcgen::PublicKeyData,
        spec: &Intermediate<'_>,
        now: OffsetDateTime,
    ) -> Result<Certificate> {
        let Intermediate { common_name, ttl } = *spec;
        let info = self.certificate.info();
        if !info.is_ca || !self.certificate.is_valid_at(now) {
            return Err(Error::CaNotValid {
                ca: info.subject.clone(),
                now: Rfc3339(now),
                not_before: Rfc3339(info.not_before),
                not_after: Rfc3339(info.not_after),
            });
        }
        let organisation = naming::organisation_of(common_name)
            .or_else(|| {
                info.common_name
                    .as_deref()
                    .and_then(naming::organisation_of)
            })
            .unwrap_or(common_name);
        let not_after = (now + ttl).min(info.not_after);
        let mut params = ca_params(&CaSpec {
            common_name,
            organisation,
            path_len: 0,
            constraints: &info.constraints,
            not_before: now - BACKDATE,
            not_after,
        })?;
        params.use_authority_key_identifier_extension = true;
        let issuer = Issuer::from_ca_cert_der(&self.certificate.der().to_vec().into(), &self.key)?;
        let cert = params.signed_by(public_key, &issuer)?;
        Certificate::from_der(cert.der().to_vec(), "the signed intermediate")
    }
}
