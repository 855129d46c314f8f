//! Catalog fixtures written straight to the database: products with their options and prices,
//! and past sales. Texts derive from the English name given: the Korean name is
//! "한국어 <name>", the descriptions "설명 <name>" and "About <name>", the options "option 0",
//! "option 1"... so a test can tell which language it was answered in.

use serde_json::Value;

use super::{app::TestApp, http::json_of};

/// An option to insert: prices per currency (None: not sold there), stock and reservations.
#[derive(Debug, Clone, Copy)]
pub struct Opt {
    /// Price in KRW.
    pub krw: Option<i64>,
    /// Price in US cents.
    pub usd: Option<i64>,
    /// Units in stock.
    pub stock: i32,
    /// Units held by orders.
    pub reserved: i32,
}

/// A KRW-and-USD option (a tenth of the KRW price in US cents) with stock and nothing reserved.
pub fn opt(krw: i64, stock: i32) -> Opt {
    Opt { krw: Some(krw), usd: Some(krw / 10), stock, reserved: 0 }
}

/// A KRW-only option with stock and nothing reserved.
pub fn krw_opt(krw: i64, stock: i32) -> Opt {
    Opt { usd: None, ..opt(krw, stock) }
}

/// Inserts a product with options; returns its id and its options' ids.
pub async fn product(app: &TestApp, name_en: &str, category: &str, on_sale: bool, opts: &[Opt]) -> (i64, Vec<i64>) {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO products (category, name_ko, name_en, description_ko, description_en, image_url, on_sale)
         VALUES ($1, '한국어 ' || $2, $2, '설명 ' || $2, 'About ' || $2, 'https://img.jupang.example/p/x.jpg', $3)
         RETURNING id",
    )
    .bind(category)
    .bind(name_en)
    .bind(on_sale)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let mut option_ids = Vec::new();
    for (i, o) in opts.iter().enumerate() {
        let option_id: i64 = sqlx::query_scalar(
            "INSERT INTO product_options (product_id, name, stock, reserved) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(id)
        .bind(format!("option {i}"))
        .bind(o.stock)
        .bind(o.reserved)
        .fetch_one(&app.db)
        .await
        .unwrap();
        for (currency, amount) in [("KRW", o.krw), ("USD", o.usd)] {
            if let Some(amount) = amount {
                sqlx::query("INSERT INTO option_prices (option_id, currency, amount) VALUES ($1, $2, $3)")
                    .bind(option_id)
                    .bind(currency)
                    .bind(amount)
                    .execute(&app.db)
                    .await
                    .unwrap();
            }
        }
        option_ids.push(option_id);
    }
    (id, option_ids)
}

/// A plain on-sale "electronics" product with one option priced `krw` (and a tenth of it in US
/// cents); returns the product id.
pub async fn simple(app: &TestApp, name_en: &str, krw: i64, stock: i32) -> i64 {
    product(app, name_en, "electronics", true, &[opt(krw, stock)]).await.0
}

/// An on-sale "Test product" of `category` with one option per `(krw_price, stock)`; `with_usd`
/// also prices each option in USD. Returns (product id, option ids).
pub async fn product_in(app: &TestApp, category: &str, options: &[(i64, i32)], with_usd: bool) -> (i64, Vec<i64>) {
    let opts: Vec<Opt> =
        options.iter().map(|&(krw, stock)| if with_usd { opt(krw, stock) } else { krw_opt(krw, stock) }).collect();
    product(app, "Test product", category, true, &opts).await
}

/// One KRW-priced option of a new "general" product: its option id.
pub async fn option(app: &TestApp, price: i64, stock: i32) -> i64 {
    product_in(app, "general", &[(price, stock)], false).await.1[0]
}

/// `GET /api/products{query}` as JSON, asserting 200.
pub async fn products_page(app: &TestApp, query: &str) -> Value {
    json_of(app.get(&format!("/api/products{query}")).await, 200).await
}

/// The product ids of a page of `GET /api/products`, in order.
pub fn product_ids(page: &Value) -> Vec<i64> {
    page["items"].as_array().unwrap().iter().map(|i| i["id"].as_i64().unwrap()).collect()
}

/// Sets a product's creation time to `hours_ago` hours before now.
pub async fn created_hours_ago(app: &TestApp, product_id: i64, hours_ago: i32) {
    sqlx::query("UPDATE products SET created_at = now() - make_interval(hours => $2) WHERE id = $1")
        .bind(product_id)
        .bind(hours_ago)
        .execute(&app.db)
        .await
        .unwrap();
}

/// Records a past sale of `quantity` units of an option: an order of `status` by a new buyer of
/// `market`, created `hours_ago` hours ago and paid then unless it never was (PENDING,
/// CANCELLED, EXPIRED).
pub async fn sale(app: &TestApp, option_id: i64, quantity: i32, status: &str, market: &str, hours_ago: f64) {
    let buyer = app.create_user(market, 0).await;
    let currency = if market == "US" { "USD" } else { "KRW" };
    let paid = !matches!(status, "PENDING" | "CANCELLED" | "EXPIRED");
    let order = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO orders (id, user_id, market, currency, status, total_amount, final_amount, expires_at,
                             created_at, paid_at)
         VALUES ($1, $2, $3, $4, $5, 1000 * $6, 1000 * $6, now() + interval '10 minutes',
                 now() - make_interval(secs => $7 * 3600),
                 CASE WHEN $8 THEN now() - make_interval(secs => $7 * 3600) END)",
    )
    .bind(order)
    .bind(buyer)
    .bind(market)
    .bind(currency)
    .bind(status)
    .bind(i64::from(quantity))
    .bind(hours_ago)
    .bind(paid)
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO order_items (order_id, product_id, option_id, product_name, option_name, unit_price,
                                  quantity, subtotal)
         SELECT $1, product_id, id, 'p', name, 1000, $3, 1000 * $3 FROM product_options WHERE id = $2",
    )
    .bind(order)
    .bind(option_id)
    .bind(quantity)
    .execute(&app.db)
    .await
    .unwrap();
}

/// `PUT /api/admin/fx-rates {"USD/KRW": rate}` as an `ops_admin`, asserting the rate is in force.
pub async fn set_fx_rate(app: &TestApp, rate: &str) {
    let token = app.token(1, &[jupang::http::auth::Role::OpsAdmin]);
    let body = serde_json::json!({ "USD/KRW": rate });
    let res = app.send_json(reqwest::Method::PUT, "/api/admin/fx-rates", Some(&token), &body).await;
    assert_eq!(json_of(res, 200).await, body);
}
