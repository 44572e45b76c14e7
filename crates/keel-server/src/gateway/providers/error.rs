//! Upstream failures, classified for the retry and fallback logic.

use std::time::Duration;

/// What went wrong with an upstream call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamErrorKind {
    /// 429: slow down (see `retry_after`).
    RateLimited,
    /// 5xx (529 included), 409, or an in-stream overload/server error.
    Unavailable,
    /// The deadline passed (or the upstream answered 408).
    Timeout,
    /// No connection, or it dropped before any response.
    Connect,
    /// The response body ended or broke before it was complete.
    StreamCut,
    /// A body or event that does not parse.
    InvalidResponse,
    /// 401/403: the deployment's key is wrong or lacks access.
    Auth,
    /// Another 4xx: the request itself is at fault.
    Rejected,
}

impl UpstreamErrorKind {
    /// A stable snake_case code for logs, metrics and API errors.
    pub fn code(&self) -> &'static str {
        match self {
            Self::RateLimited => "upstream_rate_limited",
            Self::Unavailable => "upstream_unavailable",
            Self::Timeout => "upstream_timeout",
            Self::Connect => "upstream_unreachable",
            Self::StreamCut => "upstream_stream_cut",
            Self::InvalidResponse => "upstream_invalid_response",
            Self::Auth => "upstream_auth_failed",
            Self::Rejected => "upstream_rejected",
        }
    }
}

/// A failed upstream call. Its message never holds a credential.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{provider}: {} ({message})", .kind.code())]
pub struct UpstreamError {
    /// The class of failure.
    pub kind: UpstreamErrorKind,
    /// The provider kind (`openai`, `anthropic`, ...).
    pub provider: &'static str,
    /// The upstream's HTTP status, when it answered with an error status.
    pub status: Option<u16>,
    /// The upstream's `Retry-After` (or `retry-after-ms`), parsed.
    pub retry_after: Option<Duration>,
    /// Whether output had already been yielded to the caller: then nothing may be retried.
    pub output_produced: bool,
    /// What the upstream (or the transport) said, for logs.
    pub message: String,
}

impl UpstreamError {
    /// An error of `kind` from `provider`.
    pub fn new(
        provider: &'static str,
        kind: UpstreamErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            provider,
            status: None,
            retry_after: None,
            output_produced: false,
            message: message.into(),
        }
    }

    /// The error for an HTTP error status.
    pub fn from_status(provider: &'static str, status: u16, message: impl Into<String>) -> Self {
        let kind = match status {
            429 => UpstreamErrorKind::RateLimited,
            408 => UpstreamErrorKind::Timeout,
            401 | 403 => UpstreamErrorKind::Auth,
            409 | 500..=599 => UpstreamErrorKind::Unavailable,
            400..=499 => UpstreamErrorKind::Rejected,
            _ => UpstreamErrorKind::InvalidResponse,
        };
        Self {
            status: Some(status),
            ..Self::new(provider, kind, message)
        }
    }

    /// Sets the parsed `Retry-After`.
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Whether the same call may be tried again (on this deployment or another): transient
    /// failures, and only while nothing has reached the caller.
    pub fn is_retryable(&self) -> bool {
        use UpstreamErrorKind::*;
        !self.output_produced
            && matches!(
                self.kind,
                RateLimited | Unavailable | Timeout | Connect | StreamCut | InvalidResponse
            )
    }

    /// Whether the next deployment may be tried: as for retries, plus a deployment whose
    /// key is refused (its fault, not the request's). Never for a request the upstream
    /// rejected as malformed.
    pub fn may_fall_back(&self) -> bool {
        self.is_retryable() || (!self.output_produced && self.kind == UpstreamErrorKind::Auth)
    }

    /// Whether the client's request caused it (a 4xx other than auth, rate limit, timeout).
    pub fn caused_by_request(&self) -> bool {
        self.kind == UpstreamErrorKind::Rejected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        use UpstreamErrorKind::*;
        let cases = [
            (429, RateLimited, true),
            (500, Unavailable, true),
            (502, Unavailable, true),
            (529, Unavailable, true),
            (409, Unavailable, true),
            (408, Timeout, true),
            (401, Auth, false),
            (403, Auth, false),
            (400, Rejected, false),
            (404, Rejected, false),
            (413, Rejected, false),
            (422, Rejected, false),
            (302, InvalidResponse, true),
        ];
        for (status, kind, retryable) in cases {
            let e = UpstreamError::from_status("openai", status, "x");
            assert_eq!((e.kind, e.is_retryable()), (kind, retryable), "{status}");
        }
    }

    #[test]
    fn nothing_is_retried_once_output_was_produced() {
        let mut e = UpstreamError::new("anthropic", UpstreamErrorKind::StreamCut, "cut");
        assert!(e.is_retryable() && e.may_fall_back());
        e.output_produced = true;
        assert!(!e.is_retryable() && !e.may_fall_back());
    }

    #[test]
    fn a_refused_key_falls_back_but_a_bad_request_does_not() {
        let auth = UpstreamError::from_status("openai", 401, "bad key");
        assert!(!auth.is_retryable() && auth.may_fall_back());
        let bad = UpstreamError::from_status("openai", 400, "bad request");
        assert!(!bad.may_fall_back() && bad.caused_by_request());
    }
}
