//! Outbox delivery: POSTs each event to the data platform (`JUPANG_DATA_PLATFORM_URL`) as
//! `{event_id, type, occurred_at, payload}` with `Idempotency-Key: <event_id>`.
//!
//! At-least-once: an event is marked DELIVERED only after a 2xx; a failed attempt is retried
//! with exponential backoff (`JUPANG_OUTBOX_BACKOFF_MS`, doubling), and after the first attempt
//! plus `JUPANG_OUTBOX_MAX_RETRIES` retries it is FAILED until an operator re-sends it. Business
//! calls only insert rows, so a slow or failing platform never blocks them; deliveries run
//! concurrently, so one hanging event does not hold the others back.
//!
//! `https://` platforms are reached through rustls, trusting the bundled public roots plus the
//! PEM bundle of `JUPANG_DATA_PLATFORM_CA` (a private CA). A platform that keeps failing trips
//! the circuit breaker ([`breaker`]). The lag is `outbox_oldest_pending_age_seconds`.

mod breaker;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rand::Rng;
use serde_json::json;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use self::breaker::Breaker;
pub use self::breaker::{BreakerSettings, OUTBOX_BREAKER_STATE, State as BreakerState};
use crate::store::pg::outbox::{self, ClaimedEvent};

/// `outbox_pending_events`: events not yet delivered nor FAILED.
pub const OUTBOX_PENDING_EVENTS: &str = "outbox_pending_events";
/// `outbox_delivery_total{outcome}`: attempts by outcome, `delivered`, `retry` or `failed`.
pub const OUTBOX_DELIVERY_TOTAL: &str = "outbox_delivery_total";
/// `outbox_oldest_pending_age_seconds`: age of the oldest PENDING event (0 when none): the
/// relay's lag behind the business.
pub const OUTBOX_OLDEST_PENDING_AGE: &str = "outbox_oldest_pending_age_seconds";
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
    describe_gauge!(
        OUTBOX_OLDEST_PENDING_AGE,
        Unit::Seconds,
        "Age of the oldest outbox event not yet delivered nor FAILED (0 when none)"
    );
    describe_gauge!(OUTBOX_BREAKER_STATE, "Outbox circuit breaker: 0 closed, 1 open, 2 half-open");
    if running {
        metrics::gauge!(OUTBOX_PENDING_EVENTS).increment(0.0);
        metrics::gauge!(OUTBOX_OLDEST_PENDING_AGE).increment(0.0);
        metrics::gauge!(OUTBOX_BREAKER_STATE).increment(0.0);
        for outcome in OUTCOMES {
            metrics::counter!(OUTBOX_DELIVERY_TOTAL, "outcome" => outcome).increment(0);
        }
    }
}

/// How often the worker looks for due events when it is idle.
const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often the pending and lag gauges are refreshed.
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
    /// Extra trusted CA certificates (PEM), for an `https://` platform with a private CA.
    pub extra_ca: Option<Vec<u8>>,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// Retries after the first failed attempt before an event is FAILED.
    pub max_retries: u32,
    /// When to stop sending to a failing platform, and for how long.
    pub breaker: BreakerSettings,
}

struct Deliverer {
    db: PgPool,
    client: reqwest::Client,
    settings: OutboxSettings,
    breaker: Mutex<Breaker>,
}

/// The HTTP(S) client of the relay: rustls with the bundled public roots, plus the extra CA.
fn client(settings: &OutboxSettings) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .user_agent(concat!("jupang/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &settings.extra_ca {
        for cert in reqwest::Certificate::from_pem_bundle(pem)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build()
}

/// Runs until `shutdown` is cancelled, then waits for the deliveries in flight (each bounded by
/// the request timeout) so none is cut off half-recorded.
pub async fn run(db: PgPool, settings: OutboxSettings, shutdown: CancellationToken) {
    let client = match client(&settings) {
        Ok(client) => client,
        Err(e) => {
            // The configuration checked the CA bundle at start-up; this is not expected.
            tracing::error!(error.cause = %e, "cannot build the outbox HTTP client; delivery is off");
            return;
        }
    };
    let breaker = Mutex::new(Breaker::new(settings.breaker));
    let deliverer = Arc::new(Deliverer { db: db.clone(), client, settings, breaker });
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
            match outbox::pending(&db).await {
                Ok(p) => {
                    metrics::gauge!(OUTBOX_PENDING_EVENTS).set(p.count as f64);
                    metrics::gauge!(OUTBOX_OLDEST_PENDING_AGE).set(p.oldest_age_secs);
                }
                Err(e) => tracing::warn!(error.cause = %e, "cannot count pending outbox events"),
            }
        }
        let free = MAX_IN_FLIGHT - in_flight.len();
        let allowed = deliverer.lock_breaker().allowance(Instant::now(), free);
        let mut backlog = false;
        if allowed > 0 {
            match outbox::claim_due(&db, allowed as i64, LEASE.as_millis() as i64).await {
                Ok(events) => {
                    deliverer.lock_breaker().claimed(events.len());
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
    /// The breaker, even if a delivery task panicked while holding it (its state stays sound:
    /// every change is a single assignment).
    fn lock_breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

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
        {
            let mut breaker = self.lock_breaker();
            match result {
                Ok(()) => breaker.success(),
                Err(_) => breaker.failure(Instant::now()),
            }
        }
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
