//! An issued certificate rendered as files: PEM files for the leaf, key, chain, full chain and
//! trust bundle; the HAProxy combined PEM; PKCS#12 keystores and truststores.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::authority::IssuedCertificate;
use crate::cert::Certificate;
use crate::error::{Error, Result};
use crate::fsio::{self, FileMode, StagedFile};
use crate::secret::SecretString;

/// Names of the files [`write_dir`] writes.
pub mod files {
    /// The leaf certificate.
    pub const CERT: &str = "cert.pem";
    /// The private key (PKCS#8, mode 0600).
    pub const KEY: &str = "key.pem";
    /// Intermediates, issuer first.
    pub const CHAIN: &str = "chain.pem";
    /// Leaf followed by intermediates.
    pub const FULLCHAIN: &str = "fullchain.pem";
    /// The root.
    pub const CA: &str = "ca.pem";
}

/// Concatenated PEM of the chain (intermediates).
pub fn chain_pem(issued: &IssuedCertificate) -> String {
    issued.chain.iter().map(|c| c.pem()).collect()
}

/// What a `ca.pem` holds: every CA to trust (the trust bundle), else the root, else the
/// intermediates (an ACME chain, whose root the system trusts).
pub fn ca_pem(issued: &IssuedCertificate) -> String {
    if !issued.trust.is_empty() {
        return issued.trust.iter().map(|c| c.pem()).collect();
    }
    match &issued.root {
        Some(root) => root.pem(),
        None => chain_pem(issued),
    }
}

/// Leaf then intermediates, the order every server expects.
pub fn fullchain_pem(issued: &IssuedCertificate) -> String {
    let mut out = issued.certificate.pem();
    out.push_str(&chain_pem(issued));
    out
}

/// Leaf, intermediates and key in one PEM with no blank line anywhere (a blank line ends an
/// HAProxy runtime API payload).
pub fn combined_pem(issued: &IssuedCertificate) -> Result<SecretString> {
    let key = issued.private_key.as_ref().ok_or(Error::InvalidRequest(
        "a combined PEM needs the private key",
    ))?;
    let mut out = fullchain_pem(issued);
    out.push_str(key.to_pkcs8_pem().expose());
    let cleaned: String = out
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    Ok(SecretString::new(cleaned))
}

/// What [`write_dir`] does with files already in the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Existing {
    /// Refuse to write when any of them exists.
    #[default]
    Refuse,
    /// Replace them.
    Replace,
}

/// Which of the optional files a bundle has: the key (absent for a signed CSR) and the root
/// (absent when the authority did not name it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Contents {
    /// `key.pem` is written.
    pub key: bool,
    /// `ca.pem` is written.
    pub root: bool,
}

impl Contents {
    /// Every file.
    pub const ALL: Self = Self {
        key: true,
        root: true,
    };

    /// What `issued` will be written as.
    pub fn of(issued: &IssuedCertificate) -> Self {
        Self {
            key: issued.private_key.is_some(),
            root: issued.root.is_some() || !issued.trust.is_empty(),
        }
    }

    /// The same, without the key (a certificate signed from a CSR).
    #[must_use]
    pub fn without_key(self) -> Self {
        Self { key: false, ..self }
    }
}

/// Checks, before anything is issued, that [`write_dir`] will be able to write into `dir`: it is
/// a directory (or does not exist yet), and unless existing files may be replaced none of the
/// files exists. A `key.pem` left from an earlier issue is never kept next to a certificate it
/// does not match.
pub fn check_output(dir: &Path, contents: Contents, existing: Existing) -> Result<()> {
    if dir.exists() && !dir.is_dir() {
        return Err(Error::Io {
            op: crate::error::IoOp::CreateDir,
            path: dir.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists and is not a directory",
            ),
        });
    }
    if !contents.key && dir.join(files::KEY).exists() {
        return Err(Error::StaleKey {
            path: dir.join(files::KEY),
        });
    }
    if existing == Existing::Replace {
        return Ok(());
    }
    let mut names = vec![files::CERT, files::CHAIN, files::FULLCHAIN];
    if contents.key {
        names.push(files::KEY);
    }
    if contents.root {
        names.push(files::CA);
    }
    for name in names {
        let path = dir.join(name);
        if path.exists() {
            return Err(Error::OutputExists { path });
        }
    }
    Ok(())
}

/// Writes `cert.pem`, `key.pem` (0600, when there is a key), `chain.pem`, `fullchain.pem` and
/// `ca.pem` (the trust bundle, or the root, when known: see [`ca_pem`]) into `dir`, creating it
/// if needed.
///
/// Every file is staged first; nothing replaces an existing file until all are written, and a
/// failure leaves no partial file behind (nor the directory, if this call created it). Existing
/// files are replaced only with [`Existing::Replace`]. The key is moved into place before the
/// certificate, so a reader that sees the new certificate finds its key.
pub fn write_dir(
    dir: &Path,
    issued: &IssuedCertificate,
    existing: Existing,
) -> Result<Vec<PathBuf>> {
    let key_pem = issued.private_key.as_ref().map(|k| k.to_pkcs8_pem());
    let mut plan: Vec<(&str, Zeroizing<Vec<u8>>, FileMode)> = Vec::new();
    if let Some(k) = &key_pem {
        plan.push((
            files::KEY,
            Zeroizing::new(k.expose().as_bytes().to_vec()),
            FileMode::PRIVATE,
        ));
    }
    plan.push((
        files::CHAIN,
        Zeroizing::new(chain_pem(issued).into_bytes()),
        FileMode::PUBLIC,
    ));
    if Contents::of(issued).root {
        plan.push((
            files::CA,
            Zeroizing::new(ca_pem(issued).into_bytes()),
            FileMode::PUBLIC,
        ));
    }
    plan.push((
        files::FULLCHAIN,
        Zeroizing::new(fullchain_pem(issued).into_bytes()),
        FileMode::PUBLIC,
    ));
    plan.push((
        files::CERT,
        Zeroizing::new(issued.certificate.pem().into_bytes()),
        FileMode::PUBLIC,
    ));

    check_output(dir, Contents::of(issued), existing)?;

    let created = !dir.exists();
    fsio::create_dir(dir, 0o755)?;
    let staged: Result<Vec<StagedFile>> = plan
        .iter()
        .map(|(name, data, mode)| StagedFile::create(&dir.join(name), data, *mode))
        .collect();
    // Wipe the key copy now that it is on disk (or failed to be).
    drop(plan);
    let staged = match staged {
        Ok(s) => s,
        Err(e) => {
            if created {
                let _ = std::fs::remove_dir(dir);
            }
            return Err(e);
        }
    };
    let written = staged.iter().map(|f| f.target().to_path_buf()).collect();
    fsio::commit_all(staged)?;
    Ok(written)
}

/// The CAs a holder of `issued` should trust: the trust bundle, else the root, else the last
/// intermediate (an ACME chain).
pub fn trust_anchors(issued: &IssuedCertificate) -> Vec<Certificate> {
    if !issued.trust.is_empty() {
        return issued.trust.clone();
    }
    issued
        .root
        .clone()
        .or_else(|| issued.chain.last().cloned())
        .into_iter()
        .collect()
}

/// A PKCS#12 truststore (Java's `javax.net.ssl.trustStore`, Jetty's and Solr's trust store):
/// each CA of `cas` as a trusted-certificate entry (with the attribute the JDK needs to take
/// it as a trust anchor), aliased `ca-1`, `ca-2`, …, integrity-protected with `password`
/// (HMAC-SHA256).
pub fn pkcs12_truststore(
    cas: &[Certificate],
    password: &SecretString,
) -> Result<crate::secret::SecretBytes> {
    let bad = |e: p12_keystore::error::Error| Error::Pkcs12(e.to_string());
    if cas.is_empty() {
        return Err(Error::InvalidRequest("a truststore needs at least one CA"));
    }
    let mut store = p12_keystore::KeyStore::new();
    for (i, ca) in cas.iter().enumerate() {
        let cert = p12_keystore::Certificate::from_der(ca.der()).map_err(bad)?;
        store.add_entry(
            &format!("ca-{}", i + 1),
            p12_keystore::KeyStoreEntry::Certificate(cert),
        );
    }
    write_pkcs12(&store, password)
}

/// A keystore's bytes, encrypted with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) and MACed with
/// HMAC-SHA256, as Java 11+ and OpenSSL 3 read them.
fn write_pkcs12(
    store: &p12_keystore::KeyStore,
    password: &SecretString,
) -> Result<crate::secret::SecretBytes> {
    let bytes = store
        .writer(password.expose())
        .encryption_algorithm(p12_keystore::EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .mac_algorithm(p12_keystore::MacAlgorithm::HmacSha256)
        .write()
        .map_err(|e| Error::Pkcs12(e.to_string()))?;
    Ok(crate::secret::SecretBytes::new(bytes))
}

/// The key as PKCS#8 PEM (`BEGIN PRIVATE KEY`), the form Elasticsearch and Neo4j require.
pub fn key_pem(issued: &IssuedCertificate) -> Result<SecretString> {
    issued
        .private_key
        .as_ref()
        .map(|k| k.to_pkcs8_pem())
        .ok_or(Error::InvalidRequest("this output needs the private key"))
}

/// A PKCS#12 keystore (Java, Solr, Elasticsearch) holding the key under `alias` with the chain
/// leaf first and root last, encrypted with PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) and an
/// HMAC-SHA256 MAC, as Java 11+ `keytool` and OpenSSL 3 read it.
pub fn pkcs12(
    issued: &IssuedCertificate,
    password: &SecretString,
    alias: &str,
) -> Result<crate::secret::SecretBytes> {
    let bad = |e: p12_keystore::error::Error| Error::Pkcs12(e.to_string());
    let key = issued.private_key.as_ref().ok_or(Error::InvalidRequest(
        "a PKCS#12 keystore needs the private key",
    ))?;
    let mut certs =
        vec![p12_keystore::Certificate::from_der(issued.certificate.der()).map_err(bad)?];
    for c in issued.chain.iter().chain(issued.root.iter()) {
        certs.push(p12_keystore::Certificate::from_der(c.der()).map_err(bad)?);
    }
    let local_key_id = ring::digest::digest(&ring::digest::SHA256, issued.certificate.der())
        .as_ref()[..20]
        .to_vec();
    let chain = p12_keystore::PrivateKeyChain::new(
        local_key_id,
        p12_keystore::PrivateKey::from_der(key.pkcs8_der()).map_err(bad)?,
        certs,
    );
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(alias, p12_keystore::KeyStoreEntry::PrivateKeyChain(chain));
    write_pkcs12(&store, password)
}
