//! `pki-deploy`: the rotation hook as a library.
//!
//! A run ([`rotate::run`]) takes a lock, observes what the store holds, plans with
//! [`pki::rotation`], issues what is due through a [`pki::Authority`], stores each new version
//! ([`store`]) and deploys it to every target ([`target`]): render the files the service
//! expects, switch them in atomically, reload or hot-swap, prove with a TLS handshake
//! ([`probe`]) that the new certificate is served, and roll back when it is not. Then it reports
//! ([`report`]): Prometheus textfile, ntfy, Uptime Kuma, log lines ([`log`]).
//!
//! This crate parses no command line; `pki rotate` does that.
//!
//! ```no_run
//! # async fn example() -> pki_deploy::Result<()> {
//! use pki_deploy::{config, log, rotate};
//!
//! let config = config::load(std::path::Path::new("/etc/pki/rotate.toml"))?;
//! let options = rotate::Options {
//!     dry_run: false,
//!     force: false,
//!     only: Vec::new(),
//!     log: log::Logger::new(log::LogFormat::Json, log::Level::Info),
//! };
//! let summary = rotate::run(&config, &options).await?;
//! if summary.failed() {
//!     // alert
//! }
//! # Ok(())
//! # }
//! ```

pub mod config;
pub mod error;
pub mod exec;
pub mod log;
pub mod probe;
pub mod report;
pub mod rotate;
pub mod state;
pub mod store;
pub mod target;

pub use error::{Error, Result};
