//! Issue a certificate through Vault / OpenBao: the key is made here and Vault signs a CSR.
//! Settings come from the environment (`VAULT_ADDR`, `VAULT_CACERT`, `VAULT_TOKEN` or AppRole
//! files, `PKI_VAULT_ROLE`), as for the `pki` command.
//!
//! ```sh
//! VAULT_ADDR=https://vault.example.internal:8200 VAULT_TOKEN=… PKI_VAULT_ROLE=services \
//!     cargo run -p pki --example issue_vault -- api.example.internal
//! ```

use pki::authority::vault::{VaultAuthority, VaultSettings};
use pki::{CertificateRequest, KeyAlgorithm, Profile, clock};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let common_name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "api.example.internal".to_owned());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let settings = VaultSettings::default().with_env()?;
        let vault = VaultAuthority::connect(&settings).await?;
        let request =
            CertificateRequest::new(&common_name, [], Profile::Server, pki::request::DEFAULT_TTL)?;
        let issued = vault
            .issue(&request, KeyAlgorithm::EcdsaP256, clock::now())
            .await?;
        let info = issued.certificate.info();
        println!(
            "issued serial {} for {common_name}, valid until {}, by {}",
            info.serial,
            pki::error::Rfc3339(info.not_after),
            info.issuer
        );
        for w in &issued.warnings {
            println!("  Vault warned: {w}");
        }
        Ok(())
    })
}
