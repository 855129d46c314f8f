//! Hydration and reconciliation of the V2 stock counters.
//!
//! The counter of an option must equal `stock - reserved - holds`, where `reserved` is what
//! Postgres counts for PENDING orders and `holds` are the units Redis still holds for orders
//! Postgres does not count as reserved: admitted but not persisted yet, or released in Postgres
//! whose Redis release has not run yet (it will, and must not count twice). Redis lists every
//! order it holds in the due set, with the lines in the order's hash.
//!
//! Postgres's figures are exact only as rows plus pending ledger movements
//! ([`crate::store::pg::movements`]): V2 payments, cancels, expiries and the consumer append
//! movements without locking option rows. So both passes first lock the option rows `FOR SHARE`
//! (which keeps out the fold, V1 orders and admin adjustments, the writers of the rows), and then
//! read the derived figures *and* the statuses of the held orders in one statement
//! ([`share_derived`]): one snapshot, in which an order's status change and its movement are
//! visible together or not at all.
//!
//! **Hydration** creates missing counters with `SET NX` under that lock: no order can be admitted
//! for those options (their counter is missing, so the script refuses), and two instances
//! hydrating at once compute the same figure and only the first `SET NX` lands: the stock counts
//! once. One window remains, as before the ledger: a V2 cancel or expiry that commits around the
//! snapshot and runs its Redis release (a no-op on a missing counter) before the hash states are
//! read can leave the new counter under-counting (units unsellable, never oversold), which
//! reconciliation reports.
//!
//! **Reconciliation** locks the same way, reads the counters and the due set in one atomic
//! Redis step, then the Postgres snapshot, and compares. Under live traffic a settlement between
//! the two reads shows as a transient drift (for one round); at rest the comparison is exact.

use std::collections::{HashMap, HashSet};

use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    admission::RECONCILE_DRIFT,
    store::{
        Fault,
        pg::reservations::share_derived,
        redis::{
            stock::{OrderRef, StockStore, group_of, groups_of},
            streams::orders::AdmittedLine,
        },
    },
};

/// `stock_hydrated_total`: counters this process created.
pub const STOCK_HYDRATED_TOTAL: &str = "stock_hydrated_total";

/// Units Redis holds per option (of `options`) for the `held` orders that Postgres does not
/// count as reserved: missing there (admitted but not persisted yet, or still being admitted
/// across groups), or already EXPIRED / CANCELLED while the hash is pending. `known` are the
/// statuses Postgres has, read in the same snapshot as the figures. An order of one group holds
/// all its lines while pending; an order across groups holds the lines of its parts marked
/// `held` (while being admitted, undone or settled part by part).
async fn holds(
    stock: &StockStore,
    held: &[OrderRef],
    known: Vec<(Uuid, String)>,
    options: &HashSet<i64>,
) -> Result<HashMap<i64, i64>, Fault> {
    let mut out = HashMap::new();
    if held.is_empty() {
        return Ok(out);
    }
    let known: HashMap<Uuid, String> = known.into_iter().collect();
    let outside: Vec<OrderRef> =
        held.iter().filter(|o| known.get(&o.id).is_none_or(|s| s == "EXPIRED" || s == "CANCELLED")).copied().collect();
    for (order, (state, lines)) in outside.iter().zip(stock.states(&outside).await?) {
        let (Some(state), Some(lines)) = (state.as_deref(), lines) else { continue };
        if !matches!(state, "pending" | "reserving" | "aborting") {
            continue;
        }
        let lines: Vec<AdmittedLine> = serde_json::from_str(&lines)
            .map_err(|e| Fault::invariant(format!("an order hash holds malformed lines: {e}")))?;
        let groups = groups_of(lines.iter().map(|l| l.option_id));
        let held_groups: HashSet<i64> = if groups.len() > 1 {
            let parts = stock.parts(order.id, &groups).await?;
            groups.iter().zip(parts).filter(|(_, p)| p.as_deref() == Some("held")).map(|(g, _)| *g).collect()
        } else if state == "pending" {
            groups.into_iter().collect()
        } else {
            HashSet::new()
        };
        for l in lines.iter().filter(|l| options.contains(&l.option_id) && held_groups.contains(&group_of(l.option_id)))
        {
            *out.entry(l.option_id).or_default() += l.quantity;
        }
    }
    Ok(out)
}

fn ids(held: &[OrderRef]) -> Vec<Uuid> {
    held.iter().map(|o| o.id).collect()
}

/// Creates the counters of `option_ids` that do not exist (see the module docs).
pub async fn hydrate(db: &PgPool, stock: &StockStore, option_ids: &[i64]) -> Result<(), Fault> {
    if option_ids.is_empty() {
        return Ok(());
    }
    // Read before the lock: nothing can be admitted for options without a counter, so no
    // order of theirs can join the due set meanwhile.
    let held = stock.held().await?;
    let mut tx = db.begin().await?;
    let view = share_derived(&mut tx, option_ids, &ids(&held)).await?;
    let rows = view.available;
    let wanted: HashSet<i64> = rows.iter().map(|r| r.0).collect();
    let holds = holds(stock, &held, view.statuses, &wanted).await?;
    let values: Vec<(i64, i64)> =
        rows.iter().map(|(id, avail)| (*id, avail - holds.get(id).copied().unwrap_or(0))).collect();
    let set = stock.set_if_absent(&values).await?;
    tx.commit().await?;
    let n = set.iter().filter(|s| **s).count();
    if n > 0 {
        metrics::counter!(STOCK_HYDRATED_TOTAL).increment(n as u64);
        tracing::debug!(stock.hydrated = n, "hydrated stock counters");
    }
    Ok(())
}

/// One option whose counter disagrees with Postgres.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionDrift {
    /// The option.
    pub option_id: i64,
    /// The Redis counter.
    pub redis: i64,
    /// stock - reserved - holds, from Postgres and the held orders.
    pub expected: i64,
}

/// What a reconciliation of the stock counters found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StockDrift {
    /// Hydrated options compared.
    pub checked: usize,
    /// Those that disagree.
    pub drifted: Vec<OptionDrift>,
}

impl StockDrift {
    /// Sum of |redis - expected| (what the gauge shows).
    pub fn total(&self) -> i64 {
        self.drifted.iter().map(|d| (d.redis - d.expected).abs()).sum()
    }
}

/// Compares every hydrated counter with Postgres, sets `reconcile_drift{kind="stock"}` and
/// returns the details. Reports only: a drift is for an operator (or a rehydration) to repair.
pub async fn reconcile(db: &PgPool, stock: &StockStore) -> Result<StockDrift, Fault> {
    let mut ids = stock.hydrated_options().await?;
    ids.sort_unstable();
    if ids.is_empty() {
        metrics::gauge!(RECONCILE_DRIFT, "kind" => "stock").set(0.0);
        return Ok(StockDrift::default());
    }
    let mut tx = db.begin().await?;
    // Locked first, so the counters read next cannot move for reasons the figures read after
    // them miss (except a V2 settlement's Redis step, see the module docs).
    sqlx::query("SELECT id FROM product_options WHERE id = ANY($1) ORDER BY id FOR SHARE")
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    let (counters, held) = stock.snapshot(&ids).await?;
    let view = share_derived(&mut tx, &ids, &self::ids(&held)).await?;
    let rows = view.available;
    if rows.len() != ids.len() {
        // An option deleted meanwhile: compare the next round.
        return Ok(StockDrift::default());
    }
    let holds = holds(stock, &held, view.statuses, &ids.iter().copied().collect()).await?;
    tx.rollback().await?;
    let mut drift = StockDrift::default();
    for ((option_id, avail), counter) in rows.iter().zip(counters) {
        let Some(redis) = counter else { continue };
        drift.checked += 1;
        let expected = avail - holds.get(option_id).copied().unwrap_or(0);
        if redis != expected {
            drift.drifted.push(OptionDrift { option_id: *option_id, redis, expected });
        }
    }
    metrics::gauge!(RECONCILE_DRIFT, "kind" => "stock").set(drift.total() as f64);
    if !drift.drifted.is_empty() {
        tracing::warn!(stock.drifted = drift.drifted.len(), stock.drift = drift.total(), "stock counters drifted");
    }
    Ok(drift)
}
