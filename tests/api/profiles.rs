//! Profiles and language (api.md "Guests and users"): the profile routes, messages and coupon
//! names that follow the caller's stored language without `Accept-Language` (the header wins),
//! and a language change reaching another instance.

use jupang::http::auth::Role;
use reqwest::{Method, Response};
use serde_json::json;
use uuid::Uuid;

use crate::support::{
    TestApp, add_to_cart, assert_error, create_coupon, eventually, issue, json_of, manager, option, sibling, spawn_app,
};

async fn set_language(app: &TestApp, user_id: i64, language: &str) -> Response {
    let body = json!({ "language": language });
    app.send_json(Method::PATCH, &format!("/api/users/{user_id}"), Some(&app.customer(user_id)), &body).await
}

/// An error answer to `user_id` (an order that does not exist), optionally with `Accept-Language`.
async fn error_message(base: &str, app: &TestApp, user_id: i64, accept: Option<&str>) -> String {
    let mut req = app.client.get(format!("{base}/api/orders/{}", Uuid::now_v7())).bearer_auth(app.customer(user_id));
    if let Some(a) = accept {
        req = req.header("Accept-Language", a);
    }
    let body = assert_error(req.send().await.unwrap(), 404, "ORDER_NOT_FOUND").await;
    body["message"].as_str().unwrap().to_owned()
}

const KO: &str = "주문을 찾을 수 없습니다";
const EN: &str = "Order not found";

#[tokio::test]
async fn a_profile_is_read_by_its_user_and_staff_and_changed_by_its_user() {
    let app = spawn_app().await;
    let (user, other) = (app.create_user("KR", 0).await, app.create_user("KR", 0).await);
    let profile = json_of(app.get_as(user, &format!("/api/users/{user}")).await, 200).await;
    assert_eq!(profile, json!({ "user_id": user, "name": "u1", "market": "KR", "language": "ko" }));
    let cs = app.token(900, &[Role::CsAgent]);
    let res = app.request(Method::GET, &format!("/api/users/{user}")).bearer_auth(&cs).send().await.unwrap();
    assert_eq!(json_of(res, 200).await["user_id"], user);
    assert_error(app.get_as(other, &format!("/api/users/{user}")).await, 403, "FORBIDDEN").await;
    assert_error(app.get(&format!("/api/users/{user}")).await, 401, "UNAUTHENTICATED").await;
    let admin = app.token(901, &[Role::OpsAdmin]);
    let res = app.request(Method::GET, "/api/users/999999").bearer_auth(&admin).send().await.unwrap();
    assert_error(res, 404, "USER_NOT_FOUND").await;

    let changed = json_of(set_language(&app, user, "en").await, 200).await;
    assert_eq!(changed["language"], "en");
    let refused = assert_error(set_language(&app, user, "fr").await, 400, "VALIDATION_ERROR").await;
    assert_eq!(refused["details"]["field"], "language");
    let body = json!({ "language": "ko" });
    let by_other = app.send_json(Method::PATCH, &format!("/api/users/{user}"), Some(&app.customer(other)), &body).await;
    assert_error(by_other, 403, "FORBIDDEN").await;
    let by_cs = app.send_json(Method::PATCH, &format!("/api/users/{user}"), Some(&cs), &body).await;
    assert_error(by_cs, 403, "FORBIDDEN").await;
    let stored: String =
        sqlx::query_scalar("SELECT language FROM users WHERE id = $1").bind(user).fetch_one(&app.db).await.unwrap();
    assert_eq!(stored, "en", "refused changes changed nothing");
}

#[tokio::test]
async fn messages_follow_the_profile_language_without_a_header_and_the_header_wins() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let base = app.base.clone();
    assert_eq!(error_message(&base, &app, user, None).await, KO, "a Korean profile");
    json_of(set_language(&app, user, "en").await, 200).await;
    assert_eq!(error_message(&base, &app, user, None).await, EN, "no header: the profile's language");
    assert_eq!(error_message(&base, &app, user, Some("ko-KR")).await, KO, "the header wins");
    // Validation errors and errors raised before the handler (403) follow it too.
    let path = format!("/api/users/{}/balance", user + 1);
    let res = app.request(Method::GET, &path).bearer_auth(app.customer(user)).send().await.unwrap();
    assert_eq!(assert_error(res, 403, "FORBIDDEN").await["message"], "You are not allowed to do this");
    let res = app.get_as(user, &format!("/api/users/{user}/balance/transactions?size=0")).await;
    assert_eq!(assert_error(res, 400, "VALIDATION_ERROR").await["message"], "The request is invalid");
    // Product text too, in the cart and the catalog.
    let opt = option(&app, 1_000, 5).await;
    json_of(add_to_cart(&app, user, opt, 1).await, 201).await;
    let cart = json_of(app.get_as(user, &format!("/api/users/{user}/cart")).await, 200).await;
    assert_eq!(cart["items"][0]["name"], "Test product");
    let res = app.request(Method::GET, &format!("/api/users/{user}/cart")).bearer_auth(app.customer(user));
    let cart = json_of(res.header("Accept-Language", "ko").send().await.unwrap(), 200).await;
    assert_eq!(cart["items"][0]["name"], "한국어 Test product");
    let product = cart["items"][0]["product_id"].as_i64().unwrap();
    let detail = json_of(app.get_as(user, &format!("/api/products/{product}")).await, 200).await;
    assert_eq!(detail["name"], "Test product");
    // Anonymous callers have no profile: Korean by default.
    let res = app.get("/api/products/999999").await;
    assert_eq!(assert_error(res, 404, "PRODUCT_NOT_FOUND").await["message"], "상품을 찾을 수 없습니다");
}

#[tokio::test]
async fn coupon_names_are_in_two_languages_and_reads_show_the_caller_s() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let both = create_coupon(&app, 10, json!({ "name": { "ko": "봄 할인", "en": "Spring sale" } })).await;
    let plain = create_coupon(&app, 10, json!({ "name": "Flash 10%" })).await;
    let name = |v: serde_json::Value| v["name"].as_str().unwrap().to_owned();

    let anonymous = json_of(app.get(&format!("/api/coupons/{both}")).await, 200).await;
    assert_eq!(name(anonymous), "봄 할인");
    let res = app.request(Method::GET, &format!("/api/coupons/{both}")).header("Accept-Language", "en").send().await;
    assert_eq!(name(json_of(res.unwrap(), 200).await), "Spring sale");
    let plain_en = app.request(Method::GET, &format!("/api/coupons/{plain}")).header("Accept-Language", "en");
    assert_eq!(name(json_of(plain_en.send().await.unwrap(), 200).await), "Flash 10%", "a plain name is both");

    json_of(issue(&app, both, user).await, 201).await;
    json_of(set_language(&app, user, "en").await, 200).await;
    assert_eq!(name(json_of(app.get_as(user, &format!("/api/coupons/{both}")).await, 200).await), "Spring sale");
    let held = json_of(app.get_as(user, &format!("/api/users/{user}/coupons")).await, 200).await;
    assert_eq!(held["items"][0]["name"], "Spring sale");
    let listing = json_of(app.get_as(user, "/api/coupons").await, 200).await;
    let names: Vec<&str> = listing["items"].as_array().unwrap().iter().filter_map(|c| c["name"].as_str()).collect();
    assert!(names.contains(&"Spring sale") && !names.contains(&"봄 할인"), "{names:?}");

    // Patching accepts both shapes; a blank language is refused naming `name`.
    let path = format!("/api/admin/coupons/{plain}");
    let both_names = json!({"name": {"ko": "번개", "en": "Flash"}});
    let patched = app.send_json(Method::PATCH, &path, Some(&manager(&app)), &both_names).await;
    json_of(patched, 200).await;
    let res = app.request(Method::GET, &format!("/api/coupons/{plain}")).send().await.unwrap();
    assert_eq!(name(json_of(res, 200).await), "번개");
    let blank =
        app.send_json(Method::PATCH, &path, Some(&manager(&app)), &json!({"name": {"ko": "번개", "en": " "}})).await;
    assert_eq!(assert_error(blank, 400, "VALIDATION_ERROR").await["details"]["field"], "name");
    let renamed = app.send_json(Method::PATCH, &path, Some(&manager(&app)), &json!({"name": "Plain again"})).await;
    assert_eq!(name(json_of(renamed, 200).await), "Plain again");
}

#[tokio::test]
async fn a_language_change_reaches_another_instance() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let other = sibling(&app, |_| {}).await;
    let other_base = format!("http://{}", other.local_addr());
    let stop = other.shutdown_token();
    tokio::spawn(other.run_until_stopped());
    // The other instance has the user cached in Korean.
    assert_eq!(error_message(&other_base, &app, user, None).await, KO);
    json_of(set_language(&app, user, "en").await, 200).await;
    eventually(5, "the other instance answers in the new language", || async {
        error_message(&other_base, &app, user, None).await == EN
    })
    .await;
    stop.cancel();
}

#[tokio::test]
async fn a_cached_caller_s_language_costs_no_postgres_query() {
    use jupang::admission::user_markets::UserMarkets;
    let app = spawn_app().await;
    let user = app.create_user("US", 0).await;
    json_of(set_language(&app, user, "en").await, 200).await;
    let pool = sqlx::PgPool::connect(app.config.database_url.expose()).await.unwrap();
    let cache = UserMarkets::default();
    cache.preload(&pool).await.unwrap();
    // A closed pool fails every query: what still answers comes from memory.
    pool.close().await;
    assert_eq!(cache.language(&pool, user).await.unwrap(), Some(jupang::domain::Lang::En));
    assert!(cache.language(&pool, user + 1).await.is_err(), "an unknown user is looked up (and this pool is closed)");
}
