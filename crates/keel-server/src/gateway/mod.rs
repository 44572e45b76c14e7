//! The LLM gateway context: the OpenAI-compatible surface (`/v1/chat/completions`,
//! `/v1/models`), routing by plan, feature and model class, token budgets, the safety
//! precheck, budget admission and settlement through billing, the provider adapters, and
//! the resilience engine (retries, fallbacks, timeouts, circuit breakers) in front of them.

mod chat;
pub mod dispatch;
pub mod errors;
pub mod headers;
pub mod metering;
mod models;
pub mod providers;
pub mod registry;
mod request;
pub mod safety;
mod schema;
pub mod settle;
pub mod stream;
pub mod tokens;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use registry::Registry;

use crate::AppState;

/// The gateway's client routes.
pub(crate) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(chat::create_chat_completion))
        .routes(routes!(models::list_models))
}
pub mod resilience;
