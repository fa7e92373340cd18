//! A rustls server presenting an issued certificate completes a handshake with a rustls client
//! that trusts only the root.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use pki::KeyAlgorithm;
use pki_tests::TestCa;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

fn pem_certs(path: &std::path::Path) -> Vec<CertificateDer<'static>> {
    pki::Certificate::all_from_pem(&std::fs::read(path).unwrap(), "pem")
        .unwrap()
        .into_iter()
        .map(|c| CertificateDer::from(c.der().to_vec()))
        .collect()
}

#[test]
fn rustls_handshake_with_every_key_algorithm() {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca = TestCa::new(&[]);
    for alg in KeyAlgorithm::ALL {
        let dir = ca.path(alg.name());
        ca.pki([
            "issue",
            "tls.example.internal",
            "--key",
            alg.name(),
            "--out",
            dir.to_str().unwrap(),
        ])
        .ok();
        let chain = pem_certs(&dir.join("fullchain.pem"));
        let key =
            pki::PrivateKey::from_pem(&std::fs::read(dir.join("key.pem")).unwrap(), "key").unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.pkcs8_der().to_vec()));
        let server_config = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain.clone(), key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for root in pem_certs(&dir.join("ca.pem")) {
            roots.add(root).unwrap();
        }
        let client_config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut sock, _) = listener.accept().unwrap();
            let mut conn = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
            let mut tls = rustls::Stream::new(&mut conn, &mut sock);
            let mut buf = [0u8; 4];
            tls.read_exact(&mut buf).unwrap();
            tls.write_all(b"pong").unwrap();
            tls.flush().unwrap();
        });
        let mut sock = TcpStream::connect(addr).unwrap();
        let name = ServerName::try_from("tls.example.internal").unwrap();
        let mut conn = rustls::ClientConnection::new(Arc::new(client_config), name).unwrap();
        let mut tls = rustls::Stream::new(&mut conn, &mut sock);
        tls.write_all(b"ping").unwrap();
        let mut reply = [0u8; 4];
        tls.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"pong", "{alg}");
        let served = conn.peer_certificates().unwrap();
        assert_eq!(
            served.len(),
            chain.len(),
            "leaf and intermediate are served for {alg}"
        );
        server.join().unwrap();
    }
}
