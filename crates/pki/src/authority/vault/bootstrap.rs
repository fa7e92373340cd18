//! Preparing a fresh server: enable and tune the PKI mount, create its CA (a root in Vault, or
//! an intermediate whose CSR our offline root signs), point `config/urls` at the mount, and
//! write a role. Every step first reads what is there and writes only what differs, so a second
//! run changes nothing and says so.

use serde::Serialize;
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use super::client::VaultClient;
use super::settings::check_path_name;
use crate::authority::offline::naming;
use crate::authority::offline::subordinate::Intermediate;
use crate::error::{Error, Result};
use crate::key::KeyAlgorithm;
use crate::profile::Profile;
use crate::request::Csr;

/// The offline root that signs Vault's intermediate.
pub use crate::authority::offline::subordinate::Root as OfflineRoot;

/// Lifetime of an intermediate that an offline root signs for Vault, when none is given.
pub const DEFAULT_INTERMEDIATE_TTL: Duration = Duration::days(5 * 365);

/// The common name of the CA that bootstrap creates in `mount`: "ORG Vault Intermediate CA"
/// under an offline root of organisation ORG, else "MOUNT Root CA".
pub fn default_ca_name(mount: &str, offline_root: Option<&OfflineRoot>) -> String {
    match offline_root {
        Some(root) => {
            let org = root
                .certificate()
                .info()
                .common_name
                .as_deref()
                .and_then(naming::organisation_of)
                .unwrap_or("pki");
            naming::vault_intermediate(org)
        }
        None => naming::root(mount),
    }
}

/// The PKI role to create or update.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RoleOptions {
    /// Role name.
    pub name: String,
    /// Base domains names may be in (the domain itself and its subdomains).
    pub allowed_domains: Vec<String>,
    /// Server, client or both: sets the role's `server_flag` / `client_flag`.
    pub profile: Profile,
    /// Longest certificate lifetime the role grants.
    pub max_ttl: Duration,
    /// Whether IP addresses may be subject alternative names.
    pub allow_ip_sans: bool,
    /// Whether wildcard names (`*.example.internal`) may be issued.
    pub allow_wildcards: bool,
}

/// Longest lifetime a role grants unless told otherwise.
pub const DEFAULT_ROLE_MAX_TTL: Duration = Duration::days(90);
/// The mount's `max_lease_ttl` unless told otherwise: 10 years.
pub const DEFAULT_MOUNT_MAX_TTL: Duration = Duration::days(3650);

impl RoleOptions {
    /// A role `name` for `allowed_domains` and their subdomains: server certificates of at
    /// most [`DEFAULT_ROLE_MAX_TTL`], IP SANs allowed, no wildcards.
    pub fn new(name: &str, allowed_domains: Vec<String>) -> Self {
        Self {
            name: name.to_owned(),
            allowed_domains,
            profile: Profile::Server,
            max_ttl: DEFAULT_ROLE_MAX_TTL,
            allow_ip_sans: true,
            allow_wildcards: false,
        }
    }
}

impl BootstrapOptions {
    /// A bootstrap of `mount`: a root inside Vault named by [`default_ca_name`], lifetime and
    /// mount maximum [`DEFAULT_MOUNT_MAX_TTL`], an ECDSA P-256 key, no role.
    pub fn new(mount: &str) -> Self {
        Self {
            mount: mount.to_owned(),
            max_lease_ttl: DEFAULT_MOUNT_MAX_TTL,
            ca_common_name: default_ca_name(mount, None),
            ca_ttl: DEFAULT_MOUNT_MAX_TTL,
            ca_key: KeyAlgorithm::default(),
            offline_root: None,
            role: None,
        }
    }
}

/// What [`bootstrap`] sets up.
#[derive(Debug)]
#[non_exhaustive]
pub struct BootstrapOptions {
    /// The PKI mount path.
    pub mount: String,
    /// The mount's `max_lease_ttl`, which caps every certificate it signs, CAs included.
    pub max_lease_ttl: Duration,
    /// Common name of the CA created in Vault.
    pub ca_common_name: String,
    /// Lifetime of that CA (capped by the mount's max and by the offline root's expiry).
    pub ca_ttl: Duration,
    /// Key algorithm of the CA key generated inside Vault.
    pub ca_key: KeyAlgorithm,
    /// When given, Vault gets only an intermediate, signed by this root; otherwise Vault
    /// generates a root of its own.
    pub offline_root: Option<OfflineRoot>,
    /// The role to write, if any.
    pub role: Option<RoleOptions>,
}

/// One step of the bootstrap and whether it changed anything.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Step {
    /// What the step is about.
    pub what: String,
    /// Whether the server was changed.
    pub changed: bool,
    /// What was found or done.
    pub detail: String,
}

/// Every step of a bootstrap, with the warnings Vault gave.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct BootstrapReport {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Vault's warnings.
    pub warnings: Vec<String>,
}

impl BootstrapReport {
    /// Whether any step changed the server.
    pub fn changed(&self) -> bool {
        self.steps.iter().any(|s| s.changed)
    }

    /// A step that changed the server.
    fn altered(&mut self, what: &str, detail: impl Into<String>) {
        self.steps.push(Step {
            what: what.to_owned(),
            changed: true,
            detail: detail.into(),
        });
    }

    /// A step that found what it wanted in place.
    fn found(&mut self, what: &str, detail: impl Into<String>) {
        self.steps.push(Step {
            what: what.to_owned(),
            changed: false,
            detail: detail.into(),
        });
    }
}

fn secs(d: Duration) -> i64 {
    d.whole_seconds()
}

/// Runs the bootstrap; see the module documentation.
pub async fn bootstrap(
    client: &VaultClient,
    options: &BootstrapOptions,
    now: OffsetDateTime,
) -> Result<BootstrapReport> {
    check_path_name("mount", &options.mount)?;
    if let Some(role) = &options.role {
        check_path_name("role", &role.name)?;
        if role.allowed_domains.is_empty() {
            return Err(Error::InvalidRequest(
                "a role needs at least one allowed domain (--allowed-domains)",
            ));
        }
        for d in &role.allowed_domains {
            crate::name::dns_name(d)?;
        }
    }
    let mut report = BootstrapReport {
        steps: Vec::new(),
        warnings: Vec::new(),
    };
    mount(client, options, &mut report).await?;
    // URLs before the CA, so that the CA is created with its AIA in place.
    urls(client, options, &mut report).await?;
    ca(client, options, now, &mut report).await?;
    if let Some(role) = &options.role {
        write_role(client, &options.mount, role, &mut report).await?;
    }
    Ok(report)
}

async fn mount(
    client: &VaultClient,
    o: &BootstrapOptions,
    report: &mut BootstrapReport,
) -> Result<()> {
    let mounts = client.read("sys/mounts").await?.and_then(|d| d.data);
    let key = format!("{}/", o.mount);
    let existing = mounts.as_ref().and_then(|m| m.get(&key));
    match existing.and_then(|m| m.get("type")).and_then(Value::as_str) {
        Some("pki") => report.found("mount", format!("{key} is a PKI mount already")),
        Some(other) => {
            return Err(Error::VaultConfig {
                setting: "mount",
                problem: format!("{key} is already mounted as {other:?}, not pki"),
            });
        }
        None => {
            client
                .write(
                    &format!("sys/mounts/{}", o.mount),
                    &json!({
                        "type": "pki",
                        "description": "certificates issued by pki",
                        "config": { "max_lease_ttl": format!("{}s", secs(o.max_lease_ttl)) },
                    }),
                )
                .await?;
            report.altered("mount", format!("enabled the PKI engine at {key}"));
        }
    }
    let tune_path = format!("sys/mounts/{}/tune", o.mount);
    let current = client
        .read(&tune_path)
        .await?
        .and_then(|d| d.data)
        .and_then(|d| d.get("max_lease_ttl").and_then(Value::as_i64))
        .unwrap_or(0);
    if current == secs(o.max_lease_ttl) {
        report.found("tune", format!("max_lease_ttl is {current}s already"));
    } else {
        client
            .write(
                &tune_path,
                &json!({ "max_lease_ttl": format!("{}s", secs(o.max_lease_ttl)) }),
            )
            .await?;
        report.altered(
            "tune",
            format!("max_lease_ttl {current}s -> {}s", secs(o.max_lease_ttl)),
        );
    }
    Ok(())
}

async fn ca(
    client: &VaultClient,
    o: &BootstrapOptions,
    now: OffsetDateTime,
    report: &mut BootstrapReport,
) -> Result<()> {
    let issuers = client.list(&format!("{}/issuers", o.mount)).await?;
    if !issuers.is_empty() {
        report.found(
            "ca",
            format!(
                "{} issuer(s) exist already; the CA is left as it is",
                issuers.len()
            ),
        );
        return Ok(());
    }
    let (key_type, key_bits) = o.ca_key.vault_params();
    let ttl = o.ca_ttl.min(o.max_lease_ttl);
    match &o.offline_root {
        None => {
            let out = client
                .write(
                    &format!("{}/root/generate/internal", o.mount),
                    &json!({
                        "common_name": o.ca_common_name,
                        "ttl": format!("{}s", secs(ttl)),
                        "key_type": key_type,
                        "key_bits": key_bits,
                        "issuer_name": "root",
                        "max_path_length": 0,
                    }),
                )
                .await?;
            report.warnings.extend(out.warnings);
            report.altered(
                "ca",
                format!("generated the root {:?} inside Vault", o.ca_common_name),
            );
        }
        Some(root) => {
            let path = format!("{}/intermediate/generate/internal", o.mount);
            let out = client
                .write(
                    &path,
                    &json!({
                        "common_name": o.ca_common_name,
                        "key_type": key_type,
                        "key_bits": key_bits,
                    }),
                )
                .await?;
            report.warnings.extend(out.warnings);
            let csr_pem = out
                .data
                .as_ref()
                .and_then(|d| d.get("csr"))
                .and_then(Value::as_str)
                .ok_or_else(|| client.bad_response(&path, "no csr in the answer".to_owned()))?;
            let csr = Csr::from_pem(csr_pem.as_bytes(), &path)?;
            let spec = Intermediate::new(&o.ca_common_name, ttl);
            let cert = root.sign_intermediate(&csr, &spec, now)?;
            let set = format!("{}/intermediate/set-signed", o.mount);
            let bundle = format!("{}{}", cert.pem(), root.certificate().pem());
            let out = client
                .write(&set, &json!({ "certificate": bundle }))
                .await?;
            report.warnings.extend(out.warnings);
            // The issuer that has a key (the intermediate) becomes the default, not the root.
            let mapping = out.data.as_ref().and_then(|d| d.get("mapping"));
            let default = mapping
                .and_then(Value::as_object)
                .and_then(|m| {
                    m.iter()
                        .find(|(_, key)| key.as_str().is_some_and(|k| !k.is_empty()))
                })
                .map(|(issuer, _)| issuer.clone())
                .ok_or_else(|| {
                    client.bad_response(&set, "no imported issuer has a key".to_owned())
                })?;
            client
                .write(
                    &format!("{}/config/issuers", o.mount),
                    &json!({ "default": default }),
                )
                .await?;
            report.altered(
                "ca",
                format!(
                    "generated the intermediate {:?} in Vault, signed by {} (serial {})",
                    o.ca_common_name,
                    root.certificate().info().subject,
                    cert.info().serial
                ),
            );
        }
    }
    Ok(())
}

async fn urls(
    client: &VaultClient,
    o: &BootstrapOptions,
    report: &mut BootstrapReport,
) -> Result<()> {
    let base = format!("{}/v1/{}", client.address(), o.mount);
    let want_issuing = vec![format!("{base}/ca")];
    let want_crl = vec![format!("{base}/crl")];
    let path = format!("{}/config/urls", o.mount);
    let current = client.read(&path).await?.and_then(|d| d.data);
    let list = |field: &str| -> Vec<String> {
        current
            .as_ref()
            .and_then(|d| d.get(field))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    if list("issuing_certificates") == want_issuing && list("crl_distribution_points") == want_crl {
        report.found("urls", "config/urls point at the mount already");
        return Ok(());
    }
    client
        .write(
            &path,
            &json!({
                "issuing_certificates": want_issuing,
                "crl_distribution_points": want_crl,
            }),
        )
        .await?;
    report.altered(
        "urls",
        format!("AIA and CRL distribution point set to {base}"),
    );
    Ok(())
}

/// The role as written; the same values are compared with what the server holds.
fn role_body(role: &RoleOptions) -> Value {
    json!({
        "allowed_domains": role.allowed_domains,
        "allow_subdomains": true,
        "allow_bare_domains": true,
        "allow_glob_domains": false,
        "allow_any_name": false,
        "allow_localhost": false,
        "allow_wildcard_certificates": role.allow_wildcards,
        "allow_ip_sans": role.allow_ip_sans,
        "enforce_hostnames": true,
        "server_flag": role.profile.server(),
        "client_flag": role.profile.client(),
        "key_type": "any",
        "key_bits": 0,
        "key_usage": ["DigitalSignature", "KeyEncipherment"],
        "max_ttl": secs(role.max_ttl),
        "use_csr_common_name": true,
        "use_csr_sans": true,
        "require_cn": true,
        "no_store": false,
        "generate_lease": false,
    })
}

async fn write_role(
    client: &VaultClient,
    mount: &str,
    role: &RoleOptions,
    report: &mut BootstrapReport,
) -> Result<()> {
    let path = format!("{mount}/roles/{}", role.name);
    let want = role_body(role);
    let have = client.read(&path).await?.and_then(|d| d.data);
    let differing: Vec<&str> = match (&have, want.as_object()) {
        (Some(have), Some(want)) => want
            .iter()
            .filter(|(k, v)| have.get(k.as_str()) != Some(*v))
            .map(|(k, _)| k.as_str())
            .collect(),
        _ => vec!["(new role)"],
    };
    if differing.is_empty() {
        report.found(
            "role",
            format!("role {:?} is as configured already", role.name),
        );
        return Ok(());
    }
    let out = client.write(&path, &want).await?;
    report.warnings.extend(out.warnings);
    report.altered(
        "role",
        if have.is_some() {
            format!("updated role {:?} ({})", role.name, differing.join(", "))
        } else {
            format!("created role {:?}", role.name)
        },
    );
    Ok(())
}
