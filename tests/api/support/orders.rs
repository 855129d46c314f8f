//! Orders and payment: the strategy a test runs under, thin HTTP helpers for cart, order and
//! payment calls, and readers of what Postgres holds.
//!
//! Order tests run once per order strategy ([`for_each_strategy!`]). With `redis-lua` an order
//! reaches Postgres through the admission stream; the readers below first [`settle`] the stream
//! (persist what it holds, as the consumer would), so one assertion about Postgres serves both.

use std::collections::BTreeMap;

use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    app::{TestApp, spawn_app_with, spawn_child_app_with},
    http::json_of,
    stock::settle,
};

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

    /// An app running this strategy as a child `jupang serve`, with metrics of its own.
    pub async fn spawn_child(self) -> TestApp {
        spawn_child_app_with(|v| {
            v.insert("JUPANG_ORDER_STRATEGY".into(), self.as_str().into());
        })
        .await
    }
}

/// Defines each test once per order strategy, as `db_pessimistic::<name>` and
/// `redis_lua::<name>`; the body receives the [`Strategy`] under the name given.
macro_rules! for_each_strategy {
    ($( $(#[$attr:meta])+ async fn $name:ident($s:ident: Strategy) $body:block )*) => {
        $( async fn $name($s: crate::support::Strategy) $body )*
        mod db_pessimistic {
            $( $(#[$attr])+ async fn $name() { super::$name(crate::support::Strategy::DbPessimistic).await } )*
        }
        mod redis_lua {
            $( $(#[$attr])+ async fn $name() { super::$name(crate::support::Strategy::RedisLua).await } )*
        }
    };
}
pub(crate) use for_each_strategy;

/// (stock, reserved) of an option (after settling the admission stream).
pub async fn stock_of(app: &TestApp, option_id: i64) -> (i32, i32) {
    settle(app).await;
    // Exact at any moment: the option row plus the ledger movements not folded yet.
    sqlx::query_as("SELECT stock::int, reserved::int FROM option_stock WHERE id = $1")
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

/// POST /api/orders/{id}/cancel as the user, not yet sent.
pub fn cancel_request(app: &TestApp, user_id: i64, order_id: &str) -> RequestBuilder {
    app.request(Method::POST, &format!("/api/orders/{order_id}/cancel")).bearer_auth(app.customer(user_id))
}

/// POST /api/orders/{id}/cancel as the user.
pub async fn cancel(app: &TestApp, user_id: i64, order_id: &str) -> Response {
    cancel_request(app, user_id, order_id).send().await.expect("request")
}
