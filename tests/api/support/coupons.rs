//! Coupons: campaigns through the admin API or straight in the database, issuing (one request
//! or a burst), what Redis and Postgres hold of a coupon, and waiting for the V2 consumer.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, TimeDelta, Utc};
use jupang::{
    http::auth::Role,
    store::{pg::admitted_coupons::CouponSink, redis::keys::CouponKeys},
    workers::consumer,
};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    app::{TestApp, spawn_app_with, spawn_child_app_with},
    http::json_of,
    stores::{redis_conn, redis_store},
};

/// The variables of an app with the default issue strategy (`redis-lua`) and its consumer.
fn with_consumer(vars: &mut BTreeMap<String, String>) {
    vars.insert("JUPANG_WORKERS".into(), "consumer".into());
}

/// An app with the default issue strategy (`redis-lua`) and its stream consumer running, so
/// what is issued reaches Postgres (await it with [`settled`]).
pub async fn coupon_app() -> TestApp {
    spawn_app_with(with_consumer).await
}

/// [`coupon_app`] as a child `jupang serve`, with metrics of its own.
pub async fn coupon_child_app() -> TestApp {
    spawn_child_app_with(with_consumer).await
}

/// The Redis keys of a coupon of the app.
pub fn coupon_keys(app: &TestApp, coupon_id: i64) -> CouponKeys {
    CouponKeys::new(&app.redis_prefix, coupon_id)
}

/// Waits (at most 15 s) until every V2 admission of the app is persisted: no entry of any
/// coupon stream is unacknowledged. Immediate for the V1 designs (no streams).
pub async fn settled(app: &TestApp) {
    let redis = redis_store(app).await;
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
pub fn forget_in_redis(app: &TestApp, coupon_id: i64) {
    let k = coupon_keys(app, coupon_id);
    let _: () =
        redis::cmd("DEL").arg(&k.meta).arg(&k.remaining).arg(&k.users).arg(&k.held).query(&mut redis_conn()).unwrap();
}

/// The coupon's Redis counters: `(remaining, users set size)`.
pub fn redis_counters(app: &TestApp, coupon_id: i64) -> (i64, i64) {
    let (k, mut conn) = (coupon_keys(app, coupon_id), redis_conn());
    let remaining: i64 = redis::cmd("GET").arg(&k.remaining).query(&mut conn).unwrap();
    let users: i64 = redis::cmd("SCARD").arg(&k.users).query(&mut conn).unwrap();
    (remaining, users)
}

/// Appends an admission of a user to a coupon's stream behind the app's back, with the fields
/// the issue script writes; returns the entry id.
pub fn append_admission(
    app: &TestApp,
    coupon_id: i64,
    user_id: i64,
    issued_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> String {
    redis::cmd("XADD")
        .arg(coupon_keys(app, coupon_id).stream)
        .arg("*")
        .arg("user_coupon_id")
        .arg(Uuid::now_v7().to_string())
        .arg("coupon_id")
        .arg(coupon_id)
        .arg("user_id")
        .arg(user_id)
        .arg("issued_at")
        .arg(issued_at.to_rfc3339())
        .arg("expires_at")
        .arg(expires_at.to_rfc3339())
        .query(&mut redis_conn())
        .unwrap()
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
    let (issued, rows, _) = persisted(&app.db, coupon_id).await;
    (issued, rows)
}

/// The number of `coupon.issued` events in the outbox for a coupon, once the V2 consumer has
/// caught up.
pub async fn issued_events(app: &TestApp, coupon_id: i64) -> i64 {
    settled(app).await;
    persisted(&app.db, coupon_id).await.2
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

/// What Postgres holds for a coupon: user -> user_coupon_id.
pub async fn stored(db: &sqlx::PgPool, coupon_id: i64) -> HashMap<i64, String> {
    let rows: Vec<(i64, Uuid)> = sqlx::query_as("SELECT user_id, id FROM user_coupons WHERE coupon_id = $1")
        .bind(coupon_id)
        .fetch_all(db)
        .await
        .unwrap();
    rows.into_iter().map(|(u, id)| (u, id.to_string())).collect()
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

impl Shot {
    /// What `user` was answered (or not).
    pub async fn of(user: i64, sent: reqwest::Result<Response>) -> Shot {
        match sent {
            Ok(res) => {
                let status = res.status().as_u16();
                Shot { user, status, body: res.json::<Value>().await.unwrap_or(Value::Null) }
            }
            Err(_) => Shot { user, status: 0, body: Value::Null },
        }
    }
}

/// Sends one issue request per entry of `users` (a user may appear twice: a double click),
/// at most `in_flight` at a time, spread round-robin over `bases` (`http://host:port`), each
/// with the user's own token. Returns every answer.
pub async fn open_run(app: &TestApp, bases: &[String], coupon_id: i64, users: &[i64], in_flight: usize) -> Vec<Shot> {
    burst(app, bases, coupon_id, users, in_flight, Arc::default()).await.expect("the burst task")
}

/// [`open_run`] as a task of its own that counts the answers in `answered` as they come.
pub fn burst(
    app: &TestApp,
    bases: &[String],
    coupon_id: i64,
    users: &[i64],
    in_flight: usize,
    answered: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<Vec<Shot>> {
    let requests: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, &user)| {
            let request = app
                .client
                .post(format!("{}/api/coupons/{coupon_id}/issue", bases[i % bases.len()]))
                .bearer_auth(app.customer(user))
                .json(&json!({ "user_id": user }));
            (user, request)
        })
        .collect();
    tokio::spawn(async move {
        let gate = Arc::new(tokio::sync::Semaphore::new(in_flight));
        let mut tasks = tokio::task::JoinSet::new();
        for (user, request) in requests {
            let (permit, answered) = (gate.clone().acquire_owned().await.unwrap(), answered.clone());
            tasks.spawn(async move {
                let _permit = permit;
                let shot = Shot::of(user, request.send().await).await;
                answered.fetch_add(1, Ordering::Relaxed);
                shot
            });
        }
        tasks.join_all().await
    })
}

/// The acknowledged coupons of a burst (user -> user_coupon_id), asserting that no user got two
/// and that every other answer is a 400 of the issue rules (or, if `lost_ok`, no answer at all).
pub fn acknowledged(shots: &[Shot], lost_ok: bool) -> HashMap<i64, String> {
    let mut issued = HashMap::new();
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

/// A coupon campaign written straight to the database (no Redis state: the V2 path hydrates
/// it on first use).
#[derive(Debug, Clone)]
pub struct CouponSpec {
    /// FIXED or PERCENT.
    pub discount_type: &'static str,
    /// Amount or percent.
    pub discount_value: i64,
    /// Cap of a PERCENT discount.
    pub max_discount: Option<i64>,
    /// Minimum order total.
    pub min_order_amount: i64,
    /// Category restriction.
    pub categories: Option<Vec<String>>,
    /// Market.
    pub market: &'static str,
}

impl CouponSpec {
    /// A FIXED discount in the KR market with no conditions.
    pub fn fixed(amount: i64) -> CouponSpec {
        CouponSpec {
            discount_type: "FIXED",
            discount_value: amount,
            max_discount: None,
            min_order_amount: 0,
            categories: None,
            market: "KR",
        }
    }

    /// A PERCENT discount in the KR market, optionally capped.
    pub fn percent(percent: i64, cap: Option<i64>) -> CouponSpec {
        CouponSpec { discount_type: "PERCENT", discount_value: percent, max_discount: cap, ..CouponSpec::fixed(1) }
    }
}

/// Creates a campaign of 100 coupons, open since a day for a day; returns its id.
pub async fn coupon(app: &TestApp, spec: CouponSpec) -> i64 {
    let currency = if spec.market == "US" { "USD" } else { "KRW" };
    sqlx::query_scalar(
        "INSERT INTO coupons (name, discount_type, discount_value, max_discount, min_order_amount, market, currency, \
                              total_quantity, issue_starts_at, issue_ends_at, valid_days, categories) \
         VALUES ('test coupon', $1, $2, $3, $4, $5, $6, 100, now() - interval '1 day', now() + interval '1 day', 7, $7) \
         RETURNING id",
    )
    .bind(spec.discount_type)
    .bind(spec.discount_value)
    .bind(spec.max_discount)
    .bind(spec.min_order_amount)
    .bind(spec.market)
    .bind(currency)
    .bind(spec.categories)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

/// Gives a user a coupon AVAILABLE until `expires_at`; returns the user coupon id.
pub async fn hold(app: &TestApp, coupon_id: i64, user_id: i64, expires_at: DateTime<Utc>) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO user_coupons (id, coupon_id, user_id, status, issued_at, expires_at) \
         VALUES ($1, $2, $3, 'AVAILABLE', now(), $4)",
    )
    .bind(id)
    .bind(coupon_id)
    .bind(user_id)
    .bind(expires_at)
    .execute(&app.db)
    .await
    .unwrap();
    id
}

/// A fixed coupon held by a user for a week.
pub async fn held_fixed(app: &TestApp, user_id: i64, amount: i64) -> Uuid {
    let c = coupon(app, CouponSpec::fixed(amount)).await;
    hold(app, c, user_id, Utc::now() + TimeDelta::days(7)).await
}

/// (status, used_at is set, order_id) of a held coupon.
pub async fn coupon_state(app: &TestApp, user_coupon_id: Uuid) -> (String, bool, Option<Uuid>) {
    sqlx::query_as("SELECT status, used_at IS NOT NULL, order_id FROM user_coupons WHERE id = $1")
        .bind(user_coupon_id)
        .fetch_one(&app.db)
        .await
        .unwrap()
}
