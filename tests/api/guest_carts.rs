//! Guest carts (api.md "Guests and users"): the user cart's behaviour under an unguessable token,
//! and the merge into a user's cart at sign-in.

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::support::{TestApp, add_to_cart, assert_error, json_of, option, send_all, spawn_app};

async fn new_cart(app: &TestApp) -> String {
    let body = json_of(app.request(Method::POST, "/api/guest-carts").send().await.unwrap(), 201).await;
    body["cart_token"].as_str().expect("cart_token").to_owned()
}

async fn guest_add(app: &TestApp, token: &str, option_id: i64, quantity: i64) -> Response {
    let body = json!({ "product_option_id": option_id, "quantity": quantity });
    app.send_json(Method::POST, &format!("/api/guest-carts/{token}/items"), None, &body).await
}

async fn guest_cart(app: &TestApp, token: &str) -> Response {
    app.get(&format!("/api/guest-carts/{token}")).await
}

fn merge_request(app: &TestApp, caller: i64, into: i64, token: &str) -> reqwest::RequestBuilder {
    app.request(Method::POST, &format!("/api/users/{into}/cart/merge"))
        .bearer_auth(app.customer(caller))
        .json(&json!({ "cart_token": token }))
}

async fn user_quantities(app: &TestApp, user_id: i64) -> Vec<(i64, i32)> {
    sqlx::query_as("SELECT option_id, quantity FROM cart_items WHERE user_id = $1 ORDER BY option_id")
        .bind(user_id)
        .fetch_all(&app.db)
        .await
        .unwrap()
}

async fn guest_rows(app: &TestApp) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM guest_carts), (SELECT count(*) FROM cart_items WHERE guest_cart_id IS NOT NULL)",
    )
    .fetch_one(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_guest_cart_behaves_like_the_user_cart() {
    let app = spawn_app().await;
    let opt = option(&app, 12_000, 10).await;
    let token = new_cart(&app).await;
    assert!(token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    assert_ne!(token, new_cart(&app).await, "every cart has its own token");

    let line = json_of(guest_add(&app, &token, opt, 3).await, 201).await;
    assert_eq!((line["product_option_id"].as_i64(), line["quantity"].as_i64()), (Some(opt), Some(3)));
    assert_eq!(line["unit_price"], json!({"amount": 12000, "currency": "KRW"}));
    let again = json_of(guest_add(&app, &token, opt, 2).await, 201).await;
    assert_eq!((again["id"].clone(), again["quantity"].as_i64()), (line["id"].clone(), Some(5)), "the line grows");
    // The same refusal, with the same details, as the user cart.
    let refused = assert_error(guest_add(&app, &token, opt, 6).await, 400, "INSUFFICIENT_STOCK").await;
    assert_eq!(refused["details"], json!({"product_option_id": opt, "available": 10, "requested": 11}));
    assert_error(guest_add(&app, &token, 999_999, 1).await, 404, "PRODUCT_OPTION_NOT_FOUND").await;

    let item = line["id"].as_i64().unwrap();
    let path = format!("/api/guest-carts/{token}/items/{item}");
    let patched = app.send_json(Method::PATCH, &path, None, &json!({"quantity": 7})).await;
    assert_eq!(json_of(patched, 200).await["quantity"], 7);
    let too_many = app.send_json(Method::PATCH, &path, None, &json!({"quantity": 11})).await;
    assert_error(too_many, 400, "INSUFFICIENT_STOCK").await;
    let view = json_of(guest_cart(&app, &token).await, 200).await;
    assert_eq!(view["total"], json!({"amount": 84000, "currency": "KRW"}));
    assert_eq!((view["discount"]["amount"].as_i64(), view["items"].as_array().unwrap().len()), (Some(0), 1));

    let gone = app.request(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(gone.status(), 204);
    assert_error(app.request(Method::DELETE, &path).send().await.unwrap(), 404, "CART_ITEM_NOT_FOUND").await;
    assert_eq!(json_of(guest_cart(&app, &token).await, 200).await["items"], json!([]));
}

#[tokio::test]
async fn an_unknown_expired_or_malformed_token_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let opt = option(&app, 1_000, 10).await;
    let unknown = "0".repeat(64);
    assert_error(guest_cart(&app, &unknown).await, 404, "CART_NOT_FOUND").await;
    assert_error(guest_add(&app, &unknown, opt, 1).await, 404, "CART_NOT_FOUND").await;
    let bad = assert_error(guest_cart(&app, "not-a-token").await, 400, "VALIDATION_ERROR").await;
    assert_eq!(bad["details"]["field"], "cart_token");

    let token = new_cart(&app).await;
    json_of(guest_add(&app, &token, opt, 2).await, 201).await;
    sqlx::query("UPDATE guest_carts SET expires_at = now() - interval '1 second'").execute(&app.db).await.unwrap();
    assert_error(guest_cart(&app, &token).await, 404, "CART_NOT_FOUND").await;
    assert_error(guest_add(&app, &token, opt, 1).await, 404, "CART_NOT_FOUND").await;
    let user = app.create_user("KR", 0).await;
    assert_error(merge_request(&app, user, user, &token).send().await.unwrap(), 404, "CART_NOT_FOUND").await;
    assert_eq!(user_quantities(&app, user).await, vec![]);

    // The sweep reclaims expired carts with their lines, and only those.
    let live = new_cart(&app).await;
    json_of(guest_add(&app, &live, opt, 1).await, 201).await;
    let swept = jupang::store::pg::guest_carts::sweep_expired(&app.db, Utc::now(), 100).await.unwrap();
    assert_eq!((swept, guest_rows(&app).await), (1, (1, 1)));
}

#[tokio::test]
async fn a_new_guest_cart_is_priced_in_the_market_asked_for() {
    let app = spawn_app().await;
    let (_, opts) = crate::support::product_in(&app, "general", &[(13_000, 10)], true).await;
    let res = app.request(Method::POST, "/api/guest-carts?market=US").send().await.unwrap();
    let us = json_of(res, 201).await["cart_token"].as_str().unwrap().to_owned();
    let line = json_of(guest_add(&app, &us, opts[0], 1).await, 201).await;
    assert_eq!(line["unit_price"]["currency"], "USD");
    let res = app.request(Method::POST, "/api/guest-carts").header("Accept-Language", "en-US").send().await.unwrap();
    let implied = json_of(res, 201).await["cart_token"].as_str().unwrap().to_owned();
    assert_eq!(json_of(guest_add(&app, &implied, opts[0], 1).await, 201).await["unit_price"]["currency"], "USD");
    let res = app.request(Method::POST, "/api/guest-carts?market=XX").send().await.unwrap();
    assert_eq!(assert_error(res, 400, "VALIDATION_ERROR").await["details"]["field"], "market");
}

#[tokio::test]
async fn a_merge_adds_shared_options_up_caps_them_at_what_is_available_and_the_token_dies() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let (shared, only_guest, only_user) =
        (option(&app, 1_000, 5).await, option(&app, 2_000, 10).await, option(&app, 3_000, 10).await);
    json_of(add_to_cart(&app, user, shared, 3).await, 201).await;
    json_of(add_to_cart(&app, user, only_user, 1).await, 201).await;
    let token = new_cart(&app).await;
    json_of(guest_add(&app, &token, shared, 4).await, 201).await;
    json_of(guest_add(&app, &token, only_guest, 2).await, 201).await;

    let merged = json_of(merge_request(&app, user, user, &token).send().await.unwrap(), 200).await;
    assert_eq!(
        merged["capped"],
        json!([{ "product_option_id": shared, "requested": 7, "available": 5, "quantity": 5 }]),
        "3 + 4 of an option with 5 available: capped at 5, and said so"
    );
    let mut expected = vec![(shared, 5), (only_guest, 2), (only_user, 1)];
    expected.sort();
    assert_eq!(user_quantities(&app, user).await, expected);
    assert_eq!(merged["cart"]["total"]["amount"], 5 * 1_000 + 2 * 2_000 + 3_000, "the answer is the merged cart");

    // The guest cart is gone: reading it, adding to it and merging it again are 404.
    assert_error(guest_cart(&app, &token).await, 404, "CART_NOT_FOUND").await;
    assert_error(guest_add(&app, &token, only_guest, 1).await, 404, "CART_NOT_FOUND").await;
    assert_error(merge_request(&app, user, user, &token).send().await.unwrap(), 404, "CART_NOT_FOUND").await;
    assert_eq!(guest_rows(&app).await, (0, 0));
    assert_eq!(user_quantities(&app, user).await, expected, "the failed merge changed nothing");
}

#[tokio::test]
async fn merging_into_another_user_is_403_and_leaves_both_carts_alone() {
    let app = spawn_app().await;
    let (me, victim) = (app.create_user("KR", 0).await, app.create_user("KR", 0).await);
    let opt = option(&app, 1_000, 10).await;
    let token = new_cart(&app).await;
    json_of(guest_add(&app, &token, opt, 2).await, 201).await;
    assert_error(merge_request(&app, me, victim, &token).send().await.unwrap(), 403, "FORBIDDEN").await;
    let anonymous = app
        .request(Method::POST, &format!("/api/users/{victim}/cart/merge"))
        .json(&json!({ "cart_token": token }))
        .send()
        .await
        .unwrap();
    assert_error(anonymous, 401, "UNAUTHENTICATED").await;
    assert_eq!(user_quantities(&app, victim).await, vec![]);
    assert_eq!(guest_rows(&app).await, (1, 1), "the guest cart is still there");
    // Its owner can still merge it.
    json_of(merge_request(&app, me, me, &token).send().await.unwrap(), 200).await;
    assert_eq!(user_quantities(&app, me).await, vec![(opt, 2)]);
}

#[tokio::test]
async fn racing_merges_of_one_token_merge_it_exactly_once() {
    let app = spawn_app().await;
    let opt = option(&app, 1_000, 100).await;
    let users = app.create_users(8, "KR", 0).await;
    let token = new_cart(&app).await;
    json_of(guest_add(&app, &token, opt, 3).await, 201).await;

    // Eight users (each into their own cart) race for one token, all at once.
    let answers = send_all(users.iter().map(|&u| merge_request(&app, u, u, &token)).collect()).await;
    let mut statuses: Vec<u16> = Vec::new();
    for res in answers {
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        assert!(status == 200 || body["code"] == "CART_NOT_FOUND", "{status} {body}");
        statuses.push(status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    let merged: i64 =
        sqlx::query_scalar("SELECT COALESCE(sum(quantity), 0)::bigint FROM cart_items WHERE user_id = ANY($1)")
            .bind(&users)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(merged, 3, "the guest's 3 units landed in exactly one cart");
    assert_eq!(guest_rows(&app).await, (0, 0));
}

#[tokio::test]
async fn a_bad_item_id_is_400_naming_item_id() {
    let app = spawn_app().await;
    let token = new_cart(&app).await;
    let res = app.request(Method::DELETE, &format!("/api/guest-carts/{token}/items/abc")).send().await.unwrap();
    assert_eq!(assert_error(res, 400, "VALIDATION_ERROR").await["details"]["field"], "item_id");
    let res = app.request(Method::DELETE, &format!("/api/guest-carts/{token}/items/7.0")).send().await.unwrap();
    assert_error(res, 404, "CART_ITEM_NOT_FOUND").await;
}

#[tokio::test]
async fn adds_racing_a_merge_land_in_the_user_cart_or_are_told_the_cart_is_gone() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let opt = option(&app, 1_000, 1_000).await;
    let token = new_cart(&app).await;
    json_of(guest_add(&app, &token, opt, 1).await, 201).await;

    let body = json!({ "product_option_id": opt, "quantity": 1 });
    let mut requests: Vec<_> =
        (0..12).map(|_| app.request(Method::POST, &format!("/api/guest-carts/{token}/items")).json(&body)).collect();
    requests.insert(6, merge_request(&app, user, user, &token));
    let answers = send_all(requests).await;
    let mut added = 0;
    for (i, res) in answers.into_iter().enumerate() {
        let status = res.status().as_u16();
        let answer: Value = res.json().await.unwrap();
        match (i == 6, status) {
            (true, 200) => {}
            (false, 201) => added += 1,
            (false, 404) => assert_eq!(answer["code"], "CART_NOT_FOUND"),
            _ => panic!("request {i}: {status} {answer}"),
        }
    }
    // Every unit acknowledged to the guest was merged; none was lost or counted twice.
    assert_eq!(user_quantities(&app, user).await, vec![(opt, 1 + added)]);
    assert_eq!(guest_rows(&app).await, (0, 0));
}

#[tokio::test]
async fn a_guest_cart_lives_30_days() {
    let app = spawn_app().await;
    let before = Utc::now();
    new_cart(&app).await;
    let after = Utc::now();
    let end: DateTime<Utc> = sqlx::query_scalar("SELECT expires_at FROM guest_carts").fetch_one(&app.db).await.unwrap();
    let (days_30, slack) = (TimeDelta::days(30), TimeDelta::seconds(1));
    assert!(end >= before + days_30 - slack && end <= after + days_30 + slack, "{end} is not 30 days on");
}
