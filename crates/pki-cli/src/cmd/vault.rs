//! `pki vault bootstrap`: prepare a fresh Vault / OpenBao server (mount, CA, URLs, role),
//! idempotently; `pki vault rotate-intermediate`: a new default issuer in the mount.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use pki::authority::offline::{CaKeySource, OfflineCa};
use pki::authority::vault::VaultAuthority;
use pki::authority::vault::bootstrap::{self, BootstrapOptions, OfflineRoot, RoleOptions};
use pki::error::KeyProblem;
use pki::{clock, duration};

use super::backend::vault_settings;
use super::parse;
use crate::UsageError;
use crate::output::{self, Format};

/// Vault subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum VaultCommand {
    /// Enable and tune the PKI mount, create its CA, set its URLs and a role. Safe to run
    /// again: what is already in place is left alone, and a second run says nothing changed.
    #[command(after_help = BOOTSTRAP_EXAMPLES)]
    Bootstrap(BootstrapArgs),
    /// Roll the mount's intermediate over: a new one, signed by the same root, becomes the
    /// default issuer (the old one stays, so its leaves keep verifying); each host's next
    /// `pki rotate` replaces what the old one signed over its `issuer_spread`.
    #[command(after_help = ROTATE_EXAMPLES)]
    RotateIntermediate(CaArgs),
}

#[derive(Debug, Args)]
pub(crate) struct BootstrapArgs {
    #[command(flatten)]
    pub ca: CaArgs,
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
}

/// The issuing mount, its root and the intermediate to make in it.
#[derive(Debug, Args)]
pub(crate) struct CaArgs {
    /// PKI mount path.
    #[arg(
        long,
        env = "PKI_VAULT_MOUNT",
        default_value = "pki",
        value_name = "MOUNT"
    )]
    pub mount: String,
    /// Lifetime of the intermediate created in the issuing mount (default 5y; never beyond
    /// its root's).
    #[arg(long, value_name = "DURATION")]
    pub ca_ttl: Option<String>,
    /// Common name of the intermediate created in the issuing mount.
    #[arg(long, value_name = "NAME")]
    pub common_name: Option<String>,
    /// The mount that holds the root when Vault keeps it (not with --root-ca-dir).
    #[arg(
        long,
        default_value = bootstrap::DEFAULT_ROOT_MOUNT,
        value_name = "MOUNT",
        conflicts_with = "root_ca_dir"
    )]
    pub root_mount: String,
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
  # A root in pki_root, an intermediate in pki signed by it, a role on pki for one zone
  pki vault bootstrap --role services --allowed-domains example.internal

  # Keep the root offline: Vault holds an intermediate signed by the offline CA's root
  pki vault bootstrap --role services --allowed-domains example.internal \\
      --root-ca-dir /etc/pki/ca --passphrase-file /root/ca.pass";

const ROTATE_EXAMPLES: &str = "EXAMPLES:
  # A new intermediate in pki, signed by the root in pki_root, made the default issuer
  pki vault rotate-intermediate
  # The root kept offline
  pki vault rotate-intermediate --root-ca-dir /etc/pki/ca --passphrase-file /root/ca.pass";

pub(crate) async fn run(command: VaultCommand, format: Format) -> Result<u8> {
    match command {
        VaultCommand::Bootstrap(a) => bootstrap_cmd(a, format).await,
        VaultCommand::RotateIntermediate(a) => rotate_cmd(a, format).await,
    }
}

fn offline_root(a: &CaArgs) -> Result<Option<OfflineRoot>> {
    let Some(dir) = &a.root_ca_dir else {
        return Ok(None);
    };
    let ca = OfflineCa::open(dir)?;
    let file = a.passphrase_file.as_deref();
    let root = match ca.unlock_root(a.root_key.as_deref(), &crate::passphrase::source(file)) {
        Err(pki::Error::Key {
            problem: KeyProblem::PassphraseRequired,
            ..
        }) => {
            let given = CaKeySource::Given(crate::passphrase::for_unlock(file)?);
            ca.unlock_root(a.root_key.as_deref(), &given)
        }
        other => other,
    };
    Ok(Some(root.context("cannot unlock the root key")?))
}

/// The role the flags describe, if any.
fn role_options(a: &BootstrapArgs) -> Result<Option<RoleOptions>> {
    let Some(name) = &a.role else {
        return Ok(None);
    };
    if a.allowed_domains.is_empty() {
        return Err(UsageError(
            "--role needs --allowed-domains DOMAIN (the zone it may issue for)".to_owned(),
        )
        .into());
    }
    let mut role = RoleOptions::new(name, a.allowed_domains.clone());
    role.profile = parse(&a.profile)?;
    role.max_ttl = duration::parse(&a.max_ttl)?;
    role.allow_ip_sans = !a.no_ip_sans;
    role.allow_wildcards = a.allow_wildcards;
    Ok(Some(role))
}

/// The options the CA flags describe; `suffix` follows the default intermediate name.
fn ca_options(a: &CaArgs, suffix: Option<&str>) -> Result<BootstrapOptions> {
    let mut options = BootstrapOptions::new(&a.mount);
    options.root_mount = a.root_mount.clone();
    options.offline_root = offline_root(a)?;
    options.ca_ttl = match &a.ca_ttl {
        Some(t) => duration::parse(t)?,
        None => bootstrap::DEFAULT_INTERMEDIATE_TTL,
    };
    options.ca_common_name = match (&a.common_name, suffix) {
        (Some(name), _) => name.clone(),
        (None, Some(s)) => format!(
            "{} {s}",
            bootstrap::default_ca_name(&a.mount, options.offline_root.as_ref())
        ),
        (None, None) => bootstrap::default_ca_name(&a.mount, options.offline_root.as_ref()),
    };
    options.ca_key = parse(&a.key)?;
    Ok(options)
}

async fn rotate_cmd(a: CaArgs, format: Format) -> Result<u8> {
    let now = clock::now();
    let stamp = pki::authority::offline::naming::minute_stamp(now);
    let options = ca_options(&a, Some(&stamp))?;
    let settings = vault_settings(a.vault_config.as_deref())?;
    let vault = VaultAuthority::connect(&settings).await?;
    let report = bootstrap::rotate_intermediate(vault.client(), &options, now).await?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if format.is_json() {
        output::print_json(&serde_json::json!({
            "address": vault.client().address(),
            "steps": report.steps,
            "warnings": report.warnings,
        }))?;
        return Ok(0);
    }
    for s in &report.steps {
        println!("  {:<6} {}", s.what, s.detail);
    }
    println!(
        "Rotated the intermediate of {} on {}: each host's next `pki rotate` replaces the \
         certificates the old one signed, over its issuer_spread",
        options.mount,
        vault.client().address()
    );
    Ok(0)
}

async fn bootstrap_cmd(a: BootstrapArgs, format: Format) -> Result<u8> {
    // The flags first, then the offline root (which may prompt for its passphrase).
    let role = role_options(&a)?;
    let max_lease_ttl = duration::parse(&a.mount_max_ttl)?;
    let mut options = ca_options(&a.ca, None)?;
    options.role = role;
    options.max_lease_ttl = max_lease_ttl;
    let settings = vault_settings(a.ca.vault_config.as_deref())?;
    let vault = VaultAuthority::connect(&settings).await?;
    let report = bootstrap::bootstrap(vault.client(), &options, clock::now()).await?;
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    if format.is_json() {
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
