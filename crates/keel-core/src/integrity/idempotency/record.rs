//! From a caller's key to what is stored. Nothing stored reveals the key or the
//! response without it: the record id is a SHA-256 of the key and its scope, the request
//! fingerprint is an HMAC under a key derived from it, and the kept response (which can
//! hold a secret shown once, like a new API key) is sealed with ChaCha20-Poly1305 under
//! another derived key. A database reader sees ids, statuses and sizes, nothing more.

use rand::rngs::OsRng;
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::hmac;
use sha2::{Digest, Sha256};

use super::IdempotencyKey;

/// Format version of an encoded response (the first byte before sealing).
const FORMAT: u8 = 1;

/// The derived id and keys of one (scope, method, path, key).
#[derive(Clone)]
pub struct RecordKeys {
    id: String,
    fingerprint_key: hmac::Key,
    seal_key: [u8; 32],
}

/// A response as kept for replay: status, allow-listed headers and the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeptResponse {
    /// The HTTP status.
    pub status: u16,
    /// Header names (lower case) and raw values, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, byte for byte.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for RecordKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordKeys({}, keys redacted)", self.id)
    }
}

/// Feeds length-prefixed parts so that no two different part lists hash alike.
fn framed(parts: &[&[u8]], mut feed: impl FnMut(&[u8])) {
    for part in parts {
        feed(&(part.len() as u64).to_be_bytes());
        feed(part);
    }
}

impl RecordKeys {
    /// Derives the record id and keys. `scope` names the caller (e.g. `user:usr_…`), so
    /// one key used by two callers, or on two routes, makes two unrelated records.
    pub fn derive(scope: &str, method: &str, path: &str, key: &IdempotencyKey) -> RecordKeys {
        let (scope, method, path, raw) = (
            scope.as_bytes(),
            method.as_bytes(),
            path.as_bytes(),
            key.as_str().as_bytes(),
        );
        let mut id = Sha256::new();
        framed(
            &[b"keel/idempotency/id/v1", scope, method, path, raw],
            |p| id.update(p),
        );
        let mut base = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, raw));
        framed(&[b"keel/idempotency/keys/v1", scope, method, path], |p| {
            base.update(p)
        });
        let base = hmac::Key::new(hmac::HMAC_SHA256, base.sign().as_ref());
        let fingerprint_key = hmac::sign(&base, b"fingerprint");
        let mut seal_key = [0u8; 32];
        seal_key.copy_from_slice(hmac::sign(&base, b"seal").as_ref());
        RecordKeys {
            id: hex::encode(id.finalize()),
            fingerprint_key: hmac::Key::new(hmac::HMAC_SHA256, fingerprint_key.as_ref()),
            seal_key,
        }
    }

    /// The record id: 64 hex digits.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The request's fingerprint: method, path, query, content type (trimmed, lower
    /// case) and body. A retry must repeat all of them to be recognised as the same.
    pub fn fingerprint(
        &self,
        method: &str,
        path: &str,
        query: &str,
        content_type: &str,
        body: &[u8],
    ) -> Vec<u8> {
        let content_type = content_type.trim().to_ascii_lowercase();
        let mut ctx = hmac::Context::with_key(&self.fingerprint_key);
        framed(
            &[
                method.as_bytes(),
                path.as_bytes(),
                query.as_bytes(),
                content_type.as_bytes(),
                body,
            ],
            |p| ctx.update(p),
        );
        ctx.sign().as_ref().to_vec()
    }

    /// Encodes and seals a response: a random nonce, then the ciphertext and its tag,
    /// bound to the record id. `None` only if the cipher refuses (it does not).
    pub fn seal(&self, response: &KeptResponse) -> Option<Vec<u8>> {
        let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &self.seal_key).ok()?);
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let mut data = encode(response)?;
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(self.id.as_bytes()),
            &mut data,
        )
        .ok()?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&data);
        Some(sealed)
    }

    /// Opens a sealed response; `None` when it was not sealed by these keys or is damaged.
    pub fn open(&self, sealed: &[u8]) -> Option<KeptResponse> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, data) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let key = LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, &self.seal_key).ok()?);
        let mut data = data.to_vec();
        let plain = key
            .open_in_place(nonce, Aad::from(self.id.as_bytes()), &mut data)
            .ok()?;
        decode(plain)
    }
}

/// `FORMAT`, status (u16), header count (u16), each header as name and value with u16
/// lengths, then the body.
fn encode(r: &KeptResponse) -> Option<Vec<u8>> {
    let head: usize = r.headers.iter().map(|(n, v)| 4 + n.len() + v.len()).sum();
    let mut out = Vec::with_capacity(5 + head + r.body.len() + 16);
    out.push(FORMAT);
    out.extend_from_slice(&r.status.to_be_bytes());
    out.extend_from_slice(&u16::try_from(r.headers.len()).ok()?.to_be_bytes());
    for (name, value) in &r.headers {
        for part in [name.as_bytes(), value.as_slice()] {
            out.extend_from_slice(&u16::try_from(part.len()).ok()?.to_be_bytes());
            out.extend_from_slice(part);
        }
    }
    out.extend_from_slice(&r.body);
    Some(out)
}

fn decode(data: &[u8]) -> Option<KeptResponse> {
    let mut rest = data;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = (rest.get(..n)?, rest.get(n..)?);
        rest = tail;
        Some(head)
    };
    let u16_of = |b: &[u8]| Some(u16::from_be_bytes(b.try_into().ok()?));
    if take(1)? != [FORMAT] {
        return None;
    }
    let status = u16_of(take(2)?)?;
    let count = u16_of(take(2)?)?;
    let mut headers = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let len = u16_of(take(2)?)?;
        let name = String::from_utf8(take(usize::from(len))?.to_vec()).ok()?;
        let len = u16_of(take(2)?)?;
        headers.push((name, take(usize::from(len))?.to_vec()));
    }
    Some(KeptResponse {
        status,
        headers,
        body: rest.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(s: &str) -> IdempotencyKey {
        IdempotencyKey::parse(s.as_bytes()).unwrap()
    }

    fn response() -> KeptResponse {
        KeptResponse {
            status: 201,
            headers: vec![
                ("content-type".into(), b"application/json".to_vec()),
                ("location".into(), b"/v1/api-keys/key_1".to_vec()),
            ],
            body: br#"{"key":"keel_live_secret"}"#.to_vec(),
        }
    }

    #[test]
    fn ids_depend_on_every_part_of_the_scope_and_never_show_the_key() {
        let base = RecordKeys::derive("user:a", "POST", "/v1/x", &key("k1"));
        assert_eq!(base.id().len(), 64);
        assert_eq!(
            base.id(),
            RecordKeys::derive("user:a", "POST", "/v1/x", &key("k1")).id()
        );
        for other in [
            RecordKeys::derive("user:b", "POST", "/v1/x", &key("k1")),
            RecordKeys::derive("user:a", "PUT", "/v1/x", &key("k1")),
            RecordKeys::derive("user:a", "POST", "/v1/y", &key("k1")),
            RecordKeys::derive("user:a", "POST", "/v1/x", &key("k2")),
            // Framing: moving a boundary changes the id.
            RecordKeys::derive("user:aP", "OST", "/v1/x", &key("k1")),
        ] {
            assert_ne!(base.id(), other.id());
        }
        assert!(!format!("{base:?}").contains("k1"));
    }

    #[test]
    fn fingerprints_tell_requests_apart() {
        let k = RecordKeys::derive("user:a", "POST", "/v1/x", &key("k1"));
        let fp = |q: &str, ct: &str, body: &[u8]| k.fingerprint("POST", "/v1/x", q, ct, body);
        let base = fp("", "application/json", b"{}");
        assert_eq!(base, fp("", " Application/JSON ", b"{}"));
        assert_ne!(base, fp("a=1", "application/json", b"{}"));
        assert_ne!(base, fp("", "text/plain", b"{}"));
        assert_ne!(base, fp("", "application/json", b"{ }"));
        // The same request under another key has an unrelated fingerprint.
        let other = RecordKeys::derive("user:a", "POST", "/v1/x", &key("k2"));
        assert_ne!(
            base,
            other.fingerprint("POST", "/v1/x", "", "application/json", b"{}")
        );
    }

    #[test]
    fn a_sealed_response_opens_to_itself_and_hides_its_body() {
        let k = RecordKeys::derive("user:a", "POST", "/v1/x", &key("k1"));
        let sealed = k.seal(&response()).unwrap();
        assert!(!sealed
            .windows(b"keel_live_secret".len())
            .any(|w| w == b"keel_live_secret"));
        assert_eq!(k.open(&sealed), Some(response()));
        // Fresh nonce each time.
        assert_ne!(sealed, k.seal(&response()).unwrap());
    }

    #[test]
    fn a_response_opens_only_with_its_own_keys_and_intact() {
        let k = RecordKeys::derive("user:a", "POST", "/v1/x", &key("k1"));
        let sealed = k.seal(&response()).unwrap();
        let other = RecordKeys::derive("user:b", "POST", "/v1/x", &key("k1"));
        assert_eq!(other.open(&sealed), None);
        let mut damaged = sealed.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert_eq!(k.open(&damaged), None);
        assert_eq!(k.open(&sealed[..5]), None);
        assert_eq!(k.open(&[]), None);
    }

    #[test]
    fn empty_bodies_and_no_headers_round_trip() {
        let k = RecordKeys::derive("service:worker", "DELETE", "/v1/y", &key("k"));
        let empty = KeptResponse {
            status: 204,
            headers: vec![],
            body: vec![],
        };
        assert_eq!(k.open(&k.seal(&empty).unwrap()), Some(empty));
    }

    #[test]
    fn truncated_encodings_are_refused() {
        let encoded = encode(&response()).unwrap();
        // Cutting inside the headers breaks the framing; the body is whatever follows.
        for cut in [0, 1, 3, 5, 8, 20] {
            assert_eq!(decode(&encoded[..cut]), None, "cut at {cut}");
        }
        assert_eq!(decode(&encoded), Some(response()));
        let mut other_format = encoded.clone();
        other_format[0] = 2;
        assert_eq!(decode(&other_format), None);
    }
}
