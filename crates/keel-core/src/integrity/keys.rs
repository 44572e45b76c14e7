//! Service keys as configured in `KEEL_SERVICE_KEYS` (and `KEEL_SERVICE_KEYS_FILE`):
//!
//! ```text
//! entry    = service ["@" key-name] ":" secret *(":" flag)
//! flag     = "legacy_v1" | "revoked"
//! service, key-name = 1*64 of a-z 0-9 _ -      secret = 32+ bytes, no "," or newline
//! ```
//!
//! Entries are separated by `,` or newlines; blank lines and lines starting with `#` are
//! ignored. A service may have several keys (rotation): an entry without `@name` is named
//! `key<N>`, N counting that service's entries from 1. A secret may contain `:`; only a
//! trailing `:legacy_v1` or `:revoked` is read as a flag.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::identity::equal_ct;

/// A secret held in memory for HMAC; never printed.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into())
    }

    /// The bytes, for computing a MAC.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One key of a service.
#[derive(Clone, Debug)]
pub struct ServiceKey {
    /// The service it authenticates (what `x-keel-key-id` names).
    pub service: String,
    /// Its name among the service's keys.
    pub name: String,
    /// The shared secret.
    pub secret: Secret,
    /// SHA-256 of the secret, for bearer credentials.
    digest: [u8; 32],
    /// Also accepts Builder's v1 body-only signature.
    pub legacy_v1: bool,
    /// Refused with its own code.
    pub revoked: bool,
}

impl ServiceKey {
    /// `service@name`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.service, self.name)
    }
}

/// Why a key id found no usable key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// No such service or key name.
    Unknown,
    /// Every key it names is revoked.
    Revoked,
}

/// Why a bearer service credential was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BearerRefusal {
    /// Unknown id or wrong secret (not told apart).
    Invalid,
    /// The secret is right but the key is revoked.
    Revoked,
}

/// Every configured service key.
#[derive(Clone, Default)]
pub struct ServiceKeys {
    keys: Vec<ServiceKey>,
}

impl fmt::Debug for ServiceKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let labels: Vec<String> = self.keys.iter().map(ServiceKey::label).collect();
        write!(f, "ServiceKeys({labels:?}, secrets redacted)")
    }
}

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Whether `text` is a well-formed key id: `service` or `service@name`.
pub fn valid_key_id(text: &str) -> bool {
    match text.split_once('@') {
        Some((service, name)) => valid_name(service) && valid_name(name),
        None => valid_name(text),
    }
}

impl ServiceKeys {
    /// Parses the configuration syntax above. Errors name the entry by position and never
    /// contain a secret.
    pub fn parse(text: &str) -> Result<ServiceKeys, String> {
        let mut keys = ServiceKeys::default();
        keys.extend_from(text)?;
        Ok(keys)
    }

    /// Adds the entries of `text` (e.g. a keys file after the environment variable).
    pub fn extend_from(&mut self, text: &str) -> Result<(), String> {
        let entries = text
            .split(['\n', ','])
            .map(str::trim)
            .filter(|e| !e.is_empty() && !e.starts_with('#'));
        for (i, entry) in entries.enumerate() {
            let key = self
                .parse_entry(entry)
                .map_err(|why| format!("entry {}: {why}", i + 1))?;
            self.keys.push(key);
        }
        Ok(())
    }

    fn parse_entry(&self, entry: &str) -> Result<ServiceKey, String> {
        let (id, mut secret) = entry
            .split_once(':')
            .ok_or("service[@key]:secret[:legacy_v1][:revoked]")?;
        let (mut legacy_v1, mut revoked) = (false, false);
        loop {
            if let Some(rest) = secret.strip_suffix(":legacy_v1") {
                (secret, legacy_v1) = (rest, true);
            } else if let Some(rest) = secret.strip_suffix(":revoked") {
                (secret, revoked) = (rest, true);
            } else {
                break;
            }
        }
        if !valid_key_id(id) {
            return Err("service ids and key names of 1 to 64 characters a-z, 0-9, _ or -".into());
        }
        if secret.len() < 32 {
            return Err("secrets of at least 32 bytes".into());
        }
        let (service, name) = match id.split_once('@') {
            Some((s, n)) => (s.to_string(), n.to_string()),
            None => {
                let n = self.keys.iter().filter(|k| k.service == id).count() + 1;
                (id.to_string(), format!("key{n}"))
            }
        };
        if self
            .keys
            .iter()
            .any(|k| k.service == service && k.name == name)
        {
            return Err(format!("{service}@{name} is configured twice"));
        }
        Ok(ServiceKey {
            service,
            name,
            digest: Sha256::digest(secret.as_bytes()).into(),
            secret: Secret::new(secret.as_bytes()),
            legacy_v1,
            revoked,
        })
    }

    /// Whether any key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Every key.
    pub fn iter(&self) -> impl Iterator<Item = &ServiceKey> {
        self.keys.iter()
    }

    /// The keys a key id names: all of a service's keys, or the one `service@name` names.
    /// Revoked keys are included (to tell a revoked key from a wrong one).
    pub fn lookup(&self, key_id: &str) -> Result<Vec<&ServiceKey>, Lookup> {
        let (service, name) = match key_id.split_once('@') {
            Some((s, n)) => (s, Some(n)),
            None => (key_id, None),
        };
        let found: Vec<&ServiceKey> = self
            .keys
            .iter()
            .filter(|k| k.service == service && name.is_none_or(|n| k.name == n))
            .collect();
        if found.is_empty() {
            Err(Lookup::Unknown)
        } else if found.iter().all(|k| k.revoked) {
            Err(Lookup::Revoked)
        } else {
            Ok(found)
        }
    }

    /// Checks `Bearer <service>.<secret>`; every key is compared, in constant time, so
    /// timing does not tell which ids exist.
    pub fn verify_bearer(&self, service: &str, secret: &str) -> Result<&ServiceKey, BearerRefusal> {
        let presented = Sha256::digest(secret.as_bytes());
        let (mut active, mut revoked) = (None, false);
        for key in &self.keys {
            if equal_ct(&key.digest, &presented) && key.service == service {
                if key.revoked {
                    revoked = true;
                } else {
                    active = Some(key);
                }
            }
        }
        match active {
            Some(key) => Ok(key),
            None if revoked => Err(BearerRefusal::Revoked),
            None => Err(BearerRefusal::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn s(c: char) -> String {
        c.to_string().repeat(32)
    }

    #[test]
    fn the_plain_id_secret_form_still_parses() {
        let keys = ServiceKeys::parse(&format!("worker:{}, billing:{}", s('a'), s('b'))).unwrap();
        let worker = keys.lookup("worker").unwrap();
        assert_eq!(worker.len(), 1);
        assert_eq!(worker[0].label(), "worker@key1");
        assert_eq!(worker[0].secret.expose(), s('a').as_bytes());
        assert!(!worker[0].legacy_v1 && !worker[0].revoked);
        assert!(ServiceKeys::parse("").unwrap().is_empty());
    }

    #[test]
    fn named_keys_flags_comments_and_colons_in_secrets() {
        let text = format!(
            "# rotation\nworker@k1:{}:revoked\nworker@k2:{}:legacy_v1\nworker:x:{}\n",
            s('a'),
            s('b'),
            s('c')
        );
        let keys = ServiceKeys::parse(&text).unwrap();
        let all = keys.lookup("worker").unwrap();
        assert_eq!(all.len(), 3);
        assert!(all[0].revoked && !all[0].legacy_v1);
        assert!(all[1].legacy_v1 && !all[1].revoked);
        assert_eq!(all[2].name, "key3");
        assert_eq!(all[2].secret.expose(), format!("x:{}", s('c')).as_bytes());
        assert_eq!(keys.lookup("worker@k1").unwrap_err(), Lookup::Revoked);
        assert_eq!(keys.lookup("worker@k2").unwrap().len(), 1);
        assert_eq!(keys.lookup("worker@k9").unwrap_err(), Lookup::Unknown);
        assert_eq!(keys.lookup("other").unwrap_err(), Lookup::Unknown);
    }

    #[test]
    fn bad_entries_are_refused_without_echoing_secrets() {
        for bad in [
            "worker:short".to_string(),
            format!("Bad Id:{}", s('a')),
            format!("worker@:{}", s('a')),
            format!("worker@k1:{0},worker@k1:{0}", s('a')),
            "no-colon".to_string(),
        ] {
            let err = ServiceKeys::parse(&bad).unwrap_err();
            assert!(!err.contains(&s('a')) && !err.contains("short"), "{err}");
            assert!(err.starts_with("entry "), "{err}");
        }
    }

    #[test]
    fn debug_output_names_keys_but_never_secrets() {
        let keys = ServiceKeys::parse(&format!("worker:{}", s('q'))).unwrap();
        let shown = format!("{keys:?} {:?}", keys.lookup("worker").unwrap());
        assert!(shown.contains("worker@key1"));
        assert!(!shown.contains(&s('q')));
    }

    #[test]
    fn bearer_credentials_match_active_keys_and_tell_revoked_ones() {
        let keys =
            ServiceKeys::parse(&format!("worker:{}, worker:{}:revoked", s('a'), s('b'))).unwrap();
        assert_eq!(keys.verify_bearer("worker", &s('a')).unwrap().name, "key1");
        assert_eq!(
            keys.verify_bearer("worker", &s('b')).unwrap_err(),
            BearerRefusal::Revoked
        );
        assert_eq!(
            keys.verify_bearer("other", &s('a')).unwrap_err(),
            BearerRefusal::Invalid
        );
        assert_eq!(
            keys.verify_bearer("worker", "wrong").unwrap_err(),
            BearerRefusal::Invalid
        );
    }

    #[test]
    fn key_ids_are_a_service_or_a_service_and_key_name() {
        assert!(valid_key_id("worker"));
        assert!(valid_key_id("worker@k2"));
        assert!(!valid_key_id("worker@"));
        assert!(!valid_key_id("Worker"));
        assert!(!valid_key_id("a@b@c"));
    }
}
