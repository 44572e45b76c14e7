//! Browser-facing protection on every response: a strict set of security headers (each
//! kept if a route set its own), `Strict-Transport-Security` when configured, and CORS for
//! an explicit allow-list of origins only.

use std::time::Duration;

use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware;
use axum::response::Response;
use axum::Router;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::{AppState, Settings};

/// How long browsers may cache a preflight answer.
pub const CORS_MAX_AGE: Duration = Duration::from_secs(3600);

/// Request headers a browser client may send.
const ALLOWED_HEADERS: [&str; 6] = [
    "authorization",
    "content-type",
    "accept",
    "idempotency-key",
    "x-keel-feature",
    "x-request-id",
];

/// Response headers a browser client may read.
const EXPOSED_HEADERS: [&str; 6] = [
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "retry-after",
    "idempotent-replayed",
    "x-request-id",
];

/// Adds the security headers (outermost) and, with `cors_origins` set, CORS. Public so
/// the benchmark can measure this layer alone.
pub fn wrap(router: Router<AppState>, settings: &Settings) -> Router<AppState> {
    let router = match cors(&settings.cors_origins) {
        // Outside CORS: a refused origin's preflight keeps no CORS header at all.
        Some(cors) => router
            .layer(cors)
            .layer(middleware::map_response(strip_refused_preflight)),
        None => router,
    };
    let fixed: [(HeaderName, &'static str); 5] = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        ),
    ];
    let mut router = router;
    for (name, value) in fixed {
        let value = HeaderValue::from_static(value);
        router = router.layer(SetResponseHeaderLayer::if_not_present(name, value));
    }
    match settings.hsts.as_deref().map(HeaderValue::from_str) {
        Some(Ok(value)) => router.layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            value,
        )),
        Some(Err(_)) => {
            tracing::error!("hsts is not a valid header value; Strict-Transport-Security is off");
            router
        }
        None => router,
    }
}

fn cors(origins: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    let names = |list: &[&'static str]| -> Vec<HeaderName> {
        list.iter().map(|h| HeaderName::from_static(h)).collect()
    };
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers(names(&ALLOWED_HEADERS))
            .expose_headers(names(&EXPOSED_HEADERS))
            .max_age(CORS_MAX_AGE),
    )
}

/// tower-http answers every preflight with the allowed methods and headers; for an origin
/// that is not allowed those say nothing useful, so they go.
async fn strip_refused_preflight(mut res: Response) -> Response {
    let headers = res.headers_mut();
    if !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN) {
        for name in [
            header::ACCESS_CONTROL_ALLOW_METHODS,
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            header::ACCESS_CONTROL_MAX_AGE,
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
        ] {
            headers.remove(name);
        }
    }
    res
}

/// Parses `cors_origins`: comma-separated exact origins (`https://app.example.com`,
/// `http://localhost:3000`); `*` and paths are refused.
pub fn parse_origins(text: &str) -> Result<Vec<String>, &'static str> {
    const EXPECTED: &str =
        "comma-separated exact origins like https://app.example.com (no path, no `*`)";
    let mut origins = Vec::new();
    for origin in text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let rest = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .ok_or(EXPECTED)?;
        let host_ok = !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
        if !host_ok || HeaderValue::from_str(origin).is_err() {
            return Err(EXPECTED);
        }
        origins.push(origin.to_ascii_lowercase());
    }
    Ok(origins)
}

/// Parses `hsts`: `max-age=<seconds>` then optionally `includeSubDomains` and `preload`,
/// separated by `;`. Empty turns the header off.
pub fn parse_hsts(text: &str) -> Result<Option<String>, &'static str> {
    const EXPECTED: &str = "max-age=<seconds>[; includeSubDomains][; preload]";
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let mut parts = text.split(';').map(str::trim);
    let max_age = parts
        .next()
        .and_then(|p| p.strip_prefix("max-age="))
        .ok_or(EXPECTED)?;
    if max_age.is_empty() || !max_age.bytes().all(|b| b.is_ascii_digit()) {
        return Err(EXPECTED);
    }
    for part in parts {
        if !(part.eq_ignore_ascii_case("includeSubDomains") || part.eq_ignore_ascii_case("preload"))
        {
            return Err(EXPECTED);
        }
    }
    Ok(Some(text.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn origins_must_be_exact() {
        assert_eq!(
            parse_origins(" https://App.example.com, http://localhost:3000 ").unwrap(),
            ["https://app.example.com", "http://localhost:3000"]
        );
        assert!(parse_origins("").unwrap().is_empty());
        for bad in [
            "*",
            "https://*.example.com",
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "ftp://x",
            "https://",
        ] {
            assert!(parse_origins(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hsts_needs_a_max_age_and_known_directives() {
        assert_eq!(parse_hsts("").unwrap(), None);
        assert_eq!(
            parse_hsts("max-age=63072000; includeSubDomains; preload").unwrap(),
            Some("max-age=63072000; includeSubDomains; preload".into())
        );
        for bad in [
            "includeSubDomains",
            "max-age=",
            "max-age=1y",
            "max-age=1; sometimes",
        ] {
            assert!(parse_hsts(bad).is_err(), "{bad}");
        }
    }
}
