//! Pure billing rules: the window a moment falls in, and the gates a reservation must pass.

pub mod gates;
pub mod overrides;
pub mod sliding;
pub mod window;

pub use gates::{
    cost_of, limit_code, plan_gates, snapshot_cost, status_of, terms_for, window_zone, GateSpec,
    GateStatus, ReserveTerms, Subject, TermsError,
};
pub use overrides::{active_override, apply_to_gates, LimitOverride, OverrideTarget};
pub use sliding::Sliding;
pub use window::{span, Span};
