//! Probing a live service: a TLS handshake (straight TLS, PostgreSQL's SSLRequest, or the
//! MySQL/MariaDB switch to TLS) that returns the certificate chain the service presents.
//!
//! The probe does not trust the chain (it compares fingerprints with what was deployed), but it
//! does verify the handshake signature with the presented certificate's key, so a successful
//! probe also proves the service holds the matching private key.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use pki::Certificate;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::deadline::{Bounded, Deadline};
use crate::error::{Error, Found, Result};

/// The protocol a probe speaks before TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeProtocol {
    /// TLS straight away.
    Tls,
    /// PostgreSQL SSLRequest, then TLS.
    Postgres,
    /// MySQL/MariaDB greeting and SSL request packet, then TLS.
    Mysql,
}

impl ProbeProtocol {
    /// The protocol of a config value: `tls`, `postgres`, `mysql` (or `mariadb`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "tls" => Some(Self::Tls),
            "postgres" => Some(Self::Postgres),
            "mysql" | "mariadb" => Some(Self::Mysql),
            _ => None,
        }
    }
}

/// Time a probe waits for the new certificate unless configured otherwise.
pub const DEFAULT_TIMEOUT: time::Duration = time::Duration::seconds(10);

/// How to check what a service serves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbeConfig {
    /// `host:port` to connect to.
    pub address: String,
    /// SNI server name (default: the certificate's first DNS name).
    pub server_name: Option<String>,
    /// Protocol.
    pub protocol: ProbeProtocol,
    /// How long to wait for the expected certificate.
    pub timeout: time::Duration,
}

impl ProbeConfig {
    /// A probe of `address` (`host:port`) speaking `protocol`, with the default timeout.
    pub fn new(address: &str, protocol: ProbeProtocol) -> Self {
        Self {
            address: address.to_owned(),
            server_name: None,
            protocol,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// What a service presented.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Served {
    /// The leaf.
    pub leaf: Certificate,
}

impl Served {
    /// `serial (fingerprint)` for messages.
    pub fn describe(&self) -> String {
        describe(&self.leaf)
    }
}

/// `serial … (sha256 …)` for messages.
pub fn describe(cert: &Certificate) -> String {
    format!(
        "serial {} (sha256 {})",
        cert.info().serial,
        cert.info().sha256_fingerprint
    )
}

/// Records the chain; checks handshake signatures for real and records that one passed.
#[derive(Debug)]
struct Capture {
    provider: Arc<CryptoProvider>,
    chain: Mutex<Vec<Vec<u8>>>,
    /// Set once the server's handshake signature verified with the presented leaf's key.
    /// rustls asks for the chain before the signature, so a captured chain alone proves
    /// nothing about the key.
    key_proved: AtomicBool,
}

impl Capture {
    fn proved(
        &self,
        result: std::result::Result<HandshakeSignatureValid, rustls::Error>,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        if result.is_ok() {
            self.key_proved.store(true, Ordering::SeqCst);
        }
        result
    }
}

impl ServerCertVerifier for Capture {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut chain) = self.chain.lock() {
            *chain = std::iter::once(end_entity)
                .chain(intermediates)
                .map(|c| c.as_ref().to_vec())
                .collect();
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.proved(verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.proved(verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        ))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Longest one handshake may take within a probe's time (a service that is reloading may take a
/// moment to answer; one that stalls must not use up the probe's whole time on one attempt).
const HANDSHAKE_LIMIT: StdDuration = StdDuration::from_secs(5);

/// One probe: connect, switch to TLS as the protocol wants, handshake, return what was served;
/// over by `deadline` whatever the peer does.
async fn once_by(probe: &ProbeConfig, server_name: &str, deadline: Deadline) -> Result<Served> {
    let address = probe.address.clone();
    let sni = server_name.to_owned();
    let protocol = probe.protocol;
    let deadline = deadline.min(Deadline::after(HANDSHAKE_LIMIT));
    // The handshake keeps to the deadline itself, but name resolution (getaddrinfo) knows no
    // deadline: past it (and a moment for the handshake's own error), stop waiting.
    let left = deadline.remaining().unwrap_or_default() + RESOLVE_GRACE;
    let task = tokio::task::spawn_blocking(move || handshake(&address, &sni, protocol, deadline));
    let joined = tokio::time::timeout(left, task)
        .await
        .map_err(|_| Error::Probe {
            address: probe.address.clone(),
            reason: "no answer by the probe's deadline (name resolution included)".into(),
        })?;
    joined
        .map_err(|e| Error::Task {
            what: "probe",
            reason: e.to_string(),
        })?
        .map_err(|reason| Error::Probe {
            address: probe.address.clone(),
            reason,
        })
}

/// How long past a probe's deadline its blocking task is awaited, so that a handshake that
/// ran out of time reports that itself.
const RESOLVE_GRACE: std::time::Duration = std::time::Duration::from_millis(200);

/// One probe, within the probe's timeout.
pub async fn once(probe: &ProbeConfig, server_name: &str) -> Result<Served> {
    once_by(probe, server_name, Deadline::after(limit_of(probe))).await
}

fn limit_of(probe: &ProbeConfig) -> StdDuration {
    StdDuration::try_from(probe.timeout).unwrap_or(StdDuration::ZERO)
}

/// Consecutive probes that must see the expected certificate: right after a reload, nginx's
/// old workers still answer some connections with the old one for a moment.
const SETTLE_PROBES: u32 = 3;
const PROBE_INTERVAL: StdDuration = StdDuration::from_millis(100);

/// Probes until `expected` is served (`SETTLE_PROBES` times in a row) or the probe's timeout
/// passes (services reload asynchronously).
pub async fn expect(
    probe: &ProbeConfig,
    server_name: &str,
    expected: &Certificate,
) -> Result<Served> {
    // One deadline for the whole probe: no attempt, however slow its peer, runs past it.
    let deadline = Deadline::after(limit_of(probe));
    let mut in_a_row = 0;
    let mut last: std::result::Result<Served, Error>;
    loop {
        last = once_by(probe, server_name, deadline).await;
        match &last {
            Ok(s) if s.leaf.der() == expected.der() => {
                in_a_row += 1;
                if in_a_row >= SETTLE_PROBES {
                    return last;
                }
            }
            _ => in_a_row = 0,
        }
        if deadline.passed() {
            break;
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
    let found = match last {
        Ok(s) if s.leaf.der() == expected.der() => Found::OnlyJustNow,
        Ok(s) => Found::Other(s.describe()),
        Err(e) => Found::Nothing(Box::new(e)),
    };
    Err(Error::WrongCertificateServed {
        address: probe.address.clone(),
        expected: describe(expected),
        found,
    })
}

fn handshake(
    address: &str,
    sni: &str,
    protocol: ProbeProtocol,
    deadline: Deadline,
) -> std::result::Result<Served, String> {
    let addrs: Vec<_> = address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve: {e}"))?
        .collect();
    let mut sock = None;
    let mut last_err = String::from("no address");
    for a in addrs {
        let left = deadline.remaining().map_err(|e| e.to_string())?;
        match TcpStream::connect_timeout(&a, left) {
            Ok(s) => {
                sock = Some(s);
                break;
            }
            Err(e) => last_err = format!("cannot connect: {e}"),
        }
    }
    let mut sock = Bounded::new(sock.ok_or(last_err)?, deadline);
    match protocol {
        ProbeProtocol::Tls => {}
        ProbeProtocol::Postgres => postgres_ssl_request(&mut sock)?,
        ProbeProtocol::Mysql => mysql_ssl_request(&mut sock)?,
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let capture = Arc::new(Capture {
        provider: provider.clone(),
        chain: Mutex::new(Vec::new()),
        key_proved: AtomicBool::new(false),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(capture.clone())
        .with_no_client_auth();
    let name = ServerName::try_from(sni.to_owned())
        .map_err(|_| format!("{sni:?} is not a valid server name"))?;
    let mut conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut outcome = Ok(());
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut sock) {
            outcome = Err(e.to_string());
            break;
        }
    }
    let chain = capture.chain.lock().map(|c| c.clone()).unwrap_or_default();
    // A service demanding a client certificate (Redis's default) fails the handshake after
    // showing its own certificate and signing with its key: that certificate is what we came
    // for. Without a verified signature the service has not shown it holds the key.
    let Some(leaf) = chain.first() else {
        return Err(outcome
            .err()
            .unwrap_or_else(|| "no certificate presented".to_owned()));
    };
    if !capture.key_proved.load(Ordering::SeqCst) {
        return Err(format!(
            "the handshake failed before the server proved it holds the key of the \
             certificate it presents: {}",
            outcome.err().unwrap_or_else(|| "no signature".to_owned())
        ));
    }
    let leaf =
        Certificate::from_der(leaf.clone(), "served certificate").map_err(|e| e.to_string())?;
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
    Ok(Served { leaf })
}

/// PostgreSQL: SSLRequest (length 8, code 80877103); the server answers `S` to go on with TLS.
fn postgres_ssl_request(sock: &mut (impl Read + Write)) -> std::result::Result<(), String> {
    sock.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
        .map_err(|e| format!("cannot send SSLRequest: {e}"))?;
    let mut answer = [0u8; 1];
    sock.read_exact(&mut answer)
        .map_err(|e| format!("no answer to SSLRequest: {e}"))?;
    match answer[0] {
        b'S' => Ok(()),
        b'N' => Err("the server does not accept TLS (ssl = off?)".to_owned()),
        other => Err(format!("unexpected answer {other:#04x} to SSLRequest")),
    }
}

const CLIENT_LONG_PASSWORD: u32 = 0x1;
const CLIENT_PROTOCOL_41: u32 = 0x200;
const CLIENT_SSL: u32 = 0x800;
const CLIENT_SECURE_CONNECTION: u32 = 0x8000;

/// MySQL/MariaDB: read the server's greeting, check it offers TLS, answer with the 32-byte
/// SSL request packet (what `openssl s_client -starttls mysql` sends).
fn mysql_ssl_request(sock: &mut (impl Read + Write)) -> std::result::Result<(), String> {
    let mut header = [0u8; 4];
    sock.read_exact(&mut header)
        .map_err(|e| format!("no greeting from the server: {e}"))?;
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    if len == 0 || len > 64 * 1024 {
        return Err(format!("greeting of {len} bytes is not a MySQL greeting"));
    }
    let mut payload = vec![0u8; len];
    sock.read_exact(&mut payload)
        .map_err(|e| format!("truncated greeting: {e}"))?;
    if payload[0] == 0xff {
        let message = String::from_utf8_lossy(payload.get(3..).unwrap_or_default()).into_owned();
        return Err(format!("the server refused the connection: {message}"));
    }
    if payload[0] != 10 {
        return Err(format!("unsupported MySQL protocol version {}", payload[0]));
    }
    let version_end = payload[1..]
        .iter()
        .position(|b| *b == 0)
        .ok_or("malformed greeting (server version)")?
        + 1;
    // version NUL, connection id (4), auth data (8), filler (1), capability flags (2).
    let caps_at = version_end + 1 + 4 + 8 + 1;
    let caps = payload
        .get(caps_at..caps_at + 2)
        .ok_or("malformed greeting (capabilities)")?;
    let caps = u32::from(caps[0]) | u32::from(caps[1]) << 8;
    if caps & CLIENT_SSL == 0 {
        return Err("the server does not offer TLS (no ssl-cert configured?)".to_owned());
    }
    let flags = CLIENT_LONG_PASSWORD | CLIENT_PROTOCOL_41 | CLIENT_SSL | CLIENT_SECURE_CONNECTION;
    let mut packet = vec![32, 0, 0, header[3].wrapping_add(1)];
    packet.extend_from_slice(&flags.to_le_bytes());
    packet.extend_from_slice(&(16u32 << 20).to_le_bytes());
    packet.push(33); // utf8_general_ci
    packet.extend_from_slice(&[0u8; 23]);
    sock.write_all(&packet)
        .map_err(|e| format!("cannot send the SSL request: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::{ClientHello, ResolvesServerCert};
    use rustls::sign::CertifiedKey;
    use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use std::net::TcpListener;

    /// Presents whatever certificate and key it is given, matching or not: the fault a real
    /// server refuses to start with, but a half-reloaded one could show.
    #[derive(Debug)]
    struct Fixed(Arc<CertifiedKey>);

    impl ResolvesServerCert for Fixed {
        fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            Some(self.0.clone())
        }
    }

    /// A one-connection TLS server on 127.0.0.1 serving `cert` signed by `key`.
    fn serve(
        cert: &rcgen::Certificate,
        key: &rcgen::KeyPair,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> String {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let signing = provider
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                key.serialize_der(),
            )))
            .unwrap();
        let certified = CertifiedKey::new(vec![cert.der().clone()], signing);
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[version])
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Fixed(Arc::new(certified))));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut sock, _) = listener.accept().unwrap();
            let mut conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
            while conn.is_handshaking() {
                if conn.complete_io(&mut sock).is_err() {
                    return;
                }
            }
            let _ = conn.complete_io(&mut sock);
        });
        address
    }

    fn leaf() -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["svc.internal".to_owned()]).unwrap();
        (params.self_signed(&key).unwrap(), key)
    }

    #[test]
    fn a_served_certificate_with_its_key_is_returned() {
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let (cert, key) = leaf();
            let address = serve(&cert, &key, version);
            let served = handshake(
                &address,
                "svc.internal",
                ProbeProtocol::Tls,
                Deadline::after(StdDuration::from_secs(5)),
            )
            .unwrap();
            assert_eq!(served.leaf.der(), cert.der().as_ref());
        }
    }

    #[test]
    fn a_certificate_served_with_another_key_is_not_accepted() {
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let (cert, _) = leaf();
            let other = rcgen::KeyPair::generate().unwrap();
            let address = serve(&cert, &other, version);
            let err = handshake(
                &address,
                "svc.internal",
                ProbeProtocol::Tls,
                Deadline::after(StdDuration::from_secs(5)),
            )
            .unwrap_err();
            assert!(err.contains("proved it holds the key"), "{err}");
        }
    }

    /// A peer that starts a TLS record of 16 KiB and then sends one byte every 300 ms.
    fn trickling_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut sock) = conn else { return };
                std::thread::spawn(move || {
                    let mut hello = [0u8; 512];
                    let _ = sock.read(&mut hello);
                    let _ = sock.write_all(&[0x16, 0x03, 0x03, 0x40, 0x00]);
                    while sock.write_all(&[0x02]).is_ok() {
                        std::thread::sleep(StdDuration::from_millis(300));
                    }
                });
            }
        });
        address
    }

    #[test]
    fn finding_3_a_trickling_peer_cannot_hold_a_probe_past_its_timeout() {
        let address = trickling_server();
        let mut probe = ProbeConfig::new(&address, ProbeProtocol::Tls);
        probe.timeout = time::Duration::seconds(1);
        let (cert, _) = leaf();
        let expected = Certificate::from_der(cert.der().to_vec(), "leaf").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let started = std::time::Instant::now();
        let e = rt
            .block_on(expect(&probe, "svc.internal", &expected))
            .unwrap_err();
        assert!(matches!(e, Error::WrongCertificateServed { .. }), "{e}");
        assert!(
            started.elapsed() < StdDuration::from_secs(3),
            "the probe took {:?}",
            started.elapsed()
        );
    }
}
