//! The product manifest (`keel.toml`): parsing, validation and the typed model every context reads.
//!
//! [`parse_str`] and [`load_file`] report every problem at once, each with file, line, column and
//! dotted key ([`ManifestErrors`]). The `[server]` table is kept raw for the configuration layer.

mod decode;
mod duration;
mod error;
mod jobs;
mod model;
mod parse;
mod plan;
mod rate;
mod resilience;
mod route;
mod safety;
mod store;
mod validate;

pub use chrono_tz::Tz;
pub use duration::{DurationSpec, Window};
pub use error::{ManifestError, ManifestErrors};
pub use jobs::{
    Actor, Concurrency, ConcurrencyScope, Heartbeat, JobBilling, JobType, ReserveOn, Retention,
    StateSet, Timeout, Transition,
};
pub use model::{Aggregation, Feature, Manifest, Meter, Product, TimeZone, Typical};
pub use plan::{Addon, Limit, LimitScope, Plan, StripePlan};
pub use rate::{ClassLimits, RateLimit, RateLimits, RouteClass, Scope};
pub use resilience::{BreakerSpec, RetrySpec};
pub use route::{Deployment, PlanSelector, Pricing, ProviderKind, Route};
pub use safety::{Pattern, SafetyAction, SafetyRule};
pub use store::{StoreProduct, StoreProducts, STORE_PROVIDERS};

/// The built-in demo manifest (`examples/demo.toml`), used when no manifest is configured.
pub const DEMO_MANIFEST: &str = include_str!("../../../../examples/demo.toml");

/// The name reported for the built-in demo manifest.
pub const DEMO_SOURCE: &str = "<built-in demo>";

/// A validated manifest with the raw `[server]` table it came with.
#[derive(Clone, Debug)]
pub struct LoadedManifest {
    /// The validated product model.
    pub manifest: Manifest,
    /// The `[server]` table, unvalidated: the configuration layer owns it (empty when absent).
    pub server: toml::Table,
    /// Where the manifest came from: a file name or `<built-in demo>`.
    pub source: String,
}

/// Parses and validates manifest text; `file` names it in error messages.
pub fn parse_str(src: &str, file: &str) -> Result<LoadedManifest, ManifestErrors> {
    parse::parse(src, file)
}

/// Reads, parses and validates a manifest file; an unreadable file is one error at line 0.
pub fn load_file(path: &std::path::Path) -> Result<LoadedManifest, ManifestErrors> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(src) => parse_str(&src, &file),
        Err(error) => Err(ManifestErrors(vec![ManifestError {
            file,
            line: 0,
            column: 0,
            key: String::new(),
            message: format!("cannot read manifest: {error}"),
        }])),
    }
}

/// The built-in demo manifest, parsed and validated.
pub fn demo() -> Result<LoadedManifest, ManifestErrors> {
    parse_str(DEMO_MANIFEST, DEMO_SOURCE)
}
