//! KV version 2 secrets: read a version, write with check-and-set, read the metadata and
//! versions. Values are held in [`SecretString`]s (wiped on drop, redacted in `Debug`); the
//! request body carrying them is wiped too. Copies inside the HTTP stack are beyond reach, which
//! is why the tool prefers keys that never cross the network at all.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::VaultAuthority;
use super::client::{Call, json_body};
use crate::error::{Error, Result};
use crate::secret::SecretString;

/// A secret read from KV v2: its fields and which version they are.
#[derive(Debug)]
#[non_exhaustive]
pub struct KvSecret {
    /// Field name to value. Non-string JSON values are kept as their JSON text.
    pub data: BTreeMap<String, SecretString>,
    /// The version read.
    pub version: u64,
    /// When that version was written (RFC 3339, as Vault gives it).
    pub created_time: String,
}

/// What a write created.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KvWritten {
    /// The new version number.
    pub version: u64,
    /// When it was written.
    #[serde(default)]
    pub created_time: String,
}

/// One version in a secret's metadata.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KvVersion {
    /// When it was written.
    #[serde(default)]
    pub created_time: String,
    /// When it was soft-deleted ("" if not).
    #[serde(default)]
    pub deletion_time: String,
    /// Whether its data was destroyed for good.
    #[serde(default)]
    pub destroyed: bool,
}

/// A secret's metadata: no values, so it may be printed and serialised.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KvMetadata {
    /// The latest version.
    #[serde(default)]
    pub current_version: u64,
    /// The oldest version still kept.
    #[serde(default)]
    pub oldest_version: u64,
    /// Versions kept (0: the mount's default).
    #[serde(default)]
    pub max_versions: u64,
    /// Whether every write must give `cas`.
    #[serde(default)]
    pub cas_required: bool,
    /// When the secret was created.
    #[serde(default)]
    pub created_time: String,
    /// When it was last written.
    #[serde(default)]
    pub updated_time: String,
    /// Operator-defined metadata.
    #[serde(default, deserialize_with = "null_map")]
    pub custom_metadata: BTreeMap<String, String>,
    /// Every version kept, by number.
    #[serde(default)]
    pub versions: BTreeMap<u64, KvVersion>,
}

fn null_map<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<String, String>, D::Error> {
    Ok(Option::<BTreeMap<String, String>>::deserialize(d)?.unwrap_or_default())
}

/// A KV field value: a string is taken as it is, anything else as its JSON text.
struct KvValue(SecretString);

impl<'de> Deserialize<'de> for KvValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KvValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<KvValue, E> {
                Ok(KvValue(SecretString::new(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<KvValue, E> {
                Ok(KvValue(SecretString::new(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<KvValue, E> {
                Ok(KvValue(SecretString::new(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<KvValue, E> {
                Ok(KvValue(SecretString::new(v.to_string())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<KvValue, E> {
                Ok(KvValue(SecretString::new(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<KvValue, E> {
                Ok(KvValue(SecretString::new(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> std::result::Result<KvValue, E> {
                Ok(KvValue(SecretString::new("null".to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                seq: A,
            ) -> std::result::Result<KvValue, A::Error> {
                let v = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(KvValue(SecretString::new(v.to_string())))
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<KvValue, A::Error> {
                let v = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(KvValue(SecretString::new(v.to_string())))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
pub(super) struct ReadData {
    #[serde(default)]
    data: Option<BTreeMap<String, KvValue>>,
    #[serde(default)]
    metadata: Option<KvWritten>,
}

/// Checks a secret path: segments of letters, digits and `-_.@+=,~`, separated by `/`.
pub fn check_secret_path(path: &str) -> Result<()> {
    let bad = |expected: &'static str| Error::InvalidArgument {
        what: "secret path",
        value: path.chars().take(100).collect(),
        expected,
    };
    if path.is_empty() || path.len() > 512 {
        return Err(bad("1 to 512 characters, e.g. apps/billing/db"));
    }
    for seg in path.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(bad(
                "segments separated by single `/`, none empty, `.` or `..`",
            ));
        }
        if !seg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@+=,~".contains(&b))
        {
            return Err(bad("letters, digits and - _ . @ + = , ~ between the `/`"));
        }
    }
    Ok(())
}

/// A field name to write: non-empty, no control characters.
fn check_field(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(Error::InvalidArgument {
            what: "secret field name",
            value: name.escape_debug().to_string(),
            expected: "1 to 256 printable characters",
        });
    }
    Ok(())
}

impl VaultAuthority {
    /// Reads the latest (or the given) version of the secret at `path` in the KV v2 mount.
    pub async fn kv_get(&self, path: &str, version: Option<u64>) -> Result<KvSecret> {
        check_secret_path(path)?;
        let api = match version {
            Some(v) => format!("{}/data/{path}?version={v}", self.kv_mount()),
            None => format!("{}/data/{path}", self.kv_mount()),
        };
        let env = self.client().call::<ReadData>(Call::get(&api)).await?;
        let data = env.data.ok_or_else(|| {
            self.client()
                .bad_response(&api, "the answer has no data".to_owned())
        })?;
        let meta = data.metadata.unwrap_or(KvWritten {
            version: version.unwrap_or(0),
            created_time: String::new(),
        });
        let fields = data.data.ok_or_else(|| {
            self.client().bad_response(
                &api,
                format!("version {} was deleted or destroyed", meta.version),
            )
        })?;
        Ok(KvSecret {
            data: fields.into_iter().map(|(k, v)| (k, v.0)).collect(),
            version: meta.version,
            created_time: meta.created_time,
        })
    }

    /// Writes a new version of the secret at `path` with `fields`. With `cas`, Vault writes only
    /// if the current version is `cas` (0: only if the secret does not exist yet).
    pub async fn kv_put(
        &self,
        path: &str,
        fields: &[(String, SecretString)],
        cas: Option<u64>,
    ) -> Result<KvWritten> {
        check_secret_path(path)?;
        if fields.is_empty() {
            return Err(Error::InvalidRequest("a secret needs at least one field"));
        }
        let mut data = BTreeMap::new();
        for (k, v) in fields {
            check_field(k)?;
            if data.insert(k.as_str(), v.expose()).is_some() {
                return Err(Error::InvalidArgument {
                    what: "secret field name",
                    value: k.clone(),
                    expected: "each field once",
                });
            }
        }
        #[derive(Serialize)]
        struct Options {
            cas: u64,
        }
        #[derive(Serialize)]
        struct Put<'a> {
            data: BTreeMap<&'a str, &'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            options: Option<Options>,
        }
        let body = json_body(&Put {
            data,
            options: cas.map(|cas| Options { cas }),
        })?;
        let api = format!("{}/data/{path}", self.kv_mount());
        let env = self
            .client()
            .call::<KvWritten>(Call::post(&api, &body))
            .await?;
        env.data.ok_or_else(|| {
            self.client()
                .bad_response(&api, "the answer has no version".to_owned())
        })
    }

    /// The metadata and version history of the secret at `path`.
    pub async fn kv_metadata(&self, path: &str) -> Result<KvMetadata> {
        check_secret_path(path)?;
        let api = format!("{}/metadata/{path}", self.kv_mount());
        let env = self.client().call::<KvMetadata>(Call::get(&api)).await?;
        env.data.ok_or_else(|| {
            self.client()
                .bad_response(&api, "the answer has no data".to_owned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_of_any_json_type() {
        let d: ReadData = serde_json::from_str(
            r#"{"data":{"s":"pw","n":5,"b":true,"o":{"x":[1]},"z":null},
                "metadata":{"version":3,"created_time":"t"}}"#,
        )
        .unwrap();
        let data = d.data.unwrap();
        assert_eq!(data["s"].0.expose(), "pw");
        assert_eq!(data["n"].0.expose(), "5");
        assert_eq!(data["b"].0.expose(), "true");
        assert_eq!(data["o"].0.expose(), r#"{"x":[1]}"#);
        assert_eq!(data["z"].0.expose(), "null");
        assert_eq!(d.metadata.unwrap().version, 3);
        let deleted: ReadData =
            serde_json::from_str(r#"{"data":null,"metadata":{"version":2}}"#).unwrap();
        assert!(deleted.data.is_none());
    }

    #[test]
    fn secret_paths() {
        for ok in ["db", "apps/billing/db", "a.b-c_d@e"] {
            check_secret_path(ok).unwrap();
        }
        for bad in [
            "",
            "/db",
            "db/",
            "a//b",
            "../x",
            "a/../b",
            "a?version=1",
            "a b",
            "a#b",
        ] {
            assert!(check_secret_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let s = KvSecret {
            data: [("password".to_owned(), SecretString::new("hunter2".into()))].into(),
            version: 1,
            created_time: String::new(),
        };
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
