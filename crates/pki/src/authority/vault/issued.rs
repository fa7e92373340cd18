//! What `sign/:role` and `issue/:role` return, and the checks made before believing it: the
//! certificate is for our key and our names, with the profile asked for, its chain verifies,
//! and a lifetime shorter than requested becomes a warning.

use serde::Deserialize;
use time::{Duration, OffsetDateTime};

use super::wire::pem_list;
use crate::authority::{IssuedCertificate, answer};
use crate::cert::{Certificate, Serial};
use crate::key::PrivateKey;
use crate::request::CertificateRequest;
use crate::secret::SecretString;

/// `data` of sign/issue.
#[derive(Deserialize)]
pub(crate) struct SignedData {
    pub certificate: String,
    #[serde(default)]
    pub issuing_ca: String,
    #[serde(default, deserialize_with = "pem_list")]
    pub ca_chain: String,
    #[serde(default)]
    pub serial_number: String,
    #[serde(default)]
    pub expiration: Option<i64>,
    /// Only from issue/:role; wiped on drop.
    #[serde(default)]
    pub private_key: Option<SecretString>,
}

/// Slack between the lifetime asked for and the one granted before it is worth a warning (Vault
/// backdates NotBefore by 30 s and rounds nothing; clocks differ a little).
const TTL_SLACK: Duration = Duration::minutes(5);

/// The public key the certificate must carry.
pub(crate) enum ExpectedKey {
    /// SubjectPublicKeyInfo DER (a CSR's, or a key's).
    Spki(Vec<u8>),
    /// Vault generated the key; it comes back in the answer.
    FromVault,
}

/// How far ahead of ours the server's clock may be.
const CLOCK_SKEW: Duration = Duration::minutes(5);

/// What was asked of Vault, which its answer must match.
pub(crate) struct Ask<'a> {
    /// The request.
    pub request: &'a CertificateRequest,
    /// The key the certificate must carry.
    pub expected: ExpectedKey,
    /// When it was asked.
    pub now: OffsetDateTime,
}

/// Parses and checks a sign/issue answer (`data` and Vault's `warnings`). `problem` texts
/// become `VaultResponse` errors that name the address and path.
pub(crate) fn assemble(
    (data, warnings): (SignedData, Vec<String>),
    ask: Ask<'_>,
    chains: &ChainCache,
) -> Result<IssuedCertificate, String> {
    let Ask {
        request,
        expected,
        now,
    } = ask;
    let leaf = Certificate::from_pem(
        data.certificate.as_bytes(),
        "the certificate Vault returned",
    )
    .map_err(|e| e.to_string())?;
    let info = leaf.info();
    if !data.serial_number.is_empty() {
        let said = Serial::parse(&data.serial_number).map_err(|e| e.to_string())?;
        if said != info.serial {
            return Err(format!(
                "serial_number {} differs from the certificate's serial {}",
                data.serial_number,
                info.serial.to_colon_hex()
            ));
        }
    }
    if let Some(exp) = data.expiration
        && exp != info.not_after.unix_timestamp()
    {
        return Err(format!(
            "expiration {exp} differs from the certificate's NotAfter {}",
            info.not_after.unix_timestamp()
        ));
    }
    if info.is_ca {
        return Err("Vault returned a CA certificate for a leaf request".to_owned());
    }

    let private_key = match expected {
        ExpectedKey::Spki(spki) => {
            if leaf.spki_der() != spki.as_slice() {
                return Err("the certificate is not for the key we sent".to_owned());
            }
            None
        }
        ExpectedKey::FromVault => {
            let pem = data
                .private_key
                .as_ref()
                .ok_or("issue/:role returned no private_key")?;
            let key =
                PrivateKey::from_pem(pem.expose().as_bytes(), "the private key Vault returned")
                    .map_err(|e| e.to_string())?;
            if !leaf.matches_key(&key) {
                return Err(
                    "the private key Vault returned does not match its certificate".to_owned(),
                );
            }
            Some(key)
        }
    };

    answer::check_names(&leaf, request)?;
    let mut warnings = warnings;
    check_profile(&leaf, request, &mut warnings)?;

    let chain_text = if data.ca_chain.trim().is_empty() {
        data.issuing_ca.as_str()
    } else {
        data.ca_chain.as_str()
    };
    let (chain, root, verified) = chains.parse(chain_text)?;
    // Vault backdates NotBefore by only 30 s: a server clock a little ahead of ours would make
    // a fresh certificate "not valid yet" here. Within CLOCK_SKEW, check as of its NotBefore.
    let now = if info.not_before > now && info.not_before - now <= CLOCK_SKEW {
        info.not_before
    } else {
        now
    };
    if verified {
        check_link(&leaf, &chain, root.as_ref(), now)?;
    } else {
        answer::verify(&leaf, (&chain, root.as_ref()), request, now)?;
        chains.mark_verified(chain_text);
    }

    let granted = info.not_after - now;
    if granted + TTL_SLACK < request.ttl() {
        warnings.push(format!(
            "Vault granted {} instead of the {} asked for (NotAfter {}): the role's or mount's \
             max_ttl, or the CA's expiry, limits it",
            crate::duration::format(Duration::hours(granted.whole_hours().max(0))),
            crate::duration::format(request.ttl()),
            crate::error::Rfc3339(info.not_after)
        ));
    }
    Ok(IssuedCertificate {
        certificate: leaf,
        chain,
        root,
        trust: Vec::new(),
        private_key,
        warnings,
    })
}

/// The certificate must serve the requested profile; more usages than asked is a warning (the
/// role decides the EKU, not the request).
fn check_profile(
    leaf: &Certificate,
    request: &CertificateRequest,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let wanted = request.profile();
    let Some(got) = leaf.info().profile else {
        return Err("the certificate has neither serverAuth nor clientAuth usage".to_owned());
    };
    if (wanted.server() && !got.server()) || (wanted.client() && !got.client()) {
        return Err(format!(
            "the role issues {} certificates but the request is for {}; use a role with \
             the matching server_flag/client_flag",
            got.name(),
            wanted.name()
        ));
    }
    if got != wanted {
        warnings.push(format!(
            "the role issued a {} certificate although {} was asked for",
            got.name(),
            wanted.name()
        ));
    }
    Ok(())
}

/// The CA chain Vault sent last, parsed, and whether a leaf has been verified through it with
/// rustls-webpki (every signature up to the root, validity, EKU, name constraints).
///
/// Every sign/issue answer repeats the same chain. The first leaf under a chain gets the full
/// path verification; later leaves under the *same* chain text get the structural link check
/// of [`check_link`] (issuer name, authority key identifier = the issuer's subject key
/// identifier, validity, not a CA) instead of one more ECDSA/RSA verification each. A new
/// issuer (rotation, re-keying) comes with a new chain text and is fully verified again. This
/// halves the client's CPU per certificate in bulk issuance.
#[derive(Debug, Default)]
pub(crate) struct ChainCache(std::sync::Mutex<Option<CachedChain>>);

#[derive(Debug)]
struct CachedChain {
    text: String,
    chain: Vec<Certificate>,
    root: Option<Certificate>,
    verified: bool,
}

type Parsed = (Vec<Certificate>, Option<Certificate>, bool);

impl ChainCache {
    fn parse(&self, text: &str) -> Result<Parsed, String> {
        if let Ok(guard) = self.0.lock()
            && let Some(c) = guard.as_ref()
            && c.text == text
        {
            return Ok((c.chain.clone(), c.root.clone(), c.verified));
        }
        let (chain, root) = split_chain(text)?;
        if let Ok(mut guard) = self.0.lock() {
            *guard = Some(CachedChain {
                text: text.to_owned(),
                chain: chain.clone(),
                root: root.clone(),
                verified: false,
            });
        }
        Ok((chain, root, false))
    }

    fn mark_verified(&self, text: &str) {
        if let Ok(mut guard) = self.0.lock()
            && let Some(c) = guard.as_mut()
            && c.text == text
        {
            c.verified = true;
        }
    }
}

/// The leaf names the chain's first certificate as its issuer, by name and key identifier, and
/// is valid now.
fn check_link(
    leaf: &Certificate,
    chain: &[Certificate],
    root: Option<&Certificate>,
    now: OffsetDateTime,
) -> Result<(), String> {
    let issuer = chain
        .first()
        .or(root)
        .ok_or("no CA chain in the answer")?
        .info();
    let info = leaf.info();
    if info.issuer != issuer.subject {
        return Err(format!(
            "the certificate's issuer {} is not the chain's first certificate {}",
            info.issuer, issuer.subject
        ));
    }
    if info.authority_key_id.is_some() && info.authority_key_id != issuer.subject_key_id {
        return Err(
            "the certificate's authority key identifier does not match the issuer's key".to_owned(),
        );
    }
    if !leaf.is_valid_at(now) {
        return Err(format!(
            "the certificate is not valid now: {} to {}",
            crate::error::Rfc3339(info.not_before),
            crate::error::Rfc3339(info.not_after)
        ));
    }
    Ok(())
}

/// Splits Vault's CA chain into intermediates (issuer first) and the root, when the chain ends
/// in a self-signed certificate.
pub(crate) fn split_chain(text: &str) -> Result<(Vec<Certificate>, Option<Certificate>), String> {
    if text.trim().is_empty() {
        return Err("no CA chain in the answer (ca_chain and issuing_ca are empty)".to_owned());
    }
    answer::split_chain(text, "the CA chain Vault returned")
}
