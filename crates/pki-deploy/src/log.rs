//! Log lines on stderr: human-readable by default, one JSON object per line for journald or
//! ELK. Never a secret: callers log names, serials, paths and error messages only.

use std::io::Write;

use serde_json::{Map, Value};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `2026-11-25T03:14:15Z INFO  web: issued …`
    #[default]
    Human,
    /// `{"time":…,"level":"info","event":"issued","certificate":"web",…}`
    Json,
}

/// Severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
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

    /// Logs an event about a certificate (or the run when `certificate` is empty).
    pub fn log(
        &self,
        level: Level,
        event: &str,
        certificate: &str,
        message: &str,
        fields: &[(&str, Value)],
    ) {
        if level < self.min {
            return;
        }
        let now = pki::error::Rfc3339(pki::clock::now()).to_string();
        let line = match self.format {
            LogFormat::Human => {
                let who = if certificate.is_empty() {
                    String::new()
                } else {
                    format!("{certificate}: ")
                };
                format!("{now} {:<5} {who}{message}", level.name().to_uppercase())
            }
            LogFormat::Json => {
                let mut obj = Map::new();
                obj.insert("time".into(), Value::String(now));
                obj.insert("level".into(), Value::String(level.name().into()));
                obj.insert("event".into(), Value::String(event.into()));
                if !certificate.is_empty() {
                    obj.insert("certificate".into(), Value::String(certificate.into()));
                }
                obj.insert("message".into(), Value::String(message.into()));
                for (k, v) in fields {
                    obj.insert((*k).into(), v.clone());
                }
                Value::Object(obj).to_string()
            }
        };
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    /// An info line.
    pub fn info(&self, event: &str, certificate: &str, message: &str, fields: &[(&str, Value)]) {
        self.log(Level::Info, event, certificate, message, fields);
    }

    /// A warning.
    pub fn warn(&self, event: &str, certificate: &str, message: &str, fields: &[(&str, Value)]) {
        self.log(Level::Warn, event, certificate, message, fields);
    }

    /// An error.
    pub fn error(&self, event: &str, certificate: &str, message: &str, fields: &[(&str, Value)]) {
        self.log(Level::Error, event, certificate, message, fields);
    }
}
