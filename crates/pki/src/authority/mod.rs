//! Signing authorities behind one interface: the offline CA and Vault / OpenBao.
//!
//! [`Authority`] is an enum rather than a trait object: there are two implementations, both
//! known here, and callers may still reach the variant for backend-specific operations.

pub mod offline;

use time::{Duration, OffsetDateTime};

use crate::cert::{Certificate, Serial};
use crate::error::Result;
use crate::key::{KeyAlgorithm, PrivateKey};
use crate::request::{CertificateRequest, SubjectKey};

pub use offline::{ListFilter, Record, RevocationReason, RevokeOutcome, SignedCrl, Status};

/// A newly issued certificate with everything needed to deploy it.
#[derive(Debug)]
pub struct IssuedCertificate {
    /// The leaf.
    pub certificate: Certificate,
    /// Intermediates, the leaf's issuer first, root excluded.
    pub chain: Vec<Certificate>,
    /// The root, when known.
    pub root: Option<Certificate>,
    /// The private key, when it was generated or reused here (absent for a CSR).
    pub private_key: Option<PrivateKey>,
    /// Warnings from the authority (a clamped TTL, say).
    pub warnings: Vec<String>,
}

/// Where certificates are signed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Authority {
    /// The offline CA in a directory.
    Offline(offline::OfflineCa),
}

impl Authority {
    /// A short name of the backend: `offline` or `vault`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Offline(_) => "offline",
        }
    }

    /// The CA certificate that signs new certificates now (a certificate it did not sign was
    /// issued by an earlier or another CA).
    pub async fn current_issuer(&self) -> Result<Certificate> {
        match self {
            Self::Offline(ca) => Ok(ca.intermediate().clone()),
        }
    }

    /// Issues a certificate for a new key of `algorithm` generated on this machine.
    pub async fn issue(
        &self,
        request: &CertificateRequest,
        algorithm: KeyAlgorithm,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate> {
        match self {
            Self::Offline(ca) => ca.issue(request, algorithm, now),
        }
    }

    /// Signs a certificate for a key we hold or a CSR. The result carries no private key; the
    /// caller attaches its own.
    pub async fn sign(
        &self,
        request: &CertificateRequest,
        key: SubjectKey<'_>,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate> {
        match self {
            Self::Offline(ca) => Ok(ca.issued(ca.sign(request, key, now)?, None)),
        }
    }

    /// Revokes a certificate by serial.
    pub async fn revoke(
        &self,
        serial: &Serial,
        reason: RevocationReason,
        now: OffsetDateTime,
    ) -> Result<RevokeOutcome> {
        match self {
            Self::Offline(ca) => ca.revoke(serial, reason, now),
        }
    }

    /// A current CRL: signed now for the offline CA (valid for `next_update`).
    pub async fn crl(&self, next_update: Duration, now: OffsetDateTime) -> Result<SignedCrl> {
        match self {
            Self::Offline(ca) => ca.crl(next_update, now),
        }
    }

    /// Calls `f` with each certificate known to the authority that matches `filter`, in expiry
    /// order, without collecting them first.
    pub async fn list_each(
        &self,
        filter: &ListFilter,
        now: OffsetDateTime,
        f: impl FnMut(Record) -> Result<()>,
    ) -> Result<()> {
        match self {
            Self::Offline(ca) => ca.inventory().for_each(filter, now, f),
        }
    }

    /// Certificates known to the authority, filtered.
    pub async fn list(&self, filter: &ListFilter, now: OffsetDateTime) -> Result<Vec<Record>> {
        match self {
            Self::Offline(ca) => ca.list(filter, now),
        }
    }
}
