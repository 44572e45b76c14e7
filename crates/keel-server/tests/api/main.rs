//! Black-box tests of the HTTP server. The backend is SQLite unless
//! `KEEL_TEST_BACKEND=postgres`, in which case each test gets a throwaway database.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod api_keys;
mod billing;
mod billing_priced;
mod billing_tenant;
mod billing_usage;
mod billing_walk;
mod errors;
mod helpers;
mod identity;
mod lifecycle;
mod ops;
mod tokens;
mod wallet;
