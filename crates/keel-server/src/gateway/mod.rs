//! The LLM gateway context. For now its foundation: the provider adapters that call
//! upstream LLM APIs (the public routes, routing, budgets and metering build on them).

pub mod providers;
