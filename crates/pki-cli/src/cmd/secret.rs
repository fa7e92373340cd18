//! `pki secret get | put | metadata`: KV v2 secrets on Vault / OpenBao.
//!
//! Values never come from argv unless the operator writes `KEY=VALUE` (which puts the value in
//! the process list: prefer `KEY=@FILE` or `KEY=-`, the standard input); read values are written atomically with mode 0600 by
//! `--out`, and every copy we hold is wiped after use.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use pki::SecretString;
use pki::fsio::{self, FileMode};
use zeroize::Zeroizing;

use super::backend::vault_settings;
use crate::UsageError;
use crate::output::{self, Format};

/// KV v2 subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum SecretCommand {
    /// Read a secret: every field as JSON, or one field's value with --field.
    #[command(after_help = GET_EXAMPLES)]
    Get(GetArgs),
    /// Write a new version of a secret from KEY=VALUE or KEY=@FILE arguments.
    #[command(after_help = PUT_EXAMPLES)]
    Put(PutArgs),
    /// Show a secret's metadata and version history (no values).
    Metadata(MetadataArgs),
}

/// Where the KV engine is.
#[derive(Debug, Args, Clone)]
pub(crate) struct KvOpts {
    /// KV v2 mount [default: secret].
    #[arg(long, env = "PKI_VAULT_KV_MOUNT", value_name = "MOUNT")]
    pub kv_mount: Option<String>,
    /// TOML file of Vault settings; the environment fills what it leaves out.
    #[arg(long, env = "PKI_VAULT_CONFIG", value_name = "FILE")]
    pub vault_config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// Secret path inside the mount, e.g. apps/billing/db.
    pub path: String,
    /// Only this field's value (raw, no JSON).
    #[arg(long, value_name = "FIELD")]
    pub field: Option<String>,
    /// Write to FILE (atomically, mode 0600) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Read this version instead of the latest.
    #[arg(long, value_name = "N")]
    pub version: Option<u64>,
    #[command(flatten)]
    pub kv: KvOpts,
}

#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    /// Secret path inside the mount.
    pub path: String,
    /// Fields: KEY=@FILE reads the value from FILE, KEY=- from the standard input (one field
    /// at most); KEY=VALUE takes it from the command line, where every user of the machine can
    /// see it in the process list.
    #[arg(required = true, value_name = "KEY=VALUE|KEY=@FILE|KEY=-")]
    pub fields: Vec<String>,
    /// Check-and-set: write only if the current version is N (0: only if absent).
    #[arg(long, value_name = "N")]
    pub cas: Option<u64>,
    #[command(flatten)]
    pub kv: KvOpts,
}

#[derive(Debug, Args)]
pub(crate) struct MetadataArgs {
    /// Secret path inside the mount.
    pub path: String,
    #[command(flatten)]
    pub kv: KvOpts,
}

const GET_EXAMPLES: &str = "EXAMPLES:
  pki secret get apps/billing/db --field password --out /etc/billing/db.pass
  pki secret get apps/billing/db --version 2";

const PUT_EXAMPLES: &str = "EXAMPLES:
  pki secret put apps/billing/db user=billing password=@/root/db.pass
  pki secret put apps/billing/db password=@/root/new.pass --cas 3
  generate-password | pki secret put apps/billing/db password=-";

async fn connect(kv: &KvOpts) -> Result<pki::authority::vault::VaultAuthority> {
    let mut settings = vault_settings(kv.vault_config.as_deref())?;
    if let Some(m) = &kv.kv_mount {
        settings.kv_mount = Some(m.clone());
    }
    Ok(pki::authority::vault::VaultAuthority::connect(&settings).await?)
}

pub(crate) async fn run(command: SecretCommand, format: Format) -> Result<u8> {
    match command {
        SecretCommand::Get(a) => get(a, format).await,
        SecretCommand::Put(a) => put(a, format).await,
        SecretCommand::Metadata(a) => metadata(a, format).await,
    }
}

async fn get(a: GetArgs, format: Format) -> Result<u8> {
    pki::authority::vault::kv::check_secret_path(&a.path)?;
    let vault = connect(&a.kv).await?;
    let secret = vault.kv_get(&a.path, a.version).await?;
    // The bytes to write, in a buffer wiped on drop.
    let content: Zeroizing<Vec<u8>> = match &a.field {
        Some(field) => {
            let value = secret.data.get(field).ok_or_else(|| {
                anyhow::anyhow!(
                    "secret {} (version {}) has no field {field:?}; it has: {}",
                    a.path,
                    secret.version,
                    secret.data.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            })?;
            Zeroizing::new(value.expose().as_bytes().to_vec())
        }
        None => {
            let map: std::collections::BTreeMap<&str, &str> = secret
                .data
                .iter()
                .map(|(k, v)| (k.as_str(), v.expose()))
                .collect();
            let mut buf = Zeroizing::new(Vec::new());
            serde_json::to_writer_pretty(&mut *buf, &map)?;
            buf.push(b'\n');
            buf
        }
    };
    match &a.out {
        Some(path) => {
            fsio::write_atomic(path, &content, FileMode::PRIVATE)?;
            if format.is_json() {
                output::print_json(&serde_json::json!({
                    "path": a.path, "version": secret.version, "file": path,
                }))?;
            } else {
                println!(
                    "Wrote {} (version {}) to {} (mode 0600)",
                    a.field
                        .as_deref()
                        .map_or(a.path.clone(), |f| format!("{}#{f}", a.path)),
                    secret.version,
                    path.display()
                );
            }
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(&content)?;
            if a.field.is_some() && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                out.write_all(b"\n")?;
            }
            out.flush()?;
        }
    }
    Ok(0)
}

/// The most a value read from the standard input may hold.
const MAX_STDIN_VALUE: u64 = 64 * 1024;

/// The standard input, which one field at most takes its value from (`KEY=-`).
#[derive(Default)]
struct Stdin {
    taken: bool,
}

impl Stdin {
    fn value(&mut self, key: &str, input: &mut dyn Read) -> Result<SecretString> {
        if std::mem::replace(&mut self.taken, true) {
            return Err(UsageError(
                "only one field can take its value from the standard input (KEY=-)".to_owned(),
            )
            .into());
        }
        let mut bytes = Zeroizing::new(Vec::new());
        input
            .take(MAX_STDIN_VALUE + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read the value of {key} from the standard input"))?;
        if bytes.len() as u64 > MAX_STDIN_VALUE {
            anyhow::bail!("the value of {key} on the standard input is over 64 KiB");
        }
        let mut text = String::from_utf8(std::mem::take(&mut *bytes)).map_err(|e| {
            // The bytes are a secret too: wiped as they are dropped.
            drop(Zeroizing::new(e.into_bytes()));
            anyhow::anyhow!("the value of {key} on the standard input is not UTF-8 text")
        })?;
        if text.ends_with('\n') {
            text.pop();
        }
        Ok(SecretString::new(text))
    }
}

/// Splits `KEY=VALUE` / `KEY=@FILE` / `KEY=-`; a file value is read whole (one trailing
/// newline dropped, as editors add one), as is the standard input.
fn field_with(
    arg: &str,
    stdin: &mut Stdin,
    input: &mut dyn Read,
) -> Result<(String, SecretString)> {
    let Some((key, value)) = arg.split_once('=') else {
        // Not echoed: the argument may be a value typed without its key.
        return Err(UsageError(
            "a field must be KEY=VALUE or KEY=@FILE (an argument has no `=`)".to_owned(),
        )
        .into());
    };
    if key.is_empty() {
        return Err(UsageError("a field has an empty name before `=`".to_owned()).into());
    }
    let value = match value.strip_prefix('@') {
        // A secret file others can read is refused, as every secret file is.
        Some(file) => fsio::read_secret_file(std::path::Path::new(file))
            .with_context(|| format!("cannot read the value of {key}"))?,
        None if value == "-" => stdin.value(key, input)?,
        None => SecretString::new(value.to_owned()),
    };
    Ok((key.to_owned(), value))
}

async fn put(a: PutArgs, format: Format) -> Result<u8> {
    pki::authority::vault::kv::check_secret_path(&a.path)?;
    let mut stdin = Stdin::default();
    let fields = a
        .fields
        .iter()
        .map(|f| field_with(f, &mut stdin, &mut std::io::stdin().lock()))
        .collect::<Result<Vec<_>>>()?;
    let vault = connect(&a.kv).await?;
    let written = vault.kv_put(&a.path, &fields, a.cas).await?;
    if format.is_json() {
        output::print_json(&serde_json::json!({
            "path": a.path, "version": written.version, "created_time": written.created_time,
        }))?;
    } else {
        println!(
            "Wrote {} field(s) to {} (version {})",
            fields.len(),
            a.path,
            written.version
        );
    }
    Ok(0)
}

async fn metadata(a: MetadataArgs, format: Format) -> Result<u8> {
    pki::authority::vault::kv::check_secret_path(&a.path)?;
    let vault = connect(&a.kv).await?;
    let meta = vault.kv_metadata(&a.path).await?;
    if format.is_json() {
        output::print_json(&meta)?;
        return Ok(0);
    }
    println!(
        "{}: current version {}, oldest {}, max versions {}, cas required {}",
        a.path, meta.current_version, meta.oldest_version, meta.max_versions, meta.cas_required
    );
    println!(
        "  created {}  updated {}",
        meta.created_time, meta.updated_time
    );
    for (n, v) in meta.versions.iter().rev() {
        let state = if v.destroyed {
            "destroyed".to_owned()
        } else if !v.deletion_time.is_empty() {
            format!("deleted {}", v.deletion_time)
        } else {
            "live".to_owned()
        };
        println!("  version {n:<4} {}  {state}", v.created_time);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(arg: &str) -> Result<(String, SecretString)> {
        field_with(arg, &mut Stdin::default(), &mut std::io::empty())
    }

    #[test]
    fn fields_parse() {
        let (k, v) = field("user=billing").unwrap();
        assert_eq!((k.as_str(), v.expose()), ("user", "billing"));
        let (k, v) = field("expr=a=b").unwrap();
        assert_eq!((k.as_str(), v.expose()), ("expr", "a=b"));
        assert!(field("novalue").is_err());
        assert!(field("=x").is_err());
        let err = field("pw=@/nonexistent/file").unwrap_err();
        assert!(format!("{err:#}").contains("pw"));
    }

    #[test]
    fn one_field_takes_its_value_from_the_standard_input() {
        let mut stdin = Stdin::default();
        let mut input = &b"from-stdin\n"[..];
        let (k, v) = field_with("pw=-", &mut stdin, &mut input).unwrap();
        assert_eq!((k.as_str(), v.expose()), ("pw", "from-stdin"));
        let e = field_with("other=-", &mut stdin, &mut &b""[..]).unwrap_err();
        assert!(e.to_string().contains("only one field"), "{e}");
        let big = vec![b'a'; 70 * 1024];
        let e = field_with("pw=-", &mut Stdin::default(), &mut &big[..]).unwrap_err();
        assert!(e.to_string().contains("64 KiB"), "{e}");
        let e = field_with("pw=-", &mut Stdin::default(), &mut &b"\xff\xfe"[..]).unwrap_err();
        assert!(e.to_string().contains("UTF-8"), "{e}");
    }
}
