//! The HTTP client under every Vault operation: one request with its token and namespace,
//! retries of transient failures within a time budget, with capped exponential backoff and
//! jitter, moving on to the next configured node when one is down, sealed or without a leader
//! (a Raft election), a 307/308 from a standby followed with the body re-sent, Vault's errors turned into [`Error`] variants that name the address, the
//! path, the status and Vault's own messages.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration as StdDuration, Instant};

use reqwest::header::{CONTENT_TYPE, HeaderValue, LOCATION};
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use super::auth::{Credentials, TokenState};
use super::settings::{VaultSettings, check_path_name};
use super::wire::{self, Envelope};
use crate::error::{Error, Result};
use crate::secret::SecretString;

/// Largest response body accepted (a LIST of 100,000 serials is about 6 MiB).
const MAX_BODY: usize = 64 << 20;
/// Largest buffer reserved up front for a response, whatever length the server announces.
const INITIAL_BODY: usize = 1 << 20;
/// Redirects followed for one request (a standby points at the active node: one hop).
const MAX_REDIRECTS: usize = 3;
/// First backoff delay; doubled per retry, capped at [`BACKOFF_CAP`], with jitter.
const BACKOFF_BASE: StdDuration = StdDuration::from_millis(250);
const BACKOFF_CAP: StdDuration = StdDuration::from_secs(4);
/// Statuses worth retrying: rate limited, internal error (a standby without a leader during an
/// election says "active cluster node not found"), bad gateway, unavailable (sealed only when
/// another node may answer: a lone sealed server needs an operator, not patience).
const RETRY_STATUS: [u16; 4] = [429, 500, 502, 503];
/// The longest `Retry-After` honoured; longer ones are capped (the budget still bounds all).
const MAX_RETRY_AFTER: StdDuration = StdDuration::from_secs(10);

/// An HTTP method of the Vault API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// GET: read.
    Get,
    /// POST: create or update (Vault treats PUT the same).
    Post,
    /// LIST: list keys (Vault's own verb).
    List,
    /// DELETE.
    Delete,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::List => "LIST",
            Self::Delete => "DELETE",
        }
    }

    fn to_reqwest(self) -> reqwest::Method {
        match self {
            Self::Get => reqwest::Method::GET,
            Self::Post => reqwest::Method::POST,
            Self::Delete => reqwest::Method::DELETE,
            // LIST is a valid token; from_bytes cannot fail on it.
            Self::List => reqwest::Method::from_bytes(b"LIST").unwrap_or(reqwest::Method::GET),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What kind of transport failure stopped a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportProblem {
    /// No connection (refused, unreachable, DNS).
    Connect,
    /// The TLS handshake failed (untrusted or wrong certificate, protocol mismatch).
    Tls,
    /// No complete answer within the request timeout.
    Timeout,
    /// The connection broke off, or the answer was malformed or too large.
    Broken,
}

impl fmt::Display for TransportProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "cannot connect to",
            Self::Tls => "TLS handshake failed with",
            Self::Timeout => "timed out waiting for",
            Self::Broken => "the exchange broke off with",
        })
    }
}

/// An HTTP answer: status and body (wiped on drop, as it may hold a token, a secret or a key).
pub(crate) struct Reply {
    pub status: u16,
    pub body: Zeroizing<Vec<u8>>,
    /// The server's `Retry-After`, in seconds, when it sent one.
    pub retry_after: Option<StdDuration>,
}

enum SendError {
    Http(reqwest::Error),
    Protocol(String),
}

/// Whether a call carries the client's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    /// With `X-Vault-Token` (a login first, for AppRole).
    Token,
    /// Without (logins, health).
    Anonymous,
}

/// One API call: the method, the path below `/v1/`, the JSON body, and the token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    pub(crate) path: &'a str,
    pub(crate) body: Option<&'a [u8]>,
    pub(crate) auth: Auth,
}

impl<'a> Call<'a> {
    fn new(method: Method, path: &'a str, body: Option<&'a [u8]>) -> Self {
        Self {
            method,
            path,
            body,
            auth: Auth::Token,
        }
    }

    /// `GET path`.
    pub(crate) fn get(path: &'a str) -> Self {
        Self::new(Method::Get, path, None)
    }

    /// `POST path` with a JSON body.
    pub(crate) fn post(path: &'a str, body: &'a [u8]) -> Self {
        Self::new(Method::Post, path, Some(body))
    }

    /// `LIST path`.
    pub(crate) fn list(path: &'a str) -> Self {
        Self::new(Method::List, path, None)
    }

    /// `DELETE path`.
    pub(crate) fn delete(path: &'a str) -> Self {
        Self::new(Method::Delete, path, None)
    }

    /// The same call without the token.
    pub(crate) fn anonymous(self) -> Self {
        Self {
            auth: Auth::Anonymous,
            ..self
        }
    }
}

/// Generic data read from or written to Vault.
#[derive(Debug)]
#[non_exhaustive]
pub struct VaultData {
    /// The `data` object, when the endpoint returns one.
    pub data: Option<serde_json::Value>,
    /// Vault's warnings.
    pub warnings: Vec<String>,
}

/// A client for one Vault / OpenBao server: address, TLS trust, namespace, credentials and
/// retry policy. Cheap to share by reference; requests may run concurrently.
pub struct VaultClient {
    http: reqwest::Client,
    /// The address, then the other configured nodes: where requests go, in turn.
    nodes: Vec<String>,
    /// The node requests go to now: the last one that answered.
    preferred: AtomicUsize,
    /// Where a redirect may lead: the address and the configured cluster nodes.
    trusted: Vec<Origin>,
    namespace: Option<HeaderValue>,
    max_retries: Option<u32>,
    retry_budget: StdDuration,
    /// The `X-Vault-Index` of the last write: reads after it ask to see it (a standby that
    /// has not caught up forwards them to the active node instead of answering stale).
    index: std::sync::Mutex<Option<HeaderValue>>,
    pub(super) credentials: Credentials,
    pub(super) token: tokio::sync::Mutex<TokenState>,
}

impl fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultClient")
            .field("nodes", &self.nodes)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// The address as it may appear in a message: without user information, which may hold a
/// password.
fn shown(address: &str) -> String {
    match address.split_once("://") {
        Some((scheme, rest)) if rest.contains('@') => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            format!("{scheme}://…@{host}")
        }
        _ => address.to_owned(),
    }
}

/// Scheme, host and port of a URL: what a redirect must keep, or lead to a known node.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    fn of(url: &reqwest::Url) -> Self {
        Self {
            scheme: url.scheme().to_owned(),
            host: url.host_str().unwrap_or_default().to_ascii_lowercase(),
            port: url.port_or_known_default(),
        }
    }
}

fn normalise_address(address: &str) -> Result<String> {
    normalise(address, "address")
}

fn normalise(address: &str, setting: &'static str) -> Result<String> {
    let bad = |problem: &str| Error::VaultConfig {
        setting,
        problem: format!("{:?} {problem}", shown(address)),
    };
    let url = reqwest::Url::parse(address.trim()).map_err(|e| {
        bad(&format!(
            "is not a URL ({e}); e.g. https://vault.example:8200"
        ))
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "must not carry a user name or password (credentials come from files or the environment)",
        ));
    }
    match url.scheme() {
        "https" => {}
        // A token must never cross a network in clear text.
        "http" if crate::tls::is_loopback(&url) => {}
        "http" => {
            return Err(bad(
                "uses http://, which would send the token in clear text; use https:// \
                 (plain http is accepted only for a dev server on this machine)",
            ));
        }
        _ => return Err(bad("must start with https://")),
    }
    if url.host_str().is_none() {
        return Err(bad("has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not carry a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

impl VaultClient {
    /// Builds a client from `settings`: checks the address, loads the trusted CAs, reads the
    /// credentials (token or AppRole ids) but does not contact the server yet.
    pub fn new(settings: &VaultSettings) -> Result<Self> {
        let address = settings
            .address
            .as_deref()
            .ok_or_else(|| Error::VaultConfig {
                setting: "address",
                problem: "no server address is configured".to_owned(),
            })?;
        let mut listed = address.split(',').map(str::trim).filter(|a| !a.is_empty());
        let first = listed.next().ok_or_else(|| Error::VaultConfig {
            setting: "address",
            problem: "no server address is configured".to_owned(),
        })?;
        let mut nodes = vec![normalise_address(first)?];
        for n in listed {
            let n = normalise_address(n)?;
            if !nodes.contains(&n) {
                nodes.push(n);
            }
        }
        for n in &settings.nodes {
            let n = normalise(n, "nodes")?;
            if !nodes.contains(&n) {
                nodes.push(n);
            }
        }
        let mut trusted = Vec::new();
        for a in &nodes {
            let url = reqwest::Url::parse(a).map_err(|e| Error::VaultConfig {
                setting: "nodes",
                problem: e.to_string(),
            })?;
            trusted.push(Origin::of(&url));
        }
        let roots = crate::tls::roots(settings.ca_cert.as_deref(), settings.ca_path.as_deref())?;
        let config = crate::tls::client_config(roots)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .connect_timeout(settings.connect_timeout())
            .timeout(settings.request_timeout())
            // Redirects are followed by hand: only 307/308, only without a downgrade to http.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pki/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::VaultConfig {
                setting: "tls",
                problem: format!("cannot build the HTTP client: {e}"),
            })?;
        let namespace = match settings.namespace.as_deref() {
            None | Some("") => None,
            Some(ns) => Some(HeaderValue::from_str(ns).map_err(|_| Error::VaultConfig {
                setting: "namespace",
                problem: format!("{ns:?} is not a valid header value"),
            })?),
        };
        check_path_name("approle_mount", settings.approle_mount())?;
        Ok(Self {
            http,
            nodes,
            preferred: AtomicUsize::new(0),
            trusted,
            namespace,
            max_retries: settings.max_retries()?,
            retry_budget: settings.retry_budget(),
            index: std::sync::Mutex::new(None),
            credentials: Credentials::from_settings(settings)?,
            token: tokio::sync::Mutex::new(TokenState::default()),
        })
    }

    /// The address of the node requests go to now (the configured address until it fails),
    /// without a trailing slash.
    pub fn address(&self) -> &str {
        &self.nodes[self.node()]
    }

    fn last_index(&self) -> Option<HeaderValue> {
        self.index.lock().ok().and_then(|i| i.clone())
    }

    /// The configured address (the first node), where clients are told to find the CA.
    pub fn primary_address(&self) -> &str {
        &self.nodes[0]
    }

    fn node(&self) -> usize {
        self.preferred.load(Ordering::Relaxed) % self.nodes.len()
    }

    /// Moves on from `node`, unless another request already did.
    fn move_on_from(&self, node: usize) {
        let next = (node + 1) % self.nodes.len();
        let _ = self
            .preferred
            .compare_exchange(node, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Reads `path` (below `/v1/`); `None` when nothing is there (404).
    pub async fn read(&self, path: &str) -> Result<Option<VaultData>> {
        match self.call::<serde_json::Value>(Call::get(path)).await {
            Ok(env) => Ok(Some(VaultData {
                data: env.data,
                warnings: env.warnings,
            })),
            Err(Error::VaultNotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `body` to `path` (POST). For configuration, not secrets: the JSON is not wiped
    /// from memory (use the KV functions for secrets).
    pub async fn write(&self, path: &str, body: &serde_json::Value) -> Result<VaultData> {
        let bytes = json_body(body)?;
        let env = self
            .call::<serde_json::Value>(Call::post(path, &bytes))
            .await?;
        Ok(VaultData {
            data: env.data,
            warnings: env.warnings,
        })
    }

    /// Lists the keys under `path`; an empty or missing path gives an empty list.
    pub async fn list(&self, path: &str) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Keys {
            #[serde(default)]
            keys: Vec<String>,
        }
        match self.call::<Keys>(Call::list(path)).await {
            Ok(env) => Ok(env.data.map(|k| k.keys).unwrap_or_default()),
            Err(Error::VaultNotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Deletes `path`.
    pub async fn delete(&self, path: &str) -> Result<()> {
        self.call::<serde_json::Value>(Call::delete(path))
            .await
            .map(|_| ())
    }

    /// One request with authentication: on a 403 with AppRole configured, logs in again once
    /// and repeats the request (the token may have been revoked or expired mid-run).
    pub(crate) async fn request(&self, call: Call<'_>) -> Result<Reply> {
        let mut logged_in_again = false;
        loop {
            let token = match call.auth {
                Auth::Token => self.current_token().await?,
                Auth::Anonymous => None,
            };
            let reply = self.send(call, token.as_ref().map(|(t, _)| &**t)).await?;
            if reply.status == 403
                && !logged_in_again
                && let Some((_, generation)) = &token
                && self.login_again(*generation).await?
            {
                logged_in_again = true;
                continue;
            }
            return Ok(reply);
        }
    }

    /// A request whose answer is Vault's JSON envelope; error statuses become errors.
    pub(crate) async fn call<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<Envelope<T>> {
        let reply = self.request(call).await?;
        self.envelope(&call, &reply)
    }

    /// A request for a raw (non-JSON) body; `None` on 204, which Vault sends when nothing is
    /// configured (no CA, no CRL).
    pub(crate) async fn raw(&self, path: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
        let call = Call::get(path);
        let reply = self.request(call).await?;
        match reply.status {
            204 => Ok(None),
            200..=299 if reply.body.is_empty() => Ok(None),
            200..=299 => Ok(Some(reply.body)),
            404 if wire::error_messages(&reply.body).is_empty() => Err(self.not_found(path)),
            status => Err(self.status_error(&call, status, &reply.body)),
        }
    }

    pub(crate) fn envelope<T: DeserializeOwned>(
        &self,
        call: &Call<'_>,
        reply: &Reply,
    ) -> Result<Envelope<T>> {
        let path = call.path;
        match reply.status {
            200..=299 if reply.body.is_empty() => Ok(Envelope {
                data: None,
                warnings: Vec::new(),
                auth: None,
            }),
            200..=299 => {
                wire::decode(&reply.body).map_err(|problem| self.bad_response(path, problem))
            }
            // A plain 404 (empty `errors`) means "nothing here"; one with messages ("unsupported
            // path", "namespace not found") is a real refusal worth quoting.
            404 if wire::error_messages(&reply.body).is_empty() => Err(self.not_found(path)),
            status => Err(self.status_error(call, status, &reply.body)),
        }
    }

    pub(crate) fn status_error(&self, call: &Call<'_>, status: u16, body: &[u8]) -> Error {
        let (method, path) = (call.method, call.path);
        let errors = wire::error_messages(body);
        if status == 503
            && errors
                .iter()
                .any(|e| e.to_ascii_lowercase().contains("sealed"))
        {
            return Error::VaultSealed {
                address: self.address().to_owned(),
                method: method.name().to_owned(),
                path: path.to_owned(),
            };
        }
        Error::VaultApi {
            address: self.address().to_owned(),
            method: method.name().to_owned(),
            path: path.to_owned(),
            status,
            errors,
        }
    }

    pub(crate) fn not_found(&self, path: &str) -> Error {
        Error::VaultNotFound {
            address: self.address().to_owned(),
            path: path.to_owned(),
        }
    }

    pub(crate) fn bad_response(&self, path: &str, problem: String) -> Error {
        Error::VaultResponse {
            address: self.address().to_owned(),
            path: path.to_owned(),
            problem,
        }
    }

    /// Sends, retrying transient failures until the retry budget is spent (and at most
    /// `max_retries` times when that is set), with capped exponential backoff and jitter, and
    /// at least the server's `Retry-After`. A node that refuses the connection, breaks it off,
    /// times out, is sealed, or answers 500/502/503 (a standby without a leader during an
    /// election) is left for the next configured node. TLS failures are never retried.
    pub(super) async fn send(&self, call: Call<'_>, token: Option<&SecretString>) -> Result<Reply> {
        let (method, path) = (call.method, call.path);
        let token_header = match token {
            Some(t) => {
                let mut value =
                    HeaderValue::from_str(t.expose()).map_err(|_| Error::VaultConfig {
                        setting: "token",
                        problem: "the token holds characters not allowed in an HTTP header"
                            .to_owned(),
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let started = Instant::now();
        let mut retries = 0u32;
        loop {
            let node = self.node();
            let outcome = self
                .send_once(&self.nodes[node], call, token_header.as_ref())
                .await;
            let Some(step) = self.retry_step(&call, &outcome) else {
                return self.settle(&call, outcome);
            };
            if step.elsewhere && self.nodes.len() > 1 {
                self.move_on_from(node);
            }
            let wait = backoff(retries).max(step.at_least);
            let spent = started.elapsed() + wait > self.retry_budget;
            if spent || self.max_retries.is_some_and(|m| retries >= m) {
                let last = self.settle(&call, outcome);
                if retries == 0 {
                    return last;
                }
                let last = match last {
                    Ok(reply) => self.status_error(&call, reply.status, &reply.body),
                    Err(e) => e,
                };
                return Err(Error::VaultUnavailable {
                    method: method.name().to_owned(),
                    path: path.to_owned(),
                    attempts: retries + 1,
                    nodes: self.nodes.len(),
                    elapsed: started.elapsed(),
                    last: Box::new(last),
                });
            }
            tokio::time::sleep(wait).await;
            retries += 1;
        }
    }

    /// Whether `outcome` is worth another attempt, and how.
    fn retry_step(
        &self,
        call: &Call<'_>,
        outcome: &std::result::Result<Reply, SendError>,
    ) -> Option<RetryStep> {
        let others = self.nodes.len() > 1;
        match outcome {
            Ok(reply) if RETRY_STATUS.contains(&reply.status) => {
                let sealed = matches!(
                    self.status_error(call, reply.status, &reply.body),
                    Error::VaultSealed { .. }
                );
                if sealed && !others {
                    return None;
                }
                Some(RetryStep {
                    // Rate limiting (429) is this client's doing: the same node, later.
                    elsewhere: reply.status != 429,
                    at_least: reply.retry_after.unwrap_or_default().min(MAX_RETRY_AFTER),
                })
            }
            Ok(_) => None,
            Err(SendError::Http(e)) => match classify(e) {
                TransportProblem::Connect | TransportProblem::Broken => Some(RetryStep {
                    elsewhere: true,
                    at_least: StdDuration::ZERO,
                }),
                // A node that hangs: another may answer. Alone, it would only hang again.
                TransportProblem::Timeout if others => Some(RetryStep {
                    elsewhere: true,
                    at_least: StdDuration::ZERO,
                }),
                _ => None,
            },
            Err(SendError::Protocol(_)) => None,
        }
    }

    /// The outcome of the last attempt as the caller gets it.
    fn settle(
        &self,
        call: &Call<'_>,
        outcome: std::result::Result<Reply, SendError>,
    ) -> Result<Reply> {
        outcome.map_err(|e| match e {
            SendError::Http(source) => Error::VaultTransport {
                address: self.address().to_owned(),
                method: call.method.name().to_owned(),
                path: call.path.to_owned(),
                problem: classify(&source),
                source,
            },
            SendError::Protocol(problem) => self.bad_response(call.path, problem),
        })
    }

    async fn send_once(
        &self,
        node: &str,
        call: Call<'_>,
        token: Option<&HeaderValue>,
    ) -> std::result::Result<Reply, SendError> {
        let Call {
            method, path, body, ..
        } = call;
        let mut url = reqwest::Url::parse(&format!("{node}/v1/{path}"))
            .map_err(|e| SendError::Protocol(format!("cannot form the URL: {e}")))?;
        for _ in 0..=MAX_REDIRECTS {
            let mut req = self.http.request(method.to_reqwest(), url.clone());
            if let Some(t) = token {
                req = req.header("X-Vault-Token", t.clone());
            }
            if let Some(ns) = &self.namespace {
                req = req.header("X-Vault-Namespace", ns.clone());
            }
            let reads = matches!(method, Method::Get | Method::List);
            if reads && let Some(index) = self.last_index() {
                req = req
                    .header("X-Vault-Index", index)
                    .header("X-Vault-Inconsistent", "forward-active-node");
            }
            if let Some(b) = body {
                req = req
                    .header(CONTENT_TYPE, "application/json")
                    .body(b.to_vec());
            }
            let mut resp = req.send().await.map_err(SendError::Http)?;
            let status = resp.status().as_u16();
            if !reads
                && let Some(index) = resp.headers().get("x-vault-index")
                && let Ok(mut last) = self.index.lock()
            {
                *last = Some(index.clone());
            }
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(StdDuration::from_secs);
            if matches!(status, 307 | 308) {
                url = redirect_target(&url, resp.headers().get(LOCATION), &self.trusted)?;
                continue;
            }
            // Sized from what the server declares, up to 1 MiB; growing past that copies into a
            // fresh zeroizing buffer, so that no reallocation leaves key material behind.
            let declared = resp
                .content_length()
                .map_or(8192, |n| usize::try_from(n).unwrap_or(MAX_BODY));
            let mut data = Zeroizing::new(Vec::with_capacity(declared.min(INITIAL_BODY)));
            while let Some(chunk) = resp.chunk().await.map_err(SendError::Http)? {
                if data.len() + chunk.len() > MAX_BODY {
                    return Err(SendError::Protocol(format!(
                        "response larger than {} MiB",
                        MAX_BODY >> 20
                    )));
                }
                if data.len() + chunk.len() > data.capacity() {
                    let mut bigger = Zeroizing::new(Vec::with_capacity(
                        (data.capacity() * 2)
                            .max(data.len() + chunk.len())
                            .min(MAX_BODY),
                    ));
                    bigger.extend_from_slice(&data);
                    data = bigger;
                }
                data.extend_from_slice(&chunk);
            }
            return Ok(Reply {
                status,
                body: data,
                retry_after,
            });
        }
        Err(SendError::Protocol(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }
}

/// How a transient failure is retried.
struct RetryStep {
    /// On the next node (when there is one).
    elsewhere: bool,
    /// Not sooner than this (the server's `Retry-After`).
    at_least: StdDuration,
}

/// Where a 307/308 points, if it may be followed: to the same scheme, host and port, or to a
/// configured cluster node. The request carries the token (or a login's secret_id) and its
/// body: it goes nowhere else, and never from https to http.
fn redirect_target(
    current: &reqwest::Url,
    location: Option<&HeaderValue>,
    trusted: &[Origin],
) -> std::result::Result<reqwest::Url, SendError> {
    let location = location
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| SendError::Protocol("redirect without a Location header".to_owned()))?;
    let target = current
        .join(location)
        .map_err(|e| SendError::Protocol(format!("redirect to an invalid location: {e}")))?;
    if current.scheme() == "https" && target.scheme() != "https" {
        return Err(SendError::Protocol(format!(
            "refusing to follow a redirect from https to {}",
            target.scheme()
        )));
    }
    let to = Origin::of(&target);
    if to != Origin::of(current) && !trusted.contains(&to) {
        return Err(SendError::Protocol(format!(
            "refusing to follow a redirect to {}://{}{}, which is not a configured cluster \
             node (the request carries the token; list the node in `nodes` or \
             PKI_VAULT_NODES)",
            to.scheme,
            to.host,
            to.port.map(|p| format!(":{p}")).unwrap_or_default()
        )));
    }
    Ok(target)
}

/// Serialises a request body into a buffer wiped on drop.
pub(crate) fn json_body<T: serde::Serialize + ?Sized>(value: &T) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(512));
    serde_json::to_writer(&mut *buf, value).map_err(|e| Error::InvalidArgument {
        what: "request body",
        value: e.to_string(),
        expected: "JSON-serialisable data",
    })?;
    Ok(buf)
}

/// Classifies a transport error by walking its causes: a rustls error anywhere means TLS.
fn classify(e: &reqwest::Error) -> TransportProblem {
    if e.is_timeout() {
        return TransportProblem::Timeout;
    }
    match find_cause(e) {
        Some(problem) => problem,
        None if e.is_connect() => TransportProblem::Connect,
        None => TransportProblem::Broken,
    }
}

/// Looks through the causes for a rustls error or a socket timeout. io::Error hides what it
/// wraps from `source()`, and hyper-rustls wraps tokio-rustls's io::Error in another one, so
/// wrapped io errors are unwrapped by hand.
fn find_cause(err: &(dyn std::error::Error + 'static)) -> Option<TransportProblem> {
    let mut cause = Some(err);
    while let Some(c) = cause {
        if c.downcast_ref::<rustls::Error>().is_some() {
            return Some(TransportProblem::Tls);
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            if let Some(inner) = io.get_ref()
                && let Some(found) = find_cause(inner)
            {
                return Some(found);
            }
            if io.kind() == std::io::ErrorKind::TimedOut {
                return Some(TransportProblem::Timeout);
            }
        }
        cause = c.source();
    }
    None
}

/// The delay before retry `attempt` (0-based): 250 ms doubled per attempt, capped at 4 s, then
/// "equal jitter" (a uniform draw in the upper half) so that many clients do not retry in step.
pub(crate) fn backoff(attempt: u32) -> StdDuration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1u32 << attempt.min(10))
        .min(BACKOFF_CAP);
    let half = ceiling / 2;
    let mut byte = [0u8; 2];
    let draw = match ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut byte) {
        Ok(()) => u32::from(u16::from_be_bytes(byte)),
        Err(_) => u32::from(u16::MAX) / 2,
    };
    half + half.mul_f64(f64::from(draw) / f64::from(u16::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            normalise_address("https://vault.example:8200/").unwrap(),
            "https://vault.example:8200"
        );
        assert_eq!(
            normalise_address("http://127.0.0.1:8200").unwrap(),
            "http://127.0.0.1:8200"
        );
        for bad in [
            "vault:8200",
            "ftp://x",
            "https://",
            "https://u@x",
            "https://x/?a=1",
        ] {
            assert!(normalise_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        for attempt in 0..12 {
            let d = backoff(attempt);
            let ceiling = BACKOFF_BASE
                .saturating_mul(1 << attempt.min(10))
                .min(BACKOFF_CAP);
            assert!(d >= ceiling / 2 && d <= ceiling, "{attempt}: {d:?}");
        }
    }

    #[test]
    fn redirects_stay_on_the_server_or_go_to_a_configured_node_never_downgrading() {
        let here = reqwest::Url::parse("https://a:8200/v1/pki/sign/web").unwrap();
        let b = Origin::of(&reqwest::Url::parse("https://B:8200").unwrap());
        let to = |l: &str, trusted: &[Origin]| {
            redirect_target(&here, Some(&HeaderValue::from_str(l).unwrap()), trusted)
        };
        assert_eq!(
            to("https://b:8200/v1/pki/sign/web", std::slice::from_ref(&b))
                .ok()
                .unwrap()
                .as_str(),
            "https://b:8200/v1/pki/sign/web"
        );
        assert!(to("/v1/pki/sign/web?x=1", &[]).is_ok(), "same server");
        assert!(
            to("https://b:8200/v1/pki/sign/web", &[]).is_err(),
            "unknown host"
        );
        assert!(
            to("https://a:8201/v1/pki/sign/web", &[]).is_err(),
            "other port"
        );
        assert!(
            to("http://b:8200/v1/pki/sign/web", &[b]).is_err(),
            "downgrade"
        );
        assert!(redirect_target(&here, None, &[]).is_err());
    }
}
