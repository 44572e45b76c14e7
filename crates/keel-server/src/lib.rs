//! Keel's HTTP server: the axum application assembled from one router per context,
//! the middleware every request passes through, and the process lifecycle.

pub mod admin;
mod app;
pub mod billing;
pub mod config;
pub mod gateway;
mod http;
pub mod identity;
pub mod integrity;
pub mod jobs;
mod ops;
mod state;
pub mod telemetry;
pub mod webhooks;

pub use app::{shutdown_signal, Application, StartError};
pub use config::{ConfigError, LogFormat, Settings};
pub use http::error::ApiError;
pub use http::json::ApiJson;
pub use http::request_id::RequestId;
pub use state::AppState;
