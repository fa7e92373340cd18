//! Credentials and the token lifecycle: a token from the environment or a file, or an AppRole
//! login; renew-self when a renewable token nears the end of its lease; one new login after a
//! 403 when AppRole is configured. Tokens and AppRole ids live in [`SecretString`]s and never
//! reach an error message, a log or `Debug`.

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use super::client::{Call, VaultClient, json_body};
use super::settings::{VaultSettings, env};
use super::wire::{self, TokenLookup};
use crate::error::{Error, Result};
use crate::fsio;
use crate::secret::SecretString;

/// Where the client's token comes from.
pub(crate) enum Credentials {
    /// No credentials: only unauthenticated endpoints will work.
    None,
    /// A fixed token.
    Token(Arc<SecretString>),
    /// AppRole: a login now, and again whenever the token is refused.
    AppRole {
        mount: String,
        role_id: SecretString,
        secret_id: SecretString,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "None",
            Self::Token(_) => "Token([redacted])",
            Self::AppRole { .. } => "AppRole([redacted])",
        })
    }
}

/// The token in use and what is known of its lease.
#[derive(Default)]
pub(crate) struct TokenState {
    token: Option<Arc<SecretString>>,
    /// Bumped at every new token, so that concurrent requests refused with the same token
    /// trigger one login, not one each.
    generation: u64,
    renewable: bool,
    lease: StdDuration,
    since: Option<Instant>,
    /// When a refusal last made us log in again.
    relogged: Option<Instant>,
}

fn env_secret(name: &str) -> Option<SecretString> {
    crate::process::env_secret(name)
}

fn secret_file(path: &Path, what: &'static str) -> Result<SecretString> {
    let secret = fsio::read_secret_file(path)?;
    if secret.expose().trim().is_empty() {
        return Err(Error::VaultConfig {
            setting: what,
            problem: format!("{} is empty", path.display()),
        });
    }
    Ok(secret)
}

/// A role_id is an identifier, not a secret on its own: its file may be world-readable, but it
/// is still handled as a secret in memory.
fn role_id_file(path: &Path) -> Result<SecretString> {
    let text = fsio::read_limited(path, 64 * 1024)?;
    let text = String::from_utf8(text).map_err(|_| Error::VaultConfig {
        setting: "role_id_file",
        problem: format!("{} is not UTF-8 text", path.display()),
    })?;
    let secret = SecretString::from_file_content(text);
    if secret.expose().trim().is_empty() {
        return Err(Error::VaultConfig {
            setting: "role_id_file",
            problem: format!("{} is empty", path.display()),
        });
    }
    Ok(secret)
}

impl Credentials {
    /// Resolves the credentials: AppRole when a role_id and a secret_id are both configured,
    /// else a token from `VAULT_TOKEN`/`BAO_TOKEN`, `token_file`, or `~/.vault-token`.
    pub(crate) fn from_settings(settings: &VaultSettings) -> Result<Self> {
        let ambient = settings.secrets_from_env;
        let role_id = match &settings.role_id_file {
            Some(p) => Some(role_id_file(p)?),
            None if ambient => env_secret(env::ROLE_ID),
            None => None,
        };
        let secret_id = match &settings.secret_id_file {
            Some(p) => Some(secret_file(p, "secret_id_file")?),
            None if ambient => env_secret(env::SECRET_ID),
            None => None,
        };
        match (role_id, secret_id) {
            (Some(role_id), Some(secret_id)) => {
                return Ok(Self::AppRole {
                    mount: settings.approle_mount().to_owned(),
                    role_id,
                    secret_id,
                });
            }
            (Some(_), None) => {
                return Err(Error::VaultConfig {
                    setting: "secret_id",
                    problem: "an AppRole role_id is configured but no secret_id".to_owned(),
                });
            }
            (None, Some(_)) => {
                return Err(Error::VaultConfig {
                    setting: "role_id",
                    problem: "an AppRole secret_id is configured but no role_id".to_owned(),
                });
            }
            (None, None) => {}
        }
        if ambient && let Some(t) = env::TOKEN.iter().find_map(|n| env_secret(n)) {
            return Ok(Self::Token(Arc::new(t)));
        }
        if let Some(p) = &settings.token_file {
            return Ok(Self::Token(Arc::new(secret_file(p, "token_file")?)));
        }
        if ambient
            && let Some(home) = std::env::var_os("HOME")
            && Path::new(&home).join(".vault-token").is_file()
        {
            let p = Path::new(&home).join(".vault-token");
            return Ok(Self::Token(Arc::new(secret_file(&p, "~/.vault-token")?)));
        }
        Ok(Self::None)
    }

    /// Whether any credential is configured.
    pub(crate) fn is_some(&self) -> bool {
        !matches!(self, Self::None)
    }
}

impl VaultClient {
    /// The token to send, with its generation; logs in or looks the token up on first use and
    /// renews it when two thirds of a renewable lease have passed.
    pub(super) async fn current_token(&self) -> Result<Option<(Arc<SecretString>, u64)>> {
        if !self.credentials.is_some() {
            return Ok(None);
        }
        let mut state = self.token.lock().await;
        match (&state.token, &self.credentials) {
            (None, Credentials::Token(t)) => {
                state.token = Some(Arc::clone(t));
                state.generation += 1;
                self.look_up(&mut state).await?;
            }
            (None, Credentials::AppRole { .. }) => self.log_in(&mut state).await?,
            (Some(_), _) if renewal_due(&state) => self.renew(&mut state).await?,
            _ => {}
        }
        Ok(state
            .token
            .as_ref()
            .map(|t| (Arc::clone(t), state.generation)))
    }

    /// After a 403 with the token of `generation`: logs in again, once for all the requests
    /// that saw that token refused. Returns whether a retry makes sense.
    pub(super) async fn login_again(&self, generation: u64) -> Result<bool> {
        if !matches!(self.credentials, Credentials::AppRole { .. }) {
            return Ok(false);
        }
        let mut state = self.token.lock().await;
        if state.generation != generation {
            // Another request already logged in again after this token was refused.
            return Ok(true);
        }
        // A token that a recent re-login produced and that is refused as well means the policy
        // denies the request: logging in again would only mint token after token.
        if state
            .relogged
            .is_some_and(|at| at.elapsed() < RELOGIN_INTERVAL)
        {
            return Ok(false);
        }
        self.log_in(&mut state).await?;
        state.relogged = Some(Instant::now());
        Ok(true)
    }

    async fn log_in(&self, state: &mut TokenState) -> Result<()> {
        let Credentials::AppRole {
            mount,
            role_id,
            secret_id,
        } = &self.credentials
        else {
            return Ok(());
        };
        #[derive(serde::Serialize)]
        struct Login<'a> {
            role_id: &'a str,
            secret_id: &'a str,
        }
        let body = json_body(&Login {
            role_id: role_id.expose(),
            secret_id: secret_id.expose(),
        })?;
        let path = format!("auth/{mount}/login");
        let call = Call::post(&path, &body).anonymous();
        let reply = self.send(call, None).await?;
        if reply.status >= 400 {
            return Err(match self.status_error(&call, reply.status, &reply.body) {
                sealed @ Error::VaultSealed { .. } => sealed,
                _ => Error::VaultLogin {
                    address: self.address().to_owned(),
                    mount: mount.clone(),
                    status: reply.status,
                    errors: wire::error_messages(&reply.body),
                },
            });
        }
        let env = self.envelope::<serde_json::Value>(&call, &reply)?;
        let auth = env.auth.ok_or_else(|| {
            self.bad_response(&path, "the login answer has no `auth` block".to_owned())
        })?;
        state.token = Some(Arc::new(auth.client_token));
        state.generation += 1;
        state.renewable = auth.renewable;
        state.lease = StdDuration::from_secs(auth.lease_duration);
        state.since = Some(Instant::now());
        Ok(())
    }

    /// Learns whether a fixed token is renewable and for how long. A token that may not look
    /// itself up is used as it is; a sealed or unreachable server is reported now.
    async fn look_up(&self, state: &mut TokenState) -> Result<()> {
        let path = "auth/token/lookup-self";
        let reply = self.send(Call::get(path), state.token.as_deref()).await?;
        if reply.status == 503 {
            return Err(self.status_error(&Call::get(path), reply.status, &reply.body));
        }
        if let Ok(env) = self.envelope::<TokenLookup>(&Call::get(path), &reply)
            && let Some(data) = env.data
        {
            state.renewable = data.renewable && data.ttl > 0;
            state.lease = StdDuration::from_secs(data.ttl);
            state.since = Some(Instant::now());
        }
        Ok(())
    }

    /// Renews the token; if that fails, AppRole logs in afresh and a fixed token is kept as it
    /// is (it may still work until it expires) without trying to renew it again.
    async fn renew(&self, state: &mut TokenState) -> Result<()> {
        let path = "auth/token/renew-self";
        let body = json_body(&serde_json::json!({}))?;
        let call = Call::post(path, &body);
        let reply = self.send(call, state.token.as_deref()).await?;
        let renewed = if reply.status < 400 {
            self.envelope::<serde_json::Value>(&call, &reply)
                .ok()
                .and_then(|e| e.auth)
        } else {
            None
        };
        match renewed {
            Some(auth) => {
                state.renewable = auth.renewable;
                state.lease = StdDuration::from_secs(auth.lease_duration);
                state.since = Some(Instant::now());
                Ok(())
            }
            None if matches!(self.credentials, Credentials::AppRole { .. }) => {
                self.log_in(state).await
            }
            None => {
                state.renewable = false;
                Ok(())
            }
        }
    }
}

/// At most one login after a refusal in this interval (a token revoked or expired mid-run is
/// replaced once; a policy refusal does not mint a token per request).
const RELOGIN_INTERVAL: StdDuration = StdDuration::from_secs(60);

fn renewal_due(state: &TokenState) -> bool {
    state.renewable
        && !state.lease.is_zero()
        && state
            .since
            // Divided first: a huge lease from the server must not overflow.
            .is_some_and(|since| since.elapsed() >= state.lease / 3 * 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credentials::AppRole {
            mount: "approle".into(),
            role_id: SecretString::new("rid-123".into()),
            secret_id: SecretString::new("sid-456".into()),
        };
        let text = format!("{c:?}");
        assert!(
            !text.contains("rid-123") && !text.contains("sid-456"),
            "{text}"
        );
        let t = Credentials::Token(Arc::new(SecretString::new("s.abcdef".into())));
        assert!(!format!("{t:?}").contains("abcdef"));
    }

    #[test]
    fn renewal_after_two_thirds() {
        let mut s = TokenState {
            renewable: true,
            lease: StdDuration::from_secs(3),
            since: Some(Instant::now()),
            ..Default::default()
        };
        assert!(!renewal_due(&s));
        s.since = Instant::now().checked_sub(StdDuration::from_secs(2));
        assert!(renewal_due(&s));
        s.renewable = false;
        assert!(!renewal_due(&s));
    }
}
