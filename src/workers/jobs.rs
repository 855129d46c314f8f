//! The `jobs` worker: the daily popular-products snapshot, by itself, at UTC 00:00, in exactly
//! one instance, caught up at start-up when overdue.
//!
//! # A documented interval loop, not a scheduling crate
//! There is one job with one rule: "a snapshot of today's UTC date exists". The crates that
//! schedule cron expressions (tokio-cron-scheduler and the like) keep their own clock and their
//! own notion of a missed tick, know nothing of other instances, and would still need the
//! Postgres check below to run once across instances and to catch up after downtime. So the
//! loop is plain: every [`TICK`] (and exactly at the next UTC midnight, whichever is sooner) it
//! asks whether today's snapshot exists, and writes it if not
//! ([`crate::services::popular::run_daily`]). One rule covers the three cases:
//! - at 00:00 the date turns and the snapshot is due;
//! - at start-up after downtime the latest snapshot is of an earlier day: it is due at once
//!   (recorded as `catch_up`), one run for today, not one per missed day (a snapshot ranks the
//!   3 days before it, so only the latest one is ever read);
//! - several instances: the check and the write happen in one transaction under a Postgres
//!   advisory lock; the first writes, the others wait, then find today's snapshot.
//!
//! A run that fails (Postgres away) is retried at the next tick, since the day stays due.
//!
//! The clock is injected ([`Schedule`]): tests start instances "at midnight" or "two days
//! later" without waiting for either.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use tokio_util::sync::CancellationToken;

use crate::services::{
    AppState,
    popular::{self, RunCause},
};

/// `jobs_last_success_timestamp_seconds{job}`: when the job last succeeded (Unix seconds), as
/// Postgres records it, so every instance exports the same value whichever one ran it.
pub const JOBS_LAST_SUCCESS: &str = "jobs_last_success_timestamp_seconds";
/// The `job` label of the popular-products snapshot.
pub const POPULAR_PRODUCTS: &str = "popular_products";

/// How often an idle scheduler looks whether the day's snapshot is due: it also wakes at the
/// next UTC midnight, so this bounds only how late a run that failed is retried.
pub const TICK: Duration = Duration::from_secs(30);

/// What time it is, for the scheduler.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// The scheduler's clock and tick: the system's in production, a test's own in tests.
#[derive(Clone)]
pub struct Schedule {
    /// The current time.
    pub now: Clock,
    /// The longest wait between two looks.
    pub tick: Duration,
}

impl Schedule {
    /// The system clock and [`TICK`].
    pub fn system() -> Schedule {
        Schedule { now: Arc::new(Utc::now), tick: TICK }
    }
}

impl std::fmt::Debug for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Schedule").field("tick", &self.tick).finish_non_exhaustive()
    }
}

/// Describes [`JOBS_LAST_SUCCESS`].
pub fn register_metrics() {
    metrics::describe_gauge!(
        JOBS_LAST_SUCCESS,
        metrics::Unit::Seconds,
        "When a scheduled job last succeeded (Unix time), by job"
    );
}

/// Runs the scheduler until `shutdown` is cancelled; the first look is at once.
pub async fn run(state: AppState, schedule: Schedule, shutdown: CancellationToken) {
    let mut cause = RunCause::CatchUp;
    loop {
        let now = (schedule.now)();
        match popular::run_daily(&state, now, cause).await {
            Ok(Some(run)) => tracing::info!(
                job = POPULAR_PRODUCTS, job.cause = cause.as_str(), snapshot.date = %run.snapshot_date,
                "scheduled job ran"
            ),
            Ok(None) => {}
            Err(e) => tracing::error!(job = POPULAR_PRODUCTS, error.cause = %e, "scheduled job failed; retrying"),
        }
        // From Postgres: a run by another instance (or an operator) counts too.
        match popular::last_generated_at(&state).await {
            Ok(Some(at)) => metrics::gauge!(JOBS_LAST_SUCCESS, "job" => POPULAR_PRODUCTS).set(at.timestamp() as f64),
            Ok(None) => {}
            Err(e) => tracing::warn!(job = POPULAR_PRODUCTS, error.cause = %e, "cannot read the last job success"),
        }
        cause = RunCause::Schedule;
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(next_wait(now, schedule.tick)) => {}
        }
    }
}

/// How long to sleep after looking at `now`: the tick, or less to wake just after the next UTC
/// midnight (a millisecond after, so the date has surely turned).
fn next_wait(now: DateTime<Utc>, tick: Duration) -> Duration {
    let midnight = (now.date_naive() + TimeDelta::days(1)).and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
    let until = (midnight - now + TimeDelta::milliseconds(1)).to_std().unwrap_or(Duration::ZERO);
    until.min(tick)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_scheduler_wakes_just_after_midnight_or_at_its_tick() {
        let at = |h, m, s| Utc.with_ymd_and_hms(2026, 12, 5, h, m, s).unwrap();
        assert_eq!(next_wait(at(23, 59, 50), TICK), Duration::from_millis(10_001));
        assert_eq!(next_wait(at(12, 0, 0), TICK), TICK);
        assert_eq!(next_wait(at(0, 0, 0), TICK), TICK);
    }
}
