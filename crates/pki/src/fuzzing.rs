//! Entry points for the fuzz targets in `fuzz/` at the workspace root, built only with the
//! `fuzzing` feature: thin wrappers over private parsers of untrusted input, so that the
//! targets exercise the very code the library runs. Not a supported API.
//!
//! The public parsers (PEM, certificates, keys, CSRs, names, durations) are fuzzed through
//! their own entry points and need nothing here.

/// Vault / OpenBao answers: the JSON envelope, error bodies, sign/issue answers, CA chains and
/// CRLs.
pub mod vault {
    pub use crate::authority::vault::fuzzing::*;
}
