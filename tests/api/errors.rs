//! Error bodies: stable codes, named fields, both languages, nothing plain-text.

use jupang::http::auth::Role;
use reqwest::Method;
use serde_json::json;

use crate::support::{assert_error, spawn_app};

#[tokio::test]
async fn malformed_json_is_400_validation_error_and_changes_nothing() {
    let app = spawn_app().await;
    let admin = app.token(1, &[Role::OpsAdmin]);
    let res = app
        .request(Method::POST, "/api/admin/users")
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    let body = assert_error(res, 400, "VALIDATION_ERROR").await;
    assert_eq!(body["details"]["field"], "body");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&app.db).await.unwrap();
    assert_eq!(users, 0);
}

#[tokio::test]
async fn a_missing_or_mistyped_field_is_named_in_the_error() {
    let app = spawn_app().await;
    let admin = app.token(1, &[Role::OpsAdmin]);
    let missing = app.send_json(Method::POST, "/api/admin/users", Some(&admin), &json!({"name": "Lee"})).await;
    assert_eq!(assert_error(missing, 400, "VALIDATION_ERROR").await["details"]["field"], "market");
    let wrong =
        app.send_json(Method::POST, "/api/admin/users", Some(&admin), &json!({"name": 7, "market": "KR"})).await;
    assert_eq!(assert_error(wrong, 400, "VALIDATION_ERROR").await["details"]["field"], "name");
    let bad_market =
        app.send_json(Method::POST, "/api/admin/users", Some(&admin), &json!({"name": "Lee", "market": "JP"})).await;
    assert_eq!(assert_error(bad_market, 400, "VALIDATION_ERROR").await["details"]["field"], "market");
}

#[tokio::test]
async fn a_bad_path_id_is_400_validation_error_naming_the_parameter() {
    let app = spawn_app().await;
    let res = app.request(Method::GET, "/api/users/abc/balance").bearer_auth(app.customer(1)).send().await.unwrap();
    assert_eq!(assert_error(res, 400, "VALIDATION_ERROR").await["details"]["field"], "user_id");
}

#[tokio::test]
async fn messages_follow_accept_language_korean_by_default() {
    let app = spawn_app().await;
    let ko = assert_error(app.get("/api/users/1/balance").await, 401, "UNAUTHENTICATED").await;
    assert_eq!(ko["message"], "인증이 필요합니다");
    let res = app
        .request(Method::GET, "/api/users/1/balance")
        .header("accept-language", "en-US,en;q=0.9")
        .send()
        .await
        .unwrap();
    let en = assert_error(res, 401, "UNAUTHENTICATED").await;
    assert_eq!(en["message"], "Authentication is required");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_with_contract_bodies() {
    let app = spawn_app().await;
    assert_error(app.get("/api/nothing-here").await, 404, "NOT_FOUND").await;
    let res = app.request(Method::DELETE, "/health").send().await.unwrap();
    assert_error(res, 405, "METHOD_NOT_ALLOWED").await;
}
