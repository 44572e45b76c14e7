//! Running a claimed request, keeping its response, and replaying a kept one.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures::{FutureExt, StreamExt};
use http_body_util::BodyExt;
use keel_core::integrity::idempotency::{
    is_kept_status, is_replayed_header, KeptResponse, RecordKeys, MAX_KEPT_BODY, REPLAYED_HEADER,
};
use keel_store::{DynStore, KeptRecord, TenantScope};
use tracing::Instrument;
use uuid::Uuid;

use crate::http::{middleware as mw, request_id};
use crate::ApiError;

/// A claim this request holds, and what is needed to complete or release it.
pub(super) struct Held {
    pub store: DynStore,
    pub scope: TenantScope,
    pub id: String,
    pub lock: Uuid,
    pub keys: RecordKeys,
    pub ttl: Duration,
}

impl Held {
    async fn release(&self) {
        match self
            .store
            .release_idempotency(&self.scope, &self.id, self.lock)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(record = %self.id, "idempotency claim was lost before release")
            }
            Err(e) => {
                tracing::warn!(record = %self.id, error = %e, "idempotency claim not released; it frees itself when its lock expires")
            }
        }
    }

    async fn complete(&self, status: u16, sealed: Vec<u8>) {
        let kept = KeptRecord {
            status,
            response: sealed,
        };
        let expires_at = super::after(Utc::now(), self.ttl);
        match self
            .store
            .complete_idempotency(&self.scope, &self.id, self.lock, kept, expires_at)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(record = %self.id, "idempotency claim was lost before completion; the response is not kept")
            }
            Err(e) => tracing::warn!(record = %self.id, error = %e, "idempotent response not kept"),
        }
    }
}

/// Runs the handler on its own task, so a client that disconnects (which drops this
/// future) does not cut the request half-way: it finishes, and its response is kept
/// for the retry. The handler gets `timeout`, as everywhere, so the lock bounds it.
pub(super) async fn execute(held: Held, timeout: Duration, req: Request, next: Next) -> Response {
    let work = async move {
        let run = mw::timeout(State(timeout), req, next);
        let res = match AssertUnwindSafe(run).catch_unwind().await {
            Ok(res) => res,
            Err(payload) => mw::panic_response(payload),
        };
        keep(held, res).await
    };
    let task = tokio::spawn(request_id::carry(work).instrument(tracing::Span::current()));
    match task.await {
        Ok(res) => res,
        Err(e) => {
            ApiError::internal(format!("idempotent request task failed: {e}")).into_response()
        }
    }
}

/// Keeps a response that answers the request, releases the claim of one that does not
/// (a refusal, a failure, a stream, or a body over [`MAX_KEPT_BODY`]), and returns it.
async fn keep(held: Held, res: Response) -> Response {
    let status = res.status().as_u16();
    if !is_kept_status(status) || is_stream(&res) {
        held.release().await;
        return res;
    }
    let (parts, body) = res.into_parts();
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut size = 0usize;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let data = match frame {
            Ok(frame) => match frame.into_data() {
                Ok(data) => data,
                Err(_trailers) => continue,
            },
            Err(e) => {
                held.release().await;
                return ApiError::internal(format!("response body failed: {e}")).into_response();
            }
        };
        size += data.len();
        chunks.push(data);
        if size > MAX_KEPT_BODY {
            // Too big to keep: hand it on as read so far plus the rest, unkept.
            held.release().await;
            let head = futures::stream::iter(chunks.into_iter().map(Ok::<_, axum::Error>));
            let body = Body::from_stream(head.chain(body.into_data_stream()));
            return Response::from_parts(parts, body);
        }
    }
    let bytes = Bytes::from(chunks.concat());
    let kept = KeptResponse {
        status,
        headers: parts
            .headers
            .iter()
            .filter(|(name, _)| is_replayed_header(name.as_str()))
            .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec()))
            .collect(),
        body: bytes.to_vec(),
    };
    match held.keys.seal(&kept) {
        Some(sealed) => held.complete(status, sealed).await,
        None => held.release().await,
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// An event stream is delivered as it is produced, never buffered, so never kept.
fn is_stream(res: &Response) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("text/event-stream"))
}

/// The kept response, byte for byte, marked as a replay.
pub(super) fn replay(keys: &RecordKeys, kept: &KeptRecord) -> Response {
    let Some(original) = keys.open(&kept.response) else {
        return ApiError::internal("a kept idempotent response did not open").into_response();
    };
    let mut res = Response::new(Body::from(original.body));
    *res.status_mut() =
        StatusCode::from_u16(original.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in original.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            res.headers_mut().append(name, value);
        }
    }
    res.headers_mut().insert(
        HeaderName::from_static(REPLAYED_HEADER),
        HeaderValue::from_static("true"),
    );
    res
}
