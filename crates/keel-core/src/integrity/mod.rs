//! Integrity: the pure logic behind rate limits (and, beside it, request signing).

pub mod rate;
