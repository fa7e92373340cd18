//! Preparing a fresh server the way HashiCorp recommends: the root in a mount of its own
//! (`pki_root`), an intermediate in the issuing mount signed by it, and the role on the
//! intermediate, so that leaves come with their chain; or, with an offline root, only the
//! intermediate, whose CSR that root signs. Each mount is enabled and tuned, its `config/urls`
//! point at it, and the role is written. Every step first reads what is there and writes only what differs, so a second
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

/// The common name of the CA that bootstrap creates in the issuing `mount`: "ORG Vault
/// Intermediate CA" under an offline root of organisation ORG, else "MOUNT Intermediate CA"
/// (under "MOUNT Root CA" in the root mount).
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
        None => naming::intermediate(mount),
    }
}

/// The mount that holds the root when Vault keeps it: `pki_root`.
pub const DEFAULT_ROOT_MOUNT: &str = "pki_root";

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
    /// A bootstrap of `mount`: a root inside Vault in [`DEFAULT_ROOT_MOUNT`] (lifetime and mount
    /// maximum [`DEFAULT_MOUNT_MAX_TTL`]), an intermediate in `mount` named by
    /// [`default_ca_name`] for [`DEFAULT_INTERMEDIATE_TTL`], ECDSA P-256 keys, no role.
    pub fn new(mount: &str) -> Self {
        Self {
            mount: mount.to_owned(),
            root_mount: DEFAULT_ROOT_MOUNT.to_owned(),
            max_lease_ttl: DEFAULT_MOUNT_MAX_TTL,
            ca_common_name: default_ca_name(mount, None),
            ca_ttl: DEFAULT_INTERMEDIATE_TTL,
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
    /// The PKI mount leaves are issued from.
    pub mount: String,
    /// The mount of the root, when Vault keeps it (no `offline_root`).
    pub root_mount: String,
    /// The mount's `max_lease_ttl`, which caps every certificate it signs, CAs included.
    pub max_lease_ttl: Duration,
    /// Common name of the CA created in the issuing mount (the intermediate).
    pub ca_common_name: String,
    /// Lifetime of that CA (capped by the mount's max and by its root's expiry).
    pub ca_ttl: Duration,
    /// Key algorithm of the CA key generated inside Vault.
    pub ca_key: KeyAlgorithm,
    /// When given, Vault gets only an intermediate, signed by this root; otherwise Vault
    /// generates a root of its own in `root_mount`, which signs the intermediate.
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
    if options.offline_root.is_none() {
        check_path_name("root_mount", &options.root_mount)?;
        if options.root_mount == options.mount {
            return Err(Error::VaultConfig {
                setting: "root_mount",
                problem: "the root needs a mount of its own, not the issuing mount".to_owned(),
            });
        }
    }
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
    mount(client, &options.mount, options.max_lease_ttl, &mut report).await?;
    // URLs before the CA, so that the CA is created with its AIA in place.
    urls(client, &options.mount, &mut report).await?;
    ca(client, options, now, &mut report).await?;
    if let Some(role) = &options.role {
        write_role(client, &options.mount, role, &mut report).await?;
    }
    Ok(report)
}

async fn mount(
    client: &VaultClient,
    name: &str,
    max_lease_ttl: Duration,
    report: &mut BootstrapReport,
) -> Result<()> {
    let mounts = client.read("sys/mounts").await?.and_then(|d| d.data);
    let key = format!("{name}/");
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
                    &format!("sys/mounts/{name}"),
                    &json!({
                        "type": "pki",
                        "description": "certificates issued by pki",
                        "config": { "max_lease_ttl": format!("{}s", secs(max_lease_ttl)) },
                    }),
                )
                .await?;
            report.altered("mount", format!("enabled the PKI engine at {key}"));
        }
    }
    let tune_path = format!("sys/mounts/{name}/tune");
    let current = client
        .read(&tune_path)
        .await?
        .and_then(|d| d.data)
        .and_then(|d| d.get("max_lease_ttl").and_then(Value::as_i64))
        .unwrap_or(0);
    let want = secs(max_lease_ttl);
    if current == want {
        report.found("tune", format!("{key} max_lease_ttl is {current}s already"));
    } else {
        client
            .write(&tune_path, &json!({ "max_lease_ttl": format!("{want}s") }))
            .await?;
        report.altered("tune", format!("{key} max_lease_ttl {current}s -> {want}s"));
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
                "{} issuer(s) exist already in {}/; the CA is left as it is",
                issuers.len(),
                o.mount
            ),
        );
        return Ok(());
    }
    let root_pem = match &o.offline_root {
        Some(root) => root.certificate().pem(),
        None => vault_root(client, o, report).await?,
    };
    let signing = Signing {
        ttl: o.ca_ttl.min(o.max_lease_ttl),
        root_pem,
        now,
    };
    new_intermediate(client, o, &signing, report).await
}

/// Rolls the issuing mount's intermediate over: a new one (its key generated in Vault,
/// signed by the same root as the mount's current issuer: the root mount's, or the offline
/// root) becomes the default issuer. The old issuer stays in the mount, so the leaves it
/// signed keep verifying until the hook has replaced them. Nothing is configured on the root
/// mount. Refused, before anything is generated, on a mount with no issuer yet, with a root
/// other than the current issuer's (a new root must reach every trust bundle first), or when
/// the root expires too soon.
pub async fn rotate_intermediate(
    client: &VaultClient,
    o: &BootstrapOptions,
    now: OffsetDateTime,
) -> Result<BootstrapReport> {
    check_path_name("mount", &o.mount)?;
    let refuse = |setting: &'static str, problem: String| Error::VaultConfig { setting, problem };
    if o.offline_root.is_none() {
        check_path_name("root_mount", &o.root_mount)?;
        if o.root_mount == o.mount {
            return Err(refuse(
                "root_mount",
                "the root needs a mount of its own, not the issuing mount".to_owned(),
            ));
        }
    }
    if issuers_of(client, &o.mount).await?.is_empty() {
        return Err(refuse(
            "mount",
            format!(
                "{}/ has no issuer to roll over: `pki vault bootstrap` makes the first",
                o.mount
            ),
        ));
    }
    let (root, setting) = match &o.offline_root {
        Some(r) => (r.certificate().clone(), "root_ca_dir"),
        None => (root_of_mount(client, &o.root_mount).await?, "root_mount"),
    };
    let current = current_root(client, &o.mount).await?;
    if current.der() != root.der() {
        return Err(refuse(
            setting,
            format!(
                "{} signs the issuers of {}/ now, not {}: roll the root over first (its new \
                 root in every trust bundle, then an intermediate under it)",
                current.info().subject,
                o.mount,
                root.info().subject
            ),
        ));
    }
    // Vault refuses an intermediate that outlives its root; a few minutes of margin for
    // the clocks.
    let left = root.info().not_after - now - Duration::minutes(5);
    if left <= Duration::ZERO {
        return Err(refuse(
            setting,
            format!(
                "the root {} has expired or is about to",
                root.info().subject
            ),
        ));
    }
    let mut report = BootstrapReport {
        steps: Vec::new(),
        warnings: Vec::new(),
    };
    let signing = Signing {
        ttl: o.ca_ttl.min(left),
        root_pem: root.pem(),
        now,
    };
    new_intermediate(client, o, &signing, &mut report).await?;
    Ok(report)
}

/// The root certificate of a root mount (read only: nothing is configured there).
async fn root_of_mount(client: &VaultClient, mount: &str) -> Result<crate::cert::Certificate> {
    let path = format!("{mount}/cert/ca");
    let data = match client.read(&path).await {
        Ok(found) => found.and_then(|d| d.data),
        Err(Error::VaultApi { status: 404, .. }) => None,
        Err(e) => return Err(e),
    };
    let pem = data
        .as_ref()
        .and_then(|d| d.get("certificate"))
        .and_then(Value::as_str)
        .filter(|p| !p.trim().is_empty())
        .ok_or_else(|| Error::VaultConfig {
            setting: "root_mount",
            problem: format!(
                "{mount}/ holds no root to sign a new intermediate (`pki vault bootstrap` makes \
                 one; give --root-ca-dir for an offline root)"
            ),
        })?;
    crate::cert::Certificate::from_pem(pem.as_bytes(), &path)
}

/// The root the mount's default issuer chains to (the last certificate of its chain).
async fn current_root(client: &VaultClient, mount: &str) -> Result<crate::cert::Certificate> {
    let path = format!("{mount}/issuer/default/json");
    let data = client.read(&path).await?.and_then(|d| d.data);
    let chain: Vec<&str> = data
        .as_ref()
        .and_then(|d| d.get("ca_chain"))
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let last = chain
        .last()
        .ok_or_else(|| client.bad_response(&path, "the default issuer has no chain".to_owned()))?;
    crate::cert::Certificate::all_from_pem(last.as_bytes(), &path)?
        .pop()
        .ok_or_else(|| client.bad_response(&path, "an empty chain entry".to_owned()))
}

/// The issuers of `mount`; none when the mount does not exist (Vault has no route for it).
async fn issuers_of(client: &VaultClient, mount: &str) -> Result<Vec<String>> {
    match client.list(&format!("{mount}/issuers")).await {
        Err(Error::VaultApi { status: 404, .. }) => Ok(Vec::new()),
        other => other,
    }
}

/// How a new intermediate is signed: its lifetime (already capped), the root's PEM (sent
/// with it to `set-signed`), and the time.
struct Signing {
    ttl: Duration,
    root_pem: String,
    now: OffsetDateTime,
}

/// Generates an intermediate in the issuing mount, has the root sign it, imports it and makes
/// it the default issuer.
async fn new_intermediate(
    client: &VaultClient,
    o: &BootstrapOptions,
    signing: &Signing,
    report: &mut BootstrapReport,
) -> Result<()> {
    let Signing {
        ttl,
        ref root_pem,
        now,
    } = *signing;
    let csr = intermediate_csr(client, o, report).await?;
    let (cert, signer) = match &o.offline_root {
        Some(root) => {
            let spec = Intermediate::new(&o.ca_common_name, ttl);
            let cert = root.sign_intermediate(&csr, &spec, now)?;
            (
                cert.pem(),
                format!("the offline root {}", root.certificate().info().subject),
            )
        }
        None => {
            let path = format!("{}/root/sign-intermediate", o.root_mount);
            let out = client
                .write(
                    &path,
                    &json!({
                        "csr": csr.pem(),
                        "common_name": o.ca_common_name,
                        "ttl": format!("{}s", secs(ttl)),
                        "max_path_length": 0,
                        "format": "pem",
                    }),
                )
                .await?;
            report.warnings.extend(out.warnings);
            let cert = answered(client, out.data.as_ref(), &path, "certificate")?.to_owned();
            (cert, format!("the root in {}/", o.root_mount))
        }
    };
    install_signed(
        client,
        o,
        &format!("{}\n{root_pem}", cert.trim_end()),
        report,
    )
    .await?;
    let serial = crate::cert::Certificate::from_pem(cert.as_bytes(), "intermediate")
        .map(|c| c.info().serial.to_string())
        .unwrap_or_default();
    report.altered(
        "ca",
        format!(
            "generated the intermediate {:?} in {}/, signed by {signer} (serial {serial})",
            o.ca_common_name, o.mount
        ),
    );
    Ok(())
}

/// The CSR of an intermediate whose key Vault generates in the issuing mount.
async fn intermediate_csr(
    client: &VaultClient,
    o: &BootstrapOptions,
    report: &mut BootstrapReport,
) -> Result<Csr> {
    let (key_type, key_bits) = o.ca_key.vault_params();
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
    let csr_pem = answered(client, out.data.as_ref(), &path, "csr")?;
    Csr::from_pem(csr_pem.as_bytes(), &path)
}

/// The text `field` of an answer's data, or an error saying the answer from `path` lacks it.
fn answered<'a>(
    client: &VaultClient,
    data: Option<&'a Value>,
    path: &str,
    field: &str,
) -> Result<&'a str> {
    data.and_then(|d| d.get(field))
        .and_then(Value::as_str)
        .ok_or_else(|| client.bad_response(path, format!("no {field} in the answer")))
}

/// The root in the root mount, made there first if it has none: its certificate as PEM.
async fn vault_root(
    client: &VaultClient,
    o: &BootstrapOptions,
    report: &mut BootstrapReport,
) -> Result<String> {
    mount(client, &o.root_mount, o.max_lease_ttl, report).await?;
    urls(client, &o.root_mount, report).await?;
    let issuers = client.list(&format!("{}/issuers", o.root_mount)).await?;
    if issuers.is_empty() {
        let (key_type, key_bits) = o.ca_key.vault_params();
        let name = naming::root(&o.mount);
        let out = client
            .write(
                &format!("{}/root/generate/internal", o.root_mount),
                &json!({
                    "common_name": name,
                    "ttl": format!("{}s", secs(o.max_lease_ttl)),
                    "key_type": key_type,
                    "key_bits": key_bits,
                    "issuer_name": "root",
                    // It signs intermediates, which sign leaves.
                    "max_path_length": 1,
                }),
            )
            .await?;
        report.warnings.extend(out.warnings);
        report.altered(
            "root",
            format!("generated the root {name:?} in {}/", o.root_mount),
        );
    } else {
        report.found("root", format!("{} has a root already", o.root_mount));
    }
    let path = format!("{}/cert/ca", o.root_mount);
    let data = client.read(&path).await?.and_then(|d| d.data);
    answered(client, data.as_ref(), &path, "certificate").map(str::to_owned)
}

/// Imports the signed intermediate (with its root) into the issuing mount and makes it the
/// default issuer: the issuer that has a key, not the root.
async fn install_signed(
    client: &VaultClient,
    o: &BootstrapOptions,
    bundle: &str,
    report: &mut BootstrapReport,
) -> Result<()> {
    let set = format!("{}/intermediate/set-signed", o.mount);
    let out = client
        .write(&set, &json!({ "certificate": bundle }))
        .await?;
    report.warnings.extend(out.warnings);
    let mapping = out.data.as_ref().and_then(|d| d.get("mapping"));
    let default = mapping
        .and_then(Value::as_object)
        .and_then(|m| {
            m.iter()
                .find(|(_, key)| key.as_str().is_some_and(|k| !k.is_empty()))
        })
        .map(|(issuer, _)| issuer.clone())
        .ok_or_else(|| client.bad_response(&set, "no imported issuer has a key".to_owned()))?;
    client
        .write(
            &format!("{}/config/issuers", o.mount),
            &json!({ "default": default }),
        )
        .await?;
    Ok(())
}

async fn urls(client: &VaultClient, mount: &str, report: &mut BootstrapReport) -> Result<()> {
    let base = format!("{}/v1/{mount}", client.primary_address());
    let want_issuing = vec![format!("{base}/ca")];
    let want_crl = vec![format!("{base}/crl")];
    let path = format!("{mount}/config/urls");
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
        report.found(
            "urls",
            format!("{mount}/config/urls point at the mount already"),
        );
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
