//! Fulfilment and refunds of paid orders by an agent (`cs_agent`, `ops_admin`): Postgres first,
//! in one transaction under the order's row lock, then the refund's Redis step after the commit
//! (the same restock script a customer's cancel of a paid order goes through).

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use super::OrderError;
pub use crate::store::pg::refunds::{Refund, RefundBy};
use crate::{
    admission::orders::settle,
    auth::Caller,
    domain::{
        order::{OrderStatus, Rejection},
        refund::RefundAsk,
    },
    services::{
        AppState,
        audit::{self, Change},
        catalog,
        idempotency::Receipt,
    },
    store::pg::{
        orders::{HeldStock, Order, StoreError},
        refunds,
    },
};

/// Whether `result` says the order is unknown to Postgres and Redis had it (a V2 order the
/// stream consumer has not persisted yet), in which case it is persisted now for a retry.
async fn persisted_late<T>(
    state: &AppState,
    result: &Result<T, StoreError>,
    order_id: Uuid,
) -> Result<bool, OrderError> {
    if !matches!(result, Err(StoreError::Rejected(Rejection::OrderNotFound))) {
        return Ok(false);
    }
    Ok(settle::persist_from_redis(&state.db, state.order_admission.stock(), order_id).await?)
}

/// PAID -> FULFILLED for `actor` (audited); any other state is `ORDER_NOT_FULFILLABLE`.
pub async fn fulfill(state: &AppState, actor: &Caller, order_id: Uuid) -> Result<Order, OrderError> {
    let mut tx = state.db.begin().await?;
    let mut result = refunds::fulfill(&mut tx, order_id, Utc::now()).await;
    if result.is_err() {
        // Its connection back first: a request never holds two (see `services::payment::pay`).
        drop(tx);
        if !persisted_late(state, &result, order_id).await? {
            return Err(result.err().map(OrderError::from).unwrap_or(Rejection::OrderNotFound.into()));
        }
        tx = state.db.begin().await?;
        result = refunds::fulfill(&mut tx, order_id, Utc::now()).await;
    }
    let order = result?;
    let change = Change {
        action: "order.fulfill",
        entity_type: audit::ORDER,
        entity_id: order_id.to_string(),
        // The only transition to FULFILLED is from PAID: the store refused every other.
        before: Some(json!({ "status": OrderStatus::Paid })),
        after: Some(json!({ "status": order.status })),
        reason: None,
    };
    audit::record(&mut tx, actor, change).await?;
    tx.commit().await?;
    Ok(order)
}

/// Refunds `ask` of a PAID or FULFILLED order to its owner's wallet for `actor` (audited; see
/// `domain::refund` for the rules); the idempotent answer is stored with it.
pub async fn refund(
    state: &AppState,
    actor: &Caller,
    order_id: Uuid,
    ask: &RefundAsk,
    by: &RefundBy,
    receipt: Receipt<'_, Refund>,
) -> Result<Refund, OrderError> {
    let mut tx = state.db.begin().await?;
    let mut result = refunds::refund(&mut tx, order_id, ask, by, Utc::now()).await;
    if result.is_err() {
        drop(tx);
        if !persisted_late(state, &result, order_id).await? {
            return Err(result.err().map(OrderError::from).unwrap_or(Rejection::OrderNotFound.into()));
        }
        tx = state.db.begin().await?;
        result = refunds::refund(&mut tx, order_id, ask, by, Utc::now()).await;
    }
    let refund = result?;
    audit::record(&mut tx, actor, refund_change(&refund)).await?;
    // Stored in the refund's own transaction: a retried key replays this answer, never refunds twice.
    receipt.record(&mut tx, &refund).await?;
    tx.commit().await?;
    restocked(state, &refund).await;
    Ok(refund)
}

/// A refund's audit entry: the order's status and refunded money before and after, and what
/// this refund gave back.
fn refund_change(refund: &Refund) -> Change<'_> {
    let o = &refund.order;
    let units: Vec<_> = refund.units.iter().map(|(id, q)| json!({ "product_option_id": id, "quantity": q })).collect();
    Change {
        action: "order.refund",
        entity_type: audit::ORDER,
        entity_id: o.id.to_string(),
        before: Some(json!({ "status": refund.status_before, "refunded_amount": o.refunded_amount - refund.amount })),
        after: Some(json!({
            "status": o.status, "refunded_amount": o.refunded_amount,
            "refund_id": refund.id, "amount": refund.amount, "items": units,
        })),
        reason: Some(&refund.reason),
    }
}

/// After a refund committed: the units it put back on sale reach the counters and the caches.
pub async fn restocked(state: &AppState, refund: &Refund) {
    let held =
        HeldStock { order_id: refund.order.id, reservation: refund.order.reservation, lines: refund.restocked.clone() };
    settle::refunded(state.order_admission.stock(), refund.id, &held).await;
    catalog::stock_changed(state, &held).await;
}
