//! What happens in Redis after an order changed in Postgres, and persisting an order Postgres
//! does not have yet from its Redis hash.
//!
//! The after-commit steps never fail the request whose transaction already committed: a failed
//! step leaves Redis under-counting (the safe direction) and is logged; releases are retried by
//! the sweeper's repair pass ([`repair_due`]).
//!
//! Orders whose reservation lives in Postgres (`reservation = 'db'`, V1) keep the counters in
//! step too, with plain deltas applied to hydrated counters only: creation takes units, release
//! and refund give them back. Running V1 and V2 instances side by side is not supported (a V1
//! order and a V2 admission could race for the last unit); switching strategies is.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    domain::order::OrderStatus,
    store::{
        Fault,
        pg::{
            admitted_orders,
            orders::{self, HeldStock, Reservation},
        },
        redis::{
            stock::{OrderRef, StockStore},
            streams::orders::{Admission, AdmittedLine},
        },
    },
};

/// Hash states of an order across stock groups that is not admitted: being admitted, being
/// undone, undone (`lua/begin_order.lua`, `lua/abort_order.lua`).
const INTENT_STATES: [&str; 3] = ["reserving", "aborting", "aborted"];

/// Persists an order Postgres does not have yet from its Redis hash (the sink's code, so it
/// is idempotent); false when Redis has no such order either. Writes only that order's rows
/// (order, items, its `reserve` movements, `order.created`), in a short transaction: a consumer
/// batch persisting it at the same moment inserts nothing twice (`ON CONFLICT DO NOTHING` on the
/// order, movements only for orders actually inserted).
pub async fn persist_from_redis(db: &PgPool, stock: &StockStore, order_id: Uuid) -> Result<bool, Fault> {
    let mut tx = db.begin().await?;
    let found = persist_from_redis_in(&mut tx, stock, order_id).await?;
    tx.commit().await?;
    Ok(found)
}

/// [`persist_from_redis`] inside the caller's transaction (a payment writes the order it pays
/// and the payment with one commit). The caller holds no lock a consumer batch could wait for
/// before this insert, so a batch persisting the same order at the same moment waits for the
/// caller's commit at most, never the other way round in a cycle.
pub async fn persist_from_redis_in(tx: &mut PgConnection, stock: &StockStore, order_id: Uuid) -> Result<bool, Fault> {
    let Some(admission) = admission_of(stock, order_id).await? else { return Ok(false) };
    admitted_orders::persist(tx, &[admission]).await?;
    Ok(true)
}

/// The admissions Redis holds for those of `order_ids` that are admitted orders (what
/// [`persist_from_redis_in`] would persist), looked up concurrently: a batch of payments persists
/// them with one multi-row insert (`admitted_orders::persist`, in id order) before it locks anything.
pub async fn admissions_of(stock: &StockStore, order_ids: &[Uuid]) -> Result<Vec<Admission>, Fault> {
    // Boxed and collected first: otherwise the future is not `Send` "for every lifetime", which a
    // spawned batch worker needs.
    let lookups: Vec<BoxFuture<'_, Result<Option<Admission>, Fault>>> =
        order_ids.iter().map(|id| Box::pin(admission_of(stock, *id)) as _).collect();
    let found = futures_util::future::try_join_all(lookups).await?;
    Ok(found.into_iter().flatten().collect())
}

/// The admission in the Redis hash of `order_id`; none when Redis holds no admitted order there.
async fn admission_of(stock: &StockStore, order_id: Uuid) -> Result<Option<Admission>, Fault> {
    let Some((_, fields)) = stock.locate(order_id).await? else { return Ok(None) };
    if fields.get("state").is_some_and(|s| INTENT_STATES.contains(&s.as_str())) {
        // An order across stock groups still being admitted, or undone: not an order (yet).
        return Ok(None);
    }
    // A hash holding only a refund marker does not parse: the order itself is in Postgres already.
    Ok(Admission::from_fields(&fields).ok())
}

/// Persists a user's latest admitted orders that Postgres does not have yet, so a listing
/// right after an order shows it.
pub async fn persist_recent(db: &PgPool, stock: &StockStore, user_id: i64) -> Result<(), Fault> {
    let recent = stock.recent(user_id).await?;
    if recent.is_empty() {
        return Ok(());
    }
    let known: Vec<Uuid> = orders::statuses(db, &recent).await?.into_iter().map(|(id, _)| id).collect();
    for id in recent.iter().filter(|id| !known.contains(id)) {
        persist_from_redis(db, stock, *id).await?;
    }
    Ok(())
}

fn report(what: &'static str, order_id: Uuid, result: redis::RedisResult<()>) {
    if let Err(e) = result {
        tracing::warn!(order.id = %order_id, error.cause = %e, stock.step = what, "redis step after commit failed; counters under-count until repaired");
    }
}

/// After a PENDING order was released in Postgres (cancel, expiry): its units back on sale.
pub async fn released(stock: &StockStore, held: &HeldStock) {
    let result = match held.reservation {
        Reservation::Redis => stock.release(held.order_id, &held.lines).await.map(drop),
        Reservation::Db => stock.adjust(&held.lines, false).await.map(drop),
    };
    report("release", held.order_id, result);
}

/// After an order was paid in Postgres: the hash marked paid, never releasable.
pub async fn confirmed(stock: &StockStore, held: &HeldStock) {
    if held.reservation != Reservation::Redis {
        return;
    }
    match stock.confirm(held.order_id, &held.lines).await {
        Ok(-1) => {
            tracing::error!(order.id = %held.order_id, "a paid order had been released in redis; reconcile the stock")
        }
        Ok(_) => {}
        Err(e) => report("confirm", held.order_id, Err(e)),
    }
}

/// After a refund of a PAID order committed in Postgres (stock += qty of `held.lines`, the
/// units it put back on sale): the same units back on the counters, exactly once per refund.
pub async fn refunded(stock: &StockStore, refund_id: Uuid, held: &HeldStock) {
    if held.lines.is_empty() {
        return;
    }
    let result = match held.reservation {
        Reservation::Redis => stock.restock(refund_id, held.order_id, &held.lines).await.map(drop),
        Reservation::Db => stock.adjust(&held.lines, false).await.map(drop),
    };
    report("restock", held.order_id, result);
}

/// After a V1 order reserved its stock in Postgres: the same units taken from the counters.
pub async fn created_v1(stock: &StockStore, held: &HeldStock) {
    let taken: Vec<(i64, i64)> = held.lines.iter().map(|(id, q)| (*id, -q)).collect();
    report("reserve", held.order_id, stock.adjust(&taken, false).await.map(drop));
}

/// What a repair pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Repaired {
    /// Orders persisted from Redis because they were due and Postgres did not have them.
    pub persisted: u64,
    /// Orders settled in Redis after Postgres had settled them (a lost after-commit step).
    pub settled: u64,
    /// Admissions across stock groups undone after their deadline (the admitter died or failed
    /// between groups): the parts they held are back on sale.
    pub undone: u64,
}

/// The sweeper's Redis pass over orders due at `now` that Redis still holds: an admission
/// across groups past its deadline is undone; an order Postgres does not have is persisted (the
/// Postgres sweep then expires it like any other); an order Postgres has already settled (a
/// process died after its commit) is settled in Redis now.
pub async fn repair_due(db: &PgPool, stock: &StockStore, now: DateTime<Utc>, limit: usize) -> Result<Repaired, Fault> {
    let due = stock.due(now, limit).await?;
    let mut done = Repaired::default();
    if due.is_empty() {
        return Ok(done);
    }
    let ids: Vec<Uuid> = due.iter().map(|o| o.id).collect();
    let statuses: HashMap<Uuid, String> = orders::statuses(db, &ids).await?.into_iter().collect();
    let settled: Vec<Uuid> = statuses.iter().filter(|(_, s)| s.as_str() != "PENDING").map(|(id, _)| *id).collect();
    let mut lines: HashMap<Uuid, Vec<(i64, i64)>> = HashMap::new();
    for item in orders::items_of(db, &settled).await? {
        lines.entry(item.order_id).or_default().push((item.option_id, item.quantity.into()));
    }
    let unknown: Vec<OrderRef> = due.iter().filter(|o| !statuses.contains_key(&o.id)).copied().collect();
    for (order, (state, lines)) in unknown.iter().zip(stock.states(&unknown).await?) {
        match (state.as_deref(), lines) {
            (Some("reserving" | "aborting"), Some(lines)) => {
                let lines: Vec<AdmittedLine> = serde_json::from_str(&lines)
                    .map_err(|e| Fault::invariant(format!("an order hash holds malformed lines: {e}")))?;
                let quantities: Vec<(i64, i64)> = lines.iter().map(|l| (l.option_id, l.quantity)).collect();
                if stock.abort(order.group, order.id, &quantities).await? {
                    tracing::warn!(order.id = %order.id, "an admission across stock groups was abandoned; undone");
                    done.undone += 1;
                }
            }
            _ if persist_from_redis(db, stock, order.id).await? => done.persisted += 1,
            // Neither Postgres nor Redis knows it any more: nothing left to settle.
            _ => stock.forget_due(*order).await?,
        }
    }
    for order in due.iter().filter(|o| statuses.contains_key(&o.id)) {
        let id = order.id;
        let status = statuses[&id].as_str();
        if status == "PENDING" {
            continue;
        }
        let status = OrderStatus::parse(status).unwrap_or(OrderStatus::Expired);
        let held = lines.remove(&id).unwrap_or_default();
        let changed = match status {
            OrderStatus::Cancelled | OrderStatus::Expired => stock.release(id, &held).await?,
            _ => stock.confirm(id, &held).await? == 1,
        };
        if changed {
            done.settled += 1;
        }
    }
    Ok(done)
}
