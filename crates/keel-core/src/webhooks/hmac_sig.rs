//! Shared-secret webhook signatures: Stripe's `Stripe-Signature: t=…,v1=…` (HMAC-SHA256
//! over `t.payload`, several `v1` while secrets rotate, a timestamp tolerance) and Lemon
//! Squeezy's `X-Signature` (hex HMAC-SHA256 of the raw body). Every comparison is in
//! constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Why a signature was refused; each maps to a stable API error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header, or one that cannot be read.
    #[error("the signature header is missing or malformed")]
    Malformed,
    /// The timestamp is outside the tolerance.
    #[error("the signature timestamp is outside the allowed tolerance")]
    Stale,
    /// No signature matches any configured secret.
    #[error("no signature matches")]
    Mismatch,
}

impl SignatureError {
    /// The stable error code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed => "missing_signature",
            Self::Stale => "stale_timestamp",
            Self::Mismatch => "invalid_signature",
        }
    }
}

fn hmac_sha256(secret: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return [0; 32];
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Verifies a `Stripe-Signature` header over `payload` against any of `secrets`, with
/// `t` within `tolerance_secs` of `now_secs` either way.
pub fn verify_stripe(
    header: &str,
    payload: &[u8],
    secrets: &[Vec<u8>],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<i64, SignatureError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            return Err(SignatureError::Malformed);
        };
        match k {
            "t" => timestamp = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?),
            // A v1 that is not 32 bytes of hex matches nothing, like a wrong one.
            "v1" => candidates.extend(hex::decode(v).ok().filter(|s| s.len() == 32)),
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() && !header.contains("v1=") {
        return Err(SignatureError::Malformed);
    }
    if now_secs.abs_diff(t) > tolerance_secs.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let t_text = t.to_string();
    let mut matched = subtle::Choice::from(0);
    for secret in secrets {
        let expected = hmac_sha256(secret, &[t_text.as_bytes(), b".", payload]);
        for candidate in &candidates {
            matched |= expected.ct_eq(candidate.as_slice());
        }
    }
    if bool::from(matched) {
        Ok(t)
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Verifies Lemon Squeezy's `X-Signature` (hex HMAC-SHA256 of the body) against any of
/// `secrets`.
pub fn verify_lemonsqueezy(
    header: &str,
    body: &[u8],
    secrets: &[Vec<u8>],
) -> Result<(), SignatureError> {
    let given = hex::decode(header.trim()).map_err(|_| SignatureError::Malformed)?;
    let mut matched = subtle::Choice::from(0);
    for secret in secrets {
        matched |= hmac_sha256(secret, &[body]).ct_eq(given.as_slice());
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Signs like Stripe does (tests, and the `keel` CLI's examples): `t=…,v1=…`.
pub fn stripe_header(secret: &[u8], t: i64, payload: &[u8]) -> String {
    let sig = hmac_sha256(secret, &[t.to_string().as_bytes(), b".", payload]);
    format!("t={t},v1={}", hex::encode(sig))
}

/// Signs like Lemon Squeezy does: the hex HMAC-SHA256 of the body.
pub fn lemonsqueezy_header(secret: &[u8], body: &[u8]) -> String {
    hex::encode(hmac_sha256(secret, &[body]))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const BODY: &[u8] = br#"{"id":"evt_1","type":"invoice.paid"}"#;

    #[test]
    fn a_stripe_signature_from_any_rotated_secret_verifies_within_tolerance() {
        let old = b"whsec_old".to_vec();
        let new = b"whsec_new".to_vec();
        let h = stripe_header(&old, 1_000, BODY);
        assert_eq!(
            verify_stripe(&h, BODY, &[new.clone(), old.clone()], 1_200, 300),
            Ok(1_000)
        );
        // Two v1 during rotation: one of them matches.
        let sig_new = stripe_header(&new, 1_000, BODY);
        let both = format!("{h},v1={}", sig_new.split("v1=").nth(1).unwrap());
        assert_eq!(verify_stripe(&both, BODY, &[new], 1_000, 300), Ok(1_000));
    }

    #[test]
    fn stripe_refuses_stale_forged_tampered_and_malformed_headers() {
        let s = b"whsec_x".to_vec();
        let h = stripe_header(&s, 1_000, BODY);
        assert_eq!(
            verify_stripe(&h, BODY, std::slice::from_ref(&s), 1_301, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_stripe(&h, BODY, std::slice::from_ref(&s), 699, 300),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_stripe(&h, b"{}", std::slice::from_ref(&s), 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_stripe(&h, BODY, &[b"other".to_vec()], 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        let forged = "t=1000,v1=0000000000000000000000000000000000000000000000000000000000000000";
        assert_eq!(
            verify_stripe(forged, BODY, std::slice::from_ref(&s), 1_000, 300),
            Err(SignatureError::Mismatch)
        );
        for bad in ["", "t=abc,v1=00", "v1=00", "t=1000", "garbage"] {
            assert_eq!(
                verify_stripe(bad, BODY, std::slice::from_ref(&s), 1_000, 300),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        // A changed timestamp breaks the signature.
        let moved = h.replace("t=1000", "t=1001");
        assert_eq!(
            verify_stripe(&moved, BODY, &[s], 1_000, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn lemonsqueezy_signatures_verify_only_for_the_exact_body_and_secret() {
        let s = b"lemon".to_vec();
        let h = lemonsqueezy_header(&s, BODY);
        assert_eq!(
            verify_lemonsqueezy(&h, BODY, std::slice::from_ref(&s)),
            Ok(())
        );
        assert_eq!(
            verify_lemonsqueezy(&h, b"{}", std::slice::from_ref(&s)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_lemonsqueezy(&h, BODY, &[b"x".to_vec()]),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_lemonsqueezy("zz", BODY, &[s]),
            Err(SignatureError::Malformed)
        );
    }
}
