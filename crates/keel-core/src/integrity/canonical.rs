//! The canonical string a signed service call covers (docs/signing.md):
//!
//! ```text
//! METHOD \n path \n canonical-query \n hex(sha256(body)) \n nonce \n timestamp
//! ```

use percent_encoding::{percent_decode, percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

/// Bytes written as `%XX`: everything but RFC 3986 unreserved characters.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Canonicalises a raw query string (without the leading `?`): split on `&` (empty
/// segments dropped), each segment at its first `=` (none means an empty value), `+` read
/// as a space, percent-decoded to bytes, sorted by (key bytes, value bytes), re-encoded
/// with unreserved characters as is and every other byte as uppercase `%XX`, joined by `&`.
///
/// `+` means a space because that is how the server's query parser reads it, so two
/// queries with the same canonical form always mean the same thing to the handler.
pub fn canonical_query(raw: &str) -> String {
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = raw
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            let (key, value) = segment.split_once('=').unwrap_or((segment, ""));
            (decode(key), decode(value))
        })
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(raw.len());
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.extend(percent_encode(key, ENCODE));
        out.push('=');
        out.extend(percent_encode(value, ENCODE));
    }
    out
}

fn decode(part: &str) -> Vec<u8> {
    // `+` first, so an encoded plus (`%2B`) survives as a plus.
    let spaced = part.replace('+', " ");
    percent_decode(spaced.as_bytes()).collect()
}

/// Lower-case hex SHA-256 of the body (of nothing for an empty body).
pub fn body_sha256(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// What a v2 signature covers: the request as sent, and the nonce and timestamp headers.
#[derive(Clone, Copy, Debug)]
pub struct CanonicalRequest<'a> {
    /// The method token as sent (upper case for the standard methods).
    pub method: &'a str,
    /// The path as sent on the wire: not decoded, not normalised, no query.
    pub path: &'a str,
    /// The raw query string, without `?` (empty when there is none).
    pub query: &'a str,
    /// The raw body bytes.
    pub body: &'a [u8],
    /// `x-keel-nonce` as sent.
    pub nonce: &'a str,
    /// `x-keel-timestamp` as sent.
    pub timestamp: &'a str,
}

impl CanonicalRequest<'_> {
    /// The six lines joined by `\n`, with no trailing newline.
    pub fn to_canonical_string(&self) -> String {
        format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            self.method,
            self.path,
            canonical_query(self.query),
            body_sha256(self.body),
            self.nonce,
            self.timestamp
        )
    }
}

/// Splits a URL (`https://host/path?query#fragment`) or an origin-form target
/// (`/path?query`) into the path and raw query as they go on the wire. The fragment is
/// never sent, so it is dropped; a missing path is `/`.
pub fn split_target(url: &str) -> (&str, &str) {
    let without_fragment = url.split_once('#').map_or(url, |(before, _)| before);
    let target = match without_fragment.find("://") {
        Some(i) => {
            let rest = &without_fragment[i + 3..];
            rest.find(['/', '?']).map_or("", |j| &rest[j..])
        }
        None => without_fragment,
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    (if path.is_empty() { "/" } else { path }, query)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn query_is_sorted_by_key_then_value_and_reencoded() {
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("b=2&a=1"), "a=1&b=2");
        assert_eq!(canonical_query("a=2&a=10&a=1"), "a=1&a=10&a=2");
        assert_eq!(canonical_query("flag&x="), "flag=&x=");
        assert_eq!(canonical_query("&&a=1&"), "a=1");
        assert_eq!(canonical_query("k=a=b"), "k=a%3Db");
    }

    #[test]
    fn plus_is_a_space_and_an_encoded_plus_stays_a_plus() {
        assert_eq!(canonical_query("q=a+b"), "q=a%20b");
        assert_eq!(canonical_query("q=a%20b"), "q=a%20b");
        assert_eq!(canonical_query("q=a%2Bb"), "q=a%2Bb");
        assert_eq!(canonical_query("q=a%2bb"), "q=a%2Bb");
    }

    #[test]
    fn unreserved_characters_stay_and_everything_else_is_encoded() {
        assert_eq!(canonical_query("x=AZaz09-._~"), "x=AZaz09-._~");
        assert_eq!(canonical_query("x=%7E"), "x=~");
        assert_eq!(canonical_query("x=!*'()/:"), "x=%21%2A%27%28%29%2F%3A");
        assert_eq!(canonical_query("x=é"), "x=%C3%A9");
        assert_eq!(canonical_query("x=%zz&y=%4"), "x=%25zz&y=%254");
    }

    #[test]
    fn sorting_is_by_decoded_bytes() {
        // 'B' (0x42) sorts before 'a' (0x61); '%41' is 'A'.
        assert_eq!(canonical_query("a=1&B=2&%41=3"), "A=3&B=2&a=1");
    }

    #[test]
    fn the_canonical_string_has_six_lines_and_no_trailing_newline() {
        let c = CanonicalRequest {
            method: "GET",
            path: "/v1/service/x",
            query: "",
            body: b"",
            nonce: "n",
            timestamp: "1",
        };
        let s = c.to_canonical_string();
        assert_eq!(s.split('\n').count(), 6);
        assert!(s.contains("\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"));
        assert!(!s.ends_with('\n'));
    }

    #[test]
    fn targets_split_into_path_and_query() {
        assert_eq!(
            split_target("https://h:8080/v1/a?b=1#frag"),
            ("/v1/a", "b=1")
        );
        assert_eq!(split_target("http://h"), ("/", ""));
        assert_eq!(split_target("http://h?x=1"), ("/", "x=1"));
        assert_eq!(split_target("/v1/a"), ("/v1/a", ""));
        assert_eq!(split_target("/v1/a?"), ("/v1/a", ""));
    }
}
