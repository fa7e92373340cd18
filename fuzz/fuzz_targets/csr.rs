//! CSRs and the issuing policy: `Csr::from_pem` / `Csr::from_der`, then `Csr::to_request` and
//! `CertificateRequest::check_constraints` against name constraints. Nothing may panic; a CSR
//! that is accepted reads back the same from its own PEM, its names survive a round trip
//! through their text form, and a request passes when nothing is constrained.
//!
//! Mutated CSRs rarely keep a valid signature, so an input starting with `#csr` is a recipe
//! instead, one item a line, for a CSR that this target builds and signs itself:
//!
//! ```text
//! #csr
//! web.example.internal          the common name (first line; empty for none)
//! dns www.example.internal      a DNS name (also: ip, uri, email)
//! eku server                    an extended key usage (client, code, email, time, ocsp, any, or an OID)
//! ku sign                       a key usage (digital, crl, sign = keyCertSign)
//! ca                            basic constraints CA:TRUE (`noca`: CA:FALSE)
//! ext 2.5.29.17 3006820461…     any extension: OID and DER value in hex (`ext!` for critical)
//! ```

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use pki::constraints::{self, Constraints};
use pki::request::Wildcards;
use pki::{Csr, Profile, SubjectName};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use time::Duration;

/// The key recipes are signed with (one for the whole run: signing is what costs).
static KEY: LazyLock<KeyPair> =
    LazyLock::new(|| KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap());

/// Constraints as CAs are made: a DNS domain alone (so no IP address), a domain and a range,
/// and nothing at all.
static CONSTRAINTS: LazyLock<[Constraints; 3]> = LazyLock::new(|| {
    let domain = vec!["example.internal".to_owned()];
    [
        Constraints::for_new_ca(domain.clone(), Vec::new()),
        Constraints::for_new_ca(domain, vec![constraints::cidr("10.0.0.0/8").unwrap()]),
        Constraints::default(),
    ]
});

fuzz_target!(|data: &[u8]| {
    if let Some(recipe) = data.strip_prefix(b"#csr\n") {
        if let Some(der) = build(&String::from_utf8_lossy(recipe)) {
            if let Ok(csr) = Csr::from_der(der, "recipe.csr") {
                vet(&csr);
            }
        }
        return;
    }
    if let Ok(csr) = Csr::from_pem(data, "fuzz.csr") {
        vet(&csr);
    }
    if let Ok(csr) = Csr::from_der(data.to_vec(), "fuzz.der") {
        vet(&csr);
    }
});

/// What must hold of every CSR that was accepted.
fn vet(csr: &Csr) {
    let again = Csr::from_pem(csr.pem().as_bytes(), "again.csr")
        .unwrap_or_else(|e| panic!("an accepted CSR does not read back: {e}"));
    assert_eq!(again.der(), csr.der());
    assert_eq!(again.names(), csr.names());
    assert_eq!(again.common_name(), csr.common_name());
    assert_eq!(again.spki_der(), csr.spki_der());
    for n in csr.names() {
        let text = n.to_string();
        let back = SubjectName::parse(&text)
            .unwrap_or_else(|e| panic!("name {text:?} does not parse back: {e}"));
        assert_eq!(&back, n);
    }
    for profile in Profile::ALL {
        for cn in [None, csr.common_name()] {
            let Ok(request) = csr.to_request(cn, profile, Duration::days(30)) else {
                continue;
            };
            assert!(
                request
                    .check_constraints(&Constraints::default(), Wildcards::Allowed)
                    .is_ok(),
                "a request is refused with nothing constrained"
            );
            for c in CONSTRAINTS.iter() {
                let strict = request.check_constraints(c, Wildcards::Refused);
                let lenient = request.check_constraints(c, Wildcards::Allowed);
                assert!(
                    strict.is_err() || lenient.is_ok(),
                    "allowing wildcards refused what refusing them admitted"
                );
            }
            let _ = request.check_permitted(&["example.internal".to_owned()]);
        }
    }
}

/// Builds and signs the CSR a recipe describes; `None` when rcgen cannot encode it.
fn build(recipe: &str) -> Option<Vec<u8>> {
    let mut lines = recipe.lines();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    if let Some(cn) = lines.next().filter(|cn| !cn.is_empty()) {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    for line in lines.take(64) {
        let (word, value) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "dns" => params
                .subject_alt_names
                .push(SanType::DnsName(value.try_into().ok()?)),
            "ip" => params
                .subject_alt_names
                .push(SanType::IpAddress(value.parse().ok()?)),
            "uri" => params
                .subject_alt_names
                .push(SanType::URI(value.try_into().ok()?)),
            "email" => params
                .subject_alt_names
                .push(SanType::Rfc822Name(value.try_into().ok()?)),
            "eku" => params.extended_key_usages.push(purpose(value)?),
            "ku" => params.key_usages.push(match value {
                "digital" => KeyUsagePurpose::DigitalSignature,
                "crl" => KeyUsagePurpose::CrlSign,
                "sign" => KeyUsagePurpose::KeyCertSign,
                _ => KeyUsagePurpose::KeyEncipherment,
            }),
            "ca" => params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained),
            "noca" => params.is_ca = IsCa::ExplicitNoCa,
            "ext" | "ext!" => {
                let (oid, hex) = value.split_once(' ')?;
                let mut ext = CustomExtension::from_oid_content(&oid_arcs(oid)?, unhex(hex)?);
                ext.set_criticality(word == "ext!");
                params.custom_extensions.push(ext);
            }
            _ => {}
        }
    }
    let csr = params.serialize_request(&*KEY).ok()?;
    Some(csr.der().to_vec())
}

fn purpose(value: &str) -> Option<ExtendedKeyUsagePurpose> {
    Some(match value {
        "server" => ExtendedKeyUsagePurpose::ServerAuth,
        "client" => ExtendedKeyUsagePurpose::ClientAuth,
        "code" => ExtendedKeyUsagePurpose::CodeSigning,
        "email" => ExtendedKeyUsagePurpose::EmailProtection,
        "time" => ExtendedKeyUsagePurpose::TimeStamping,
        "ocsp" => ExtendedKeyUsagePurpose::OcspSigning,
        "any" => ExtendedKeyUsagePurpose::Any,
        other => ExtendedKeyUsagePurpose::Other(oid_arcs(other)?),
    })
}

/// A dotted OID as rcgen takes it (at least two arcs, the first 0, 1 or 2).
fn oid_arcs(text: &str) -> Option<Vec<u64>> {
    let arcs: Vec<u64> = text
        .split('.')
        .map(|a| a.parse().ok())
        .collect::<Option<_>>()?;
    (arcs.len() >= 2 && arcs[0] <= 2 && (arcs[0] == 2 || arcs[1] < 40)).then_some(arcs)
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
