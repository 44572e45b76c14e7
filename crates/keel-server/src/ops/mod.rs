//! Operations endpoints: liveness, readiness, the OpenAPI document and the JWKS.

pub(crate) mod routes;
