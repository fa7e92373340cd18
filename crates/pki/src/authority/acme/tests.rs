//! ARI and profiles against a fake ACME server (Debian's pebble has neither): a directory
//! with or without `renewalInfo`, orders that echo the profile asked for or drop it, and a
//! record of what each new order said.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::pin::Pin;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use instant_acme::{BodyWrapper, BytesResponse, HttpClient, NewAccount};
use time::macros::datetime;

use super::*;
use crate::authority::offline::{self, InitOptions, KeyProtection, OfflineCa};
use crate::profile::Profile;
use crate::request::SubjectKey;

const BASE: &str = "https://acme.test";

/// How the fake behaves, and what it saw.
#[derive(Default)]
struct Fake {
    ari: bool,
    echo_profile: bool,
    chain_pem: String,
    finalized: bool,
    new_orders: Vec<serde_json::Value>,
}

#[derive(Clone)]
struct FakeClient(Arc<Mutex<Fake>>);

/// The JSON payload of a JWS request body (`{}` for POST-as-GET).
fn payload(body: &[u8]) -> serde_json::Value {
    let jws: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = jws["payload"].as_str().unwrap_or_default();
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap_or_default();
    serde_json::from_slice(&raw).unwrap_or(serde_json::json!({}))
}

impl FakeClient {
    fn order_json(fake: &Fake, profile: Option<&str>) -> String {
        let mut order = serde_json::json!({
            "status": if fake.finalized { "valid" } else { "ready" },
            "identifiers": [{ "type": "dns", "value": "www.example.com" }],
            "authorizations": [],
            "finalize": format!("{BASE}/finalize/1"),
        });
        if fake.finalized {
            order["certificate"] = format!("{BASE}/cert/1").into();
        }
        if let (true, Some(p)) = (fake.echo_profile, profile) {
            order["profile"] = p.into();
        }
        // A server with ARI echoes what the order replaces.
        if let Some(r) = fake.new_orders.last().and_then(|o| o.get("replaces")) {
            order["replaces"] = r.clone();
        }
        order.to_string()
    }

    fn answer(
        &self,
        method: &::http::Method,
        path: &str,
        body: &[u8],
    ) -> (u16, Vec<(&str, String)>, String) {
        let mut fake = self.0.lock().unwrap();
        let json = |s: String| (200, Vec::new(), s);
        match path {
            "/dir" => {
                let mut dir = serde_json::json!({
                    "newNonce": format!("{BASE}/nonce"),
                    "newAccount": format!("{BASE}/acct"),
                    "newOrder": format!("{BASE}/order"),
                    "revokeCert": format!("{BASE}/revoke"),
                    "keyChange": format!("{BASE}/key"),
                    "meta": { "profiles": { "shortlived": "160 hours" } },
                });
                if fake.ari {
                    dir["renewalInfo"] = format!("{BASE}/ari").into();
                }
                json(dir.to_string())
            }
            "/nonce" => (200, Vec::new(), String::new()),
            "/acct" => (
                201,
                vec![("Location", format!("{BASE}/acct/1"))],
                r#"{"status":"valid"}"#.to_owned(),
            ),
            "/order" => {
                let asked = payload(body);
                let profile = asked["profile"].as_str().map(str::to_owned);
                fake.new_orders.push(asked);
                fake.finalized = false;
                let order = Self::order_json(&fake, profile.as_deref());
                (201, vec![("Location", format!("{BASE}/order/1"))], order)
            }
            "/order/1" => json(Self::order_json(&fake, None)),
            "/finalize/1" => {
                fake.finalized = true;
                json(Self::order_json(&fake, None))
            }
            "/cert/1" => json(fake.chain_pem.clone()),
            p if p.starts_with("/ari/") && *method == ::http::Method::GET => (
                200,
                vec![("Retry-After", "21600".to_owned())],
                r#"{"suggestedWindow":{"start":"2027-01-20T00:00:00Z","end":"2027-01-22T00:00:00Z"}}"#
                    .to_owned(),
            ),
            _ => (404, Vec::new(), String::new()),
        }
    }
}

impl HttpClient for FakeClient {
    fn request(
        &self,
        req: ::http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<BytesResponse, instant_acme::Error>> + Send>>
    {
        let this = self.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let (status, headers, text) = this.answer(&parts.method, parts.uri.path(), &body);
            let mut rsp = ::http::Response::builder()
                .status(status)
                .header("Replay-Nonce", "nonce-1")
                .header("Content-Type", "application/json");
            for (k, v) in headers {
                rsp = rsp.header(k, v);
            }
            Ok(BytesResponse::from(
                rsp.body(Full::new(Bytes::from(text))).unwrap(),
            ))
        })
    }
}

/// An authority on the fake, with a certificate for `key` ready to be returned.
async fn on_fake(fake: Fake, profile: Option<&str>) -> (AcmeAuthority, Arc<Mutex<Fake>>, Rig) {
    let rig = Rig::new();
    let shared = Arc::new(Mutex::new(Fake {
        chain_pem: format!("{}{}", rig.leaf.pem(), rig.ca.intermediate().pem()),
        ..fake
    }));
    let client = FakeClient(shared.clone());
    let (account, _) = Account::builder_with_http(Box::new(client))
        .create(
            &NewAccount {
                contact: &[],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            format!("{BASE}/dir"),
            None,
        )
        .await
        .unwrap();
    let mut settings = AcmeSettings::new(
        &format!("{BASE}/dir"),
        PathBuf::from("unused.json"),
        Challenge::Http01Stateless,
    );
    settings.profile = profile.map(str::to_owned);
    (AcmeAuthority::of(account, &settings), shared, rig)
}

/// An offline CA, a key and a leaf it signed for www.example.com.
struct Rig {
    _dir: tempfile::TempDir,
    ca: OfflineCa,
    key: PrivateKey,
    request: CertificateRequest,
    leaf: Certificate,
}

const NOW: OffsetDateTime = datetime!(2027-01-01 0:00 UTC);

impl Rig {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca");
        offline::init(&path, &InitOptions::new(KeyProtection::None), NOW).unwrap();
        let mut ca = OfflineCa::open(&path).unwrap();
        ca.unlock(None).unwrap();
        let key = PrivateKey::generate(KeyAlgorithm::EcdsaP256).unwrap();
        let request = CertificateRequest::new(
            "www.example.com",
            [],
            Profile::Server,
            time::Duration::days(30),
        )
        .unwrap();
        let leaf = ca.sign(&request, SubjectKey::Key(&key), NOW).unwrap();
        Self {
            _dir: dir,
            ca,
            key,
            request,
            leaf,
        }
    }
}

#[tokio::test]
async fn a_profile_the_server_ignores_is_a_warning() {
    let (acme, _, rig) = on_fake(Fake::default(), Some("shortlived")).await;
    let issued = acme.order(&rig.request, &rig.key, NOW).await.unwrap();
    assert!(
        issued
            .warnings
            .iter()
            .any(|w| w.contains("ignored the profile \"shortlived\"")),
        "{:?}",
        issued.warnings
    );
    assert_eq!(issued.certificate.info().serial, rig.leaf.info().serial);
}

#[tokio::test]
async fn a_profile_the_server_echoes_is_quiet_and_was_asked_for() {
    let fake = Fake {
        echo_profile: true,
        ..Fake::default()
    };
    let (acme, seen, rig) = on_fake(fake, Some("shortlived")).await;
    let issued = acme.order(&rig.request, &rig.key, NOW).await.unwrap();
    assert!(issued.warnings.is_empty(), "{:?}", issued.warnings);
    assert_eq!(seen.lock().unwrap().new_orders[0]["profile"], "shortlived");
}

#[tokio::test]
async fn ari_window_and_replaces() {
    let fake = Fake {
        ari: true,
        ..Fake::default()
    };
    let (acme, seen, rig) = on_fake(fake, None).await;
    let window = acme.renewal_window(&rig.leaf).await.unwrap().unwrap();
    assert_eq!(window.start, datetime!(2027-01-20 0:00 UTC));
    assert_eq!(window.end, datetime!(2027-01-22 0:00 UTC));
    assert_eq!(window.point(0.5), datetime!(2027-01-21 0:00 UTC));
    // An order placed after `replacing` names the certificate it replaces.
    acme.replacing(&rig.request, &rig.leaf).unwrap();
    acme.order(&rig.request, &rig.key, NOW).await.unwrap();
    let orders = &seen.lock().unwrap().new_orders;
    let replaces = orders[0]["replaces"].as_str().unwrap_or_default();
    let id = CertificateIdentifier::try_from(&CertificateDer::from(rig.leaf.der())).unwrap();
    assert_eq!(replaces, id.to_string());
}

#[tokio::test]
async fn no_renewal_info_without_ari() {
    let (acme, _, rig) = on_fake(Fake::default(), None).await;
    assert_eq!(acme.renewal_window(&rig.leaf).await.unwrap(), None);
}
