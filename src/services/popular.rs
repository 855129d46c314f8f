//! Popular products: the daily top-5 snapshot per market and the job that writes it (the
//! ranking rules are in `store::pg::popular`).

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};

use super::{
    AppState, Fault,
    catalog::{self, Answer, MarketHint},
    catalog_cache::Top,
    fault_conversions,
};
pub use crate::store::pg::popular::{MarketSnapshot, RankedProduct};
use crate::store::{pg::popular, redis::notices::Topic};

/// Why a popular-products request failed.
#[derive(Debug, thiserror::Error)]
pub enum PopularError {
    /// A store failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

fault_conversions!(PopularError);

/// The latest snapshot of the hinted market, from memory (Postgres on a miss): when it was
/// generated with its ranked products (`None` when the job never ran for the market).
pub async fn top(state: &AppState, hint: MarketHint) -> Result<Answer<Arc<Top>>, PopularError> {
    let (market, personal) = catalog::resolve(state, hint).await?;
    let top = state.catalog.top(market, async { Ok(popular::latest(&state.db, market).await?) }).await?;
    Ok(Answer { market, personal, value: top })
}

/// What one run of the snapshot job wrote.
#[derive(Debug, Clone)]
pub struct SnapshotRun {
    /// The UTC date the snapshot is filed under.
    pub snapshot_date: NaiveDate,
    /// The snapshot time: sales in the 3 days before it count.
    pub generated_at: DateTime<Utc>,
    /// Per market.
    pub markets: Vec<MarketSnapshot>,
}

/// Runs the daily snapshot now; running it again the same day replaces that day's rows.
pub async fn run_snapshot(state: &AppState) -> Result<SnapshotRun, PopularError> {
    // Postgres keeps microseconds: the answer must show the instant that was stored.
    let at = Utc::now().trunc_subsecs(6);
    let snapshot_date = at.date_naive();
    let markets = popular::write_snapshot(&state.db, snapshot_date, at).await?;
    // Every instance's cached top lists are now stale: this one's at once (its next read sees
    // the snapshot), the others' through the notice.
    state.catalog.invalidate();
    state.notices.publish(Topic::Popular, None).await?;
    tracing::info!(snapshot.date = %snapshot_date, "popular-products snapshot written");
    Ok(SnapshotRun { snapshot_date, generated_at: at, markets })
}
