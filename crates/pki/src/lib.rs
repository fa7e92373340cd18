//! `pki`: issue, renew, revoke and rotate the certificates of a private infrastructure.
//!
//! Two ways to sign, behind one interface ([`authority`]): an **offline** CA (root and
//! intermediate kept in a directory, keys encrypted at rest, an SQLite inventory of everything
//! issued) and **Vault / OpenBao**'s PKI secrets engine over HTTPS. Around them: keys
//! ([`key`]), parsed certificates and chain checks ([`cert`]), requests and CSR vetting
//! ([`request`]), file rendering ([`bundle`]) and atomic,
//! durable file output ([`fsio`]).
//!
//! The crate does not parse command lines or know about services; it never prints, and it reads
//! the clock in one place ([`clock`]): everything else takes `now` as an argument.
//!
//! ```no_run
//! use pki::authority::offline::{self, InitOptions, KeyProtection, OfflineCa};
//! use pki::{CertificateRequest, KeyAlgorithm, Profile, SubjectName, clock, duration};
//!
//! # fn main() -> pki::Result<()> {
//! let dir = std::path::Path::new("/tmp/example-ca");
//! let now = clock::now();
//! offline::init(dir, &InitOptions {
//!     name: "Example Internal".into(),
//!     key_algorithm: KeyAlgorithm::EcdsaP256,
//!     root_ttl: duration::parse("10y")?,
//!     intermediate_ttl: duration::parse("3y")?,
//!     permitted_dns: vec!["example.internal".into()],
//!     protection: KeyProtection::None,
//!     root_key_out: None,
//! }, now)?;
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
//! pki::bundle::write_dir(std::path::Path::new("/tmp/api"), &issued, false)?;
//! # Ok(())
//! # }
//! ```

pub mod authority;
pub mod bundle;
pub mod cert;
pub mod clock;
pub mod duration;
pub mod error;
pub mod fsio;
pub mod key;
pub mod name;
pub mod pemfile;
pub mod profile;
pub mod request;
pub mod rotation;
pub mod secret;

pub use authority::{Authority, IssuedCertificate};
pub use cert::{Certificate, CertificateInfo, Serial};
pub use error::{Error, Result};
pub use key::{KeyAlgorithm, PrivateKey};
pub use name::SubjectName;
pub use profile::Profile;
pub use request::{CertificateRequest, Csr, SubjectKey};
pub use secret::SecretString;
