//! The `reconcile` worker: every [`EVERY`], compares the V2 state in Redis with Postgres, per
//! coupon ([`crate::admission::coupons::reconcile`]) and per option (stock counters,
//! [`crate::admission::orders::hydrate::reconcile`]), exports `reconcile_drift{kind}`, applies the safe
//! coupon repairs and says so in the log. Stock drift is reported only (see the README).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{
    admission::{RECONCILE_DRIFT, coupons::reconcile},
    services::AppState,
    store::redis::notices::Topic,
};

/// Creates the drift series this worker maintains at zero: no drift known until its first round
/// (every [`EVERY`]).
pub fn register_metrics() {
    for kind in crate::admission::drift_kinds() {
        metrics::gauge!(RECONCILE_DRIFT, "kind" => kind).increment(0.0);
    }
}

/// How often the reconciler runs.
pub const EVERY: Duration = Duration::from_secs(30);

/// Runs until `shutdown` is cancelled.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
        match reconcile::run(&state.db, &state.redis, true).await {
            Ok((reports, repaired)) => {
                for (kind, value) in reconcile::drift_by_kind(&reports) {
                    metrics::gauge!(RECONCILE_DRIFT, "kind" => kind).set(value as f64);
                }
                if repaired != reconcile::Repaired::default() {
                    // Users added to a sold-out coupon's set, terms re-applied: the instances'
                    // loser memory must forget (lowering `remaining` alone never needs it).
                    if let Err(e) = state.notices.publish(Topic::Coupon, None).await {
                        tracing::warn!(error.cause = %e, "coupon change notice after a repair not published");
                    }
                    tracing::warn!(
                        users_added = repaired.users_added,
                        remaining_lowered = repaired.remaining_lowered,
                        terms_synced = repaired.terms_synced,
                        "reconcile repaired Redis coupon state"
                    );
                }
                for r in reports.iter().filter(|r| r.drift > 0) {
                    tracing::error!(
                        coupon.id = r.coupon_id,
                        drift = r.drift,
                        "coupons admitted in Redis are neither persisted nor pending (see `jupang reconcile`)"
                    );
                }
            }
            Err(e) => tracing::warn!(error.cause = %format!("{e:#}"), "reconcile round failed; retrying next round"),
        }
        match state.order_admission.reconcile().await {
            Ok(drift) => {
                for d in &drift.drifted {
                    tracing::error!(
                        option.id = d.option_id,
                        stock.redis = d.redis,
                        stock.expected = d.expected,
                        "a stock counter in Redis disagrees with Postgres (see `jupang reconcile`)"
                    );
                }
            }
            Err(e) => tracing::warn!(error.cause = %format!("{e:#}"), "stock reconcile failed; retrying next round"),
        }
        match state.order_admission.check_ledger().await {
            Ok(drift) => {
                for d in &drift {
                    tracing::error!(
                        option.id = d.option_id,
                        stock.reserved = d.reserved,
                        stock.pending_units = d.pending_units,
                        stock.unexplained = d.unexplained,
                        "an option's figures in Postgres disagree with its own ledger (see `jupang reconcile`)"
                    );
                }
            }
            Err(e) => tracing::warn!(error.cause = %format!("{e:#}"), "ledger check failed; retrying next round"),
        }
    }
}
