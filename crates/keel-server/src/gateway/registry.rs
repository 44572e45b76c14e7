//! The gateway's providers, built once per manifest: one adapter per deployment of every
//! route, sharing one upstream HTTP client (a `sim` deployment without `base_url` is the
//! in-process simulator), and the node's resilience engine with its circuit breakers. A
//! deployment that cannot be built (a missing key) is skipped with a warning; a route left
//! with none answers `503 upstream_unavailable`.

use std::collections::HashMap;
use std::sync::Arc;

use keel_core::manifest::Manifest;

use super::providers::{build, ClientSettings, Provider, ProviderConfig, UpstreamClient};
use super::resilience::Engine;
use crate::integrity::limiter::Limiter;
use crate::integrity::limiter_memory::MemoryLimiter;
use crate::integrity::limiter_redis::RedisLimiter;

/// One built deployment of a route.
#[derive(Clone, Debug)]
pub struct Deployed {
    /// Its index in the route's `deployments` (for weights and pricing).
    pub index: usize,
    /// Its weight.
    pub weight: u32,
    /// The adapter.
    pub provider: Arc<dyn Provider>,
}

/// The providers of every route, and the token-budget limiter.
pub struct Registry {
    routes: HashMap<String, Vec<Deployed>>,
    tokens: Box<dyn Limiter>,
    engine: Engine,
}

impl Registry {
    /// Builds every deployment of `manifest`, reading keys through `env`. Token budgets
    /// live in Redis when it is configured (shared by every node), in process otherwise.
    pub fn build(
        manifest: &Manifest,
        env: &dyn Fn(&str) -> Option<String>,
        redis: Option<(&redis::aio::ConnectionManager, &str)>,
    ) -> Self {
        let tokens: Box<dyn Limiter> = match redis {
            Some((conn, prefix)) => Box::new(RedisLimiter::new(conn.clone(), prefix)),
            None => Box::new(MemoryLimiter::new()),
        };
        let client = match UpstreamClient::new(ClientSettings::default()) {
            Ok(client) => client,
            Err(e) => {
                tracing::error!(error = %e, "cannot build the upstream HTTP client; the gateway has no providers");
                return Self {
                    routes: HashMap::new(),
                    tokens,
                    engine: Engine::default(),
                };
            }
        };
        let mut routes = HashMap::new();
        for (name, route) in &manifest.routes {
            let mut built = Vec::new();
            for (index, deployment) in route.deployments.iter().enumerate() {
                let provider = ProviderConfig::from_deployment(deployment, env)
                    .and_then(|config| build(config, &client));
                match provider {
                    Ok(provider) => built.push(Deployed {
                        index,
                        weight: deployment.weight,
                        provider,
                    }),
                    Err(e) => {
                        tracing::warn!(route = %name, error = %e, "deployment skipped");
                    }
                }
            }
            routes.insert(name.clone(), built);
        }
        Self {
            routes,
            tokens,
            engine: Engine::default(),
        }
    }

    /// The node's resilience engine (its circuit breakers are per node).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The built deployments of a route (empty when none could be built).
    pub fn deployments(&self, route: &str) -> &[Deployed] {
        self.routes.get(route).map_or(&[], Vec::as_slice)
    }

    /// The limiter that holds token budgets.
    pub fn token_limiter(&self) -> &dyn Limiter {
        self.tokens.as_ref()
    }
}
