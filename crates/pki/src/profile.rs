//! Certificate profiles: the least-privilege key usages and extended key usages of a leaf.

use std::fmt;
use std::str::FromStr;

use rcgen::{ExtendedKeyUsagePurpose, KeyUsagePurpose};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::key::KeyAlgorithm;

/// What a leaf certificate may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Profile {
    /// A TLS server (EKU serverAuth).
    #[default]
    Server,
    /// A TLS client (EKU clientAuth).
    Client,
    /// Both, for services that also connect to peers with the same identity (Redis replication,
    /// database clusters, Neo4j cluster members).
    ServerClient,
}

impl Profile {
    /// Every profile.
    pub const ALL: [Self; 3] = [Self::Server, Self::Client, Self::ServerClient];

    /// The profile's name as written in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Client => "client",
            Self::ServerClient => "server-client",
        }
    }

    /// Whether the certificate authenticates a TLS server.
    pub fn server(self) -> bool {
        matches!(self, Self::Server | Self::ServerClient)
    }

    /// Whether the certificate authenticates a TLS client.
    pub fn client(self) -> bool {
        matches!(self, Self::Client | Self::ServerClient)
    }

    /// The profile matching a certificate's extended key usages, if any.
    pub fn from_eku(eku: &x509_parser::extensions::ExtendedKeyUsage<'_>) -> Option<Self> {
        match (eku.server_auth, eku.client_auth) {
            (true, true) => Some(Self::ServerClient),
            (true, false) => Some(Self::Server),
            (false, true) => Some(Self::Client),
            (false, false) => None,
        }
    }

    /// Key usages: digitalSignature always; keyEncipherment for RSA, whose TLS 1.2 key
    /// exchange may encrypt with the certificate key.
    pub(crate) fn key_usages(self, algorithm: KeyAlgorithm) -> Vec<KeyUsagePurpose> {
        let mut usages = vec![KeyUsagePurpose::DigitalSignature];
        if algorithm.is_rsa() {
            usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        usages
    }

    pub(crate) fn extended_key_usages(self) -> Vec<ExtendedKeyUsagePurpose> {
        let mut ekus = Vec::with_capacity(2);
        if self.server() {
            ekus.push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if self.client() {
            ekus.push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        ekus
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| Error::InvalidArgument {
                what: "profile",
                value: s.to_owned(),
                expected: "server, client or server-client",
            })
    }
}
