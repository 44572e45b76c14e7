//! The typed product model: the manifest's root, product, meters and features.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::jobs::JobType;
use super::plan::Plan;
use super::rate::RateLimits;
use super::route::Route;
use super::safety::SafetyRule;
use super::store::StoreProducts;

/// A validated product manifest: everything `keel.toml` declares except `[server]`.
#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    /// `[product]`: the product's identity and defaults.
    pub product: Product,
    /// `[plans.<name>]`: what each subscription tier grants.
    pub plans: BTreeMap<String, Plan>,
    /// `[meters.<name>]`: the quantities usage is counted in.
    pub meters: BTreeMap<String, Meter>,
    /// `[features.<name>]`: capabilities plans grant access to.
    pub features: BTreeMap<String, Feature>,
    /// `[routes.<name>]`: LLM routes the gateway serves (the route name is the client-facing model).
    pub routes: BTreeMap<String, Route>,
    /// `[safety.<name>]`: prechecks run on user input before generation.
    pub safety: BTreeMap<String, SafetyRule>,
    /// `[jobs.<name>]`: long-running job types and their state machines.
    pub jobs: BTreeMap<String, JobType>,
    /// `[rate_limits.<class>]`: request rates every caller is held to, per route class.
    pub rate_limits: RateLimits,
    /// `[store_products.<provider>."<product id>"]`: the plan each store product grants.
    pub store_products: StoreProducts,
}

/// `[product]`: the product's identity and defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// Machine name, a slug (`[a-z][a-z0-9_-]*`).
    pub name: String,
    /// Human name shown in portals; defaults to `name`.
    pub display_name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Plan given to new users; must name a plan.
    pub default_plan: String,
    /// Time zone for calendar windows unless a plan overrides it; default `UTC`.
    #[serde(default)]
    pub timezone: TimeZone,
    /// Feature used when a request names none; must name a feature.
    pub default_feature: Option<String>,
}

impl Product {
    /// The display name, falling back to the machine name.
    pub fn display_name(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.name)
    }
}

/// An IANA time zone such as `UTC` or `Europe/Paris`, validated when the manifest loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeZone(pub chrono_tz::Tz);

impl TimeZone {
    /// The time zone, for calendar arithmetic with chrono.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.0
    }

    /// Parses an IANA name (exact case, as in the tz database).
    pub fn parse(name: &str) -> Result<TimeZone, String> {
        name.parse::<chrono_tz::Tz>().map(TimeZone).map_err(|_| {
            format!("unknown time zone \"{name}\": expected an IANA name such as \"UTC\" or \"Europe/Paris\"")
        })
    }
}

impl Default for TimeZone {
    fn default() -> Self {
        TimeZone(chrono_tz::UTC)
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

impl Serialize for TimeZone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.name())
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        TimeZone::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// `[features.<name>]`: a capability that plans grant (boolean access).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    /// Human name.
    pub display_name: Option<String>,
    /// Free text.
    pub description: Option<String>,
}

/// How usage events add up in a meter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregation {
    /// Each usage event counts as one, whatever its amount.
    Count,
    /// Usage events add their amounts.
    #[default]
    Sum,
}

/// `[meters.<name>]`: a quantity usage is counted in (requests, tokens, jobs, credits...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meter {
    /// Singular unit name, e.g. `request`, `token`.
    pub unit: String,
    /// How events add up; default `sum`.
    #[serde(default)]
    pub aggregation: Aggregation,
    /// Whether a commit may exceed its reservation (the excess is recorded, never lost); default false.
    #[serde(default)]
    pub overage: bool,
    /// Whether usage of this meter is also debited from the user's credit balance; default false.
    #[serde(default)]
    pub credits: bool,
    /// Human name.
    pub display_name: Option<String>,
    /// Free text.
    pub description: Option<String>,
    /// Human proxy for remaining quota: "about 18 typical refactors left".
    pub typical: Option<Typical>,
}

impl Meter {
    /// How many typical units of work `remaining` still covers (rounded down), if a proxy is declared.
    pub fn typical_remaining(&self, remaining: i64) -> Option<i64> {
        let typical = self.typical.as_ref()?;
        (typical.amount > 0).then(|| remaining.max(0) / typical.amount)
    }
}

/// Typical consumption of one unit of work, e.g. `{ amount = 40000, label = "refactor" }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Typical {
    /// Meter units one typical unit of work consumes; > 0.
    pub amount: i64,
    /// What one unit of work is called, singular.
    pub label: String,
}

impl Manifest {
    /// A short multi-line human summary: product, then every section's count and names.
    pub fn summary(&self) -> String {
        let p = &self.product;
        let mut out = format!(
            "product {} ({}), default plan {}, timezone {}\n",
            p.name,
            p.display_name(),
            p.default_plan,
            p.timezone
        );
        line(&mut out, "plans", self.plans.keys().cloned());
        line(&mut out, "meters", self.meters.keys().cloned());
        line(&mut out, "features", self.features.keys().cloned());
        line(&mut out, "routes", self.routes.keys().cloned());
        line(&mut out, "safety rules", self.safety.keys().cloned());
        let jobs = self
            .jobs
            .iter()
            .map(|(name, job)| format!("{name} ({} states)", job.states.len()));
        line(&mut out, "job types", jobs);
        out
    }
}

fn line(out: &mut String, label: &str, names: impl Iterator<Item = String>) {
    let names: Vec<String> = names.collect();
    let list = if names.is_empty() {
        "-".to_owned()
    } else {
        names.join(", ")
    };
    // Writing to a String cannot fail.
    let _ = writeln!(out, "{label} ({}): {list}", names.len());
}
