//! The OpenAPI 3.1 document, generated from the routes themselves.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

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
    modifiers(&BearerAuth),
    tags(
        (name = "ops", description = "Health, readiness and discovery"),
        (name = "identity", description = "Accounts, sessions, tokens, API keys, wallet sign-in"),
        (name = "billing", description = "Plans, entitlements, reservations, usage ledger"),
        (name = "admin", description = "Operator accounts and controls"),
        (name = "gateway", description = "OpenAI-compatible chat completions and models"),
        (name = "webhooks", description = "Verified inbound webhooks from the app stores and payment providers"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer schemes routes refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or API key")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "service",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("<key id>.<secret>")
                    .description(Some(
                        "A bearer service key (refused when service_auth = signed), or instead \
                         an HMAC-signed request: see service_signature and docs/signing.md",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "service_signature",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "x-keel-signature",
                "v2=<hex HMAC-SHA256 of the canonical request>, with x-keel-key-id, \
                 x-keel-timestamp (unix seconds) and x-keel-nonce; see docs/signing.md",
            ))),
        );
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("admin session token")
                    .build(),
            ),
        );
    }
}
