//! Signing authorities behind one interface: the offline CA, Vault / OpenBao, and an ACME
//! server (Let's Encrypt).
//!
//! [`Authority`] is an enum rather than a trait object: there are three implementations, all
//! known here, and callers may still reach the variant for backend-specific operations.

pub mod acme;
pub(crate) mod answer;
pub mod offline;
pub mod vault;

use time::{Duration, OffsetDateTime};

use crate::cert::{Certificate, Serial};
use crate::error::Result;
use crate::key::{KeyAlgorithm, PrivateKey};
use crate::request::{CertificateRequest, SubjectKey};

pub use offline::{ListFilter, Record, RevocationReason, RevokeOutcome, SignedCrl, Status};

/// A newly issued certificate with everything needed to deploy it.
#[derive(Debug)]
#[non_exhaustive]
pub struct IssuedCertificate {
    /// The leaf.
    pub certificate: Certificate,
    /// Intermediates, the leaf's issuer first, root excluded.
    pub chain: Vec<Certificate>,
    /// The root, when known.
    pub root: Option<Certificate>,
    /// Every CA a holder should trust now, the backend's trust bundle (during a root
    /// rollover, more than `root`); empty when the backend has none to give (then `root`).
    pub trust: Vec<Certificate>,
    /// The private key, when it was generated or reused here (absent for a CSR).
    pub private_key: Option<PrivateKey>,
    /// Warnings from the authority (a clamped TTL, say).
    pub warnings: Vec<String>,
}

impl IssuedCertificate {
    /// A certificate with its chain (intermediates, issuer first), root and key, no warnings.
    pub fn new(
        certificate: Certificate,
        chain: Vec<Certificate>,
        root: Option<Certificate>,
        private_key: Option<PrivateKey>,
    ) -> Self {
        Self {
            certificate,
            chain,
            root,
            trust: Vec::new(),
            private_key,
            warnings: Vec::new(),
        }
    }
}

/// Many certificates to issue at once (see [`Authority::issue_many`]).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Batch<'a> {
    /// The requests.
    pub requests: &'a [CertificateRequest],
    /// The algorithm of every new key.
    pub algorithm: KeyAlgorithm,
    /// Requests in flight at once (Vault; the offline CA signs one after the other).
    pub concurrency: usize,
}

impl<'a> Batch<'a> {
    /// Requests in flight at once unless set otherwise.
    pub const DEFAULT_CONCURRENCY: usize = 8;

    /// A batch of `requests` for new keys of `algorithm`.
    pub fn new(requests: &'a [CertificateRequest], algorithm: KeyAlgorithm) -> Self {
        Self {
            requests,
            algorithm,
            concurrency: Self::DEFAULT_CONCURRENCY,
        }
    }
}

/// The key of a successor certificate (see [`Authority::renew`]).
#[derive(Debug)]
#[non_exhaustive]
// Made once per renewal and consumed at once: boxing the key would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum RenewKey {
    /// A new key of this algorithm, or of the current certificate's when `None`.
    New(Option<KeyAlgorithm>),
    /// The current key, which must match the current certificate.
    Reuse(PrivateKey),
}

/// How a certificate is renewed (see [`Authority::renew`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct Renewal {
    /// The successor's lifetime (default: the current certificate's).
    pub ttl: Option<Duration>,
    /// Its key.
    pub key: RenewKey,
}

impl Renewal {
    /// A renewal with `key` and the current lifetime.
    pub fn new(key: RenewKey) -> Self {
        Self { ttl: None, key }
    }
}

/// Where certificates are signed.
#[derive(Debug)]
#[non_exhaustive]
// A process holds one authority: boxing the offline CA to even out the variants buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum Authority {
    /// The offline CA in a directory.
    Offline(offline::OfflineCa),
    /// A PKI mount and role on Vault / OpenBao.
    Vault(vault::VaultAuthority),
    /// An account on an ACME server.
    Acme(acme::AcmeAuthority),
}

/// What an ACME server does not do.
fn not_by_acme(what: &'static str) -> crate::Error {
    crate::Error::NotSupported {
        backend: "acme",
        what,
    }
}

impl Authority {
    /// A short name of the backend for messages: `offline`, `vault` or `acme`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Offline(_) => "offline",
            Self::Vault(_) => "vault",
            Self::Acme(_) => "acme",
        }
    }

    /// Whether a revocation reason is recorded (Vault keeps none; an ACME server is sent it).
    pub fn records_revocation_reasons(&self) -> bool {
        matches!(self, Self::Offline(_) | Self::Acme(_))
    }

    /// The CA certificate that signs new certificates now (a certificate it did not sign was
    /// issued by an earlier or another CA); `None` for an ACME server, whose intermediates
    /// change without notice and are not a reason to reissue.
    pub async fn current_issuer(&self) -> Result<Option<Certificate>> {
        match self {
            Self::Offline(ca) => Ok(Some(ca.intermediate().clone())),
            Self::Vault(v) => v.issuing_ca().await.map(Some),
            Self::Acme(_) => Ok(None),
        }
    }

    /// The CAs every client of this backend should trust at `now` (see
    /// [`IssuedCertificate::trust`]): the offline CA's roots, Vault's roots in the mount;
    /// none for an ACME server (public roots come with the system).
    pub async fn trust_anchors(&self, now: OffsetDateTime) -> Result<Vec<Certificate>> {
        match self {
            Self::Offline(ca) => ca.trust_anchors(now),
            Self::Vault(v) => v.trust_anchors(now).await,
            Self::Acme(_) => Ok(Vec::new()),
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
            Self::Vault(v) => v.issue(request, algorithm, now).await,
            Self::Acme(a) => a.issue(request, algorithm, now).await,
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
            Self::Vault(v) => v.sign(request, key, now).await,
            Self::Acme(a) => match key {
                SubjectKey::Key(k) => a.order(request, k, now).await,
                _ => Err(not_by_acme(
                    "sign a CSR made elsewhere (its key must be ours)",
                )),
            },
        }
    }

    /// Issues the successor of `current`: the same names and profile, the same lifetime unless
    /// the renewal gives one, and a new key of the same algorithm unless it says otherwise.
    pub async fn renew(
        &self,
        current: &Certificate,
        renewal: Renewal,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate> {
        let request = CertificateRequest::renewal_of(current, renewal.ttl)?;
        match renewal.key {
            RenewKey::Reuse(key) => {
                if !current.matches_key(&key) {
                    return Err(crate::Error::KeyMismatch {
                        certificate: current.info().subject.clone(),
                        key: "the key to reuse".to_owned(),
                    });
                }
                let mut issued = self.sign(&request, SubjectKey::Key(&key), now).await?;
                issued.private_key = Some(key);
                Ok(issued)
            }
            RenewKey::New(algorithm) => {
                let Some(algorithm) = algorithm.or(current.info().key_algorithm) else {
                    return Err(crate::Error::UnsupportedKeyAlgorithm {
                        subject: current.info().subject.clone(),
                        key: current.info().key_description.clone(),
                    });
                };
                self.issue(&request, algorithm, now).await
            }
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
            Self::Vault(v) => v.revoke(serial, reason, now).await,
            Self::Acme(_) => Err(not_by_acme(
                "revoke by serial (ACME revokes a certificate file: pki revoke --cert)",
            )),
        }
    }

    /// Revokes `certificate`: by its serial for the offline CA and Vault; an ACME server is
    /// sent the certificate itself, signed by the account that ordered it.
    pub async fn revoke_certificate(
        &self,
        certificate: &Certificate,
        reason: RevocationReason,
        now: OffsetDateTime,
    ) -> Result<RevokeOutcome> {
        match self {
            Self::Acme(a) => a
                .revoke(certificate, reason)
                .await
                .map(|()| RevokeOutcome::Revoked),
            _ => self.revoke(&certificate.info().serial, reason, now).await,
        }
    }

    /// A current CRL: signed now for the offline CA (valid for `next_update`); for Vault, the
    /// CRL the mount publishes, whose next update Vault chose (`next_update` is not used).
    pub async fn crl(&self, next_update: Duration, now: OffsetDateTime) -> Result<SignedCrl> {
        match self {
            Self::Offline(ca) => ca.crl(next_update, now),
            Self::Vault(v) => v.crl().await,
            Self::Acme(_) => Err(not_by_acme("sign a CRL (the ACME CA publishes its own)")),
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
            Self::Vault(v) => v.list_each(filter, now, f).await,
            Self::Acme(_) => Err(not_by_acme(
                "list certificates (an ACME CA keeps no inventory for us)",
            )),
        }
    }

    /// Certificates known to the authority, filtered.
    pub async fn list(&self, filter: &ListFilter, now: OffsetDateTime) -> Result<Vec<Record>> {
        match self {
            Self::Offline(ca) => ca.list(filter, now),
            Self::Vault(v) => v.list(filter, now).await,
            Self::Acme(_) => Err(not_by_acme(
                "list certificates (an ACME CA keeps no inventory for us)",
            )),
        }
    }

    /// Issues one certificate per request of `batch`, calling `on_result` with each request's
    /// index and outcome as it completes; `Break` stops starting new ones. Vault runs up to
    /// the batch's concurrency at once; the offline CA signs one after the other and records
    /// them in few transactions (see [`offline::OfflineCa::issue_many`]).
    pub async fn issue_many<F>(&self, batch: &Batch<'_>, now: OffsetDateTime, on_result: F)
    where
        F: FnMut(usize, Result<IssuedCertificate>) -> std::ops::ControlFlow<()>,
    {
        match self {
            Self::Vault(v) => v.issue_many(batch, now, on_result).await,
            Self::Offline(ca) => ca.issue_many(batch, now, on_result),
            Self::Acme(a) => {
                // One order after the other: an ACME server rate-limits orders per account.
                let mut on_result = on_result;
                for (k, request) in batch.requests.iter().enumerate() {
                    let result = a.issue(request, batch.algorithm, now).await;
                    if on_result(k, result).is_break() {
                        break;
                    }
                }
            }
        }
    }
}
