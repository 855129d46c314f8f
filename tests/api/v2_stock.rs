//! V2 stock counters beyond single orders: stock adjustments, hydration (two instances at once,
//! after a lost counter, at start-up), reconciliation, and V1 orders keeping counters in step.

use chrono::{Duration, Utc};
use jupang::{Application, admission::orders::hydrate, http::auth::Role, store::pg::payment};
use reqwest::Method;
use serde_json::json;

use crate::support::{
    Strategy, TestApp, assert_error, assert_metric, avail_of, cancel, child::reconcile, count, engine, json_of, option,
    pay, placed, product_in, raw_stock, redis_cmd, settle, status_of, stock_of, stock_store, stream_entries, sweep, v2,
    with_own_recorder,
};

async fn adjust(app: &TestApp, option_id: i64, delta: i64) -> reqwest::Response {
    app.request(Method::POST, &format!("/api/admin/inventory/{option_id}/adjust"))
        .bearer_auth(app.token(1, &[Role::InventoryManager]))
        .json(&json!({ "delta": delta, "reason": "count" }))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_stock_adjustment_moves_the_redis_counter_and_a_write_off_cannot_take_units_redis_admitted() {
    let app = v2().await;
    let user = app.create_user("KR", 0).await;
    let opt = option(&app, 1_000, 10).await;
    placed(&app, user, &[(opt, 6)]).await;
    json_of(adjust(&app, opt, 5).await, 200).await;
    assert_eq!((raw_stock(&app, opt).await, avail_of(&app, opt).await), ((15, 0), Some(9)));
    // Postgres alone would allow it (nothing persisted is reserved yet); Redis knows better.
    let refused = assert_error(adjust(&app, opt, -10).await, 400, "STOCK_BELOW_RESERVED").await;
    assert_eq!(refused["details"]["min_delta"], -9);
    assert_eq!((raw_stock(&app, opt).await, avail_of(&app, opt).await), ((15, 0), Some(9)), "nothing changed");
    assert_eq!(count(&app, "inventory_audit_log").await, 1);
    json_of(adjust(&app, opt, -9).await, 200).await;
    assert_eq!(avail_of(&app, opt).await, Some(0));
    assert_eq!(stock_of(&app, opt).await, (6, 6), "once persisted, every remaining unit is reserved");
    let untouched = option(&app, 1_000, 10).await;
    json_of(adjust(&app, untouched, 3).await, 200).await;
    assert_eq!(avail_of(&app, untouched).await, None, "a counter not hydrated yet is left to hydration");
    placed(&app, user, &[(untouched, 13)]).await;
    assert_eq!(avail_of(&app, untouched).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_hydrating_the_same_options_at_once_count_their_stock_once() {
    let app = v2().await;
    let (_, opts) = product_in(&app, "general", &[(1_000, 10), (1_000, 5), (1_000, 7)], false).await;
    sqlx::query("UPDATE product_options SET reserved = 2 WHERE id = $1").bind(opts[0]).execute(&app.db).await.unwrap();
    let (one, two) = (engine(&app).await, engine(&app).await);
    let (a, b) = tokio::join!(one.hydrate(&opts), two.hydrate(&opts));
    a.unwrap();
    b.unwrap();
    let counters = stock_store(&app).await.available(&opts).await.unwrap();
    assert_eq!(counters, [Some(8), Some(5), Some(7)]);
    // Hydrating again changes nothing.
    one.hydrate(&opts).await.unwrap();
    assert_eq!(stock_store(&app).await.available(&opts).await.unwrap(), counters);
}

#[tokio::test]
async fn a_lost_counter_is_rehydrated_net_of_what_redis_still_holds_for_postgres() {
    let app = v2().await;
    let user = app.create_user("KR", 0).await;
    let opt = option(&app, 1_000, 10).await;
    let persisted = placed(&app, user, &[(opt, 1)]).await;
    let cancelled = placed(&app, user, &[(opt, 2)]).await;
    settle(&app).await;
    // Cancelled in Postgres only (its Redis release still to come), then one more not persisted.
    payment::cancel(&app.db, cancelled.parse().unwrap(), |_| true, Utc::now()).await.unwrap();
    placed(&app, user, &[(opt, 3)]).await;
    assert_eq!(avail_of(&app, opt).await, Some(4));
    let key = stock_store(&app).await.keys().avail(opt);
    let _: i64 = redis_cmd(redis::cmd("DEL").arg(&key)).await;
    // 10 - 1 reserved in Postgres - 3 not persisted - 2 whose release Redis still owes.
    engine(&app).await.hydrate(&[opt]).await.unwrap();
    assert_eq!(avail_of(&app, opt).await, Some(4));
    // The owed release then lands once, as it would have without the loss.
    sweep(&app, Utc::now() + Duration::hours(1)).await;
    assert_eq!(avail_of(&app, opt).await, Some(10));
    assert_eq!(status_of(&app, &persisted).await, "EXPIRED");
}

#[tokio::test]
async fn reconciliation_finds_no_drift_when_the_counters_agree_and_reports_the_difference_when_not() {
    let app = v2().await;
    let user = app.create_user("KR", 100_000).await;
    let a = option(&app, 1_000, 10).await;
    let b = option(&app, 1_000, 10).await;
    let paid = placed(&app, user, &[(a, 2), (b, 1)]).await;
    json_of(pay(&app, user, &paid, None).await, 200).await;
    placed(&app, user, &[(a, 1)]).await;
    settle(&app).await;
    placed(&app, user, &[(b, 4)]).await; // not persisted
    let stock = stock_store(&app).await;
    // A recorder of its own around each call: the gauge it shows is that reconciliation's.
    let (drift, metrics) = with_own_recorder(hydrate::reconcile(&app.db, &stock)).await;
    let drift = drift.unwrap();
    assert_eq!((drift.checked, drift.drifted.len(), drift.total()), (2, 0, 0), "{drift:?}");
    assert_metric(&metrics, "reconcile_drift", &[r#"kind="stock""#], 0.0);
    let _: i64 = redis_cmd(redis::cmd("INCRBY").arg(stock.keys().avail(b)).arg(3)).await;
    let (drift, metrics) = with_own_recorder(hydrate::reconcile(&app.db, &stock)).await;
    let drift = drift.unwrap();
    assert_eq!(drift.drifted.len(), 1);
    assert_metric(&metrics, "reconcile_drift", &[r#"kind="stock""#], 3.0);
    assert_eq!((drift.drifted[0].option_id, drift.drifted[0].redis, drift.drifted[0].expected), (b, 8, 5));
    // The operator's view of the same drift.
    let report = reconcile(&app, &[]).await;
    assert!(report.contains("stock: 2 hydrated option(s) checked, 1 drifted"), "{report}");
    assert!(report.contains(&format!("option {b}: redis 8 expected 5")), "{report}");
}

#[tokio::test]
async fn an_instance_starting_with_redis_lua_hydrates_the_existing_options() {
    let app = Strategy::DbPessimistic.spawn().await;
    let opt = option(&app, 1_000, 10).await;
    sqlx::query("UPDATE product_options SET reserved = 4 WHERE id = $1").bind(opt).execute(&app.db).await.unwrap();
    assert_eq!(avail_of(&app, opt).await, None);
    let mut config = app.config.clone();
    config.order_strategy = jupang::config::OrderStrategy::RedisLua;
    let second = Application::build(config).await.unwrap();
    assert_eq!(avail_of(&app, opt).await, Some(6));
    drop(second);
}

#[tokio::test]
async fn v1_orders_keep_hydrated_counters_in_step() {
    let app = Strategy::DbPessimistic.spawn().await;
    let user = app.create_user("KR", 100_000).await;
    let opt = option(&app, 1_000, 10).await;
    engine(&app).await.hydrate(&[opt]).await.unwrap();
    let order = placed(&app, user, &[(opt, 3)]).await;
    assert_eq!((raw_stock(&app, opt).await, avail_of(&app, opt).await), ((10, 3), Some(7)));
    json_of(cancel(&app, user, &order).await, 200).await;
    assert_eq!(avail_of(&app, opt).await, Some(10));
    let paid = placed(&app, user, &[(opt, 2)]).await;
    json_of(pay(&app, user, &paid, None).await, 200).await;
    assert_eq!((raw_stock(&app, opt).await, avail_of(&app, opt).await), ((8, 0), Some(8)));
    json_of(cancel(&app, user, &paid).await, 200).await;
    assert_eq!((raw_stock(&app, opt).await, avail_of(&app, opt).await), ((10, 0), Some(10)));
    let expiring = placed(&app, user, &[(opt, 5)]).await;
    assert_eq!(sweep(&app, Utc::now() + Duration::hours(1)).await, 1);
    assert_eq!(status_of(&app, &expiring).await, "EXPIRED");
    assert_eq!(avail_of(&app, opt).await, Some(10));
    assert!(stream_entries(&app).await.is_empty(), "V1 orders never enter the stream");
}
