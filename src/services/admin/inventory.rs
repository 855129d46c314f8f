//! Stock adjustments with an audit trail.
//!
//! An adjustment (goods received, a stock count correcting the books) changes the physical
//! stock of one option under its row lock, after folding the option's pending ledger movements
//! into the row (so it reads exact figures), and leaves an `adjust` row in the ledger as history. It may never leave less stock than PENDING orders
//! hold, so a reservation that was promised can always be fulfilled. The new figures, an audit
//! entry (actor, time, reason, before, after) and a `stock.changed` outbox event commit together.
//!
//! The V2 counter in Redis (if the option is hydrated) moves by the same delta while the row
//! lock is held, just before the commit: hydration locks the row too, so it can never count the
//! delta twice, and a write-off is refused when it would take more than is still sellable there
//! (units admitted in Redis but not yet persisted count as reserved). Should the commit then
//! fail, the delta is taken back.

use serde_json::json;
use sqlx::PgConnection;

pub use crate::store::pg::inventory::{AuditRow, StockLevel};
use crate::{
    auth::Caller,
    domain::PageRequest,
    services::{
        AppState, Fault,
        audit::{self, Change},
        catalog, fault_conversions,
    },
    store::{
        pg::{inventory, movements},
        redis::notices::Topic,
    },
};

/// Why an adjustment or an audit read failed.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// No such option.
    #[error("no such product option")]
    OptionNotFound,
    /// The stock would exceed its column's maximum (`i32::MAX`); nothing changed. A business
    /// rule, not a form error: whether a delta fits depends on the stock it meets.
    #[error("stock would exceed its maximum")]
    LimitExceeded {
        /// The option.
        option_id: i64,
        /// Physical stock now.
        stock: i32,
        /// The refused change.
        delta: i32,
        /// The largest change that would be accepted.
        max_delta: i32,
    },
    /// The stock would fall below what is reserved; nothing changed.
    #[error("stock would fall below what is reserved")]
    BelowReserved {
        /// The option.
        option_id: i64,
        /// Physical stock now.
        stock: i32,
        /// Reserved now (V2: including admissions not yet persisted).
        reserved: i64,
        /// The refused change.
        delta: i32,
        /// The smallest change that would be accepted.
        min_delta: i64,
    },
    /// A store failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

fault_conversions!(InventoryError);

/// Adjusts an option's stock by `delta` (not 0) for `actor`, never below what is reserved;
/// answers the stock after it.
pub async fn adjust(
    state: &AppState,
    option_id: i64,
    actor: &Caller,
    reason: &str,
    delta: i32,
) -> Result<StockLevel, InventoryError> {
    let mut tx = state.db.begin().await?;
    let mut before = inventory::lock_stock(&mut tx, option_id).await?.ok_or(InventoryError::OptionNotFound)?;
    // Exact figures: the pending ledger movements of this option folded into the locked row.
    for (_, ds, dr) in movements::fold_options(&mut tx, &[option_id]).await? {
        before.stock += ds as i32;
        before.reserved += dr as i32;
    }
    let after = before.stock.checked_add(delta).ok_or(InventoryError::LimitExceeded {
        option_id,
        stock: before.stock,
        delta,
        max_delta: i32::MAX - before.stock,
    })?;
    if after < before.reserved {
        return Err(InventoryError::BelowReserved {
            option_id,
            stock: before.stock,
            reserved: before.reserved.into(),
            delta,
            min_delta: i64::from(before.reserved - before.stock),
        });
    }
    // Under the row lock, after every check that could refuse it, before the commit.
    let counters = state.order_admission.stock();
    if let Err((_, available)) = counters.adjust(&[(option_id, i64::from(delta))], true).await? {
        return Err(InventoryError::BelowReserved {
            option_id,
            stock: before.stock,
            reserved: i64::from(before.stock) - available,
            delta,
            min_delta: -available,
        });
    }
    let committed = match record(&mut tx, option_id, actor, reason, delta, before.stock, after).await {
        Ok(()) => tx.commit().await.map_err(Fault::from),
        Err(e) => Err(e),
    };
    if let Err(e) = committed {
        // Best effort: Postgres did not change, so neither should the counter.
        if let Err(undo) = counters.adjust(&[(option_id, -i64::from(delta))], false).await {
            tracing::error!(product_option.id = option_id, error.cause = %undo, "could not take back a stock delta from redis; reconcile");
        }
        return Err(e.into());
    }
    catalog::changed(state, Topic::Stock, Some(option_id)).await;
    tracing::info!(product_option.id = option_id, stock.delta = delta, actor.user_id = actor.user_id, "stock adjusted");
    Ok(StockLevel { stock: after, reserved: before.reserved })
}

/// Writes the adjustment, its audit entry and its event.
async fn record(
    tx: &mut PgConnection,
    option_id: i64,
    actor: &Caller,
    reason: &str,
    delta: i32,
    stock_before: i32,
    after: i32,
) -> Result<(), Fault> {
    inventory::set_stock(tx, option_id, after).await?;
    // The ledger's history row and the `stock.changed` event, from their one home.
    movements::record_adjust(tx, option_id, i64::from(delta), reason).await?;
    let change = Change {
        action: "inventory.adjust",
        entity_type: audit::PRODUCT_OPTION,
        entity_id: option_id.to_string(),
        before: Some(json!({ "stock": stock_before })),
        after: Some(json!({ "stock": after, "delta": delta })),
        reason: Some(reason),
    };
    audit::record(tx, actor, change).await?;
    Ok(())
}

/// A page of the audit log (of one option, or of all), newest first, with the total count.
pub async fn audit(
    state: &AppState,
    option_id: Option<i64>,
    page: PageRequest,
) -> Result<(Vec<AuditRow>, i64), InventoryError> {
    if let Some(id) = option_id
        && !inventory::option_exists(&state.db, id).await?
    {
        return Err(InventoryError::OptionNotFound);
    }
    Ok(inventory::list_audit(&state.db, option_id, page.size, page.offset()).await?)
}
