//! Log lines on stderr: human-readable by default, or one JSON object per line in Elastic
//! Common Schema (ECS) names, so that Filebeat ships them into ELK unchanged. Never a secret:
//! callers log names, serials, paths and error messages only.
//!
//! A JSON line holds `@timestamp`, `log.level`, `message`, `event.action` (the event's name),
//! `event.outcome` (`failure` for an error, `success` for what completed, else `unknown`),
//! `event.dataset` (`pki.rotate`), `service.name` (`pki`), the certificate's `x509` facts
//! when the event has them (`serial_number`, `not_after`, `subject.common_name`), and the
//! rest under `pki` (`pki.certificate`, `pki.version`, `pki.reason`, …).

use std::io::Write;

use serde_json::{Map, Value};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogFormat {
    /// `2026-11-25T03:14:15Z INFO  web: issued …`
    #[default]
    Human,
    /// `{"@timestamp":…,"log":{"level":"info"},"event":{"action":"issued",…},"x509":…}`
    Json,
}

/// Severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Level {
    /// Normal progress.
    Info,
    /// Something to look at, the run goes on.
    Warn,
    /// A failure.
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// One log line: what happened (a short kebab-case name), to which certificate if any, a
/// message for people, and fields for machines.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Event<'a> {
    /// The event's name, e.g. `issued`.
    pub name: &'a str,
    /// The certificate it is about; `None` for the run as a whole.
    pub certificate: Option<&'a str>,
    /// The message.
    pub message: String,
    /// More fields for the JSON format.
    pub fields: Vec<(&'a str, Value)>,
}

impl<'a> Event<'a> {
    /// An event of the run as a whole.
    pub fn run(name: &'a str, message: impl Into<String>) -> Self {
        Self {
            name,
            certificate: None,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// An event about a certificate.
    pub fn of(name: &'a str, certificate: &'a str, message: impl Into<String>) -> Self {
        Self {
            certificate: Some(certificate),
            ..Self::run(name, message)
        }
    }

    /// The event with one more field.
    #[must_use]
    pub fn with(mut self, key: &'a str, value: Value) -> Self {
        self.fields.push((key, value));
        self
    }
}

/// Events that report something completed.
const DONE: &[&str] = &["issued", "deployed", "ca-created", "run-finished"];

/// An event as an ECS document.
fn ecs(now: &str, level: Level, event: &Event<'_>) -> Value {
    let outcome = match level {
        Level::Error => "failure",
        _ if DONE.contains(&event.name) => "success",
        _ => "unknown",
    };
    let mut x509 = Map::new();
    let mut pki = Map::new();
    if let Some(c) = event.certificate {
        pki.insert("certificate".into(), Value::String(c.into()));
    }
    for (k, v) in &event.fields {
        match *k {
            "serial" => {
                x509.insert("serial_number".into(), v.clone());
            }
            "not_after" => {
                x509.insert("not_after".into(), v.clone());
            }
            "common_name" => {
                x509.insert(
                    "subject".into(),
                    serde_json::json!({ "common_name": v.clone() }),
                );
            }
            other => {
                pki.insert(other.into(), v.clone());
            }
        }
    }
    let mut doc = serde_json::json!({
        "@timestamp": now,
        "log": { "level": level.name() },
        "message": event.message,
        "event": { "action": event.name, "outcome": outcome, "dataset": "pki.rotate" },
        "service": { "name": "pki" },
    });
    if !x509.is_empty() {
        doc["x509"] = Value::Object(x509);
    }
    if !pki.is_empty() {
        doc["pki"] = Value::Object(pki);
    }
    doc
}

/// Writes log lines.
#[derive(Debug, Clone, Copy)]
pub struct Logger {
    format: LogFormat,
    min: Level,
}

impl Logger {
    /// A logger writing `format`, dropping lines below `min`.
    pub fn new(format: LogFormat, min: Level) -> Self {
        Self { format, min }
    }

    /// Logs an event at `level`.
    pub fn log(&self, level: Level, event: &Event<'_>) {
        if level < self.min {
            return;
        }
        let now = pki::error::Rfc3339(pki::clock::now()).to_string();
        let line = match self.format {
            LogFormat::Human => {
                let who = event
                    .certificate
                    .map(|c| format!("{c}: "))
                    .unwrap_or_default();
                format!(
                    "{now} {:<5} {who}{}",
                    level.name().to_uppercase(),
                    event.message
                )
            }
            LogFormat::Json => ecs(&now, level, event).to_string(),
        };
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    /// An info line.
    pub fn info(&self, event: Event<'_>) {
        self.log(Level::Info, &event);
    }

    /// A warning.
    pub fn warn(&self, event: Event<'_>) {
        self.log(Level::Warn, &event);
    }

    /// An error.
    pub fn error(&self, event: Event<'_>) {
        self.log(Level::Error, &event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_use_ecs_names() {
        let event = Event::of("issued", "web", "issued serial 01")
            .with("serial", Value::String("01ab".into()))
            .with("not_after", Value::String("2027-01-01T00:00:00Z".into()))
            .with("common_name", Value::String("web.example.internal".into()))
            .with("version", Value::String("v1".into()));
        let doc = ecs("2026-12-01T00:00:00Z", Level::Info, &event);
        assert_eq!(doc["@timestamp"], "2026-12-01T00:00:00Z");
        assert_eq!(doc["log"]["level"], "info");
        assert_eq!(doc["message"], "issued serial 01");
        assert_eq!(doc["event"]["action"], "issued");
        assert_eq!(doc["event"]["outcome"], "success");
        assert_eq!(doc["x509"]["serial_number"], "01ab");
        assert_eq!(doc["x509"]["not_after"], "2027-01-01T00:00:00Z");
        assert_eq!(
            doc["x509"]["subject"]["common_name"],
            "web.example.internal"
        );
        assert_eq!(doc["pki"]["certificate"], "web");
        assert_eq!(doc["pki"]["version"], "v1");
        let failed = ecs("t", Level::Error, &Event::run("issue-failed", "no"));
        assert_eq!(failed["event"]["outcome"], "failure");
        assert!(failed.get("x509").is_none());
    }
}
