//! Names in certificates: DNS names, IP addresses, URIs and e-mail addresses, how they are
//! validated and normalised, whether they fall inside permitted domains, and how a name becomes
//! a safe file name.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Longest common name X.520 allows (`ub-common-name`).
pub const MAX_COMMON_NAME: usize = 64;
const MAX_DNS_NAME: usize = 253;
const MAX_LABEL: usize = 63;
const MAX_URI: usize = 2048;

/// One subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SubjectName {
    /// A DNS name, lower-case, possibly with a leading `*.` wildcard label.
    Dns(String),
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
    /// A URI such as `spiffe://example.internal/api`.
    Uri(String),
    /// An RFC 822 e-mail address.
    Email(String),
}

impl SubjectName {
    /// Parses a name given on a command line or in a config. A `dns:`, `ip:`, `uri:` or `email:`
    /// prefix forces the kind; otherwise an address is an IP, a value with `://` is a URI, a value
    /// with `@` is an e-mail address and anything else must be a DNS name.
    pub fn parse(input: &str) -> Result<Self> {
        let lower = input.to_ascii_lowercase();
        for (prefix, kind) in [
            ("dns:", Kind::Dns),
            ("ip:", Kind::Ip),
            ("uri:", Kind::Uri),
            ("email:", Kind::Email),
        ] {
            if lower.starts_with(prefix) {
                return Self::parse_as(&input[prefix.len()..], kind);
            }
        }
        let kind = if input.parse::<IpAddr>().is_ok() {
            Kind::Ip
        } else if input.contains("://") {
            Kind::Uri
        } else if input.contains('@') {
            Kind::Email
        } else {
            Kind::Dns
        };
        Self::parse_as(input, kind)
    }

    fn parse_as(value: &str, kind: Kind) -> Result<Self> {
        match kind {
            Kind::Dns => dns_name(value).map(Self::Dns),
            Kind::Ip => value
                .parse::<IpAddr>()
                .map(Self::Ip)
                .map_err(|_| invalid(value, "not an IPv4 or IPv6 address")),
            Kind::Uri => uri(value).map(Self::Uri),
            Kind::Email => email(value).map(Self::Email),
        }
    }

    /// The kind as a short word: `dns`, `ip`, `uri` or `email`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Dns(_) => "dns",
            Self::Ip(_) => "ip",
            Self::Uri(_) => "uri",
            Self::Email(_) => "email",
        }
    }

    /// The value without its kind.
    pub fn value(&self) -> String {
        match self {
            Self::Dns(s) | Self::Uri(s) | Self::Email(s) => s.clone(),
            Self::Ip(ip) => ip.to_string(),
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Dns,
    Ip,
    Uri,
    Email,
}

impl fmt::Display for SubjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.value())
    }
}

impl FromStr for SubjectName {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}

impl Serialize for SubjectName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for SubjectName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn invalid(name: &str, reason: &'static str) -> Error {
    Error::InvalidName {
        name: printable(name),
        reason,
    }
}

/// Escapes control characters so that a hostile name cannot forge lines in our output.
fn printable(s: &str) -> String {
    s.chars().flat_map(char::escape_debug).take(300).collect()
}

/// Validates and lower-cases a DNS name (LDH labels, at most one leading `*` wildcard label).
pub fn dns_name(input: &str) -> Result<String> {
    if input.is_empty() {
        return Err(invalid(input, "empty DNS name"));
    }
    if input.len() > MAX_DNS_NAME {
        return Err(invalid(input, "DNS name longer than 253 characters"));
    }
    if input.ends_with('.') {
        return Err(invalid(input, "DNS name with a trailing dot"));
    }
    let name = input.to_ascii_lowercase();
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'*'))
    {
        return Err(invalid(
            input,
            "DNS names may hold only letters, digits, '-', '.' and a leading '*' (use punycode for IDNs)",
        ));
    }
    for (i, label) in name.split('.').enumerate() {
        if label == "*" {
            if i != 0 {
                return Err(invalid(
                    input,
                    "a wildcard is allowed only as the leftmost label",
                ));
            }
            if !name.contains('.') || name.matches('.').count() < 2 {
                return Err(invalid(
                    input,
                    "a wildcard needs at least two labels after it",
                ));
            }
            continue;
        }
        if label.is_empty() {
            return Err(invalid(input, "empty label in DNS name"));
        }
        if label.len() > MAX_LABEL {
            return Err(invalid(input, "DNS label longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(invalid(
                input,
                "'*' is allowed only as a whole leftmost label",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(invalid(input, "a DNS label may not start or end with '-'"));
        }
    }
    Ok(name)
}

fn uri(input: &str) -> Result<String> {
    if input.len() > MAX_URI {
        return Err(invalid(input, "URI longer than 2048 characters"));
    }
    let Some((scheme, rest)) = input.split_once(':') else {
        return Err(invalid(input, "URI without a scheme"));
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok || rest.is_empty() {
        return Err(invalid(input, "not a URI (scheme:rest)"));
    }
    if !input.chars().all(|c| c.is_ascii_graphic()) {
        return Err(invalid(
            input,
            "URI with spaces, control or non-ASCII characters",
        ));
    }
    Ok(input.to_owned())
}

fn email(input: &str) -> Result<String> {
    let Some((local, domain)) = input.rsplit_once('@') else {
        return Err(invalid(input, "e-mail address without '@'"));
    };
    if local.is_empty() || local.len() > 64 {
        return Err(invalid(input, "e-mail local part empty or longer than 64"));
    }
    if !local.chars().all(|c| {
        c.is_ascii_graphic()
            && !matches!(
                c,
                '@' | '"' | '\\' | '(' | ')' | ',' | ';' | ':' | '<' | '>' | '[' | ']'
            )
    }) {
        return Err(invalid(
            input,
            "e-mail local part with characters outside the dot-atom form",
        ));
    }
    let domain =
        dns_name(domain).map_err(|_| invalid(input, "e-mail domain is not a valid DNS name"))?;
    if domain.starts_with('*') {
        return Err(invalid(input, "wildcard in an e-mail domain"));
    }
    Ok(format!("{local}@{domain}"))
}

/// Validates a common name: 1 to 64 characters, no control characters and no path separators
/// (names end up in file names, logs and metric labels).
pub fn common_name(input: &str) -> Result<String> {
    if input.trim().is_empty() {
        return Err(invalid(input, "empty common name"));
    }
    if input.chars().count() > MAX_COMMON_NAME {
        return Err(invalid(input, "common name longer than 64 characters"));
    }
    if input.chars().any(|c| c.is_control()) {
        return Err(invalid(input, "control character in common name"));
    }
    if input.contains(['/', '\\']) || input.split('.').any(|part| part == "..") {
        return Err(invalid(input, "path separator or '..' in common name"));
    }
    Ok(input.to_owned())
}

/// Whether `name` (a DNS name, possibly a wildcard) lies in `domain` or below it.
pub fn dns_within(name: &str, domain: &str) -> bool {
    let domain = domain.trim_start_matches('.');
    if domain.is_empty() {
        return false;
    }
    let name = name.strip_prefix("*.").unwrap_or(name);
    name == domain
        || (name.len() > domain.len()
            && name.ends_with(domain)
            && name.as_bytes()[name.len() - domain.len() - 1] == b'.')
}

/// Checks a name against permitted DNS domains (empty = everything allowed). IP addresses, URIs
/// and e-mail addresses are outside DNS name constraints and pass; an e-mail's domain is checked.
pub fn check_permitted(name: &SubjectName, permitted: &[String]) -> Result<()> {
    if permitted.is_empty() {
        return Ok(());
    }
    let dns = match name {
        SubjectName::Dns(d) => d.as_str(),
        SubjectName::Email(e) => e.rsplit_once('@').map_or("", |(_, d)| d),
        SubjectName::Ip(_) | SubjectName::Uri(_) => return Ok(()),
    };
    if permitted.iter().any(|p| dns_within(dns, p)) {
        Ok(())
    } else {
        Err(Error::NameNotPermitted {
            name: name.to_string(),
            permitted: permitted.to_vec(),
        })
    }
}

/// Validates a name used as a directory or file name (certificate names in a rotation config,
/// store entries): `[a-z0-9._-]`, 1 to 100 characters, not starting with `.` or `-`.
pub fn file_component(input: &str) -> Result<&str> {
    if input.is_empty() || input.len() > 100 {
        return Err(invalid(input, "must be 1 to 100 characters"));
    }
    if input.starts_with(['.', '-']) {
        return Err(invalid(input, "may not start with '.' or '-'"));
    }
    if !input
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(invalid(
            input,
            "may hold only lower-case letters, digits, '.', '_' and '-'",
        ));
    }
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infers_kinds() {
        assert_eq!(
            SubjectName::parse("API.Example.Internal").unwrap(),
            SubjectName::Dns("api.example.internal".into())
        );
        assert!(matches!(
            SubjectName::parse("10.0.0.1").unwrap(),
            SubjectName::Ip(_)
        ));
        assert!(matches!(
            SubjectName::parse("::1").unwrap(),
            SubjectName::Ip(_)
        ));
        assert!(matches!(
            SubjectName::parse("spiffe://example.internal/x").unwrap(),
            SubjectName::Uri(_)
        ));
        assert!(matches!(
            SubjectName::parse("ops@example.internal").unwrap(),
            SubjectName::Email(_)
        ));
        assert!(matches!(
            SubjectName::parse("uri:urn:example:x").unwrap(),
            SubjectName::Uri(_)
        ));
        assert!(matches!(
            SubjectName::parse("dns:*.svc.example.internal").unwrap(),
            SubjectName::Dns(_)
        ));
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "../etc",
            "a/b",
            "a\0b",
            "",
            "a..b",
            "-a.b",
            "a-.b",
            "*.com",
            "a.*.b",
            "x\\y",
            "héllo.example",
            "a.b.",
            "ip:300.1.1.1",
            "uri:no scheme",
            "email:@x.y",
        ] {
            assert!(
                SubjectName::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        assert!(SubjectName::parse(&"a".repeat(64)).is_err());
        assert!(SubjectName::parse(&format!("{}.x", "a".repeat(63))).is_ok());
    }

    #[test]
    fn common_names() {
        assert!(common_name("Example Internal Root CA").is_ok());
        assert!(common_name("../x").is_err());
        assert!(common_name("a\u{0}b").is_err());
        assert!(common_name("a\nb").is_err());
        assert!(common_name(&"x".repeat(65)).is_err());
    }

    #[test]
    fn permitted_domains() {
        let permitted = vec!["example.internal".to_owned()];
        let ok = |n: &str| check_permitted(&SubjectName::parse(n).unwrap(), &permitted);
        assert!(ok("example.internal").is_ok());
        assert!(ok("db.example.internal").is_ok());
        assert!(ok("*.svc.example.internal").is_ok());
        assert!(ok("10.1.2.3").is_ok());
        assert!(ok("notexample.internal").is_err());
        assert!(ok("example.internal.evil.com").is_err());
        assert!(ok("ops@example.internal").is_ok());
        assert!(ok("ops@evil.com").is_err());
    }

    #[test]
    fn file_components() {
        assert!(file_component("web-1.example_internal").is_ok());
        for bad in [
            "", ".", "..", "../x", "a/b", "a\0", "A", ".hidden", "-x", "a b",
        ] {
            assert!(file_component(bad).is_err(), "{bad:?}");
        }
    }
}
