//! Background tasks of `serve`, each switchable by `JUPANG_WORKERS`, all stopped by one token.

pub mod consumer;
pub mod expiry;
pub mod fold;
pub mod outbox;
pub mod reconcile;

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
}

/// Starts the configured workers; each returns when `shutdown` is cancelled.
pub fn spawn(state: &AppState, shutdown: &CancellationToken) -> Vec<JoinHandle<()>> {
    let config = &state.config;
    let mut tasks = Vec::new();
    if config.workers.expiry {
        tasks.push(tokio::spawn(expiry::run(state.clone(), shutdown.clone())));
    }
    if config.workers.consumer {
        // A new coupon's stream is announced by its hydration's notice: read at once.
        let coupons = CouponSink::new(state.redis.clone());
        tasks.push(consumer::spawn_woken(coupons, state, shutdown, Topic::Coupon));
        // V2 orders: admissions of the reservation scripts, persisted into Postgres (one stream
        // per stock group; on a cluster they live on different masters).
        let orders = OrderSink::new(state.order_admission.stock().keys().streams());
        tasks.push(consumer::spawn(orders, state, shutdown));
        // The stock ledger's fold: the other half of getting V2 stock into Postgres.
        tasks.push(tokio::spawn(fold::run(state.db.clone(), shutdown.clone())));
    }
    if config.workers.reconcile {
        tasks.push(tokio::spawn(reconcile::run(state.clone(), shutdown.clone())));
    }
    if config.workers.outbox {
        match &config.data_platform_url {
            Some(url) => {
                let settings = outbox::OutboxSettings {
                    url: url.clone(),
                    backoff: config.outbox_backoff,
                    max_retries: config.outbox_max_retries,
                };
                tasks.push(tokio::spawn(outbox::run(state.db.clone(), settings, shutdown.clone())));
            }
            None => tracing::info!("outbox delivery is off: JUPANG_DATA_PLATFORM_URL is not set; events stay PENDING"),
        }
    }
    tasks
}
