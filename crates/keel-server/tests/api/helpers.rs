use std::time::Duration;

use axum::extract::Query;
use axum::routing::{get, post};
use keel_server::config::Layers;
use keel_server::{ApiJson, AppState, Application, Settings};
use keel_store::testing::ThrowawayDb;
use serde::Deserialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use utoipa_axum::router::OpenApiRouter;

/// A running server on ephemeral ports.
pub struct TestApp {
    pub base: String,
    pub metrics: String,
    pub client: reqwest::Client,
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    pub server: Option<JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
    _db: Option<ThrowawayDb>,
}

#[derive(Deserialize)]
pub struct EchoIn {
    pub name: String,
    pub count: u32,
}

#[derive(Deserialize)]
struct SlowQuery {
    ms: u64,
}

/// Routes only tests mount: an echo through the shared JSON extractor, a panic, a slow handler.
fn test_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .route(
            "/test/echo",
            post(|ApiJson(body): ApiJson<EchoIn>| async move {
                ApiJson(serde_json::json!({"name": body.name, "count": body.count}))
            }),
        )
        .route(
            "/test/panic",
            get(|| async {
                if std::env::var("NEVER_SET_0b6f").is_err() {
                    panic!("secret internal detail 42");
                }
                "unreachable"
            }),
        )
        .route(
            "/test/slow",
            get(|Query(q): Query<SlowQuery>| async move {
                tokio::time::sleep(Duration::from_millis(q.ms)).await;
                "done"
            }),
        )
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_full(keel_core::manifest::DEMO_MANIFEST, tweak).await
}

/// The service key every test server accepts.
pub const SERVICE_TOKEN: &str = "worker.0123456789abcdef0123456789abcdef-test";

pub async fn spawn_full(manifest_src: &str, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_routes(manifest_src, OpenApiRouter::new(), tweak).await
}

/// As [`spawn_full`], mounting a test's own routes beside the shared test routes.
pub async fn spawn_routes(
    manifest_src: &str,
    extra: OpenApiRouter<AppState>,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let db = match std::env::var("KEEL_TEST_BACKEND").as_deref() {
        Ok("postgres") => Some(ThrowawayDb::create().await.expect("PostgreSQL for tests")),
        _ => None,
    };
    let mut settings = Settings::resolve(&Layers::default()).unwrap();
    settings.addr = "127.0.0.1:0".parse().unwrap();
    settings.metrics_addr = "127.0.0.1:0".parse().unwrap();
    settings.data_dir = dir.path().join("data");
    settings.database_url = db.as_ref().map(|d| d.url.clone());
    settings.service_keys =
        keel_server::integrity::ServiceKeys::parse("worker:0123456789abcdef0123456789abcdef-test")
            .unwrap();
    settings.sweep_interval = Duration::from_millis(200);
    tweak(&mut settings);
    if std::env::var("TEST_LOG").is_ok() {
        let _ = keel_server::telemetry::init_logging(keel_server::LogFormat::Pretty, None);
    }
    let manifest = keel_core::manifest::parse_str(manifest_src, "test.toml").unwrap();
    let app = Application::build_with(settings, manifest, test_routes().merge(extra))
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let metrics = format!("http://127.0.0.1:{}/metrics", app.metrics_port());
    let state = app.state().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    TestApp {
        base,
        metrics,
        client: reqwest::Client::new(),
        state,
        stop: Some(tx),
        server: Some(server),
        _dir: dir,
        _db: db,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// Sends the shutdown signal (what SIGTERM does in the binary).
    pub fn signal_shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Reads an error envelope and checks its invariant parts.
pub async fn error_of(res: reqwest::Response) -> serde_json::Value {
    let header_id = res
        .headers()
        .get("x-request-id")
        .expect("x-request-id on every response")
        .to_str()
        .unwrap()
        .to_string();
    let body: serde_json::Value = res.json().await.unwrap();
    let err = body["error"].clone();
    assert_eq!(
        err["request_id"],
        header_id.as_str(),
        "envelope request id matches the header"
    );
    assert!(err["code"].is_string() && err["message"].is_string() && err["type"].is_string());
    assert!(err["details"].is_object());
    err
}

/// A signed-up user's tokens.
pub struct Signed {
    pub access: String,
    pub refresh: String,
    pub session: String,
}

pub const PASSWORD: &str = "tangerine-orbit-42";

impl TestApp {
    pub async fn post_json(
        &self,
        path: &str,
        bearer: Option<&str>,
        body: serde_json::Value,
    ) -> reqwest::Response {
        let mut req = self.client.post(self.url(path)).json(&body);
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    pub async fn get_auth(&self, path: &str, bearer: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap()
    }

    pub async fn register(&self, email: &str) -> Signed {
        let res = self
            .post_json(
                "/v1/auth/register",
                None,
                serde_json::json!({"email": email, "password": PASSWORD, "device_name": "laptop"}),
            )
            .await;
        assert_eq!(res.status(), 201, "{:?}", res.text().await);
        signed(res).await
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/v1/auth/login",
            None,
            serde_json::json!({"email": email, "password": password}),
        )
        .await
    }

    pub async fn refresh(&self, token: &str) -> reqwest::Response {
        self.post_json(
            "/v1/auth/refresh",
            None,
            serde_json::json!({"refresh_token": token}),
        )
        .await
    }
}

pub async fn signed(res: reqwest::Response) -> Signed {
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    Signed {
        access: body["access_token"].as_str().unwrap().to_string(),
        refresh: body["refresh_token"].as_str().unwrap().to_string(),
        session: body["session_id"].as_str().unwrap().to_string(),
    }
}

pub fn unique_email() -> String {
    format!("user-{}@Example.COM", uuid::Uuid::now_v7().simple())
}

impl TestApp {
    /// A service call.
    pub async fn service(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(SERVICE_TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap()
    }

    /// Registers a user and returns (access token, user id).
    pub async fn user(&self) -> (String, String) {
        let s = self.register(&unique_email()).await;
        let me: serde_json::Value = self
            .get_auth("/v1/me", &s.access)
            .await
            .json()
            .await
            .unwrap();
        (s.access, me["id"].as_str().unwrap().to_string())
    }

    /// Reserves through the service API.
    pub async fn reserve(
        &self,
        user: &str,
        meter: &str,
        amount: i64,
        key: &str,
    ) -> reqwest::Response {
        let body = serde_json::json!({"user_id": user, "meter": meter, "amount": amount, "idempotency_key": key});
        self.service(
            reqwest::Method::POST,
            "/v1/service/reservations",
            Some(body),
        )
        .await
    }
}
