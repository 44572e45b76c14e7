//! Verifying a signed service call, every rule but the nonce's single use (which needs a
//! shared store). Checks run in a fixed order, so each bad input gets one stable code:
//! headers present → well formed → key known and not revoked → timestamp in the window →
//! version allowed for the key → signature valid.

use super::canonical::CanonicalRequest;
use super::keys::{valid_key_id, Lookup, ServiceKey, ServiceKeys};
use super::signing::{
    check_nonce, mac_v1, mac_v2, parse_signatures, parse_timestamp, within_tolerance, Presented,
    Version, KEY_ID_HEADER, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
use crate::identity::equal_ct;

/// The four signature headers, as sent (`None` when absent).
#[derive(Clone, Copy, Debug, Default)]
pub struct SignatureHeaders<'a> {
    /// `x-keel-key-id`.
    pub key_id: Option<&'a str>,
    /// `x-keel-timestamp`.
    pub timestamp: Option<&'a str>,
    /// `x-keel-nonce`.
    pub nonce: Option<&'a str>,
    /// `x-keel-signature`.
    pub signature: Option<&'a str>,
}

/// The request a signature covers.
#[derive(Clone, Copy, Debug)]
pub struct SignedRequest<'a> {
    /// The method token as received.
    pub method: &'a str,
    /// The raw path.
    pub path: &'a str,
    /// The raw query, without `?`.
    pub query: &'a str,
    /// The raw body.
    pub body: &'a [u8],
}

/// A request that passed every check but the nonce's.
#[derive(Clone, Debug)]
pub struct Verified<'k> {
    /// The key whose secret signed it.
    pub key: &'k ServiceKey,
    /// The scheme of the value that matched.
    pub version: Version,
    /// The nonce, to be claimed once.
    pub nonce: String,
}

/// Why a signed request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Headers absent (names in header order).
    Missing(Vec<&'static str>),
    /// A header present but not in its format.
    Malformed {
        /// The header.
        header: &'static str,
        /// Its format.
        expected: &'static str,
    },
    /// No such service or key.
    UnknownKey,
    /// The key named (or every key of the service, or the key that matched) is revoked.
    KeyRevoked,
    /// The timestamp is outside the tolerance.
    Expired {
        /// The server's clock, unix seconds.
        server_time: i64,
        /// The timestamp sent.
        timestamp: i64,
        /// The tolerance in seconds.
        tolerance_secs: u64,
    },
    /// Only v1 values, and no key named is in legacy mode.
    VersionNotAllowed,
    /// No value matches: wrong secret, or the request changed after signing.
    Invalid {
        /// The canonical string the server computed, to compare with the client's.
        canonical: String,
    },
}

impl Refusal {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Missing(_) => "signature_missing",
            Refusal::Malformed { .. } => "signature_malformed",
            Refusal::UnknownKey => "unknown_key",
            Refusal::KeyRevoked => "key_revoked",
            Refusal::Expired { .. } => "signature_expired",
            Refusal::VersionNotAllowed => "signature_version_not_allowed",
            Refusal::Invalid { .. } => "signature_invalid",
        }
    }
}

/// Verifies everything but the nonce's single use.
pub fn verify<'k>(
    keys: &'k ServiceKeys,
    headers: &SignatureHeaders<'_>,
    request: &SignedRequest<'_>,
    now: i64,
    tolerance_secs: u64,
) -> Result<Verified<'k>, Refusal> {
    let (key_id, ts_text, nonce, signature) = present(headers)?;
    let malformed = |header, expected| Refusal::Malformed { header, expected };
    if !valid_key_id(key_id) {
        return Err(malformed(
            KEY_ID_HEADER,
            "a service id, or service@key, of a-z, 0-9, _ or -",
        ));
    }
    let timestamp = parse_timestamp(ts_text).map_err(|e| malformed(TIMESTAMP_HEADER, e))?;
    check_nonce(nonce).map_err(|e| malformed(NONCE_HEADER, e))?;
    let presented = parse_signatures(signature).map_err(|e| malformed(SIGNATURE_HEADER, e))?;
    let candidates = keys.lookup(key_id).map_err(|l| match l {
        Lookup::Unknown => Refusal::UnknownKey,
        Lookup::Revoked => Refusal::KeyRevoked,
    })?;
    if !within_tolerance(timestamp, now, tolerance_secs) {
        return Err(Refusal::Expired {
            server_time: now,
            timestamp,
            tolerance_secs,
        });
    }
    let only_v1 = presented.iter().all(|p| p.version == Version::V1);
    if only_v1 && !candidates.iter().any(|k| k.legacy_v1 && !k.revoked) {
        return Err(Refusal::VersionNotAllowed);
    }
    let canonical = CanonicalRequest {
        method: request.method,
        path: request.path,
        query: request.query,
        body: request.body,
        nonce,
        timestamp: ts_text,
    };
    let (mut active, mut revoked) = (None, false);
    for key in &candidates {
        if let Some(version) = best_match(key, &presented, &canonical) {
            if key.revoked {
                revoked = true;
            } else if active.is_none_or(|(_, v)| version > v) {
                active = Some((*key, version));
            }
        }
    }
    match active {
        Some((key, version)) => Ok(Verified {
            key,
            version,
            nonce: nonce.to_string(),
        }),
        None if revoked => Err(Refusal::KeyRevoked),
        None => Err(Refusal::Invalid {
            canonical: canonical.to_canonical_string(),
        }),
    }
}

fn present<'a>(h: &SignatureHeaders<'a>) -> Result<(&'a str, &'a str, &'a str, &'a str), Refusal> {
    match (h.key_id, h.timestamp, h.nonce, h.signature) {
        (Some(k), Some(t), Some(n), Some(s)) => Ok((k, t, n, s)),
        _ => Err(Refusal::Missing(
            [
                (KEY_ID_HEADER, h.key_id),
                (TIMESTAMP_HEADER, h.timestamp),
                (NONCE_HEADER, h.nonce),
                (SIGNATURE_HEADER, h.signature),
            ]
            .into_iter()
            .filter(|(_, v)| v.is_none())
            .map(|(name, _)| name)
            .collect(),
        )),
    }
}

/// The highest version among the presented values that `key` produced; every value is
/// compared in constant time and v1 counts only for a legacy key.
fn best_match(
    key: &ServiceKey,
    presented: &[Presented],
    canonical: &CanonicalRequest<'_>,
) -> Option<Version> {
    let v2 = presented
        .iter()
        .any(|p| p.version == Version::V2)
        .then(|| mac_v2(key.secret.expose(), canonical));
    let v1 = (key.legacy_v1 && presented.iter().any(|p| p.version == Version::V1))
        .then(|| mac_v1(key.secret.expose(), canonical.body));
    let mut best = None;
    for p in presented {
        let expected = match p.version {
            Version::V2 => v2.as_ref(),
            Version::V1 => v1.as_ref(),
        };
        if expected.is_some_and(|mac| equal_ct(mac, &p.mac)) && best.is_none_or(|b| p.version > b) {
            best = Some(p.version);
        }
    }
    best
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
