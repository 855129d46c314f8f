//! Outbox delivery: POSTs each event to the data platform (`JUPANG_DATA_PLATFORM_URL`) as
//! `{event_id, type, occurred_at, payload}` with `Idempotency-Key: <event_id>`.
//!
//! At-least-once: an event is marked DELIVERED only after a 2xx; a failed attempt is retried
//! with exponential backoff (`JUPANG_OUTBOX_BACKOFF_MS`, doubling), and after the first attempt
//! plus `JUPANG_OUTBOX_MAX_RETRIES` retries it is FAILED until an operator re-sends it. Business
//! calls only insert rows, so a slow or failing platform never blocks them; deliveries run
//! concurrently, so one hanging event does not hold the others back.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rand::Rng;
use serde_json::json;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::store::pg::outbox::{self, ClaimedEvent};

/// `outbox_pending_events`: events not yet delivered nor FAILED.
pub const OUTBOX_PENDING_EVENTS: &str = "outbox_pending_events";
/// `outbox_delivery_total{outcome}`: attempts by outcome, `delivered`, `retry` or `failed`.
pub const OUTBOX_DELIVERY_TOTAL: &str = "outbox_delivery_total";
/// Every `outcome` of [`OUTBOX_DELIVERY_TOTAL`].
pub const OUTCOMES: [&str; 3] = ["delivered", "retry", "failed"];

/// Describes the delivery metrics and, when delivery runs, creates them at zero.
pub fn register_metrics(running: bool) {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_gauge!(OUTBOX_PENDING_EVENTS, Unit::Count, "Outbox events neither delivered nor FAILED");
    describe_counter!(
        OUTBOX_DELIVERY_TOTAL,
        Unit::Count,
        "Outbox delivery attempts by outcome (delivered, retry, failed)"
    );
    if running {
        metrics::gauge!(OUTBOX_PENDING_EVENTS).increment(0.0);
        for outcome in OUTCOMES {
            metrics::counter!(OUTBOX_DELIVERY_TOTAL, "outcome" => outcome).increment(0);
        }
    }
}

/// How often the worker looks for due events when it is idle.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often the pending gauge is refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);
/// A delivery attempt taking longer counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a claimed event stays invisible to other instances; well above `REQUEST_TIMEOUT`.
const LEASE: Duration = Duration::from_secs(30);
/// Deliveries in flight at once, per process.
const MAX_IN_FLIGHT: usize = 32;

/// What the worker needs to know, from the configuration.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    /// Where events are POSTed.
    pub url: String,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// Retries after the first failed attempt before an event is FAILED.
    pub max_retries: u32,
}

struct Deliverer {
    db: PgPool,
    client: reqwest::Client,
    settings: OutboxSettings,
}

/// Runs until `shutdown` is cancelled, then waits for the deliveries in flight (each bounded by
/// the request timeout) so none is cut off half-recorded.
pub async fn run(db: PgPool, settings: OutboxSettings, shutdown: CancellationToken) {
    let client = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .user_agent(concat!("jupang/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a plain HTTP client always builds");
    let deliverer = Arc::new(Deliverer { db: db.clone(), client, settings });
    let mut in_flight = JoinSet::new();
    let mut gauge_at: Option<Instant> = None;
    tracing::info!(outbox.max_in_flight = MAX_IN_FLIGHT, "outbox delivery started");
    loop {
        while let Some(done) = in_flight.try_join_next() {
            if let Err(e) = done {
                tracing::error!(error.cause = %e, "an outbox delivery task failed");
            }
        }
        if gauge_at.is_none_or(|at| at.elapsed() >= GAUGE_INTERVAL) {
            gauge_at = Some(Instant::now());
            match outbox::count_pending(&db).await {
                Ok(n) => metrics::gauge!(OUTBOX_PENDING_EVENTS).set(n as f64),
                Err(e) => tracing::warn!(error.cause = %e, "cannot count pending outbox events"),
            }
        }
        let free = MAX_IN_FLIGHT - in_flight.len();
        let mut backlog = false;
        if free > 0 {
            match outbox::claim_due(&db, free as i64, LEASE.as_millis() as i64).await {
                Ok(events) => {
                    // A full batch means more may be due: claim again as soon as a slot frees.
                    backlog = events.len() == free;
                    for event in events {
                        in_flight.spawn(Arc::clone(&deliverer).deliver(event));
                    }
                }
                Err(e) => tracing::warn!(error.cause = %e, "cannot claim outbox events; retrying"),
            }
        } else {
            backlog = true;
        }
        if backlog && !in_flight.is_empty() {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                done = in_flight.join_next() => {
                    if let Some(Err(e)) = done {
                        tracing::error!(error.cause = %e, "an outbox delivery task failed");
                    }
                }
            }
        } else {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }
    while in_flight.join_next().await.is_some() {}
    tracing::info!("outbox delivery stopped");
}

impl Deliverer {
    /// One attempt for one event, and its outcome recorded.
    async fn deliver(self: Arc<Self>, event: ClaimedEvent) {
        let envelope = json!({
            "event_id": event.id,
            "type": event.kind,
            "occurred_at": event.occurred_at,
            "payload": event.payload,
        });
        let started = Instant::now();
        let sent = self
            .client
            .post(&self.settings.url)
            .header("Idempotency-Key", event.id.to_string())
            .json(&envelope)
            .send()
            .await;
        let result = match sent {
            Ok(res) if res.status().is_success() => {
                // Reading the body lets the connection be reused.
                let _ = res.bytes().await;
                Ok(())
            }
            Ok(res) => Err(format!("the data platform answered HTTP {}", res.status())),
            Err(e) => Err(describe(&e)),
        };
        let duration_ms = started.elapsed().as_millis() as u64;
        let attempts = event.attempts as u32 + 1;
        let (recorded, outcome) = match result {
            Ok(()) => (outbox::mark_delivered(&self.db, event.id).await, "delivered"),
            Err(reason) if attempts > self.settings.max_retries => {
                tracing::error!(
                    event.id = %event.id, event.type = %event.kind, outbox.attempts = attempts, duration_ms,
                    error.cause = %reason, "outbox event FAILED after its last retry; re-send it from the admin API"
                );
                (outbox::record_failure(&self.db, event.id, &reason, None).await, "failed")
            }
            Err(reason) => {
                let wait = backoff(self.settings.backoff, attempts);
                tracing::warn!(
                    event.id = %event.id, event.type = %event.kind, outbox.attempts = attempts, duration_ms,
                    retry_in_ms = wait.as_millis() as u64, error.cause = %reason, "outbox delivery failed; will retry"
                );
                (outbox::record_failure(&self.db, event.id, &reason, Some(wait.as_millis() as i64)).await, "retry")
            }
        };
        metrics::counter!(OUTBOX_DELIVERY_TOTAL, "outcome" => outcome).increment(1);
        if let Err(e) = recorded {
            // The lease expires and the event is sent again; the Idempotency-Key makes that safe.
            tracing::warn!(event.id = %event.id, error.cause = %e, "cannot record an outbox delivery outcome");
        }
    }
}

/// The wait before the retry that follows failed attempt number `attempts` (1-based): `base`,
/// then doubling, plus up to a quarter of random jitter so a burst of failures does not retry
/// in lock step.
fn backoff(base: Duration, attempts: u32) -> Duration {
    let wait = base.saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    let jitter_ms = rand::rng().random_range(0..=wait.as_millis() as u64 / 4);
    wait + Duration::from_millis(jitter_ms)
}

/// A failure described without the URL, which may hold credentials.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())
    } else if e.is_connect() {
        "cannot connect to the data platform".to_owned()
    } else {
        let mut text = "request failed".to_owned();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_with_bounded_jitter() {
        let base = Duration::from_millis(1000);
        for (attempts, expected) in [(1, 1000), (2, 2000), (3, 4000)] {
            let wait = backoff(base, attempts).as_millis() as u64;
            assert!((expected..=expected * 5 / 4).contains(&wait), "attempt {attempts}: {wait} ms");
        }
    }
}
