//! The offline CA: a root and an intermediate in a directory, keys encrypted at rest, every
//! issued certificate recorded in an SQLite inventory.
//!
//! Directory layout (mode 0700):
//!
//! | file | content |
//! | --- | --- |
//! | `root.pem` | root certificate |
//! | `root.key.pem` | root key, encrypted PKCS#8 (absent when kept offline with `root_key_out`) |
//! | `intermediate.pem` | intermediate certificate, the issuer of every leaf |
//! | `intermediate.key.pem` | intermediate key, encrypted PKCS#8 |
//! | `inventory.db` | SQLite inventory (WAL mode) |
//! | `retired/` | intermediates and roots that rollovers replaced ([`rollover`], [`root_rollover`]) |
//! | `next/` | a root and intermediate staged by [`OfflineCa::stage_root`], until activated |

pub mod backup;
mod inventory;
mod keysource;
pub mod naming;
pub mod rollover;
pub mod root_rollover;
pub mod signer;
pub mod subordinate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, GeneralSubtree, IsCa, Issuer,
    KeyIdMethod, KeyUsagePurpose, NameConstraints, RevokedCertParams, SerialNumber,
};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::cert::{Certificate, Serial};
use crate::constraints::Constraints;
use crate::error::{Error, Result};
use crate::fsio::{self, FileMode, MAX_PEM_INPUT, StagedFile};
use crate::key::{KeyAlgorithm, PrivateKey};
use crate::name;
use crate::pemfile::{self, label};
use crate::request::{CertificateRequest, SubjectKey, Wildcards};
use crate::secret::SecretString;

pub use inventory::{Inventory, Issued, ListFilter, Record, RevokeOutcome, RevokedEntry, Status};
pub use keysource::CaKeySource;
pub use signer::{BACKDATE, CaSigner, CrlTerms, Signing};

use super::{Batch, IssuedCertificate};

/// File names inside a CA directory.
pub mod files {
    /// Root certificate.
    pub const ROOT_CERT: &str = "root.pem";
    /// Root key.
    pub const ROOT_KEY: &str = "root.key.pem";
    /// Intermediate certificate.
    pub const INTERMEDIATE_CERT: &str = "intermediate.pem";
    /// Intermediate key.
    pub const INTERMEDIATE_KEY: &str = "intermediate.key.pem";
    /// Inventory database.
    pub const INVENTORY: &str = "inventory.db";
}

/// How CA keys are protected at rest.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyProtection {
    /// Encrypted PKCS#8 with this passphrase.
    Passphrase(SecretString),
    /// Clear PKCS#8 (demos and benchmarks only).
    None,
}

/// Organisation name of a CA when none is given.
pub const DEFAULT_ORGANISATION: &str = "Example Internal";

/// How long [`OfflineCa::issue_many`] signs into one transaction before committing it: long
/// enough for one commit to serve many certificates, short enough that another process
/// waiting for the inventory's write lock is not held up.
pub const BATCH_SLICE: std::time::Duration = std::time::Duration::from_millis(250);
/// Lifetime of a new root when none is given: 10 years.
pub const DEFAULT_ROOT_TTL: Duration = Duration::days(3650);
/// Lifetime of a new intermediate when none is given: 3 years.
pub const DEFAULT_INTERMEDIATE_TTL: Duration = Duration::days(3 * 365);

/// Options for [`init`]: start from [`InitOptions::new`] and change what differs.
#[derive(Debug)]
#[non_exhaustive]
pub struct InitOptions {
    /// Organisation name; the CAs are named after it (see [`naming`]).
    pub name: String,
    /// Key algorithm of both CA keys.
    pub key_algorithm: KeyAlgorithm,
    /// Root lifetime.
    pub root_ttl: Duration,
    /// Intermediate lifetime (at most the root's).
    pub intermediate_ttl: Duration,
    /// DNS domains the CAs may issue for (name constraints); empty means unconstrained.
    pub permitted_dns: Vec<String>,
    /// IP ranges (CIDR) the CAs may issue for. With DNS domains and no range, the CAs issue
    /// for no IP address at all (see [`crate::constraints`]).
    pub permitted_ip: Vec<String>,
    /// Whether the CA issues wildcard names (`*.example.internal`); refused by default.
    pub wildcards: Wildcards,
    /// Key protection.
    pub protection: KeyProtection,
    /// Write the root key here instead of into the CA directory, so the root can stay offline.
    pub root_key_out: Option<PathBuf>,
}

impl InitOptions {
    /// The defaults ([`DEFAULT_ORGANISATION`], ECDSA P-256, [`DEFAULT_ROOT_TTL`],
    /// [`DEFAULT_INTERMEDIATE_TTL`], no name constraints, the root key kept in the directory)
    /// with keys protected as given.
    pub fn new(protection: KeyProtection) -> Self {
        Self {
            name: DEFAULT_ORGANISATION.to_owned(),
            key_algorithm: KeyAlgorithm::default(),
            root_ttl: DEFAULT_ROOT_TTL,
            intermediate_ttl: DEFAULT_INTERMEDIATE_TTL,
            permitted_dns: Vec::new(),
            permitted_ip: Vec::new(),
            wildcards: Wildcards::Refused,
            protection,
            root_key_out: None,
        }
    }
}

/// What [`init`] created.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CaSummary {
    /// The CA directory.
    pub dir: PathBuf,
    /// Root certificate.
    pub root: crate::cert::CertificateInfo,
    /// Intermediate certificate.
    pub intermediate: crate::cert::CertificateInfo,
    /// Where the root key went.
    pub root_key: PathBuf,
    /// Whether the keys are encrypted.
    pub encrypted: bool,
}

/// Why a certificate was revoked (RFC 5280 §5.3.1 CRLReason; code 7 is unused there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RevocationReason {
    /// No reason given (written as no reason code, as RFC 5280 asks).
    #[default]
    Unspecified,
    /// The certificate's private key is known or suspected to be compromised.
    KeyCompromise,
    /// The issuing CA's key is compromised.
    CaCompromise,
    /// The subject's name or affiliation changed.
    AffiliationChanged,
    /// A newer certificate replaces it.
    Superseded,
    /// It is no longer needed.
    CessationOfOperation,
    /// Suspended for now (the only reason that may be lifted).
    CertificateHold,
    /// A privilege it granted was withdrawn.
    PrivilegeWithdrawn,
    /// The attribute authority was compromised.
    AaCompromise,
}

impl RevocationReason {
    const ALL: [Self; 9] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::PrivilegeWithdrawn,
        Self::AaCompromise,
    ];

    /// The RFC 5280 name, e.g. `keyCompromise`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::CertificateHold => "certificateHold",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
            Self::AaCompromise => "aACompromise",
        }
    }

    fn to_rcgen(self) -> Option<rcgen::RevocationReason> {
        use rcgen::RevocationReason as R;
        match self {
            // RFC 5280: the reason code should be absent rather than "unspecified".
            Self::Unspecified => None,
            Self::KeyCompromise => Some(R::KeyCompromise),
            Self::CaCompromise => Some(R::CaCompromise),
            Self::AffiliationChanged => Some(R::AffiliationChanged),
            Self::Superseded => Some(R::Superseded),
            Self::CessationOfOperation => Some(R::CessationOfOperation),
            Self::CertificateHold => Some(R::CertificateHold),
            Self::PrivilegeWithdrawn => Some(R::PrivilegeWithdrawn),
            Self::AaCompromise => Some(R::AaCompromise),
        }
    }
}

impl Serialize for RevocationReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RevocationReason {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::InvalidArgument {
                what: "revocation reason",
                value: s.to_owned(),
                expected: "unspecified, keyCompromise, cACompromise, affiliationChanged, \
                           superseded, cessationOfOperation, certificateHold, \
                           privilegeWithdrawn or aACompromise",
            })
    }
}

/// What a CA certificate says about itself.
struct CaSpec<'a> {
    common_name: &'a str,
    organisation: &'a str,
    /// Intermediates below it: 1 for a root over one intermediate, 0 for an intermediate.
    path_len: u8,
    constraints: &'a Constraints,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

fn ca_params(spec: &CaSpec<'_>) -> Result<CertificateParams> {
    let mut params = CertificateParams::default();
    params.serial_number = Some(SerialNumber::from_slice(Serial::random()?.as_bytes()));
    params.not_before = spec.not_before;
    params.not_after = spec.not_after;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, spec.organisation);
    dn.push(DnType::CommonName, spec.common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(spec.path_len));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.key_identifier_method = KeyIdMethod::Sha256;
    let c = spec.constraints;
    if !c.is_empty() {
        let ip = |n: &ipnet::IpNet| {
            GeneralSubtree::IpAddress(rcgen::CidrSubnet::from_addr_prefix(
                n.addr(),
                n.prefix_len(),
            ))
        };
        params.name_constraints = Some(NameConstraints {
            permitted_subtrees: c
                .permitted_dns
                .iter()
                .map(|d| GeneralSubtree::DnsName(d.clone()))
                .chain(c.permitted_ip.iter().map(ip))
                .collect(),
            excluded_subtrees: c.excluded_ip.iter().map(ip).collect(),
        });
    }
    Ok(params)
}

fn key_pem(key: &PrivateKey, protection: &KeyProtection) -> Result<SecretString> {
    match protection {
        KeyProtection::Passphrase(p) => key.to_encrypted_pem(p).map(SecretString::new),
        KeyProtection::None => Ok(key.to_pkcs8_pem()),
    }
}

/// The two CA certificates of a new CA, with their keys.
struct NewCa {
    root_key: PrivateKey,
    root: rcgen::Certificate,
    intermediate_key: PrivateKey,
    intermediate: rcgen::Certificate,
}

/// Checks the options; returns the organisation and the name constraints, normalised.
fn checked(options: &InitOptions) -> Result<(String, Constraints)> {
    let organisation = name::common_name(&options.name)?;
    let permitted: Vec<String> = options
        .permitted_dns
        .iter()
        .map(|d| name::dns_name(d.trim_start_matches('.')))
        .collect::<Result<_>>()?;
    let ranges = options
        .permitted_ip
        .iter()
        .map(|r| crate::constraints::cidr(r))
        .collect::<Result<Vec<_>>>()?;
    let permitted = Constraints::for_new_ca(permitted, ranges);
    if options.intermediate_ttl > options.root_ttl {
        return Err(Error::InvalidRequest(
            "the intermediate's lifetime cannot exceed the root's",
        ));
    }
    if options.root_ttl > crate::duration::MAX {
        return Err(Error::InvalidRequest("the root lifetime exceeds 100 years"));
    }
    if let KeyProtection::Passphrase(p) = &options.protection
        && p.is_empty()
    {
        return Err(Error::EmptyPassphrase);
    }
    Ok((organisation, permitted))
}

/// Refuses a directory that holds a CA already, and a root key path that is taken.
fn refuse_existing(dir: &Path, root_key_path: &Path) -> Result<()> {
    for f in [
        files::ROOT_CERT,
        files::INTERMEDIATE_CERT,
        files::INTERMEDIATE_KEY,
        files::INVENTORY,
    ] {
        if dir.join(f).exists() {
            return Err(Error::CaExists {
                path: dir.to_path_buf(),
            });
        }
    }
    if root_key_path.exists() {
        return Err(Error::OutputExists {
            path: root_key_path.to_path_buf(),
        });
    }
    Ok(())
}

/// The names of a new CA's two certificates.
struct CaNames<'a> {
    organisation: &'a str,
    root: String,
    intermediate: String,
}

impl<'a> CaNames<'a> {
    /// "ORG Root CA" and "ORG Intermediate CA", followed by ` suffix` when one is given (a
    /// root rollover names its pair apart from the one it replaces).
    fn new(organisation: &'a str, suffix: Option<&str>) -> Self {
        let with = |name: String| match suffix {
            Some(s) => format!("{name} {s}"),
            None => name,
        };
        Self {
            organisation,
            root: with(naming::root(organisation)),
            intermediate: with(naming::intermediate(organisation)),
        }
    }
}

/// Generates both keys and signs the root (path length 1) and the intermediate (0).
fn generate(
    options: &InitOptions,
    names: &CaNames<'_>,
    permitted: &Constraints,
    now: OffsetDateTime,
) -> Result<NewCa> {
    let organisation = names.organisation;
    let root_key = PrivateKey::generate(options.key_algorithm)?;
    let intermediate_key = PrivateKey::generate(options.key_algorithm)?;
    let root_name = names.root.clone();
    let root_params = ca_params(&CaSpec {
        common_name: &root_name,
        organisation,
        path_len: 1,
        constraints: permitted,
        not_before: now - BACKDATE,
        not_after: now + options.root_ttl,
    })?;
    let root = root_params.self_signed(&root_key)?;
    let intermediate_name = names.intermediate.clone();
    let mut inter_params = ca_params(&CaSpec {
        common_name: &intermediate_name,
        organisation,
        path_len: 0,
        constraints: permitted,
        not_before: now - BACKDATE,
        not_after: now + options.intermediate_ttl,
    })?;
    inter_params.use_authority_key_identifier_extension = true;
    let root_issuer = Issuer::new(root_params, &root_key);
    let intermediate = inter_params.signed_by(&intermediate_key, &root_issuer)?;
    Ok(NewCa {
        root_key,
        root,
        intermediate_key,
        intermediate,
    })
}

/// Writes the keys first, then the certificates, each durably; the inventory last, so that a
/// directory with an inventory always has everything it needs.
fn write_ca(dir: &Path, root_key_path: &Path, ca: &NewCa, options: &InitOptions) -> Result<()> {
    let (protection, wildcards) = (&options.protection, options.wildcards);
    let root_key_pem = key_pem(&ca.root_key, protection)?;
    let inter_key_pem = key_pem(&ca.intermediate_key, protection)?;
    let staged = [
        StagedFile::create(
            root_key_path,
            root_key_pem.expose().as_bytes(),
            FileMode::PRIVATE,
        )?,
        StagedFile::create(
            &dir.join(files::INTERMEDIATE_KEY),
            inter_key_pem.expose().as_bytes(),
            FileMode::PRIVATE,
        )?,
        StagedFile::create(
            &dir.join(files::ROOT_CERT),
            ca.root.pem().as_bytes(),
            FileMode::PUBLIC,
        )?,
        StagedFile::create(
            &dir.join(files::INTERMEDIATE_CERT),
            ca.intermediate.pem().as_bytes(),
            FileMode::PUBLIC,
        )?,
    ];
    fsio::commit_all(staged.into())?;
    Inventory::create(&dir.join(files::INVENTORY))?.set_wildcards(wildcards)?;
    fsio::sync_dir(dir)
}

/// What a failed [`init`] may have written: a later `init` must find a clean directory.
struct Partial<'a> {
    dir: &'a Path,
    root_key: &'a Path,
    /// `init` created the directory (it is removed too).
    created_dir: bool,
}

impl Partial<'_> {
    fn remove(&self) {
        let Self {
            dir,
            root_key: root_key_path,
            created_dir,
        } = *self;
        for f in [
            files::ROOT_CERT,
            files::INTERMEDIATE_CERT,
            files::INTERMEDIATE_KEY,
            files::INVENTORY,
            "inventory.db-wal",
            "inventory.db-shm",
        ] {
            let _ = std::fs::remove_file(dir.join(f));
        }
        let _ = std::fs::remove_file(root_key_path);
        if created_dir {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Creates a root CA and an intermediate signed by it in `dir` (created with mode 0700).
/// Refuses to touch a directory that already holds a CA.
pub fn init(dir: &Path, options: &InitOptions, now: OffsetDateTime) -> Result<CaSummary> {
    let (organisation, permitted) = checked(options)?;
    let root_key_path = options
        .root_key_out
        .clone()
        .unwrap_or_else(|| dir.join(files::ROOT_KEY));
    refuse_existing(dir, &root_key_path)?;
    let ca = generate(options, &CaNames::new(&organisation, None), &permitted, now)?;
    let created_dir = !dir.exists();
    fsio::create_dir(dir, 0o700)?;
    // An existing directory too: it is to hold the CA's keys and inventory.
    fsio::set_mode(dir, 0o700)?;
    if let Err(e) = write_ca(dir, &root_key_path, &ca, options) {
        Partial {
            dir,
            root_key: &root_key_path,
            created_dir,
        }
        .remove();
        return Err(e);
    }
    Ok(CaSummary {
        dir: dir.to_path_buf(),
        root: Certificate::from_der(ca.root.der().to_vec(), files::ROOT_CERT)?
            .info()
            .clone(),
        intermediate: Certificate::from_der(
            ca.intermediate.der().to_vec(),
            files::INTERMEDIATE_CERT,
        )?
        .info()
        .clone(),
        root_key: root_key_path,
        encrypted: matches!(options.protection, KeyProtection::Passphrase(_)),
    })
}

/// A signed CRL: one the offline CA signed, or the one a Vault mount publishes (then the number,
/// entries and dates are read from the CRL, and nextUpdate is what Vault set).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SignedCrl {
    /// DER.
    pub der: Vec<u8>,
    /// CRL number (0 when the CRL has none).
    pub number: u64,
    /// Number of revoked entries.
    pub entries: usize,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate (thisUpdate when the CRL has none).
    pub next_update: OffsetDateTime,
}

impl SignedCrl {
    /// The CRL as PEM (`BEGIN X509 CRL`).
    pub fn pem(&self) -> String {
        pemfile::encode(label::CRL, &self.der)
    }
}

/// An opened offline CA. Listing and revoking need no key; issuing and CRLs need
/// [`OfflineCa::unlock`].
pub struct OfflineCa {
    dir: PathBuf,
    root: Certificate,
    intermediate: Certificate,
    inventory: Inventory,
    signer: Option<CaSigner>,
    /// The trust anchors as of opening (see [`OfflineCa::trust_anchors`]).
    trust: Vec<Certificate>,
}

impl fmt::Debug for OfflineCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OfflineCa")
            .field("dir", &self.dir)
            .field("unlocked", &self.signer.is_some())
            .finish()
    }
}

fn read_cert(path: &Path) -> Result<Certificate> {
    let origin = path.display().to_string();
    Certificate::from_pem(&fsio::read_limited(path, MAX_PEM_INPUT)?, &origin)
}

impl OfflineCa {
    /// Opens the CA in `dir`: certificates and inventory, not the key.
    pub fn open(dir: &Path) -> Result<Self> {
        for f in [files::ROOT_CERT, files::INTERMEDIATE_CERT, files::INVENTORY] {
            if !dir.join(f).is_file() {
                return Err(Error::NotACaDirectory {
                    path: dir.to_path_buf(),
                    missing: f.to_owned(),
                });
            }
        }
        let root = read_cert(&dir.join(files::ROOT_CERT))?;
        let intermediate = read_cert(&dir.join(files::INTERMEDIATE_CERT))?;
        let inventory = Inventory::open(&dir.join(files::INVENTORY))?;
        let mut ca = Self {
            dir: dir.to_path_buf(),
            root,
            intermediate,
            inventory,
            signer: None,
            trust: Vec::new(),
        };
        ca.trust = ca.trust_anchors(crate::clock::now())?;
        Ok(ca)
    }

    /// Whether the intermediate key needs a passphrase.
    pub fn key_is_encrypted(&self) -> Result<bool> {
        let path = self.dir.join(files::INTERMEDIATE_KEY);
        Ok(PrivateKey::pem_is_encrypted(&fsio::read_limited(
            &path,
            MAX_PEM_INPUT,
        )?))
    }

    /// Loads the intermediate key. The key file must not be readable by group or others; an
    /// encrypted key needs `passphrase`.
    pub fn unlock(&mut self, passphrase: Option<&SecretString>) -> Result<()> {
        let path = self.dir.join(files::INTERMEDIATE_KEY);
        let origin = path.display().to_string();
        let text = fsio::read_key_file(&path)?;
        let key = PrivateKey::from_pem_with_passphrase(&text, &origin, passphrase)?;
        let wildcards = self.inventory.wildcards()?;
        self.signer =
            Some(CaSigner::new(self.intermediate.clone(), key, &origin)?.with_wildcards(wildcards));
        Ok(())
    }

    /// Loads the intermediate key, taking the passphrase from `source` only when the key is
    /// encrypted.
    pub fn unlock_from(&mut self, source: &CaKeySource) -> Result<()> {
        let passphrase = if self.key_is_encrypted()? {
            Some(source.passphrase()?.ok_or_else(|| Error::Key {
                origin: self.dir.join(files::INTERMEDIATE_KEY).display().to_string(),
                problem: crate::error::KeyProblem::PassphraseRequired,
            })?)
        } else {
            None
        };
        self.unlock(passphrase.as_ref())
    }

    /// Loads the root key (from `key_file`, else the CA directory), to sign a subordinate CA;
    /// the passphrase comes from `source` when the key is encrypted.
    pub fn unlock_root(
        &self,
        key_file: Option<&Path>,
        source: &CaKeySource,
    ) -> Result<subordinate::Root> {
        let path = key_file.map_or_else(|| self.dir.join(files::ROOT_KEY), Path::to_path_buf);
        let origin = path.display().to_string();
        let text = fsio::read_key_file(&path)?;
        let passphrase = if PrivateKey::pem_is_encrypted(&text) {
            Some(source.passphrase()?.ok_or_else(|| Error::Key {
                origin: origin.clone(),
                problem: crate::error::KeyProblem::PassphraseRequired,
            })?)
        } else {
            None
        };
        let key = PrivateKey::from_pem_with_passphrase(&text, &origin, passphrase.as_ref())?;
        subordinate::Root::new(self.root.clone(), key)
    }

    fn signer(&self) -> Result<&CaSigner> {
        self.signer.as_ref().ok_or_else(|| Error::Key {
            origin: self.dir.join(files::INTERMEDIATE_KEY).display().to_string(),
            problem: crate::error::KeyProblem::PassphraseRequired,
        })
    }

    /// The CA directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The root certificate.
    pub fn root(&self) -> &Certificate {
        &self.root
    }

    /// The intermediate certificate.
    pub fn intermediate(&self) -> &Certificate {
        &self.intermediate
    }

    /// The inventory.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// Checks that a request can be signed now, without signing (a dry run of the policy).
    pub fn check(&self, request: &CertificateRequest, now: OffsetDateTime) -> Result<()> {
        self.signer()?.check(request, now)
    }

    /// Signs a certificate for `key` and records it in the inventory.
    pub fn sign(
        &self,
        request: &CertificateRequest,
        key: SubjectKey<'_>,
        now: OffsetDateTime,
    ) -> Result<Certificate> {
        let signer = self.signer()?;
        // A serial collision (2^-128 per pair) is caught by the inventory's primary key; a
        // retry with a fresh serial makes it harmless. Three failures mean something else.
        for _ in 0..3 {
            let serial = Serial::random()?;
            let cert = signer.sign(request, key, &Signing::new(&serial, now))?;
            let issued = Issued::new(request.profile(), key.algorithm(), now);
            if self.inventory.insert(&cert, &issued)? {
                return Ok(cert);
            }
        }
        Err(Error::Random)
    }

    /// Issues a certificate with a key generated here.
    pub fn issue(
        &self,
        request: &CertificateRequest,
        algorithm: KeyAlgorithm,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate> {
        self.signer()?.check(request, now)?;
        let key = PrivateKey::generate(algorithm)?;
        let certificate = self.sign(request, SubjectKey::Key(&key), now)?;
        Ok(self.issued(certificate, Some(key)))
    }

    /// Issues a certificate per request, as [`OfflineCa::issue`] does, but records them in
    /// one inventory transaction per slice of [`BATCH_SLICE`]: one commit (one WAL sync)
    /// instead of one per certificate, and the write lock held briefly enough for another
    /// `pki` process to go on. A certificate reaches `on_result` only once its row is
    /// committed; `Break` stops signing more.
    pub fn issue_many<F>(&self, batch: &Batch<'_>, now: OffsetDateTime, on_result: F)
    where
        F: FnMut(usize, Result<IssuedCertificate>) -> std::ops::ControlFlow<()>,
    {
        self.inventory
            .deferring_checkpoints(|| self.issue_slices(batch, now, on_result));
    }

    fn issue_slices<F>(&self, batch: &Batch<'_>, now: OffsetDateTime, mut on_result: F)
    where
        F: FnMut(usize, Result<IssuedCertificate>) -> std::ops::ControlFlow<()>,
    {
        let Batch {
            requests,
            algorithm,
            ..
        } = *batch;
        // Each certificate is dated when it is signed, not when the batch began.
        let began = crate::clock::now();
        let mut next = 0;
        while next < requests.len() {
            let started = std::time::Instant::now();
            let signed = self.inventory.in_transaction(|_| {
                let mut out = Vec::new();
                for request in &requests[next..] {
                    let at = now + (crate::clock::now() - began);
                    out.push(self.issue(request, algorithm, at));
                    if started.elapsed() >= BATCH_SLICE {
                        break;
                    }
                }
                Ok(out)
            });
            let first = next;
            match signed {
                Ok(results) => {
                    next += results.len().max(1);
                    for (i, result) in results.into_iter().enumerate() {
                        if on_result(first + i, result).is_break() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    // Nothing of the slice was recorded: none of it may be used.
                    let reason = e.to_string();
                    for i in first..requests.len() {
                        let failed = Err(Error::NotRecorded {
                            reason: reason.clone(),
                        });
                        if on_result(i, failed).is_break() {
                            return;
                        }
                    }
                    return;
                }
            }
        }
    }

    /// Wraps a leaf with this CA's chain.
    pub fn issued(&self, certificate: Certificate, key: Option<PrivateKey>) -> IssuedCertificate {
        IssuedCertificate {
            certificate,
            chain: vec![self.intermediate.clone()],
            root: Some(self.root.clone()),
            trust: self.trust.clone(),
            private_key: key,
            warnings: Vec::new(),
        }
    }

    /// Marks a certificate revoked.
    pub fn revoke(
        &self,
        serial: &Serial,
        reason: RevocationReason,
        now: OffsetDateTime,
    ) -> Result<RevokeOutcome> {
        self.inventory.revoke(serial, reason, now)
    }

    /// Signs a CRL of every revoked, unexpired certificate, with the next CRL number.
    pub fn crl(&self, next_update: Duration, now: OffsetDateTime) -> Result<SignedCrl> {
        self.crl_signed_by(self.signer()?, next_update, now)
    }

    /// A CRL of every revoked, unexpired certificate, signed by `signer`.
    fn crl_signed_by(
        &self,
        signer: &CaSigner,
        next_update: Duration,
        now: OffsetDateTime,
    ) -> Result<SignedCrl> {
        let (revoked, number) = self.inventory.crl_snapshot(now)?;
        let entries = revoked.len();
        let params: Vec<RevokedCertParams> = revoked
            .into_iter()
            .map(|r| RevokedCertParams {
                serial_number: SerialNumber::from_slice(r.serial.as_bytes()),
                revocation_time: r.revoked_at,
                reason_code: r.reason.to_rcgen(),
                invalidity_date: None,
            })
            .collect();
        let crl = signer.sign_crl(params, &CrlTerms::new(number, now, next_update))?;
        Ok(SignedCrl {
            der: crl.der().to_vec(),
            number,
            entries,
            this_update: now,
            next_update: now + next_update,
        })
    }

    /// The inventory rows matching `filter`.
    pub fn list(&self, filter: &ListFilter, now: OffsetDateTime) -> Result<Vec<Record>> {
        self.inventory.list(filter, now)
    }

    /// The inventory row of `serial`.
    pub fn record(&self, serial: &Serial, now: OffsetDateTime) -> Result<Option<Record>> {
        self.inventory.get(serial, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Profile, clock};

    /// Review finding 9: with revocations and CRLs interleaved from several processes, a CRL
    /// never leaves out a revocation that a lower-numbered CRL listed.
    #[test]
    fn finding_9_a_crl_takes_its_revoked_set_and_number_together() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        init(&dir, &InitOptions::new(KeyProtection::None), clock::now()).unwrap();
        let open = || {
            let mut ca = OfflineCa::open(&dir).unwrap();
            ca.unlock_from(&CaKeySource::Nothing).unwrap();
            ca
        };
        let issuer = open();
        let request =
            CertificateRequest::new("r.example.internal", [], Profile::Server, Duration::days(3))
                .unwrap();
        let serials: Vec<Serial> = (0..40)
            .map(|_| {
                let c = issuer
                    .issue(&request, KeyAlgorithm::EcdsaP256, clock::now())
                    .unwrap();
                c.certificate.info().serial.clone()
            })
            .collect();
        let crls = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for part in serials.chunks(10) {
                let crls = &crls;
                let open = &open;
                s.spawn(move || {
                    let ca = open();
                    for serial in part {
                        ca.revoke(serial, RevocationReason::KeyCompromise, clock::now())
                            .unwrap();
                        let crl = ca.crl(Duration::days(1), clock::now()).unwrap();
                        let der = crl.der.clone();
                        let (_, parsed) = x509_parser::parse_x509_crl(&der).unwrap();
                        let listed: std::collections::BTreeSet<Vec<u8>> = parsed
                            .iter_revoked_certificates()
                            .map(|r| r.raw_serial().to_vec())
                            .collect();
                        crls.lock().unwrap().push((crl.number, listed));
                    }
                });
            }
        });
        let mut crls = crls.into_inner().unwrap();
        crls.sort_by_key(|c| c.0);
        for pair in crls.windows(2) {
            assert!(pair[0].0 < pair[1].0, "numbers are distinct");
            assert!(
                pair[0].1.is_subset(&pair[1].1),
                "CRL {} lists a serial CRL {} leaves out",
                pair[0].0,
                pair[1].0
            );
        }
    }

    #[test]
    fn a_batch_is_recorded_in_few_commits_and_a_refused_request_fails_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        init(&dir, &InitOptions::new(KeyProtection::None), clock::now()).unwrap();
        let mut ca = OfflineCa::open(&dir).unwrap();
        ca.unlock_from(&CaKeySource::Nothing).unwrap();
        let request = |cn: &str, days| {
            CertificateRequest::new(cn, [], Profile::Server, Duration::days(days)).unwrap()
        };
        let mut requests: Vec<_> = (0..20)
            .map(|i| request(&format!("s{i}.example.internal"), 3))
            .collect();
        // Longer than the intermediate lives: refused by the policy.
        requests[7] = request("long.example.internal", 36500);
        let mut seen = Vec::new();
        let batch = Batch::new(&requests, KeyAlgorithm::EcdsaP256);
        ca.issue_many(&batch, clock::now(), |i, r| {
            seen.push((i, r.map(|c| c.certificate.info().serial.clone())));
            std::ops::ControlFlow::Continue(())
        });
        assert_eq!(seen.len(), 20);
        for (i, r) in &seen {
            match r {
                Err(e) => assert_eq!(*i, 7, "{e}"),
                Ok(serial) => {
                    let rec = ca.record(serial, clock::now()).unwrap();
                    assert!(rec.is_some(), "certificate {i} is in the inventory");
                }
            }
        }
        // `Break` stops signing.
        let mut calls = 0;
        ca.issue_many(&batch, clock::now(), |_, _| {
            calls += 1;
            std::ops::ControlFlow::Break(())
        });
        assert_eq!(calls, 1);
    }
}
