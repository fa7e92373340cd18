//! `pki inspect`.

use anyhow::Result;
use pki::cert;
use pki::pemfile::{self, label};
use pki::{Certificate, Csr, PrivateKey, clock};
use serde::Serialize;

use super::read_pem;
use crate::args::InspectArgs;
use crate::output::{self, Format};

#[derive(Serialize)]
struct ChainCheck {
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct CertReport<'a> {
    certificate: &'a pki::CertificateInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_matches: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chain: Option<ChainCheck>,
}

pub(crate) fn run(a: InspectArgs, format: Format) -> Result<u8> {
    let origin = a.file.display().to_string();
    let text = read_pem(&a.file)?;
    let blocks = pemfile::blocks_labelled(
        &text,
        &origin,
        &[label::CERTIFICATE, label::CSR, "NEW CERTIFICATE REQUEST"],
    )?;
    if blocks[0].label != label::CERTIFICATE {
        return inspect_csr(&text, &origin, format);
    }
    let certificate = Certificate::from_pem(&text, &origin)?;
    let key_matches = match &a.key {
        Some(path) => {
            let text = zeroize::Zeroizing::new(read_pem(path)?);
            let key = PrivateKey::from_pem(&text, &path.display().to_string())?;
            Some(certificate.matches_key(&key))
        }
        None => None,
    };
    let chain = match &a.chain {
        Some(path) => {
            let bundle = Certificate::all_from_pem(&read_pem(path)?, &path.display().to_string())?;
            let result =
                cert::verify_bundle(&certificate, &bundle, clock::now()).map_err(|e| e.to_string());
            Some(ChainCheck {
                valid: result.is_ok(),
                error: result.err(),
            })
        }
        None => None,
    };
    let ok = key_matches != Some(false) && chain.as_ref().is_none_or(|c| c.valid);
    let report = CertReport {
        certificate: certificate.info(),
        key_matches,
        chain,
    };
    if format.is_json() {
        output::print_json(&report)?;
    } else {
        print_cert(&report);
    }
    Ok(if ok { 0 } else { 1 })
}

/// Names as one line, `-` when there are none.
fn names_line(names: &[pki::SubjectName]) -> String {
    if names.is_empty() {
        return "-".to_owned();
    }
    names
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_cert(r: &CertReport<'_>) {
    let c = r.certificate;
    println!("subject:      {}", c.subject);
    println!("names:        {}", names_line(&c.subject_alt_names));
    println!("issuer:       {}", c.issuer);
    println!("serial:       {}", c.serial);
    println!("not before:   {}", output::time(c.not_before));
    println!("not after:    {}", output::time(c.not_after));
    println!("sha256:       {}", c.sha256_fingerprint);
    println!("key:          {}", c.key_description);
    let usage = match (c.is_ca, c.profile) {
        (true, _) => "CA".to_owned(),
        (false, Some(p)) => p.name().to_owned(),
        (false, None) => "-".to_owned(),
    };
    println!("usage:        {usage}");
    if let Some(line) = output::constraints(&c.constraints) {
        println!("constraints:  {line}");
    }
    if let Some(m) = r.key_matches {
        println!("key matches:  {}", if m { "yes" } else { "NO" });
    }
    if let Some(chain) = &r.chain {
        match &chain.error {
            None => println!("chain:        verifies"),
            Some(e) => println!("chain:        FAILS: {e}"),
        }
    }
}

fn inspect_csr(text: &[u8], origin: &str, format: Format) -> Result<u8> {
    let csr = Csr::from_pem(text, origin)?;
    let names: Vec<String> = csr.names().iter().map(ToString::to_string).collect();
    if format.is_json() {
        output::print_json(&serde_json::json!({
            "csr": {
                "common_name": csr.common_name(),
                "subject_alt_names": names,
                "key_algorithm": csr.key_algorithm(),
                "signature": "valid",
            }
        }))?;
    } else {
        println!("CSR, signature verified");
        println!("common name:  {}", csr.common_name().unwrap_or("-"));
        println!("names:        {}", names_line(csr.names()));
        println!("key:          {}", csr.key_algorithm());
    }
    Ok(0)
}
