//! `PATCH /admin/products/{id}`: an edit is served by every instance within a second (catalog
//! reads and order pricing), an order already PENDING keeps its price, taking a product off sale
//! stops orders (V1) and admissions (V2) at once, and a bad edit changes nothing.

use std::time::{Duration, Instant};

use jupang::http::auth::Role;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::support::{
    TestApp, assert_error, balance_of, count, for_each_strategy, json_of, opt, order_items, pay, product,
    serving_sibling, serving_sibling_with, spawn_app,
};

/// The id in tokens of the inventory manager who edits.
const EDITOR: i64 = 910_001;

async fn edit(app: &TestApp, product_id: i64, body: &Value) -> Response {
    let token = app.token(EDITOR, &[Role::InventoryManager]);
    app.send_json(Method::PATCH, &format!("/api/admin/products/{product_id}"), Some(&token), body).await
}

/// An order of one unit sent to the instance at `base` for `user`.
async fn order_on(app: &TestApp, base: &str, user: i64, option_id: i64) -> Response {
    let body = json!({ "user_id": user, "items": [{ "product_option_id": option_id, "quantity": 1 }] });
    app.client.post(format!("{base}/api/orders")).bearer_auth(app.customer(user)).json(&body).send().await.unwrap()
}

async fn detail_on(app: &TestApp, base: &str, product_id: i64) -> Response {
    app.client.get(format!("{base}/api/products/{product_id}")).send().await.unwrap()
}

#[tokio::test]
async fn a_price_change_on_one_instance_is_seen_by_a_read_and_an_order_on_another_within_a_second() {
    let app = spawn_app().await;
    let (id, options) = product(&app, "Edited", "electronics", true, &[opt(10_000, 50)]).await;
    let (b, stop) = serving_sibling(&app).await;
    let users = app.create_users(2, "KR", 1_000_000).await;
    // B has the product page and the option's price in memory before the edit.
    assert_eq!(json_of(detail_on(&app, &b, id).await, 200).await["price"]["amount"], 10_000);
    let pending = json_of(order_on(&app, &b, users[0], options[0]).await, 201).await;
    assert_eq!(pending["items"][0]["unit_price"]["amount"], 10_000);

    let body = json!({ "options": [{ "id": options[0], "prices": { "KRW": 12_000 } }], "reason": "new price" });
    let edited = json_of(edit(&app, id, &body).await, 200).await;
    assert_eq!(edited["options"][0]["prices"], json!({ "KRW": 12_000, "USD": 1_000 }));
    let started = Instant::now();
    loop {
        let page = json_of(detail_on(&app, &b, id).await, 200).await;
        if page["price"]["amount"] == 12_000 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "B still shows {page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let order = json_of(order_on(&app, &b, users[1], options[0]).await, 201).await;
    assert_eq!(order["items"][0]["unit_price"]["amount"], 12_000, "B priced the order with the old price");
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());

    // The order placed before the edit keeps the price it captured, and is charged it.
    let order_id = pending["order_id"].as_str().unwrap();
    let paid = json_of(pay(&app, users[0], order_id, None).await, 200).await;
    assert_eq!(paid["final_amount"]["amount"], 10_000, "{paid}");
    assert_eq!(balance_of(&app, users[0]).await, 990_000);
    stop.cancel();
}

for_each_strategy! {
#[tokio::test]
async fn taking_a_product_off_sale_stops_orders_at_once_here_and_within_a_second_elsewhere(s: Strategy) {
    let app = s.spawn().await;
    let (id, options) = product(&app, "Recalled", "toys", true, &[opt(5_000, 50)]).await;
    let (b, stop) = serving_sibling_with(&app, |v| {
        v.insert("JUPANG_ORDER_STRATEGY".into(), s.as_str().into());
    })
    .await;
    let users = app.create_users(3, "KR", 1_000_000).await;
    json_of(order_on(&app, &b, users[0], options[0]).await, 201).await;
    json_of(order_items(&app, users[0], &[(options[0], 1)]).await, 201).await;

    json_of(edit(&app, id, &json!({ "on_sale": false })).await, 200).await;
    // On the instance that made the change: refused the moment the edit is answered.
    assert_error(order_items(&app, users[1], &[(options[0], 1)]).await, 404, "PRODUCT_OPTION_NOT_FOUND").await;
    assert_error(app.get(&format!("/api/products/{id}")).await, 404, "PRODUCT_NOT_FOUND").await;
    let started = Instant::now();
    loop {
        let res = order_on(&app, &b, users[2], options[0]).await;
        if res.status() == 404 {
            assert_error(res, 404, "PRODUCT_OPTION_NOT_FOUND").await;
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "B still admits orders: {}", res.status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_error(detail_on(&app, &b, id).await, 404, "PRODUCT_NOT_FOUND").await;
    stop.cancel();
}
}

#[tokio::test]
async fn names_description_category_picture_and_option_names_change_and_the_catalog_shows_them() {
    let app = spawn_app().await;
    let (id, options) = product(&app, "Old name", "electronics", true, &[opt(1_000, 5)]).await;
    assert_eq!(json_of(app.get(&format!("/api/products/{id}")).await, 200).await["name"], "한국어 Old name");
    let body = json!({
        "name": { "ko": " 새 이름 " }, "description": { "en": "" }, "category": "home-living", "image_url": null,
        "options": [{ "id": options[0], "name": "Large" }],
    });
    let edited = json_of(edit(&app, id, &body).await, 200).await;
    assert_eq!((edited["name_ko"].as_str(), edited["name_en"].as_str()), (Some("새 이름"), Some("Old name")));
    assert_eq!((edited["description_en"].as_str(), edited["image_url"].is_null()), (Some(""), true));
    let page = json_of(app.get(&format!("/api/products/{id}")).await, 200).await;
    assert_eq!((page["name"].as_str(), page["category"].as_str()), (Some("새 이름"), Some("home-living")));
    assert_eq!(
        (page["options"][0]["id"].as_i64(), page["options"][0]["name"].as_str()),
        (Some(options[0]), Some("Large"))
    );
}

#[tokio::test]
async fn a_bad_edit_is_400_naming_the_field_and_changes_nothing() {
    let app = spawn_app().await;
    let (id, options) = product(&app, "Kept", "food", true, &[opt(1_000, 5), opt(2_000, 5)]).await;
    let (_, others) = product(&app, "Other", "food", true, &[opt(1_000, 5)]).await;
    let cases = [
        (json!({ "category": "Food" }), "category"),
        (json!({ "name": { "en": "   " } }), "name.en"),
        (json!({ "image_url": "ftp://x" }), "image_url"),
        (json!({ "options": [{ "id": others[0], "name": "x" }] }), "options[0].id"),
        (json!({ "options": [{ "id": options[1], "name": "option 0" }] }), "options[0].name"),
        (json!({ "options": [{ "id": options[0], "prices": { "KRW": -1 } }] }), "options[0].prices.KRW"),
        (json!({ "options": [{ "id": options[0], "prices": { "EUR": 1 } }] }), "options[0].prices.EUR"),
        (json!({ "on_sale": false, "reason": " " }), "reason"),
    ];
    for (body, field) in cases {
        let error = assert_error(edit(&app, id, &body).await, 400, "VALIDATION_ERROR").await;
        assert_eq!(error["details"]["field"], field, "{body}: {error}");
    }
    assert_error(edit(&app, 987_654, &json!({ "on_sale": false })).await, 404, "PRODUCT_NOT_FOUND").await;
    let marketer = app.token(EDITOR, &[Role::MarketingManager]);
    let res = app.send_json(Method::PATCH, &format!("/api/admin/products/{id}"), Some(&marketer), &json!({})).await;
    assert_error(res, 403, "FORBIDDEN").await;
    let page = json_of(app.get(&format!("/api/products/{id}")).await, 200).await;
    assert_eq!((page["name"].as_str(), page["category"].as_str()), (Some("한국어 Kept"), Some("food")));
    assert_eq!(page["options"][0]["price"]["amount"], 1_000);
    assert_eq!(count(&app, "audit_log").await, 0, "a refused edit left an audit entry");
}
