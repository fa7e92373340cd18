//! PEM input: `pemfile::parse_blocks`, certificates (`Certificate::all_from_pem`) and keys
//! (`PrivateKey::from_pem`, the fast `pkcs8_public_key`) on arbitrary bytes. Nothing may panic;
//! what parses must survive a round trip through `pemfile::encode`, and the fast public-key
//! reader must agree with a full load of the same key.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pki::cert;
use pki::pemfile::{self, label};
use pki::{Certificate, PrivateKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(blocks) = pemfile::parse_blocks(data, "fuzz.pem") {
        assert!(!blocks.is_empty());
        let text: String = blocks
            .iter()
            .map(|b| pemfile::encode(&b.label, &b.der))
            .collect();
        let again = pemfile::parse_blocks(text.as_bytes(), "again.pem")
            .unwrap_or_else(|e| panic!("re-encoded blocks do not parse: {e}"));
        assert_eq!(again.len(), blocks.len());
        for (a, b) in again.iter().zip(&blocks) {
            assert_eq!(a.label, b.label);
            assert_eq!(a.der, b.der);
        }
        for b in &blocks {
            match b.label.as_str() {
                label::PRIVATE_KEY => key_der(&b.der),
                label::CERTIFICATE => {
                    let _ = Certificate::from_der(b.der.clone(), "block");
                }
                _ => {}
            }
        }
    }

    if let Ok(certs) = Certificate::all_from_pem(data, "fuzz.pem") {
        for c in &certs {
            let back = Certificate::from_pem(c.pem().as_bytes(), "again.pem")
                .unwrap_or_else(|e| panic!("a parsed certificate does not read back: {e}"));
            assert_eq!(back.der(), c.der());
            assert_eq!(back.info().serial, c.info().serial);
            let _ = serde_json::to_string(c.info());
            let _ = c.is_signed_by(c);
        }
        if let Some((leaf, rest)) = certs.split_first()
            && !rest.is_empty()
        {
            let start = leaf.info().not_before;
            let now = start
                .checked_add(time::Duration::minutes(1))
                .unwrap_or(start);
            let _ = cert::verify_bundle(leaf, rest, now);
            let _ = leaf.is_signed_by(&rest[0]);
        }
    }

    let _ = PrivateKey::from_pem(data, "fuzz.key");
    let _ = PrivateKey::pem_is_encrypted(data);
    key_der(data);
});

/// A PKCS#8 DER key: the fast public-key reader and the full load agree when both succeed.
fn key_der(der: &[u8]) {
    let fast = pki::key::pkcs8_public_key(der);
    if let (Ok(fast), Ok(key)) = (fast, PrivateKey::from_pkcs8_der(der, "fuzz.key")) {
        assert_eq!(
            fast,
            key.public_key_raw(),
            "pkcs8_public_key disagrees with the loaded key"
        );
    }
}
