//! Events operators can trust: every event type reaches an `https://` data platform with a
//! private CA (rustls, `JUPANG_DATA_PLATFORM_CA`) exactly once with its `Idempotency-Key`, and
//! the relay's circuit breaker leaves a failing platform alone while business goes on.

use std::{
    collections::{BTreeSet, HashMap},
    sync::atomic::Ordering,
    time::Duration,
};

use chrono::Utc;
use jupang::{
    http::auth::Role,
    store::pg::outbox::{self, EventType},
};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    HttpsPlatform, Received, Strategy, TestApp, await_metric, cancel, create_coupon, events, eventually, issue,
    json_of, metric_value, option, pay, placed, scrape, set_expiry, spawn_app_with, spawn_child_app_with, stock_of,
};

/// `(id, type, payload)` of every outbox event, oldest first.
async fn outbox_rows(app: &TestApp) -> Vec<(Uuid, String, Value)> {
    sqlx::query_as("SELECT id, type, payload FROM outbox_events ORDER BY created_at, id")
        .fetch_all(&app.db)
        .await
        .unwrap()
}

async fn attempts(app: &TestApp, id: Uuid) -> i32 {
    sqlx::query_scalar("SELECT attempts FROM outbox_events WHERE id = $1").bind(id).fetch_one(&app.db).await.unwrap()
}

async fn undelivered(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM outbox_events WHERE status <> 'DELIVERED'")
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn every_event_type_reaches_an_https_platform_once_with_its_idempotency_key() {
    let platform = HttpsPlatform::start().await;
    let app = spawn_app_with(|v| {
        platform.vars(v);
        v.insert("JUPANG_WORKERS".into(), "outbox,consumer,expiry".into());
        v.insert("JUPANG_EXPIRY_SWEEP_SECS".into(), "1".into());
    })
    .await;
    let item = option(&app, 10_000, 20).await;
    let user = app.create_user("KR", 1_000_000).await;
    // coupon.issued, then coupon.used with order.created, payment.completed (reserve, sale).
    let coupon = create_coupon(&app, 10, json!({})).await;
    let issued = json_of(issue(&app, coupon, user).await, 201).await;
    let user_coupon: Uuid = issued["user_coupon_id"].as_str().unwrap().parse().unwrap();
    let paid = placed(&app, user, &[(item, 2)]).await;
    json_of(pay(&app, user, &paid, Some(user_coupon)).await, 200).await;
    // order.cancelled (release), then a refund of the paid order (refund).
    let cancelled = placed(&app, user, &[(item, 1)]).await;
    json_of(cancel(&app, user, &cancelled).await, 200).await;
    json_of(cancel(&app, user, &paid).await, 200).await;
    // order.expired (expiry), by the sweeper.
    let expired = placed(&app, user, &[(item, 3)]).await;
    set_expiry(&app, &expired, -1).await;
    // An adjustment by an inventory manager.
    let manager = app.token(9001, &[Role::InventoryManager]);
    let body = json!({"delta": 4, "reason": "입고"});
    let path = format!("/api/admin/inventory/{item}/adjust");
    json_of(app.send_json(Method::POST, &path, Some(&manager), &body).await, 200).await;

    eventually(30, "every event delivered", || async {
        let done = crate::support::status_of(&app, &expired).await == "EXPIRED";
        done && undelivered(&app).await == 0
    })
    .await;
    let rows = outbox_rows(&app).await;
    let received = platform.received();
    assert_eq!(received.len(), rows.len(), "each event once, no retry needed");
    let mut by_key: HashMap<String, Vec<&Received>> = HashMap::new();
    for r in &received {
        by_key.entry(r.idempotency_key.clone().expect("an Idempotency-Key")).or_default().push(r);
    }
    for (id, kind, payload) in &rows {
        let got = by_key.get(&id.to_string()).unwrap_or_else(|| panic!("{kind} {id} never arrived"));
        assert_eq!(got.len(), 1, "{kind} {id} arrived {} times", got.len());
        assert_eq!(got[0].body["event_id"], id.to_string());
        assert_eq!(&got[0].body["type"], kind);
        assert_eq!(&got[0].body["payload"], payload);
    }
    let kinds: BTreeSet<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    let want = [
        "coupon.issued",
        "coupon.used",
        "order.cancelled",
        "order.created",
        "order.expired",
        "order.refunded",
        "payment.completed",
        "stock.changed",
    ];
    assert_eq!(kinds, want.into_iter().collect());
    let movements: BTreeSet<&str> = rows
        .iter()
        .filter(|r| r.1 == "stock.changed" && r.2["product_option_id"] == item)
        .filter_map(|r| r.2["movement"].as_str())
        .collect();
    let want = ["adjustment", "expiry", "refund", "release", "reserve", "sale"];
    assert_eq!(movements, want.into_iter().collect());

    let ended = |kind: &str, order: &str| -> Value {
        rows.iter().find(|r| r.1 == kind && r.2["order_id"] == order).map(|r| r.2.clone()).expect(kind)
    };
    let c = ended("order.cancelled", &cancelled);
    assert_eq!(c["reason"], "cancel_requested");
    assert_eq!(c["amount"], json!({"amount": 10_000, "currency": "KRW"}));
    assert_eq!(c["items"], json!([{"product_option_id": item, "quantity": 1}]));
    assert!(c["occurred_at"].is_string());
    let e = ended("order.expired", &expired);
    assert_eq!(e["reason"], "payment_timeout");
    assert_eq!(e["items"], json!([{"product_option_id": item, "quantity": 3}]));
    let expiry = rows.iter().find(|r| r.2["movement"] == "expiry").unwrap();
    assert_eq!((&expiry.2["delta"], &expiry.2["reserved_delta"]), (&json!(0), &json!(-3)));
}

#[tokio::test]
async fn the_breaker_opens_after_n_failures_sends_nothing_while_open_half_opens_and_closes_on_the_first_success() {
    let platform = HttpsPlatform::start().await;
    platform.state.down.store(true, Ordering::SeqCst);
    let app = spawn_child_app_with(|v| {
        platform.vars(v);
        v.insert("JUPANG_WORKERS".into(), "outbox,consumer".into());
        v.insert("JUPANG_OUTBOX_BREAKER_FAILURES".into(), "3".into());
        v.insert("JUPANG_OUTBOX_BREAKER_OPEN_SECS".into(), "2".into());
    })
    .await;
    let enqueue = |n: i64| {
        let db = app.db.clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            let payload = json!({"product_option_id": n, "delta": 1, "reason": "test"});
            let id = outbox::enqueue(&mut tx, EventType::StockChanged, Utc::now(), payload).await.unwrap();
            tx.commit().await.unwrap();
            id
        }
    };
    // One event alone fails first (recorded: attempts 1); from then on the relay sends one at a
    // time, so the requests the platform counts are the failures.
    let mut ids = vec![enqueue(0).await];
    eventually(10, "the first failure recorded", || async { attempts(&app, ids[0]).await == 1 }).await;
    for n in 1..5 {
        ids.push(enqueue(n).await);
    }
    await_metric(&app, "outbox_breaker_state", &[], 1.0).await;
    assert_eq!(platform.received().len(), 3, "open after exactly N failed requests");

    // Open: business goes on, and its events wait.
    let item = option(&app, 1000, 5).await;
    let user = app.create_user("KR", 100_000).await;
    let order = placed(&app, user, &[(item, 1)]).await;
    json_of(pay(&app, user, &order, None).await, 200).await;
    let lag = || async { metric_value(&scrape(&app).await, "outbox_oldest_pending_age_seconds", &[]) };
    eventually(5, "the lag shows the waiting events", || async { lag().await > 0.0 }).await;

    // The probe after the open period fails (still down): open again for another period.
    eventually(10, "the first probe", || async { platform.received().len() >= 4 }).await;
    // The next probe is held on its way: the breaker shows half-open meanwhile, and closes on
    // its success.
    platform.hold();
    platform.state.down.store(false, Ordering::SeqCst);
    await_metric(&app, "outbox_breaker_state", &[], 2.0).await;
    eventually(10, "the second probe", || async { platform.received().len() >= 5 }).await;
    platform.release();
    await_metric(&app, "outbox_breaker_state", &[], 0.0).await;
    eventually(20, "everything delivered", || async { undelivered(&app).await == 0 }).await;
    await_metric(&app, "outbox_oldest_pending_age_seconds", &[], 0.0).await;

    let received = platform.received();
    let gap = |i: usize| received[i].at - received[i - 1].at;
    assert!(gap(3) >= Duration::from_secs(2), "nothing sent while open: {:?}", gap(3));
    // The 5th request is the second probe (a success), after a second open period.
    assert!(gap(4) >= Duration::from_secs(2), "the failed probe reopened the breaker: {:?}", gap(4));
    for id in &ids {
        let key = id.to_string();
        assert!(received.iter().any(|r| r.idempotency_key.as_deref() == Some(key.as_str())), "{id} delivered");
    }
}

#[tokio::test]
async fn v1_orders_announce_their_movements_like_v2_ones() {
    let app = Strategy::DbPessimistic.spawn().await;
    let item = option(&app, 1000, 10).await;
    let user = app.create_user("KR", 100_000).await;
    let cancelled = placed(&app, user, &[(item, 2)]).await;
    json_of(cancel(&app, user, &cancelled).await, 200).await;
    let paid = placed(&app, user, &[(item, 3)]).await;
    json_of(pay(&app, user, &paid, None).await, 200).await;

    let moves: Vec<(String, i64, i64, String)> = events(&app, "stock.changed")
        .await
        .iter()
        .filter(|e| e["product_option_id"] == item && !e["order_id"].is_null())
        .map(|e| {
            let n = |k: &str| e[k].as_i64().unwrap();
            (e["movement"].as_str().unwrap().to_owned(), n("delta"), n("reserved_delta"), e["order_id"].to_string())
        })
        .collect();
    let quoted = |id: &str| format!("\"{id}\"");
    assert_eq!(
        moves,
        [
            ("reserve".to_owned(), 0, 2, quoted(&cancelled)),
            ("release".to_owned(), 0, -2, quoted(&cancelled)),
            ("reserve".to_owned(), 0, 3, quoted(&paid)),
            ("sale".to_owned(), -3, -3, quoted(&paid)),
        ]
    );
    assert_eq!(stock_of(&app, item).await, (7, 0));
}
