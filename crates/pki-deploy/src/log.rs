//! Log lines on stderr: human-readable by default, one JSON object per line for journald or
//! ELK. Never a secret: callers log names, serials, paths and error messages only.

use std::io::Write;

use serde_json::{Map, Value};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LogFormat {
    /// `2026-11-25T03:14:15Z INFO  web: issued …`
    #[default]
    Human,
    /// `{"time":…,"level":"info","event":"issued","certificate":"web",…}`
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
            LogFormat::Json => {
                let mut obj = Map::new();
                obj.insert("time".into(), Value::String(now));
                obj.insert("level".into(), Value::String(level.name().into()));
                obj.insert("event".into(), Value::String(event.name.into()));
                if let Some(c) = event.certificate {
                    obj.insert("certificate".into(), Value::String(c.into()));
                }
                obj.insert("message".into(), Value::String(event.message.clone()));
                for (k, v) in &event.fields {
                    obj.insert((*k).into(), v.clone());
                }
                Value::Object(obj).to_string()
            }
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
