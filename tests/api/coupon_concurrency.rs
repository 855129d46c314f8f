//! Every issue design (V1 and V2) under real concurrency: a burst of simultaneous HTTP requests, many
//! from double-clicking users, for fewer coupons than users. Exactly the coupon's quantity is
//! issued, one per user, and every issue has its event (api.md "Coupons"; seed 004 NFR-1).

use std::{sync::Arc, time::Duration};

use rand::seq::SliceRandom;
use reqwest::Method;
use serde_json::json;
use tokio::{sync::Barrier, task::JoinSet};

use crate::support::{
    Shot, TestApp, acknowledged, assert_error, counts, create_coupon, issue, issued_events, json_of, manager,
    redis_conn, settled, spawn_app_with, stored,
};

const COUPONS: i64 = 50;
const USERS: usize = 200;
const DOUBLE_CLICKERS: usize = 100;

async fn app_with(strategy: &str) -> TestApp {
    spawn_app_with(|v| {
        v.insert("JUPANG_ISSUE_STRATEGY".into(), strategy.into());
        // V2 persists through the stream consumer.
        v.insert("JUPANG_WORKERS".into(), "consumer".into());
    })
    .await
}

/// Fires every request at once (all tasks wait at a barrier, then send) and returns the final
/// answer of each. A 409 `CONCURRENCY_CONFLICT` is the contract's
/// retryable answer when a V1 design's lock waits run out under load, and 503 `OVERLOADED` when
/// no Postgres connection came within the acquire timeout (a busy machine running the suite);
/// like a real client, the request is then sent again (a few times at most, after any
/// `Retry-After`), so the burst checks exactness, not the machine's speed.
async fn burst(app: &TestApp, coupon: i64, users: &[i64]) -> Vec<Shot> {
    let barrier = Arc::new(Barrier::new(users.len()));
    let mut tasks = JoinSet::new();
    for &user in users {
        let request = app
            .request(Method::POST, &format!("/api/coupons/{coupon}/issue"))
            .bearer_auth(app.customer(user))
            .json(&json!({ "user_id": user }));
        let barrier = barrier.clone();
        tasks.spawn(async move {
            barrier.wait().await;
            let mut attempts = 0;
            loop {
                attempts += 1;
                let res = request.try_clone().expect("a cloneable request").send().await.expect("request");
                let status = res.status().as_u16();
                let retry_after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                let body = res.json::<serde_json::Value>().await.expect("a JSON body");
                let retryable = matches!(
                    (status, body["code"].as_str()),
                    (409, Some("CONCURRENCY_CONFLICT")) | (503, Some("OVERLOADED"))
                );
                if retryable && attempts < 5 {
                    // A polite client waits as long as `Retry-After` asks (client behaviour, not
                    // synchronisation).
                    tokio::time::sleep(Duration::from_secs(retry_after.unwrap_or(0))).await;
                    continue;
                }
                return Shot { user, status, body };
            }
        });
    }
    tasks.join_all().await
}

/// The whole promise, checked for one design.
async fn exactly_the_quantity_is_issued_once_per_user(strategy: &str) {
    let app = app_with(strategy).await;
    let coupon = create_coupon(&app, COUPONS, json!({})).await;
    let users = app.create_users(USERS, "KR", 0).await;
    let mut requests: Vec<i64> = users.iter().chain(&users[..DOUBLE_CLICKERS]).copied().collect();
    requests.shuffle(&mut rand::rng());

    let answers = burst(&app, coupon, &requests).await;

    let issued = acknowledged(&answers, false);
    assert_eq!(issued.len() as i64, COUPONS, "{strategy}: 201 answers");
    settled(&app).await;
    assert_eq!(stored(&app.db, coupon).await, issued, "{strategy}: what was acknowledged is exactly what is stored");
    assert_eq!(counts(&app, coupon).await, (COUPONS as i32, COUPONS), "{strategy}: counter and rows");
    assert_eq!(issued_events(&app, coupon).await, COUPONS, "{strategy}: one coupon.issued event per issue");
    let evented: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox_events e JOIN user_coupons uc ON uc.id = (e.payload->>'user_coupon_id')::uuid
          WHERE e.type = 'coupon.issued' AND uc.coupon_id = $1",
    )
    .bind(coupon)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(evented, COUPONS, "{strategy}: every event names a stored coupon");

    // A 201 coupon is usable by the user's very next request.
    let (winner, id) = issued.iter().next().unwrap();
    let res = app.get_as(*winner, &format!("/api/users/{winner}/coupons?status=AVAILABLE")).await;
    assert_eq!(json_of(res, 200).await["items"][0]["user_coupon_id"], id.as_str());
}

#[tokio::test]
async fn db_pessimistic_issues_exactly_the_quantity_once_per_user_under_a_burst() {
    exactly_the_quantity_is_issued_once_per_user("db-pessimistic").await;
}

#[tokio::test]
async fn db_optimistic_issues_exactly_the_quantity_once_per_user_under_a_burst() {
    exactly_the_quantity_is_issued_once_per_user("db-optimistic").await;
}

#[tokio::test]
async fn redis_lock_issues_exactly_the_quantity_once_per_user_under_a_burst() {
    exactly_the_quantity_is_issued_once_per_user("redis-lock").await;
}

#[tokio::test]
async fn redis_lua_issues_exactly_the_quantity_once_per_user_under_a_burst() {
    exactly_the_quantity_is_issued_once_per_user("redis-lua").await;
}

#[tokio::test]
async fn redis_lock_releases_its_lock_after_each_issue() {
    let app = app_with("redis-lock").await;
    let coupon = create_coupon(&app, 10, json!({})).await;
    let users = app.create_users(20, "KR", 0).await;
    burst(&app, coupon, &users).await;
    let key = format!("{}:{}:{coupon}", app.redis_prefix, jupang::services::coupons::LOCK_KEY_PREFIX);
    let exists: bool = redis::cmd("EXISTS").arg(&key).query(&mut redis_conn()).unwrap();
    assert!(!exists, "{key} still held after every request answered");
    assert_eq!(counts(&app, coupon).await, (10, 10));
}

#[tokio::test]
async fn every_design_applies_the_rules_in_order_window_duplicate_stock() {
    for strategy in ["db-pessimistic", "db-optimistic", "redis-lock", "redis-lua"] {
        let app = app_with(strategy).await;
        let coupon = create_coupon(&app, 1, json!({})).await;
        let [first, second] = app.create_users(2, "KR", 0).await[..] else { unreachable!() };
        let body = json_of(issue(&app, coupon, first).await, 201).await;
        assert_eq!(body["status"], "AVAILABLE", "{strategy}");
        assert_error(issue(&app, coupon, first).await, 400, "ALREADY_ISSUED").await;
        assert_error(issue(&app, coupon, second).await, 400, "COUPON_SOLD_OUT").await;
        // The window closes now (the admin's "end it now").
        let end = json!({ "issue_ends_at": chrono::Utc::now() });
        let path = format!("/api/admin/coupons/{coupon}");
        json_of(app.send_json(Method::PATCH, &path, Some(&manager(&app)), &end).await, 200).await;
        assert_error(issue(&app, coupon, second).await, 400, "COUPON_NOT_ACTIVE").await;
        assert_error(issue(&app, coupon + 1, second).await, 404, "COUPON_NOT_FOUND").await;
        assert_eq!(counts(&app, coupon).await, (1, 1), "{strategy}");
    }
}
