//! The state every handler shares.

use std::sync::{Arc, OnceLock};

use keel_core::manifest::Manifest;
use keel_store::DynStore;

use crate::identity::Identity;
use crate::Settings;

/// Shared, cheaply cloned application state.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: DynStore,
    manifest: Arc<Manifest>,
    settings: Settings,
    identity: Identity,
    redis: Option<redis::aio::ConnectionManager>,
    kill_switches: crate::billing::levers::KillSwitchCache,
    gateway: crate::gateway::Registry,
    openapi: OnceLock<String>,
    job_clock: crate::jobs::JobClock,
    job_notifier: crate::jobs::notify::JobNotifier,
}

impl AppState {
    /// Assembles the state.
    pub fn new(
        store: DynStore,
        manifest: Manifest,
        settings: Settings,
        identity: Identity,
        redis: Option<redis::aio::ConnectionManager>,
    ) -> Self {
        let gateway = crate::gateway::Registry::build(
            &manifest,
            &crate::gateway::providers::process_env,
            redis.as_ref().map(|r| (r, settings.redis_prefix.as_str())),
        );
        Self {
            inner: Arc::new(Inner {
                gateway,
                store,
                manifest: Arc::new(manifest),
                settings,
                identity,
                redis,
                kill_switches: Default::default(),
                openapi: OnceLock::new(),
                job_clock: Default::default(),
                job_notifier: Default::default(),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &DynStore {
        &self.inner.store
    }

    /// The product manifest.
    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.inner.manifest
    }

    /// The identity context.
    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// The shared Redis connection, when `redis_url` is configured (nonces, rate limits).
    pub fn redis(&self) -> Option<&redis::aio::ConnectionManager> {
        self.inner.redis.as_ref()
    }

    /// The kill switches as this node last read them.
    pub fn kill_switches(&self) -> &crate::billing::levers::KillSwitchCache {
        &self.inner.kill_switches
    }

    /// The gateway's providers and token budgets.
    pub fn gateway(&self) -> &crate::gateway::Registry {
        &self.inner.gateway
    }

    /// The jobs context's clock (tests advance it to fire timers).
    pub fn job_clock(&self) -> &crate::jobs::JobClock {
        &self.inner.job_clock
    }

    /// Wake-ups for live job event streams.
    pub fn job_notifier(&self) -> &crate::jobs::notify::JobNotifier {
        &self.inner.job_notifier
    }

    /// The settings the server runs with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub(crate) fn set_openapi_json(&self, doc: String) {
        let _ = self.inner.openapi.set(doc);
    }

    pub(crate) fn openapi_json(&self) -> String {
        self.inner
            .openapi
            .get()
            .cloned()
            .unwrap_or_else(|| "{}".to_string())
    }
}
