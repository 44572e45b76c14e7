//! The OpenAPI 3.1 document, generated from the routes themselves.

use utoipa::OpenApi;

use super::error::{ErrorBody, ErrorEnvelope};

/// The top of the document; paths are added by each context's `OpenApiRouter`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Keel",
        description = "The control plane for AI products: identity, billing, gateway, jobs.",
        license(name = "Apache-2.0")
    ),
    components(schemas(ErrorEnvelope, ErrorBody)),
    tags(
        (name = "ops", description = "Health, readiness and discovery"),
    )
)]
pub struct ApiDoc;
