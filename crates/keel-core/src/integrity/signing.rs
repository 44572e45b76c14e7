//! Signing and the signature headers: HMAC-SHA256 over the canonical string (v2) or over
//! the raw body (Builder's legacy v1), and the format rules for each header.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;

use super::canonical::CanonicalRequest;

/// Names the key (`<service>` or `<service>@<key name>`).
pub const KEY_ID_HEADER: &str = "x-keel-key-id";
/// Unix seconds when the request was signed.
pub const TIMESTAMP_HEADER: &str = "x-keel-timestamp";
/// A value used once: 16–128 of `A-Za-z0-9_-`.
pub const NONCE_HEADER: &str = "x-keel-nonce";
/// `v2=<hex>`, or several comma-separated values during a rotation.
pub const SIGNATURE_HEADER: &str = "x-keel-signature";
/// Most signature values one header may carry.
pub const MAX_SIGNATURES: usize = 8;
/// How long a nonce is remembered at least (10 minutes).
pub const NONCE_WINDOW_SECS: u64 = 600;

/// A signature scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Version {
    /// Builder's legacy scheme: HMAC of the raw body only (replayable; rollout only).
    V1,
    /// HMAC of the canonical request string.
    V2,
}

impl Version {
    /// `v1` or `v2`, as in the header and the metrics.
    pub fn label(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
        }
    }
}

/// One value of the signature header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presented {
    /// Its scheme.
    pub version: Version,
    /// The 32 MAC bytes.
    pub mac: [u8; 32],
}

fn hmac(secret: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so construction cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// The v2 MAC: HMAC-SHA256(secret, canonical string).
pub fn mac_v2(secret: &[u8], request: &CanonicalRequest<'_>) -> [u8; 32] {
    hmac(secret, request.to_canonical_string().as_bytes())
}

/// The v1 MAC: HMAC-SHA256(secret, raw body).
pub fn mac_v1(secret: &[u8], body: &[u8]) -> [u8; 32] {
    hmac(secret, body)
}

/// The header value `v2=<lower-case hex>`.
pub fn sign_v2(secret: &[u8], request: &CanonicalRequest<'_>) -> String {
    format!("v2={}", hex::encode(mac_v2(secret, request)))
}

/// The header value `v1=<lower-case hex>`.
pub fn sign_v1(secret: &[u8], body: &[u8]) -> String {
    format!("v1={}", hex::encode(mac_v1(secret, body)))
}

/// Parses `x-keel-signature`: comma-separated `vN=<64 hex digits>` (hex in either case,
/// spaces around values ignored). Values of unknown versions are skipped so clients can
/// add newer schemes; at least one v1 or v2 value and at most [`MAX_SIGNATURES`] values.
pub fn parse_signatures(header: &str) -> Result<Vec<Presented>, &'static str> {
    let values: Vec<&str> = header
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if values.len() > MAX_SIGNATURES {
        return Err("at most 8 comma-separated signature values");
    }
    let mut out = Vec::new();
    for value in values {
        let (scheme, hex_mac) = value
            .split_once('=')
            .ok_or("comma-separated values like v2=<64 hex digits>")?;
        let version = match scheme {
            "v1" => Version::V1,
            "v2" => Version::V2,
            s if is_version_label(s) => continue,
            _ => return Err("comma-separated values like v2=<64 hex digits>"),
        };
        let mut mac = [0u8; 32];
        hex::decode_to_slice(hex_mac, &mut mac)
            .map_err(|_| "v1= or v2= followed by 64 hex digits")?;
        out.push(Presented { version, mac });
    }
    if out.is_empty() {
        return Err("at least one v2=<64 hex digits> (or v1= on a legacy key)");
    }
    Ok(out)
}

fn is_version_label(s: &str) -> bool {
    s.len() >= 2 && s.len() <= 4 && s.starts_with('v') && s[1..].bytes().all(|b| b.is_ascii_digit())
}

/// The scheme label for metrics: `v2` if any v2 value is present, else `v1`, else `unknown`.
pub fn scheme_label(header: Option<&str>) -> &'static str {
    match header.map(parse_signatures) {
        Some(Ok(values)) if values.iter().any(|p| p.version == Version::V2) => "v2",
        Some(Ok(_)) => "v1",
        _ => "unknown",
    }
}

/// Parses `x-keel-timestamp`: unix seconds, 1 to 12 decimal digits, nothing else.
pub fn parse_timestamp(text: &str) -> Result<i64, &'static str> {
    let ok = (1..=12).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| text.parse().ok())
        .flatten()
        .ok_or("unix seconds as 1 to 12 decimal digits")
}

/// Checks `x-keel-nonce`: 16 to 128 characters of `A-Za-z0-9_-`.
pub fn check_nonce(nonce: &str) -> Result<(), &'static str> {
    let ok = (16..=128).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    ok.then_some(())
        .ok_or("16 to 128 characters of A-Za-z0-9_-")
}

/// Whether `timestamp` is within `tolerance_secs` of `now` (both unix seconds).
pub fn within_tolerance(timestamp: i64, now: i64, tolerance_secs: u64) -> bool {
    now.abs_diff(timestamp) <= tolerance_secs
}

/// How long a nonce must be remembered: 10 minutes, or twice the timestamp tolerance if
/// that is longer (a request stays acceptable until `timestamp + tolerance`, and was
/// possibly first seen at `timestamp - tolerance`).
pub fn nonce_ttl_secs(tolerance_secs: u64) -> u64 {
    NONCE_WINDOW_SECS.max(tolerance_secs.saturating_mul(2))
}

/// A fresh random nonce: 32 base64url characters (192 bits).
pub fn new_nonce() -> String {
    let mut bytes = [0u8; 24];
    OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn signature_headers_parse_several_values_and_skip_unknown_versions() {
        let parsed = parse_signatures(&format!("v2={HEX}, v1={}", HEX.to_uppercase())).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].version, Version::V2);
        assert_eq!(parsed[1].version, Version::V1);
        assert_eq!(parsed[0].mac, parsed[1].mac);
        assert_eq!(
            parse_signatures(&format!("v3=zz,v2={HEX}")).unwrap().len(),
            1
        );
    }

    #[test]
    fn malformed_signature_headers_are_refused() {
        for bad in [
            "",
            "v3=abcd",
            "v2",
            "v2=abc",
            &format!("v2={HEX}0"),
            &format!("sha256={HEX}"),
            &format!("v2={}", "g".repeat(64)),
            &vec![format!("v2={HEX}"); 9].join(","),
        ] {
            assert!(parse_signatures(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scheme_labels_name_the_strongest_value_presented() {
        assert_eq!(scheme_label(Some(&format!("v1={HEX},v2={HEX}"))), "v2");
        assert_eq!(scheme_label(Some(&format!("v1={HEX}"))), "v1");
        assert_eq!(scheme_label(Some("nonsense")), "unknown");
        assert_eq!(scheme_label(None), "unknown");
    }

    #[test]
    fn timestamps_are_plain_unix_seconds() {
        assert_eq!(parse_timestamp("1700000000"), Ok(1_700_000_000));
        for bad in ["", "-5", "+5", "1.5", "17e8", " 1", "1234567890123"] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nonces_have_a_bounded_length_and_alphabet() {
        assert!(check_nonce(&"a".repeat(16)).is_ok());
        assert!(check_nonce(&"Z9_-".repeat(32)).is_ok());
        assert!(check_nonce(&"a".repeat(15)).is_err());
        assert!(check_nonce(&"a".repeat(129)).is_err());
        assert!(check_nonce("abcdefghijklmnop=").is_err());
        assert!(check_nonce(&new_nonce()).is_ok());
        assert_ne!(new_nonce(), new_nonce());
    }

    #[test]
    fn the_tolerance_is_inclusive_in_both_directions() {
        assert!(within_tolerance(1000, 1120, 120));
        assert!(within_tolerance(1120, 1000, 120));
        assert!(!within_tolerance(1000, 1121, 120));
        assert!(!within_tolerance(1121, 1000, 120));
        assert_eq!(nonce_ttl_secs(120), 600);
        assert_eq!(nonce_ttl_secs(900), 1800);
    }

    #[test]
    fn v1_signs_the_body_and_v2_the_canonical_string() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let req = CanonicalRequest {
            method: "POST",
            path: "/v1/service/usage",
            query: "",
            body: b"{}",
            nonce: "nonce-0123456789ab",
            timestamp: "1700000000",
        };
        assert_ne!(sign_v2(secret, &req), sign_v1(secret, b"{}"));
        assert_eq!(sign_v1(secret, b"{}"), sign_v1(secret, b"{}"));
        assert!(sign_v2(secret, &req).starts_with("v2="));
        let other = CanonicalRequest {
            nonce: "nonce-0123456789ac",
            ..req
        };
        assert_ne!(sign_v2(secret, &req), sign_v2(secret, &other));
    }
}
