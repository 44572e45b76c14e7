//! The `Idempotency-Key` header: which keys are valid, which responses are kept for
//! replay and which of their headers, and (in [`record`]) how a key becomes a record id,
//! a request fingerprint and the key that seals the kept response.

mod record;

pub use record::{KeptResponse, RecordKeys};

/// The request header (lower case, as HTTP/2 carries it).
pub const KEY_HEADER: &str = "idempotency-key";

/// The response header set on a replayed response.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// Longest accepted key, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// Largest response body kept for replay; a larger response is returned but not kept.
pub const MAX_KEPT_BODY: usize = 1024 * 1024;

/// Response headers replayed with a kept response. Everything else is left out: cookies
/// would hand one session's state to a later request, and per-request headers
/// (`x-request-id`, rate-limit counters, dates) belong to the request that gets them.
pub const REPLAYED_HEADERS: [&str; 7] = [
    "content-type",
    "content-language",
    "location",
    "etag",
    "last-modified",
    "cache-control",
    "link",
];

/// A valid idempotency key: 1 to 255 printable ASCII characters.
#[derive(Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

/// Why an idempotency key was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The header was present but empty.
    #[error("the idempotency key is empty")]
    Empty,
    /// More than [`MAX_KEY_LEN`] bytes.
    #[error("the idempotency key is {0} bytes long; at most 255 are allowed")]
    TooLong(usize),
    /// A byte outside printable ASCII (0x20–0x7E), at this index.
    #[error("the idempotency key has a character that is not printable ASCII at index {0}")]
    NotPrintable(usize),
}

impl IdempotencyKey {
    /// Parses a header value's bytes.
    pub fn parse(raw: &[u8]) -> Result<IdempotencyKey, KeyError> {
        if raw.is_empty() {
            return Err(KeyError::Empty);
        }
        if raw.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong(raw.len()));
        }
        if let Some(at) = raw.iter().position(|b| !(0x20..=0x7e).contains(b)) {
            return Err(KeyError::NotPrintable(at));
        }
        // Every byte is ASCII, so this cannot fail; map rather than assume.
        String::from_utf8(raw.to_vec())
            .map(IdempotencyKey)
            .map_err(|_| KeyError::NotPrintable(0))
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key derives the seal of a kept response: never print it.
        f.write_str("IdempotencyKey(<redacted>)")
    }
}

/// Whether a response with this status is kept for replay. 401, 403, 429 and 5xx mean
/// the request was refused or failed before (or while) doing its work, so the claim is
/// released and a retry executes; every other status is the request's answer.
pub fn is_kept_status(status: u16) -> bool {
    !matches!(status, 401 | 403 | 429) && status < 500
}

/// Whether a response header (any case) is replayed.
pub fn is_replayed_header(name: &str) -> bool {
    REPLAYED_HEADERS
        .iter()
        .any(|h| h.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_of_printable_ascii_up_to_255_bytes_are_accepted() {
        assert_eq!(IdempotencyKey::parse(b"a").unwrap().as_str(), "a");
        let uuid = b"0192f0c2-7d1e-7c3a-9b1e-1234567890ab";
        assert!(IdempotencyKey::parse(uuid).is_ok());
        assert!(IdempotencyKey::parse(b"build #42: {x} ~!").is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
    }

    #[test]
    fn empty_long_and_unprintable_keys_are_refused() {
        assert_eq!(IdempotencyKey::parse(b""), Err(KeyError::Empty));
        assert_eq!(
            IdempotencyKey::parse(&[b'k'; 256]),
            Err(KeyError::TooLong(256))
        );
        assert_eq!(
            IdempotencyKey::parse(b"ab\tc"),
            Err(KeyError::NotPrintable(2))
        );
        assert_eq!(
            IdempotencyKey::parse(b"\x7f"),
            Err(KeyError::NotPrintable(0))
        );
        assert_eq!(
            IdempotencyKey::parse("clé".as_bytes()),
            Err(KeyError::NotPrintable(2))
        );
    }

    #[test]
    fn a_key_never_prints() {
        let key = IdempotencyKey::parse(b"secret-ish-key").unwrap();
        assert!(!format!("{key:?}").contains("secret-ish-key"));
    }

    #[test]
    fn refusals_and_failures_are_not_kept_and_answers_are() {
        for status in [200, 201, 202, 204, 301, 400, 402, 404, 409, 410, 413, 422] {
            assert!(is_kept_status(status), "{status}");
        }
        for status in [401, 403, 429, 500, 502, 503, 504, 599] {
            assert!(!is_kept_status(status), "{status}");
        }
    }

    #[test]
    fn only_allow_listed_headers_replay() {
        assert!(is_replayed_header("Content-Type"));
        assert!(is_replayed_header("location"));
        for h in [
            "set-cookie",
            "x-request-id",
            "retry-after",
            "date",
            "x-ratelimit-remaining",
        ] {
            assert!(!is_replayed_header(h), "{h}");
        }
    }
}
