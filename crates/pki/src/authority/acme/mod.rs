//! ACME (RFC 8555) through instant-acme: publicly trusted certificates (Let's Encrypt) for the
//! public sites, beside the offline CA and Vault.
//!
//! The key is made here and only a CSR leaves the host. Every order's challenges are answered
//! as configured ([`Challenge`]), the order is finalized with our CSR, and the chain that
//! comes back is checked like a Vault answer (our key, our names, a chain that verifies up to
//! its top) before anything is returned. The account is created on first use and kept in a
//! 0600 file.

mod account;
mod challenge;
mod http;
mod responder;

use std::path::PathBuf;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, Identifier, NewOrder, OrderStatus,
    RetryPolicy,
};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

pub use challenge::Challenge;

use crate::authority::{IssuedCertificate, answer};
use crate::cert::Certificate;
use crate::error::{Error, Result};
use crate::key::{KeyAlgorithm, PrivateKey};
use crate::name::SubjectName;
use crate::request::CertificateRequest;

/// Let's Encrypt's production directory (`directory = "letsencrypt"`).
pub const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (`directory = "letsencrypt-staging"`): untrusted
/// certificates, generous rate limits, for trying a setup out.
pub const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// How far ahead of ours the server's clock may be.
const CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// How long an order may take from its creation to its certificate, unless set otherwise.
pub const DEFAULT_ORDER_TIMEOUT: Duration = Duration::from_secs(120);

/// The directory URL a name stands for: the Let's Encrypt shortcuts, or the URL itself.
pub fn directory_url(name: &str) -> &str {
    match name {
        "letsencrypt" => LETSENCRYPT,
        "letsencrypt-staging" => LETSENCRYPT_STAGING,
        url => url,
    }
}

/// What the ACME backend needs: the server, the account and how challenges are answered.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AcmeSettings {
    /// The directory URL (see [`directory_url`] for the shortcuts).
    pub directory: String,
    /// The CA file that alone is trusted for the server's HTTPS (test servers); else the
    /// system roots.
    pub ca_cert: Option<PathBuf>,
    /// Contact URIs of the account (`mailto:ops@example.com`).
    pub contact: Vec<String>,
    /// Whether the operator agreed to the server's terms of service (needed to create the
    /// account).
    pub terms_agreed: bool,
    /// External account binding: the key id, and the file (0600) holding the base64url HMAC
    /// key.
    pub eab: Option<(String, PathBuf)>,
    /// Where the account's credentials are kept (0600).
    pub account_file: PathBuf,
    /// How challenges are answered.
    pub challenge: Challenge,
    /// The certificate profile to ask for (`classic`, `tlsserver`, `shortlived`).
    pub profile: Option<String>,
    /// How long one order may take.
    pub order_timeout: Duration,
}

impl AcmeSettings {
    /// Settings for `directory` (a URL or shortcut), keeping the account in `account_file`,
    /// answering challenges with `challenge`; terms not agreed, no contact.
    pub fn new(directory: &str, account_file: PathBuf, challenge: Challenge) -> Self {
        Self {
            directory: directory_url(directory).to_owned(),
            ca_cert: None,
            contact: Vec::new(),
            terms_agreed: false,
            eab: None,
            account_file,
            challenge,
            profile: None,
            order_timeout: DEFAULT_ORDER_TIMEOUT,
        }
    }

    /// An error of the server for `operation`, its problem document's type and detail kept.
    fn failed(&self, operation: &'static str, e: &instant_acme::Error) -> Error {
        let problem = match e {
            instant_acme::Error::Api(p) => problem_text(p),
            other => other.to_string(),
        };
        Error::Acme {
            operation,
            directory: self.directory.clone(),
            problem,
        }
    }
}

/// A problem document as one line: detail, type, and each subproblem's identifier and detail.
fn problem_text(p: &instant_acme::Problem) -> String {
    let mut text = p.detail.clone().unwrap_or_else(|| "no detail".to_owned());
    if let Some(t) = &p.r#type {
        text.push_str(&format!(" ({t})"));
    }
    for sub in &p.subproblems {
        let id = sub
            .identifier
            .as_ref()
            .map_or_else(String::new, |i| format!("{i:?}: "));
        text.push_str(&format!(
            "; {id}{}",
            sub.detail.as_deref().unwrap_or("no detail")
        ));
    }
    text
}

/// An ACME account on one server.
pub struct AcmeAuthority {
    account: Account,
    settings: AcmeSettings,
    /// By the names of a request: the certificate its next order replaces (ARI).
    replaces: std::sync::Mutex<Vec<(Vec<SubjectName>, CertificateIdentifier<'static>)>>,
}

/// The renewal window an ACME server suggests for a certificate (ARI, RFC 9773).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RenewalWindow {
    /// Its start.
    pub start: OffsetDateTime,
    /// Its end.
    pub end: OffsetDateTime,
}

impl RenewalWindow {
    /// A window from `start` to `end`.
    pub fn new(start: OffsetDateTime, end: OffsetDateTime) -> Self {
        Self { start, end }
    }

    /// The point of the window this host renews at: `phase` (0–1, fixed per host and
    /// certificate) of the way through, as RFC 9773 asks clients to pick.
    pub fn point(&self, phase: f64) -> OffsetDateTime {
        self.start + (self.end - self.start) * phase.clamp(0.0, 1.0)
    }
}

impl std::fmt::Debug for AcmeAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeAuthority")
            .field("directory", &self.settings.directory)
            .finish_non_exhaustive()
    }
}

impl AcmeAuthority {
    /// Reads the account, or creates it on first use.
    pub async fn connect(settings: &AcmeSettings) -> Result<Self> {
        let client = http::Client::new(settings.ca_cert.as_deref())?;
        let account = account::load_or_create(settings, &client).await?;
        Ok(Self::of(account, settings))
    }

    fn of(account: Account, settings: &AcmeSettings) -> Self {
        Self {
            account,
            settings: settings.clone(),
            replaces: std::sync::Mutex::default(),
        }
    }

    /// The renewal window the server suggests for `certificate`, or `None` when its directory
    /// offers no renewal information (ARI).
    pub async fn renewal_window(&self, certificate: &Certificate) -> Result<Option<RenewalWindow>> {
        let der = CertificateDer::from(certificate.der());
        let id = CertificateIdentifier::try_from(&der).map_err(|e| Error::Acme {
            operation: "renewal info",
            directory: self.settings.directory.clone(),
            problem: format!("no ARI identifier for this certificate: {e}"),
        })?;
        match self.account.renewal_info(&id).await {
            Ok((info, _)) => Ok(Some(RenewalWindow {
                start: info.suggested_window.start,
                end: info.suggested_window.end,
            })),
            Err(instant_acme::Error::Unsupported(_)) => Ok(None),
            Err(e) => Err(self.settings.failed("renewal info", &e)),
        }
    }

    /// Announces that the next order for `request` replaces `current` (ARI: such renewals are
    /// exempt from Let's Encrypt's rate limits). Only for a server that offers ARI.
    pub fn replacing(&self, request: &CertificateRequest, current: &Certificate) -> Result<()> {
        let der = CertificateDer::from(current.der());
        let id = CertificateIdentifier::try_from(&der)
            .map_err(|e| Error::Acme {
                operation: "order",
                directory: self.settings.directory.clone(),
                problem: format!("no ARI identifier for the certificate replaced: {e}"),
            })?
            .into_owned();
        if let Ok(mut r) = self.replaces.lock() {
            r.retain(|(names, _)| names != request.names());
            r.push((request.names().to_vec(), id));
        }
        Ok(())
    }

    /// The certificate an order for `request` replaces, if one was announced.
    fn replaced(&self, request: &CertificateRequest) -> Option<CertificateIdentifier<'static>> {
        let r = self.replaces.lock().ok()?;
        r.iter()
            .find(|(names, _)| names == request.names())
            .map(|(_, id)| id.clone())
    }

    /// The account key's thumbprint (RFC 7638), which stateless http-01 answers with.
    pub fn thumbprint(&self) -> &str {
        self.account.key_thumbprint()
    }

    /// The settings it was opened with.
    pub fn settings(&self) -> &AcmeSettings {
        &self.settings
    }

    /// Orders a certificate for a new key of `algorithm`: answers the challenges, finalizes
    /// with our CSR and checks what comes back.
    pub async fn issue(
        &self,
        request: &CertificateRequest,
        algorithm: KeyAlgorithm,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate> {
        let key = PrivateKey::generate(algorithm)?;
        let mut issued = self.order(request, &key, now).await?;
        issued.private_key = Some(key);
        Ok(issued)
    }

    /// Orders a certificate for `key`, which the result does not carry; the whole order,
    /// challenges included, within the settings' `order_timeout`.
    pub async fn order(
        &self,
        request: &CertificateRequest,
        key: &PrivateKey,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate> {
        let limit = self.settings.order_timeout;
        match tokio::time::timeout(limit, self.order_within(request, key, now)).await {
            Ok(result) => result,
            Err(_) => Err(Error::Acme {
                operation: "order",
                directory: self.settings.directory.clone(),
                problem: format!(
                    "the order did not complete within order_timeout ({} s)",
                    limit.as_secs()
                ),
            }),
        }
    }

    async fn order_within(
        &self,
        request: &CertificateRequest,
        key: &PrivateKey,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate> {
        let settings = &self.settings;
        let fail = |operation, e: &instant_acme::Error| settings.failed(operation, e);
        let identifiers = request
            .names()
            .iter()
            .map(|n| match n {
                SubjectName::Dns(d) => Ok(Identifier::Dns(d.clone())),
                SubjectName::Ip(ip) => Ok(Identifier::Ip(*ip)),
                other => Err(Error::Acme {
                    operation: "order",
                    directory: settings.directory.clone(),
                    problem: format!("{other}: ACME orders DNS names and IP addresses only"),
                }),
            })
            .collect::<Result<Vec<_>>>()?;
        let order_of = || {
            let new = NewOrder::new(&identifiers);
            match &settings.profile {
                Some(p) => new.profile(p),
                None => new,
            }
        };
        let plain = order_of();
        let mut new = order_of();
        let replaced = self.replaced(request);
        if let Some(id) = replaced.clone() {
            new = new.replaces(id);
        }
        let mut order = match self.account.new_order(&new).await {
            Ok(order) => order,
            // A certificate already replaced once (an order that succeeded but was not
            // deployed) cannot be replaced again: order it as a plain renewal.
            Err(instant_acme::Error::Api(p))
                if replaced.is_some()
                    && p.r#type
                        .as_deref()
                        .is_some_and(|t| t.ends_with(":alreadyReplaced")) =>
            {
                self.account
                    .new_order(&plain)
                    .await
                    .map_err(|e| fail("order", &e))?
            }
            Err(e) => return Err(fail("order", &e)),
        };
        let mut warnings = Vec::new();
        if let Some(wanted) = &settings.profile {
            let echoed = order.state().profile.clone();
            if echoed.as_deref() != Some(wanted.as_str()) {
                warnings.push(format!(
                    "the ACME server ignored the profile {wanted:?} (the order says {})",
                    echoed.map_or_else(|| "none".to_owned(), |p| format!("{p:?}"))
                ));
            }
        }
        let mut solver = challenge::Solver::new(&settings.challenge);
        let validated = self.validate(&mut order, &mut solver).await;
        warnings.extend(solver.clear().await);
        validated?;
        let csr = crate::pemfile::blocks_labelled(
            request.to_csr_pem(key)?.as_bytes(),
            "the CSR",
            &[crate::pemfile::label::CSR],
        )?;
        let der = csr.first().map(|b| b.der.clone()).unwrap_or_default();
        order
            .finalize_csr(&der)
            .await
            .map_err(|e| fail("finalize", &e))?;
        let pem = order
            .poll_certificate(&self.retry())
            .await
            .map_err(|e| fail("finalize", &e))?;
        // Checked as of now: orders placed one after the other may take minutes.
        let mut issued = self.check(&pem, (request, key), crate::clock::now().max(now))?;
        issued.warnings.extend(warnings);
        Ok(issued)
    }

    fn retry(&self) -> RetryPolicy {
        RetryPolicy::new()
            // The first look after 50 ms, doubling: a fast server is not kept waiting, a slow one
            // is polled a few times a second at most after the first second.
            .initial_delay(Duration::from_millis(50))
            .timeout(self.settings.order_timeout)
    }

    /// Answers every pending authorization of `order` and waits until it is ready; a failed
    /// validation names the domain and the server's problem detail.
    async fn validate(
        &self,
        order: &mut instant_acme::Order,
        solver: &mut challenge::Solver<'_>,
    ) -> Result<()> {
        let settings = &self.settings;
        let kind = settings.challenge.kind();
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(|e| settings.failed("challenge", &e))?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(Error::Acme {
                        operation: "challenge",
                        directory: settings.directory.clone(),
                        problem: format!("{}: the authorization is {other:?}", authz.identifier()),
                    });
                }
            }
            let domain = authz.identifier().to_string();
            let mut ch = authz.challenge(kind.clone()).ok_or_else(|| Error::Acme {
                operation: "challenge",
                directory: settings.directory.clone(),
                problem: format!("{domain}: the server offers no {kind:?} challenge"),
            })?;
            let token = ch.token.clone();
            solver
                .publish(domain_of(&domain), &token, &ch.key_authorization())
                .await?;
            ch.set_ready()
                .await
                .map_err(|e| settings.failed("challenge", &e))?;
        }
        let status = order
            .poll_ready(&self.retry())
            .await
            .map_err(|e| settings.failed("challenge", &e))?;
        if status == OrderStatus::Ready {
            return Ok(());
        }
        Err(Error::Acme {
            operation: "challenge",
            directory: settings.directory.clone(),
            problem: self.why_invalid(order).await,
        })
    }

    /// Each failed authorization's domain and problem, or the order's own problem.
    async fn why_invalid(&self, order: &mut instant_acme::Order) -> String {
        let mut reasons = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(Ok(authz)) = authorizations.next().await {
            let domain = authz.identifier().to_string();
            for c in &authz.challenges {
                if let Some(p) = &c.error {
                    reasons.push(format!("{domain}: {}", problem_text(p)));
                }
            }
        }
        if reasons.is_empty()
            && let Some(p) = &order.state().error
        {
            reasons.push(problem_text(p));
        }
        if reasons.is_empty() {
            reasons.push(format!("the order is {:?}", order.state().status));
        }
        reasons.join("; ")
    }

    /// Checks the chain the server returned: the leaf is for our key and names, serves a
    /// server, and verifies up to the top of the chain.
    fn check(
        &self,
        pem: &str,
        (request, key): (&CertificateRequest, &PrivateKey),
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate> {
        let bad = |problem: String| Error::Acme {
            operation: "finalize",
            directory: self.settings.directory.clone(),
            problem,
        };
        let origin = "the certificate the ACME server returned";
        let mut all = Certificate::all_from_pem(pem.as_bytes(), origin)?;
        if all.is_empty() {
            return Err(bad("no certificate in the answer".to_owned()));
        }
        let leaf = all.remove(0);
        if leaf.info().is_ca {
            return Err(bad("a CA certificate came back for a leaf order".to_owned()));
        }
        if !leaf.matches_key(key) {
            return Err(bad(
                "the certificate is not for the key of our CSR".to_owned()
            ));
        }
        answer::check_names(&leaf, request).map_err(bad)?;
        // Intermediates, issuer first; a server that appends its root gives it apart.
        let (roots, chain): (Vec<_>, Vec<_>) = all.into_iter().partition(|c| c.info().self_issued);
        let root = roots.into_iter().next();
        // A server's clock a little ahead of ours (or a chain made a moment ago, as pebble's
        // is) would make a fresh certificate "not valid yet": within CLOCK_SKEW, check as of
        // the newest start of validity.
        let newest = std::iter::once(&leaf)
            .chain(&chain)
            .map(|c| c.info().not_before)
            .max()
            .unwrap_or(now);
        let at = if newest > now && newest - now <= CLOCK_SKEW {
            newest
        } else {
            now
        };
        answer::verify(&leaf, (&chain, root.as_ref()), request, at).map_err(bad)?;
        Ok(IssuedCertificate::new(leaf, chain, root, None))
    }

    /// Revokes `certificate` (ordered by this account), for `reason`.
    pub async fn revoke(
        &self,
        certificate: &Certificate,
        reason: crate::authority::RevocationReason,
    ) -> Result<()> {
        let der = CertificateDer::from(certificate.der());
        let reason = revocation_reason(reason);
        self.account
            .revoke(&instant_acme::RevocationRequest {
                certificate: &der,
                reason,
            })
            .await
            .map_err(|e| self.settings.failed("revoke", &e))
    }
}

/// A wildcard's domain, without its `*.` (dns-01 records are set on the base domain).
fn domain_of(identifier: &str) -> &str {
    identifier.strip_prefix("*.").unwrap_or(identifier)
}

/// Our reason as instant-acme's (`None`: unspecified, sent as no reason code).
fn revocation_reason(
    reason: crate::authority::RevocationReason,
) -> Option<instant_acme::RevocationReason> {
    use crate::authority::RevocationReason as Ours;
    use instant_acme::RevocationReason as R;
    Some(match reason {
        Ours::KeyCompromise => R::KeyCompromise,
        Ours::CaCompromise => R::CaCompromise,
        Ours::AffiliationChanged => R::AffiliationChanged,
        Ours::Superseded => R::Superseded,
        Ours::CessationOfOperation => R::CessationOfOperation,
        Ours::CertificateHold => R::CertificateHold,
        Ours::PrivilegeWithdrawn => R::PrivilegeWithdrawn,
        Ours::AaCompromise => R::AaCompromise,
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
