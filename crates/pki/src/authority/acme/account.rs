//! The ACME account: created on first use, its credentials (account URL and key) kept in a
//! 0600 file, and read back on every later run.

use instant_acme::{Account, AccountCredentials, ExternalAccountKey, NewAccount};

use super::AcmeSettings;
use super::http::Client;
use crate::error::{Error, Result};
use crate::fsio::{self, FileMode};

/// Largest account file read.
const MAX_ACCOUNT_FILE: u64 = 64 << 10;

/// The account of `settings`: read from its file, or created (terms agreed, contact and EAB as
/// configured) and written there.
pub(crate) async fn load_or_create(settings: &AcmeSettings, http: &Client) -> Result<Account> {
    let file = &settings.account_file;
    let bad = |problem: String| Error::AcmeConfig {
        setting: "account_file",
        problem: format!("{}: {problem}", file.display()),
    };
    // Anything at the path, a link included, is read as the account (and a link refused).
    if std::fs::symlink_metadata(file).is_ok() {
        let (bytes, _) = fsio::read_private(file, MAX_ACCOUNT_FILE)?;
        // The credentials name their server: an account of another directory (staging kept
        // after a switch to production) would order from there. Refused, not followed.
        let stored: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| bad(format!("not an account this tool wrote: {e}")))?;
        if let Some(url) = stored.get("directory").and_then(serde_json::Value::as_str)
            && url != settings.directory
        {
            return Err(bad(format!(
                "the account there is on {url}, not on {}: give each directory its own \
                 account_file, or move the file away to create an account",
                settings.directory
            )));
        }
        let credentials: AccountCredentials = serde_json::from_value(stored)
            .map_err(|e| bad(format!("not an account this tool wrote: {e}")))?;
        return Account::builder_with_http(Box::new(http.clone()))
            .from_credentials(credentials)
            .await
            .map_err(|e| settings.failed("account", &e));
    }
    if !settings.terms_agreed {
        return Err(Error::AcmeConfig {
            setting: "terms_agreed",
            problem: "creating the account means agreeing to the ACME server's terms of \
                      service: set terms_agreed = true once you have read them"
                .to_owned(),
        });
    }
    let eab = match &settings.eab {
        Some((kid, hmac_file)) => {
            let secret = fsio::read_secret_file(hmac_file)?;
            let key = base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                secret.expose().trim().trim_end_matches('='),
            )
            .map_err(|_| Error::AcmeConfig {
                setting: "eab_hmac_file",
                problem: format!("{}: not a base64url HMAC key", hmac_file.display()),
            })?;
            Some(ExternalAccountKey::new(kid.clone(), &key))
        }
        None => None,
    };
    let contact: Vec<&str> = settings.contact.iter().map(String::as_str).collect();
    let new = NewAccount {
        contact: &contact,
        terms_of_service_agreed: true,
        only_return_existing: false,
    };
    let (account, credentials) = Account::builder_with_http(Box::new(http.clone()))
        .create(&new, settings.directory.clone(), eab.as_ref())
        .await
        .map_err(|e| settings.failed("account", &e))?;
    let json = zeroize::Zeroizing::new(
        serde_json::to_vec(&credentials).map_err(|e| bad(format!("cannot encode: {e}")))?,
    );
    if let Some(dir) = file.parent()
        && !dir.as_os_str().is_empty()
        && !dir.is_dir()
    {
        fsio::create_dir(dir, 0o700)?;
    }
    fsio::write_atomic(file, &json, FileMode::PRIVATE)?;
    Ok(account)
}
