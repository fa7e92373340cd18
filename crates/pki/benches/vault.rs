//! Vault backend throughput: 2,000 certificates issued through `VaultAuthority::issue_many`
//! against an OpenBao dev server this benchmark starts, next to a minimal raw client (reqwest,
//! the same work per certificate: P-256 key, CSR, `POST /v1/pki/sign/:role`, JSON decode) in the
//! same run, at concurrency 1 and 8. Ours also parses and checks every answer (key, names,
//! profile, chain).
//!
//! Run with `cargo bench -p pki --bench vault` (`-- --quick` for 200 certificates), or
//! `scripts/bench`. Needs `bao` on PATH (scripts/install-test-deps).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
#![allow(clippy::disallowed_methods)] // benchmarks read the wall clock

use std::net::TcpListener;
use std::ops::ControlFlow;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use pki::authority::Batch;
use pki::authority::vault::bootstrap::{self, BootstrapOptions, RoleOptions};
use pki::authority::vault::{VaultAuthority, VaultSettings};
use pki::{CertificateRequest, KeyAlgorithm, PrivateKey, Profile, SubjectName, clock, duration};

const TOKEN: &str = "bench-root-token";

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_bao(home: &std::path::Path) -> (Server, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("bao")
        .args([
            "server",
            "-dev",
            &format!("-dev-root-token-id={TOKEN}"),
            &format!("-dev-listen-address=127.0.0.1:{port}"),
        ])
        .env("HOME", home)
        .env("BAO_LOG_LEVEL", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            eprintln!("cannot start bao ({e}): install it with scripts/install-test-deps");
            std::process::exit(2)
        });
    (Server(child), format!("http://127.0.0.1:{port}"))
}

fn requests(n: usize, tag: &str) -> Vec<CertificateRequest> {
    (0..n)
        .map(|i| {
            CertificateRequest::new(
                &format!("{tag}-{i}.example.internal"),
                [SubjectName::parse("10.0.0.1").unwrap()],
                Profile::Server,
                duration::parse("30d").unwrap(),
            )
            .unwrap()
        })
        .collect()
}

async fn ours(vault: &VaultAuthority, reqs: &[CertificateRequest], concurrency: usize) -> Duration {
    let start = Instant::now();
    let mut done = 0;
    let mut batch = Batch::new(reqs, KeyAlgorithm::EcdsaP256);
    batch.concurrency = concurrency;
    vault
        .issue_many(&batch, clock::now(), |_, r| {
            r.unwrap();
            done += 1;
            ControlFlow::Continue(())
        })
        .await;
    assert_eq!(done, reqs.len());
    start.elapsed()
}

/// The raw client: what a minimal hand-written integration does for one certificate.
async fn raw_one(http: &reqwest::Client, url: &str, request: &CertificateRequest) {
    let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
    let csr = request.to_csr_pem(&key).unwrap();
    let body = serde_json::json!({
        "csr": csr,
        "ttl": duration::vault_ttl(request.ttl()),
        "format": "pem",
    });
    let resp = http
        .post(url)
        .header("X-Vault-Token", TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let v: serde_json::Value = resp.json().await.unwrap();
    assert!(
        v["data"]["certificate"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN")
    );
}

async fn raw(
    http: &reqwest::Client,
    url: &str,
    reqs: &[CertificateRequest],
    concurrency: usize,
) -> Duration {
    let start = Instant::now();
    let mut pending = FuturesUnordered::new();
    let mut next = 0;
    while next < reqs.len() && pending.len() < concurrency {
        pending.push(raw_one(http, url, &reqs[next]));
        next += 1;
    }
    while pending.next().await.is_some() {
        if next < reqs.len() {
            pending.push(raw_one(http, url, &reqs[next]));
            next += 1;
        }
    }
    start.elapsed()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let total = if quick { 200 } else { 2000 };
    let home = std::env::temp_dir().join(format!("pki-bench-vault-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let (_server, addr) = start_bao(&home);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let token_file = home.join("token");
        pki::fsio::write_atomic(&token_file, TOKEN.as_bytes(), pki::fsio::FileMode::PRIVATE)
            .unwrap();
        let mut settings = VaultSettings::default();
        settings.address = Some(addr.clone());
        settings.role = Some("bench".into());
        settings.token_file = Some(token_file);
        // Wait for the dev server.
        let vault = loop {
            let v = VaultAuthority::connect(&settings).await.unwrap();
            if v.client().read("sys/health").await.is_ok() {
                break v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let mut options = BootstrapOptions::new("pki");
        options.ca_common_name = "Bench Root CA".into();
        options.role = Some(RoleOptions::new("bench", vec!["example.internal".into()]));
        bootstrap::bootstrap(vault.client(), &options, clock::now())
            .await
            .unwrap();
        // The raw client gets the same transport as ours: HTTP/1.1 or h2 by ALPN, pooled.
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(
                rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth(),
            )
            .build()
            .unwrap();
        let url = format!("{addr}/v1/pki/sign/bench");
        // Warm up both (connections, the server's caches).
        ours(&vault, &requests(50, "warm"), 8).await;
        raw(&http, &url, &requests(50, "warm-raw"), 8).await;

        println!(
            "OpenBao dev server ({}), {total} P-256 certificates per client and concurrency, \
             sign/:role with a CSR, current-thread runtime",
            Command::new("bao")
                .arg("version")
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" "))
                .unwrap_or_default()
        );
        for concurrency in [1usize, 8] {
            // Ten rounds, alternating which client goes first, so that load from elsewhere on
            // the machine and a growing store on the server hit both clients alike.
            let rounds = 10;
            let block = total / rounds;
            let mut t_raw = Duration::ZERO;
            let mut t_ours = Duration::ZERO;
            for round in 0..rounds {
                let tag = format!("{concurrency}-{round}");
                let raw_reqs = requests(block, &format!("raw{tag}"));
                let our_reqs = requests(block, &format!("ours{tag}"));
                if round % 2 == 0 {
                    t_raw += raw(&http, &url, &raw_reqs, concurrency).await;
                    t_ours += ours(&vault, &our_reqs, concurrency).await;
                } else {
                    t_ours += ours(&vault, &our_reqs, concurrency).await;
                    t_raw += raw(&http, &url, &raw_reqs, concurrency).await;
                }
            }
            let half = block * rounds / 2;
            let n = (2 * half) as f64;
            let ours_rate = n / t_ours.as_secs_f64();
            let raw_rate = n / t_raw.as_secs_f64();
            println!(
                "concurrency {concurrency}: pki issue_many {ours_rate:7.1} cert/s ({:6.2} s)   \
                 raw reqwest {raw_rate:7.1} cert/s ({:6.2} s)   ratio {:.3}",
                t_ours.as_secs_f64(),
                t_raw.as_secs_f64(),
                ours_rate / raw_rate
            );
        }
    });
    let _ = std::fs::remove_dir_all(&home);
}
