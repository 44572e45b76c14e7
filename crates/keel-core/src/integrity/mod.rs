//! Pure integrity rules: the canonical form of a signed service call, HMAC signing and
//! verification, the signature headers' formats, service key configuration, the bounded
//! nonce window (the exact scheme is specified in `docs/signing.md`), GCRA rate limits, and the records of transport-level idempotency keys.

pub mod canonical;
pub mod idempotency;
pub mod keys;
pub mod nonce_window;
pub mod rate;
pub mod signing;
pub mod verify;

pub use canonical::{body_sha256, canonical_query, split_target, CanonicalRequest};
pub use keys::{BearerRefusal, Lookup, Secret, ServiceKey, ServiceKeys};
pub use nonce_window::{Claim, NonceWindow};
pub use signing::{
    new_nonce, nonce_ttl_secs, sign_v1, sign_v2, Version, KEY_ID_HEADER, NONCE_HEADER,
    SIGNATURE_HEADER, TIMESTAMP_HEADER,
};
pub use verify::{verify, Refusal, SignatureHeaders, SignedRequest, Verified};
