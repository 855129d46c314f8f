//! The stock-movement ledger of V2 orders (`stock_movements`, migration 0003) and its fold.
//!
//! # Why a ledger
//! Under V2, Redis decides admission; Postgres only has to *record* what happened to an option's
//! stock. Recording it as `UPDATE product_options SET reserved = reserved - q` made every payment
//! of a hot product queue on one row lock (issue 10: pay p50 192 ms, p99 2 s, 503s). Here each
//! movement is a row appended in the transaction that causes it (consumer persist, payment,
//! cancel, expiry, refund); no payment, cancel or expiry locks or updates an option row. The
//! [`fold`] applies pending movements to `product_options` in one `UPDATE` per option per batch,
//! and is the only writer of an option row under V2. A per-option bucketed counter was the other
//! candidate; it still puts every payment on *some* shared row (one of N buckets, so N queues
//! instead of one) and makes "stock" a sum over buckets forever, while the ledger puts no payment
//! on a shared row and keeps the history of every unit.
//!
//! # Exactly derivable
//! `stock = product_options.stock + sum(pending d_stock)`, likewise `reserved` (the view
//! `option_stock`, read by [`derived`]). The fold moves a batch from the ledger to the row in one
//! transaction, so any single statement sees either both before or both after. Folded rows are
//! kept (`folded_at` set) as history: [`check`] compares them with the orders.
//!
//! # Exactly once
//! A unique index on `(order_id, option_id, kind)` makes a second reserve (or sale, release...)
//! of the same order a constraint error instead of a double count; the order's status transition,
//! taken under the order's row lock, is what decides which movement is written.
//!
//! # Every movement is an event
//! Each movement, ledger row or not, is also a `stock.changed` outbox event written in the same
//! statement's transaction ([`announce`]): the V2 appenders here emit from the rows they
//! insert, and the V1 writers (which change option rows directly) call
//! [`announce_for_orders`]. Payload: `product_option_id`, `delta` (physical stock),
//! `reserved_delta`, `movement` (reserve, release, expiry, sale, refund, adjustment), `reason`
//! (the operator's for an adjustment, else the movement) and `order_id` (null for adjustments).
//!
//! # Writers that still lock option rows
//! V1 (`db-pessimistic`) orders and admin adjustments read and write option rows under their row
//! lock. Before reading, they fold the pending movements of *their* options into the locked rows
//! ([`fold_options`]), so they see exact figures and the global fold never applies a movement
//! twice (it re-checks `folded_at IS NULL` under the same row locks).

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use super::outbox::{self, EventType, NewEvent};

/// What caused a movement (`stock_movements.kind`) and how it moves the figures per unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A V2 admission persisted: `reserved += q`.
    Reserve,
    /// A PENDING order cancelled: `reserved -= q`.
    Release,
    /// A PENDING order expired: `reserved -= q`.
    Expire,
    /// A PENDING order paid: `stock -= q, reserved -= q`.
    Sale,
    /// A PAID order refunded: `stock += q`.
    Refund,
    /// An admin adjustment: `stock += q` (q signed).
    Adjust,
}

impl Kind {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Reserve => "reserve",
            Kind::Release => "release",
            Kind::Expire => "expire",
            Kind::Sale => "sale",
            Kind::Refund => "refund",
            Kind::Adjust => "adjust",
        }
    }

    /// Its name in `stock.changed` events (the contract's list of movements).
    pub fn movement(self) -> &'static str {
        match self {
            Kind::Reserve => "reserve",
            Kind::Release => "release",
            Kind::Expire => "expiry",
            Kind::Sale => "sale",
            Kind::Refund => "refund",
            Kind::Adjust => "adjustment",
        }
    }

    /// `(d_stock, d_reserved)` per unit.
    pub fn per_unit(self) -> (i64, i64) {
        match self {
            Kind::Reserve => (0, 1),
            Kind::Release | Kind::Expire => (0, -1),
            Kind::Sale => (-1, -1),
            Kind::Refund | Kind::Adjust => (1, 0),
        }
    }
}

/// One movement as written: what `stock.changed` reports.
#[derive(Debug, Clone, FromRow)]
pub struct Moved {
    /// The order that caused it; none for an adjustment.
    pub order_id: Option<Uuid>,
    /// The option.
    pub option_id: i64,
    /// Change of physical stock.
    pub d_stock: i64,
    /// Change of the units held by PENDING orders.
    pub d_reserved: i64,
    /// When (the transaction's time).
    pub at: DateTime<Utc>,
}

/// Appends one movement of `kind` per item of `order_ids` (read from `order_items`), and its
/// event, in the caller's transaction. The caller holds the orders' row locks and has decided
/// the transition.
pub async fn append_for_orders(tx: &mut PgConnection, kind: Kind, order_ids: &[Uuid]) -> sqlx::Result<()> {
    if order_ids.is_empty() {
        return Ok(());
    }
    let (ds, dr) = kind.per_unit();
    let moved: Vec<Moved> = sqlx::query_as(
        "INSERT INTO stock_movements (option_id, d_stock, d_reserved, kind, order_id) \
         SELECT option_id, $2 * quantity, $3 * quantity, $4, order_id FROM order_items \
         WHERE order_id = ANY($1) ORDER BY order_id, option_id \
         RETURNING order_id, option_id, d_stock, d_reserved, created_at AS at",
    )
    .bind(order_ids)
    .bind(ds)
    .bind(dr)
    .bind(kind.as_str())
    .fetch_all(&mut *tx)
    .await?;
    announce(tx, kind, &moved, None).await
}

/// Appends one movement of `kind` per `(order_id, option_id, quantity)` line, in one statement,
/// and their events.
pub async fn append_lines(tx: &mut PgConnection, kind: Kind, lines: &[(Uuid, i64, i64)]) -> sqlx::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let (ds, dr) = kind.per_unit();
    let moved: Vec<Moved> = sqlx::query_as(
        "INSERT INTO stock_movements (option_id, d_stock, d_reserved, kind, order_id) \
         SELECT option_id, $4 * q, $5 * q, $6, order_id \
         FROM unnest($1::uuid[], $2::bigint[], $3::bigint[]) AS t (order_id, option_id, q) \
         RETURNING order_id, option_id, d_stock, d_reserved, created_at AS at",
    )
    .bind(lines.iter().map(|l| l.0).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.1).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.2).collect::<Vec<_>>())
    .bind(ds)
    .bind(dr)
    .bind(kind.as_str())
    .fetch_all(&mut *tx)
    .await?;
    announce(tx, kind, &moved, None).await
}

/// Appends a refund's return of `(option_id, quantity)` units of a V2 order (`stock += q`):
/// one row per option, exactly once per refund (unique on `(refund_id, option_id)`).
pub async fn append_refund(
    tx: &mut PgConnection,
    refund_id: Uuid,
    order_id: Uuid,
    lines: &[(i64, i64)],
) -> sqlx::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let moved: Vec<Moved> = sqlx::query_as(
        "INSERT INTO stock_movements (option_id, d_stock, d_reserved, kind, order_id, refund_id) \
         SELECT option_id, q, 0, 'refund', $1, $2 FROM unnest($3::bigint[], $4::bigint[]) AS t (option_id, q) \
         RETURNING order_id, option_id, d_stock, d_reserved, created_at AS at",
    )
    .bind(order_id)
    .bind(refund_id)
    .bind(lines.iter().map(|l| l.0).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.1).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    announce(tx, Kind::Refund, &moved, None).await
}

/// The events of a refund's return of `(option_id, quantity)` units that a V1 writer applied to
/// the option rows itself (no ledger row), as [`append_refund`] would have written them.
pub async fn announce_refund(tx: &mut PgConnection, order_id: Uuid, lines: &[(i64, i64)]) -> sqlx::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let at: DateTime<Utc> = sqlx::query_scalar("SELECT now()").fetch_one(&mut *tx).await?;
    let moved: Vec<Moved> = lines
        .iter()
        .map(|&(option_id, q)| Moved { order_id: Some(order_id), option_id, d_stock: q, d_reserved: 0, at })
        .collect();
    announce(tx, Kind::Refund, &moved, None).await
}

/// Records an admin adjustment of `delta` that the caller applied to the (locked) option row
/// itself: written already folded, as history, with its event carrying the operator's `reason`.
pub async fn record_adjust(tx: &mut PgConnection, option_id: i64, delta: i64, reason: &str) -> sqlx::Result<()> {
    record_adjusts(tx, &[(option_id, delta)], reason).await
}

/// Records adjustments of `(option_id, delta)` the caller wrote to the option rows itself (an
/// adjustment, or the initial stock of a new product), in one statement: already folded, as
/// history, each with its `stock.changed` event carrying `reason`.
pub async fn record_adjusts(tx: &mut PgConnection, lines: &[(i64, i64)], reason: &str) -> sqlx::Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let moved: Vec<Moved> = sqlx::query_as(
        "INSERT INTO stock_movements (option_id, d_stock, d_reserved, kind, folded_at) \
         SELECT option_id, d, 0, 'adjust', now() FROM unnest($1::bigint[], $2::bigint[]) AS t (option_id, d) \
         RETURNING order_id, option_id, d_stock, d_reserved, created_at AS at",
    )
    .bind(lines.iter().map(|l| l.0).collect::<Vec<_>>())
    .bind(lines.iter().map(|l| l.1).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    announce(tx, Kind::Adjust, &moved, Some(reason)).await
}

/// The events of movements a V1 writer applied to the option rows itself (no ledger row): one
/// per item of `order_ids`, as [`append_for_orders`] would have written them.
pub async fn announce_for_orders(tx: &mut PgConnection, kind: Kind, order_ids: &[Uuid]) -> sqlx::Result<()> {
    if order_ids.is_empty() {
        return Ok(());
    }
    let (ds, dr) = kind.per_unit();
    let moved: Vec<Moved> = sqlx::query_as(
        "SELECT order_id, option_id, $2 * quantity AS d_stock, $3 * quantity AS d_reserved, now() AS at \
         FROM order_items WHERE order_id = ANY($1) ORDER BY order_id, option_id",
    )
    .bind(order_ids)
    .bind(ds)
    .bind(dr)
    .fetch_all(&mut *tx)
    .await?;
    announce(tx, kind, &moved, None).await
}

/// Writes one `stock.changed` event per movement, in the caller's transaction.
async fn announce(tx: &mut PgConnection, kind: Kind, moved: &[Moved], reason: Option<&str>) -> sqlx::Result<()> {
    let events = moved
        .iter()
        .map(|m| NewEvent {
            kind: EventType::StockChanged,
            occurred_at: m.at,
            payload: json!({
                "product_option_id": m.option_id,
                "delta": m.d_stock,
                "reserved_delta": m.d_reserved,
                "movement": kind.movement(),
                "reason": reason.unwrap_or(kind.movement()),
                "order_id": m.order_id,
            }),
        })
        .collect();
    outbox::enqueue_all(tx, events).await?;
    Ok(())
}

/// Applies the pending movements of `option_ids` to their rows, which the caller has locked
/// (`FOR UPDATE` / `FOR NO KEY UPDATE`) in this transaction; returns `(option, d_stock,
/// d_reserved)` applied to each row that moved.
pub async fn fold_options(tx: &mut PgConnection, option_ids: &[i64]) -> sqlx::Result<Vec<(i64, i64, i64)>> {
    sqlx::query_as(
        "WITH m AS (UPDATE stock_movements SET folded_at = now() \
                    WHERE option_id = ANY($1) AND folded_at IS NULL RETURNING option_id, d_stock, d_reserved) \
         UPDATE product_options po SET stock = po.stock + s.ds, reserved = po.reserved + s.dr, updated_at = now() \
         FROM (SELECT option_id, sum(d_stock) AS ds, sum(d_reserved) AS dr FROM m GROUP BY option_id) s \
         WHERE po.id = s.option_id RETURNING po.id, s.ds::bigint, s.dr::bigint",
    )
    .bind(option_ids)
    .fetch_all(tx)
    .await
}

/// Advisory lock key of the fold: one fold at a time across every instance, so two folds never
/// lock the same option rows in different orders.
const FOLD_LOCK: i64 = 0x6a75_7061_6e67_0010;

/// What one fold applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Folded {
    /// Movements applied.
    pub movements: u64,
    /// Option rows updated.
    pub options: u64,
}

/// Applies at most `limit` pending movements (oldest first) to `product_options`: one `UPDATE`
/// per option, the rows locked in id order first (like every other writer), all in one
/// transaction. Returns zero without waiting when another instance is folding.
pub async fn fold(db: &PgPool, limit: i64) -> sqlx::Result<Folded> {
    let mut tx = db.begin().await?;
    let mine: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)").bind(FOLD_LOCK).fetch_one(&mut *tx).await?;
    if !mine {
        return Ok(Folded::default());
    }
    let batch: Vec<(i64, i64)> =
        sqlx::query_as("SELECT id, option_id FROM stock_movements WHERE folded_at IS NULL ORDER BY id LIMIT $1")
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
    if batch.is_empty() {
        return Ok(Folded::default());
    }
    let ids: Vec<i64> = batch.iter().map(|b| b.0).collect();
    let options: Vec<i64> = batch.iter().map(|b| b.1).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    sqlx::query("SELECT id FROM product_options WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(&options)
        .execute(&mut *tx)
        .await?;
    // `folded_at IS NULL` is re-checked under the row locks: a V1 order or an adjustment may
    // have folded some of these movements itself meanwhile.
    let done: (i64, i64) = sqlx::query_as(
        "WITH m AS (UPDATE stock_movements SET folded_at = now() \
                    WHERE id = ANY($1) AND folded_at IS NULL RETURNING option_id, d_stock, d_reserved), \
              u AS (UPDATE product_options po \
                    SET stock = po.stock + s.ds, reserved = po.reserved + s.dr, updated_at = now() \
                    FROM (SELECT option_id, sum(d_stock) AS ds, sum(d_reserved) AS dr FROM m GROUP BY option_id) s \
                    WHERE po.id = s.option_id RETURNING po.id) \
         SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM u)",
    )
    .bind(&ids)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Folded { movements: done.0 as u64, options: done.1 as u64 })
}

/// How many movements wait for the fold.
pub async fn pending(db: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM stock_movements WHERE folded_at IS NULL").fetch_one(db).await
}

/// The exact `(id, stock, reserved)` of each of `option_ids` (ascending), rows plus pending
/// movements, in one statement (one snapshot).
pub async fn derived(tx: &mut PgConnection, option_ids: &[i64]) -> sqlx::Result<Vec<(i64, i64, i64)>> {
    sqlx::query_as("SELECT id, stock, reserved FROM option_stock WHERE id = ANY($1) ORDER BY id")
        .bind(option_ids)
        .fetch_all(tx)
        .await
}

/// An option whose Postgres figures disagree with its own orders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerDrift {
    /// The option.
    pub option_id: i64,
    /// `reserved` derived from the row and the ledger.
    pub reserved: i64,
    /// Units of its PENDING orders (what `reserved` must be).
    pub pending_units: i64,
    /// Net movements of its V2 orders that their status does not explain.
    pub unexplained: i64,
}

/// Checks Postgres against its own ledger, in one snapshot: for every option, the derived
/// `reserved` must equal the units of its PENDING orders (V1 and V2), and the movements of each
/// V2 order must add up to what its status says (PENDING: reserved q; PAID, FULFILLED and
/// REFUNDED: sold q less the units its refunds put back on sale; CANCELLED and EXPIRED: nothing).
/// Returns the options that disagree.
pub async fn check(db: &PgPool) -> sqlx::Result<Vec<LedgerDrift>> {
    let rows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
        "WITH pend AS (SELECT oi.option_id, sum(oi.quantity)::bigint AS q FROM order_items oi \
                       JOIN orders o ON o.id = oi.order_id WHERE o.status = 'PENDING' GROUP BY oi.option_id), \
              want AS (SELECT oi.option_id, oi.order_id, \
                              CASE WHEN o.status IN ('PAID', 'FULFILLED', 'REFUNDED') \
                                   THEN oi.restocked_quantity - oi.quantity ELSE 0 END AS ds, \
                              CASE o.status WHEN 'PENDING' THEN oi.quantity ELSE 0 END AS dr \
                       FROM order_items oi JOIN orders o ON o.id = oi.order_id WHERE o.reservation = 'redis'), \
              got AS (SELECT option_id, order_id, sum(d_stock) AS ds, sum(d_reserved) AS dr \
                      FROM stock_movements WHERE order_id IS NOT NULL GROUP BY option_id, order_id), \
              bad AS (SELECT coalesce(w.option_id, g.option_id) AS option_id, \
                             sum(abs(coalesce(g.ds, 0) - coalesce(w.ds, 0)) + abs(coalesce(g.dr, 0) - coalesce(w.dr, 0)))::bigint AS n \
                      FROM want w FULL JOIN got g ON g.option_id = w.option_id AND g.order_id = w.order_id \
                      WHERE coalesce(g.ds, 0) <> coalesce(w.ds, 0) OR coalesce(g.dr, 0) <> coalesce(w.dr, 0) \
                      GROUP BY 1) \
         SELECT s.id, s.reserved, coalesce(p.q, 0), coalesce(b.n, 0) FROM option_stock s \
         LEFT JOIN pend p ON p.option_id = s.id LEFT JOIN bad b ON b.option_id = s.id \
         WHERE s.reserved <> coalesce(p.q, 0) OR coalesce(b.n, 0) <> 0 ORDER BY s.id",
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(option_id, reserved, pending_units, unexplained)| LedgerDrift {
            option_id,
            reserved,
            pending_units,
            unexplained,
        })
        .collect())
}
