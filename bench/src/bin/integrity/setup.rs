//! The nodes the integrity benchmark drives: Keel built in process on SQLite (a temp dir),
//! optionally with Redis, with a few trivial routes, and a user, an API key and a service
//! key to call them with.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use keel_core::ids::TenantId;
use keel_server::config::Layers;
use keel_server::identity::AuthUser;
use keel_server::integrity::{ServiceCaller, ServiceKeys};
use keel_server::{AppState, Application, Settings};
use tower::ServiceExt;
use utoipa_axum::router::OpenApiRouter;

/// The service secret of the benchmark's `worker` service (32+ bytes).
pub const SERVICE_SECRET: &str = "0123456789abcdef0123456789abcdef-bench";
/// A `GET` the client API answers after authenticating the caller (class `api`).
pub const PING: &str = "/v1/bench/ping";
/// A `POST` of the client API that answers with a small JSON body (class `api`).
pub const ECHO: &str = "/v1/bench/echo";
/// A `POST` of the service API (class `service`).
pub const SERVICE: &str = "/v1/service/bench";

/// One Keel node, in process.
pub struct Node {
    /// The assembled router, every layer included.
    pub router: Router,
    /// Its state.
    pub state: AppState,
    /// An access token of a signed-up user.
    pub access: String,
    /// An API key of that user.
    pub api_key: String,
    /// The user's tenant.
    pub tenant: TenantId,
    _dir: tempfile::TempDir,
}

/// The benchmark's own routes; each authenticates its caller, as real handlers do.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .route(PING, get(|_: AuthUser| async { "ok" }))
        .route(
            ECHO,
            post(|_: AuthUser, _body: Bytes| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"ok":true}"#,
                )
            }),
        )
        .route(
            SERVICE,
            post(|_: ServiceCaller, _body: Bytes| async { "ok" }),
        )
}

/// The settings every node starts from: SQLite in `dir`, ephemeral ports, one service key.
pub fn settings(dir: &std::path::Path) -> anyhow::Result<Settings> {
    let mut settings = Settings::resolve(&Layers::default())?;
    settings.addr = "127.0.0.1:0".parse()?;
    settings.metrics_addr = "127.0.0.1:0".parse()?;
    settings.data_dir = dir.join("data");
    settings.database_url = None;
    settings.service_keys =
        ServiceKeys::parse(&format!("worker:{SERVICE_SECRET}")).map_err(anyhow::Error::msg)?;
    Ok(settings)
}

/// A product with one plan and the given `[rate_limits.*]` TOML.
pub fn manifest(limits: &str) -> String {
    format!("[product]\nname = \"bench\"\ndefault_plan = \"free\"\n[plans.free]\n{limits}")
}

/// Builds a node with `limits`, in-process state, or Redis at `redis` under a prefix of its own.
pub async fn node(limits: &str, redis: Option<&str>) -> anyhow::Result<Node> {
    let dir = tempfile::tempdir()?;
    let mut settings = settings(dir.path())?;
    if let Some(url) = redis {
        settings.redis_url = Some(url.to_string());
        settings.redis_prefix = format!("keel-bench-{}:", uuid::Uuid::now_v7().simple());
    }
    let manifest = keel_core::manifest::parse_str(&manifest(limits), "bench.toml")?;
    let app = Application::build_with(settings, manifest, routes()).await?;
    let (router, state) = (app.router(), app.state().clone());
    drop(app);
    let email = format!("bench-{}@example.com", uuid::Uuid::now_v7().simple());
    let body = serde_json::json!({"email": email, "password": "tangerine-orbit-42"});
    let signed = json(&router, post_json("/v1/auth/register", None, &body)).await?;
    let access = text(&signed["access_token"])?;
    let me = json(&router, request(Method::GET, "/v1/me", Some(&access))).await?;
    let tenant: TenantId = text(&me["tenant_id"])?.parse()?;
    let body = serde_json::json!({"name": "bench", "scopes": ["all"]});
    let key = json(&router, post_json("/v1/api-keys", Some(&access), &body)).await?;
    let api_key = text(&key["key"])?;
    Ok(Node {
        router,
        state,
        access,
        api_key,
        tenant,
        _dir: dir,
    })
}

fn text(v: &serde_json::Value) -> anyhow::Result<String> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("expected a string, got {v}"))
}

/// The peer address every benchmark request comes from (so `ip` limits apply).
pub fn peer() -> ConnectInfo<SocketAddr> {
    ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40_000)))
}

/// A request from [`peer`] with an optional bearer credential and no body.
pub fn request(method: Method, path: &str, bearer: Option<&str>) -> Request<Body> {
    with_body(method, path, bearer, Body::empty())
}

/// A JSON `POST` from [`peer`].
pub fn post_json(path: &str, bearer: Option<&str>, body: &serde_json::Value) -> Request<Body> {
    post_bytes(path, bearer, Bytes::from(body.to_string()))
}

/// A `POST` of JSON bytes from [`peer`].
pub fn post_bytes(path: &str, bearer: Option<&str>, body: Bytes) -> Request<Body> {
    let mut req = with_body(Method::POST, path, bearer, Body::from(body));
    req.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    req
}

fn with_body(method: Method, path: &str, bearer: Option<&str>, body: Body) -> Request<Body> {
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = axum::http::Uri::try_from(path).unwrap_or_default();
    if let Some(token) = bearer {
        if let Ok(v) = header::HeaderValue::from_str(&format!("Bearer {token}")) {
            req.headers_mut().insert(header::AUTHORIZATION, v);
        }
    }
    req.extensions_mut().insert(peer());
    req
}

/// Sends a setup request and returns its JSON answer, failing on a non-2xx status.
async fn json(router: &Router, req: Request<Body>) -> anyhow::Result<serde_json::Value> {
    let res = router.clone().oneshot(req).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    anyhow::ensure!(
        status.is_success(),
        "setup request failed with {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok(serde_json::from_slice(&body)?)
}
