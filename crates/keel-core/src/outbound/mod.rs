//! Outbound webhooks, the pure parts: Keel's event types, the Standard Webhooks signature
//! (<https://www.standardwebhooks.com>), endpoint secrets, the retry schedule, endpoint URL
//! rules and quota thresholds. No I/O here; delivery lives in the server.

mod event;
mod schedule;
mod signature;
mod url;

pub use event::{threshold_crossings, EventType, UnknownEventType, THRESHOLDS};
pub use schedule::{next_attempt_after, DISABLE_AFTER, RETRY_SCHEDULE};
pub use signature::{sign, signature_header, EndpointSecret, InvalidSecret};
pub use url::{check_endpoint_url, UrlError};
