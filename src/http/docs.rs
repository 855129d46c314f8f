//! The OpenAPI 3.1 document (generated from the handlers) and Swagger UI at `/api-docs`,
//! served from assets compiled into the binary so it renders offline.

use axum::Router;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};
use utoipa_swagger_ui::SwaggerUi;

use crate::services::AppState;

/// The document's fixed parts; paths and schemas are added by each domain's router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Jupang API",
        description = "Flash-sale e-commerce: catalog, cart, orders, wallet payments and first-come coupons. \
                       Every route under /api is also served under /api/v1. Errors answer \
                       {code, message, details} with a stable code; messages follow Accept-Language (ko, en), \
                       else the caller's profile language. \
                       Any route may answer 503 OVERLOADED with Retry-After (seconds) under overload, \
                       or 503 TIMEOUT past the request timeout.",
    ),
    modifiers(&BearerAuth),
    components(schemas(super::error::ErrorBody, super::error::ErrorCode)),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
    }
}

/// `/api-docs` (Swagger UI) and `/api-docs/openapi.json`.
pub fn router(openapi: utoipa::openapi::OpenApi) -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/api-docs").url("/api-docs/openapi.json", openapi))
}
