//! The catalog across markets and languages: the market chooses the currency and what is sold,
//! the language chooses the texts (seed 000 US-001..003).

use reqwest::Method;
use serde_json::Value;

use crate::support::{TestApp, json_of, krw_opt, product, product_ids, products_page, simple, spawn_app};

/// GET a path with optional headers: `Accept-Language` and a bearer token.
async fn get(app: &TestApp, path: &str, lang: Option<&str>, token: Option<&str>) -> reqwest::Response {
    let mut req = app.request(Method::GET, path);
    if let Some(lang) = lang {
        req = req.header("accept-language", lang);
    }
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_market_parameter_chooses_the_currency_and_hides_products_not_priced_there() {
    let app = spawn_app().await;
    let both = simple(&app, "Both", 50_000, 10).await;
    let kr_only = krw_opt(9_000, 10);
    let (kimchi, _) = product(&app, "Kimchi", "food", true, &[kr_only]).await;
    let kr = products_page(&app, "?market=KR&sort=price_asc").await;
    assert_eq!(product_ids(&kr), [kimchi, both]);
    assert_eq!(kr["items"][1]["price"], serde_json::json!({"amount": 50000, "currency": "KRW"}));
    let us = products_page(&app, "?market=us").await;
    assert_eq!(product_ids(&us), [both]);
    assert_eq!(us["items"][0]["price"], serde_json::json!({"amount": 5000, "currency": "USD"}));
    let detail = json_of(app.get(&format!("/api/products/{both}?market=US")).await, 200).await;
    assert_eq!(detail["options"][0]["price"]["currency"], "USD");
}

#[tokio::test]
async fn without_a_market_parameter_the_callers_market_wins_over_the_language() {
    let app = spawn_app().await;
    simple(&app, "Both", 50_000, 10).await;
    let us_user = app.create_user("US", 0).await;
    let kr_user = app.create_user("KR", 0).await;
    let page = json_of(get(&app, "/api/products", Some("ko-KR"), Some(&app.customer(us_user))).await, 200).await;
    assert_eq!(page["items"][0]["price"]["currency"], "USD");
    let page = json_of(get(&app, "/api/products", Some("en-US"), Some(&app.customer(kr_user))).await, 200).await;
    assert_eq!(page["items"][0]["price"]["currency"], "KRW");
    // An explicit parameter beats the caller's market.
    let page = json_of(get(&app, "/api/products?market=KR", None, Some(&app.customer(us_user))).await, 200).await;
    assert_eq!(page["items"][0]["price"]["currency"], "KRW");
}

#[tokio::test]
async fn without_market_or_caller_accept_language_implies_the_market_else_kr() {
    let app = spawn_app().await;
    let id = simple(&app, "Both", 50_000, 10).await;
    let currency = |v: Value| v["items"][0]["price"]["currency"].clone();
    assert_eq!(currency(json_of(get(&app, "/api/products", Some("en-US,en;q=0.9"), None).await, 200).await), "USD");
    assert_eq!(currency(json_of(get(&app, "/api/products", Some("ko"), None).await, 200).await), "KRW");
    assert_eq!(currency(json_of(get(&app, "/api/products", None, None).await, 200).await), "KRW");
    // A token of a user without a profile (staff) falls through to the language.
    let staff = app.customer(987_654);
    assert_eq!(currency(json_of(get(&app, "/api/products", Some("en"), Some(&staff)).await, 200).await), "USD");
    let detail = json_of(get(&app, &format!("/api/products/{id}"), Some("en"), None).await, 200).await;
    assert_eq!(detail["price"]["currency"], "USD");
}

#[tokio::test]
async fn product_text_follows_accept_language_whatever_the_market() {
    let app = spawn_app().await;
    let id = simple(&app, "Lamp", 50_000, 10).await;
    let detail = json_of(get(&app, &format!("/api/products/{id}?market=KR"), Some("en"), None).await, 200).await;
    assert_eq!((detail["name"].as_str(), detail["description"].as_str()), (Some("Lamp"), Some("About Lamp")));
    assert_eq!(detail["price"]["currency"], "KRW");
    let page = json_of(get(&app, "/api/products?market=US", Some("ko"), None).await, 200).await;
    assert_eq!(page["items"][0]["name"], "한국어 Lamp");
    assert_eq!(page["items"][0]["price"]["currency"], "USD");
}
