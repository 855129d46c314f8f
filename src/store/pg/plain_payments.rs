//! Paying a batch of V2 payments without a coupon set-wise: every refusal is decided in Rust
//! from the rows the batch read under its locks ([`super::payment_batch::lock_all`]), so nothing
//! needs undoing, and the accepted ones are written together: one statement for the wallets,
//! their balance transactions, the payments and the orders, one for the ledger's sales, one for
//! the outbox events. A payment costs the batch no round trip of its own.
//!
//! Each answer is exactly the one [`super::payment::pay`] gives the same payment alone, in the
//! order the batch lists them (a second payment of one order finds it PAID; a user's second
//! payment sees the balance the first one left).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    movements::{self, Kind},
    orders::{OrderItem, Rejection, Reservation, StoreError, items_of},
    outbox::{self, EventType, NewEvent},
    payment::Paid,
    payment_batch::Locked,
};
use crate::domain::{Currency, order::OrderStatus};

/// A payment without a coupon, asked of a batch.
#[derive(Debug, Clone, Copy)]
pub struct Plain {
    /// The order to pay.
    pub order_id: Uuid,
    /// Who pays (anyone else's order is not found).
    pub user_id: i64,
    /// The payment's time.
    pub now: DateTime<Utc>,
}

/// One accepted payment, before it is written.
struct Charge {
    order_id: Uuid,
    user_id: i64,
    amount: i64,
    currency: String,
    balance_after: i64,
    at: DateTime<Utc>,
}

/// Pays `asks` (V2 orders the batch locked in `locked`, whose balances it updates); one answer
/// per ask, in order. An `Err` of the whole call is a database failure: the caller's transaction
/// is then unusable and nothing of it may commit.
pub async fn pay(
    tx: &mut PgConnection,
    asks: &[Plain],
    locked: &mut Locked,
) -> sqlx::Result<Vec<Result<Paid, StoreError>>> {
    let mut answers: Vec<Option<Result<Paid, StoreError>>> = Vec::with_capacity(asks.len());
    let mut charges = Vec::new();
    for ask in asks {
        match decide(ask, locked) {
            Ok(charge) => {
                charges.push(charge);
                answers.push(None);
            }
            Err(refused) => answers.push(Some(Err(refused.into()))),
        }
    }
    let mut items: HashMap<Uuid, Vec<OrderItem>> = HashMap::new();
    if !charges.is_empty() {
        write(tx, &charges).await?;
        let ids: Vec<Uuid> = charges.iter().map(|c| c.order_id).collect();
        for item in items_of(&mut *tx, &ids).await? {
            items.entry(item.order_id).or_default().push(item);
        }
    }
    let mut charges = charges.into_iter();
    Ok(answers
        .into_iter()
        .map(|answer| {
            answer.unwrap_or_else(|| {
                let c = charges.next().expect("one charge per accepted payment");
                let row = locked.orders[&c.order_id].clone();
                let mut order = row.with_items(items.remove(&c.order_id).unwrap_or_default());
                order.status = OrderStatus::Paid;
                order.discount_amount = 0;
                order.final_amount = c.amount;
                order.user_coupon_id = None;
                order.paid_at = Some(c.at);
                Ok(Paid { order, balance_after: c.balance_after, paid_at: c.at })
            })
        })
        .collect())
}

/// The answer `payment::pay` would give `ask` now: a refusal, or the charge (then applied to
/// `locked`: the order is PAID and the balance lower for the payments after it).
fn decide(ask: &Plain, locked: &mut Locked) -> Result<Charge, Rejection> {
    let row =
        locked.orders.get_mut(&ask.order_id).filter(|r| r.user_id == ask.user_id).ok_or(Rejection::OrderNotFound)?;
    debug_assert_eq!(Reservation::parse(&row.reservation), Reservation::Redis, "V1 orders are paid alone");
    row.status().pay_at(row.expires_at, ask.now).map_err(Rejection::Transition)?;
    // The owner's wallet is locked with the batch (an order's owner always has one).
    let balance = locked.balances.entry(ask.user_id).or_insert(0);
    let amount = row.total_amount;
    if *balance < amount {
        return Err(Rejection::InsufficientBalance {
            currency: Currency::parse(&row.currency).unwrap_or(Currency::Krw),
            balance: *balance,
            required: amount,
        });
    }
    *balance -= amount;
    row.status = OrderStatus::Paid.as_str().to_owned();
    Ok(Charge {
        order_id: ask.order_id,
        user_id: ask.user_id,
        amount,
        currency: row.currency.clone(),
        balance_after: *balance,
        at: ask.now,
    })
}

/// Writes the accepted payments: wallets (one update per user), balance transactions, payments
/// and orders in one statement; then the ledger's sales and the `payment.completed` events.
async fn write(tx: &mut PgConnection, charges: &[Charge]) -> sqlx::Result<()> {
    sqlx::query(
        "WITH d AS (SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], \
                                        $6::timestamptz[], $7::uuid[], $8::uuid[]) \
                    AS d (order_id, user_id, amount, currency, balance_after, at, payment_id, transaction_id)), \
              w AS (UPDATE users u SET balance = u.balance - s.amount, updated_at = s.at \
                    FROM (SELECT user_id, sum(amount)::bigint AS amount, max(at) AS at FROM d GROUP BY user_id) s \
                    WHERE u.id = s.user_id), \
              t AS (INSERT INTO balance_transactions (id, user_id, type, amount, balance_after, currency, order_id, \
                                                      created_at) \
                    SELECT transaction_id, user_id, 'PAYMENT', -amount, balance_after, currency, order_id, at \
                    FROM d WHERE amount <> 0), \
              p AS (INSERT INTO payments (id, order_id, user_id, amount, currency, method, status, created_at, \
                                          updated_at) \
                    SELECT payment_id, order_id, user_id, amount, currency, 'WALLET', 'COMPLETED', at, at FROM d) \
         UPDATE orders o SET status = 'PAID', discount_amount = 0, final_amount = d.amount, user_coupon_id = NULL, \
                paid_at = d.at, updated_at = d.at \
         FROM d WHERE o.id = d.order_id",
    )
    .bind(charges.iter().map(|c| c.order_id).collect::<Vec<_>>())
    .bind(charges.iter().map(|c| c.user_id).collect::<Vec<_>>())
    .bind(charges.iter().map(|c| c.amount).collect::<Vec<_>>())
    .bind(charges.iter().map(|c| c.currency.as_str()).collect::<Vec<_>>())
    .bind(charges.iter().map(|c| c.balance_after).collect::<Vec<_>>())
    .bind(charges.iter().map(|c| c.at).collect::<Vec<_>>())
    .bind(charges.iter().map(|_| Uuid::now_v7()).collect::<Vec<_>>())
    .bind(charges.iter().map(|_| Uuid::now_v7()).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    let ids: Vec<Uuid> = charges.iter().map(|c| c.order_id).collect();
    movements::append_for_orders(&mut *tx, Kind::Sale, &ids).await?;
    let events = charges
        .iter()
        .map(|c| NewEvent {
            kind: EventType::PaymentCompleted,
            occurred_at: c.at,
            payload: json!({ "order_id": c.order_id, "amount": { "amount": c.amount, "currency": c.currency },
                             "method": "WALLET" }),
        })
        .collect();
    outbox::enqueue_all(&mut *tx, events).await?;
    Ok(())
}
