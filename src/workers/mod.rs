//! Background tasks of `serve`, each switchable by `JUPANG_WORKERS`, all stopped by one token.

pub mod consumer;
pub mod expiry;
pub mod fold;
pub mod jobs;
pub mod outbox;
pub mod reconcile;
pub mod waiting_room;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{
    config::Config,
    services::AppState,
    store::{
        pg::{admitted_coupons::CouponSink, admitted_orders::OrderSink},
        redis::notices::Topic,
    },
};

/// Describes the workers' metrics and creates the series of those that run at zero.
pub fn register_metrics(config: &Config) {
    let w = config.workers;
    consumer::register_metrics(w.consumer);
    fold::register_metrics(w.consumer);
    outbox::register_metrics(w.outbox && config.data_platform_url.is_some());
    expiry::register_metrics(w.expiry);
    if w.reconcile {
        reconcile::register_metrics();
    }
    jobs::register_metrics();
}

/// Starts the configured workers; each returns when `shutdown` is cancelled. `schedule` is the
/// clock of the `jobs` worker.
pub fn spawn(state: &AppState, shutdown: &CancellationToken, schedule: jobs::Schedule) -> Vec<JoinHandle<()>> {
    let config = &state.config;
    let mut tasks = Vec::new();
    if config.workers.expiry {
        tasks.push(tokio::spawn(expiry::run(state.clone(), shutdown.clone())));
    }
    if config.workers.consumer {
        // A new coupon's stream is announced by its hydration's notice: read at once.
        let coupons = CouponSink::new(state.redis.clone());
        tasks.extend(consumer::spawn_woken(coupons, state, shutdown, Topic::Coupon));
        // V2 orders: admissions of the reservation scripts, persisted into Postgres (one stream
        // per stock group; on a cluster they live on different masters).
        let orders = OrderSink::new(state.order_admission.stock().keys().streams());
        tasks.extend(consumer::spawn(orders, state, shutdown));
        // The stock ledger's fold: the other half of getting V2 stock into Postgres.
        tasks.push(tokio::spawn(fold::run(state.db.clone(), shutdown.clone())));
        // Closed coupon sales leave Redis once the consumer has persisted all of them.
        tasks.push(tokio::spawn(consumer::retire_sales(state.db.clone(), state.redis.clone(), shutdown.clone())));
    }
    if config.workers.reconcile {
        tasks.push(tokio::spawn(reconcile::run(state.clone(), shutdown.clone())));
    }
    if config.workers.jobs {
        tasks.push(tokio::spawn(jobs::run(state.clone(), schedule, shutdown.clone())));
    }
    if config.workers.outbox {
        match &config.data_platform_url {
            Some(url) => {
                let settings = outbox::OutboxSettings {
                    url: url.clone(),
                    extra_ca: config.data_platform_ca.as_ref().map(|ca| ca.pem.clone()),
                    backoff: config.outbox_backoff,
                    max_retries: config.outbox_max_retries,
                    breaker: outbox::BreakerSettings {
                        failures: config.outbox_breaker_failures,
                        open_for: config.outbox_breaker_open,
                    },
                };
                tasks.push(tokio::spawn(outbox::run(state.db.clone(), settings, shutdown.clone())));
            }
            None => tracing::info!("outbox delivery is off: JUPANG_DATA_PLATFORM_URL is not set; events stay PENDING"),
        }
    }
    tasks
}
