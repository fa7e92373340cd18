//! Entry points for the fuzz targets (`fuzz/` at the workspace root): thin wrappers that hand
//! untrusted bytes to the private code reading Vault's answers, exactly as the client does.
//! Built only with the `fuzzing` feature; not a supported API.

use time::OffsetDateTime;

use super::issued::{self, Ask, ChainCache, ExpectedKey, SignedData};
use super::wire::{self, TokenLookup};
use super::{CertData, RevokeData, SignedCrl, kv};
use crate::authority::IssuedCertificate;
use crate::cert::Certificate;
use crate::request::CertificateRequest;

/// A success body decoded with free-form `data`, as [`super::VaultClient::read`] reads it:
/// the data and Vault's warnings, or why the body is refused.
pub fn envelope(body: &[u8]) -> Result<(Option<serde_json::Value>, Vec<String>), String> {
    let env = wire::decode::<serde_json::Value>(body)?;
    Ok((env.data, env.warnings))
}

/// Vault's messages in an error body (any status from 400 on), cleaned of go-multierror
/// framing; a body that is not Vault's JSON gives its first line, shortened.
pub fn error_messages(body: &[u8]) -> Vec<String> {
    wire::error_messages(body)
}

/// Decodes `body` as the answer of every endpoint the client reads, in turn: token lookup,
/// sign/issue, `cert/:serial`, revoke, KV read and KV metadata (each envelope also decodes
/// `auth`, as logins and renewals read it). One outcome per endpoint, in that order.
pub fn decode_each_endpoint(body: &[u8]) -> Vec<Result<(), String>> {
    fn one<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<(), String> {
        wire::decode::<T>(body).map(|_| ())
    }
    vec![
        one::<TokenLookup>(body),
        one::<SignedData>(body),
        one::<CertData>(body),
        one::<RevokeData>(body),
        one::<kv::ReadData>(body),
        one::<kv::KvMetadata>(body),
    ]
}

/// A sign or issue answer checked against `request` as the authority checks it: the key must
/// be `expected_spki` (a DER SubjectPublicKeyInfo) or, without one, the `private_key` of the
/// answer. The answer is checked twice with one chain cache, as two answers in a row are: the
/// first time the chain is verified in full, the second time only the leaf's link to it.
pub fn certificate_answer(
    body: &[u8],
    request: &CertificateRequest,
    expected_spki: Option<&[u8]>,
    now: OffsetDateTime,
) -> (
    Result<IssuedCertificate, String>,
    Result<IssuedCertificate, String>,
) {
    let chains = ChainCache::default();
    let check = || -> Result<IssuedCertificate, String> {
        let env = wire::decode::<SignedData>(body)?;
        let data = env.data.ok_or("the answer has no data")?;
        let expected = match expected_spki {
            Some(spki) => ExpectedKey::Spki(spki.to_vec()),
            None => ExpectedKey::FromVault,
        };
        let ask = Ask {
            request,
            expected,
            now,
        };
        issued::assemble((data, env.warnings), ask, &chains)
    };
    let first = check();
    let second = check();
    (first, second)
}

/// The CA chain of an answer (`ca_chain` or `issuing_ca`), split into intermediates, issuer
/// first, and the root.
pub fn ca_chain(text: &str) -> Result<(Vec<Certificate>, Option<Certificate>), String> {
    issued::split_chain(text)
}

/// The body of `crl/pem`: the CRL's number, entry count and dates.
pub fn crl(pem: &[u8]) -> Result<SignedCrl, String> {
    super::parse_crl(pem, "crl/pem")
}
