//! `pki-deploy`: the rotation hook as a library.
//!
//! A run ([`rotate::run`]) takes a lock, opens the backend once, observes what the store holds
//! and plans with [`pki::rotation`] ([`rotate::plan`]), then goes through its phases over one
//! work item per certificate ([`rotate::phases`]): issue what is due through a
//! [`pki::Authority`] and add it to the store ([`store`]), publish it, prepare every target,
//! activate and prove each, roll back what fails, prune. Then it reports ([`report`]):
//! Prometheus textfile, ntfy, Uptime Kuma, log lines ([`log`]).
//!
//! Where things live:
//!
//! | to find | look in |
//! | --- | --- |
//! | the config file's frame, error lines, relative paths; the audit of what it trusts | [`config`] |
//! | a service's keys, defaults, files, load (HAProxy hot swap, PostgreSQL key rule…) | [`service`] and its module per service |
//! | the versioned directory beside a target's files, adoption, pruning | [`service::layout`] |
//! | switch, test, load, probe, roll back one target | [`service::deploy`] |
//! | the handshake that proves a certificate is served | [`probe`] |
//! | test and reload commands | [`exec`] |
//! | the store of issued versions | [`store`] |
//! | how a run's writes become durable (per file, or a `syncfs` per phase) | `rotate::batch` |
//! | bounded reads and absolute deadlines for every peer | `deadline` |
//! | what a run remembers for the next | [`state`] |
//! | what a run did, typed | [`rotate::summary`] |
//!
//! This crate parses no command line; `pki rotate` does that.
//!
//! ```no_run
//! # async fn example() -> pki_deploy::Result<()> {
//! use pki_deploy::{config, log, rotate};
//!
//! let config = config::load(std::path::Path::new("/etc/pki/rotate.toml"))?;
//! let options = rotate::Options::new(log::Logger::new(log::LogFormat::Json, log::Level::Info));
//! let summary = rotate::run(&config, &options).await?;
//! if summary.failed() {
//!     // alert
//! }
//! # Ok(())
//! # }
//! ```
//!
//! `examples/rotate_in_code.rs` builds a config in code and runs it.

// Public types may grow: each says whether it is closed (rustls's rule).
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]
// Functions stay short enough to read at once.
#![warn(clippy::too_many_lines)]

pub mod config;
mod deadline;
pub mod error;
pub mod exec;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod log;
pub mod probe;
pub mod report;
pub mod rotate;
pub mod service;
pub mod state;
pub mod store;

pub use error::{Error, Result};
