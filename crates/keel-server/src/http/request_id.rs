//! Request ids: a valid incoming `x-request-id` is kept, otherwise a UUIDv7 is made; it
//! is echoed on every response and visible to error envelopes and logs of the request.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;

/// The header carrying the request id.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled on this task, if any.
pub fn current() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Runs `fut` with the current request's id in scope: for work a request spawns onto
/// another task, so its logs and error envelopes still name the request.
pub fn carry<F: std::future::Future>(fut: F) -> impl std::future::Future<Output = F::Output> {
    REQUEST_ID.scope(current().unwrap_or_default(), fut)
}

/// The request id, also available to handlers as an extension.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// Accepts ids a client or proxy plausibly made; anything else is replaced.
pub fn is_valid(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// Middleware: assigns the id, scopes it to the request's task and echoes it.
pub async fn assign(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_valid(v))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut res = REQUEST_ID.scope(id.clone(), next.run(req)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(X_REQUEST_ID, value);
    }
    res
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn plausible_ids_are_kept_and_others_refused() {
        assert!(is_valid("0192f0c2-7d1e-7c3a-9b1e-1234567890ab"));
        assert!(is_valid("req_abc.def:1"));
        assert!(!is_valid(""));
        assert!(!is_valid("has space"));
        assert!(!is_valid("<script>"));
        assert!(!is_valid(&"a".repeat(129)));
    }
}
