//! The LLM gateway context: the provider adapters that call upstream LLM APIs and the
//! resilience engine (retries, fallbacks, timeouts, circuit breakers) in front of them.

pub mod providers;
pub mod resilience;
