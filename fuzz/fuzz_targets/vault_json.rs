//! Vault / OpenBao answers, through `pki::fuzzing::vault`: the success envelope (data and
//! warnings), error bodies, every endpoint's `data`, sign/issue answers checked as the
//! authority checks them, CA chains, CRLs and serial numbers. Nothing may panic; an envelope
//! that decodes decodes the same once written back; the second check of a sign answer (chain
//! known) refuses whatever the first refused, for the same reason.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pki::cert::Serial;
use pki::fuzzing::vault;
use pki::{Certificate, CertificateRequest, Profile};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

fuzz_target!(|data: &[u8]| {
    if let Ok((payload, warnings)) = vault::envelope(data) {
        let written = serde_json::to_vec(&serde_json::json!({
            "data": payload,
            "warnings": warnings,
        }))
        .unwrap();
        let (payload2, warnings2) = vault::envelope(&written)
            .unwrap_or_else(|e| panic!("a written-back envelope is refused: {e}"));
        assert_eq!(warnings2, warnings);
        // serde_json parses floats to within one ulp only: compare the rest.
        if !payload.as_ref().is_some_and(has_float) {
            assert_eq!(payload2, payload);
        }
    }

    let messages = vault::error_messages(data);
    if serde_json::from_slice::<Value>(data).is_err() {
        // Not JSON: its first line of text at most, shortened.
        assert!(messages.len() <= 1);
        assert!(messages.iter().all(|m| m.chars().count() <= 201));
    }
    let _ = vault::decode_each_endpoint(data);

    certificate_answer(data);

    let text = String::from_utf8_lossy(data);
    let _ = vault::ca_chain(&text);
    let _ = vault::crl(data);
    if text.len() <= 256
        && let Ok(serial) = Serial::parse(&text)
    {
        assert_eq!(Serial::parse(&serial.to_hex()).ok(), Some(serial.clone()));
        assert_eq!(Serial::parse(&serial.to_colon_hex()).ok(), Some(serial));
    }
});

/// Checks a sign/issue answer against the request its own certificate would renew (so that
/// names and profile can match), at a minute after its NotBefore, for the key it carries
/// (`private_key`) or, without one, for the certificate's own key.
fn certificate_answer(body: &[u8]) {
    let leaf = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        let pem = v.get("data")?.get("certificate")?.as_str()?.to_owned();
        let has_key = v["data"].get("private_key").is_some();
        Some((Certificate::from_pem(pem.as_bytes(), "leaf").ok()?, has_key))
    });
    let fallback = || {
        CertificateRequest::new(
            "web.example.internal",
            [],
            Profile::Server,
            Duration::days(30),
        )
        .unwrap()
    };
    let (request, now, spki) = match &leaf {
        Some((cert, has_key)) => {
            let start = cert.info().not_before;
            (
                CertificateRequest::renewal_of(cert, None).unwrap_or_else(|_| fallback()),
                start.checked_add(Duration::minutes(1)).unwrap_or(start),
                (!has_key).then(|| cert.spki_der().to_vec()),
            )
        }
        None => (fallback(), OffsetDateTime::UNIX_EPOCH, None),
    };
    let (first, second) = vault::certificate_answer(body, &request, spki.as_deref(), now);
    if let Err(e) = &first {
        assert_eq!(second.as_ref().err(), Some(e), "the second check disagrees");
    }
}

fn has_float(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64(),
        Value::Array(a) => a.iter().any(has_float),
        Value::Object(o) => o.values().any(has_float),
        _ => false,
    }
}
