//! A `[[certificate.target]]` table: the keys every target has (`type`, `owner`, `group`,
//! `key_mode`, `cert_mode`, `command_timeout`, `probe`) are read here; the rest of the table goes
//! to the service `type` names, which reads its own keys.

use std::net::SocketAddr;

use serde::Deserialize;

use super::doc::Table;
use super::{Facts, RawDefaults};
use crate::error::Result;
use crate::probe::{self, ProbeConfig, ProbeProtocol};
use crate::service::{Paths, Service, Settings, TargetConfig};

/// A user or group, by number or by name.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum IdValue {
    Number(u32),
    Name(String),
}

/// A file mode, as a TOML number or an octal string.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum ModeValue {
    Number(u32),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    address: String,
    server_name: Option<String>,
    protocol: Option<String>,
    timeout: Option<String>,
}

/// Reads a target of certificate `cert`.
pub(super) fn read(
    table: Table<'_>,
    cert: &str,
    defaults: &RawDefaults,
    facts: &Facts,
) -> Result<TargetConfig> {
    let line = table.line();
    let mut table = table.rescoped(format!("certificate {cert:?}: target."));
    let kind: String = table
        .take_as("type")?
        .ok_or_else(|| table.error("type", format!("required ({})", Service::TYPES.join(", "))))?;
    let mut table = table.rescoped(format!("certificate {cert:?}: target {kind}: "));
    let mut settings = Settings::default();
    if let Some(v) = table.take_as::<IdValue>("owner")? {
        settings.uid = Some(user(v).map_err(|m| table.error("owner", m))?);
    }
    if let Some(v) = table.take_as::<IdValue>("group")? {
        settings.gid = Some(group(v).map_err(|m| table.error("group", m))?);
    }
    if let Some(v) = table.take_as::<ModeValue>("key_mode")? {
        settings.key_mode = Some(mode(v).map_err(|m| table.error("key_mode", m))?);
    }
    if let Some(v) = table.take_as::<ModeValue>("cert_mode")? {
        settings.cert_mode = mode(v).map_err(|m| table.error("cert_mode", m))?;
    }
    let timeout = table.take_as::<String>("command_timeout")?;
    settings.command_timeout = match timeout {
        Some(t) => pki::duration::parse(&t).map_err(|e| table.error("command_timeout", e))?,
        None => defaults
            .command_timeout
            .unwrap_or(crate::service::DEFAULT_COMMAND_TIMEOUT),
    };
    let raw_probe = table.take_as::<RawProbe>("probe")?;
    let paths = Paths {
        base: table.source().base(),
        certificate: cert,
    };
    let service = Service::parse(&kind, &mut table, &paths).unwrap_or_else(|| {
        let known = Service::TYPES.join(", ");
        Err(table.source().error_at(
            table.line_of("type"),
            format!("certificate {cert:?}: target.type: unknown type {kind:?} ({known})"),
        ))
    })?;
    if let Some(raw) = raw_probe {
        let default = service.ops().probe_protocol();
        settings.probe =
            Some(probe_of(raw, default, defaults).map_err(|m| table.error("probe", m))?);
    }
    let mut target = TargetConfig::with_writer(service, settings, facts.writer)
        .map_err(|e| table.error(e.key, e.problem))?;
    target.line = line;
    Ok(target)
}

fn probe_of(
    raw: RawProbe,
    default: ProbeProtocol,
    defaults: &RawDefaults,
) -> std::result::Result<ProbeConfig, String> {
    let protocol = match raw.protocol.as_deref() {
        Some(name) => ProbeProtocol::parse(name)
            .ok_or_else(|| format!("protocol {name:?} (tls, postgres, mysql)"))?,
        None => default,
    };
    // host:port, with [v6] brackets or a name.
    let ok = raw.address.parse::<SocketAddr>().is_ok()
        || raw
            .address
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
    if !ok {
        return Err(format!("address {:?} is not host:port", raw.address));
    }
    let mut probe = ProbeConfig::new(&raw.address, protocol);
    probe.server_name = raw.server_name;
    probe.timeout = match raw.timeout {
        Some(t) => pki::duration::parse(&t).map_err(|e| e.to_string())?,
        None => defaults.probe_timeout.unwrap_or(probe::DEFAULT_TIMEOUT),
    };
    Ok(probe)
}

/// A mode for certificate and key files: read and write bits only, no one but the owner may
/// write. A TOML number is taken as written (`0o640` is octal, `640` is decimal 640, which is
/// no such mode): write modes as strings such as `"0640"`.
pub(super) fn mode(m: ModeValue) -> std::result::Result<u32, String> {
    let v = match m {
        ModeValue::Number(n) => {
            if n > 0o777 {
                return Err(format!(
                    "{n} is not a file mode (a TOML number is decimal: write \"{n:0>4}\" or 0o{n})"
                ));
            }
            n
        }
        ModeValue::Text(s) => u32::from_str_radix(s.trim_start_matches("0o"), 8)
            .map_err(|_| format!("{s:?} is not an octal mode such as \"0640\""))?,
    };
    if v > 0o777 {
        return Err(format!(
            "{v:04o} is not allowed: set-id and sticky bits have no place on these files"
        ));
    }
    if v & 0o111 != 0 {
        return Err(format!(
            "{v:04o} makes a certificate or key file executable"
        ));
    }
    if v & 0o022 != 0 {
        return Err(format!(
            "{v:04o} lets other users than the owner rewrite the file"
        ));
    }
    Ok(v)
}

pub(super) fn user(v: IdValue) -> std::result::Result<u32, String> {
    match v {
        IdValue::Number(n) => Ok(n),
        IdValue::Name(name) => match nix::unistd::User::from_name(&name) {
            Ok(Some(u)) => Ok(u.uid.as_raw()),
            _ => Err(format!("no user {name:?} on this host")),
        },
    }
}

pub(super) fn group(v: IdValue) -> std::result::Result<u32, String> {
    match v {
        IdValue::Number(n) => Ok(n),
        IdValue::Name(name) => match nix::unistd::Group::from_name(&name) {
            Ok(Some(g)) => Ok(g.gid.as_raw()),
            _ => Err(format!("no group {name:?} on this host")),
        },
    }
}
