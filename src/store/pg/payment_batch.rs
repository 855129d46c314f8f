//! The statements a batch of payments shares (group commit, `services::payment_batch`): which
//! orders Postgres has, and the batch's locks taken up front in one global order. The payments
//! without a coupon are then paid set-wise, a few multi-row statements for all of them
//! ([`super::plain_payments`]); each other one under a savepoint of its own.
//!
//! Lock order of a batch: every order row (id order), then every wallet (`users`, id order),
//! then, payment by payment, its held coupon. A lone payment, cancel or refund locks one order,
//! then its owner's wallet, then the coupon (`payment.rs`): the same order, so two batches, or a
//! batch and a lone transaction, queue on their first shared row and never wait in a cycle.

use std::collections::HashMap;

use sqlx::PgConnection;
use uuid::Uuid;

use super::orders::{ORDER_COLUMNS, OrderRow, Reservation};

/// Which of `order_ids` Postgres has. Takes no lock: the orders it lacks are persisted (in id
/// order, before any lock, as a consumer batch does) and only then is anything locked.
pub async fn known(tx: &mut PgConnection, order_ids: &[Uuid]) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar("SELECT id FROM orders WHERE id = ANY($1)").bind(order_ids).fetch_all(tx).await
}

/// What a batch holds locked: its orders' rows and its users' wallet balances.
pub struct Locked {
    /// The rows of the orders found, by id.
    pub(crate) orders: HashMap<Uuid, OrderRow>,
    /// Each user's balance, read under the wallet's lock.
    pub balances: HashMap<i64, i64>,
}

impl Locked {
    /// Where an order found holds its reservation.
    pub fn reservation(&self, order_id: Uuid) -> Option<Reservation> {
        self.orders.get(&order_id).map(|r| Reservation::parse(&r.reservation))
    }
}

/// Locks the orders `order_ids`, then the wallets of `user_ids`, each set in id order (see the
/// module's lock order), and returns what it read under those locks.
pub async fn lock_all(tx: &mut PgConnection, order_ids: &[Uuid], user_ids: &[i64]) -> sqlx::Result<Locked> {
    // ORDER BY sits below the row-locking step in the plan, so rows are locked in id order.
    let orders: Vec<OrderRow> =
        sqlx::query_as(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE"))
            .bind(order_ids)
            .fetch_all(&mut *tx)
            .await?;
    let balances: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, balance FROM users WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
            .bind(user_ids)
            .fetch_all(&mut *tx)
            .await?;
    Ok(Locked { orders: orders.into_iter().map(|r| (r.id, r)).collect(), balances: balances.into_iter().collect() })
}
