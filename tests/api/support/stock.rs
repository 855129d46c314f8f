//! The V2 order engine seen from behind: the stock counters and the admission stream in Redis,
//! persisting the stream as the consumer would, the expiry sweeper, and raw Postgres reads that
//! do not settle the stream first (for asserting what has not reached Postgres yet).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use jupang::{
    admission::orders::OrderAdmission,
    store::{
        pg::admitted_orders::OrderSink,
        redis::{
            stock::StockStore,
            streams::{StreamEntry, StreamSink},
        },
    },
};

use super::{
    app::TestApp,
    orders::Strategy,
    stores::{connect_store, redis_cmd, redis_store},
};

/// An app with V2 orders (`redis-lua`) and no workers: nothing persists the stream unless the
/// test does ([`settle`]).
pub async fn v2() -> TestApp {
    Strategy::RedisLua.spawn().await
}

/// The stock keys and scripts of an app.
pub async fn stock_store(app: &TestApp) -> StockStore {
    StockStore::new(&redis_store(app).await)
}

/// A second order engine over the app's stores, with its own Redis connection and caches, as
/// another instance would have.
pub async fn engine(app: &TestApp) -> OrderAdmission {
    let redis = connect_store(app).await;
    OrderAdmission::new(app.db.clone(), &redis, Default::default(), app.config.order_ttl)
}

/// The sink the consumer persists the app's admission stream with.
pub async fn order_sink(app: &TestApp) -> OrderSink {
    OrderSink::new(stock_store(app).await.keys().streams())
}

/// Every entry of the app's admission streams (one per stock group).
pub async fn stream_entries(app: &TestApp) -> Vec<StreamEntry> {
    let mut out = Vec::new();
    for stream in stock_store(app).await.keys().streams() {
        let reply: redis::streams::StreamRangeReply =
            redis_cmd(redis::cmd("XRANGE").arg(&stream).arg("-").arg("+")).await;
        out.extend(reply.ids.into_iter().map(|e| {
            StreamEntry {
                stream: stream.clone(),
                id: e.id,
                fields: e
                    .map
                    .into_iter()
                    .map(|(k, v)| (k, redis::from_redis_value::<String>(v).unwrap()))
                    .collect::<HashMap<_, _>>(),
                deliveries: 1,
            }
        }));
    }
    out
}

/// Persists `entries` in one committed transaction, as the consumer would.
pub async fn persist(app: &TestApp, entries: &[StreamEntry]) {
    let sink = order_sink(app).await;
    let mut tx = app.db.begin().await.unwrap();
    sink.persist(&mut tx, entries).await.expect("the sink persists the admissions");
    tx.commit().await.unwrap();
}

/// Persists everything the admission stream holds, as the consumer would (idempotent: entries
/// already persisted change nothing). A no-op for V1 apps, whose stream stays empty.
pub async fn settle(app: &TestApp) {
    let entries = stream_entries(app).await;
    if !entries.is_empty() {
        persist(app, &entries).await;
    }
}

/// The Redis counter of an option (None: not hydrated).
pub async fn avail_of(app: &TestApp, option_id: i64) -> Option<i64> {
    stock_store(app).await.available(&[option_id]).await.unwrap()[0]
}

/// The `state` Redis keeps of a V2 order (`pending`, `paid`, `released`...), if any.
pub async fn order_state(app: &TestApp, order_id: &str) -> Option<String> {
    let order = stock_store(app).await.order(order_id.parse().unwrap()).await.unwrap();
    order.get("state").cloned()
}

/// Runs the expiry sweeper once with the clock at `now`; returns how many orders it expired.
pub async fn sweep(app: &TestApp, now: DateTime<Utc>) -> u64 {
    jupang::workers::expiry::sweep(&app.db, &stock_store(app).await, now).await.expect("sweep")
}

/// (stock, reserved) straight from Postgres, without settling the stream first.
pub async fn raw_stock(app: &TestApp, option_id: i64) -> (i32, i32) {
    // Exact at any moment: the option row plus the ledger movements not folded yet.
    sqlx::query_as("SELECT stock::int, reserved::int FROM option_stock WHERE id = $1")
        .bind(option_id)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// Orders in Postgres, without settling the stream first.
pub async fn raw_orders(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&app.db).await.unwrap()
}
