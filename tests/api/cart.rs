//! The cart (seed 001 US-005..007): add, accumulate, stock limits, view, change, remove.

use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::json;

use crate::support::{
    CouponSpec, TestApp, add_to_cart, assert_error, count, coupon, hold, json_of, option, product_in, spawn_app,
    stock_of,
};

async fn cart_quantity(app: &TestApp, user_id: i64, option_id: i64) -> Option<i32> {
    sqlx::query_scalar("SELECT quantity FROM cart_items WHERE user_id = $1 AND option_id = $2")
        .bind(user_id)
        .bind(option_id)
        .fetch_optional(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn adding_3_of_a_product_with_stock_10_to_an_empty_cart_adds_the_item() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let opt = option(&app, 12_000, 10).await;
    let body = json_of(add_to_cart(&app, user, opt, 3).await, 201).await;
    assert_eq!(body["product_option_id"], opt);
    assert_eq!(body["quantity"], 3);
    assert_eq!(body["unit_price"], json!({"amount": 12000, "currency": "KRW"}));
    assert_eq!(body["subtotal"], json!({"amount": 36000, "currency": "KRW"}));
    assert_eq!(cart_quantity(&app, user, opt).await, Some(3));
    assert_eq!(stock_of(&app, opt).await, (10, 0), "a cart reserves nothing");
}

#[tokio::test]
async fn adding_2_more_of_a_product_already_in_the_cart_3_times_makes_5() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let opt = option(&app, 1_000, 10).await;
    let first = json_of(add_to_cart(&app, user, opt, 3).await, 201).await;
    let second = json_of(add_to_cart(&app, user, opt, 2).await, 201).await;
    assert_eq!(second["quantity"], 5);
    assert_eq!(second["id"], first["id"], "the same line grows");
    assert_eq!(count(&app, "cart_items").await, 1);
}

#[tokio::test]
async fn cart_add_returns_400_insufficient_stock_beyond_what_is_available_and_changes_nothing() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let opt = option(&app, 1_000, 10).await;
    json_of(add_to_cart(&app, user, opt, 8).await, 201).await;
    let body = assert_error(add_to_cart(&app, user, opt, 3).await, 400, "INSUFFICIENT_STOCK").await;
    assert_eq!(body["details"], json!({"product_option_id": opt, "available": 10, "requested": 11}));
    assert_eq!(cart_quantity(&app, user, opt).await, Some(8), "the line is unchanged");
}

#[tokio::test]
async fn cart_add_counts_reserved_stock_as_unavailable() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let opt = option(&app, 1_000, 10).await;
    sqlx::query("UPDATE product_options SET reserved = 7 WHERE id = $1").bind(opt).execute(&app.db).await.unwrap();
    let body = assert_error(add_to_cart(&app, user, opt, 4).await, 400, "INSUFFICIENT_STOCK").await;
    assert_eq!(body["details"]["available"], 3);
    assert_eq!(count(&app, "cart_items").await, 0);
    json_of(add_to_cart(&app, user, opt, 3).await, 201).await;
}

#[tokio::test]
async fn cart_add_of_an_unknown_option_is_404_product_option_not_found() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    assert_error(add_to_cart(&app, user, 999_999, 1).await, 404, "PRODUCT_OPTION_NOT_FOUND").await;
    assert_eq!(count(&app, "cart_items").await, 0);
}

#[tokio::test]
async fn cart_add_of_an_option_without_a_price_in_the_users_currency_is_400_market_mismatch() {
    let app = spawn_app().await;
    let us_user = app.create_user("US", 0).await;
    let krw_only = option(&app, 1_000, 10).await;
    assert_error(add_to_cart(&app, us_user, krw_only, 1).await, 400, "MARKET_MISMATCH").await;
    assert_eq!(count(&app, "cart_items").await, 0);
}

#[tokio::test]
async fn cart_add_with_a_zero_or_negative_quantity_is_400_validation_error_naming_quantity() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let opt = option(&app, 1_000, 10).await;
    for q in [0, -2] {
        let body = assert_error(add_to_cart(&app, user, opt, q).await, 400, "VALIDATION_ERROR").await;
        assert_eq!(body["details"]["field"], "quantity");
    }
    assert_eq!(count(&app, "cart_items").await, 0);
}

#[tokio::test]
async fn cart_routes_need_a_token_and_refuse_another_customer() {
    let app = spawn_app().await;
    let owner = app.create_user("KR", 0).await;
    let other = app.create_user("KR", 0).await;
    let opt = option(&app, 1_000, 10).await;
    let path = format!("/api/users/{owner}/cart");
    let body = json!({"product_option_id": opt, "quantity": 1});
    assert_error(app.send_json(Method::POST, &path, None, &body).await, 401, "UNAUTHENTICATED").await;
    let res = app.send_json(Method::POST, &path, Some(&app.customer(other)), &body).await;
    assert_error(res, 403, "FORBIDDEN").await;
    assert_eq!(count(&app, "cart_items").await, 0);
}

#[tokio::test]
async fn the_cart_view_lists_names_in_the_requested_language_prices_quantities_and_subtotals() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let (product, opts) = product_in(&app, "food", &[(5_000, 20), (7_000, 3)], false).await;
    json_of(add_to_cart(&app, user, opts[0], 2).await, 201).await;
    json_of(add_to_cart(&app, user, opts[1], 1).await, 201).await;
    let path = format!("/api/users/{user}/cart");
    let ko = json_of(app.get_as(user, &path).await, 200).await;
    assert_eq!(ko["items"][0]["name"], "한국어 Test product");
    let res = app
        .request(Method::GET, &path)
        .bearer_auth(app.customer(user))
        .header("accept-language", "en-US")
        .send()
        .await
        .unwrap();
    let en = json_of(res, 200).await;
    let items = en["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["name"], "Test product");
    assert_eq!(items[0]["product_id"], product);
    assert_eq!(items[0]["option_name"], "option 0");
    assert_eq!(items[0]["subtotal"]["amount"], 10_000);
    assert_eq!(items[0]["stock_status"], "IN_STOCK");
    assert_eq!(items[1]["stock_status"], "LOW_STOCK");
    assert_eq!(en["total"], json!({"amount": 17000, "currency": "KRW"}));
    assert_eq!(en["discount"]["amount"], 0);
    assert_eq!(en["final_total"]["amount"], 17_000);
}

#[tokio::test]
async fn the_cart_view_previews_a_coupon_and_shows_zero_for_one_that_does_not_apply() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let opt = option(&app, 20_000, 10).await;
    json_of(add_to_cart(&app, user, opt, 2).await, 201).await;
    let week = Utc::now() + Duration::days(7);
    let ten_percent = hold(&app, coupon(&app, CouponSpec::percent(10, None)).await, user, week).await;
    let mut min = CouponSpec::fixed(5_000);
    min.min_order_amount = 50_000;
    let too_small = hold(&app, coupon(&app, min).await, user, week).await;
    let view = |uc: uuid::Uuid| {
        let path = format!("/api/users/{user}/cart?user_coupon_id={uc}");
        let req = app.request(Method::GET, &path).bearer_auth(app.customer(user));
        async move { json_of(req.send().await.unwrap(), 200).await }
    };
    let previewed = view(ten_percent).await;
    assert_eq!(previewed["discount"]["amount"], 4_000);
    assert_eq!(previewed["final_total"]["amount"], 36_000);
    let refused = view(too_small).await;
    assert_eq!(refused["discount"]["amount"], 0);
    assert_eq!(refused["final_total"]["amount"], 40_000);
}

#[tokio::test]
async fn changing_a_cart_quantity_rechecks_stock() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let opt = option(&app, 1_000, 5).await;
    let item = json_of(add_to_cart(&app, user, opt, 1).await, 201).await;
    let path = format!("/api/users/{user}/cart/{}", item["id"]);
    let token = app.customer(user);
    let ok = app.send_json(Method::PATCH, &path, Some(&token), &json!({"quantity": 5})).await;
    assert_eq!(json_of(ok, 200).await["quantity"], 5);
    let too_many = app.send_json(Method::PATCH, &path, Some(&token), &json!({"quantity": 6})).await;
    let body = assert_error(too_many, 400, "INSUFFICIENT_STOCK").await;
    assert_eq!(body["details"]["available"], 5);
    assert_eq!(cart_quantity(&app, user, opt).await, Some(5));
    let other = app.create_user("KR", 0).await;
    let foreign = format!("/api/users/{other}/cart/{}", item["id"]);
    let res = app.send_json(Method::PATCH, &foreign, Some(&app.customer(other)), &json!({"quantity": 1})).await;
    assert_error(res, 404, "CART_ITEM_NOT_FOUND").await;
}

#[tokio::test]
async fn deleting_a_cart_item_answers_204_then_404_cart_item_not_found() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let opt = option(&app, 1_000, 5).await;
    let item = json_of(add_to_cart(&app, user, opt, 1).await, 201).await;
    let path = format!("/api/users/{user}/cart/{}", item["id"]);
    let res = app.request(Method::DELETE, &path).bearer_auth(app.customer(user)).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 204);
    assert_eq!(count(&app, "cart_items").await, 0);
    let again = app.request(Method::DELETE, &path).bearer_auth(app.customer(user)).send().await.unwrap();
    assert_error(again, 404, "CART_ITEM_NOT_FOUND").await;
}
