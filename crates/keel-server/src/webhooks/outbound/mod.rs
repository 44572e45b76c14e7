//! Outbound webhooks per the Standard Webhooks spec: products register endpoints for Keel
//! event types (admin API in [`routes`]); store operations write events to the outbox in
//! the transaction of the change that caused them; the [`worker`] on every node claims due
//! deliveries, signs and POSTs them, and records every attempt with its retry schedule.

pub mod clock;
pub mod deliver;
mod dto;
mod messages;
pub(crate) mod routes;
pub mod settings;
pub mod worker;

pub use clock::{Clock, ManualClock, SystemClock};
pub use settings::WebhookSettings;
pub use worker::Worker;
