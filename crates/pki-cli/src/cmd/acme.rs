//! `pki acme thumbprint`: the ACME account of a rotation config's backend, for the HAProxy
//! lines of stateless http-01.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use pki::authority::acme::AcmeAuthority;
use pki_deploy::config::{self, Backend};

use crate::UsageError;
use crate::output::{self, Format};

/// ACME subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum AcmeCommand {
    /// Print the account key's thumbprint (RFC 7638), creating the account on first use;
    /// stateless http-01 answers challenges with it.
    #[command(after_help = THUMBPRINT_EXAMPLES)]
    Thumbprint(ThumbprintArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ThumbprintArgs {
    /// The rotation config.
    #[arg(long, value_name = "FILE", default_value = "/etc/pki/rotate.toml")]
    pub config: PathBuf,
    /// The ACME backend's name (needed when the config has several).
    #[arg(long, value_name = "NAME")]
    pub backend: Option<String>,
}

const THUMBPRINT_EXAMPLES: &str = "\
Examples:
  pki acme thumbprint --config /etc/pki/rotate.toml --backend public
  # then, in haproxy.cfg: setenv ACCOUNT_THUMBPRINT '<the thumbprint>'";

pub(crate) async fn run(c: AcmeCommand, format: Format) -> Result<u8> {
    let AcmeCommand::Thumbprint(a) = c;
    let config = config::load(&a.config).map_err(|e| UsageError(e.to_string()))?;
    let acme: Vec<_> = config
        .backends
        .iter()
        .filter_map(|b| match &b.backend {
            Backend::Acme(s) if a.backend.as_ref().is_none_or(|n| *n == b.name) => {
                Some((b.name.as_str(), s))
            }
            _ => None,
        })
        .collect();
    let (name, settings) = match acme.as_slice() {
        [one] => *one,
        [] => {
            return Err(UsageError(format!(
                "{}: no ACME backend{}",
                a.config.display(),
                a.backend
                    .map_or_else(String::new, |n| format!(" named {n:?}"))
            ))
            .into());
        }
        _ => {
            return Err(
                UsageError("several ACME backends: name one with --backend".to_owned()).into(),
            );
        }
    };
    let authority = AcmeAuthority::connect(settings).await?;
    if format.is_json() {
        output::print_json(&serde_json::json!({
            "backend": name,
            "thumbprint": authority.thumbprint(),
        }))?;
    } else {
        println!("{}", authority.thumbprint());
    }
    Ok(0)
}
