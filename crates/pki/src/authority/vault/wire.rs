//! Vault's JSON as it really arrives (observed on OpenBao 2.7.2): the response envelope,
//! `warnings` as `null` or an array, `errors` possibly empty or go-multierror formatted,
//! `ca_chain` as an array or one concatenated PEM string.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::secret::SecretString;

/// The success envelope; `data` is decoded by the caller into the endpoint's own type.
#[derive(Deserialize)]
pub(crate) struct Envelope<T> {
    #[serde(default = "none")]
    pub data: Option<T>,
    #[serde(default, deserialize_with = "null_or_strings")]
    pub warnings: Vec<String>,
    #[serde(default = "none")]
    pub auth: Option<AuthBlock>,
}

fn none<T>() -> Option<T> {
    None
}

/// The `auth` block of a login or token renewal.
#[derive(Deserialize)]
pub(crate) struct AuthBlock {
    pub client_token: SecretString,
    #[serde(default)]
    pub lease_duration: u64,
    #[serde(default)]
    pub renewable: bool,
}

/// `data` of `auth/token/lookup-self`.
#[derive(Deserialize)]
pub(crate) struct TokenLookup {
    #[serde(default)]
    pub ttl: u64,
    #[serde(default)]
    pub renewable: bool,
}

/// The error envelope of every status >= 400.
#[derive(Deserialize)]
struct ErrorEnvelope {
    #[serde(default, deserialize_with = "null_or_strings")]
    errors: Vec<String>,
}

/// `null`, a string, or an array of strings, as a list.
pub(crate) fn null_or_strings<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<Form>::deserialize(d)? {
        None => Vec::new(),
        Some(Form::One(s)) if s.is_empty() => Vec::new(),
        Some(Form::One(s)) => vec![s],
        Some(Form::Many(v)) => v,
    })
}

/// `ca_chain`: an array of PEM strings (issue/sign, issuer JSON) or one string of PEMs joined by
/// newlines (`cert/ca_chain`, other servers). Either way, the PEM text.
pub(crate) fn pem_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(null_or_strings(d)?.join("\n"))
}

/// Vault's error messages from an error body, cleaned of go-multierror framing
/// (`"1 error occurred:\n\t* unsupported path\n\n"` becomes `"unsupported path"`). A body that is
/// not Vault's JSON contributes its first line of text, shortened.
pub(crate) fn error_messages(body: &[u8]) -> Vec<String> {
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(env) => env
            .errors
            .iter()
            .flat_map(|e| clean_multierror(e))
            .collect(),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let line = text.lines().map(str::trim).find(|l| !l.is_empty());
            line.map(|l| vec![shorten(l, 200)]).unwrap_or_default()
        }
    }
}

fn clean_multierror(message: &str) -> Vec<String> {
    let trimmed = message.trim();
    let is_multi = trimmed
        .lines()
        .next()
        .is_some_and(|l| l.ends_with("occurred:") && l.contains("error"));
    if !is_multi {
        return vec![trimmed.to_owned()];
    }
    trimmed
        .lines()
        .skip(1)
        .filter_map(|l| l.trim().strip_prefix("* ").map(|m| m.trim().to_owned()))
        .filter(|m| !m.is_empty())
        .collect()
}

/// At most `max` characters of `text`, with an ellipsis when cut.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max).collect();
    out.push('…');
    out
}

/// Decodes a success body; the error text names what is wrong without quoting the body (which
/// may hold secrets).
pub(crate) fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<Envelope<T>, String> {
    if body.is_empty() {
        return Err("empty response body where JSON was expected".to_owned());
    }
    serde_json::from_slice::<Envelope<T>>(body).map_err(|e| {
        if e.is_eof() {
            format!("truncated JSON response ({e})")
        } else if e.is_syntax() {
            format!("response is not JSON ({e})")
        } else {
            format!("unexpected JSON response ({e})")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Chain {
        #[serde(default, deserialize_with = "pem_list")]
        ca_chain: String,
    }

    #[test]
    fn warnings_null_absent_or_array() {
        let e: Envelope<serde_json::Value> =
            decode(br#"{"data":{"a":1},"warnings":null}"#).unwrap();
        assert!(e.warnings.is_empty() && e.data.is_some());
        let e: Envelope<serde_json::Value> = decode(br#"{"data":null}"#).unwrap();
        assert!(e.warnings.is_empty() && e.data.is_none());
        let e: Envelope<serde_json::Value> =
            decode(br#"{"data":{},"warnings":["TTL clamped","no AIA"]}"#).unwrap();
        assert_eq!(e.warnings, ["TTL clamped", "no AIA"]);
        let e: Envelope<serde_json::Value> = decode(br#"{"warnings":""}"#).unwrap();
        assert!(e.warnings.is_empty());
    }

    #[test]
    fn ca_chain_string_or_array() {
        let a: Chain = serde_json::from_str(r#"{"ca_chain":["A","B"]}"#).unwrap();
        assert_eq!(a.ca_chain, "A\nB");
        let s: Chain = serde_json::from_str(r#"{"ca_chain":"A\nB"}"#).unwrap();
        assert_eq!(s.ca_chain, "A\nB");
        let n: Chain = serde_json::from_str(r#"{}"#).unwrap();
        assert!(n.ca_chain.is_empty());
    }

    #[test]
    fn errors_are_cleaned() {
        assert_eq!(
            error_messages(br#"{"errors":["1 error occurred:\n\t* unsupported path\n\n"]}"#),
            ["unsupported path"]
        );
        assert_eq!(error_messages(br#"{"errors":[]}"#), Vec::<String>::new());
        assert_eq!(
            error_messages(br#"{"errors":["Vault is sealed"]}"#),
            ["Vault is sealed"]
        );
        assert_eq!(
            error_messages(b"<html>\n<body>Bad Gateway</body>"),
            ["<html>"]
        );
        assert!(error_messages(b"").is_empty());
    }

    #[test]
    fn garbage_and_truncation_are_named() {
        let e = decode::<serde_json::Value>(b"{\"data\":{\"certif")
            .err()
            .unwrap();
        assert!(e.contains("truncated"), "{e}");
        let e = decode::<serde_json::Value>(b"<html>oops</html>")
            .err()
            .unwrap();
        assert!(e.contains("not JSON"), "{e}");
        let e = decode::<serde_json::Value>(b"").err().unwrap();
        assert!(e.contains("empty"), "{e}");
    }
}
