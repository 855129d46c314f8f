//! Popular products: the daily top-5 snapshot per market and the job that writes it (the
//! ranking rules are in `store::pg::popular`).

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};

use serde_json::json;

use super::{
    AppState, Fault,
    audit::{self, Change},
    catalog::{self, Answer, MarketHint},
    catalog_cache::Top,
    fault_conversions,
};
pub use crate::store::pg::popular::{MarketSnapshot, RankedProduct, RunCause};
use crate::{
    auth::Caller,
    store::{pg::popular, redis::notices::Topic},
};

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

/// Runs the daily snapshot now for `actor` (audited); running it again the same day replaces
/// that day's rows.
pub async fn run_snapshot(state: &AppState, actor: &Caller) -> Result<SnapshotRun, PopularError> {
    // Postgres keeps microseconds: the answer must show the instant that was stored.
    let at = Utc::now().trunc_subsecs(6);
    let mut tx = state.db.begin().await?;
    let before = popular::last_generated_at(&mut *tx).await?;
    let markets = popular::write_snapshot(&mut tx, at.date_naive(), at).await?;
    let change = job_change(before, at, &markets);
    audit::record(&mut tx, actor, change).await?;
    tx.commit().await?;
    published(state, at, markets).await
}

/// The audit entry of a manual run: the latest snapshot time as it began, and its own, with
/// what each market ranked.
fn job_change(before: Option<DateTime<Utc>>, at: DateTime<Utc>, markets: &[MarketSnapshot]) -> Change<'static> {
    let ranked: serde_json::Map<_, _> = markets.iter().map(|m| (m.market.code().to_owned(), json!(m.ranked))).collect();
    Change {
        action: "job.run",
        entity_type: audit::JOB,
        entity_id: "popular_products".to_owned(),
        before: Some(json!({ "generated_at": before })),
        after: Some(json!({ "generated_at": at, "snapshot_date": at.date_naive(), "ranked": ranked })),
        reason: None,
    }
}

/// The scheduled daily run for the instant `now` (the scheduler's clock), unless that day's
/// snapshot exists already, here or written by another instance: `None` then. See
/// [`popular::run_daily`] for why it runs once however many instances ask.
pub async fn run_daily(
    state: &AppState,
    now: DateTime<Utc>,
    cause: RunCause,
) -> Result<Option<SnapshotRun>, PopularError> {
    let at = now.trunc_subsecs(6);
    match popular::run_daily(&state.db, at, cause).await? {
        Some(markets) => Ok(Some(published(state, at, markets).await?)),
        None => Ok(None),
    }
}

/// When the latest snapshot was generated, by whichever instance or operator.
pub async fn last_generated_at(state: &AppState) -> Result<Option<DateTime<Utc>>, PopularError> {
    Ok(popular::last_generated_at(&state.db).await?)
}

/// Makes a written snapshot visible: every instance's cached top lists are now stale, this
/// one's at once (its next read sees the snapshot), the others' through the notice.
async fn published(
    state: &AppState,
    at: DateTime<Utc>,
    markets: Vec<MarketSnapshot>,
) -> Result<SnapshotRun, PopularError> {
    state.catalog.invalidate();
    state.notices.publish(Topic::Popular, None).await?;
    let snapshot_date = at.date_naive();
    tracing::info!(snapshot.date = %snapshot_date, "popular-products snapshot written");
    Ok(SnapshotRun { snapshot_date, generated_at: at, markets })
}
