//! Inbound webhooks from the app stores and payment providers: verified at the door,
//! kept in the durable inbox, applied to subscriptions by a worker with retries and a
//! dead letter (`docs/webhooks.md`); and outbound deliveries to the product's endpoints
//! ([`outbound`], `docs/webhooks-outbound.md`).

mod apply;
pub mod appstore;
pub mod config;
mod customer;
pub mod googleplay;
pub(crate) mod links;
pub(crate) mod routes;
pub mod worker;

pub mod outbound;

pub use config::WebhookSettings;
