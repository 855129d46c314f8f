//! Shared tools of the coupon tests: campaigns through the admin API, users in bulk, issuing,
//! and waiting for the V2 consumer to catch up.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use jupang::{
    http::auth::Role,
    store::{pg::admitted_coupons::CouponSink, redis::RedisStore},
    workers::consumer,
};
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{TestApp, json_of, spawn_app_with};

/// An app with the default issue strategy (`redis-lua`) and its stream consumer running, so
/// what is issued reaches Postgres (await it with [`settled`]).
pub async fn coupon_app() -> TestApp {
    spawn_app_with(|v| {
        v.insert("JUPANG_WORKERS".into(), "consumer".into());
    })
    .await
}

/// The app's Redis, under its prefix.
pub async fn redis_of(app: &TestApp) -> RedisStore {
    RedisStore::connect(&[&std::env::var("REDIS_URL").unwrap()], &app.redis_prefix).await.expect("Redis")
}

/// Waits (at most 15 s) until every V2 admission of the app is persisted: no entry of any
/// coupon stream is unacknowledged. Immediate for the V1 designs (no streams).
pub async fn settled(app: &TestApp) {
    let redis = redis_of(app).await;
    let sink = CouponSink::new(redis.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let backlog = consumer::backlog(&sink, &redis).await.expect("backlog");
        if backlog == 0 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{backlog} admissions still unpersisted after 15 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Makes the app forget a coupon's V2 Redis state (not its stream), as if Redis had lost it:
/// the next issue hydrates it again from Postgres. Tests that edit a coupon row directly in the
/// database call it so Redis re-reads the row.
pub async fn forget_in_redis(app: &TestApp, coupon_id: i64) {
    let mut conn = redis::Client::open(std::env::var("REDIS_URL").unwrap()).unwrap().get_connection().unwrap();
    let k = jupang::store::redis::keys::CouponKeys::new(&app.redis_prefix, coupon_id);
    let _: () = redis::cmd("DEL").arg(&k.meta).arg(&k.remaining).arg(&k.users).arg(&k.held).query(&mut conn).unwrap();
}

/// The id in tokens of the marketing manager who runs the campaigns.
pub const MANAGER_ID: i64 = 900_001;

/// A marketing manager's token.
pub fn manager(app: &TestApp) -> String {
    app.token(MANAGER_ID, &[Role::MarketingManager])
}

/// A valid campaign body: KR, 10% capped at 5,000 from 10,000, open since an hour for a day,
/// valid 7 days; `overrides` replace (or with `null`, remove) fields.
pub fn coupon_body(total: i64, overrides: Value) -> Value {
    let now = Utc::now();
    let mut body = json!({
        "name": "선착순 10% 쿠폰",
        "discount_type": "PERCENT",
        "discount_value": 10,
        "max_discount": 5_000,
        "min_order_amount": 10_000,
        "market": "KR",
        "total_quantity": total,
        "issue_starts_at": now - TimeDelta::hours(1),
        "issue_ends_at": now + TimeDelta::days(1),
        "valid_days": 7,
    });
    for (k, v) in overrides.as_object().expect("overrides are an object") {
        if v.is_null() {
            body.as_object_mut().unwrap().remove(k);
        } else {
            body[k] = v.clone();
        }
    }
    body
}

/// Creates a campaign through the admin API and returns its id.
pub async fn create_coupon(app: &TestApp, total: i64, overrides: Value) -> i64 {
    let res =
        app.send_json(Method::POST, "/api/admin/coupons", Some(&manager(app)), &coupon_body(total, overrides)).await;
    json_of(res, 201).await["id"].as_i64().expect("id")
}

/// Creates `n` users of a market in one statement and returns their ids.
pub async fn create_users(app: &TestApp, n: i64, market: &str) -> Vec<i64> {
    let currency = if market == "US" { "USD" } else { "KRW" };
    sqlx::query_scalar(
        "INSERT INTO users (name, market, currency) SELECT 'u' || g, $2, $3 FROM generate_series(1, $1) g RETURNING id",
    )
    .bind(n)
    .bind(market)
    .bind(currency)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

/// `POST /api/coupons/{id}/issue` for a user with the user's own token.
pub async fn issue(app: &TestApp, coupon_id: i64, user_id: i64) -> Response {
    app.send_json(
        Method::POST,
        &format!("/api/coupons/{coupon_id}/issue"),
        Some(&app.customer(user_id)),
        &json!({ "user_id": user_id }),
    )
    .await
}

/// The coupon's stored counter and the number of issued coupons stored for it, once the V2
/// consumer has caught up.
pub async fn counts(app: &TestApp, coupon_id: i64) -> (i32, i64) {
    settled(app).await;
    sqlx::query_as(
        "SELECT c.issued_quantity, (SELECT count(*) FROM user_coupons uc WHERE uc.coupon_id = c.id)
           FROM coupons c WHERE c.id = $1",
    )
    .bind(coupon_id)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

/// The number of `coupon.issued` events in the outbox for a coupon, once the V2 consumer has
/// caught up.
pub async fn issued_events(app: &TestApp, coupon_id: i64) -> i64 {
    settled(app).await;
    sqlx::query_scalar(
        "SELECT count(*) FROM outbox_events WHERE type = 'coupon.issued' AND (payload->>'coupon_id')::bigint = $1",
    )
    .bind(coupon_id)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

/// One answer of a burst: the user, the HTTP status (0 when the request got no answer, e.g.
/// the server died) and the JSON body (`null` when none).
#[derive(Debug, Clone)]
pub struct Shot {
    /// Who asked.
    pub user: i64,
    /// The status, or 0 without an answer.
    pub status: u16,
    /// The body.
    pub body: Value,
}

/// Sends one issue request per entry of `users` (a user may appear twice: a double click),
/// at most `in_flight` at a time, spread round-robin over `bases` (`http://host:port`), each
/// with the user's own token. Returns every answer.
pub async fn open_run(app: &TestApp, bases: &[String], coupon_id: i64, users: &[i64], in_flight: usize) -> Vec<Shot> {
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, &user) in users.iter().enumerate() {
        let request = app
            .client
            .post(format!("{}/api/coupons/{coupon_id}/issue", bases[i % bases.len()]))
            .bearer_auth(app.customer(user))
            .json(&json!({ "user_id": user }));
        let permit = gate.clone().acquire_owned().await.unwrap();
        tasks.spawn(async move {
            let _permit = permit;
            match request.send().await {
                Ok(res) => {
                    let status = res.status().as_u16();
                    Shot { user, status, body: res.json::<Value>().await.unwrap_or(Value::Null) }
                }
                Err(_) => Shot { user, status: 0, body: Value::Null },
            }
        });
    }
    tasks.join_all().await
}

/// The acknowledged coupons of a burst (user -> user_coupon_id), asserting that no user got two
/// and that every other answer is a 400 of the issue rules (or, if `lost_ok`, no answer at all).
pub fn acknowledged(shots: &[Shot], lost_ok: bool) -> std::collections::HashMap<i64, String> {
    let mut issued = std::collections::HashMap::new();
    for s in shots {
        match (s.status, s.body["code"].as_str()) {
            (201, _) => {
                let id = s.body["user_coupon_id"].as_str().expect("user_coupon_id").to_owned();
                assert!(issued.insert(s.user, id).is_none(), "user {} was issued twice", s.user);
            }
            (400, Some("ALREADY_ISSUED" | "COUPON_SOLD_OUT")) => {}
            (0, _) if lost_ok => {}
            _ => panic!("unexpected answer {} {}", s.status, s.body),
        }
    }
    issued
}

/// What Postgres holds for a coupon: user -> user_coupon_id.
pub async fn stored(db: &sqlx::PgPool, coupon_id: i64) -> std::collections::HashMap<i64, String> {
    let rows: Vec<(i64, uuid::Uuid)> = sqlx::query_as("SELECT user_id, id FROM user_coupons WHERE coupon_id = $1")
        .bind(coupon_id)
        .fetch_all(db)
        .await
        .unwrap();
    rows.into_iter().map(|(u, id)| (u, id.to_string())).collect()
}

/// `(issued_quantity, user_coupons rows, coupon.issued events)` of a coupon, read now.
pub async fn persisted(db: &sqlx::PgPool, coupon_id: i64) -> (i32, i64, i64) {
    sqlx::query_as(
        "SELECT c.issued_quantity,
                (SELECT count(*) FROM user_coupons uc WHERE uc.coupon_id = c.id),
                (SELECT count(*) FROM outbox_events e
                  WHERE e.type = 'coupon.issued' AND (e.payload->>'coupon_id')::bigint = c.id)
           FROM coupons c WHERE c.id = $1",
    )
    .bind(coupon_id)
    .fetch_one(db)
    .await
    .unwrap()
}

/// The coupon's Redis counters: `(remaining, users set size)`.
pub fn redis_counters(app: &TestApp, coupon_id: i64) -> (i64, i64) {
    let mut conn = redis::Client::open(std::env::var("REDIS_URL").unwrap()).unwrap().get_connection().unwrap();
    let k = jupang::store::redis::keys::CouponKeys::new(&app.redis_prefix, coupon_id);
    let remaining: i64 = redis::cmd("GET").arg(&k.remaining).query(&mut conn).unwrap();
    let users: i64 = redis::cmd("SCARD").arg(&k.users).query(&mut conn).unwrap();
    (remaining, users)
}
