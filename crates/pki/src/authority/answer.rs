//! Checks made on every certificate an authority returns, before anything is written: it is
//! for our names, and its chain verifies (rustls-webpki: signatures, validity, EKU, name
//! constraints). Vault's and the ACME backend's answers both go through here.

use time::OffsetDateTime;

use crate::cert::{self, Certificate, Trust, Usage};
use crate::name::SubjectName;
use crate::request::CertificateRequest;

/// Every name asked for is in the certificate, and its common name is ours (an authority may
/// add names, but one that drops ours is refused).
pub(crate) fn check_names(leaf: &Certificate, request: &CertificateRequest) -> Result<(), String> {
    let info = leaf.info();
    let missing: Vec<String> = request
        .names()
        .iter()
        .filter(|n| !info.subject_alt_names.contains(n))
        .map(SubjectName::to_string)
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "the certificate lacks the requested name(s) {}",
            missing.join(", ")
        ));
    }
    let cn_ok = info
        .common_name
        .as_deref()
        .is_some_and(|cn| cn.eq_ignore_ascii_case(request.common_name()));
    if !cn_ok {
        return Err(format!(
            "the certificate's common name is {:?}, not {:?}",
            info.common_name.as_deref().unwrap_or(""),
            request.common_name()
        ));
    }
    Ok(())
}

/// Splits a PEM chain into intermediates (issuer first) and the root, when it holds a
/// self-signed certificate; duplicates are dropped. `origin` names it in errors.
pub(crate) fn split_chain(
    text: &str,
    origin: &str,
) -> Result<(Vec<Certificate>, Option<Certificate>), String> {
    let all = Certificate::all_from_pem(text.as_bytes(), origin).map_err(|e| e.to_string())?;
    let mut chain: Vec<Certificate> = Vec::new();
    let mut root = None;
    for c in all {
        if chain.iter().any(|k| k.der() == c.der())
            || root
                .as_ref()
                .is_some_and(|r: &Certificate| r.der() == c.der())
        {
            continue;
        }
        if c.info().self_issued {
            root = Some(c);
        } else {
            chain.push(c);
        }
    }
    Ok((chain, root))
}

/// Verifies the leaf up to the root the authority named or, when it names none (a Vault
/// intermediate imported alone, an ACME chain), up to the top of the chain it returned.
pub(crate) fn verify(
    leaf: &Certificate,
    (chain, root): (&[Certificate], Option<&Certificate>),
    request: &CertificateRequest,
    now: OffsetDateTime,
) -> Result<(), String> {
    let usage = if request.profile().server() {
        Usage::Server
    } else {
        Usage::Client
    };
    let result = match (root, chain.split_last()) {
        (Some(r), _) => cert::verify_chain(
            leaf,
            &Trust::new(chain, std::slice::from_ref(r)),
            usage,
            now,
        ),
        (None, Some((top, below))) => cert::verify_chain(
            leaf,
            &Trust::new(below, std::slice::from_ref(top)),
            usage,
            now,
        ),
        (None, None) => return Err("no CA chain in the answer".to_owned()),
    };
    result.map_err(|e| format!("the returned chain does not verify: {e}"))
}
