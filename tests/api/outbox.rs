//! Outbox delivery to a real HTTP "data platform" run by the test, and the admin routes that
//! list and re-send events.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, http::StatusCode, routing::post};
use chrono::{DateTime, Utc};
use jupang::{
    http::auth::Role,
    store::pg::outbox::{self, EventType},
};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::support::{
    Received, TestApp, assert_error, assert_metric, await_metric, eventually, json_of, spawn_app_with,
    spawn_child_app_with,
};

#[derive(Default)]
struct PlatformState {
    received: Mutex<Vec<Received>>,
    /// The next N requests answer 500.
    fail_next: AtomicUsize,
}

/// A data platform on `127.0.0.1:0` that records every envelope. Payloads may steer it:
/// `"test_mode": "fail"` always answers 500, `"test_mode": "hang"` never answers.
struct Platform {
    url: String,
    state: Arc<PlatformState>,
}

impl Platform {
    async fn start() -> Platform {
        async fn receive(State(s): State<Arc<PlatformState>>, headers: HeaderMap, body: Bytes) -> StatusCode {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let idempotency_key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let mode = body["payload"]["test_mode"].as_str().unwrap_or("").to_owned();
            s.received.lock().unwrap().push(Received { at: Instant::now(), idempotency_key, body });
            if mode == "hang" {
                std::future::pending::<()>().await;
            }
            let failing = s.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
            if failing || mode == "fail" { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::ACCEPTED }
        }
        let state = Arc::new(PlatformState::default());
        let app = Router::new().route("/events", post(receive)).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Platform { url, state }
    }

    fn fail_next(&self, n: usize) {
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    fn received_for(&self, id: Uuid) -> Vec<Received> {
        let key = id.to_string();
        self.state.received.lock().unwrap().iter().filter(|r| r.body["event_id"] == key.as_str()).cloned().collect()
    }

    fn all_received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }
}

/// An app delivering to `platform`, retrying after `backoff_ms` (doubling), as a child
/// `jupang serve`: its delivery counters are this test's alone.
async fn app_for(platform: &Platform, backoff_ms: u64) -> TestApp {
    let url = platform.url.clone();
    spawn_child_app_with(move |vars| {
        vars.insert("JUPANG_WORKERS".into(), "outbox".into());
        vars.insert("JUPANG_DATA_PLATFORM_URL".into(), url);
        vars.insert("JUPANG_OUTBOX_BACKOFF_MS".into(), backoff_ms.to_string());
    })
    .await
}

/// Writes one event the way business code does: inside a committed transaction.
async fn enqueue(db: &PgPool, kind: EventType, payload: Value) -> Uuid {
    let mut tx = db.begin().await.unwrap();
    let id = outbox::enqueue(&mut tx, kind, Utc::now(), payload).await.unwrap();
    tx.commit().await.unwrap();
    id
}

async fn status_of(db: &PgPool, id: Uuid) -> (String, i32, Option<String>) {
    sqlx::query_as("SELECT status, attempts, last_error FROM outbox_events WHERE id = $1")
        .bind(id)
        .fetch_one(db)
        .await
        .unwrap()
}

/// Polls until the event reaches `status`, or fails after `within`.
async fn await_status(db: &PgPool, id: Uuid, status: &str, within: Duration) -> (String, i32, Option<String>) {
    let deadline = Instant::now() + within;
    loop {
        let row = status_of(db, id).await;
        if row.0 == status {
            return row;
        }
        assert!(Instant::now() < deadline, "event {id} is still {row:?}, expected {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_enqueued_event_is_delivered_with_its_envelope_and_idempotency_key() {
    let platform = Platform::start().await;
    let app = app_for(&platform, 10).await;
    let payload = json!({"order_id": Uuid::now_v7(), "items": [{"product_option_id": 3, "quantity": 2}],
                         "total_amount": {"amount": 50000, "currency": "KRW"}});
    let id = enqueue(&app.db, EventType::OrderCreated, payload.clone()).await;

    let (_, attempts, last_error) = await_status(&app.db, id, "DELIVERED", Duration::from_secs(10)).await;
    assert_eq!((attempts, last_error), (1, None));
    let received = platform.received_for(id);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].idempotency_key.as_deref(), Some(id.to_string().as_str()));
    let envelope = &received[0].body;
    let mut keys: Vec<&str> = envelope.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["event_id", "occurred_at", "payload", "type"]);
    assert_eq!(envelope["type"], "order.created");
    let occurred: DateTime<Utc> = envelope["occurred_at"].as_str().unwrap().parse().unwrap();
    assert!((Utc::now() - occurred).num_seconds() < 60);
    for field in ["order_id", "items", "total_amount"] {
        assert_eq!(envelope["payload"][field], payload[field], "payload.{field}");
    }
    let in_payload: DateTime<Utc> = envelope["payload"]["occurred_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(in_payload, occurred);

    // Counted just after the delivery is recorded: await the count, then it must be exact.
    let metrics = await_metric(&app, "outbox_delivery_total", &[r#"outcome="delivered""#], 1.0).await;
    for outcome in [r#"outcome="retry""#, r#"outcome="failed""#] {
        assert_metric(&metrics, "outbox_delivery_total", &[outcome], 0.0);
    }
    // Nothing is pending any more, as the gauge shows at its next round.
    await_metric(&app, "outbox_pending_events", &[], 0.0).await;
}

#[tokio::test]
async fn a_failed_delivery_is_retried_with_growing_backoff_until_it_succeeds() {
    let platform = Platform::start().await;
    platform.fail_next(2);
    let app = app_for(&platform, 150).await;
    let id = enqueue(&app.db, EventType::CouponIssued, json!({"coupon_id": 1, "user_id": 2})).await;

    let (_, attempts, last_error) = await_status(&app.db, id, "DELIVERED", Duration::from_secs(10)).await;
    assert_eq!((attempts, last_error), (3, None));
    let received = platform.received_for(id);
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|r| r.idempotency_key.as_deref() == Some(id.to_string().as_str())));
    let first_wait = received[1].at - received[0].at;
    let second_wait = received[2].at - received[1].at;
    assert!(first_wait >= Duration::from_millis(150), "first retry after {first_wait:?}");
    assert!(second_wait >= Duration::from_millis(300), "second retry after {second_wait:?}");
}

#[tokio::test]
async fn an_event_failing_four_times_ends_failed_and_redeliver_sends_it_again() {
    let platform = Platform::start().await;
    platform.fail_next(4);
    let app = app_for(&platform, 10).await;
    let id =
        enqueue(&app.db, EventType::StockChanged, json!({"product_option_id": 9, "delta": -1, "reason": "t"})).await;

    let (_, attempts, last_error) = await_status(&app.db, id, "FAILED", Duration::from_secs(10)).await;
    assert_eq!(attempts, 4, "the first attempt and 3 retries");
    let last_error = last_error.expect("the failure is recorded");
    assert!(last_error.contains("500"), "{last_error}");
    assert!(!last_error.contains("127.0.0.1"), "no URL in the recorded error: {last_error}");
    assert_eq!(platform.received_for(id).len(), 4);

    let ops = app.token(1, &[Role::DataPlatform]);
    let failed = json_of(
        app.request(Method::GET, "/api/admin/outbox?status=FAILED").bearer_auth(&ops).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(failed["total"], 1);
    assert_eq!(failed["items"][0]["event_id"], id.to_string());
    assert_eq!(failed["items"][0]["status"], "FAILED");
    assert_eq!(failed["items"][0]["attempts"], 4);

    let path = format!("/api/admin/outbox/{id}/redeliver");
    let queued = json_of(app.send_json(Method::POST, &path, Some(&ops), &json!({})).await, 202).await;
    assert_eq!(queued["status"], "PENDING");
    let (_, attempts, _) = await_status(&app.db, id, "DELIVERED", Duration::from_secs(10)).await;
    assert_eq!(attempts, 1, "a re-send starts a new round of attempts");
    let received = platform.received_for(id);
    assert_eq!(received.len(), 5);
    assert_eq!(received[4].idempotency_key.as_deref(), Some(id.to_string().as_str()));
    // Three retries, then failed; after the re-send, delivered: each counted once, exactly.
    let metrics = await_metric(&app, "outbox_delivery_total", &[r#"outcome="delivered""#], 1.0).await;
    assert_metric(&metrics, "outbox_delivery_total", &[r#"outcome="retry""#], 3.0);
    assert_metric(&metrics, "outbox_delivery_total", &[r#"outcome="failed""#], 1.0);
}

#[tokio::test]
async fn a_failing_or_hanging_platform_never_holds_back_other_events_or_requests() {
    let platform = Platform::start().await;
    let app = app_for(&platform, 10).await;
    let hanging = enqueue(&app.db, EventType::OrderCreated, json!({"test_mode": "hang"})).await;
    let failing = enqueue(&app.db, EventType::OrderCreated, json!({"test_mode": "fail"})).await;
    eventually(10, "the hanging event is sent", || async { !platform.received_for(hanging).is_empty() }).await;

    let started = Instant::now();
    let ok = enqueue(&app.db, EventType::CouponUsed, json!({"coupon_id": 1})).await;
    let user = app.create_user("KR", 100).await;
    let res = app.get_as(user, &format!("/api/users/{user}/balance")).await;
    assert_eq!(res.status(), 200);
    await_status(&app.db, ok, "DELIVERED", Duration::from_secs(3)).await;
    assert!(started.elapsed() < Duration::from_secs(3), "delivery waited for the hanging platform");
    assert_eq!(status_of(&app.db, hanging).await.0, "PENDING", "the hanging delivery is still in flight");
    await_status(&app.db, failing, "FAILED", Duration::from_secs(10)).await;
}

#[tokio::test]
async fn two_instances_deliver_each_event_once_between_them() {
    let platform = Platform::start().await;
    let first = app_for(&platform, 10).await;
    let db_url = first.config.database_url.expose().to_owned();
    let url = platform.url.clone();
    let second = spawn_app_with(move |vars| {
        vars.insert("DATABASE_URL".into(), db_url);
        vars.insert("JUPANG_WORKERS".into(), "outbox".into());
        vars.insert("JUPANG_DATA_PLATFORM_URL".into(), url);
    })
    .await;
    let writers = (0..100).map(|i| {
        let db = if i % 2 == 0 { first.db.clone() } else { second.db.clone() };
        tokio::spawn(async move { enqueue(&db, EventType::CouponIssued, json!({"n": i})).await })
    });
    let ids: Vec<Uuid> = await_all(writers).await;

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_events WHERE status <> 'DELIVERED'")
            .fetch_one(&first.db)
            .await
            .unwrap();
        if pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{pending} event(s) still undelivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut per_key: HashMap<String, usize> = HashMap::new();
    for r in platform.all_received() {
        *per_key.entry(r.idempotency_key.unwrap()).or_default() += 1;
    }
    assert_eq!(per_key.len(), ids.len());
    assert!(per_key.values().all(|n| *n == 1), "an event was sent twice: {per_key:?}");
}

async fn await_all(handles: impl Iterator<Item = tokio::task::JoinHandle<Uuid>>) -> Vec<Uuid> {
    let mut out = Vec::new();
    for h in handles.collect::<Vec<_>>() {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn outbox_admin_routes_are_for_ops_admin_and_data_platform_only() {
    let platform = Platform::start().await;
    let app = app_for(&platform, 10).await;
    let customer = app.customer(1);
    let res = app.request(Method::GET, "/api/admin/outbox").bearer_auth(&customer).send().await.unwrap();
    assert_error(res, 403, "FORBIDDEN").await;
    assert_error(app.get("/api/admin/outbox").await, 401, "UNAUTHENTICATED").await;
    let id = enqueue(&app.db, EventType::CouponIssued, json!({"coupon_id": 1})).await;
    let path = format!("/api/admin/outbox/{id}/redeliver");
    assert_error(app.send_json(Method::POST, &path, Some(&customer), &json!({})).await, 403, "FORBIDDEN").await;

    let admin = app.token(1, &[Role::OpsAdmin]);
    let unknown = format!("/api/admin/outbox/{}/redeliver", Uuid::now_v7());
    assert_error(app.send_json(Method::POST, &unknown, Some(&admin), &json!({})).await, 404, "EVENT_NOT_FOUND").await;
    let bad = app.send_json(Method::POST, "/api/admin/outbox/42x/redeliver", Some(&admin), &json!({})).await;
    assert_eq!(assert_error(bad, 400, "VALIDATION_ERROR").await["details"]["field"], "event_id");
    for (query, field) in [("status=LOST", "status"), ("size=0", "size"), ("page=0", "page")] {
        let res = app.request(Method::GET, &format!("/api/admin/outbox?{query}")).bearer_auth(&admin).send().await;
        let body = assert_error(res.unwrap(), 400, "VALIDATION_ERROR").await;
        assert_eq!(body["details"]["field"], field, "{query}");
    }
    let all =
        json_of(app.request(Method::GET, "/api/admin/outbox").bearer_auth(&admin).send().await.unwrap(), 200).await;
    assert_eq!((all["page"].clone(), all["size"].clone()), (json!(1), json!(20)));
    assert!(all["items"].as_array().unwrap().iter().any(|e| e["event_id"] == id.to_string()));
}
