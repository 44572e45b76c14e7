//! Email addresses: trimmed, domain lower-cased, shape-checked. The local part keeps its
//! case (RFC 5321 makes it case-sensitive).

use std::fmt;

/// A normalised, shape-valid email address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

/// Why an email was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid email address: {0}")]
pub struct EmailError(pub &'static str);

impl Email {
    /// Normalises and validates.
    pub fn parse(raw: &str) -> Result<Email, EmailError> {
        let s = raw.trim();
        if s.len() > 254 {
            return Err(EmailError("longer than 254 characters"));
        }
        let (local, domain) = s.rsplit_once('@').ok_or(EmailError("missing @"))?;
        if local.is_empty() || local.len() > 64 {
            return Err(EmailError("the part before @ must be 1 to 64 characters"));
        }
        if local.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '@' | '<' | '>' | '"' | ',' | ';')
        }) {
            return Err(EmailError("the part before @ has a character not allowed"));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(EmailError("misplaced dot before @"));
        }
        let domain = domain.to_ascii_lowercase();
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(EmailError("the domain needs a dot"));
        }
        for label in &labels {
            let ok = !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !ok {
                return Err(EmailError("the domain is not a valid host name"));
            }
        }
        Ok(Email(format!("{local}@{domain}")))
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before `@`.
    pub fn local_part(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(l, _)| l)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn emails_are_trimmed_and_their_domain_lowercased() {
        assert_eq!(
            Email::parse("  Alice@Example.COM ").unwrap().as_str(),
            "Alice@example.com"
        );
        assert_eq!(
            Email::parse("a.b+tag@sub.example.io").unwrap().as_str(),
            "a.b+tag@sub.example.io"
        );
    }

    #[test]
    fn malformed_emails_are_refused() {
        for bad in [
            "",
            "plain",
            "@x.com",
            "a@",
            "a@localhost",
            "a b@x.com",
            "a@x..com",
            "a@-x.com",
            ".a@x.com",
            "a..b@x.com",
            "a@x_y.com",
            "<a>@x.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(Email::parse(&format!("{}@x.com", "a".repeat(65))).is_err());
    }
}
