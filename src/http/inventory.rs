//! Stock adjustments with an audit trail (`/admin/inventory/...`, role `inventory_manager`); the
//! rules are `services::admin::inventory`'s.

use axum::{Json, extract::State, middleware};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::{Caller, Role, require_roles},
    error::{ApiError, ErrorBody},
    extract,
};
use crate::{
    domain::{PageRequest, text},
    services::{AppState, admin::inventory},
};

/// The inventory routes (mounted under `/api`), behind the `inventory_manager` gate.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(adjust))
        .routes(routes!(audit_log))
        .route_layer(middleware::from_fn_with_state(&[Role::InventoryManager][..], require_roles))
}

/// A stock adjustment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustRequest {
    /// Signed change of the physical stock, not 0 (positive: received; negative: written off).
    #[schema(schema_with = non_zero_i32)]
    pub delta: i64,
    /// Why, 1-500 characters, not only whitespace (trimmed); kept in the audit log.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

/// A 32-bit integer other than 0.
fn non_zero_i32() -> utoipa::openapi::Schema {
    let range = |min: i64, max: i64| {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::Integer)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int32)))
            .minimum(Some(min))
            .maximum(Some(max))
    };
    utoipa::openapi::Schema::OneOf(
        utoipa::openapi::OneOfBuilder::new()
            .item(range(i64::from(i32::MIN), -1))
            .item(range(1, i64::from(i32::MAX)))
            .build(),
    )
}

/// An option's stock after an adjustment.
#[derive(Debug, Serialize, ToSchema)]
pub struct StockResponse {
    /// The option.
    pub product_option_id: i64,
    /// Physical stock.
    pub stock: i32,
    /// Held by PENDING orders.
    pub reserved: i32,
    /// Sellable: stock minus reserved.
    pub available: i32,
}

/// Adjusts an option's stock; never below what is reserved, never above 2147483647 (the stock
/// is a 32-bit count): a delta the schema allows can still meet a stock it does not fit.
#[utoipa::path(
    post, path = "/admin/inventory/{product_option_id}/adjust", tag = "admin", request_body = AdjustRequest,
    params(("product_option_id" = i64, Path, description = "Product option id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = StockResponse),
        (status = 400, body = ErrorBody, description = "VALIDATION_ERROR; STOCK_BELOW_RESERVED (the stock would fall below \
            what is reserved) or STOCK_LIMIT_EXCEEDED (it would exceed 2147483647): nothing changed"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "PRODUCT_OPTION_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn adjust(
    State(state): State<AppState>,
    caller: Caller,
    extract::Path(option_id): extract::Path<i64>,
    extract::Json(req): extract::Json<AdjustRequest>,
) -> Result<Json<StockResponse>, ApiError> {
    let delta = i32::try_from(req.delta)
        .ok()
        .filter(|d| *d != 0)
        .ok_or_else(|| ApiError::validation("delta", "must be a non-zero integer within ±2147483647"))?;
    let reason = text::required("reason", &req.reason, 500)?;
    let after = inventory::adjust(&state, option_id, &caller, &reason, delta).await?;
    Ok(Json(StockResponse {
        product_option_id: option_id,
        stock: after.stock,
        reserved: after.reserved,
        available: after.available(),
    }))
}

/// `?product_option_id=&page=&size=` of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Only this option's entries (all options when absent).
    pub product_option_id: Option<i64>,
    /// Page number, from 1.
    pub page: Option<i64>,
    /// Items per page, 1-100 (default 20).
    pub size: Option<i64>,
}

/// One stock change.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditItem {
    /// Entry id.
    pub id: i64,
    /// The option changed.
    pub product_option_id: i64,
    /// Who changed it (user id of the token).
    pub actor_user_id: i64,
    /// Why.
    pub reason: String,
    /// Signed change.
    pub delta: i32,
    /// Stock before.
    pub stock_before: i32,
    /// Stock after.
    pub stock_after: i32,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// A page of the stock audit log (not the general audit log's `AuditPage`).
#[derive(Debug, Serialize, ToSchema)]
pub struct StockAuditPage {
    /// Newest first.
    pub items: Vec<AuditItem>,
    /// Page number, from 1.
    pub page: i64,
    /// Page size.
    pub size: i64,
    /// Entries in all pages.
    pub total: i64,
}

/// The stock audit log, newest first (optionally of one option).
#[utoipa::path(
    get, path = "/admin/inventory/audit", tag = "admin", params(AuditQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = StockAuditPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "PRODUCT_OPTION_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn audit_log(
    State(state): State<AppState>,
    extract::Query(q): extract::Query<AuditQuery>,
) -> Result<Json<StockAuditPage>, ApiError> {
    let page = PageRequest::new(q.page, q.size)?;
    let (rows, total) = inventory::audit(&state, q.product_option_id, page).await?;
    let items = rows
        .into_iter()
        .map(|r| AuditItem {
            id: r.id,
            product_option_id: r.option_id,
            actor_user_id: r.actor_user_id,
            reason: r.reason,
            delta: r.delta,
            stock_before: r.stock_before,
            stock_after: r.stock_after,
            created_at: r.created_at,
        })
        .collect();
    Ok(Json(StockAuditPage { items, page: page.page, size: page.size, total }))
}
