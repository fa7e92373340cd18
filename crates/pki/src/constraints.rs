//! A CA's name constraints (RFC 5280 §4.2.1.10) and the issuing policy that keeps to them.
//!
//! Constraints apply per name type: a CA permitted only `example.internal` as DNS names still
//! vouches for any IP address or URI unless those are constrained too. So a CA made with
//! permitted DNS domains also constrains IP addresses: to the permitted CIDR ranges, or, when
//! none are given, to nothing (excluded subtrees `0.0.0.0/0` and `::/0`). URIs have no subtree
//! written: the policy checks a URI's host against the DNS or IP constraints instead, and
//! refuses a URI without a host. Whatever the constraints, the policy refuses a name a relying
//! party would reject, with the reason, rather than sign a certificate no client accepts.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::name::{self, SubjectName};

/// The names a CA may vouch for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Constraints {
    /// Permitted DNS domains (a name is permitted when it is the domain or below it).
    pub permitted_dns: Vec<String>,
    /// Permitted IP ranges.
    pub permitted_ip: Vec<IpNet>,
    /// Excluded IP ranges.
    pub excluded_ip: Vec<IpNet>,
}

/// Both whole address families, as excluded subtrees: no IP address at all.
pub fn all_addresses() -> Vec<IpNet> {
    ["0.0.0.0/0", "::/0"]
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// Parses a CIDR range (`10.0.0.0/8`, `fd00::/8`; a bare address is one host), normalised to
/// its network address.
pub fn cidr(input: &str) -> Result<IpNet> {
    let input = input.trim();
    let net = match input.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => input
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| Error::InvalidArgument {
                what: "IP range",
                value: input.to_owned(),
                expected: "an address or a CIDR range such as 10.0.0.0/8 or fd00::/8",
            })?,
    };
    Ok(net.trunc())
}

impl Constraints {
    /// What a new CA with these permitted DNS domains and IP ranges writes: IPs limited to
    /// the ranges, or excluded altogether when DNS domains are given without any range.
    pub fn for_new_ca(permitted_dns: Vec<String>, permitted_ip: Vec<IpNet>) -> Self {
        let excluded_ip = if !permitted_dns.is_empty() && permitted_ip.is_empty() {
            all_addresses()
        } else {
            Vec::new()
        };
        Self {
            permitted_dns,
            permitted_ip,
            excluded_ip,
        }
    }

    /// Whether nothing is constrained.
    pub fn is_empty(&self) -> bool {
        self.permitted_dns.is_empty() && self.permitted_ip.is_empty() && self.excluded_ip.is_empty()
    }

    /// Whether the CA constrains names at all in a way a URI's host must meet.
    fn constrains_hosts(&self) -> bool {
        !self.is_empty()
    }

    /// Checks one name: a relying party that enforces these constraints must accept it.
    pub fn check(&self, name: &SubjectName) -> Result<()> {
        match name {
            SubjectName::Dns(d) => self.check_dns(name, d),
            SubjectName::Email(e) => {
                let domain = e.rsplit_once('@').map_or("", |(_, d)| d);
                self.check_dns(name, domain)
            }
            SubjectName::Ip(ip) => self.check_ip(name, *ip),
            SubjectName::Uri(u) => {
                if !self.constrains_hosts() {
                    return Ok(());
                }
                match uri_host(u) {
                    Some(Host::Ip(ip)) => self.check_ip(name, ip),
                    Some(Host::Dns(host)) => self.check_dns(name, &host),
                    None => Err(self.refused(name, "a URI without a host cannot be checked")),
                }
            }
        }
    }

    fn check_dns(&self, name: &SubjectName, domain: &str) -> Result<()> {
        if self.permitted_dns.is_empty()
            || self
                .permitted_dns
                .iter()
                .any(|p| name::dns_within(domain, p))
        {
            return Ok(());
        }
        Err(Error::NameNotPermitted {
            name: name.to_string(),
            permitted: self.permitted_dns.clone(),
        })
    }

    fn check_ip(&self, name: &SubjectName, ip: IpAddr) -> Result<()> {
        if let Some(x) = self.excluded_ip.iter().find(|n| n.contains(&ip)) {
            return Err(self.refused(name, &format!("the CA excludes {x}")));
        }
        let family: Vec<&IpNet> = self
            .permitted_ip
            .iter()
            .filter(|n| n.addr().is_ipv4() == ip.is_ipv4())
            .collect();
        // RFC 5280: permitted subtrees of a name type constrain that type; an address family
        // with none permitted is constrained only when the other family has some.
        if (!self.permitted_ip.is_empty() && family.is_empty())
            || (!family.is_empty() && !family.iter().any(|n| n.contains(&ip)))
        {
            let within: Vec<String> = self.permitted_ip.iter().map(ToString::to_string).collect();
            return Err(self.refused(
                name,
                &format!("the CA permits IP addresses only in {}", within.join(", ")),
            ));
        }
        Ok(())
    }

    fn refused(&self, name: &SubjectName, reason: &str) -> Error {
        Error::NameRefused {
            name: name.to_string(),
            reason: reason.to_owned(),
        }
    }
}

enum Host {
    Dns(String),
    Ip(IpAddr),
}

/// The host of a URI (`scheme://host[:port]/...`), lower-cased; `None` for a URI without an
/// authority (`urn:...`) or with an empty host.
fn uri_host(uri: &str) -> Option<Host> {
    let rest = uri.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split_once(']')?.0
    } else {
        host_port.split(':').next()?
    };
    if host.is_empty() {
        return None;
    }
    match host.parse::<IpAddr>() {
        Ok(ip) => Some(Host::Ip(ip)),
        Err(_) => Some(Host::Dns(host.to_ascii_lowercase())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> SubjectName {
        SubjectName::parse(s).unwrap()
    }

    #[test]
    fn dns_domains_alone_exclude_every_address_and_check_uri_hosts() {
        let c = Constraints::for_new_ca(vec!["example.internal".into()], Vec::new());
        assert!(c.check(&name("a.example.internal")).is_ok());
        assert!(c.check(&name("example.internal.evil.com")).is_err());
        for bad in ["8.8.8.8", "10.0.0.21", "::1"] {
            let e = c.check(&name(bad)).unwrap_err().to_string();
            assert!(e.contains("excludes"), "{bad}: {e}");
        }
        assert!(c.check(&name("spiffe://api.example.internal/x")).is_ok());
        assert!(c.check(&name("https://bank.com/login")).is_err());
        assert!(c.check(&name("spiffe://evil.com/admin")).is_err());
        assert!(c.check(&name("uri:urn:uuid:1234")).is_err());
        assert!(c.check(&name("https://10.0.0.1/x")).is_err());
    }

    #[test]
    fn permitted_ranges_admit_their_addresses_only() {
        let c = Constraints::for_new_ca(
            vec!["example.internal".into()],
            vec![cidr("10.0.0.0/8").unwrap(), cidr("fd00::/8").unwrap()],
        );
        assert!(c.excluded_ip.is_empty());
        assert!(c.check(&name("10.1.2.3")).is_ok());
        assert!(c.check(&name("fd00::5")).is_ok());
        assert!(c.check(&name("192.168.1.1")).is_err());
        assert!(c.check(&name("https://10.0.0.9:8443/x")).is_ok());
        // Only IPv4 permitted: IPv6 is then refused too.
        let v4 = Constraints::for_new_ca(Vec::new(), vec![cidr("10.0.0.0/8").unwrap()]);
        assert!(v4.check(&name("::1")).is_err());
        assert!(v4.check(&name("anything.example.com")).is_ok());
    }

    #[test]
    fn cidr_ranges_are_parsed_and_normalised() {
        assert_eq!(cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(cidr("192.0.2.7").unwrap().to_string(), "192.0.2.7/32");
        assert!(cidr("10.0.0.0/33").is_err());
        assert!(cidr("example").is_err());
    }

    #[test]
    fn nothing_constrained_admits_every_name() {
        let c = Constraints::default();
        for n in ["8.8.8.8", "uri:urn:x:y", "a.b", "spiffe://any/x"] {
            assert!(c.check(&name(n)).is_ok(), "{n}");
        }
    }
}
