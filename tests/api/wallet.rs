//! The wallet: balance (seed 001 US-004), charges, and the transaction history.

use std::collections::HashSet;

use jupang::http::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, assert_error, balance_of, count, json_of, spawn_app, spawn_app_with};

fn charge_path(user: i64) -> String {
    format!("/api/users/{user}/balance/charge")
}

async fn charge(app: &TestApp, user: i64, amount: i64) -> Value {
    let res =
        app.send_json(Method::POST, &charge_path(user), Some(&app.customer(user)), &json!({"amount": amount})).await;
    json_of(res, 200).await
}

async fn history(app: &TestApp, user: i64, query: &str) -> reqwest::Response {
    app.get_as(user, &format!("/api/users/{user}/balance/transactions{query}")).await
}

#[tokio::test]
async fn a_logged_in_customer_sees_its_current_balance_in_won() {
    // Seed 001 US-004: the current balance of the logged-in user, in KRW.
    let app = spawn_app().await;
    let user = app.create_user("KR", 100_000).await;
    let res = app.get_as(user, &format!("/api/users/{user}/balance")).await;
    assert_eq!(json_of(res, 200).await, json!({"user_id": user, "balance": {"amount": 100000, "currency": "KRW"}}));
}

#[tokio::test]
async fn a_charge_adds_to_the_balance_and_records_a_charge_transaction() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 100_000).await;
    let body = charge(&app, user, 50_000).await;
    assert_eq!(body["user_id"], user);
    assert_eq!(body["balance"], json!({"amount": 150000, "currency": "KRW"}));
    let tx_id = body["transaction_id"].as_str().expect("a transaction id").to_owned();
    assert_eq!(balance_of(&app, user).await, 150_000);
    let row: (String, i64, i64, String) = sqlx::query_as(
        "SELECT type, amount, balance_after, currency FROM balance_transactions WHERE id = $1::uuid AND user_id = $2",
    )
    .bind(&tx_id)
    .bind(user)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(row, ("CHARGE".to_owned(), 50_000, 150_000, "KRW".to_owned()));
    let balance = app.get_as(user, &format!("/api/users/{user}/balance")).await;
    assert_eq!(json_of(balance, 200).await["balance"]["amount"], 150_000);
}

#[tokio::test]
async fn a_us_wallet_is_charged_in_usd_cents() {
    let app = spawn_app().await;
    let user = app.create_user("US", 1_000).await;
    let body = charge(&app, user, 2_599).await;
    assert_eq!(body["balance"], json!({"amount": 3599, "currency": "USD"}));
}

#[tokio::test]
async fn charge_returns_400_validation_error_naming_the_field_and_changes_nothing() {
    let app = spawn_app_with(|v| {
        v.insert("JUPANG_MAX_CHARGE".into(), "1000000".into());
    })
    .await;
    let user = app.create_user("KR", 7_000).await;
    let token = app.customer(user);
    let cases = [
        (json!({"amount": 0}), "amount"),
        (json!({"amount": -500}), "amount"),
        (json!({"amount": 1_000_001}), "amount"),
        (json!({"amount": 10.5}), "amount"),
        (json!({"amount": "1000"}), "amount"),
        (json!({"amount": null}), "amount"),
        (json!({"amount": 9_223_372_036_854_775_808u64}), "amount"),
        (json!({}), "amount"),
        (json!({"amount": 100, "bonus": 5}), "bonus"),
        (json!({"amount": 100, "user_id": "me"}), "user_id"),
    ];
    for (body, field) in cases {
        let res = app.send_json(Method::POST, &charge_path(user), Some(&token), &body).await;
        let err = assert_error(res, 400, "VALIDATION_ERROR").await;
        assert_eq!(err["details"]["field"], field, "body {body} -> {err}");
    }
    let malformed = app
        .request(Method::POST, &charge_path(user))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"amount\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(assert_error(malformed, 400, "VALIDATION_ERROR").await["details"]["field"], "body");
    assert_eq!(balance_of(&app, user).await, 7_000);
    assert_eq!(count(&app, "balance_transactions").await, 0);
}

#[tokio::test]
async fn the_configured_maximum_itself_may_be_charged() {
    let app = spawn_app_with(|v| {
        v.insert("JUPANG_MAX_CHARGE".into(), "1000".into());
    })
    .await;
    let user = app.create_user("KR", 0).await;
    assert_eq!(charge(&app, user, 1_000).await["balance"]["amount"], 1_000);
    let over =
        app.send_json(Method::POST, &charge_path(user), Some(&app.customer(user)), &json!({"amount": 1001})).await;
    assert_eq!(assert_error(over, 400, "VALIDATION_ERROR").await["details"]["field"], "amount");
    assert_eq!(balance_of(&app, user).await, 1_000);
}

#[tokio::test]
async fn a_customer_charging_another_users_wallet_is_403_forbidden_and_nothing_changes() {
    let app = spawn_app().await;
    let me = app.create_user("KR", 0).await;
    let other = app.create_user("KR", 500).await;
    let res = app.send_json(Method::POST, &charge_path(other), Some(&app.customer(me)), &json!({"amount": 100})).await;
    assert_error(res, 403, "FORBIDDEN").await;
    // A cs_agent may read wallets but not charge them.
    let agent = app.token(me, &[Role::CsAgent]);
    let res = app.send_json(Method::POST, &charge_path(other), Some(&agent), &json!({"amount": 100})).await;
    assert_error(res, 403, "FORBIDDEN").await;
    // A user_id in the body must be the token's subject.
    let res = app
        .send_json(Method::POST, &charge_path(me), Some(&app.customer(me)), &json!({"amount": 100, "user_id": other}))
        .await;
    assert_error(res, 403, "FORBIDDEN").await;
    assert_eq!((balance_of(&app, me).await, balance_of(&app, other).await), (0, 500));
    assert_eq!(count(&app, "balance_transactions").await, 0);
}

#[tokio::test]
async fn a_charge_without_a_token_is_401_unauthenticated() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let res = app.send_json(Method::POST, &charge_path(user), None, &json!({"amount": 100})).await;
    assert_error(res, 401, "UNAUTHENTICATED").await;
    assert_eq!(balance_of(&app, user).await, 0);
}

#[tokio::test]
async fn charging_an_unknown_user_is_404_user_not_found() {
    let app = spawn_app().await;
    let admin = app.token(1, &[Role::OpsAdmin]);
    let res = app.send_json(Method::POST, &charge_path(424_242), Some(&admin), &json!({"amount": 100})).await;
    assert_error(res, 404, "USER_NOT_FOUND").await;
    assert_eq!(count(&app, "balance_transactions").await, 0);
}

#[tokio::test]
async fn fifty_concurrent_charges_lose_no_update() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 1_000).await;
    let token = app.customer(user);
    let tasks: Vec<_> = (1..=50i64)
        .map(|amount| {
            let req =
                app.request(Method::POST, &charge_path(user)).bearer_auth(&token).json(&json!({"amount": amount}));
            tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let sum: i64 = (1..=50).sum();
    assert_eq!(balance_of(&app, user).await, 1_000 + sum);
    let afters: Vec<i64> =
        sqlx::query_scalar("SELECT balance_after FROM balance_transactions WHERE user_id = $1 AND type = 'CHARGE'")
            .bind(user)
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(afters.len(), 50);
    assert_eq!(afters.iter().collect::<HashSet<_>>().len(), 50, "every charge saw its own balance");
    assert_eq!(*afters.iter().max().unwrap(), 1_000 + sum);
}

#[tokio::test]
async fn the_history_lists_transactions_newest_first_in_pages() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    for amount in 1..=5 {
        charge(&app, user, amount * 100).await;
    }
    let first = json_of(history(&app, user, "?page=1&size=2").await, 200).await;
    assert_eq!((first["page"].clone(), first["size"].clone(), first["total"].clone()), (json!(1), json!(2), json!(5)));
    let amounts = |page: &Value| -> Vec<i64> {
        page["items"].as_array().unwrap().iter().map(|i| i["amount"]["amount"].as_i64().unwrap()).collect()
    };
    assert_eq!(amounts(&first), [500, 400]);
    let item = &first["items"][0];
    assert_eq!(item["type"], "CHARGE");
    assert_eq!(item["balance_after"], json!({"amount": 1500, "currency": "KRW"}));
    assert_eq!(item["order_id"], Value::Null);
    assert!(item["id"].as_str().is_some() && item["created_at"].as_str().is_some(), "{item}");
    let second = json_of(history(&app, user, "?page=2&size=2").await, 200).await;
    assert_eq!(amounts(&second), [300, 200]);
    let last = json_of(history(&app, user, "?page=3&size=2").await, 200).await;
    assert_eq!(amounts(&last), [100]);
    let beyond = json_of(history(&app, user, "?page=9&size=2").await, 200).await;
    assert_eq!((amounts(&beyond).len(), beyond["total"].as_i64()), (0, Some(5)));
    let default = json_of(history(&app, user, "").await, 200).await;
    assert_eq!((default["page"].as_i64(), default["size"].as_i64(), amounts(&default).len()), (Some(1), Some(20), 5));
}

#[tokio::test]
async fn the_history_rejects_bad_paging_naming_the_parameter() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    for (query, field) in
        [("?page=0", "page"), ("?page=abc", "page"), ("?size=0", "size"), ("?size=101", "size"), ("?size=-1", "size")]
    {
        let err = assert_error(history(&app, user, query).await, 400, "VALIDATION_ERROR").await;
        assert_eq!(err["details"]["field"], field, "{query}");
    }
    json_of(history(&app, user, "?size=100").await, 200).await;
}

#[tokio::test]
async fn the_history_of_an_unknown_user_is_404_and_of_another_user_403() {
    let app = spawn_app().await;
    let me = app.create_user("KR", 0).await;
    assert_error(history(&app, 777_777, "").await, 404, "USER_NOT_FOUND").await;
    let res = app.get_as(me, &format!("/api/users/{}/balance/transactions", me + 1)).await;
    assert_error(res, 403, "FORBIDDEN").await;
}
