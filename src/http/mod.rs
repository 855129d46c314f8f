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

/// Every `/api` route with its OpenAPI description, merged from the domain modules.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(catalog::router())
        .merge(catalog_admin::router())
        .merge(product_edit::router())
        .merge(users::router())
        .merge(profiles::router())
        .merge(admin::router())
        .merge(fx_admin::router())
        .merge(audit::router())
        .merge(inventory::router())
        .merge(popular::router())
        .merge(cart::router())
        .merge(guest_carts::router())
        .merge(orders::router())
        .merge(payment::router())
        .merge(payment_records::router())
        .merge(order_admin::router())
        .merge(outbox::router())
        .merge(coupons::router())
        .merge(coupon_admin::router())
        .merge(waiting_room::router())
        .merge(coupon_campaigns::router())
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
