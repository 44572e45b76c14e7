//! Declares the optional `Idempotency-Key` header on every operation the layer covers,
//! so the OpenAPI document tells clients where a key is honoured.

use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{OpenApi, Required};

use keel_core::integrity::idempotency::MAX_KEY_LEN;

/// Adds the header parameter to the mutating operations of `/v1/*` (not webhooks).
pub(crate) fn document(api: &mut OpenApi) {
    for (path, item) in api.paths.paths.iter_mut() {
        if !path.starts_with("/v1/") || path.starts_with("/v1/webhooks/") {
            continue;
        }
        for op in [
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            add_header(op);
        }
    }
}

fn add_header(op: &mut Operation) {
    let schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_KEY_LEN))
        .pattern(Some("^[\\x20-\\x7E]+$"));
    let param = ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Makes a retry safe: the first response is kept and replayed (with \
             `idempotent-replayed: true`) to a repeat of the same request with the same key. \
             Ignored for anonymous calls. See docs/idempotency.md.",
        ))
        .schema(Some(schema))
        .build();
    op.parameters.get_or_insert_with(Vec::new).push(param);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem, PathsBuilder};
    use utoipa::openapi::OpenApiBuilder;

    use super::*;

    fn header_count(api: &OpenApi, path: &str, post: bool) -> usize {
        let item = api.paths.paths.get(path).unwrap();
        let op = if post { &item.post } else { &item.get };
        op.as_ref()
            .and_then(|o| o.parameters.as_ref())
            .map_or(0, |p| {
                p.iter().filter(|p| p.name == "Idempotency-Key").count()
            })
    }

    #[test]
    fn only_covered_operations_get_the_header() {
        let op = || OperationBuilder::new().build();
        let paths = PathsBuilder::new()
            .path("/v1/api-keys", PathItem::new(HttpMethod::Post, op()))
            .path("/v1/me", PathItem::new(HttpMethod::Get, op()))
            .path("/v1/webhooks/stripe", PathItem::new(HttpMethod::Post, op()))
            .path("/admin/v1/accounts", PathItem::new(HttpMethod::Post, op()))
            .build();
        let mut api = OpenApiBuilder::new().paths(paths).build();
        document(&mut api);
        assert_eq!(header_count(&api, "/v1/api-keys", true), 1);
        assert_eq!(header_count(&api, "/v1/me", false), 0);
        assert_eq!(header_count(&api, "/v1/webhooks/stripe", true), 0);
        assert_eq!(header_count(&api, "/admin/v1/accounts", true), 0);
    }
}
