//! The HTTP client instant-acme talks through: reqwest on rustls and ring, TLS verification
//! always on against the configured CA file or the system roots, every request bounded in
//! time and every answer in size.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

use crate::error::{Error, Result};

/// Largest answer read from an ACME server (a certificate chain is a few KiB).
const MAX_ANSWER: usize = 1 << 20;
/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An [`HttpClient`] over reqwest.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
}

impl Client {
    /// A client trusting `ca_cert` alone when given, else the system roots.
    pub(crate) fn new(ca_cert: Option<&std::path::Path>) -> Result<Self> {
        let roots = crate::tls::roots(ca_cert, None)?;
        let config = crate::tls::client_config(roots)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(config)
            .https_only(true)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // RFC 8555 needs no redirect; following one would send signed requests elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pki/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::AcmeConfig {
                setting: "ca_cert",
                problem: format!("cannot build the HTTP client: {e}"),
            })?;
        Ok(Self { http })
    }
}

/// Longest wait a server's `Retry-After` may ask for; a larger number of seconds is cut to
/// it (instant-acme adds it to the clock, which an absurd value would overflow).
const MAX_RETRY_AFTER: u64 = 86_400;

fn bound_retry_after(headers: &mut http::HeaderMap) {
    let too_long = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|secs| secs > MAX_RETRY_AFTER);
    if too_long {
        headers.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from(MAX_RETRY_AFTER),
        );
    }
}

type Boxed = Box<dyn std::error::Error + Send + Sync + 'static>;

fn other(e: impl Into<Boxed>) -> instant_acme::Error {
    instant_acme::Error::Other(e.into())
}

impl HttpClient for Client {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<BytesResponse, instant_acme::Error>> + Send>>
    {
        let http = self.http.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map_err(other)?.to_bytes();
            let url = reqwest::Url::parse(&parts.uri.to_string()).map_err(other)?;
            let mut answer = http
                .request(parts.method, url)
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(other)?;
            let mut response = http::Response::builder().status(answer.status());
            if let Some(headers) = response.headers_mut() {
                *headers = std::mem::take(answer.headers_mut());
                bound_retry_after(headers);
            }
            let mut read = Vec::new();
            while let Some(chunk) = answer.chunk().await.map_err(other)? {
                if read.len() + chunk.len() > MAX_ANSWER {
                    return Err(other(format!(
                        "the answer is larger than {MAX_ANSWER} bytes"
                    )));
                }
                read.extend_from_slice(&chunk);
            }
            let response = response.body(Full::new(Bytes::from(read))).map_err(other)?;
            Ok(BytesResponse::from(response))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_absurd_retry_after_is_cut_to_a_day() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("18446744073709551615"),
        );
        bound_retry_after(&mut h);
        assert_eq!(h[http::header::RETRY_AFTER], "86400");
        h.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("30"),
        );
        bound_retry_after(&mut h);
        assert_eq!(h[http::header::RETRY_AFTER], "30");
    }
}
