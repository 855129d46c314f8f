//! Fulfilment and refunds of paid orders by an agent (`cs_agent`, `ops_admin`): Postgres first,
//! in one transaction under the order's row lock, then the refund's Redis step after the commit
//! (the same restock script a customer's cancel of a paid order goes through).

use chrono::Utc;
use uuid::Uuid;

use super::OrderError;
pub use crate::store::pg::refunds::{Refund, RefundBy};
use crate::{
    admission::orders::settle,
    domain::{order::Rejection, refund::RefundAsk},
    services::{AppState, catalog, idempotency::Receipt},
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

/// PAID -> FULFILLED; any other state is `ORDER_NOT_FULFILLABLE`.
pub async fn fulfill(state: &AppState, order_id: Uuid) -> Result<Order, OrderError> {
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
    // audit: order fulfilled (actor, order_id, before PAID, after FULFILLED)
    tx.commit().await?;
    Ok(order)
}

/// Refunds `ask` of a PAID or FULFILLED order to its owner's wallet (see `domain::refund` for
/// the rules); the idempotent answer is stored with it.
pub async fn refund(
    state: &AppState,
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
    // audit: order refunded (actor, order_id, amount, items, reason, before/after refunded_amount)
    // Stored in the refund's own transaction: a retried key replays this answer, never refunds twice.
    receipt.record(&mut tx, &refund).await?;
    tx.commit().await?;
    restocked(state, &refund).await;
    Ok(refund)
}

/// After a refund committed: the units it put back on sale reach the counters and the caches.
pub async fn restocked(state: &AppState, refund: &Refund) {
    let held =
        HeldStock { order_id: refund.order.id, reservation: refund.order.reservation, lines: refund.restocked.clone() };
    settle::refunded(state.order_admission.stock(), refund.id, &held).await;
    catalog::stock_changed(state, &held).await;
}
