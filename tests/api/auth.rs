//! Authentication and authorization rules of the contract.

use jupang::http::auth::{JwtKeys, Role};
use reqwest::Method;
use serde_json::json;

use crate::support::{assert_error, json_of, spawn_app};

#[tokio::test]
async fn a_user_reads_its_own_balance_with_its_token() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 5_000).await;
    let res = app.get_as(user, &format!("/api/users/{user}/balance")).await;
    let body = json_of(res, 200).await;
    assert_eq!(body, json!({"user_id": user, "balance": {"amount": 5000, "currency": "KRW"}}));
}

#[tokio::test]
async fn a_missing_token_is_401_unauthenticated() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    assert_error(app.get(&format!("/api/users/{user}/balance")).await, 401, "UNAUTHENTICATED").await;
}

#[tokio::test]
async fn an_expired_token_is_401_unauthenticated() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let expired = app.jwt.mint(user, &[Role::Customer], -600);
    let res =
        app.request(Method::GET, &format!("/api/users/{user}/balance")).bearer_auth(expired).send().await.unwrap();
    assert_error(res, 401, "UNAUTHENTICATED").await;
}

#[tokio::test]
async fn a_token_signed_with_another_secret_is_401_unauthenticated() {
    let app = spawn_app().await;
    let user = app.create_user("KR", 0).await;
    let forged = JwtKeys::new(b"not-the-server-secret-at-all").mint(user, &[Role::OpsAdmin], 600);
    let res = app.request(Method::GET, &format!("/api/users/{user}/balance")).bearer_auth(forged).send().await.unwrap();
    assert_error(res, 401, "UNAUTHENTICATED").await;
    let garbage = app
        .request(Method::GET, &format!("/api/users/{user}/balance"))
        .bearer_auth("abc.def.ghi")
        .send()
        .await
        .unwrap();
    assert_error(garbage, 401, "UNAUTHENTICATED").await;
}

#[tokio::test]
async fn a_customer_reading_another_users_balance_is_403_forbidden() {
    let app = spawn_app().await;
    let me = app.create_user("KR", 0).await;
    let other = app.create_user("KR", 0).await;
    let res = app.get_as(me, &format!("/api/users/{other}/balance")).await;
    assert_error(res, 403, "FORBIDDEN").await;
}

#[tokio::test]
async fn a_cs_agent_may_read_a_customers_balance_and_an_ops_admin_too() {
    let app = spawn_app().await;
    let customer = app.create_user("US", 1_999).await;
    for role in [Role::CsAgent, Role::OpsAdmin] {
        let token = app.token(999_999, &[role]);
        let res = app
            .request(Method::GET, &format!("/api/users/{customer}/balance"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let body = json_of(res, 200).await;
        assert_eq!(body["balance"], json!({"amount": 1999, "currency": "USD"}));
    }
}

#[tokio::test]
async fn admin_user_creation_needs_the_ops_admin_role() {
    let app = spawn_app().await;
    let body = json!({"name": "Kim", "market": "KR"});
    let anonymous = app.send_json(Method::POST, "/api/admin/users", None, &body).await;
    assert_error(anonymous, 401, "UNAUTHENTICATED").await;
    let customer = app.send_json(Method::POST, "/api/admin/users", Some(&app.customer(1)), &body).await;
    assert_error(customer, 403, "FORBIDDEN").await;
    let marketing = app.token(1, &[Role::MarketingManager]);
    assert_error(app.send_json(Method::POST, "/api/admin/users", Some(&marketing), &body).await, 403, "FORBIDDEN")
        .await;

    let admin = app.token(1, &[Role::OpsAdmin]);
    let created = json_of(app.send_json(Method::POST, "/api/v1/admin/users", Some(&admin), &body).await, 201).await;
    let id = created["user_id"].as_i64().unwrap();
    let (market, balance): (String, i64) =
        sqlx::query_as("SELECT market, balance FROM users WHERE id = $1").bind(id).fetch_one(&app.db).await.unwrap();
    assert_eq!((market.as_str(), balance), ("KR", 0));
}
