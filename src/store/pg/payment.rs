//! Paying an order from the wallet, and cancelling it, each in one transaction (a cancel of a
//! paid order is a refund of everything left: `refunds.rs`).
//!
//! Lock order, the same in every path so none can deadlock another: the order row, then the
//! owner's wallet (`users`) row, then the held coupon, then (V1 orders only) the option rows in
//! id order. A V2 order's stock moves through the ledger ([`super::movements`]): its payment,
//! cancel and refund touch only rows of that order and that user, never a shared option row.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{
    movements::Kind,
    order_events,
    orders::{ORDER_COLUMNS, Order, OrderRow, Rejection, Reservation, StoreError, items_of},
    outbox::{self, EventType, NewEvent},
    redemption,
    refunds::{self, Refund, RefundBy},
    reservations,
};
use crate::domain::{
    Currency,
    discount::{DiscountLine, RedemptionError, validate_redemption},
    order::{OrderEvent, OrderStatus},
    refund::RefundAsk,
};

/// A paid order and the wallet balance left.
#[derive(Debug, Clone)]
pub struct Paid {
    /// The order, now PAID.
    pub order: Order,
    /// Balance after the charge.
    pub balance_after: i64,
    /// When it was paid.
    pub paid_at: DateTime<Utc>,
}

/// Locks an order; someone else's order is reported exactly like a missing one.
pub(super) async fn lock_order(
    tx: &mut PgConnection,
    order_id: Uuid,
    visible: impl Fn(i64) -> bool,
) -> Result<OrderRow, StoreError> {
    let row: Option<OrderRow> =
        sqlx::query_as(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 FOR NO KEY UPDATE"))
            .bind(order_id)
            .fetch_optional(&mut *tx)
            .await?;
    Ok(row.filter(|r| visible(r.user_id)).ok_or(Rejection::OrderNotFound)?)
}

pub(super) async fn lock_wallet(tx: &mut PgConnection, user_id: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT balance FROM users WHERE id = $1 FOR NO KEY UPDATE").bind(user_id).fetch_one(tx).await
}

/// Moves a locked order to `next` at `now` (`ended`: it was cancelled or refunded then).
pub(super) async fn set_status(
    tx: &mut PgConnection,
    order_id: Uuid,
    next: OrderStatus,
    now: DateTime<Utc>,
    ended: bool,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE orders SET status = $2, updated_at = $3, cancelled_at = CASE WHEN $4 THEN $3 ELSE cancelled_at END \
         WHERE id = $1",
    )
    .bind(order_id)
    .bind(next.as_str())
    .bind(now)
    .bind(ended)
    .execute(tx)
    .await?;
    Ok(())
}

/// Moves `delta` into (or out of) the wallet with its balance transaction; returns the balance.
/// One statement (one round trip): the balance transaction is written from the updated row.
pub(super) async fn move_money(
    tx: &mut PgConnection,
    user_id: i64,
    kind: &str,
    delta: i64,
    currency: &str,
    order_id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<i64> {
    // A fully discounted order moves no money, and a zero-amount transaction means nothing.
    sqlx::query_scalar(
        "WITH u AS (UPDATE users SET balance = balance + $2, updated_at = $3 WHERE id = $1 RETURNING balance), \
              t AS (INSERT INTO balance_transactions (id, user_id, type, amount, balance_after, currency, order_id, \
                                                      created_at) \
                    SELECT $4, $1, $5, $2, u.balance, $6, $7, $3 FROM u WHERE $2 <> 0) \
         SELECT balance FROM u",
    )
    .bind(user_id)
    .bind(delta)
    .bind(now)
    .bind(Uuid::now_v7())
    .bind(kind)
    .bind(currency)
    .bind(order_id)
    .fetch_one(&mut *tx)
    .await
}

/// Pays a PENDING order of `user_id` from its wallet, optionally with a held coupon.
///
/// Runs inside the caller's transaction, which the caller commits (with its idempotent answer)
/// or rolls back on any refusal, so nothing is charged, used or confirmed unless all of it is.
/// A PENDING order past its expiry is refused with `ORDER_EXPIRED`; the caller then expires it
/// with [`super::expiry::expire_if_overdue`] in a transaction of its own.
pub async fn pay(
    tx: &mut PgConnection,
    order_id: Uuid,
    user_id: i64,
    user_coupon_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Paid, StoreError> {
    let row = lock_order(&mut *tx, order_id, |owner| owner == user_id).await?;
    match row.status().pay_at(row.expires_at, now) {
        Ok(_) => {}
        Err(e) => return Err(Rejection::Transition(e).into()),
    }
    let balance = lock_wallet(&mut *tx, user_id).await?;

    let mut discount = 0;
    let mut coupon = None;
    if let Some(uc_id) = user_coupon_id {
        let held = redemption::lock(&mut *tx, uc_id).await?.ok_or(Rejection::Coupon(RedemptionError::Invalid))?;
        let lines: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT oi.product_id, p.category, oi.subtotal FROM order_items oi \
             JOIN products p ON p.id = oi.product_id WHERE oi.order_id = $1",
        )
        .bind(order_id)
        .fetch_all(&mut *tx)
        .await?;
        let lines: Vec<DiscountLine> = lines
            .into_iter()
            .map(|(product_id, category, subtotal)| DiscountLine { product_id, category, subtotal })
            .collect();
        discount = validate_redemption(&held.held, user_id, now, &held.rule, &lines, row.market())
            .map_err(Rejection::Coupon)?
            .min(row.total_amount);
        coupon = Some(held);
    }
    let final_amount = row.total_amount - discount;
    if balance < final_amount {
        return Err(Rejection::InsufficientBalance {
            currency: Currency::parse(&row.currency).unwrap_or(Currency::Krw),
            balance,
            required: final_amount,
        }
        .into());
    }

    let balance_after = move_money(&mut *tx, user_id, "PAYMENT", -final_amount, &row.currency, order_id, now).await?;
    reservations::confirm(&mut *tx, order_id, Reservation::parse(&row.reservation)).await?;
    if let Some(c) = &coupon {
        redemption::mark_used(&mut *tx, c.user_coupon_id, order_id, now).await?;
    }
    // The payment and the order's new state in one statement (one round trip).
    sqlx::query(
        "WITH p AS (INSERT INTO payments (id, order_id, user_id, amount, currency, method, status, created_at, \
                                          updated_at) \
                    VALUES ($1, $2, $3, $4, $5, 'WALLET', 'COMPLETED', $6, $6)) \
         UPDATE orders SET status = 'PAID', discount_amount = $7, final_amount = $4, user_coupon_id = $8, \
                paid_at = $6, updated_at = $6 WHERE id = $2",
    )
    .bind(Uuid::now_v7())
    .bind(order_id)
    .bind(user_id)
    .bind(final_amount)
    .bind(&row.currency)
    .bind(now)
    .bind(discount)
    .bind(coupon.as_ref().map(|c| c.user_coupon_id))
    .execute(&mut *tx)
    .await?;
    let money = |amount: i64| json!({ "amount": amount, "currency": row.currency });
    let mut events = vec![NewEvent {
        kind: EventType::PaymentCompleted,
        occurred_at: now,
        payload: json!({ "order_id": order_id, "amount": money(final_amount), "method": "WALLET" }),
    }];
    if let Some(c) = &coupon {
        events.push(NewEvent {
            kind: EventType::CouponUsed,
            occurred_at: now,
            payload: json!({ "coupon_id": c.coupon_id, "user_coupon_id": c.user_coupon_id, "order_id": order_id,
                             "discount_amount": money(discount) }),
        });
    }
    outbox::enqueue_all(&mut *tx, events).await?;
    let items = items_of(&mut *tx, &[order_id]).await?;
    let mut order = row.with_items(items);
    order.status = OrderStatus::Paid;
    order.discount_amount = discount;
    order.final_amount = final_amount;
    order.user_coupon_id = coupon.map(|c| c.user_coupon_id);
    order.paid_at = Some(now);
    Ok(Paid { order, balance_after, paid_at: now })
}

/// What a cancel did.
#[derive(Debug, Clone)]
pub struct Cancelled {
    /// The order afterwards (CANCELLED or REFUNDED).
    pub order: Order,
    /// The refund of a PAID order (everything not refunded yet).
    pub refund: Option<Refund>,
}

/// The reason recorded for the refund a cancel of a PAID order makes.
pub const CANCEL_REASON: &str = "order cancelled";

/// Cancels an order: PENDING -> CANCELLED (reservation returned); PAID -> REFUNDED through the
/// refund path (`refunds.rs`): whatever was not refunded yet goes back to the wallet, the units
/// left go back on sale, the coupon comes back if still valid, the payment is REFUNDED.
/// `visible` says whether the caller may act on an order of a given owner.
pub async fn cancel(
    pool: &PgPool,
    order_id: Uuid,
    visible: impl Fn(i64) -> bool,
    now: DateTime<Utc>,
) -> Result<Cancelled, StoreError> {
    let mut tx = pool.begin().await?;
    let row = lock_order(&mut tx, order_id, visible).await?;
    let next = row.status().apply(OrderEvent::Cancel).map_err(Rejection::Transition)?;
    if next == OrderStatus::Refunded {
        let by = RefundBy { actor_user_id: row.user_id, reason: CANCEL_REASON.to_owned() };
        let refund = refunds::refund_locked(&mut tx, row, &RefundAsk::Rest, &by, now).await?;
        tx.commit().await?;
        return Ok(Cancelled { order: refund.order.clone(), refund: Some(refund) });
    }
    reservations::release(&mut tx, &[(order_id, Reservation::parse(&row.reservation))], Kind::Release).await?;
    order_events::ended(&mut tx, EventType::OrderCancelled, &[order_id], order_events::CANCEL_REQUESTED, now).await?;
    set_status(&mut tx, order_id, next, now, true).await?;
    let items = items_of(&mut *tx, &[order_id]).await?;
    tx.commit().await?;
    let mut order = row.with_items(items);
    order.status = next;
    order.cancelled_at = Some(now);
    Ok(Cancelled { order, refund: None })
}
