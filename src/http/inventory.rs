//! Stock adjustments with an audit trail (`/admin/inventory/...`, role `inventory_manager`).
//!
//! An adjustment (goods received, a stock count correcting the books) changes the physical
//! stock of one option under its row lock. It may never leave less stock than PENDING orders
//! hold, so a reservation that was promised can always be fulfilled. The new figures, an audit
//! entry (actor, time, reason, before, after) and a `stock.changed` outbox event commit together.
//!
//! The V2 counter in Redis (if the option is hydrated) moves by the same delta while the row
//! lock is held, just before the commit: hydration locks the row too, so it can never count the
//! delta twice, and a write-off is refused when it would take more than is still sellable there
//! (units admitted in Redis but not yet persisted count as reserved). Should the commit then
//! fail, the delta is taken back.

use axum::{Json, extract::State, middleware};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::{Caller, Role, require_roles},
    error::{ApiError, ErrorBody, ErrorCode},
    extract,
    users::Paging,
};
use crate::{
    state::AppState,
    store::pg::{
        inventory::{self, NewAuditEntry},
        outbox::{self, EventType},
    },
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
    pub delta: i64,
    /// Why, 1-500 characters; kept in the audit log.
    pub reason: String,
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

/// Adjusts an option's stock; never below what is reserved.
#[utoipa::path(
    post, path = "/admin/inventory/{product_option_id}/adjust", tag = "admin", request_body = AdjustRequest,
    params(("product_option_id" = i64, Path, description = "Product option id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = StockResponse),
        (status = 400, description = "VALIDATION_ERROR, or STOCK_BELOW_RESERVED (nothing changed)", body = ErrorBody),
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
    let reason = req.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::validation("reason", "must be 1 to 500 characters"));
    }
    let mut tx = state.db.begin().await?;
    let before = inventory::lock_stock(&mut tx, option_id)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::ProductOptionNotFound))?;
    let after = before.stock.checked_add(delta).ok_or_else(|| ApiError::validation("delta", "stock would overflow"))?;
    if after < before.reserved {
        return Err(ApiError::new(ErrorCode::StockBelowReserved).with_details(json!({
            "product_option_id": option_id,
            "stock": before.stock,
            "reserved": before.reserved,
            "delta": delta,
            "min_delta": before.reserved - before.stock,
        })));
    }
    // Under the row lock, after every check that could refuse it, before the commit.
    if let Err((_, available)) = state.order_admission.stock().adjust(&[(option_id, i64::from(delta))], true).await? {
        let reserved = i64::from(before.stock) - available;
        return Err(ApiError::new(ErrorCode::StockBelowReserved).with_details(json!({
            "product_option_id": option_id,
            "stock": before.stock,
            "reserved": reserved,
            "delta": delta,
            "min_delta": -available,
        })));
    }
    let committed = match apply(&mut tx, option_id, caller.user_id, reason, delta, before.stock, after).await {
        Ok(()) => tx.commit().await.map_err(ApiError::from),
        Err(e) => Err(e),
    };
    if let Err(e) = committed {
        // Best effort: Postgres did not change, so neither should the counter.
        if let Err(undo) = state.order_admission.stock().adjust(&[(option_id, -i64::from(delta))], false).await {
            tracing::error!(product_option.id = option_id, error.cause = %undo, "could not take back a stock delta from redis; reconcile");
        }
        return Err(e);
    }
    tracing::info!(
        product_option.id = option_id,
        stock.delta = delta,
        actor.user_id = caller.user_id,
        "stock adjusted"
    );
    Ok(Json(StockResponse {
        product_option_id: option_id,
        stock: after,
        reserved: before.reserved,
        available: after - before.reserved,
    }))
}

/// Writes the adjustment, its audit entry and its event, and commits.
async fn apply(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    option_id: i64,
    actor_user_id: i64,
    reason: &str,
    delta: i32,
    stock_before: i32,
    after: i32,
) -> Result<(), ApiError> {
    inventory::set_stock(tx, option_id, after).await?;
    let entry = NewAuditEntry { option_id, actor_user_id, reason, delta, stock_before, stock_after: after };
    let (_, at) = inventory::record_audit(tx, &entry).await?;
    let event = json!({ "product_option_id": option_id, "delta": delta, "reason": reason });
    outbox::enqueue(tx, EventType::StockChanged, at, event).await?;
    Ok(())
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

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
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
        (status = 200, body = AuditPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "PRODUCT_OPTION_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn audit_log(
    State(state): State<AppState>,
    extract::Query(q): extract::Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let paging = Paging::new(q.page, q.size)?;
    if let Some(id) = q.product_option_id
        && !inventory::option_exists(&state.db, id).await?
    {
        return Err(ApiError::new(ErrorCode::ProductOptionNotFound));
    }
    let (rows, total) = inventory::list_audit(&state.db, q.product_option_id, paging.size, paging.offset()).await?;
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
    Ok(Json(AuditPage { items, page: paging.page, size: paging.size, total }))
}
