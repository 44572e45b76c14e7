//! The optional shared Redis connection. With `redis_url` configured, cross-node state
//! that must be exact in real time (signature nonces, rate limits) lives in Redis.

use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::app::StartError;

/// Connects (and checks with `PING`) within `timeout`; the URL's password is never echoed.
pub async fn connect(url: &str, timeout: Duration) -> Result<ConnectionManager, StartError> {
    let client = ::redis::Client::open(url).map_err(|e| StartError::Redis(redact(&e)))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1);
    let connect = ConnectionManager::new_with_config(client, config);
    let mut conn = tokio::time::timeout(timeout, connect)
        .await
        .map_err(|_| StartError::Redis(format!("no answer within {} ms", timeout.as_millis())))?
        .map_err(|e| StartError::Redis(redact(&e)))?;
    let _: String = ::redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(|e| StartError::Redis(redact(&e)))?;
    Ok(conn)
}

fn redact(e: &::redis::RedisError) -> String {
    // Redis errors name the kind and the server's message, never the URL or password.
    format!(
        "{:?}: {}",
        e.kind(),
        e.detail().unwrap_or("connection failed")
    )
}
