//! Shopping-flow fixtures written straight to the database (users, products, coupons), readers
//! of what the database holds, and thin HTTP helpers for cart, order and payment calls.
//!
//! Order tests run once per order strategy ([`for_each_strategy!`]). With `redis-lua` an order
//! reaches Postgres through the admission stream; the readers below first [`settle`] the stream
//! (persist what it holds, as the consumer would), so one assertion about Postgres serves both.

#![allow(dead_code)] // Shared by several test modules; not each one uses every helper.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
};

use chrono::{DateTime, Duration, Utc};
use jupang::store::{
    pg::admitted_orders::OrderSink,
    redis::{
        RedisStore,
        stock::StockStore,
        streams::{StreamEntry, StreamSink},
    },
};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, json_of, spawn_app_with};

/// An order strategy (`JUPANG_ORDER_STRATEGY`) a test runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// V1: Postgres row locks.
    DbPessimistic,
    /// V2: Redis counters and a stream.
    RedisLua,
}

impl Strategy {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::DbPessimistic => "db-pessimistic",
            Strategy::RedisLua => "redis-lua",
        }
    }

    /// An app running this strategy.
    pub async fn spawn(self) -> TestApp {
        self.spawn_with(|_| {}).await
    }

    /// An app running this strategy after `customize` adjusts its variables.
    pub async fn spawn_with(self, customize: impl FnOnce(&mut BTreeMap<String, String>)) -> TestApp {
        spawn_app_with(|v| {
            v.insert("JUPANG_ORDER_STRATEGY".into(), self.as_str().into());
            customize(v);
        })
        .await
    }
}

/// Defines each test once per order strategy, as `db_pessimistic::<name>` and
/// `redis_lua::<name>`; the body receives the [`Strategy`] under the name given.
macro_rules! for_each_strategy {
    ($( $(#[$attr:meta])+ async fn $name:ident($s:ident: Strategy) $body:block )*) => {
        $( async fn $name($s: crate::fixtures::Strategy) $body )*
        mod db_pessimistic {
            $( $(#[$attr])+ async fn $name() { super::$name(crate::fixtures::Strategy::DbPessimistic).await } )*
        }
        mod redis_lua {
            $( $(#[$attr])+ async fn $name() { super::$name(crate::fixtures::Strategy::RedisLua).await } )*
        }
    };
}
pub(crate) use for_each_strategy;

/// The stock keys and scripts of an app (one connection per app, reused by its test).
pub async fn stock_store(app: &TestApp) -> StockStore {
    static STORES: Mutex<Vec<(String, StockStore)>> = Mutex::new(Vec::new());
    if let Some((_, s)) = STORES.lock().unwrap().iter().find(|(p, _)| *p == app.redis_prefix) {
        return s.clone();
    }
    let url = std::env::var("REDIS_URL").expect("REDIS_URL");
    let redis = RedisStore::connect(&[url.as_str()], &app.redis_prefix).await.expect("connect to Redis");
    let store = StockStore::new(&redis);
    STORES.lock().unwrap().push((app.redis_prefix.clone(), store.clone()));
    store
}

/// Every entry of the app's admission stream.
pub async fn stream_entries(app: &TestApp) -> Vec<StreamEntry> {
    let url = std::env::var("REDIS_URL").expect("REDIS_URL");
    let mut conn = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
    let stream = stock_store(app).await.keys().stream();
    let reply: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg(&stream).arg("-").arg("+").query_async(&mut conn).await.unwrap();
    reply
        .ids
        .into_iter()
        .map(|e| StreamEntry {
            stream: stream.clone(),
            id: e.id,
            fields: e
                .map
                .into_iter()
                .map(|(k, v)| (k, redis::from_redis_value::<String>(v).unwrap()))
                .collect::<HashMap<_, _>>(),
            deliveries: 1,
        })
        .collect()
}

/// Persists everything the admission stream holds, as the consumer would (idempotent: entries
/// already persisted change nothing). A no-op for V1 apps, whose stream stays empty.
pub async fn settle(app: &TestApp) {
    let entries = stream_entries(app).await;
    if entries.is_empty() {
        return;
    }
    let sink = OrderSink::new(stock_store(app).await.keys().stream());
    let mut tx = app.db.begin().await.unwrap();
    sink.persist(&mut tx, &entries).await.expect("the sink persists the admissions");
    tx.commit().await.unwrap();
}

/// The Redis counter of an option (None: not hydrated).
pub async fn avail_of(app: &TestApp, option_id: i64) -> Option<i64> {
    stock_store(app).await.available(&[option_id]).await.unwrap()[0]
}

/// Runs the expiry sweeper once with the clock at `now`; returns how many orders it expired.
pub async fn sweep(app: &TestApp, now: DateTime<Utc>) -> u64 {
    jupang::workers::expiry::sweep(&app.db, &stock_store(app).await, now).await.expect("sweep")
}

/// A product of `category` with one option per `(krw_price, stock)`; `with_usd` also prices each
/// option in USD (krw_price / 10 cents). Returns (product id, option ids).
pub async fn product_in(app: &TestApp, category: &str, options: &[(i64, i32)], with_usd: bool) -> (i64, Vec<i64>) {
    let product_id: i64 = sqlx::query_scalar(
        "INSERT INTO products (category, name_ko, name_en, on_sale) VALUES ($1, '테스트 상품', 'Test product', TRUE) \
         RETURNING id",
    )
    .bind(category)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let mut ids = Vec::new();
    for (i, (price, stock)) in options.iter().enumerate() {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO product_options (product_id, name, stock) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(product_id)
        .bind(format!("option {i}"))
        .bind(stock)
        .fetch_one(&app.db)
        .await
        .unwrap();
        sqlx::query("INSERT INTO option_prices (option_id, currency, amount) VALUES ($1, 'KRW', $2)")
            .bind(id)
            .bind(price)
            .execute(&app.db)
            .await
            .unwrap();
        if with_usd {
            sqlx::query("INSERT INTO option_prices (option_id, currency, amount) VALUES ($1, 'USD', $2)")
                .bind(id)
                .bind(price / 10)
                .execute(&app.db)
                .await
                .unwrap();
        }
        ids.push(id);
    }
    (product_id, ids)
}

/// One KRW-priced option of a new "general" product: its option id.
pub async fn option(app: &TestApp, price: i64, stock: i32) -> i64 {
    product_in(app, "general", &[(price, stock)], false).await.1[0]
}

/// A coupon campaign in the KR market.
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
    /// A FIXED discount with no conditions.
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

    /// A PERCENT discount, optionally capped.
    pub fn percent(percent: i64, cap: Option<i64>) -> CouponSpec {
        CouponSpec { discount_type: "PERCENT", discount_value: percent, max_discount: cap, ..CouponSpec::fixed(1) }
    }
}

/// Creates a coupon campaign; returns its id.
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
    hold(app, c, user_id, Utc::now() + Duration::days(7)).await
}

/// (stock, reserved) of an option (after settling the admission stream).
pub async fn stock_of(app: &TestApp, option_id: i64) -> (i32, i32) {
    settle(app).await;
    sqlx::query_as("SELECT stock, reserved FROM product_options WHERE id = $1")
        .bind(option_id)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// A user's wallet balance.
pub async fn balance_of(app: &TestApp, user_id: i64) -> i64 {
    sqlx::query_scalar("SELECT balance FROM users WHERE id = $1").bind(user_id).fetch_one(&app.db).await.unwrap()
}

/// An order's status (after settling the admission stream).
pub async fn status_of(app: &TestApp, order_id: &str) -> String {
    settle(app).await;
    sqlx::query_scalar("SELECT status FROM orders WHERE id = $1::uuid").bind(order_id).fetch_one(&app.db).await.unwrap()
}

/// (status, used_at is set, order_id) of a held coupon.
pub async fn coupon_state(app: &TestApp, user_coupon_id: Uuid) -> (String, bool, Option<Uuid>) {
    sqlx::query_as("SELECT status, used_at IS NOT NULL, order_id FROM user_coupons WHERE id = $1")
        .bind(user_coupon_id)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// How many rows a table holds (after settling the admission stream).
pub async fn count(app: &TestApp, table: &str) -> i64 {
    settle(app).await;
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&app.db).await.unwrap()
}

/// Payloads of the outbox events of a type, oldest first (after settling the admission stream).
pub async fn events(app: &TestApp, kind: &str) -> Vec<Value> {
    settle(app).await;
    sqlx::query_scalar("SELECT payload FROM outbox_events WHERE type = $1 ORDER BY created_at, id")
        .bind(kind)
        .fetch_all(&app.db)
        .await
        .unwrap()
}

/// Moves an order's expiry to `secs` seconds from now (negative: already due), in Postgres
/// (after settling the admission stream, so a V2 order has its row).
pub async fn set_expiry(app: &TestApp, order_id: &str, secs: i64) {
    settle(app).await;
    sqlx::query("UPDATE orders SET expires_at = now() + make_interval(secs => $2) WHERE id = $1::uuid")
        .bind(order_id)
        .bind(secs as f64)
        .execute(&app.db)
        .await
        .unwrap();
}

/// POST /api/users/{user}/cart.
pub async fn add_to_cart(app: &TestApp, user_id: i64, option_id: i64, quantity: i64) -> Response {
    let body = json!({ "product_option_id": option_id, "quantity": quantity });
    app.send_json(Method::POST, &format!("/api/users/{user_id}/cart"), Some(&app.customer(user_id)), &body).await
}

/// POST /api/orders with explicit items `(option id, quantity)`, not yet sent.
pub fn order_request(app: &TestApp, user_id: i64, items: &[(i64, i64)]) -> RequestBuilder {
    let items: Vec<Value> = items.iter().map(|(o, q)| json!({ "product_option_id": o, "quantity": q })).collect();
    let body = json!({ "user_id": user_id, "items": items });
    app.request(Method::POST, "/api/orders").bearer_auth(app.customer(user_id)).json(&body)
}

/// POST /api/orders with explicit items `(option id, quantity)`.
pub async fn order_items(app: &TestApp, user_id: i64, items: &[(i64, i64)]) -> Response {
    order_request(app, user_id, items).send().await.expect("request")
}

/// POST /api/orders of the user's cart.
pub async fn order_cart(app: &TestApp, user_id: i64) -> Response {
    let body = json!({ "user_id": user_id, "from_cart": true });
    app.send_json(Method::POST, "/api/orders", Some(&app.customer(user_id)), &body).await
}

/// Creates an order of explicit items and returns its id (asserting 201).
pub async fn placed(app: &TestApp, user_id: i64, items: &[(i64, i64)]) -> String {
    let body = json_of(order_items(app, user_id, items).await, 201).await;
    body["order_id"].as_str().unwrap().to_owned()
}

/// POST /api/orders/{id}/payment, not yet sent.
pub fn pay_request(app: &TestApp, user_id: i64, order_id: &str, user_coupon_id: Option<Uuid>) -> RequestBuilder {
    let mut body = json!({ "user_id": user_id });
    if let Some(c) = user_coupon_id {
        body["user_coupon_id"] = json!(c);
    }
    app.request(Method::POST, &format!("/api/orders/{order_id}/payment")).bearer_auth(app.customer(user_id)).json(&body)
}

/// POST /api/orders/{id}/payment.
pub async fn pay(app: &TestApp, user_id: i64, order_id: &str, user_coupon_id: Option<Uuid>) -> Response {
    pay_request(app, user_id, order_id, user_coupon_id).send().await.expect("request")
}

/// Sends every request at the same time, each on its own task, and returns the responses in
/// the order given.
pub async fn send_all(requests: Vec<RequestBuilder>) -> Vec<Response> {
    let handles: Vec<_> = requests.into_iter().map(|r| tokio::spawn(r.send())).collect();
    let mut responses = Vec::with_capacity(handles.len());
    for h in handles {
        responses.push(h.await.expect("request task").expect("request"));
    }
    responses
}

/// POST /api/orders/{id}/cancel as the user.
pub async fn cancel(app: &TestApp, user_id: i64, order_id: &str) -> Response {
    app.request(Method::POST, &format!("/api/orders/{order_id}/cancel"))
        .bearer_auth(app.customer(user_id))
        .send()
        .await
        .unwrap()
}
