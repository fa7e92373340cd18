//! How CA certificates are named, in one place. An organisation `ORG` gets "ORG Root CA" and
//! "ORG Intermediate CA"; an intermediate that Vault holds under an offline root is "ORG Vault
//! Intermediate CA". The organisation is read back from those names where a CA must be named
//! after another one.

/// What follows the organisation in a root's common name.
pub const ROOT_SUFFIX: &str = " Root CA";
/// What follows the organisation in an intermediate's common name.
pub const INTERMEDIATE_SUFFIX: &str = " Intermediate CA";

/// The common name of an organisation's root.
pub fn root(organisation: &str) -> String {
    format!("{organisation}{ROOT_SUFFIX}")
}

/// The common name of an organisation's intermediate.
pub fn intermediate(organisation: &str) -> String {
    format!("{organisation}{INTERMEDIATE_SUFFIX}")
}

/// The common name of an intermediate kept in Vault under an organisation's offline root.
pub fn vault_intermediate(organisation: &str) -> String {
    intermediate(&format!("{organisation} Vault"))
}

/// The organisation of a CA named by these rules: the text before " Root CA" or
/// " Intermediate CA" (for "ORG Vault Intermediate CA", that is "ORG Vault").
pub fn organisation_of(common_name: &str) -> Option<&str> {
    common_name
        .strip_suffix(ROOT_SUFFIX)
        .or_else(|| common_name.strip_suffix(INTERMEDIATE_SUFFIX))
        .filter(|o| !o.is_empty())
}

/// The organisation a CA's name says (see [`organisation_of`]), or the default one.
pub fn organisation_of_ca(ca: &crate::cert::Certificate) -> &str {
    ca.info()
        .common_name
        .as_deref()
        .and_then(organisation_of)
        .unwrap_or(super::DEFAULT_ORGANISATION)
}

/// The day of `now`, `2026-12-01`: what follows a rolled-over root's name.
pub fn date_stamp(now: time::OffsetDateTime) -> String {
    format!(
        "{}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}

/// The minute of `now`, `2026-12-01 1812`: what follows a rolled-over intermediate's name, so
/// that a client, a log or `openssl x509 -issuer` tells it from the one it replaces without
/// comparing key identifiers.
pub fn minute_stamp(now: time::OffsetDateTime) -> String {
    format!("{} {:02}{:02}", date_stamp(now), now.hour(), now.minute())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_of_rolled_over_names() {
        let now = time::macros::datetime!(2026-12-01 08:05 UTC);
        assert_eq!(date_stamp(now), "2026-12-01");
        assert_eq!(minute_stamp(now), "2026-12-01 0805");
    }

    #[test]
    fn names_and_their_organisation() {
        assert_eq!(root("Example"), "Example Root CA");
        assert_eq!(intermediate("Example"), "Example Intermediate CA");
        assert_eq!(
            vault_intermediate("Example"),
            "Example Vault Intermediate CA"
        );
        assert_eq!(organisation_of("Example Root CA"), Some("Example"));
        assert_eq!(organisation_of("Example Intermediate CA"), Some("Example"));
        assert_eq!(organisation_of("Some CA"), None);
        assert_eq!(organisation_of(" Root CA"), None);
    }
}
