//! Reports after a run: the Prometheus textfile (written atomically), an ntfy notification on
//! failures and soon-to-expire certificates, and an Uptime Kuma push so that a timer that stops
//! running is noticed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use pki::fsio::{self, Dir, FileMode, Owners};
use pki::{Certificate, SecretString};
use time::{Duration, OffsetDateTime};

use crate::error::{Error, Result};
use crate::rotate::{CertOutcome, RunSummary};
use crate::state::RunState;

const HTTP_TIMEOUT: StdDuration = StdDuration::from_secs(10);
/// Longest message pushed to Uptime Kuma.
const KUMA_MESSAGE: usize = 500;
/// ntfy turns bodies over 4096 bytes into attachments: a message stays below.
const NTFY_BODY: usize = 4000;

/// Certificates expiring within this window are reported unless configured otherwise.
pub const DEFAULT_EXPIRY_WARNING: Duration = Duration::days(14);

/// Report settings.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ReportConfig {
    /// Prometheus textfile collector file.
    pub textfile: Option<PathBuf>,
    /// Certificates expiring within this window are reported (ntfy, log).
    pub expiry_warning: Option<Duration>,
    /// ntfy notifications.
    pub ntfy: Option<NtfyConfig>,
    /// Uptime Kuma push monitor.
    pub uptime_kuma: Option<KumaConfig>,
}

/// ntfy settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NtfyConfig {
    /// Topic URL, e.g. `https://ntfy.example.internal/pki`.
    pub url: String,
    /// File holding an access token (sent as a Bearer token).
    pub token_file: Option<PathBuf>,
    /// Priority: 1–5 or min, low, default, high, max/urgent.
    pub priority: String,
    /// Tags.
    pub tags: Vec<String>,
    /// A CA bundle for the server's certificate (otherwise the system roots).
    pub ca_cert: Option<PathBuf>,
}

impl NtfyConfig {
    /// Messages to the topic at `url`, priority `high`, no token, no tags.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            token_file: None,
            priority: "high".to_owned(),
            tags: Vec::new(),
            ca_cert: None,
        }
    }
}

/// Uptime Kuma settings.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct KumaConfig {
    /// Push URL (it embeds the monitor's token: keep the config file private). `Debug` shows
    /// it redacted.
    pub push_url: Option<String>,
    /// File holding the push URL, so the token stays out of the config.
    pub push_url_file: Option<PathBuf>,
    /// A CA bundle for the server's certificate.
    pub ca_cert: Option<PathBuf>,
}

impl std::fmt::Debug for KumaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KumaConfig")
            .field("push_url", &self.push_url.as_ref().map(|_| "[redacted]"))
            .field("push_url_file", &self.push_url_file)
            .field("ca_cert", &self.ca_cert)
            .finish()
    }
}

/// Escapes a Prometheus label value.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The text of a textfile collector file, one gauge family after the other.
#[derive(Default)]
struct Families(String);

impl Families {
    /// A gauge family: its help, then one line per `(labels, value)` row (no labels: a
    /// single unlabelled sample).
    fn gauge(&mut self, name: &str, help: &str, rows: impl IntoIterator<Item = (String, String)>) {
        let out = &mut self.0;
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in rows {
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {value}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {value}");
            }
        }
    }
}

/// The labels of a certificate's current certificate.
fn cert_labels(c: &CertOutcome, cur: &Certificate) -> String {
    format!(
        "name=\"{}\",subject_CN=\"{}\",serial=\"{}\"",
        label(&c.name),
        label(cur.info().common_name.as_deref().unwrap_or("")),
        cur.info().serial
    )
}

/// The families about each certificate's current certificate.
fn certificate_families(out: &mut Families, summary: &RunSummary) {
    let rows = |f: fn(&Certificate, OffsetDateTime) -> String| {
        summary
            .certificates
            .iter()
            .filter_map(move |c| {
                let cur = c.current.as_ref()?;
                Some((cert_labels(c, cur), f(cur, summary.finished)))
            })
            .collect::<Vec<_>>()
    };
    out.gauge(
        "x509_cert_not_after",
        "NotAfter of the certificate a managed name currently has, Unix seconds.",
        rows(|c, _| c.info().not_after.unix_timestamp().to_string()),
    );
    out.gauge(
        "x509_cert_not_before",
        "NotBefore of the certificate a managed name currently has, Unix seconds.",
        rows(|c, _| c.info().not_before.unix_timestamp().to_string()),
    );
    out.gauge(
        "x509_cert_expired",
        "1 when the current certificate has expired.",
        rows(|c, now| u8::from(c.info().not_after <= now).to_string()),
    );
}

/// The families about each certificate's rotation.
fn rotation_families(out: &mut Families, summary: &RunSummary, state: &RunState) {
    let name = |c: &CertOutcome| format!("name=\"{}\"", label(&c.name));
    out.gauge(
        "pki_rotation_success",
        "1 when the last run left the certificate current and served by every target, else 0.",
        summary
            .certificates
            .iter()
            .map(|c| (name(c), u8::from(c.ok()).to_string())),
    );
    out.gauge(
        "pki_rotation_last_success_timestamp_seconds",
        "Unix time of the last run that ended with the certificate current and served.",
        summary.certificates.iter().filter_map(|c| {
            state
                .certificates
                .get(&c.name)
                .and_then(|s| s.last_success)
                .map(|t| (name(c), t.to_string()))
        }),
    );
    out.gauge(
        "pki_rotation_targets_failed",
        "Targets of the certificate whose deployment failed in the last run.",
        summary.certificates.iter().map(|c| {
            let failed = c.targets.iter().filter(|t| t.error.is_some()).count();
            (name(c), failed.to_string())
        }),
    );
}

/// The trust files that failed in the run.
fn trust_failures(summary: &RunSummary) -> Vec<&crate::rotate::TrustOutcome> {
    summary
        .trust
        .iter()
        .filter(|t| t.action == crate::rotate::TrustAction::Failed)
        .collect()
}

/// Renders the textfile collector content.
pub fn textfile(summary: &RunSummary, state: &RunState) -> String {
    let mut out = Families::default();
    certificate_families(&mut out, summary);
    rotation_families(&mut out, summary, state);
    out.gauge(
        "pki_trust_file_success",
        "1 when the last run left the trust file holding its backend's trust bundle, else 0.",
        summary.trust.iter().map(|t| {
            (
                format!("path=\"{}\"", label(&t.path.display().to_string())),
                u8::from(t.action != crate::rotate::TrustAction::Failed).to_string(),
            )
        }),
    );
    let run = |value: String| [(String::new(), value)];
    out.gauge(
        "pki_rotation_run_success",
        "1 when the last run handled every certificate, 0 when it stopped early (backend \
         unreachable, CA key locked).",
        run(u8::from(summary.error.is_none()).to_string()),
    );
    out.gauge(
        "pki_rotation_last_run_timestamp_seconds",
        "Unix time the last run ended.",
        run(summary.finished.unix_timestamp().to_string()),
    );
    out.gauge(
        "pki_rotation_last_run_duration_seconds",
        "How long the last run took.",
        run(format!("{:.3}", summary.elapsed.as_secs_f64())),
    );
    out.0
}

/// Writes the textfile atomically (node_exporter must never read half a file), world-readable
/// so that the exporter's user can read it.
pub fn write_textfile(path: &Path, summary: &RunSummary, state: &RunState) -> Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(report_err(
            &path.display().to_string(),
            "not a file path".to_owned(),
        ));
    };
    // The exporter's directory is walked to like every directory the hook writes into.
    let dir = Dir::create(dir, 0o755, Owners::running())?;
    let mut staged = dir.stage(
        &name.to_string_lossy(),
        textfile(summary, state).as_bytes(),
        FileMode::PUBLIC,
    )?;
    staged.sync()?;
    staged.commit()?;
    dir.sync()?;
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
    let tls = pki::tls::client_config(pki::tls::roots(ca_cert, None)?)?;
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
    let trust = trust_failures(summary);
    let expiring = expiring(summary, window);
    if failures.is_empty() && trust.is_empty() && expiring.is_empty() && summary.error.is_none() {
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
    // The trust phase ran before the run stopped, if it stopped: its failures are its own.
    for t in &trust {
        let why = t.error.as_deref().unwrap_or("failed");
        let _ = writeln!(body, "FAILED trust {}: {why}", t.path.display());
    }
    for (name, when) in &expiring {
        let _ = writeln!(body, "EXPIRES {name}: {}", pki::error::Rfc3339(*when));
    }
    let title = if summary.error.is_some() {
        format!("pki on {host}: the rotation run failed")
    } else if failures.is_empty() && !trust.is_empty() {
        format!("pki on {host}: {} trust file(s) failed", trust.len())
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
    if body.len() > NTFY_BODY {
        let cut = (0..=NTFY_BODY)
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
    let trust = trust_failures(summary);
    let (status, msg) = if let Some(e) = &summary.error {
        let also = if trust.is_empty() {
            String::new()
        } else {
            format!("; {} trust file(s) failed too", trust.len())
        };
        ("down", format!("run failed: {e}{also}"))
    } else if failures == 0 && !trust.is_empty() {
        let why = trust[0].error.as_deref().unwrap_or("failed");
        (
            "down",
            format!("trust file {} failed: {why}", trust[0].path.display()),
        )
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
    let msg: String = msg.chars().take(KUMA_MESSAGE).collect();
    let ping = format!("{:.0}", summary.elapsed.as_secs_f64() * 1000.0);
    let mut target = reqwest::Url::parse(url.expose())
        .map_err(|_| report_err("Uptime Kuma", "the push URL is not a URL".to_owned()))?;
    if !pki::tls::may_carry_secrets(&target) {
        return Err(report_err(
            &dest,
            "refusing to send: the push URL carries the monitor's token and is not https:// \
             (plain http only to this machine)"
                .to_owned(),
        ));
    }
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
    let window = cfg.expiry_warning.unwrap_or(DEFAULT_EXPIRY_WARNING);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rotate::{TrustAction, TrustOutcome};

    /// A run whose certificates are fine and whose one trust file failed.
    fn trust_failed() -> RunSummary {
        let now = pki::clock::now();
        RunSummary {
            started: now,
            finished: now,
            elapsed: std::time::Duration::from_millis(5),
            dry_run: false,
            certificates: Vec::new(),
            report_errors: Vec::new(),
            error: None,
            trust: vec![TrustOutcome {
                path: "/usr/local/share/ca-certificates/internal.crt".into(),
                backend: "default".into(),
                action: TrustAction::Failed,
                cas: 2,
                error: Some("update-ca-certificates exited with status 1".into()),
            }],
        }
    }

    #[test]
    fn a_failed_trust_file_reaches_every_report() {
        let summary = trust_failed();
        assert!(summary.failed());
        let (title, body) = ntfy_message(&summary, "web-1", Duration::days(14)).unwrap();
        assert_eq!(title, "pki on web-1: 1 trust file(s) failed");
        assert!(
            body.contains(
                "FAILED trust /usr/local/share/ca-certificates/internal.crt: update-ca-certificates"
            ),
            "{body}"
        );
        let text = textfile(&summary, &RunState::default());
        assert!(
            text.contains(
                "pki_trust_file_success{path=\"/usr/local/share/ca-certificates/internal.crt\"} 0"
            ),
            "{text}"
        );
    }
}
