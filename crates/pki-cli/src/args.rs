//! Command-line arguments.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pki::authority::offline::{DEFAULT_INTERMEDIATE_TTL, DEFAULT_ORGANISATION, DEFAULT_ROOT_TTL};
use pki::request::DEFAULT_TTL;

/// A duration on the command line (units `s m h d w y`, combinable: `1d12h`), shown in years
/// when it is a whole number of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dur(pub time::Duration);

impl FromStr for Dur {
    type Err = pki::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        pki::duration::parse(s).map(Self)
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let year = time::Duration::days(365);
        let secs = self.0.whole_seconds();
        if secs > 0 && secs % year.whole_seconds() == 0 {
            write!(f, "{}y", secs / year.whole_seconds())
        } else {
            f.write_str(&pki::duration::format(self.0))
        }
    }
}

/// The format of `pki rotate`'s log lines on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Lines for people.
    Human,
    /// One JSON object per line, for journald or ELK.
    Json,
}

/// Issue, renew, revoke and rotate internal certificates.
#[derive(Debug, Parser)]
#[command(
    name = "pki",
    version,
    about,
    long_about = "Issue, renew, revoke and rotate internal certificates, from an offline CA \
                  (root + intermediate in a directory) or from Vault / OpenBao.",
    after_help = "EXIT CODES:\n  0  success\n  1  the operation failed\n  2  usage or configuration error\n\n\
                  Run `pki <command> --help` for examples."
)]
pub(crate) struct Cli {
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

/// Options that locate the offline CA and unlock its key.
#[derive(Debug, Args, Clone)]
pub(crate) struct CaOpts {
    /// CA directory (created by `pki ca init`).
    #[arg(long, env = "PKI_CA_DIR", value_name = "DIR")]
    pub ca_dir: Option<PathBuf>,

    /// File holding the CA key passphrase (mode 0600). Otherwise PKI_CA_PASSPHRASE, or a
    /// prompt when stdin is a terminal.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

/// Which authority signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Backend {
    /// The offline CA in --ca-dir.
    Offline,
    /// Vault / OpenBao at VAULT_ADDR.
    Vault,
    /// An ACME server (Let's Encrypt) as --acme-config describes.
    Acme,
}

/// Options that choose the backend and, for Vault, the PKI mount and role. The address, TLS
/// trust and credentials come from the environment (VAULT_ADDR, VAULT_CACERT, VAULT_TOKEN…) or
/// a --vault-config file, never from a flag.
#[derive(Debug, Args, Clone)]
pub(crate) struct BackendOpts {
    /// Signing backend: offline (the CA in --ca-dir), vault (Vault / OpenBao at VAULT_ADDR)
    /// or acme (the ACME server of --acme-config).
    #[arg(long, env = "PKI_BACKEND", value_enum, default_value = "offline")]
    pub backend: Backend,
    /// Vault PKI mount [default: pki].
    #[arg(long, env = "PKI_VAULT_MOUNT", value_name = "MOUNT")]
    pub mount: Option<String>,
    /// Vault PKI role to sign with.
    #[arg(long, env = "PKI_VAULT_ROLE", value_name = "ROLE")]
    pub role: Option<String>,
    /// Let Vault generate the key (issue/:role) instead of sending a CSR for a key made here;
    /// the key then crosses the network.
    #[arg(long)]
    pub server_keygen: bool,
    /// TOML file of Vault settings (address, ca_cert, namespace, role, token_file,
    /// role_id_file, secret_id_file…); the environment fills what it leaves out.
    #[arg(long, env = "PKI_VAULT_CONFIG", value_name = "FILE")]
    pub vault_config: Option<PathBuf>,
    /// TOML file of ACME settings for --backend acme (directory, contact, terms_agreed,
    /// challenge…, the keys of an acme backend in a rotation config, without `type`).
    #[arg(long, env = "PKI_ACME_CONFIG", value_name = "FILE")]
    pub acme_config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Manage the offline CA.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Issue a certificate (and generate its key, unless --csr is given).
    #[command(after_help = ISSUE_EXAMPLES)]
    Issue(IssueArgs),
    /// Issue the successor of a certificate: same names and profile, new key unless --reuse-key.
    #[command(after_help = RENEW_EXAMPLES)]
    Renew(RenewArgs),
    /// Revoke a certificate by serial or certificate file.
    #[command(after_help = REVOKE_EXAMPLES)]
    Revoke(RevokeArgs),
    /// Sign and print a CRL of every revoked certificate.
    #[command(after_help = CRL_EXAMPLES)]
    Crl(CrlArgs),
    /// List the certificates in the inventory.
    #[command(after_help = LIST_EXAMPLES)]
    List(ListArgs),
    /// Show what a certificate (or CSR) says; check it against a key or a chain.
    #[command(after_help = INSPECT_EXAMPLES)]
    Inspect(InspectArgs),
    /// The rotation hook: renew what is due, deploy it, prove it is served, roll back if not.
    #[command(after_help = ROTATE_HELP)]
    Rotate(RotateArgs),
    /// Each managed certificate of a rotation config: backend, serial, expiry, next renewal,
    /// last run, targets proven served. Exit 0 all fine, 1 something needs attention, 2 a
    /// config error.
    Status(crate::cmd::status::StatusArgs),
    /// Check what a rotation needs, each with a verdict and a fix: the config, the state
    /// directory, each backend, each target's files, and what each service serves now.
    /// Exit 0 all good, 1 any failure.
    Doctor(crate::cmd::doctor::DoctorArgs),
    /// Read and write KV v2 secrets on Vault / OpenBao.
    #[command(subcommand)]
    Secret(crate::cmd::secret::SecretCommand),
    /// Prepare a Vault / OpenBao server for pki.
    #[command(subcommand)]
    Vault(crate::cmd::vault::VaultCommand),
    /// The ACME account of a rotation config (its thumbprint for stateless http-01).
    #[command(subcommand)]
    Acme(crate::cmd::acme::AcmeCommand),
    /// Write the man pages and shell completions into a directory (for packaging).
    #[command(hide = true)]
    Generate(crate::cmd::generate::GenerateArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum CaCommand {
    /// Create a root CA and an intermediate signed by it.
    #[command(after_help = CA_INIT_EXAMPLES)]
    Init(CaInitArgs),
    /// Copy a live CA directory into one archive (a consistent snapshot of its inventory; the
    /// keys as they are on disk, encrypted).
    #[command(after_help = CA_BACKUP_EXAMPLES)]
    Backup(CaBackupArgs),
    /// Unpack a backup into a new CA directory and check it.
    Restore(CaRestoreArgs),
    /// Replace the intermediate by a new one under the same root: new certificates come from
    /// the new one; the old one is kept in retired/ and signs CRLs until its last leaf expires.
    #[command(after_help = CA_ROTATE_INTERMEDIATE_EXAMPLES)]
    RotateIntermediate(CaRotateIntermediateArgs),
    /// Stage a new root and an intermediate under it: trust bundles carry both roots at once,
    /// the new pair signs only once the overlap has passed (activated by the first `pki
    /// rotate` after it, or by --activate).
    #[command(after_help = CA_ROTATE_ROOT_EXAMPLES)]
    RotateRoot(CaRotateRootArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CaRotateRootArgs {
    #[command(flatten)]
    pub ca: CaOpts,
    /// How long both roots are distributed before the new one signs: at least two runs of
    /// every host's timer.
    #[arg(long, default_value = "7d", value_name = "DURATION")]
    pub overlap: Dur,
    /// Lifetime of the new root.
    #[arg(long, default_value_t = Dur(DEFAULT_ROOT_TTL), value_name = "DURATION")]
    pub root_ttl: Dur,
    /// Lifetime of the new intermediate.
    #[arg(long, default_value_t = Dur(DEFAULT_INTERMEDIATE_TTL), value_name = "DURATION")]
    pub intermediate_ttl: Dur,
    /// Write the new root key to FILE instead of the CA directory (a root kept offline).
    #[arg(long, value_name = "FILE", conflicts_with = "activate")]
    pub root_key_out: Option<PathBuf>,
    /// Make the staged pair current now that its overlap has passed (refused before).
    #[arg(long)]
    pub activate: bool,
}

const CA_ROTATE_ROOT_EXAMPLES: &str = "\
Examples:
  # 1. stage: every host trusts both roots after its next run
  pki ca rotate-root --ca-dir /var/lib/pki/ca --passphrase-file /root/ca.pass --overlap 14d
  # 2. after the overlap: the first pki rotate activates it, or
  pki ca rotate-root --ca-dir /var/lib/pki/ca --activate";

#[derive(Debug, Args)]
pub(crate) struct CaRotateIntermediateArgs {
    #[command(flatten)]
    pub ca: CaOpts,
    /// Lifetime of the new intermediate (cut to the root's).
    #[arg(long, default_value_t = Dur(DEFAULT_INTERMEDIATE_TTL), value_name = "DURATION")]
    pub ttl: Dur,
    /// The root key, when it is kept outside the CA directory (`ca init --root-key-out`).
    #[arg(long, value_name = "FILE")]
    pub root_key: Option<PathBuf>,
}

const CA_ROTATE_INTERMEDIATE_EXAMPLES: &str = "\
Examples:
  pki ca rotate-intermediate --ca-dir /var/lib/pki/ca --passphrase-file /root/ca.pass
  # then, on every host: pki rotate reissues what the old intermediate signed
  pki rotate --config /etc/pki/rotate.toml --dry-run     # ... (issuer-changed)";

#[derive(Debug, Args)]
pub(crate) struct CaBackupArgs {
    /// The archive to write (mode 0600, replaced atomically).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[command(flatten)]
    pub ca: CaOpts,
}

#[derive(Debug, Args)]
pub(crate) struct CaRestoreArgs {
    /// An archive written by `pki ca backup`.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The directory to restore into (created 0700; must not exist or be empty).
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
}

const CA_BACKUP_EXAMPLES: &str = "\
Examples:
  pki ca backup --ca-dir /var/lib/pki/ca --out /var/backups/pki/ca.tar
  pki ca restore /var/backups/pki/ca.tar --dir /var/lib/pki/ca-restored";

#[derive(Debug, Args)]
pub(crate) struct CaInitArgs {
    /// Directory to create the CA in (mode 0700); must not hold a CA already.
    #[arg(long, value_name = "DIR")]
    pub dir: PathBuf,
    /// Organisation name: the CAs become "NAME Root CA" and "NAME Intermediate CA".
    #[arg(long, default_value = DEFAULT_ORGANISATION)]
    pub name: String,
    /// Key algorithm of both CA keys: ecdsa-p256, ecdsa-p384, ed25519, rsa-2048, rsa-3072, rsa-4096.
    #[arg(long, default_value = "ecdsa-p256", value_name = "ALG")]
    pub key: String,
    /// Root lifetime (units s, m, h, d, w, y).
    #[arg(long, default_value_t = Dur(DEFAULT_ROOT_TTL), value_name = "DURATION")]
    pub root_ttl: Dur,
    /// Intermediate lifetime.
    #[arg(long, default_value_t = Dur(DEFAULT_INTERMEDIATE_TTL), value_name = "DURATION")]
    pub intermediate_ttl: Dur,
    /// Limit the CAs to these DNS domains (name constraints); repeatable. Unless
    /// --permitted-ip is given too, the CAs then issue for no IP address.
    #[arg(long, value_name = "DOMAIN")]
    pub permitted_dns: Vec<String>,
    /// Limit the CAs to these IP ranges (name constraints), e.g. 10.0.0.0/8; repeatable.
    #[arg(long, value_name = "CIDR")]
    pub permitted_ip: Vec<String>,
    /// Let the CA issue wildcard names (*.example.internal); refused otherwise.
    #[arg(long)]
    pub allow_wildcards: bool,
    /// File holding the passphrase that encrypts the CA keys (mode 0600). Otherwise
    /// PKI_CA_PASSPHRASE, or a prompt when stdin is a terminal.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    /// Store the CA keys unencrypted. For demos and throwaway test CAs only: anyone who can
    /// read the directory can then issue certificates.
    #[arg(long, conflicts_with = "passphrase_file")]
    pub insecure_no_passphrase: bool,
    /// Write the root key to FILE instead of the CA directory, so the root can be kept offline.
    #[arg(long, value_name = "FILE")]
    pub root_key_out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct IssueArgs {
    /// Subject common name (optional with --csr: the CSR's is used).
    #[arg(value_name = "COMMON_NAME")]
    pub common_name: Option<String>,
    /// Subject alternative name; repeatable. DNS names, IP addresses, URIs and e-mails are
    /// recognised, or prefix with dns:, ip:, uri:, email:.
    #[arg(long, value_name = "NAME")]
    pub san: Vec<String>,
    /// Profile: server, client or server-client.
    #[arg(long, default_value = "server")]
    pub profile: String,
    /// Lifetime (units s, m, h, d, w, y).
    #[arg(long, default_value_t = Dur(DEFAULT_TTL), value_name = "DURATION")]
    pub ttl: Dur,
    /// Key algorithm of the generated key.
    #[arg(long, default_value = "ecdsa-p256", value_name = "ALG")]
    pub key: String,
    /// Sign this CSR instead of generating a key: only its public key and names are used.
    #[arg(long, value_name = "FILE", conflicts_with = "key")]
    pub csr: Option<PathBuf>,
    /// Output directory for cert.pem, key.pem, chain.pem, fullchain.pem and ca.pem (with
    /// --batch: the parent of one directory per certificate).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace files that already exist in the output directory.
    #[arg(long)]
    pub force: bool,
    /// Issue many certificates: FILE holds one per line, `COMMON_NAME [SAN...]` (blank lines
    /// and `#` comments ignored); each goes to OUT/<common name>/.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["csr", "common_name", "san"])]
    pub batch: Option<PathBuf>,
    /// With --batch: requests in flight at once (Vault).
    #[arg(long, default_value_t = 8, value_name = "N", requires = "batch")]
    pub concurrency: usize,
    #[command(flatten)]
    pub ca: CaOpts,
    #[command(flatten)]
    pub backend: BackendOpts,
}

impl IssueArgs {
    /// What `--force` means for files already in the output directory.
    pub(crate) fn existing(&self) -> pki::bundle::Existing {
        if self.force {
            pki::bundle::Existing::Replace
        } else {
            pki::bundle::Existing::Refuse
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct RenewArgs {
    /// A directory written by `pki issue` (cert.pem, key.pem), or a certificate file.
    #[arg(value_name = "CERT_OR_DIR")]
    pub target: PathBuf,
    /// Keep the current key (read from key.pem beside the certificate, or --key-file).
    #[arg(long)]
    pub reuse_key: bool,
    /// The key to reuse, when it is not key.pem beside the certificate.
    #[arg(long, value_name = "FILE", requires = "reuse_key")]
    pub key_file: Option<PathBuf>,
    /// Lifetime of the successor; by default the current certificate's.
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Algorithm of the new key; by default the current key's.
    #[arg(long, value_name = "ALG", conflicts_with = "reuse_key")]
    pub key: Option<String>,
    /// Where to write the successor; by default the directory given (or holding cert.pem).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub ca: CaOpts,
    #[command(flatten)]
    pub backend: BackendOpts,
}

#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    /// Serial number (hex, colons optional) or a certificate file.
    #[arg(value_name = "SERIAL_OR_CERT")]
    pub target: String,
    /// Reason: unspecified, keyCompromise, cACompromise, affiliationChanged, superseded,
    /// cessationOfOperation, certificateHold, privilegeWithdrawn, aACompromise.
    #[arg(long, default_value = "unspecified")]
    pub reason: String,
    #[command(flatten)]
    pub ca: CaOpts,
    #[command(flatten)]
    pub backend: BackendOpts,
}

#[derive(Debug, Args)]
pub(crate) struct CrlArgs {
    /// Write the CRL (PEM) to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// How long the CRL stays valid (its nextUpdate; offline CA only: Vault sets its own).
    #[arg(long, default_value = "7d", value_name = "DURATION")]
    pub next_update: String,
    #[command(flatten)]
    pub ca: CaOpts,
    #[command(flatten)]
    pub backend: BackendOpts,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only valid certificates expiring within DURATION.
    #[arg(long, value_name = "DURATION")]
    pub expiring: Option<String>,
    /// Only certificates with this status: valid, revoked or expired.
    #[arg(long)]
    pub status: Option<String>,
    #[command(flatten)]
    pub ca: CaOpts,
    #[command(flatten)]
    pub backend: BackendOpts,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// A PEM certificate (the first of a bundle) or CSR.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Check that this private key (PKCS#8 PEM) matches the certificate.
    #[arg(long, value_name = "KEY")]
    pub key: Option<PathBuf>,
    /// Verify the certificate against this chain file: intermediates plus the root that
    /// anchors it (self-signed certificates in the file are the trusted roots).
    #[arg(long, value_name = "CHAIN")]
    pub chain: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct RotateArgs {
    /// The rotation config (TOML).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Print the plan, one line per certificate with its reason, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Reissue every selected certificate, due or not.
    #[arg(long)]
    pub force: bool,
    /// Only this certificate (repeatable).
    #[arg(long, value_name = "NAME")]
    pub only: Vec<String>,
    /// List the certificates the backend issued that never reached the store (a run that
    /// died, or a store that failed, after the answer came), to be revoked; change nothing.
    #[arg(long, conflicts_with_all = ["dry_run", "force"])]
    pub orphans: bool,
    /// Log lines on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, value_name = "FORMAT")]
    pub log_format: LogFormat,
}

const ROTATE_HELP: &str = "EXIT CODES:
  0   nothing was due, or everything due was rotated and verified
  1   at least one certificate or target failed (the others were still handled)
  2   the configuration is invalid (the message names the file, line and key)
  75  another run holds the lock; this one did nothing

EXAMPLES:
  pki rotate --config examples/quickstart.toml
  pki rotate --config /etc/pki/rotate.toml --dry-run
  pki rotate --config /etc/pki/rotate.toml --force --only haproxy-www --log-format json";

const CA_INIT_EXAMPLES: &str = "EXAMPLES:
  # An encrypted CA limited to one internal zone, passphrase from a file
  pki ca init --dir /etc/pki/ca --name \"Example Internal\" \\
      --permitted-dns example.internal --permitted-ip 10.0.0.0/16 --passphrase-file /root/ca.pass

  # Keep the root key off the machine that issues leaves
  pki ca init --dir /etc/pki/ca --passphrase-file /root/ca.pass --root-key-out /media/usb/root.key.pem

  # A throwaway CA for a demo (keys NOT encrypted)
  pki ca init --dir ./demo-ca --insecure-no-passphrase";

const ISSUE_EXAMPLES: &str = "EXAMPLES:
  # A server certificate with a new P-256 key
  pki issue api.example.internal --san 10.0.0.7 --ttl 90d --out ./api --ca-dir /etc/pki/ca

  # A client certificate with an RSA key
  pki issue backup-agent --profile client --key rsa-3072 --out ./backup

  # Sign a CSR made elsewhere: only its key and names are used
  pki issue --csr db.csr --profile server --out ./db

  # From Vault / OpenBao: the key is made here, Vault signs a CSR with role `services`
  VAULT_ADDR=https://vault.example.internal:8200 VAULT_CACERT=/etc/pki/vault-ca.pem \\
      pki issue api.example.internal --backend vault --role services --out ./api

  # Many at once, 8 requests in flight, one directory per line of names.txt
  pki issue --batch names.txt --backend vault --role services --out ./certs";

const RENEW_EXAMPLES: &str = "EXAMPLES:
  # New key, same names and lifetime, written back into the directory
  pki renew ./api

  # Keep the key, ask for 30 days
  pki renew ./api --reuse-key --ttl 30d";

const REVOKE_EXAMPLES: &str = "EXAMPLES:
  pki revoke 3e:25:50:1c:0f:9a:1b:2c --reason keyCompromise
  pki revoke ./api/cert.pem --reason superseded";

const CRL_EXAMPLES: &str = "EXAMPLES:
  pki crl --out /var/www/pki/crl.pem --next-update 7d
  pki crl | openssl crl -noout -text";

const LIST_EXAMPLES: &str = "EXAMPLES:
  pki list --expiring 30d
  pki list --status revoked --json";

const INSPECT_EXAMPLES: &str = "EXAMPLES:
  pki inspect ./api/cert.pem
  pki inspect ./api/cert.pem --key ./api/key.pem --chain <(cat ./api/chain.pem ./api/ca.pem)";
