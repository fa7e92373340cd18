//! What to do about an error: the libraries state facts, and the command line knows the flags
//! and variables that fix them.

use pki::error::KeyProblem;

/// A hint for the first cause in `err` that has one.
pub(crate) fn hint(err: &anyhow::Error) -> Option<&'static str> {
    err.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<pki::Error>() {
            return core(e);
        }
        match cause.downcast_ref::<pki_deploy::Error>() {
            Some(pki_deploy::Error::Pki(e)) => core(e),
            _ => None,
        }
    })
}

fn core(e: &pki::Error) -> Option<&'static str> {
    use pki::Error as E;
    Some(match e {
        E::Key {
            problem: KeyProblem::PassphraseRequired,
            ..
        } => "give --passphrase-file FILE or set PKI_CA_PASSPHRASE",
        E::OutputExists { .. } => "use --force to replace it",
        E::NotACaDirectory { .. } => "create one with `pki ca init`, or give --ca-dir DIR",
        E::UnsupportedKeyAlgorithm { .. } => "choose the new key's algorithm with --key",
        E::VaultConfig { setting, .. } => vault(setting)?,
        E::Trust { .. } => {
            "give the CA that issued the server's certificate with VAULT_CACERT (or ca_cert)"
        }
        _ => return None,
    })
}

fn vault(setting: &str) -> Option<&'static str> {
    Some(match setting {
        "address" => "set VAULT_ADDR (or BAO_ADDR), or `address` in the --vault-config file",
        "token" => {
            "set VAULT_TOKEN, PKI_VAULT_TOKEN_FILE (or token_file), write ~/.vault-token, or \
             configure AppRole (PKI_VAULT_ROLE_ID_FILE and PKI_VAULT_SECRET_ID_FILE)"
        }
        "role" => "give --role ROLE, set PKI_VAULT_ROLE, or `role` in the --vault-config file",
        "secret_id" => "set PKI_VAULT_SECRET_ID_FILE or PKI_VAULT_SECRET_ID",
        "role_id" => "set PKI_VAULT_ROLE_ID_FILE or PKI_VAULT_ROLE_ID",
        "max_retries" => "VAULT_MAX_RETRIES takes a number from 0 to 20",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_get_the_flag_that_fixes_them() {
        let e = anyhow::Error::new(pki::Error::VaultConfig {
            setting: "address",
            problem: "no server address is configured".into(),
        });
        assert!(hint(&e).is_some_and(|h| h.contains("VAULT_ADDR")));
        let e = anyhow::Error::new(pki_deploy::Error::Pki(pki::Error::OutputExists {
            path: "x".into(),
        }));
        assert_eq!(hint(&e), Some("use --force to replace it"));
        assert_eq!(hint(&anyhow::anyhow!("other")), None);
    }
}
