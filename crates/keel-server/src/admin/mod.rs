//! The admin context: operator accounts separate from product users, their sessions,
//! and role-based access (`SUPER_ADMIN`, `ENGINEER`, `SUPPORT`).

pub(crate) mod accounts;
pub(crate) mod auth;
pub(crate) mod levers;
pub(crate) mod quota;
pub mod service;

pub use auth::AdminUser;
pub use service::bootstrap;

/// Operator roles, most powerful first.
pub const ROLES: &[&str] = &["SUPER_ADMIN", "ENGINEER", "SUPPORT"];
