//! Integration tests: the `pki` binary and libraries against independent verifiers and real
//! servers. One test binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]
// Test helpers spell out what each server or request needs, argument by argument.
#![allow(clippy::too_many_arguments)]
// Tests write fixtures directly (often deliberately broken ones) and read the clock.
#![allow(clippy::disallowed_methods)]

mod acme;
mod backup;
mod bad_inputs;
mod concurrency;
mod doctor;
mod durability;
mod jvm;
mod mtls;
mod offline_ca;
mod packaging;
mod rollover;
mod rotate;
mod rotate_drift;
mod security;
mod status;
mod tls_handshake;
mod vault;
mod vault_faults;
mod vault_ha;
mod vault_tls;
