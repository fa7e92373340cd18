//! TLS client configurations for the HTTPS peers (Vault, ntfy, Uptime Kuma): rustls on ring,
//! verification always on, and a configured CA file or directory that *replaces* the system
//! roots rather than adding to them, so a private server is trusted through its own CA only.

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;

use crate::error::{Error, Result};
use crate::fsio::{self, MAX_PEM_INPUT};
use crate::pemfile::{self, label};

fn config_error(setting: &'static str, problem: String) -> Error {
    Error::Trust { setting, problem }
}

fn add_pem_file(roots: &mut RootCertStore, path: &Path, setting: &'static str) -> Result<usize> {
    let origin = path.display().to_string();
    let text = fsio::read_limited(path, MAX_PEM_INPUT)?;
    let blocks = pemfile::blocks_labelled(&text, &origin, &[label::CERTIFICATE])?;
    let mut added = 0;
    for block in blocks {
        roots.add(CertificateDer::from(block.der)).map_err(|e| {
            config_error(setting, format!("{origin}: unusable CA certificate: {e}"))
        })?;
        added += 1;
    }
    Ok(added)
}

/// The roots to trust: the configured CA file and/or directory, or else the system's. A
/// configured file or directory without a usable certificate is an error, and so is a system
/// without roots: nothing is ever trusted silently, and nothing is left silently untrusted.
pub fn roots(ca_cert: Option<&Path>, ca_path: Option<&Path>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    if ca_cert.is_none() && ca_path.is_none() {
        let found = rustls_native_certs::load_native_certs();
        for cert in found.certs {
            // A system store may hold a certificate rustls cannot use; skipping it is what
            // every TLS client does.
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(config_error(
                "ca_cert",
                "none is configured and no system CA certificates were found".to_owned(),
            ));
        }
        return Ok(roots);
    }
    if let Some(file) = ca_cert {
        add_pem_file(&mut roots, file, "ca_cert")?;
    }
    if let Some(dir) = ca_path {
        let entries = std::fs::read_dir(dir).map_err(|e| Error::Io {
            op: crate::error::IoOp::Read,
            path: dir.to_path_buf(),
            source: e,
        })?;
        let mut paths: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        for p in paths {
            // A CA directory often holds other files (hash links, READMEs): only PEM
            // certificates count, and a directory without any is an error.
            let _ = add_pem_file(&mut roots, &p, "ca_path");
        }
    }
    if roots.is_empty() {
        return Err(config_error(
            "ca_cert",
            "the configured CA file or directory holds no usable certificate".to_owned(),
        ));
    }
    Ok(roots)
}

/// A rustls client configuration on the ring provider with `roots`, offering HTTP/2 and
/// HTTP/1.1 by ALPN (a preconfigured config gets no ALPN from reqwest).
pub fn client_config(roots: RootCertStore) -> Result<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("tls", format!("cannot set up TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Whether a URL's host is this machine. Plain HTTP carries a token only there (a dev server,
/// a local agent): anywhere else it would cross a network in clear text.
pub fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a URL may carry a secret (a token in a header or in the URL itself): https, or
/// http to this machine.
pub fn may_carry_secrets(url: &reqwest::Url) -> bool {
    url.scheme() == "https" || (url.scheme() == "http" && is_loopback(url))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // test fixtures, not product files
mod tests {
    use super::*;

    fn self_signed(name: &str) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn a_configured_ca_replaces_the_system_roots() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, self_signed("vault-ca")).unwrap();
        let roots = roots(Some(&file), None).unwrap();
        assert_eq!(roots.len(), 1, "only the configured CA is trusted");
    }

    #[test]
    fn a_ca_directory_keeps_certificates_and_skips_other_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.pem"), self_signed("a")).unwrap();
        std::fs::write(dir.path().join("b.crt"), self_signed("b")).unwrap();
        std::fs::write(dir.path().join("README"), "not a certificate\n").unwrap();
        assert_eq!(roots(None, Some(dir.path())).unwrap().len(), 2);

        let empty = tempfile::tempdir().unwrap();
        std::fs::write(empty.path().join("README"), "nothing\n").unwrap();
        let err = roots(None, Some(empty.path())).unwrap_err().to_string();
        assert!(err.contains("no usable certificate"), "{err}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, "garbage\n").unwrap();
        assert!(roots(Some(&file), None).is_err());
    }
}
