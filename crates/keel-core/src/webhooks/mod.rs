//! Inbound store and payment webhooks as pure logic: signature checks that need only a
//! shared secret (Stripe, Lemon Squeezy), each provider's events read into one
//! [`StoreEvent`], and the subscription state an event leads to.
//!
//! Certificate chains (App Store) and OIDC tokens (Google Pub/Sub push) are verified at
//! the edge, in the server; what they vouch for is read here.

pub mod appstore;
pub mod event;
pub mod googleplay;
pub mod hmac_sig;
pub mod lemonsqueezy;
pub mod state;
pub mod stripe;

pub use event::{EventKind, ReadError, StoreEvent, UserRef};
pub use hmac_sig::{verify_lemonsqueezy, verify_stripe, SignatureError};
pub use state::{next_state, SubState};

/// The providers Keel takes webhooks from, as named in paths, the inbox and manifests.
pub const PROVIDERS: [&str; 4] = ["stripe", "appstore", "googleplay", "lemonsqueezy"];

#[cfg(test)]
mod read_tests;
