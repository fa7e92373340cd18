//! Signing authorities behind one interface: the offline CA and Vault / OpenBao.

pub mod offline;

use crate::cert::Certificate;
use crate::key::PrivateKey;

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
