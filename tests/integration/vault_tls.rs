//! OpenBao with a TLS listener (certificate from our offline CA) and AppRole: trust through
//! VAULT_CACERT / VAULT_CAPATH only, a wrong CA named as a TLS error, AppRole login, a new login
//! after the token is revoked mid-run, a wrong secret_id.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use pki::authority::vault::{VaultAuthority, VaultSettings};
use pki::{CertificateRequest, KeyAlgorithm, Profile, clock};
use pki_tests::TestCa;
use pki_tests::bao::Bao;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn write_secret(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn tls_trust_is_the_configured_ca_only() {
    let Some(bao) = Bao::tls() else { return };
    assert!(bao.addr.starts_with("https://"));
    bao.bootstrap();
    let work = tempfile::tempdir().unwrap();
    bao.issue("a.example.internal", "services", &work.path().join("a"))
        .run()
        .ok();

    // VAULT_CAPATH: a directory holding the CA works the same.
    let capath = work.path().join("cas");
    std::fs::create_dir(&capath).unwrap();
    std::fs::copy(bao.ca_file.as_ref().unwrap(), capath.join("vault-ca.pem")).unwrap();
    std::fs::write(capath.join("README"), "not a certificate\n").unwrap();
    bao.issue("b.example.internal", "services", &work.path().join("b"))
        .env("VAULT_CACERT", "")
        .env("VAULT_CAPATH", &capath)
        .run()
        .ok();

    // Another CA's root: the handshake fails, the address is named, nothing is written.
    let other = TestCa::new(&[]);
    let out = work.path().join("c");
    let start = Instant::now();
    let run = bao
        .issue("c.example.internal", "services", &out)
        .env("VAULT_CACERT", other.dir.join("root.pem"))
        .run()
        .fails_with(&[1]);
    assert!(
        run.stderr
            .contains(&format!("TLS handshake failed with Vault at {}", bao.addr)),
        "{run:#?}"
    );
    assert!(
        run.stderr.to_lowercase().contains("certificate"),
        "{run:#?}"
    );
    assert!(!out.exists());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "TLS failures are not retried"
    );

    // The system roots do not know our CA either: a configured CA replaces them, and without
    // one the private CA is not trusted.
    let run = bao
        .issue("c.example.internal", "services", &out)
        .env("VAULT_CACERT", "")
        .run()
        .fails_with(&[1, 2]);
    // A machine without system roots says so instead of trying.
    assert!(
        run.stderr
            .contains(&format!("TLS handshake failed with Vault at {}", bao.addr))
            || run.stderr.contains("no system CA certificates were found"),
        "{run:#?}"
    );
    assert!(!out.exists());
}

/// Sets up AppRole `issuer` allowed to sign with `services`; returns (role_id, secret_id).
fn approle(bao: &Bao, dir: &Path) -> (String, String) {
    bao.bao(["auth", "enable", "approle"]).ok();
    let policy = dir.join("issuer.hcl");
    std::fs::write(
        &policy,
        "path \"pki/sign/services\" { capabilities = [\"update\"] }\n\
         path \"pki/issue/services\" { capabilities = [\"update\"] }\n",
    )
    .unwrap();
    bao.bao(["policy", "write", "issuer", s(&policy)]).ok();
    bao.bao([
        "write",
        "auth/approle/role/issuer",
        "token_policies=issuer",
        "token_ttl=1h",
        "token_max_ttl=2h",
        "secret_id_ttl=1h",
    ])
    .ok();
    let role_id = bao
        .bao(["read", "-field=role_id", "auth/approle/role/issuer/role-id"])
        .ok()
        .stdout
        .trim()
        .to_owned();
    let secret_id = bao
        .bao([
            "write",
            "-f",
            "-field=secret_id",
            "auth/approle/role/issuer/secret-id",
        ])
        .ok()
        .stdout
        .trim()
        .to_owned();
    (role_id, secret_id)
}

fn accessors(bao: &Bao) -> usize {
    let body = bao.root("LIST", "/v1/auth/token/accessors", None);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["keys"].as_array().unwrap().len()
}

#[test]
fn approle_login_relogin_after_revocation_and_wrong_secret() {
    let Some(bao) = Bao::tls() else { return };
    bao.bootstrap();
    let work = tempfile::tempdir().unwrap();
    let (role_id, secret_id) = approle(&bao, work.path());
    let role_file = work.path().join("role_id");
    let secret_file = work.path().join("secret_id");
    write_secret(&role_file, &format!("{role_id}\n"));
    write_secret(&secret_file, &format!("{secret_id}\n"));

    // The CLI logs in with AppRole (no token in the environment at all).
    let out = work.path().join("approle");
    let run = bao
        .issue("app.example.internal", "services", &out)
        .env("VAULT_TOKEN", "")
        .env("PKI_VAULT_ROLE_ID_FILE", &role_file)
        .env("PKI_VAULT_SECRET_ID_FILE", &secret_file)
        .run()
        .ok();
    assert!(out.join("cert.pem").is_file(), "{run:#?}");

    // A wrong secret_id: a clear login error naming the address and Vault's reason.
    let wrong = work.path().join("wrong_secret");
    write_secret(&wrong, "00000000-0000-0000-0000-000000000000\n");
    let run = bao
        .issue("x.example.internal", "services", &work.path().join("x"))
        .env("VAULT_TOKEN", "")
        .env("PKI_VAULT_ROLE_ID_FILE", &role_file)
        .env("PKI_VAULT_SECRET_ID_FILE", &wrong)
        .run()
        .fails_with(&[1]);
    assert!(
        run.stderr
            .contains(&format!("AppRole login to Vault at {}", bao.addr)),
        "{run:#?}"
    );
    assert!(run.stderr.contains("invalid"), "{run:#?}");
    assert!(!run.stderr.contains(&secret_id) && !run.stderr.contains(&role_id));
    assert!(!work.path().join("x").exists());

    // Library: the token is revoked between two issues; the second logs in again and succeeds.
    let mut settings = VaultSettings::default();
    settings.address = Some(bao.addr.clone());
    settings.ca_cert = bao.ca_file.clone();
    settings.role = Some("services".into());
    settings.role_id_file = Some(role_file);
    settings.secret_id_file = Some(secret_file);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let vault = VaultAuthority::connect(&settings).await.unwrap();
        assert!(!format!("{vault:?}").contains(&secret_id));
        let request = |cn: &str| {
            CertificateRequest::new(cn, [], Profile::Server, pki::duration::parse("1d").unwrap())
                .unwrap()
        };
        let before = accessors(&bao);
        vault
            .issue(
                &request("one.example.internal"),
                KeyAlgorithm::EcdsaP256,
                clock::now(),
            )
            .await
            .unwrap();
        assert_eq!(accessors(&bao), before + 1, "one login");
        bao.root(
            "PUT",
            "/v1/sys/leases/revoke-prefix/auth/approle/login",
            None,
        );
        let after_revocation = accessors(&bao);
        assert!(
            after_revocation < before + 1,
            "the AppRole tokens are revoked"
        );
        let issued = vault
            .issue(
                &request("two.example.internal"),
                KeyAlgorithm::EcdsaP256,
                clock::now(),
            )
            .await
            .unwrap();
        assert_eq!(
            issued.certificate.info().common_name.as_deref(),
            Some("two.example.internal")
        );
        assert_eq!(
            accessors(&bao),
            after_revocation + 1,
            "logged in again once"
        );
    });
}
