//! Opaque secrets (refresh tokens, API keys, admin session tokens): random, shown once,
//! stored only as a SHA-256 hash, compared in constant time.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A random token with a prefix: `<prefix>_<43 base64url chars>` (256 bits).
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("{prefix}_{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// SHA-256 of a secret: these secrets carry 128+ bits of entropy, so a fast hash is
/// enough and makes lookup by hash possible.
pub fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Constant-time equality of two byte strings.
pub fn equal_ct(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A new API key and what may be stored of it.
#[derive(Clone, Debug)]
pub struct ApiKeySecret {
    /// The full key, shown to its owner once.
    pub key: String,
    /// The display prefix stored beside the hash, e.g. `keel_live_Ab3dE6`.
    pub prefix: String,
    /// SHA-256 of the key.
    pub hash: Vec<u8>,
}

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Makes `keel_<env>_<32 base62 chars>` (about 190 bits of entropy). `env` is a short
/// lower-case word such as `live` or `test`.
pub fn api_key(env: &str) -> ApiKeySecret {
    let mut body = String::with_capacity(32);
    let mut rng = OsRng;
    while body.len() < 32 {
        // Rejection sampling keeps every character equally likely.
        let b = (rng.next_u32() & 0xff) as u8;
        if b < 248 {
            body.push(char::from(BASE62[usize::from(b % 62)]));
        }
    }
    let key = format!("keel_{env}_{body}");
    let prefix = format!("keel_{env}_{}", &body[..6]);
    let hash = hash_secret(&key);
    ApiKeySecret { key, prefix, hash }
}

/// True for strings shaped like a Keel API key (to route a bearer credential).
pub fn looks_like_api_key(token: &str) -> bool {
    token.starts_with("keel_") && token.len() <= 64 && token.split('_').count() == 3
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tokens_are_random_and_prefixed() {
        let a = random_token("rt");
        let b = random_token("rt");
        assert_ne!(a, b);
        assert!(a.starts_with("rt_"));
        assert_eq!(a.len(), 3 + 43);
    }

    #[test]
    fn api_keys_have_the_documented_shape() {
        let k = api_key("live");
        assert!(k.key.starts_with("keel_live_"));
        assert_eq!(k.key.len(), "keel_live_".len() + 32);
        assert!(k.key.starts_with(&k.prefix));
        assert_eq!(k.hash, hash_secret(&k.key));
        assert!(looks_like_api_key(&k.key));
        assert!(!looks_like_api_key("eyJhbGciOi.x.y"));
    }

    #[test]
    fn constant_time_equality_matches_plain_equality() {
        assert!(equal_ct(b"abc", b"abc"));
        assert!(!equal_ct(b"abc", b"abd"));
        assert!(!equal_ct(b"abc", b"abcd"));
    }
}
