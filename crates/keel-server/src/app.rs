//! `Application`: builds the server from settings and a manifest, binds its listeners
//! (port 0 works, for tests), and runs until a shutdown signal, draining in-flight
//! requests within the configured grace period.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::{middleware, Router};
use keel_core::manifest::LoadedManifest;
use keel_store::{ConnectOptions, StoreError};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::http::middleware as mw;
use crate::http::{openapi::ApiDoc, request_id};
use crate::identity::{self, Identity};
use crate::{admin, billing, gateway, integrity, jobs, webhooks};
use crate::{ops, telemetry, AppState, Settings};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened, reached or migrated.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Signing keys could not be loaded or created.
    #[error("identity: {0}")]
    Identity(anyhow::Error),
    /// Redis is configured but cannot be reached.
    #[error("redis: {0}")]
    Redis(String),
    /// PostgreSQL `LISTEN` for job event wake-ups could not be set up.
    #[error("job notifier: {0}")]
    Notifier(String),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// A built server, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    metrics_listener: TcpListener,
    router: Router,
    metrics_router: Router,
    state: AppState,
}

impl Application {
    /// Connects the store, migrates, and binds both listeners.
    pub async fn build(settings: Settings, manifest: LoadedManifest) -> Result<Self, StartError> {
        Self::build_with(settings, manifest, OpenApiRouter::new()).await
    }

    /// As [`Application::build`], mounting extra routes beside Keel's own (embedding, tests).
    pub async fn build_with(
        settings: Settings,
        manifest: LoadedManifest,
        extra: OpenApiRouter<AppState>,
    ) -> Result<Self, StartError> {
        let store = keel_store::connect(&ConnectOptions {
            database_url: settings.database_url.clone(),
            data_dir: settings.data_dir.clone(),
            connect_timeout: settings.connect_timeout,
            max_connections: 16,
        })
        .await?;
        let identity = Identity::new(store.clone(), settings.identity_config())
            .await
            .map_err(StartError::Identity)?;
        let redis = match &settings.redis_url {
            Some(url) => {
                Some(crate::integrity::redis::connect(url, settings.connect_timeout).await?)
            }
            None => None,
        };
        let state = AppState::new(store, manifest.manifest, settings.clone(), identity, redis);
        if let Some(url) = settings
            .database_url
            .as_deref()
            .filter(|u| u.starts_with("postgres"))
        {
            state
                .job_notifier()
                .attach_postgres(url)
                .await
                .map_err(|e| StartError::Notifier(e.to_string()))?;
        }
        let router = assemble(state.clone(), extra);
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { addr, source })
        };
        let listener = bind(settings.addr).await?;
        let metrics_listener = bind(settings.metrics_addr).await?;
        Ok(Self {
            listener,
            metrics_listener,
            router,
            metrics_router: telemetry::metrics_router(),
            state,
        })
    }

    /// The bound API port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The bound metrics port.
    pub fn metrics_port(&self) -> u16 {
        self.metrics_listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or(0)
    }

    /// The shared state (tests use it to reach the store).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The assembled API router, every layer included, to drive in process without a
    /// socket (benchmarks). Requests carry no `ConnectInfo` unless the caller adds it.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves until `shutdown` resolves, then stops accepting, drains in-flight requests
    /// for at most the grace period, and closes the store.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (tx, rx) = watch::channel(false);
        let grace = self.state.settings().shutdown_grace;
        let stopped = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!("shutdown requested; draining in-flight requests");
            let _ = tx.send(true);
        });
        let sweeper = tokio::spawn(billing::sweeper::run(
            self.state.store().clone(),
            self.state.settings().sweep_interval,
            rx.clone(),
        ));
        let idempotency_sweeper = tokio::spawn(integrity::idempotency::sweeper::run(
            self.state.store().clone(),
            self.state.settings().sweep_interval,
            rx.clone(),
        ));
        let inbox_worker = self
            .state
            .settings()
            .webhooks
            .worker
            .then(|| tokio::spawn(webhooks::worker::run(self.state.clone(), rx.clone())));
        let webhook_worker = self.state.settings().outbound.worker.then(|| {
            let worker = crate::webhooks::outbound::Worker::new(
                self.state.store().clone(),
                std::sync::Arc::new(crate::webhooks::outbound::SystemClock),
                self.state.settings().outbound.clone(),
            );
            tokio::spawn(worker.run(rx.clone()))
        });
        let job_timers = tokio::spawn(jobs::timers::run(
            self.state.clone(),
            self.state.settings().jobs_timer_poll,
            rx.clone(),
        ));
        let job_retention = tokio::spawn(jobs::retention::periodic(
            self.state.clone(),
            self.state.settings().jobs_retention_interval,
            rx.clone(),
        ));
        let metrics = axum::serve(self.metrics_listener, self.metrics_router)
            .with_graceful_shutdown(stopped(rx.clone()));
        let metrics = tokio::spawn(async move { metrics.await });
        let app = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let server = axum::serve(self.listener, app).with_graceful_shutdown(stopped(rx.clone()));
        let deadline = async move {
            stopped(rx).await;
            tokio::time::sleep(grace).await;
        };
        let result = tokio::select! {
            r = server => r,
            () = deadline => {
                tracing::warn!(grace_ms = grace.as_millis() as u64, "grace period over; closing remaining connections");
                Ok(())
            }
        };
        metrics.abort();
        let _ = sweeper.await;
        let _ = idempotency_sweeper.await;
        if let Some(worker) = inbox_worker {
            let _ = worker.await;
        }
        if let Some(worker) = webhook_worker {
            let _ = worker.await;
        }
        let _ = job_timers.await;
        let _ = job_retention.await;
        let store = self.state.store().clone();
        if tokio::time::timeout(Duration::from_secs(5), store.close())
            .await
            .is_err()
        {
            tracing::warn!("store did not close within 5 s");
        }
        tracing::info!("stopped");
        result
    }
}

fn assemble(state: AppState, extra: OpenApiRouter<AppState>) -> Router {
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(ops::routes::router())
        .merge(identity::routes::router())
        .merge(identity::account_routes::router())
        .merge(identity::me_routes::router())
        .merge(billing::routes::router())
        .merge(billing::service_routes::router())
        .merge(jobs::routes::router())
        .merge(jobs::service_routes::router())
        .merge(admin::auth::router())
        .merge(admin::accounts::router())
        .merge(admin::levers::router())
        .merge(gateway::router())
        .merge(webhooks::routes::router())
        .merge(webhooks::links::router())
        .merge(crate::webhooks::outbound::routes::router())
        .merge(billing::checkout::router())
        .merge(extra)
        .split_for_parts();
    let mut api = api;
    integrity::idempotency::document(&mut api);
    match api.to_json() {
        Ok(doc) => state.set_openapi_json(doc),
        Err(e) => tracing::error!(error = %e, "cannot serialise the OpenAPI document"),
    }
    let settings = state.settings().clone();
    let router = router
        // Idempotency runs inside route capture, so replays are labelled by route too.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            integrity::idempotency::layer,
        ))
        .route_layer(middleware::from_fn(mw::capture_route))
        .fallback(mw::not_found)
        .method_not_allowed_fallback(mw::method_not_allowed)
        // Service calls are authenticated here, before any handler, with the body buffered.
        .layer(middleware::from_fn_with_state(
            integrity::signature::Gate::new(state.clone()),
            integrity::signature::authenticate,
        ))
        .layer(DefaultBodyLimit::max(settings.body_limit))
        .layer(middleware::from_fn_with_state(
            settings.request_timeout,
            mw::timeout,
        ))
        .layer(CatchPanicLayer::custom(mw::panic_response));
    // Outside in: request id, observe, security headers + CORS, rate limit, the rest.
    let router = integrity::rate_limit::wrap(router, &state);
    integrity::headers::wrap(router, &settings)
        .layer(middleware::from_fn(mw::observe))
        .layer(middleware::from_fn(request_id::assign))
        .with_state(state)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
