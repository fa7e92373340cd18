//! `pki`: issue, renew, revoke and rotate the certificates of a private infrastructure.
//!
//! Three ways to sign, behind one interface ([`authority`]): an **offline** CA (root and
//! intermediate kept in a directory, keys encrypted at rest, an SQLite inventory of everything
//! issued), **Vault / OpenBao**'s PKI secrets engine over HTTPS, and an **ACME** server (Let's
//! Encrypt) for publicly trusted certificates. Around them: keys
//! ([`key`]), parsed certificates and chain checks ([`cert`]), requests and CSR vetting
//! ([`request`]), file rendering ([`bundle`]) and atomic,
//! durable file output ([`fsio`]).
//!
//! The crate does not parse command lines or know about services; it never prints, and it reads
//! the clock in one place ([`clock`]): everything else takes `now` as an argument.
//!
//! ```no_run
//! use pki::authority::offline::{self, InitOptions, KeyProtection, OfflineCa};
//! use pki::bundle::{self, Existing};
//! use pki::{CertificateRequest, KeyAlgorithm, Profile, SubjectName, clock, duration};
//!
//! # fn main() -> pki::Result<()> {
//! let dir = std::path::Path::new("/tmp/example-ca");
//! let now = clock::now();
//! let mut options = InitOptions::new(KeyProtection::None);
//! options.permitted_dns = vec!["example.internal".into()];
//! offline::init(dir, &options, now)?;
//!
//! let mut ca = OfflineCa::open(dir)?;
//! ca.unlock(None)?;
//! let request = CertificateRequest::new(
//!     "api.example.internal",
//!     [SubjectName::parse("10.0.0.7")?],
//!     Profile::Server,
//!     duration::parse("30d")?,
//! )?;
//! let issued = ca.issue(&request, KeyAlgorithm::EcdsaP256, now)?;
//! bundle::write_dir(std::path::Path::new("/tmp/api"), &issued, Existing::Refuse)?;
//! # Ok(())
//! # }
//! ```
//!
//! Runnable examples (`cargo run -p pki --example NAME`): `issue_offline`, `issue_vault`,
//! `plan_rotation`; the rotation hook's own is in `pki-deploy`.

// Public types may grow: each says whether it is closed (rustls's rule).
#![warn(clippy::exhaustive_enums, clippy::exhaustive_structs)]

pub mod authority;
pub mod bundle;
pub mod cert;
pub mod clock;
pub mod constraints;
pub mod duration;
pub mod error;
pub mod fsio;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod key;
pub mod name;
pub mod pemfile;
pub mod process;
pub mod profile;
pub mod request;
pub mod rotation;
pub mod secret;
pub mod tls;

pub use authority::{Authority, IssuedCertificate};
pub use cert::{Certificate, CertificateInfo, Serial};
pub use error::{Error, Result};
pub use key::{KeyAlgorithm, PrivateKey};
pub use name::SubjectName;
pub use profile::Profile;
pub use request::{CertificateRequest, Csr, SubjectKey};
pub use secret::SecretString;
