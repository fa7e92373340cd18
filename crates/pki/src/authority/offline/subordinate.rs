//! A subordinate CA for a key held elsewhere (Vault's intermediate): the offline root signs the
//! CSR's public key into a certificate built from policy, never from the CSR's extensions.

use rcgen::Issuer;
use time::{Duration, OffsetDateTime};

use super::{BACKDATE, ca_params};
use crate::cert::Certificate;
use crate::error::{Error, Result, Rfc3339};
use crate::key::PrivateKey;
use crate::request::Csr;

/// Signs `csr`'s key as an intermediate CA named `common_name` under `root` (path length 0,
/// keyCertSign + cRLSign, the root's DNS name constraints), valid for `ttl` but never beyond the
/// root.
pub fn sign(
    root: &Certificate,
    root_key: &PrivateKey,
    csr: &Csr,
    common_name: &str,
    ttl: Duration,
    now: OffsetDateTime,
) -> Result<Certificate> {
    let info = root.info();
    if !root.matches_key(root_key) {
        return Err(Error::KeyMismatch {
            certificate: info.subject.clone(),
            key: "the root key".to_owned(),
        });
    }
    if !info.is_ca || !root.is_valid_at(now) {
        return Err(Error::CaNotValid {
            ca: info.subject.clone(),
            now: Rfc3339(now),
            not_before: Rfc3339(info.not_before),
            not_after: Rfc3339(info.not_after),
        });
    }
    let organisation = common_name
        .strip_suffix(" Intermediate CA")
        .or_else(|| {
            info.common_name
                .as_deref()
                .and_then(|cn| cn.strip_suffix(" Root CA"))
        })
        .unwrap_or(common_name);
    let not_after = (now + ttl).min(info.not_after);
    let mut params = ca_params(
        common_name,
        organisation,
        0,
        &info.permitted_dns_domains,
        now - BACKDATE,
        not_after,
    )?;
    params.use_authority_key_identifier_extension = true;
    let issuer = Issuer::from_ca_cert_der(&root.der().to_vec().into(), root_key)?;
    let spki = rcgen::SubjectPublicKeyInfo::from_der(csr.spki_der())?;
    let cert = params.signed_by(&spki, &issuer)?;
    Certificate::from_der(cert.der().to_vec(), "the signed intermediate")
}
