//! Webhooks: outbound deliveries to the product's endpoints.

pub mod outbound;
