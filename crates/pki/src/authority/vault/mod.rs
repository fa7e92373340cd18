//! Vault / OpenBao's PKI secrets engine (and KV v2) over HTTPS.
//!
//! [`VaultAuthority`] signs through a PKI role: by default it generates the key here, sends a
//! CSR to `sign/:role` and keeps the private key off the network; with
//! [`VaultSettings::server_keygen`] Vault generates the key (`issue/:role`). Every answer is
//! checked before it is returned: the certificate is for our key and names, with the profile
//! asked for, and its chain verifies.
//!
//! The HTTP layer ([`VaultClient`]) handles tokens and AppRole (with a new login after a 403),
//! bounded retries with backoff and jitter, standby redirects, and Vault's error and warning
//! formats. Facts about the API it relies on were observed on OpenBao 2.7.2.
//!
//! ```no_run
//! use pki::authority::vault::{VaultAuthority, VaultSettings};
//! use pki::{CertificateRequest, KeyAlgorithm, Profile, clock, duration};
//!
//! # async fn demo() -> pki::Result<()> {
//! let mut settings = VaultSettings::default().with_env()?; // VAULT_ADDR, VAULT_CACERT, VAULT_TOKEN...
//! settings.role = Some("services".into());
//! let vault = VaultAuthority::connect(&settings).await?;
//! let request = CertificateRequest::new(
//!     "api.example.internal",
//!     [],
//!     Profile::Server,
//!     duration::parse("30d")?,
//! )?;
//! let issued = vault.issue(&request, KeyAlgorithm::EcdsaP256, clock::now()).await?;
//! # Ok(())
//! # }
//! ```

mod auth;
pub mod bootstrap;
mod client;
#[cfg(feature = "fuzzing")]
pub(crate) mod fuzzing;
mod issued;
pub mod kv;
mod settings;
mod wire;

use std::ops::ControlFlow;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde::Deserialize;
use time::OffsetDateTime;

pub use client::{Method, TransportProblem, VaultClient, VaultData};
pub use settings::{
    DEFAULT_APPROLE_MOUNT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_KV_MOUNT, DEFAULT_MOUNT,
    DEFAULT_REQUEST_TIMEOUT, DEFAULT_RETRY_BUDGET, VaultSettings, env,
};

use super::{
    Batch, IssuedCertificate, ListFilter, Record, RevocationReason, RevokeOutcome, SignedCrl,
    Status,
};
use crate::cert::{Certificate, Serial};
use crate::error::{Error, Result};
use crate::key::{KeyAlgorithm, PrivateKey};
use crate::name::SubjectName;
use crate::request::{CertificateRequest, SubjectKey};
use client::{Call, json_body};
use issued::{Ask, ExpectedKey, SignedData};
use settings::check_path_name;

/// Most requests [`VaultAuthority::list_each`] keeps in flight while reading certificates.
const LIST_CONCURRENCY: usize = 8;

/// A PKI mount (and role) on a Vault / OpenBao server.
#[derive(Debug)]
pub struct VaultAuthority {
    client: VaultClient,
    mount: String,
    role: Option<String>,
    kv_mount: String,
    server_keygen: bool,
    /// The last CA chain Vault returned, parsed: every answer repeats it.
    chains: issued::ChainCache,
}

/// `data` of revoke.
#[derive(Deserialize)]
struct RevokeData {
    #[serde(default)]
    revocation_time: i64,
}

/// `data` of `cert/:serial`.
#[derive(Deserialize)]
struct CertData {
    certificate: String,
    #[serde(default)]
    revocation_time: i64,
}

impl VaultAuthority {
    /// Builds the client for `settings`. Nothing is sent yet: the token is looked up, or the
    /// AppRole login made, with the first request. Fails on a setting that cannot work (no
    /// address, no credentials, an unreadable or group-readable token file, a bad CA file).
    pub async fn connect(settings: &VaultSettings) -> Result<Self> {
        let mount = settings.mount().to_owned();
        check_path_name("mount", &mount)?;
        if let Some(role) = &settings.role {
            check_path_name("role", role)?;
        }
        let kv_mount = settings.kv_mount().to_owned();
        check_path_name("kv_mount", &kv_mount)?;
        let client = VaultClient::new(settings)?;
        if !client.credentials.is_some() {
            return Err(Error::VaultConfig {
                setting: "token",
                problem: "no credentials are configured (no token, token file or AppRole ids)"
                    .to_owned(),
            });
        }
        Ok(Self {
            client,
            mount,
            role: settings.role.clone(),
            kv_mount,
            server_keygen: settings.server_keygen,
            chains: issued::ChainCache::default(),
        })
    }

    /// The HTTP client, for operations this type does not wrap.
    pub fn client(&self) -> &VaultClient {
        &self.client
    }

    /// The PKI mount.
    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// The role used to sign, if one is configured.
    pub fn role(&self) -> Option<&str> {
        self.role.as_deref()
    }

    /// The KV v2 mount.
    pub fn kv_mount(&self) -> &str {
        &self.kv_mount
    }

    fn role_or_err(&self) -> Result<&str> {
        self.role.as_deref().ok_or_else(|| Error::VaultConfig {
            setting: "role",
            problem: "no PKI role to sign with is configured".to_owned(),
        })
    }

    /// Issues a certificate for a new key of `algorithm`: generated here and sent as a CSR to
    /// `sign/:role`, or generated by Vault (`issue/:role`) with `server_keygen`.
    pub async fn issue(
        &self,
        request: &CertificateRequest,
        algorithm: KeyAlgorithm,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate> {
        if self.server_keygen {
            return self.issue_on_server(request, algorithm, now).await;
        }
        let role = self.role_or_err()?;
        let key = if algorithm.is_rsa() {
            off_thread(move || PrivateKey::generate(algorithm)).await??
        } else {
            // Tens of microseconds: a hand-off to another thread would cost more than it saves.
            PrivateKey::generate(algorithm)?
        };
        let csr = request.to_csr_pem(&key)?;
        let mut issued = self
            .sign_csr(
                role,
                &csr,
                ask(request, ExpectedKey::Spki(key.public_key_spki()), now),
            )
            .await?;
        issued.private_key = Some(key);
        Ok(issued)
    }

    /// Signs a certificate for a key we hold or a verified CSR (`sign/:role`). The result has
    /// no private key. The role must take names from the CSR (Vault's default,
    /// `use_csr_common_name` and `use_csr_sans`); the names are checked afterwards.
    pub async fn sign(
        &self,
        request: &CertificateRequest,
        key: SubjectKey<'_>,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate> {
        let role = self.role_or_err()?;
        match key {
            SubjectKey::Key(k) => {
                let csr = request.to_csr_pem(k)?;
                self.sign_csr(
                    role,
                    &csr,
                    ask(request, ExpectedKey::Spki(k.public_key_spki()), now),
                )
                .await
            }
            SubjectKey::Csr(c) => {
                let expected = ExpectedKey::Spki(c.spki_der().to_vec());
                self.sign_csr(role, &c.pem(), ask(request, expected, now))
                    .await
            }
        }
    }

    async fn sign_csr(&self, role: &str, csr_pem: &str, ask: Ask<'_>) -> Result<IssuedCertificate> {
        let path = format!("{}/sign/{role}", self.mount);
        // Only the CSR and the lifetime: the role takes the names from the CSR, and sending
        // them again only earns "field was provided but…" warnings.
        let body = json_body(&serde_json::json!({
            "csr": csr_pem,
            "ttl": crate::duration::vault_ttl(ask.request.ttl()),
            "format": "pem",
        }))?;
        self.post_certificate(&path, &body, ask).await
    }

    /// Posts an issue or sign request and checks the answer against what was asked.
    async fn post_certificate(
        &self,
        path: &str,
        body: &[u8],
        ask: Ask<'_>,
    ) -> Result<IssuedCertificate> {
        let env = self
            .client
            .call::<SignedData>(Call::post(path, body))
            .await?;
        let data = env.data.ok_or_else(|| {
            self.client
                .bad_response(path, "the answer has no data".to_owned())
        })?;
        issued::assemble((data, env.warnings), ask, &self.chains)
            .map_err(|problem| self.client.bad_response(path, problem))
    }

    async fn issue_on_server(
        &self,
        request: &CertificateRequest,
        algorithm: KeyAlgorithm,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate> {
        let role = self.role_or_err()?;
        let path = format!("{}/issue/{role}", self.mount);
        let mut body = serde_json::json!({
            "common_name": request.common_name(),
            "ttl": crate::duration::vault_ttl(request.ttl()),
            "format": "pem",
            "private_key_format": "pkcs8",
            "exclude_cn_from_sans": false,
        });
        let join = |pick: fn(&SubjectName) -> Option<String>| -> String {
            request
                .names()
                .iter()
                .filter_map(pick)
                .collect::<Vec<_>>()
                .join(",")
        };
        // alt_names must be one comma-separated string (an array is refused with 400).
        let fields = [
            (
                "alt_names",
                join(|n| match n {
                    SubjectName::Dns(d) => Some(d.clone()),
                    SubjectName::Email(e) => Some(e.clone()),
                    _ => None,
                }),
            ),
            (
                "ip_sans",
                join(|n| match n {
                    SubjectName::Ip(ip) => Some(ip.to_string()),
                    _ => None,
                }),
            ),
            (
                "uri_sans",
                join(|n| match n {
                    SubjectName::Uri(u) => Some(u.clone()),
                    _ => None,
                }),
            ),
        ];
        for (field, value) in fields {
            if !value.is_empty() {
                body[field] = serde_json::Value::String(value);
            }
        }
        // OpenBao honours these for roles with key_type=any; roles with a fixed key type
        // ignore them.
        let (key_type, key_bits) = algorithm.vault_params();
        body["key_type"] = key_type.into();
        body["key_bits"] = key_bits.into();
        let bytes = json_body(&body)?;
        self.post_certificate(&path, &bytes, ask(request, ExpectedKey::FromVault, now))
            .await
    }

    /// Issues one certificate per request with at most `concurrency` requests in flight, calling
    /// `on_result` with each request's index and outcome as it completes (in completion order).
    /// When `on_result` returns `Break`, no further request is started and those in flight are
    /// abandoned.
    pub async fn issue_many<F>(&self, batch: &Batch<'_>, now: OffsetDateTime, mut on_result: F)
    where
        F: FnMut(usize, Result<IssuedCertificate>) -> ControlFlow<()>,
    {
        let Batch {
            requests,
            algorithm,
            concurrency,
        } = *batch;
        let concurrency = concurrency.max(1);
        // Each answer is checked against the time it arrives, not the batch's start: a long
        // batch would otherwise find later certificates "not valid yet".
        let started = crate::clock::now();
        let one = |i: usize| async move {
            let at = now + (crate::clock::now() - started);
            (i, self.issue(&requests[i], algorithm, at).await)
        };
        let mut pending = FuturesUnordered::new();
        let mut next = 0;
        while next < requests.len() && pending.len() < concurrency {
            pending.push(one(next));
            next += 1;
        }
        while let Some((i, outcome)) = pending.next().await {
            if on_result(i, outcome).is_break() {
                return;
            }
            if next < requests.len() {
                pending.push(one(next));
                next += 1;
            }
        }
    }

    /// Revokes a certificate by serial. Vault keeps no revocation reason: `reason` is not
    /// sent. A certificate already revoked is reported as such with its original time.
    pub async fn revoke(
        &self,
        serial: &Serial,
        _reason: RevocationReason,
        _now: OffsetDateTime,
    ) -> Result<RevokeOutcome> {
        if let (_, Some(at)) = self.certificate(serial).await? {
            return Ok(RevokeOutcome::AlreadyRevoked(
                at,
                RevocationReason::Unspecified,
            ));
        }
        let path = format!("{}/revoke", self.mount);
        let body = json_body(&serde_json::json!({ "serial_number": serial.to_colon_hex() }))?;
        let env = self
            .client
            .call::<RevokeData>(Call::post(&path, &body))
            .await?;
        match env.data {
            Some(d) if d.revocation_time > 0 => Ok(RevokeOutcome::Revoked),
            // An expired certificate is "revoked" with a warning only and no data.
            _ => Err(self.client.bad_response(
                &path,
                format!(
                    "Vault did not revoke {}: {}",
                    serial.to_colon_hex(),
                    if env.warnings.is_empty() {
                        "no revocation time in the answer".to_owned()
                    } else {
                        env.warnings.join("; ")
                    }
                ),
            )),
        }
    }

    /// A certificate stored by the mount and its revocation time, if revoked. An unknown serial
    /// is [`Error::UnknownSerial`].
    pub async fn certificate(
        &self,
        serial: &Serial,
    ) -> Result<(Certificate, Option<OffsetDateTime>)> {
        let path = format!("{}/cert/{}", self.mount, serial.to_colon_hex());
        let env = match self.client.call::<CertData>(Call::get(&path)).await {
            Err(Error::VaultNotFound { .. }) => {
                return Err(Error::UnknownSerial {
                    serial: serial.to_hex(),
                });
            }
            other => other?,
        };
        let data = env.data.ok_or_else(|| {
            self.client
                .bad_response(&path, "the answer has no data".to_owned())
        })?;
        let cert = Certificate::from_pem(data.certificate.as_bytes(), &path)
            .map_err(|e| self.client.bad_response(&path, e.to_string()))?;
        let revoked = if data.revocation_time > 0 {
            Some(
                OffsetDateTime::from_unix_timestamp(data.revocation_time).map_err(|_| {
                    self.client
                        .bad_response(&path, "revocation_time out of range".to_owned())
                })?,
            )
        } else {
            None
        };
        Ok((cert, revoked))
    }

    /// The CA chain of the mount's default issuer: issuer first, root (if known) last.
    pub async fn ca_chain(&self) -> Result<Vec<Certificate>> {
        let path = format!("{}/ca_chain", self.mount);
        let body = self.client.raw(&path).await?.ok_or_else(|| {
            self.client.bad_response(
                &path,
                "the mount has no CA configured (HTTP 204)".to_owned(),
            )
        })?;
        Certificate::all_from_pem(&body, &path)
            .map_err(|e| self.client.bad_response(&path, e.to_string()))
    }

    /// The CA certificate that signs on this mount now: the first of [`Self::ca_chain`].
    pub async fn issuing_ca(&self) -> Result<Certificate> {
        let path = format!("{}/ca_chain", self.mount);
        self.ca_chain().await?.into_iter().next().ok_or_else(|| {
            self.client
                .bad_response(&path, "the mount returned an empty CA chain".to_owned())
        })
    }

    /// Every CA a client of this mount should trust at `now`: the self-signed issuers in the
    /// mount and the root of each issuer's chain (an intermediate signed outside the mount),
    /// unexpired and not revoked, without repeats. While an issuer rollover overlaps, the old
    /// and the new root are both there. Revocation is seen with `read` on `MOUNT/issuer/*`;
    /// without it, the public view of each issuer is used, which does not say.
    pub async fn trust_anchors(&self, now: OffsetDateTime) -> Result<Vec<Certificate>> {
        let mut anchors: Vec<Certificate> = Vec::new();
        let add = |anchors: &mut Vec<Certificate>, found: Vec<Certificate>| {
            for cert in found {
                if cert.info().self_issued
                    && cert.is_valid_at(now)
                    && !anchors.iter().any(|a| a.der() == cert.der())
                {
                    anchors.push(cert);
                }
            }
        };
        for id in self.client.list(&format!("{}/issuers", self.mount)).await? {
            // Issuer ids are UUIDs: anything else would make another path of this server.
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                continue;
            }
            // The token's read of the issuer says whether it is revoked; the public `/json`
            // view (for a policy without `read` on `issuer/*`) does not.
            let full = format!("{}/issuer/{id}", self.mount);
            let (path, data) = match self.client.read(&full).await {
                Ok(found) => (full, found.and_then(|d| d.data)),
                Err(Error::VaultApi { status: 403, .. }) => {
                    let public = format!("{full}/json");
                    let data = self.client.read(&public).await?.and_then(|d| d.data);
                    (public, data)
                }
                Err(e) => return Err(e),
            };
            let Some(data) = data else {
                continue;
            };
            // A revoked issuer is trusted no more, even while it stays in the mount.
            if data.get("revoked").and_then(serde_json::Value::as_bool) == Some(true) {
                continue;
            }
            let mut pems: Vec<&str> = data
                .get("ca_chain")
                .and_then(serde_json::Value::as_array)
                .map(|c| c.iter().filter_map(serde_json::Value::as_str).collect())
                .unwrap_or_default();
            pems.extend(data.get("certificate").and_then(serde_json::Value::as_str));
            for pem in pems {
                let found = Certificate::all_from_pem(pem.as_bytes(), &path)
                    .map_err(|e| self.client.bad_response(&path, e.to_string()))?;
                add(&mut anchors, found);
            }
        }
        if anchors.is_empty() {
            // A server without the multi-issuer API: the root of the mount's chain.
            let chain = self.ca_chain().await?;
            add(&mut anchors, chain);
        }
        Ok(anchors)
    }

    /// The CRL the mount publishes (Vault rebuilds it at every revocation). Its number, entries
    /// and dates are read from the CRL itself; when to publish the next one is Vault's choice
    /// (`config/crl` expiry), not the caller's.
    pub async fn crl(&self) -> Result<SignedCrl> {
        let path = format!("{}/crl/pem", self.mount);
        let body = self.client.raw(&path).await?.ok_or_else(|| {
            self.client.bad_response(
                &path,
                "the mount publishes no CRL (HTTP 204: is a CA configured?)".to_owned(),
            )
        })?;
        parse_crl(&body, &path).map_err(|problem| self.client.bad_response(&path, problem))
    }

    /// Calls `f` with every leaf certificate stored by the mount that matches `filter`, in
    /// expiry order. The mount lists serials only, so each certificate is read (a few at a time)
    /// and all are sorted before the first call. CA certificates are left out; Vault keeps no
    /// revocation reason.
    pub async fn list_each(
        &self,
        filter: &ListFilter,
        now: OffsetDateTime,
        mut f: impl FnMut(Record) -> Result<()>,
    ) -> Result<()> {
        let serials = self.client.list(&format!("{}/certs", self.mount)).await?;
        let parsed: Vec<Serial> = serials
            .iter()
            .filter_map(|s| Serial::parse(s).ok())
            .collect();
        let mut records = Vec::with_capacity(parsed.len());
        let mut pending = FuturesUnordered::new();
        let mut next = 0;
        loop {
            while next < parsed.len() && pending.len() < LIST_CONCURRENCY {
                let serial = &parsed[next];
                pending.push(async move { self.certificate(serial).await });
                next += 1;
            }
            let Some(outcome) = pending.next().await else {
                break;
            };
            match outcome {
                Ok((cert, revoked)) => {
                    if let Some(r) = record_of(&cert, revoked, now)
                        && matches(filter, &r, now)
                    {
                        records.push(r);
                    }
                }
                // Tidied between LIST and GET: nothing to show.
                Err(Error::UnknownSerial { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        records.sort_by(|a, b| {
            a.not_after
                .cmp(&b.not_after)
                .then_with(|| a.serial.cmp(&b.serial))
        });
        records.into_iter().try_for_each(&mut f)
    }

    /// Every leaf certificate of the mount matching `filter`, in expiry order.
    pub async fn list(&self, filter: &ListFilter, now: OffsetDateTime) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        self.list_each(filter, now, |r| {
            out.push(r);
            Ok(())
        })
        .await?;
        Ok(out)
    }
}

/// What a request asks of Vault.
fn ask(request: &CertificateRequest, expected: ExpectedKey, now: OffsetDateTime) -> Ask<'_> {
    Ask {
        request,
        expected,
        now,
    }
}

/// Runs CPU-heavy work (RSA key generation) on the blocking pool, so that a single-threaded
/// runtime keeps serving the other requests in flight meanwhile: an RSA-4096 key takes a third
/// of a second to generate.
async fn off_thread<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => Ok(value),
        // A panic in the work is a bug: let it surface as one.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(Error::RuntimeShutDown),
    }
}

fn record_of(
    cert: &Certificate,
    revoked: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Option<Record> {
    let info = cert.info();
    if info.is_ca {
        return None;
    }
    let status = match revoked {
        Some(_) => Status::Revoked,
        None if info.not_after < now => Status::Expired,
        None => Status::Valid,
    };
    Some(Record {
        serial: info.serial.to_hex(),
        common_name: info.common_name.clone().unwrap_or_default(),
        names: info
            .subject_alt_names
            .iter()
            .map(|n| format!("{}:{}", n.kind(), n.value()))
            .collect(),
        profile: info.profile,
        key_algorithm: info.key_algorithm,
        not_before: info.not_before,
        not_after: info.not_after,
        // Vault does not say when it signed; NotBefore is that moment less its 30 s backdate.
        issued_at: info.not_before,
        status,
        revoked_at: revoked,
        revocation_reason: None,
        sha256_fingerprint: info.sha256_fingerprint.clone(),
    })
}

fn matches(filter: &ListFilter, r: &Record, _now: OffsetDateTime) -> bool {
    if filter.status.is_some_and(|s| s != r.status) {
        return false;
    }
    if let Some(before) = filter.expiring_before
        && (r.status != Status::Valid || r.not_after >= before)
    {
        return false;
    }
    true
}

/// Reads a PEM CRL's number, entry count and dates.
fn parse_crl(pem: &[u8], origin: &str) -> std::result::Result<SignedCrl, String> {
    use x509_parser::prelude::FromDer;
    use x509_parser::revocation_list::CertificateRevocationList;
    let block = crate::pemfile::single_block(pem, origin, &[crate::pemfile::label::CRL])
        .map_err(|e| e.to_string())?;
    let der = block.der;
    let (number, entries, this_update, next_update) = {
        let (_, crl) = CertificateRevocationList::from_der(&der)
            .map_err(|e| format!("not a valid CRL ({e})"))?;
        let number = crl
            .crl_number()
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
        let time = |t: i64| {
            OffsetDateTime::from_unix_timestamp(t).map_err(|_| "CRL date out of range".to_owned())
        };
        let this_update = time(crl.last_update().timestamp())?;
        let next_update = match crl.next_update() {
            Some(t) => time(t.timestamp())?,
            None => this_update,
        };
        (
            number,
            crl.iter_revoked_certificates().count(),
            this_update,
            next_update,
        )
    };
    Ok(SignedCrl {
        der,
        number,
        entries,
        this_update,
        next_update,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_sent_in_vault_form() {
        // Vault prints and accepts colon hex; it stores hyphen hex. All name the same serial.
        let s =
            Serial::parse("74:11:d5:ba:eb:f9:c7:46:57:e9:6b:9c:a8:ed:4e:aa:3d:85:49:84").unwrap();
        assert_eq!(
            Serial::parse("74-11-d5-ba-eb-f9-c7-46-57-e9-6b-9c-a8-ed-4e-aa-3d-85-49-84").unwrap(),
            s
        );
        assert_eq!(
            Serial::parse("7411D5BAEBF9C74657E96B9CA8ED4EAA3D854984").unwrap(),
            s
        );
        assert_eq!(
            s.to_colon_hex(),
            "74:11:d5:ba:eb:f9:c7:46:57:e9:6b:9c:a8:ed:4e:aa:3d:85:49:84"
        );
        // A leading zero byte (DER sign padding) does not make a different serial.
        assert_eq!(Serial::parse("00:8f:01").unwrap().to_colon_hex(), "8f:01");
    }

    #[test]
    fn ttls_are_rendered_as_seconds() {
        for (text, vault) in [
            ("1d12h", "129600s"),
            ("30d", "2592000s"),
            ("90m", "5400s"),
            ("1y", "31536000s"),
        ] {
            assert_eq!(
                crate::duration::vault_ttl(crate::duration::parse(text).unwrap()),
                vault
            );
        }
    }
}
