//! Orders: creation with the configured reservation design (V1 in Postgres, V2 admitted in
//! Redis), one order, a user's history, and the expiry of unpaid orders ([`expiry`]). Payment and
//! cancellation are in `services::payment`.
//!
//! The design that reserves stock for *new* orders is `JUPANG_ORDER_STRATEGY`. Settling an
//! existing order (payment, cancel, expiry) follows where *its* reservation lives
//! (`orders.reservation`), whatever the process's design, so switching designs leaves no order
//! behind. V2 orders Redis admitted and the consumer has not persisted yet are persisted by the
//! first read that needs them (read-your-writes).

pub mod expiry;
pub mod refunds;

use chrono::Utc;
use uuid::Uuid;

use super::{
    AppState, Fault, fault_conversions,
    idempotency::{Receipt, ReceiptError},
};
pub use crate::store::pg::orders::{Order, OrderItem, OrderSource, Rejection};
use crate::{
    admission::orders::{AdmitError, settle},
    config::OrderStrategy,
    domain::{PageRequest, order::OrderStatus},
    store::pg::orders::{self as store, StoreError},
};

/// Why an order request (creation, read, payment or cancellation) failed.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// A business rule refused it; nothing changed.
    #[error("rejected: {0:?}")]
    Rejected(Rejection),
    /// The idempotent answer could not be stored with the order.
    #[error(transparent)]
    Receipt(#[from] ReceiptError),
    /// A store failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

fault_conversions!(OrderError);

impl From<Rejection> for OrderError {
    fn from(r: Rejection) -> Self {
        OrderError::Rejected(r)
    }
}

impl From<StoreError> for OrderError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Rejected(r) => OrderError::Rejected(r),
            StoreError::Db(e) => OrderError::Fault(e.into()),
        }
    }
}

impl From<AdmitError> for OrderError {
    fn from(e: AdmitError) -> Self {
        match e {
            AdmitError::Rejected(r) => OrderError::Rejected(r),
            AdmitError::Fault(f) => OrderError::Fault(f),
        }
    }
}

/// Creates a PENDING order of `user_id`, reserving its stock until it expires (every line or
/// none), with the configured design; the idempotent answer is stored with it.
pub async fn create(
    state: &AppState,
    user_id: i64,
    source: OrderSource,
    receipt: Receipt<'_, Order>,
) -> Result<Order, OrderError> {
    match state.config.order_strategy {
        OrderStrategy::DbPessimistic => {
            let mut tx = state.db.begin().await?;
            let order = store::create(&mut tx, user_id, source, state.config.order_ttl, Utc::now()).await?;
            // Stored with the reservation, so a retried key replays it instead of ordering twice.
            receipt.record(&mut tx, &order).await?;
            tx.commit().await?;
            settle::created_v1(state.order_admission.stock(), &order.held()).await;
            super::catalog::stock_changed(state, &order.held()).await;
            Ok(order)
        }
        OrderStrategy::RedisLua => {
            // The id is bound to the key (committed) before the admission, so a crash between the
            // admission and the stored answer leaves the key pointing at the admitted order: the
            // retry that takes the abandoned claim over finds that order and answers it.
            if let Some(prior) = receipt.prior_order()
                && let Some(order) = get(state, prior).await?
            {
                let mut conn = state.db.acquire().await?;
                receipt.record(&mut conn, &order).await?;
                return Ok(order);
            }
            let order_id = receipt.prior_order().unwrap_or_else(Uuid::now_v7);
            receipt.bind_order(&state.db, order_id).await?;
            let order = state.order_admission.create(order_id, user_id, source, Utc::now()).await?;
            if receipt.is_active() {
                let mut conn = state.db.acquire().await?;
                receipt.record(&mut conn, &order).await?;
            }
            Ok(order)
        }
    }
}

/// Finds an order, persisting it first from Redis when only Redis knows it yet (a V2 order the
/// stream consumer has not persisted): a 201'd order is readable by the very next request.
pub async fn get(state: &AppState, order_id: Uuid) -> Result<Option<Order>, OrderError> {
    if let Some(order) = store::find(&state.db, order_id).await? {
        return Ok(Some(order));
    }
    if settle::persist_from_redis(&state.db, state.order_admission.stock(), order_id).await? {
        return Ok(store::find(&state.db, order_id).await?);
    }
    Ok(None)
}

/// A page of a user's orders, newest first, optionally of one status, with how many there are.
pub async fn list(
    state: &AppState,
    user_id: i64,
    status: Option<OrderStatus>,
    page: PageRequest,
) -> Result<(Vec<Order>, i64), OrderError> {
    // Orders admitted moments ago may not be persisted yet: the user's latest are, first.
    settle::persist_recent(&state.db, state.order_admission.stock(), user_id).await?;
    Ok(store::list_for_user(&state.db, user_id, status, page.page, page.size).await?)
}
