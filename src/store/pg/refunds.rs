//! Fulfilling a paid order, and refunding a paid or fulfilled one in parts or whole, each in the
//! caller's transaction under the order's row lock.
//!
//! The order row lock (taken first, as by payment and cancel: see `payment.rs` for the lock
//! order) serialises a refund with the order's payment, its fulfilment and every other refund of
//! it: each reads the state and the refunded figures after the one before committed, so two can
//! never both give back the same money or units.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    movements,
    orders::{Order, OrderRow, Rejection, Reservation, StoreError, items_of},
    outbox::{self, EventType},
    payment::{lock_order, lock_wallet, move_money, set_status},
    redemption, reservations,
};
use crate::domain::{
    order::{OrderEvent, OrderStatus},
    refund::{Charged, RefundAsk, RefundableLine, plan},
};

/// Who refunds and why.
#[derive(Debug, Clone)]
pub struct RefundBy {
    /// The acting user (an agent, or the customer cancelling).
    pub actor_user_id: i64,
    /// Why, 1-500 characters.
    pub reason: String,
}

/// A committed refund.
#[derive(Debug, Clone)]
pub struct Refund {
    /// Its id.
    pub id: Uuid,
    /// The order afterwards.
    pub order: Order,
    /// Its status before (PAID or FULFILLED), for the audit log.
    pub status_before: OrderStatus,
    /// Money given back now (minor units of the order's currency).
    pub amount: i64,
    /// Units refunded now, `(option_id, quantity)`.
    pub units: Vec<(i64, i64)>,
    /// Of those, the units put back on sale (the order was not fulfilled yet).
    pub restocked: Vec<(i64, i64)>,
    /// The owner's wallet balance afterwards.
    pub balance_after: i64,
    /// Why.
    pub reason: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// PAID -> FULFILLED (`ORDER_NOT_FULFILLABLE` from any other state).
pub async fn fulfill(tx: &mut PgConnection, order_id: Uuid, now: DateTime<Utc>) -> Result<Order, StoreError> {
    let row = lock_order(&mut *tx, order_id, |_| true).await?;
    let next = row.status().apply(OrderEvent::Fulfill).map_err(Rejection::Transition)?;
    set_status(&mut *tx, order_id, next, now, false).await?;
    let items = items_of(&mut *tx, &[order_id]).await?;
    let mut order = row.with_items(items);
    order.status = next;
    Ok(order)
}

/// Refunds `ask` of an order (any owner: the caller authorised it), to the owner's wallet.
pub async fn refund(
    tx: &mut PgConnection,
    order_id: Uuid,
    ask: &RefundAsk,
    by: &RefundBy,
    now: DateTime<Utc>,
) -> Result<Refund, StoreError> {
    let row = lock_order(&mut *tx, order_id, |_| true).await?;
    row.status().refundable().map_err(Rejection::Transition)?;
    refund_locked(tx, row, ask, by, now).await
}

/// [`refund`] of an order whose row the caller has locked and found refundable.
pub(super) async fn refund_locked(
    tx: &mut PgConnection,
    row: OrderRow,
    ask: &RefundAsk,
    by: &RefundBy,
    now: DateTime<Utc>,
) -> Result<Refund, StoreError> {
    let order_id = row.id;
    let items = items_of(&mut *tx, &[order_id]).await?;
    let lines: Vec<RefundableLine> = items
        .iter()
        .map(|i| RefundableLine {
            option_id: i.option_id,
            quantity: i.quantity.into(),
            refunded: i.refunded_quantity.into(),
            unit_price: i.unit_price,
        })
        .collect();
    let charged = Charged { total: row.total_amount, final_amount: row.final_amount, refunded: row.refunded_amount };
    let plan = plan(&lines, charged, ask)?;
    let status = row.status();

    lock_wallet(&mut *tx, row.user_id).await?;
    let balance_after = move_money(&mut *tx, row.user_id, "REFUND", plan.amount, &row.currency, order_id, now).await?;

    let refund_id = Uuid::now_v7();
    // Units of an order not shipped yet go back on sale; a shipped order's come back (or not)
    // outside the shop.
    let restocked = if status == OrderStatus::Paid { plan.units.clone() } else { Vec::new() };
    let restock_of = |id: i64| restocked.iter().find(|r| r.0 == id).map_or(0, |r| r.1);
    sqlx::query(
        "UPDATE order_items oi SET refunded_quantity = oi.refunded_quantity + t.q, \
                restocked_quantity = oi.restocked_quantity + t.r \
         FROM unnest($2::bigint[], $3::int[], $4::int[]) AS t (option_id, q, r) \
         WHERE oi.order_id = $1 AND oi.option_id = t.option_id",
    )
    .bind(order_id)
    .bind(plan.units.iter().map(|u| u.0).collect::<Vec<_>>())
    .bind(plan.units.iter().map(|u| u.1 as i32).collect::<Vec<_>>())
    .bind(plan.units.iter().map(|u| restock_of(u.0) as i32).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    match Reservation::parse(&row.reservation) {
        Reservation::Redis => movements::append_refund(&mut *tx, refund_id, order_id, &restocked).await?,
        Reservation::Db => {
            reservations::apply(&mut *tx, &restocked.iter().map(|(id, q)| (*id, *q, 0)).collect::<Vec<_>>()).await?;
            movements::announce_refund(&mut *tx, order_id, &restocked).await?
        }
    }

    let next = if plan.complete { OrderStatus::Refunded } else { status };
    if plan.complete {
        // The coupon comes back only when the whole of an order not shipped is refunded.
        if status == OrderStatus::Paid
            && let Some(uc) = row.user_coupon_id
        {
            redemption::lock(&mut *tx, uc).await?;
            redemption::restore(&mut *tx, uc, now).await?;
        }
        sqlx::query("UPDATE payments SET status = 'REFUNDED', updated_at = $2 WHERE order_id = $1")
            .bind(order_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("UPDATE orders SET refunded_amount = refunded_amount + $2 WHERE id = $1")
        .bind(order_id)
        .bind(plan.amount)
        .execute(&mut *tx)
        .await?;
    set_status(&mut *tx, order_id, next, now, plan.complete).await?;

    let event_items: Vec<_> = plan
        .units
        .iter()
        .map(|(id, q)| json!({ "product_option_id": id, "quantity": q, "restocked": restock_of(*id) > 0 }))
        .collect();
    sqlx::query(
        "INSERT INTO order_refunds (id, order_id, amount, currency, reason, items, actor_user_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(refund_id)
    .bind(order_id)
    .bind(plan.amount)
    .bind(&row.currency)
    .bind(&by.reason)
    .bind(json!(event_items))
    .bind(by.actor_user_id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    outbox::enqueue(
        &mut *tx,
        EventType::OrderRefunded,
        now,
        json!({ "order_id": order_id, "refund_id": refund_id,
                "amount": { "amount": plan.amount, "currency": row.currency },
                "items": event_items, "reason": by.reason, "occurred_at": now }),
    )
    .await?;

    let items = items_of(&mut *tx, &[order_id]).await?;
    let mut order = row.with_items(items);
    order.status = next;
    order.refunded_amount += plan.amount;
    if plan.complete {
        order.cancelled_at = Some(now);
    }
    Ok(Refund {
        id: refund_id,
        order,
        status_before: status,
        amount: plan.amount,
        units: plan.units,
        restocked,
        balance_after,
        reason: by.reason.clone(),
        created_at: now,
    })
}
