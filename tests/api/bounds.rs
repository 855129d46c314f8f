//! The bounds the document declares are the ones the server enforces (issue 14): the price
//! maximum, the audit filters, the actor id, the ticket id's form, and objects read only from
//! JSON objects. Every refusal is 400 `VALIDATION_ERROR` naming the field, and nothing changes.

use jupang::{domain::catalog::MAX_PRICE, http::auth::Role};
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::support::{TestApp, assert_error, json_of, opt, product, spawn_app};

async fn openapi(app: &TestApp) -> Value {
    json_of(app.get("/api-docs/openapi.json").await, 200).await
}

/// Every stored price, in order.
async fn prices(app: &TestApp) -> Vec<(i64, String, i64)> {
    sqlx::query_as("SELECT option_id, currency, amount FROM option_prices ORDER BY option_id, currency")
        .fetch_all(&app.db)
        .await
        .unwrap()
}

async fn field_of(res: Response) -> Value {
    assert_error(res, 400, "VALIDATION_ERROR").await["details"]["field"].clone()
}

fn new_product(krw: i64) -> Value {
    json!({ "name": {"ko": "가격", "en": "Price"}, "category": "food",
            "options": [{ "name": "one", "prices": { "KRW": krw }, "stock": 1 }] })
}

#[tokio::test]
async fn a_price_over_the_declared_maximum_is_refused_on_creation_and_nothing_is_created() {
    let app = spawn_app().await;
    let admin = app.token(1, &[Role::OpsAdmin]);
    let doc = openapi(&app).await;
    let declared = &doc["components"]["schemas"]["CreateOption"]["properties"]["prices"]["additionalProperties"];
    assert_eq!(declared["maximum"], MAX_PRICE);
    assert_eq!(MAX_PRICE, 40_000_000);

    let res = app.send_json(Method::POST, "/api/admin/products", Some(&admin), &new_product(MAX_PRICE + 1)).await;
    assert_eq!(field_of(res).await, "options[0].prices.KRW");
    let products: i64 = sqlx::query_scalar("SELECT count(*) FROM products").fetch_one(&app.db).await.unwrap();
    assert_eq!((products, prices(&app).await), (0, vec![]));

    let res = app.send_json(Method::POST, "/api/admin/products", Some(&admin), &new_product(MAX_PRICE)).await;
    json_of(res, 201).await;
    assert_eq!(prices(&app).await[0].2, MAX_PRICE);
}

#[tokio::test]
async fn a_price_over_the_declared_maximum_is_refused_on_edit_and_the_price_stays() {
    let app = spawn_app().await;
    let (id, options) = product(&app, "Edited", "food", true, &[opt(10_000, 5)]).await;
    let editor = app.token(1, &[Role::InventoryManager]);
    let before = prices(&app).await;
    for (currency, amount) in [("KRW", MAX_PRICE + 1), ("USD", i64::MAX), ("KRW", -1)] {
        let body = json!({ "options": [{ "id": options[0], "prices": { currency: amount } }] });
        let res = app.send_json(Method::PATCH, &format!("/api/admin/products/{id}"), Some(&editor), &body).await;
        assert_eq!(field_of(res).await, format!("options[0].prices.{currency}"), "{amount}");
    }
    // Prices given name a currency (`minProperties: 1`); `null` is no change.
    let body = json!({ "options": [{ "id": options[0], "prices": {} }] });
    let res = app.send_json(Method::PATCH, &format!("/api/admin/products/{id}"), Some(&editor), &body).await;
    assert_eq!(field_of(res).await, "options[0].prices");
    let body = json!({ "options": [{ "id": options[0], "prices": null }] });
    json_of(app.send_json(Method::PATCH, &format!("/api/admin/products/{id}"), Some(&editor), &body).await, 200).await;
    assert_eq!(prices(&app).await, before);
    // The catalog still reads it.
    assert_eq!(json_of(app.get(&format!("/api/products/{id}")).await, 200).await["price"]["amount"], 10_000);
}

#[tokio::test]
async fn the_table_itself_refuses_a_price_over_the_maximum() {
    let app = spawn_app().await;
    let (_, options) = product(&app, "Stored", "food", true, &[opt(10_000, 5)]).await;
    let stored = sqlx::query("UPDATE option_prices SET amount = $2 WHERE option_id = $1 AND currency = 'KRW'")
        .bind(options[0])
        .bind(MAX_PRICE + 1)
        .execute(&app.db)
        .await;
    let e = stored.expect_err("a price over the maximum was stored");
    assert!(e.to_string().contains("option_prices_amount_max"), "{e}");
    assert_eq!(prices(&app).await[0].2, 10_000);
}

#[tokio::test]
async fn audit_filters_past_their_declared_length_and_actor_0_are_refused_naming_the_parameter() {
    let app = spawn_app().await;
    let admin = app.token(1, &[Role::OpsAdmin]);
    let doc = openapi(&app).await;
    let params = doc["paths"]["/api/admin/audit"]["get"]["parameters"].as_array().unwrap().clone();
    let declared = |name: &str| params.iter().find(|p| p["name"] == name).unwrap()["schema"].clone();
    assert_eq!(declared("entity_type")["maxLength"], 100);
    assert_eq!(declared("entity_id")["maxLength"], 100);
    assert_eq!(declared("actor")["minimum"], 1);
    let entries = || async {
        let page = json_of(app.request(Method::GET, "/api/admin/audit").bearer_auth(&admin).send().await.unwrap(), 200);
        page.await["total"].as_i64().unwrap()
    };
    let total = entries().await;

    let long = "x".repeat(101);
    for (query, field) in [
        (format!("entity_type={long}"), "entity_type"),
        (format!("entity_id={long}"), "entity_id"),
        ("actor=0".to_owned(), "actor"),
        ("actor=-5".to_owned(), "actor"),
    ] {
        let res = app.request(Method::GET, &format!("/api/admin/audit?{query}")).bearer_auth(&admin).send().await;
        assert_eq!(field_of(res.unwrap()).await, field, "{query}");
    }
    // Exactly 100 characters is a filter like any other.
    let url = format!("/api/admin/audit?entity_id={}", "9".repeat(100));
    let page = json_of(app.request(Method::GET, &url).bearer_auth(&admin).send().await.unwrap(), 200).await;
    assert_eq!(page["total"], 0);
    assert_eq!(entries().await, total);
}

#[tokio::test]
async fn a_ticket_id_not_of_the_declared_form_is_refused_and_the_real_ticket_still_polls() {
    let app = spawn_app().await;
    let (product_id, _) = product(&app, "Room", "food", true, &[opt(1_000, 5)]).await;
    let admin = app.token(1, &[Role::OpsAdmin]);
    let room = json!({ "enabled": true, "admit_per_second": 1, "max_active": 1, "pass_ttl_secs": 60,
                       "opens_at": chrono::Utc::now() + chrono::TimeDelta::hours(1) });
    let event = format!("product/{product_id}");
    let res = app.send_json(Method::PUT, &format!("/api/admin/waiting-rooms/{event}"), Some(&admin), &room).await;
    json_of(res, 200).await;
    let user = app.create_user("KR", 0).await;
    let token = app.customer(user);
    let entered = app.request(Method::POST, &format!("/api/waiting-rooms/{event}/tickets")).bearer_auth(&token);
    let ticket = json_of(entered.send().await.unwrap(), 201).await["ticket_id"].as_str().unwrap().to_owned();

    let doc = openapi(&app).await;
    let params = &doc["paths"]["/api/waiting-rooms/{event_type}/{event_id}/tickets/{ticket_id}"]["get"]["parameters"];
    let declared = params.as_array().unwrap().iter().find(|p| p["name"] == "ticket_id").unwrap()["schema"].clone();
    let pattern = declared["pattern"].as_str().unwrap();
    assert_eq!(pattern, jupang::domain::waiting_room::TICKET_ID_PATTERN);
    assert!(ticket.len() <= declared["maxLength"].as_u64().unwrap() as usize);

    let (seq, mac) = ticket.split_once('-').unwrap();
    for bad in [format!("0{seq}-{mac}"), format!("{seq}-{}", mac.to_uppercase()), format!("{seq}-{mac}0"), "x".into()] {
        let res = app.request(Method::GET, &format!("/api/waiting-rooms/{event}/tickets/{bad}")).bearer_auth(&token);
        assert_eq!(field_of(res.send().await.unwrap()).await, "ticket_id", "{bad}");
    }
    // The parameter named is the one that is wrong, whichever it is.
    let too_large = format!("{}0.0", i64::MAX);
    for (path, field) in [
        (format!("coupon/{too_large}/tickets/{ticket}"), "event_id"),
        (format!("coupon/x/tickets/{ticket}"), "event_id"),
        (format!("coupons/5.0/tickets/{ticket}"), "event_type"),
        (format!("coupons/5/tickets/{ticket}"), "event_type"),
    ] {
        let res = app.request(Method::GET, &format!("/api/waiting-rooms/{path}")).bearer_auth(&token);
        assert_eq!(field_of(res.send().await.unwrap()).await, field, "{path}");
    }
    // Of the declared form but not this user's ticket: not found, not malformed.
    let forged = format!("{seq}-{}", "0".repeat(24));
    let res = app.request(Method::GET, &format!("/api/waiting-rooms/{event}/tickets/{forged}")).bearer_auth(&token);
    assert_error(res.send().await.unwrap(), 404, "TICKET_NOT_FOUND").await;
    let polled = app.request(Method::GET, &format!("/api/waiting-rooms/{event}/tickets/{ticket}")).bearer_auth(&token);
    let polled = json_of(polled.send().await.unwrap(), 200).await;
    assert_eq!((polled["ticket_id"].as_str(), polled["status"].as_str()), (Some(ticket.as_str()), Some("WAITING")));
}

#[tokio::test]
async fn an_array_where_an_object_is_declared_is_refused_naming_the_field_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.token(1, &[Role::OpsAdmin]);
    // The body itself: serde alone reads `["Lee", "KR"]` as `{name, market}`.
    let res = app.send_json(Method::POST, "/api/admin/users", Some(&admin), &json!(["Lee", "KR"])).await;
    assert_eq!(field_of(res).await, "body");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&app.db).await.unwrap();
    assert_eq!(users, 0);

    // A nested object: `"name": ["새", "New"]` would have renamed the product.
    let (id, _) = product(&app, "Kept", "food", true, &[opt(1_000, 5)]).await;
    for (body, field) in [
        (json!({ "name": ["새", "New"] }), "name"),
        (json!({ "description": ["새", "New"] }), "description"),
        (json!({ "options": [[1, "x"]] }), "options[0]"),
    ] {
        let res = app.send_json(Method::PATCH, &format!("/api/admin/products/{id}"), Some(&admin), &body).await;
        assert_eq!(field_of(res).await, field, "{body}");
    }
    let name: (String, String) = sqlx::query_as("SELECT name_ko, name_en FROM products WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(name, ("한국어 Kept".to_owned(), "Kept".to_owned()));
}
