//! Overload behaviour (issue 5): a bounded number of requests in flight, 503 `OVERLOADED` with
//! `Retry-After` beyond it or when no Postgres connection comes in time, and 503 `TIMEOUT` for a
//! request running past `JUPANG_REQUEST_TIMEOUT_MS`. Real HTTP, real Postgres.
//!
//! Requests are held in flight by an exclusive lock on the `coupons` table, taken by the test:
//! a V1 issue request blocks in its first read (the lock-free precheck, which runs before the
//! issue transaction and so outside its 1 s statement timeout) until the lock is released.
//! Progress is observed in `pg_locks`, never guessed with sleeps.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use reqwest::{Method, RequestBuilder, Response};
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};

use crate::support::{
    InFlight, TestApp, answers, assert_error, assert_metric, counts, create_coupon, fire, json_of, scrape,
    spawn_child_app_with,
};

/// An app issuing with `db-pessimistic` (a Postgres path) plus the given variables, as a child
/// `jupang serve`: what it sheds is counted in metrics of its own.
async fn v1_app(vars: &[(&str, &str)]) -> TestApp {
    spawn_child_app_with(|v: &mut BTreeMap<String, String>| {
        v.insert("JUPANG_ISSUE_STRATEGY".into(), "db-pessimistic".into());
        for (k, val) in vars {
            v.insert((*k).into(), (*val).into());
        }
    })
    .await
}

/// A transaction of the test's own (not the app's pool) holding `coupons` exclusively.
struct CouponsLocked {
    conn: PgConnection,
}

impl CouponsLocked {
    async fn take(app: &TestApp) -> CouponsLocked {
        let mut conn = PgConnection::connect(app.config.database_url.expose()).await.expect("connect");
        conn.execute("BEGIN; LOCK TABLE coupons IN ACCESS EXCLUSIVE MODE").await.expect("lock coupons");
        CouponsLocked { conn }
    }

    /// Waits (at most 10 s) until exactly `n` sessions wait for the lock.
    async fn wait_for_waiters(&mut self, n: i64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks
                  WHERE NOT granted AND relation = 'coupons'::regclass
                    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .fetch_one(&mut self.conn)
            .await
            .unwrap();
            if waiting >= n {
                assert_eq!(waiting, n, "more requests reached Postgres than were let in");
                return;
            }
            assert!(Instant::now() < deadline, "only {waiting} of {n} requests waiting on the lock after 10 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn release(mut self) {
        self.conn.execute("ROLLBACK").await.expect("release the lock");
    }
}

fn issue_request(app: &TestApp, coupon_id: i64, user_id: i64) -> RequestBuilder {
    app.request(Method::POST, &format!("/api/coupons/{coupon_id}/issue"))
        .bearer_auth(app.customer(user_id))
        .json(&json!({ "user_id": user_id }))
}

/// Sends each user's issue request on its own task; they run while the test goes on.
fn fire_issues(app: &TestApp, coupon_id: i64, users: &[i64]) -> InFlight {
    fire(users.iter().map(|&u| issue_request(app, coupon_id, u)))
}

/// Asserts 503 `OVERLOADED` with `Retry-After: 1`.
async fn assert_overloaded(res: Response) {
    assert_eq!(res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()).as_deref(), Some("1"));
    assert_error(res, 503, "OVERLOADED").await;
}

/// The users holding the coupon, in id order.
async fn holders(app: &TestApp, coupon_id: i64) -> Vec<i64> {
    sqlx::query_scalar("SELECT user_id FROM user_coupons WHERE coupon_id = $1 ORDER BY user_id")
        .bind(coupon_id)
        .fetch_all(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn requests_beyond_the_in_flight_limit_get_503_overloaded_with_retry_after() {
    let app = v1_app(&[("JUPANG_MAX_IN_FLIGHT", "3")]).await;
    let coupon = create_coupon(&app, 10, json!({})).await;
    let users = app.create_users(6, "KR", 0).await;
    let (admitted, extra) = users.split_at(3);

    let mut lock = CouponsLocked::take(&app).await;
    let in_flight = fire_issues(&app, coupon, admitted);
    lock.wait_for_waiters(3).await;

    let started = Instant::now();
    let shed = fire(extra.iter().map(|&u| issue_request(&app, coupon, u).header("accept-language", "en")));
    for res in answers(shed).await {
        assert_eq!(res.headers()["content-type"], "application/json");
        let retry_after = res.headers().get("retry-after").cloned();
        let body = assert_error(res, 503, "OVERLOADED").await;
        assert_eq!(retry_after.as_ref().map(|v| v.to_str().unwrap()), Some("1"));
        assert_eq!(body["message"], "Overloaded; retry shortly", "localized like every error");
    }
    assert!(started.elapsed() < Duration::from_secs(2), "shed at once, not queued: {:?}", started.elapsed());
    // The operational routes still answer a saturated process.
    assert_eq!(app.get("/health").await.status(), 200);
    assert_eq!(app.get("/ready").await.status(), 200);
    // Counted by this process only, which served nothing else: exactly the three shed.
    let metrics = scrape(&app).await;
    assert_metric(&metrics, "http_requests_shed_total", &[r#"reason="in_flight""#], 3.0);
    assert_metric(&metrics, "http_requests_shed_total", &[r#"reason="db_pool""#], 0.0);
    let issue_503 = [r#"route="/api/coupons/{coupon_id}/issue""#, r#"method="POST""#, r#"status="503""#];
    assert_metric(&metrics, "http_requests_total", &issue_503, 3.0);
    lock.wait_for_waiters(3).await;

    lock.release().await;
    for res in answers(in_flight).await {
        json_of(res, 201).await;
    }
    assert_eq!(counts(&app, coupon).await, (3, 3));
    assert_eq!(holders(&app, coupon).await, admitted, "the shed requests changed nothing");
}

#[tokio::test]
async fn a_burst_that_exhausts_the_postgres_pool_gets_503_overloaded_not_500() {
    let app = v1_app(&[("JUPANG_DB_POOL_SIZE", "2"), ("JUPANG_DB_ACQUIRE_TIMEOUT_MS", "200")]).await;
    let coupon = create_coupon(&app, 10, json!({})).await;
    let users = app.create_users(5, "KR", 0).await;
    let (holding, extra) = users.split_at(2);

    let mut lock = CouponsLocked::take(&app).await;
    let in_flight = fire_issues(&app, coupon, holding);
    // Both pooled connections now wait on the lock: the pool is exhausted.
    lock.wait_for_waiters(2).await;

    let started = Instant::now();
    for res in answers(fire_issues(&app, coupon, extra)).await {
        assert_overloaded(res).await;
    }
    assert!(started.elapsed() < Duration::from_secs(5), "failed fast: {:?}", started.elapsed());
    let metrics = scrape(&app).await;
    assert_metric(&metrics, "http_requests_shed_total", &[r#"reason="db_pool""#], 3.0);
    assert_metric(&metrics, "http_requests_shed_total", &[r#"reason="in_flight""#], 0.0);
    lock.wait_for_waiters(2).await;

    lock.release().await;
    for res in answers(in_flight).await {
        json_of(res, 201).await;
    }
    assert_eq!(counts(&app, coupon).await, (2, 2));
    assert_eq!(holders(&app, coupon).await, holding, "the refused requests changed nothing");
}

#[tokio::test]
async fn a_request_running_past_the_request_timeout_gets_503_timeout_and_changes_nothing() {
    let app = v1_app(&[("JUPANG_REQUEST_TIMEOUT_MS", "500")]).await;
    let coupon = create_coupon(&app, 10, json!({})).await;
    let user = app.create_users(1, "KR", 0).await[0];

    let lock = CouponsLocked::take(&app).await;
    let started = Instant::now();
    let res = issue_request(&app, coupon, user).send().await.expect("an answer");
    let elapsed = started.elapsed();
    assert_error(res, 503, "TIMEOUT").await;
    assert!(elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(5), "answered after {elapsed:?}");

    lock.release().await;
    assert_eq!(counts(&app, coupon).await, (0, 0));
    // The app is healthy again: the same request now goes through.
    json_of(issue_request(&app, coupon, user).send().await.unwrap(), 201).await;
}
