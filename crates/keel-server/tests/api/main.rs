//! Black-box tests of the HTTP server. The backend is SQLite unless
//! `KEEL_TEST_BACKEND=postgres`, in which case each test gets a throwaway database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod api_keys;
mod billing;
mod billing_levers;
mod billing_priced;
mod billing_rolling;
mod billing_tenant;
mod billing_usage;
mod billing_walk;
mod errors;
mod gateway_breakers;
mod gateway_faults;
mod gateway_inprocess;
mod gateway_providers;
mod gateway_resilience;
mod gateway_sim;
mod helpers;
mod idempotency;
mod idempotency_edges;
mod identity;
mod integrity_combined;
mod lifecycle;
mod ops;
mod profile;
mod rate_limits;
mod rate_limits_cluster;
mod security_headers;
mod signing;
mod signing_keys;
mod tokens;
mod wallet;
