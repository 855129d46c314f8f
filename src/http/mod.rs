//! The HTTP layer: one router per domain, merged here; cross-cutting middleware.

pub mod admin;
pub mod amount;
pub mod audit;
pub mod auth;
pub mod caching;
pub mod cart;
pub mod catalog;
pub mod catalog_admin;
pub mod contract;
pub mod coupon_admin;
pub mod coupon_campaigns;
pub mod coupons;
pub mod docs;
pub mod error;
pub mod error_codes;
pub mod extract;
pub mod fx_admin;
pub mod guest_carts;
pub mod idempotency;
pub mod inventory;
pub mod language;
pub mod objects_only;
pub mod observe;
pub mod order_admin;
pub mod orders;
pub mod outbox;
pub mod overload;
pub mod payment;
pub mod payment_records;
pub mod popular;
pub mod product_edit;
pub mod profiles;
pub mod users;
pub mod waiting_room;

use axum::{Router, middleware};
use tower_http::{catch_panic::CatchPanicLayer, timeout::TimeoutLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::services::AppState;

/// Describes the HTTP layer's metrics and creates their known series at zero.
pub fn register_metrics() {
    observe::register_metrics();
    overload::register_metrics();
    orders::register_metrics();
    payment::register_metrics();
}

/// The domain modules' routers, each with the OpenAPI description of its routes.
const ROUTERS: [fn() -> OpenApiRouter<AppState>; 21] = [
    catalog::router,
    catalog_admin::router,
    product_edit::router,
    users::router,
    profiles::router,
    admin::router,
    fx_admin::router,
    audit::router,
    inventory::router,
    popular::router,
    cart::router,
    guest_carts::router,
    orders::router,
    payment::router,
    payment_records::router,
    order_admin::router,
    outbox::router,
    coupons::router,
    coupon_admin::router,
    waiting_room::router,
    coupon_campaigns::router,
];

/// Every `/api` route with its OpenAPI description, merged from the domain modules.
fn api() -> OpenApiRouter<AppState> {
    ROUTERS.iter().fold(OpenApiRouter::new(), |api, router| api.merge(router()))
}

/// The `/api` routes and the OpenAPI document describing them, shared rules applied.
fn openapi_router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (api_router, mut openapi) =
        OpenApiRouter::with_openapi(docs::ApiDoc::openapi()).nest("/api", api()).split_for_parts();
    utoipa::Modify::modify(&contract::SharedRules, &mut openapi);
    (api_router, openapi)
}

/// The OpenAPI document the server publishes at `/api-docs/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    openapi_router().1
}

/// The whole application router: `/api` and `/api/v1` (the same routes), docs, health, metrics.
pub fn router(state: AppState) -> Router {
    let (api_router, mut openapi) = openapi_router();
    contract::configured_limits(&mut openapi, &state.config);
    let (v1_router, _) = OpenApiRouter::<AppState>::new().nest("/api/v1", api()).split_for_parts();
    Router::new()
        .merge(api_router)
        .merge(v1_router)
        .merge(observe::router())
        .merge(docs::router(openapi))
        .fallback(error::not_found)
        .layer(overload::InFlightLimitLayer::new(state.config.max_in_flight))
        // After authentication: the caller's stored language when the request names none.
        .layer(middleware::from_fn_with_state(state.clone(), language::resolve))
        .layer(middleware::from_fn_with_state(state.jwt.clone(), auth::authenticate))
        .layer(TimeoutLayer::with_status_code(axum::http::StatusCode::REQUEST_TIMEOUT, state.config.request_timeout))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(error::ApiError::internal(error::Panicked))
        }))
        .layer(middleware::from_fn(error::localize))
        // After localize, so error answers are covered too.
        .layer(middleware::map_response(caching::no_store_by_default))
        // Outermost, so what it counts is what the client got: sheds, timeouts and panics too.
        .layer(middleware::from_fn(observe::track))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Merging keeps one schema per name: a second type of the same name would silently publish
    /// one route's answer with the other's schema (as `AuditPage` once did for the stock audit).
    #[test]
    fn no_two_routers_publish_different_schemas_under_one_name() {
        let mut seen: BTreeMap<String, (usize, serde_json::Value)> = BTreeMap::new();
        let mut collisions = Vec::new();
        for (i, router) in ROUTERS.iter().enumerate() {
            let (_, doc) = router().split_for_parts();
            for (name, schema) in doc.components.map(|c| c.schemas).unwrap_or_default() {
                let schema = serde_json::to_value(schema).unwrap();
                match seen.get(&name) {
                    Some((j, first)) if first != &schema => collisions.push(format!("{name}: routers {j} and {i}")),
                    Some(_) => {}
                    None => {
                        seen.insert(name, (i, schema));
                    }
                }
            }
        }
        assert!(collisions.is_empty(), "one name, different schemas: {collisions:?}");
        assert!(seen.contains_key("AuditPage") && seen.contains_key("StockAuditPage"), "{:?}", seen.keys());
    }
}
