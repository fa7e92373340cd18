//! `pki vault bootstrap`: prepare a fresh Vault / OpenBao server (mount, CA, URLs, role),
//! idempotently.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use pki::authority::offline::{OfflineCa, files};
use pki::authority::vault::VaultAuthority;
use pki::authority::vault::bootstrap::{self, BootstrapOptions, OfflineRoot, RoleOptions};
use pki::{PrivateKey, clock, duration};

use super::backend::vault_settings;
use super::{parse, read_pem};
use crate::UsageError;
use crate::output;

/// Vault subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum VaultCommand {
    /// Enable and tune the PKI mount, create its CA, set its URLs and a role. Safe to run
    /// again: what is already in place is left alone, and a second run says nothing changed.
    #[command(after_help = BOOTSTRAP_EXAMPLES)]
    Bootstrap(BootstrapArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BootstrapArgs {
    /// PKI mount path.
    #[arg(
        long,
        env = "PKI_VAULT_MOUNT",
        default_value = "pki",
        value_name = "MOUNT"
    )]
    pub mount: String,
    /// Create or update this role.
    #[arg(long, value_name = "ROLE")]
    pub role: Option<String>,
    /// Domains the role may issue for (the domain and its subdomains); repeatable or
    /// comma-separated.
    #[arg(long, value_name = "DOMAIN", value_delimiter = ',', requires = "role")]
    pub allowed_domains: Vec<String>,
    /// Profile of the role's certificates: server, client or server-client.
    #[arg(long, default_value = "server")]
    pub profile: String,
    /// Longest lifetime the role grants.
    #[arg(long, default_value = "90d", value_name = "DURATION")]
    pub max_ttl: String,
    /// Let the role issue wildcard names.
    #[arg(long)]
    pub allow_wildcards: bool,
    /// Refuse IP addresses as subject alternative names.
    #[arg(long)]
    pub no_ip_sans: bool,
    /// The mount's max_lease_ttl, which caps every certificate it signs (CAs included).
    #[arg(long, default_value = "10y", value_name = "DURATION")]
    pub mount_max_ttl: String,
    /// Lifetime of the CA created in Vault (default: 10y for a root, 5y for an intermediate).
    #[arg(long, value_name = "DURATION")]
    pub ca_ttl: Option<String>,
    /// Common name of the CA created in Vault.
    #[arg(long, value_name = "NAME")]
    pub common_name: Option<String>,
    /// Key algorithm of the CA key generated inside Vault.
    #[arg(long, default_value = "ecdsa-p256", value_name = "ALG")]
    pub key: String,
    /// Keep the root offline: Vault gets an intermediate whose CSR the root of this offline CA
    /// directory signs (`pki ca init`).
    #[arg(long, value_name = "DIR")]
    pub root_ca_dir: Option<PathBuf>,
    /// The root key, when it is not root.key.pem in --root-ca-dir.
    #[arg(long, value_name = "FILE", requires = "root_ca_dir")]
    pub root_key: Option<PathBuf>,
    /// File holding the root key's passphrase (mode 0600); else PKI_CA_PASSPHRASE or a prompt.
    #[arg(long, value_name = "FILE", requires = "root_ca_dir")]
    pub passphrase_file: Option<PathBuf>,
    /// TOML file of Vault settings; the environment fills what it leaves out.
    #[arg(long, env = "PKI_VAULT_CONFIG", value_name = "FILE")]
    pub vault_config: Option<PathBuf>,
}

const BOOTSTRAP_EXAMPLES: &str = "EXAMPLES:
  # A root inside Vault and a role for one internal zone
  pki vault bootstrap --role services --allowed-domains example.internal

  # Keep the root offline: Vault holds an intermediate signed by the offline CA's root
  pki vault bootstrap --role services --allowed-domains example.internal \\
      --root-ca-dir /etc/pki/ca --passphrase-file /root/ca.pass";

pub(crate) async fn run(command: VaultCommand, json: bool) -> Result<u8> {
    match command {
        VaultCommand::Bootstrap(a) => bootstrap_cmd(a, json).await,
    }
}

fn offline_root(a: &BootstrapArgs) -> Result<Option<OfflineRoot>> {
    let Some(dir) = &a.root_ca_dir else {
        return Ok(None);
    };
    let ca = OfflineCa::open(dir)?;
    let key_path = a
        .root_key
        .clone()
        .unwrap_or_else(|| dir.join(files::ROOT_KEY));
    pki::fsio::check_private_mode(&key_path)?;
    let text = zeroize::Zeroizing::new(read_pem(&key_path)?);
    let passphrase = if PrivateKey::pem_is_encrypted(&text) {
        Some(crate::passphrase::for_unlock(a.passphrase_file.as_deref())?)
    } else {
        None
    };
    let origin = key_path.display().to_string();
    let key = PrivateKey::from_pem_with_passphrase(&text, &origin, passphrase.as_ref())
        .with_context(|| format!("cannot unlock the root key {origin}"))?;
    Ok(Some(OfflineRoot {
        certificate: ca.root().clone(),
        key,
    }))
}

async fn bootstrap_cmd(a: BootstrapArgs, json: bool) -> Result<u8> {
    let role = match &a.role {
        Some(name) => {
            if a.allowed_domains.is_empty() {
                return Err(UsageError(
                    "--role needs --allowed-domains DOMAIN (the zone it may issue for)".to_owned(),
                )
                .into());
            }
            Some(RoleOptions {
                name: name.clone(),
                allowed_domains: a.allowed_domains.clone(),
                profile: parse(&a.profile)?,
                max_ttl: duration::parse(&a.max_ttl)?,
                allow_ip_sans: !a.no_ip_sans,
                allow_wildcards: a.allow_wildcards,
            })
        }
        None => None,
    };
    let mount_max = duration::parse(&a.mount_max_ttl)?;
    let root = offline_root(&a)?;
    let ca_ttl = match &a.ca_ttl {
        Some(t) => duration::parse(t)?,
        None if root.is_some() => duration::parse("5y")?,
        None => mount_max,
    };
    let default_name = match &root {
        Some(r) => {
            let org = r
                .certificate
                .info()
                .common_name
                .as_deref()
                .and_then(|cn| cn.strip_suffix(" Root CA"))
                .unwrap_or("pki")
                .to_owned();
            format!("{org} Vault Intermediate CA")
        }
        None => format!("{} Root CA", a.mount),
    };
    let options = BootstrapOptions {
        mount: a.mount.clone(),
        max_lease_ttl: mount_max,
        ca_common_name: a.common_name.clone().unwrap_or(default_name),
        ca_ttl,
        ca_key: parse(&a.key)?,
        offline_root: root,
        role,
    };
    let settings = vault_settings(a.vault_config.as_deref())?;
    let vault = VaultAuthority::connect(&settings).await?;
    let report = bootstrap::bootstrap(vault.client(), &options, clock::now()).await?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if json {
        output::print_json(&serde_json::json!({
            "address": vault.client().address(),
            "changed": report.changed(),
            "steps": report.steps,
            "warnings": report.warnings,
        }))?;
        return Ok(0);
    }
    for s in &report.steps {
        println!(
            "  {:<6} {:<9} {}",
            s.what,
            if s.changed { "changed" } else { "unchanged" },
            s.detail
        );
    }
    if report.changed() {
        println!(
            "Bootstrapped {} on {}",
            options.mount,
            vault.client().address()
        );
    } else {
        println!(
            "Nothing changed: {} on {} was already bootstrapped",
            options.mount,
            vault.client().address()
        );
    }
    Ok(0)
}
