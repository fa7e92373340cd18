//! Reports after a run: the Prometheus textfile (written atomically), an ntfy notification on
//! failures and soon-to-expire certificates, and an Uptime Kuma push so that a timer that stops
//! running is noticed.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use pki::fsio::{self, FileMode};
use pki::{Certificate, SecretString};
use time::{Duration, OffsetDateTime};

use crate::config::{KumaConfig, NtfyConfig, ReportConfig};
use crate::error::{Error, Result};
use crate::rotate::{CertOutcome, RunSummary};
use crate::state::RunState;

const HTTP_TIMEOUT: StdDuration = StdDuration::from_secs(10);
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Escapes a Prometheus label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders the textfile collector content.
pub fn textfile(summary: &RunSummary, state: &RunState) -> String {
    let mut out = String::new();
    let mut family = |name: &str, help: &str, rows: &mut dyn Iterator<Item = (String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let cert_labels = |c: &CertOutcome| {
        c.current.as_ref().map(|cur| {
            format!(
                "name=\"{}\",subject_CN=\"{}\",serial=\"{}\"",
                label(&c.name),
                label(cur.info().common_name.as_deref().unwrap_or("")),
                cur.info().serial
            )
        })
    };
    let with_cert = |f: fn(&Certificate, OffsetDateTime) -> String| {
        summary
            .certificates
            .iter()
            .filter_map(move |c| {
                let labels = cert_labels(c)?;
                c.current
                    .as_ref()
                    .map(|cur| (labels, f(cur, summary.finished)))
            })
            .collect::<Vec<_>>()
    };
    family(
        "x509_cert_not_after",
        "NotAfter of the certificate a managed name currently has, Unix seconds.",
        &mut with_cert(|c, _| c.info().not_after.unix_timestamp().to_string()).into_iter(),
    );
    family(
        "x509_cert_not_before",
        "NotBefore of the certificate a managed name currently has, Unix seconds.",
        &mut with_cert(|c, _| c.info().not_before.unix_timestamp().to_string()).into_iter(),
    );
    family(
        "x509_cert_expired",
        "1 when the current certificate has expired.",
        &mut with_cert(|c, now| u8::from(c.info().not_after <= now).to_string()).into_iter(),
    );
    family(
        "pki_rotation_success",
        "1 when the last run left the certificate current and served by every target, else 0.",
        &mut summary.certificates.iter().map(|c| {
            (
                format!("name=\"{}\"", label(&c.name)),
                u8::from(c.ok()).to_string(),
            )
        }),
    );
    family(
        "pki_rotation_last_success_timestamp_seconds",
        "Unix time of the last run that ended with the certificate current and served.",
        &mut summary.certificates.iter().filter_map(|c| {
            state
                .certificates
                .get(&c.name)
                .and_then(|s| s.last_success)
                .map(|t| (format!("name=\"{}\"", label(&c.name)), t.to_string()))
        }),
    );
    family(
        "pki_rotation_targets_failed",
        "Targets of the certificate whose deployment failed in the last run.",
        &mut summary.certificates.iter().map(|c| {
            (
                format!("name=\"{}\"", label(&c.name)),
                c.targets
                    .iter()
                    .filter(|t| t.error.is_some())
                    .count()
                    .to_string(),
            )
        }),
    );
    let _ = writeln!(
        out,
        "# HELP pki_rotation_run_success 1 when the last run handled every certificate, 0 when it \
         stopped early (backend unreachable, CA key locked)."
    );
    let _ = writeln!(out, "# TYPE pki_rotation_run_success gauge");
    let _ = writeln!(
        out,
        "pki_rotation_run_success {}",
        u8::from(summary.error.is_none())
    );
    let _ = writeln!(
        out,
        "# HELP pki_rotation_last_run_timestamp_seconds Unix time the last run ended."
    );
    let _ = writeln!(out, "# TYPE pki_rotation_last_run_timestamp_seconds gauge");
    let _ = writeln!(
        out,
        "pki_rotation_last_run_timestamp_seconds {}",
        summary.finished.unix_timestamp()
    );
    let _ = writeln!(
        out,
        "# HELP pki_rotation_last_run_duration_seconds How long the last run took."
    );
    let _ = writeln!(out, "# TYPE pki_rotation_last_run_duration_seconds gauge");
    let _ = writeln!(
        out,
        "pki_rotation_last_run_duration_seconds {:.3}",
        summary.elapsed.as_secs_f64()
    );
    out
}

/// Writes the textfile atomically (node_exporter must never read half a file), world-readable
/// so that the exporter's user can read it.
pub fn write_textfile(path: &Path, summary: &RunSummary, state: &RunState) -> Result<()> {
    if let Some(dir) = path.parent() {
        fsio::create_dir(dir, 0o755)?;
    }
    fsio::write_atomic(path, textfile(summary, state).as_bytes(), FileMode::PUBLIC)?;
    Ok(())
}

/// Certificates expiring within `window` after the run.
pub fn expiring(summary: &RunSummary, window: Duration) -> Vec<(&str, OffsetDateTime)> {
    summary
        .certificates
        .iter()
        .filter_map(|c| {
            let not_after = c.current.as_ref()?.info().not_after;
            (not_after - summary.finished <= window).then_some((c.name.as_str(), not_after))
        })
        .collect()
}

/// An HTTPS client on rustls with ring: the system roots, or only `ca_cert` when given.
fn http_client(ca_cert: Option<&Path>) -> Result<reqwest::Client> {
    let mut roots = rustls::RootCertStore::empty();
    let bundle = ca_cert.unwrap_or(Path::new(SYSTEM_ROOTS));
    if bundle.exists() {
        let text = fsio::read_limited(bundle, 16 << 20)?;
        for c in Certificate::all_from_pem(&text, &bundle.display().to_string())? {
            // A bundle may hold a certificate rustls cannot use as an anchor; skip it.
            let _ = roots.add(rustls::pki_types::CertificateDer::from(c.der().to_vec()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| report_err("TLS configuration", e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(HTTP_TIMEOUT)
        .build()
        .map_err(|e| report_err("HTTP client", e.to_string()))
}

fn report_err(destination: &str, reason: String) -> Error {
    Error::Report {
        destination: destination.to_owned(),
        reason,
    }
}

/// Scheme, host and port of a URL, for messages: the path is left out too, since it carries
/// secrets (the Uptime Kuma push token, the ntfy topic that anyone knowing can read).
fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}/…",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "<invalid URL>".to_owned(),
    }
}

/// The notification text: failures first, then certificates close to expiry.
pub fn ntfy_message(
    summary: &RunSummary,
    host: &str,
    window: Duration,
) -> Option<(String, String)> {
    let failures: Vec<&CertOutcome> = summary.certificates.iter().filter(|c| !c.ok()).collect();
    let expiring = expiring(summary, window);
    if failures.is_empty() && expiring.is_empty() && summary.error.is_none() {
        return None;
    }
    let mut body = String::new();
    if let Some(e) = &summary.error {
        // One line for the run, not one per certificate with the same reason.
        let _ = writeln!(body, "RUN FAILED: {e}");
    } else {
        for f in &failures {
            let _ = writeln!(body, "FAILED {}: {}", f.name, f.failure_text());
        }
    }
    for (name, when) in &expiring {
        let _ = writeln!(body, "EXPIRES {name}: {}", pki::error::Rfc3339(*when));
    }
    let title = if summary.error.is_some() {
        format!("pki on {host}: the rotation run failed")
    } else if failures.is_empty() {
        format!(
            "pki on {host}: {} certificate(s) expiring soon",
            expiring.len()
        )
    } else {
        format!(
            "pki on {host}: {} certificate(s) failed to rotate",
            failures.len()
        )
    };
    // ntfy turns bodies over 4096 bytes into attachments; keep it a message.
    if body.len() > 4000 {
        let cut = (0..=4000)
            .rev()
            .find(|i| body.is_char_boundary(*i))
            .unwrap_or(0);
        body.truncate(cut);
        body.push_str("\n…");
    }
    Some((title, body))
}

/// Publishes to ntfy when there is something to say.
pub async fn ntfy(
    cfg: &NtfyConfig,
    summary: &RunSummary,
    host: &str,
    window: Duration,
) -> Result<bool> {
    let Some((title, body)) = ntfy_message(summary, host, window) else {
        return Ok(false);
    };
    let dest = redact(&cfg.url);
    let client = http_client(cfg.ca_cert.as_deref())?;
    let mut req = client
        .post(&cfg.url)
        .header("Title", title)
        .header("Priority", &cfg.priority)
        .body(body);
    if !cfg.tags.is_empty() {
        req = req.header("Tags", cfg.tags.join(","));
    }
    if let Some(file) = &cfg.token_file {
        let token: SecretString = fsio::read_secret_file(file)?;
        req = req.bearer_auth(token.expose());
    }
    let resp = req
        .send()
        .await
        .map_err(|e| report_err(&dest, without_url(e)))?;
    if !resp.status().is_success() {
        return Err(report_err(&dest, format!("HTTP {}", resp.status())));
    }
    Ok(true)
}

/// Pushes the run's outcome to Uptime Kuma: up, or down with the reason.
pub async fn uptime_kuma(cfg: &KumaConfig, summary: &RunSummary) -> Result<()> {
    let url: SecretString = match (&cfg.push_url, &cfg.push_url_file) {
        (Some(u), _) => SecretString::new(u.clone()),
        (None, Some(f)) => fsio::read_secret_file(f)?,
        (None, None) => return Ok(()),
    };
    let dest = redact(url.expose());
    let failures = summary.certificates.iter().filter(|c| !c.ok()).count();
    let (status, msg) = if let Some(e) = &summary.error {
        ("down", format!("run failed: {e}"))
    } else if failures == 0 {
        (
            "up",
            format!("{} certificate(s) current", summary.certificates.len()),
        )
    } else {
        let first = summary
            .certificates
            .iter()
            .find(|c| !c.ok())
            .map(|c| format!("{}: {}", c.name, c.failure_text()))
            .unwrap_or_default();
        ("down", format!("{failures} failed; {first}"))
    };
    let msg: String = msg.chars().take(500).collect();
    let ping = format!("{:.0}", summary.elapsed.as_secs_f64() * 1000.0);
    let mut target = reqwest::Url::parse(url.expose())
        .map_err(|_| report_err("Uptime Kuma", "the push URL is not a URL".to_owned()))?;
    target
        .query_pairs_mut()
        .clear()
        .append_pair("status", status)
        .append_pair("msg", &msg)
        .append_pair("ping", &ping);
    let client = http_client(cfg.ca_cert.as_deref())?;
    let resp = client
        .get(target)
        .send()
        .await
        .map_err(|e| report_err(&dest, without_url(e)))?;
    if !resp.status().is_success() {
        return Err(report_err(&dest, format!("HTTP {}", resp.status())));
    }
    Ok(())
}

/// A reqwest error's text without the URL (which may carry a push token).
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    if let Some(src) = std::error::Error::source(&e) {
        let _ = write!(text, ": {src}");
    }
    text
}

/// Delivers every configured report; failures are returned, not fatal.
pub async fn deliver(
    cfg: &ReportConfig,
    summary: &RunSummary,
    state: &RunState,
    host: &str,
) -> Vec<Error> {
    let mut errors = Vec::new();
    if let Some(path) = &cfg.textfile
        && let Err(e) = write_textfile(path, summary, state)
    {
        errors.push(e);
    }
    let window = cfg
        .expiry_warning
        .unwrap_or(crate::config::DEFAULT_EXPIRY_WARNING);
    if let Some(n) = &cfg.ntfy
        && let Err(e) = ntfy(n, summary, host, window).await
    {
        errors.push(e);
    }
    if let Some(k) = &cfg.uptime_kuma
        && let Err(e) = uptime_kuma(k, summary).await
    {
        errors.push(e);
    }
    errors
}
