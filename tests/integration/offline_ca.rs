//! The offline CA's output checked by openssl and rustls-webpki.

use std::path::Path;

use pki::{Certificate, KeyAlgorithm, Profile};
use pki_tests::{TestCa, openssl, require};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// A test CA made with `extra` init flags, or `None` when openssl, which checks what it
/// issues, is missing (the test is then skipped, or fails under CI).
fn openssl_ca(extra: &[&str]) -> Option<TestCa> {
    require(&["openssl"]).then(|| TestCa::new(extra))
}

/// openssl's strict verification of `dir/cert.pem` against `ca.pem` with `chain.pem` untrusted.
fn openssl_verify(dir: &Path, purpose: &str) {
    let run = openssl([
        "verify",
        "-x509_strict",
        "-purpose",
        purpose,
        "-CAfile",
        dir.join("ca.pem").to_str().unwrap(),
        "-untrusted",
        dir.join("chain.pem").to_str().unwrap(),
        dir.join("cert.pem").to_str().unwrap(),
    ]);
    assert_eq!(
        run.code,
        0,
        "openssl verify failed for {}: {run:#?}",
        dir.display()
    );
    assert!(run.stdout.trim_end().ends_with(": OK"), "{run:#?}");
}

/// rustls-webpki, called directly: the chain verifies for the purpose and the name.
fn webpki_verify(dir: &Path, profile: Profile, name: &str) {
    let leaf = Certificate::from_pem(&read(&dir.join("cert.pem")), "cert").unwrap();
    let chain = Certificate::all_from_pem(&read(&dir.join("chain.pem")), "chain").unwrap();
    let root = Certificate::from_pem(&read(&dir.join("ca.pem")), "ca").unwrap();
    let root_der = CertificateDer::from(root.der().to_vec());
    let anchors = [webpki::anchor_from_trusted_cert(&root_der)
        .unwrap()
        .to_owned()];
    let inter: Vec<CertificateDer<'_>> = chain
        .iter()
        .map(|c| CertificateDer::from(c.der().to_vec()))
        .collect();
    let leaf_der = CertificateDer::from(leaf.der().to_vec());
    let ee = webpki::EndEntityCert::try_from(&leaf_der).unwrap();
    let now = UnixTime::now();
    let verify = |usage| {
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &inter,
            now,
            usage,
            None,
            None,
        )
    };
    let usages = match profile {
        Profile::Server => vec![webpki::KeyUsage::server_auth()],
        Profile::Client => vec![webpki::KeyUsage::client_auth()],
        Profile::ServerClient => {
            vec![
                webpki::KeyUsage::server_auth(),
                webpki::KeyUsage::client_auth(),
            ]
        }
        other => panic!("no usage to verify {other} for"),
    };
    for usage in usages {
        verify(usage).unwrap_or_else(|e| panic!("webpki rejects {}: {e:?}", dir.display()));
    }
    if profile.server() {
        ee.verify_is_valid_for_subject_name(&ServerName::try_from(name).unwrap())
            .unwrap();
    }
    // The wrong purpose is refused: least privilege holds.
    let wrong = if profile == Profile::Server {
        Some(webpki::KeyUsage::client_auth())
    } else if profile == Profile::Client {
        Some(webpki::KeyUsage::server_auth())
    } else {
        None
    };
    if let Some(usage) = wrong {
        assert!(verify(usage).is_err());
    }
}

#[test]
fn every_profile_and_key_algorithm_verifies() {
    let Some(ca) = openssl_ca(&[
        "--permitted-dns",
        "example.internal",
        "--permitted-ip",
        "10.0.0.0/8",
    ]) else {
        return;
    };
    for alg in KeyAlgorithm::ALL {
        for profile in Profile::ALL {
            let name = format!("{}-{}.example.internal", alg.name(), profile.name());
            let out = ca.path(&name);
            let run = ca
                .pki([
                    "--json",
                    "issue",
                    &name,
                    "--san",
                    "10.1.2.3",
                    "--profile",
                    profile.name(),
                    "--key",
                    alg.name(),
                    "--out",
                    out.to_str().unwrap(),
                ])
                .ok();
            let json = run.json();
            assert_eq!(json["key_algorithm"], alg.name());
            // 128 random bits: 16 bytes, or fewer when the top byte happens to be zero.
            let serial = json["serial"].as_str().unwrap();
            assert!((28..=32).contains(&serial.len()), "{serial}");
            let purpose = if profile.server() {
                "sslserver"
            } else {
                "sslclient"
            };
            openssl_verify(&out, purpose);
            webpki_verify(&out, profile, &name);
            let key = openssl([
                "pkey",
                "-in",
                out.join("key.pem").to_str().unwrap(),
                "-noout",
            ]);
            assert_eq!(key.code, 0, "openssl cannot read the PKCS#8 key: {key:#?}");
        }
    }
}

#[test]
fn every_ca_algorithm_signs_verifiable_leaves() {
    if !require(&["openssl"]) {
        return;
    }
    for alg in KeyAlgorithm::ALL {
        let ca = TestCa::new(&["--key", alg.name()]);
        let out = ca.issue("leaf");
        openssl_verify(&out, "sslserver");
        webpki_verify(&out, Profile::Server, "leaf.example.internal");
        // The CA certificates themselves: CA:TRUE critical, pathlen, keyCertSign + cRLSign.
        let text = openssl([
            "x509",
            "-noout",
            "-text",
            "-in",
            ca.dir.join("intermediate.pem").to_str().unwrap(),
        ]);
        for needle in [
            "CA:TRUE, pathlen:0",
            "Certificate Sign, CRL Sign",
            "X509v3 Subject Key Identifier",
            "X509v3 Authority Key Identifier",
        ] {
            assert!(text.stdout.contains(needle), "{}", text.stdout);
        }
    }
}

#[test]
fn revoked_certificate_fails_crl_check_and_another_passes() {
    let Some(ca) = openssl_ca(&[]) else { return };
    let a = ca.issue("a");
    let b = ca.issue("b");
    ca.pki([
        "revoke",
        a.join("cert.pem").to_str().unwrap(),
        "--reason",
        "keyCompromise",
    ])
    .ok();
    let crl = ca.path("crl.pem");
    let first = ca
        .pki(["--json", "crl", "--out", crl.to_str().unwrap()])
        .ok()
        .json();
    assert_eq!(first["entries"], 1);
    let bundle = ca.path("bundle.pem");
    let mut both = read(&a.join("chain.pem"));
    both.extend(read(&a.join("ca.pem")));
    std::fs::write(&bundle, both).unwrap();
    let verify = |cert: &Path| {
        openssl([
            "verify",
            "-x509_strict",
            "-crl_check",
            "-CAfile",
            bundle.to_str().unwrap(),
            "-CRLfile",
            crl.to_str().unwrap(),
            cert.to_str().unwrap(),
        ])
    };
    let revoked = verify(&a.join("cert.pem"));
    assert_ne!(revoked.code, 0, "{revoked:#?}");
    assert!(
        revoked.stderr.contains("certificate revoked")
            || revoked.stdout.contains("certificate revoked"),
        "{revoked:#?}"
    );
    let good = verify(&b.join("cert.pem"));
    assert_eq!(good.code, 0, "{good:#?}");
    // The CRL number increases, and openssl reads the reason.
    let second = ca
        .pki(["--json", "crl", "--out", crl.to_str().unwrap()])
        .ok()
        .json();
    assert!(second["number"].as_u64() > first["number"].as_u64());
    let text = openssl(["crl", "-noout", "-text", "-in", crl.to_str().unwrap()]);
    assert!(text.stdout.contains("Key Compromise"), "{}", text.stdout);
    // Listing shows the revocation.
    let listed = ca
        .pki(["--json", "list", "--status", "revoked"])
        .ok()
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[test]
fn encrypted_ca_key_opens_with_openssl_and_refuses_wrong_passphrase() {
    if !require(&["openssl"]) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let (ca, _) = TestCa::encrypted("s3cret passphrase");
    let dir = ca.dir.clone();
    let tmp = &ca.tmp;
    for key in ["root.key.pem", "intermediate.key.pem"] {
        let path = dir.join(key);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{key}"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{key}");
        let pkey = |passin: &str| {
            openssl([
                "pkey",
                "-in",
                path.to_str().unwrap(),
                "-passin",
                passin,
                "-noout",
            ])
        };
        let ok = pkey("pass:s3cret passphrase");
        assert_eq!(ok.code, 0, "{ok:#?}");
        let bad = pkey("pass:wrong");
        assert_ne!(bad.code, 0);
        // Scrypt with AES-256-CBC.
        let asn1 = openssl(["asn1parse", "-in", path.to_str().unwrap()]);
        assert!(
            asn1.stdout.contains(":scrypt") && asn1.stdout.contains("aes-256-cbc"),
            "{}",
            asn1.stdout
        );
    }
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    let issue = |cn: &str, out: &Path| {
        pki_tests::Pki::new(["issue", cn, "--out", out.to_str().unwrap()]).ca(&dir)
    };
    // Issuing works with the passphrase from the environment...
    let out = tmp.path().join("leaf");
    issue("x.example.internal", &out)
        .env("PKI_CA_PASSPHRASE", "s3cret passphrase")
        .run()
        .ok();
    // ...and fails cleanly with a wrong one, writing nothing.
    let out2 = tmp.path().join("leaf2");
    let run = issue("y.example.internal", &out2)
        .env("PKI_CA_PASSPHRASE", "wrong")
        .run()
        .fails_with(&[1]);
    assert!(run.stderr.contains("wrong passphrase"), "{run:#?}");
    assert!(!out2.exists());
    // Without any passphrase and no terminal: a clear error.
    let run = issue("y.example.internal", &out2).run().fails_with(&[1, 2]);
    assert!(run.stderr.contains("PKI_CA_PASSPHRASE"), "{run:#?}");
}

#[test]
fn renew_keeps_names_and_profile_and_rekeys_unless_asked() {
    let Some(ca) = openssl_ca(&[]) else { return };
    let dir = ca.path("svc");
    ca.pki([
        "issue",
        "svc.example.internal",
        "--san",
        "10.0.0.5",
        "--profile",
        "server-client",
        "--ttl",
        "20d",
        "--out",
        dir.to_str().unwrap(),
    ])
    .ok();
    let before = Certificate::from_pem(&read(&dir.join("cert.pem")), "before").unwrap();
    let key_before = read(&dir.join("key.pem"));
    let renewed = ca
        .pki(["--json", "renew", dir.to_str().unwrap()])
        .ok()
        .json();
    let after = Certificate::from_pem(&read(&dir.join("cert.pem")), "after").unwrap();
    assert_ne!(before.info().serial, after.info().serial);
    assert_eq!(renewed["serial"], after.info().serial.to_hex());
    assert_eq!(
        before.info().subject_alt_names,
        after.info().subject_alt_names
    );
    assert_eq!(after.info().profile, Some(Profile::ServerClient));
    assert_eq!(
        (after.info().not_after - after.info().not_before).whole_days(),
        20
    );
    assert_ne!(
        read(&dir.join("key.pem")),
        key_before,
        "a new key by default"
    );
    openssl_verify(&dir, "sslserver");
    let key_now = read(&dir.join("key.pem"));
    ca.pki(["renew", dir.to_str().unwrap(), "--reuse-key", "--ttl", "5d"])
        .ok();
    assert_eq!(
        read(&dir.join("key.pem")),
        key_now,
        "--reuse-key keeps the key"
    );
    let last = Certificate::from_pem(&read(&dir.join("cert.pem")), "last").unwrap();
    assert_eq!(
        (last.info().not_after - last.info().not_before).whole_days(),
        5
    );
    let check = ca
        .pki([
            "inspect",
            dir.join("cert.pem").to_str().unwrap(),
            "--key",
            dir.join("key.pem").to_str().unwrap(),
        ])
        .ok();
    assert!(check.stdout.contains("key matches:  yes"));
}

#[test]
fn csr_is_signed_with_its_key_and_names_only() {
    let Some(ca) = openssl_ca(&[]) else { return };
    let out = ca.path("csr-out");
    let run = ca
        .pki([
            "--json",
            "issue",
            "--csr",
            pki_tests::fixture("csr/good.csr").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .ok();
    let json = run.json();
    assert_eq!(json["common_name"], "good.example.internal");
    assert!(!out.join("key.pem").exists(), "no key is written for a CSR");
    openssl_verify(&out, "sslserver");
    let cert_pub = openssl([
        "x509",
        "-in",
        out.join("cert.pem").to_str().unwrap(),
        "-noout",
        "-pubkey",
    ]);
    let csr_pub = openssl([
        "req",
        "-in",
        pki_tests::fixture("csr/good.csr").to_str().unwrap(),
        "-noout",
        "-pubkey",
    ]);
    assert_eq!(cert_pub.stdout, csr_pub.stdout);
    let text = openssl([
        "x509",
        "-in",
        out.join("cert.pem").to_str().unwrap(),
        "-noout",
        "-ext",
        "subjectAltName",
    ]);
    assert!(
        text.stdout.contains("DNS:good.example.internal")
            && text.stdout.contains("IP Address:10.0.0.9")
    );
}
