//! Paying an order from the wallet (optionally with a coupon), and cancelling or refunding it:
//! Postgres first, in one transaction, then the order's Redis step after the commit. Part of the
//! orders domain: failures are [`OrderError`]s.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    AppState, catalog,
    idempotency::Receipt,
    orders::{self, OrderError},
    payment_batch::{Answer, Ask},
};
pub use crate::store::pg::payment::Paid;
use crate::{
    admission::orders::settle,
    domain::order::{Rejection, TransitionError},
    store::pg::{
        expiry,
        orders::{Order, StoreError},
        payment,
    },
};

/// Pays a PENDING order of `user_id` from its wallet in one atomic step (coupon checked and used,
/// wallet debited, stock confirmed, order PAID); the idempotent answer is stored with it. V2
/// payments are group-committed with the payments arriving with them
/// ([`super::payment_batch`]); V1 payments run in a transaction of their own, as always.
pub async fn pay(
    state: &AppState,
    order_id: Uuid,
    user_id: i64,
    user_coupon_id: Option<Uuid>,
    receipt: Receipt<'static, Paid>,
) -> Result<Paid, OrderError> {
    if let Some(uc) = user_coupon_id {
        // Read-your-writes: a V2 coupon issued a moment ago may not be persisted yet; it is now,
        // idempotently, exactly as the consumer would.
        state.coupon_admission.ensure_persisted(user_id, uc).await?;
    }
    let now = Utc::now();
    let Some(batches) = &state.payments else {
        return pay_alone(state, order_id, user_id, user_coupon_id, now, receipt).await;
    };
    let ask = Ask { order_id, user_id, user_coupon_id, now, receipt };
    match batches.pay(ask).await? {
        // Committed and already marked paid in Redis by the batch.
        Answer::Paid(paid) => Ok(paid),
        Answer::Refused(e) => Err(refused(state, order_id, now, e).await),
        Answer::Alone(receipt) => pay_alone(state, order_id, user_id, user_coupon_id, now, receipt).await,
    }
}

/// The payment in a transaction of its own (V1 orders).
async fn pay_alone(
    state: &AppState,
    order_id: Uuid,
    user_id: i64,
    user_coupon_id: Option<Uuid>,
    now: DateTime<Utc>,
    receipt: Receipt<'static, Paid>,
) -> Result<Paid, OrderError> {
    let stock = state.order_admission.stock();
    let mut persisted = false;
    let mut tx = state.db.begin().await?;
    let paid = loop {
        match payment::pay(&mut tx, order_id, user_id, user_coupon_id, now).await {
            Ok(paid) => break paid,
            // A V2 order the stream consumer has not persisted yet (the index lookup found no
            // row, and took no lock): its own rows are written from the Redis hash, idempotently
            // with the consumer, in this very transaction, and it is paid like any other.
            Err(StoreError::Rejected(Rejection::OrderNotFound)) if !persisted => {
                if !settle::persist_from_redis_in(&mut tx, stock, order_id).await? {
                    return Err(Rejection::OrderNotFound.into());
                }
                persisted = true;
            }
            Err(e) => {
                if persisted && matches!(e, StoreError::Rejected(_)) {
                    // Refused before the payment wrote anything: the order persisted above stays
                    // (as when it was persisted on its own), so an overdue one can expire below.
                    tx.commit().await?;
                } else {
                    drop(tx);
                }
                return Err(refused(state, order_id, now, e.into()).await);
            }
        }
    };
    // Stored in the payment's own transaction: a retried key replays this answer and never charges twice.
    receipt.record(&mut tx, &paid).await?;
    tx.commit().await?;
    settle::confirmed(stock, &paid.order.held()).await;
    Ok(paid)
}

/// A refused payment's error, after expiring the order if it was found overdue before the
/// sweeper (as the sweeper would), once the refusal's transaction is over.
async fn refused(state: &AppState, order_id: Uuid, now: DateTime<Utc>, e: OrderError) -> OrderError {
    if !matches!(e, OrderError::Rejected(Rejection::Transition(TransitionError::Expired))) {
        return e;
    }
    match expiry::expire_if_overdue(&state.db, order_id, now).await {
        Ok(held) => {
            for held in held {
                settle::released(state.order_admission.stock(), &held).await;
                catalog::stock_changed(state, &held).await;
            }
            e
        }
        Err(fault) => fault.into(),
    }
}

/// Cancels an order: PENDING -> CANCELLED (stock returns); PAID -> REFUNDED (everything not
/// refunded yet back to the wallet, the units left back on sale, coupon given back while still
/// valid). `visible` says whether the caller may act on an order of a given owner (anyone
/// else's order is reported as not found).
pub async fn cancel(state: &AppState, order_id: Uuid, visible: impl Fn(i64) -> bool) -> Result<Order, OrderError> {
    let stock = state.order_admission.stock();
    let done = match payment::cancel(&state.db, order_id, &visible, Utc::now()).await {
        Err(StoreError::Rejected(Rejection::OrderNotFound))
            if settle::persist_from_redis(&state.db, stock, order_id).await? =>
        {
            payment::cancel(&state.db, order_id, &visible, Utc::now()).await?
        }
        other => other?,
    };
    // Postgres committed; now the counters (exactly once, whatever retries or sweeps follow).
    match &done.refund {
        Some(refund) => orders::refunds::restocked(state, refund).await,
        None => {
            settle::released(stock, &done.order.held()).await;
            catalog::stock_changed(state, &done.order.held()).await;
        }
    }
    Ok(done.order)
}
