//! Product administration: `POST /api/admin/products` (seed 002 2.2, 2.6).

use jupang::http::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, assert_error, json_of, spawn_app};

/// A change that makes the valid [`body`] invalid.
type Mutation = fn(&mut Value);

fn body() -> Value {
    json!({
        "name": {"ko": "무선 마우스", "en": "Wireless Mouse"},
        "description": {"ko": "조용한 클릭", "en": "Silent clicks"},
        "category": "electronics",
        "image_url": "https://img.jupang.example/p/wireless-mouse.jpg",
        "on_sale": true,
        "options": [
            {"name": "Black", "prices": {"KRW": 50000, "USD": 3999}, "stock": 12},
            {"name": "White", "prices": {"KRW": 45000}, "stock": 3}
        ]
    })
}

async fn create(app: &TestApp, token: Option<&str>, body: &Value) -> reqwest::Response {
    app.send_json(Method::POST, "/api/admin/products", token, body).await
}

async fn counts(app: &TestApp) -> (i64, i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM products), (SELECT count(*) FROM product_options),
                (SELECT count(*) FROM option_prices)",
    )
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_inventory_manager_creates_a_product_and_gets_201_with_ids_and_the_detail_shape() {
    let app = spawn_app().await;
    let token = app.token(1, &[Role::InventoryManager]);
    let created = json_of(create(&app, Some(&token), &body()).await, 201).await;
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["name"], "무선 마우스");
    assert_eq!(created["description"], "조용한 클릭");
    assert_eq!(created["category"], "electronics");
    assert_eq!(created["image_url"], "https://img.jupang.example/p/wireless-mouse.jpg");
    assert_eq!(created["on_sale"], true);
    assert_eq!(created["price"], json!({"amount": 45000, "currency": "KRW"}));
    assert_eq!(created["stock_status"], "IN_STOCK", "12 + 3 available in KR");
    let options = created["options"].as_array().unwrap();
    assert_eq!(options.len(), 2);
    assert_eq!(options[0]["name"], "Black");
    assert_eq!(options[0]["prices"], json!({"KRW": 50000, "USD": 3999}));
    assert_eq!(options[1]["available"], 3);
    assert_eq!(options[1]["stock_status"], "LOW_STOCK");

    // The detail route shows the same product, options and ids.
    let detail = json_of(app.get(&format!("/api/products/{id}")).await, 200).await;
    let option_ids = |v: &Value| v["options"].as_array().unwrap().iter().map(|o| o["id"].clone()).collect::<Vec<_>>();
    assert_eq!(option_ids(&detail), option_ids(&created));
    assert_eq!(detail["price"], created["price"]);
    // In the US only the option priced in USD is sold.
    let us = json_of(app.get(&format!("/api/products/{id}?market=US")).await, 200).await;
    assert_eq!(option_ids(&us), [created["options"][0]["id"].clone()]);
    assert_eq!(us["stock_status"], "IN_STOCK");
    let en = app
        .request(Method::POST, "/api/admin/products")
        .bearer_auth(&token)
        .header("accept-language", "en")
        .json(&body())
        .send()
        .await
        .unwrap();
    let en = json_of(en, 201).await;
    assert_eq!(en["name"], "Wireless Mouse");
    assert_eq!(en["market"], "US");
    assert_eq!(en["price"], json!({"amount": 3999, "currency": "USD"}));
    assert_eq!(en["options"][1]["price"], Value::Null, "White is not sold in the US");
}

#[tokio::test]
async fn creating_a_product_records_its_initial_stock_as_stock_changed_events() {
    let app = spawn_app().await;
    let created = json_of(create(&app, Some(&app.token(1, &[Role::OpsAdmin])), &body()).await, 201).await;
    let events: Vec<Value> =
        sqlx::query_scalar("SELECT payload FROM outbox_events WHERE type = 'stock.changed' ORDER BY created_at, id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["product_option_id"], created["options"][0]["id"]);
    assert_eq!(events[0]["delta"], 12);
    assert_eq!(events[1]["delta"], 3);
    for e in &events {
        let why = (e["movement"].as_str(), e["reason"].as_str(), e["reserved_delta"].as_i64());
        assert_eq!(why, (Some("adjustment"), Some("product created"), Some(0)), "{e}");
    }
}

#[tokio::test]
async fn a_product_created_off_sale_is_not_listed() {
    let app = spawn_app().await;
    let mut hidden = body();
    hidden["on_sale"] = json!(false);
    let created = json_of(create(&app, Some(&app.token(1, &[Role::InventoryManager])), &hidden).await, 201).await;
    assert_eq!(created["on_sale"], false);
    let page = json_of(app.get("/api/products").await, 200).await;
    assert_eq!(page["total"], 0);
    assert_error(app.get(&format!("/api/products/{}", created["id"])).await, 404, "PRODUCT_NOT_FOUND").await;
}

#[tokio::test]
async fn product_creation_is_401_without_a_token_and_403_without_the_inventory_manager_role() {
    let app = spawn_app().await;
    assert_error(create(&app, None, &body()).await, 401, "UNAUTHENTICATED").await;
    assert_error(create(&app, Some("not-a-token"), &body()).await, 401, "UNAUTHENTICATED").await;
    for role in [Role::Customer, Role::MarketingManager, Role::CsAgent, Role::DataPlatform] {
        assert_error(create(&app, Some(&app.token(1, &[role])), &body()).await, 403, "FORBIDDEN").await;
    }
    assert_eq!(counts(&app).await, (0, 0, 0));
    json_of(create(&app, Some(&app.token(1, &[Role::OpsAdmin])), &body()).await, 201).await;
    assert_eq!(counts(&app).await, (1, 2, 3));
}

#[tokio::test]
async fn invalid_products_are_400_validation_error_naming_the_field_and_insert_nothing() {
    let app = spawn_app().await;
    let token = app.token(1, &[Role::InventoryManager]);
    let cases: Vec<(&str, Mutation)> = vec![
        ("options", |b| b["options"] = json!([])),
        ("options", |b| b.as_object_mut().unwrap().remove("options").map(drop).unwrap()),
        ("name.ko", |b| b["name"]["ko"] = json!("  ")),
        ("name.en", |b| b["name"]["en"] = json!("")),
        ("name.en", |b| b["name"] = json!({"ko": "이름"})),
        ("category", |b| b["category"] = json!("Electronics")),
        ("category", |b| b["category"] = json!("")),
        ("image_url", |b| b["image_url"] = json!("ftp://x/y.jpg")),
        ("options[1].name", |b| b["options"][1]["name"] = json!("")),
        ("options[1].name", |b| b["options"][1]["name"] = json!("Black")),
        ("options[0].prices", |b| b["options"][0]["prices"] = json!({})),
        ("options[0].prices.EUR", |b| b["options"][0]["prices"] = json!({"EUR": 10})),
        ("options[1].prices.KRW", |b| b["options"][1]["prices"]["KRW"] = json!(-1)),
        ("options[1].prices.KRW", |b| b["options"][1]["prices"]["KRW"] = json!(1.5)),
        ("options[0].stock", |b| b["options"][0]["stock"] = json!(-5)),
        ("options[0].stock", |b| b["options"][0]["stock"] = json!(3_000_000_000i64)),
        ("options[0].colour", |b| b["options"][0]["colour"] = json!("red")),
        ("body", |b| *b = json!("a product")),
    ];
    for (field, mutate) in cases {
        let mut bad = body();
        mutate(&mut bad);
        let res = create(&app, Some(&token), &bad).await;
        let error = assert_error(res, 400, "VALIDATION_ERROR").await;
        assert_eq!(error["details"]["field"], field, "{error}");
    }
    // The last option is invalid only after two good ones: nothing is half-inserted.
    let mut late = body();
    late["options"].as_array_mut().unwrap().push(json!({"name": "Red", "prices": {"USD": -1}, "stock": 1}));
    assert_error(create(&app, Some(&token), &late).await, 400, "VALIDATION_ERROR").await;
    assert_eq!(counts(&app).await, (0, 0, 0));
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox_events").fetch_one(&app.db).await.unwrap();
    assert_eq!(outbox, 0);
}
