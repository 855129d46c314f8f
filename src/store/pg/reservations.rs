//! Stock movements of the shopping flow on Postgres: reserve on order (V1 `db-pessimistic`),
//! confirm on payment, release on cancel/expiry (a refund's restock is in `refunds.rs`).
//!
//! Where an order's reservation lives decides how: a V1 order (`reservation = 'db'`) updates the
//! option rows under their locks, as it always did; a V2 order (`'redis'`) appends to the
//! stock-movement ledger ([`super::movements`]) and locks no option row.
//!
//! Every function that changes option rows first locks them in ascending id order, whatever
//! order the caller lists them in: two transactions touching overlapping sets of options then
//! always queue in the same order and can never deadlock. Locks are `FOR NO KEY UPDATE` rather
//! than `FOR UPDATE`: they exclude each other exactly like `FOR UPDATE`, but do not block the
//! `KEY SHARE` locks that foreign-key checks take (an `order_items` or `cart_items` insert
//! referencing the option), which would otherwise make unrelated inserts wait or deadlock.

use std::collections::BTreeMap;

use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use super::{
    movements::{self, Kind},
    orders::Reservation,
};

/// An option row as locked for an order, with what the order needs to capture.
#[derive(Debug, Clone, FromRow)]
pub struct LockedOption {
    /// Option id.
    pub id: i64,
    /// Its product.
    pub product_id: i64,
    /// Option name.
    pub option_name: String,
    /// Product name in Korean.
    pub name_ko: String,
    /// Product name in English.
    pub name_en: String,
    /// Whether the product is on sale.
    pub on_sale: bool,
    /// Physical stock.
    pub stock: i32,
    /// Held by PENDING orders.
    pub reserved: i32,
    /// Price in the requested currency, if the option is sold in it (listed or converted).
    pub price: Option<i64>,
    /// Where the price came from (`list` / `fx`).
    pub price_source: Option<String>,
}

impl LockedOption {
    /// Sellable quantity.
    pub fn available(&self) -> i64 {
        i64::from(self.stock) - i64::from(self.reserved)
    }
}

/// Locks the options `ids` (ascending) and reads them with their price in `currency`, exact:
/// movements of V2 orders the fold has not applied yet are folded into the locked rows first.
pub async fn lock_for_order(tx: &mut PgConnection, ids: &[i64], currency: &str) -> sqlx::Result<Vec<LockedOption>> {
    // ORDER BY sits below the row-locking step in the plan, so rows are locked in id order.
    let mut rows: Vec<LockedOption> = sqlx::query_as(
        "SELECT po.id, po.product_id, po.name AS option_name, p.name_ko, p.name_en, p.on_sale, \
                po.stock, po.reserved, op.amount AS price, op.source AS price_source \
         FROM product_options po \
         JOIN products p ON p.id = po.product_id \
         LEFT JOIN option_market_prices op ON op.option_id = po.id AND op.currency = $2 \
         WHERE po.id = ANY($1) ORDER BY po.id FOR NO KEY UPDATE OF po",
    )
    .bind(ids)
    .bind(currency)
    .fetch_all(&mut *tx)
    .await?;
    // Nothing is pending in a pure V1 deployment: an empty index scan.
    for (id, ds, dr) in movements::fold_options(tx, ids).await? {
        if let Some(r) = rows.iter_mut().find(|r| r.id == id) {
            r.stock += ds as i32;
            r.reserved += dr as i32;
        }
    }
    Ok(rows)
}

/// Adds `stock_delta` and `reserved_delta` to each option, locking them in id order first.
/// Quantities of the same option are summed. The table's CHECKs (`0 <= reserved <= stock`) are
/// the last line of defence: a bug that would oversell fails the transaction instead.
pub async fn apply(tx: &mut PgConnection, changes: &[(i64, i64, i64)]) -> sqlx::Result<()> {
    let mut merged: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (id, ds, dr) in changes {
        let e = merged.entry(*id).or_default();
        e.0 += ds;
        e.1 += dr;
    }
    if merged.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = merged.keys().copied().collect();
    let ds: Vec<i64> = merged.values().map(|v| v.0).collect();
    let dr: Vec<i64> = merged.values().map(|v| v.1).collect();
    sqlx::query("SELECT id FROM product_options WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE product_options po \
         SET stock = po.stock + d.ds, reserved = po.reserved + d.dr, updated_at = now() \
         FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS d(id, ds, dr) WHERE po.id = d.id",
    )
    .bind(&ids)
    .bind(&ds)
    .bind(&dr)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// What [`share_derived`] read in one snapshot.
#[derive(Debug, Clone, Default)]
pub struct SharedView {
    /// `(id, stock - reserved)` of each option, exact (rows plus pending movements), ascending.
    pub available: Vec<(i64, i64)>,
    /// `(id, status)` of those of the asked orders Postgres has.
    pub statuses: Vec<(Uuid, String)>,
}

/// Locks the options `ids` `FOR SHARE` (ascending ids): neither the fold, nor a V1 order, nor
/// an adjustment can change their rows until the transaction ends. Then reads, in ONE statement
/// (one snapshot), their exact availability and the statuses of `orders`: a payment, cancel or
/// expiry of a V2 order does not take these locks, and the snapshot makes its `reserved`
/// movement and its status change visible together or not at all. (Locking and reading in one
/// statement would not do: a row re-read after waiting for the fold would carry deltas the
/// statement's snapshot still counts as pending.)
pub async fn share_derived(tx: &mut PgConnection, ids: &[i64], orders: &[Uuid]) -> sqlx::Result<SharedView> {
    sqlx::query("SELECT id FROM product_options WHERE id = ANY($1) ORDER BY id FOR SHARE")
        .bind(ids)
        .execute(&mut *tx)
        .await?;
    let rows: Vec<(i64, i64, Vec<Uuid>, Vec<String>)> = sqlx::query_as(
        "WITH st AS (SELECT coalesce(array_agg(id), '{}') AS ids, coalesce(array_agg(status), '{}') AS sts \
                     FROM orders WHERE id = ANY($2)) \
         SELECT s.id, s.stock - s.reserved, st.ids, st.sts FROM option_stock s, st WHERE s.id = ANY($1) ORDER BY s.id",
    )
    .bind(ids)
    .bind(orders)
    .fetch_all(&mut *tx)
    .await?;
    let mut view = SharedView::default();
    for (i, (id, avail, ids, sts)) in rows.into_iter().enumerate() {
        if i == 0 {
            view.statuses = ids.into_iter().zip(sts).collect();
        }
        view.available.push((id, avail));
    }
    Ok(view)
}

/// The quantity of each option across the items of `order_ids`.
pub async fn quantities(tx: &mut PgConnection, order_ids: &[Uuid]) -> sqlx::Result<Vec<(i64, i64)>> {
    sqlx::query_as(
        "SELECT option_id, sum(quantity)::bigint FROM order_items WHERE order_id = ANY($1) \
         GROUP BY option_id ORDER BY option_id",
    )
    .bind(order_ids)
    .fetch_all(tx)
    .await
}

/// Returns the reservations of PENDING orders (cancel: [`Kind::Release`], expiry:
/// [`Kind::Expire`]): `reserved -= qty`, on the rows for V1 orders, in the ledger for V2 ones.
pub async fn release(tx: &mut PgConnection, orders: &[(Uuid, Reservation)], kind: Kind) -> sqlx::Result<()> {
    let (v2, v1) = split(orders);
    movements::append_for_orders(tx, kind, &v2).await?;
    apply_v1(tx, kind, &v1).await
}

/// Turns an order's reservation into a sale (payment): `stock -= qty, reserved -= qty`.
pub async fn confirm(tx: &mut PgConnection, order_id: Uuid, reservation: Reservation) -> sqlx::Result<()> {
    if reservation == Reservation::Redis {
        return movements::append_for_orders(tx, Kind::Sale, &[order_id]).await;
    }
    apply_v1(tx, Kind::Sale, &[order_id]).await
}

/// Puts a refunded order's goods back on sale: `stock += qty`.
pub async fn restock(tx: &mut PgConnection, order_id: Uuid, reservation: Reservation) -> sqlx::Result<()> {
    if reservation == Reservation::Redis {
        return movements::append_for_orders(tx, Kind::Refund, &[order_id]).await;
    }
    apply_v1(tx, Kind::Refund, &[order_id]).await
}

/// A movement of `kind` for every item of the V1 orders `order_ids`, applied to the option
/// rows under their locks, with its `stock.changed` events.
async fn apply_v1(tx: &mut PgConnection, kind: Kind, order_ids: &[Uuid]) -> sqlx::Result<()> {
    if order_ids.is_empty() {
        return Ok(());
    }
    let (ds, dr) = kind.per_unit();
    let q = quantities(tx, order_ids).await?;
    apply(tx, &q.iter().map(|(id, n)| (*id, ds * n, dr * n)).collect::<Vec<_>>()).await?;
    movements::announce_for_orders(tx, kind, order_ids).await
}

/// `(V2 order ids, V1 order ids)`.
fn split(orders: &[(Uuid, Reservation)]) -> (Vec<Uuid>, Vec<Uuid>) {
    let v2 = orders.iter().filter(|o| o.1 == Reservation::Redis).map(|o| o.0).collect();
    let v1 = orders.iter().filter(|o| o.1 != Reservation::Redis).map(|o| o.0).collect();
    (v2, v1)
}
