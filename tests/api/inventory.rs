//! Stock adjustments: the reserved floor, the audit log, the outbox event, the role gate.

use jupang::http::auth::Role;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::support::{Opt, TestApp, assert_error, count, json_of, product, spawn_app, stock_of};

/// A product with one option holding `stock`, of which `reserved` is held by orders.
async fn option_with(app: &TestApp, stock: i32, reserved: i32) -> i64 {
    product(app, "Shirt", "fashion", true, &[Opt { krw: None, usd: None, stock, reserved }]).await.1[0]
}

fn manager(app: &TestApp) -> String {
    app.token(9001, &[Role::InventoryManager])
}

async fn adjust(app: &TestApp, token: &str, option: i64, body: &Value) -> Response {
    app.send_json(Method::POST, &format!("/api/admin/inventory/{option}/adjust"), Some(token), body).await
}

async fn audit(app: &TestApp, token: &str, query: &str) -> Response {
    app.request(Method::GET, &format!("/api/admin/inventory/audit{query}")).bearer_auth(token).send().await.unwrap()
}

#[tokio::test]
async fn an_adjustment_changes_the_stock_and_is_audited_with_a_stock_changed_event() {
    let app = spawn_app().await;
    let option = option_with(&app, 10, 3).await;
    let res = adjust(&app, &manager(&app), option, &json!({"delta": 5, "reason": "입고 (PO-17)"})).await;
    assert_eq!(
        json_of(res, 200).await,
        json!({"product_option_id": option, "stock": 15, "reserved": 3, "available": 12})
    );
    assert_eq!(stock_of(&app, option).await, (15, 3));
    let entry: (i64, String, i32, i32, i32) = sqlx::query_as(
        "SELECT actor_user_id, reason, delta, stock_before, stock_after FROM inventory_audit_log WHERE option_id = $1",
    )
    .bind(option)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(entry, (9001, "입고 (PO-17)".to_owned(), 5, 10, 15));
    let (kind, payload): (String, Value) =
        sqlx::query_as("SELECT type, payload FROM outbox_events").fetch_one(&app.db).await.unwrap();
    assert_eq!(kind, "stock.changed");
    assert_eq!(payload["product_option_id"], option);
    assert_eq!(payload["delta"], 5);
    assert_eq!(payload["reason"], "입고 (PO-17)");
    assert!(payload["occurred_at"].is_string(), "{payload}");
}

#[tokio::test]
async fn stock_may_fall_to_what_is_reserved_but_not_below_and_a_refusal_changes_nothing() {
    let app = spawn_app().await;
    let option = option_with(&app, 10, 4).await;
    let token = manager(&app);
    let refused = assert_error(
        adjust(&app, &token, option, &json!({"delta": -7, "reason": "count"})).await,
        400,
        "STOCK_BELOW_RESERVED",
    )
    .await;
    assert_eq!(refused["details"]["reserved"], 4);
    assert_eq!(stock_of(&app, option).await, (10, 4));
    assert_eq!((count(&app, "inventory_audit_log").await, count(&app, "outbox_events").await), (0, 0));
    let res = adjust(&app, &token, option, &json!({"delta": -6, "reason": "count"})).await;
    assert_eq!(json_of(res, 200).await["available"], 0);
    assert_eq!(stock_of(&app, option).await, (4, 4));
}

#[tokio::test]
async fn stock_never_goes_below_zero() {
    let app = spawn_app().await;
    let option = option_with(&app, 2, 0).await;
    let res = adjust(&app, &manager(&app), option, &json!({"delta": -3, "reason": "damaged"})).await;
    assert_error(res, 400, "STOCK_BELOW_RESERVED").await;
    assert_eq!(stock_of(&app, option).await, (2, 0));
}

#[tokio::test]
async fn bad_adjustments_are_400_validation_error_naming_the_field_and_change_nothing() {
    let app = spawn_app().await;
    let option = option_with(&app, 10, 0).await;
    let token = manager(&app);
    let cases = [
        (json!({"delta": 0, "reason": "x"}), "delta"),
        (json!({"delta": 1.5, "reason": "x"}), "delta"),
        (json!({"delta": 3_000_000_000i64, "reason": "x"}), "delta"),
        (json!({"reason": "x"}), "delta"),
        (json!({"delta": 1}), "reason"),
        (json!({"delta": 1, "reason": "   "}), "reason"),
        (json!({"delta": 1, "reason": "r".repeat(501)}), "reason"),
        (json!({"delta": 1, "reason": "x", "actor": 1}), "actor"),
    ];
    for (body, field) in cases {
        let err = assert_error(adjust(&app, &token, option, &body).await, 400, "VALIDATION_ERROR").await;
        assert_eq!(err["details"]["field"], field, "{body}");
    }
    let path = app
        .send_json(Method::POST, "/api/admin/inventory/abc/adjust", Some(&token), &json!({"delta": 1, "reason": "x"}))
        .await;
    assert_eq!(assert_error(path, 400, "VALIDATION_ERROR").await["details"]["field"], "product_option_id");
    json_of(adjust(&app, &token, option, &json!({"delta": 1, "reason": "r".repeat(500)})).await, 200).await;
    assert_eq!(stock_of(&app, option).await, (11, 0));
    assert_eq!(count(&app, "inventory_audit_log").await, 1);
}

#[tokio::test]
async fn an_unknown_option_is_404_product_option_not_found() {
    let app = spawn_app().await;
    let token = manager(&app);
    assert_error(
        adjust(&app, &token, 987_654, &json!({"delta": 1, "reason": "x"})).await,
        404,
        "PRODUCT_OPTION_NOT_FOUND",
    )
    .await;
    assert_error(audit(&app, &token, "?product_option_id=987654").await, 404, "PRODUCT_OPTION_NOT_FOUND").await;
}

#[tokio::test]
async fn only_inventory_managers_and_ops_admins_may_adjust_or_read_the_audit() {
    let app = spawn_app().await;
    let option = option_with(&app, 10, 0).await;
    let body = json!({"delta": 1, "reason": "x"});
    for role in [Role::Customer, Role::MarketingManager, Role::CsAgent] {
        let token = app.token(5, &[role]);
        assert_error(adjust(&app, &token, option, &body).await, 403, "FORBIDDEN").await;
        assert_error(audit(&app, &token, "").await, 403, "FORBIDDEN").await;
    }
    let anonymous = app.send_json(Method::POST, &format!("/api/admin/inventory/{option}/adjust"), None, &body).await;
    assert_error(anonymous, 401, "UNAUTHENTICATED").await;
    assert_eq!(stock_of(&app, option).await, (10, 0));
    let admin = app.token(6, &[Role::OpsAdmin]);
    json_of(adjust(&app, &admin, option, &body).await, 200).await;
    json_of(audit(&app, &admin, "").await, 200).await;
}

#[tokio::test]
async fn the_audit_log_lists_newest_first_by_option_in_pages() {
    let app = spawn_app().await;
    let (a, b) = (option_with(&app, 0, 0).await, option_with(&app, 0, 0).await);
    let token = manager(&app);
    for delta in 1..=3 {
        json_of(adjust(&app, &token, a, &json!({"delta": delta, "reason": format!("a{delta}")})).await, 200).await;
    }
    json_of(adjust(&app, &token, b, &json!({"delta": 9, "reason": "b"})).await, 200).await;
    let page = json_of(audit(&app, &token, &format!("?product_option_id={a}&size=2")).await, 200).await;
    assert_eq!((page["total"].as_i64(), page["page"].as_i64(), page["size"].as_i64()), (Some(3), Some(1), Some(2)));
    let reasons: Vec<&str> = page["items"].as_array().unwrap().iter().map(|i| i["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["a3", "a2"]);
    let newest = &page["items"][0];
    assert_eq!((newest["stock_before"].as_i64(), newest["stock_after"].as_i64()), (Some(3), Some(6)));
    assert_eq!((newest["product_option_id"].as_i64(), newest["actor_user_id"].as_i64()), (Some(a), Some(9001)));
    assert!(newest["created_at"].is_string());
    let rest = json_of(audit(&app, &token, &format!("?product_option_id={a}&size=2&page=2")).await, 200).await;
    assert_eq!(rest["items"][0]["reason"], "a1");
    let all = json_of(audit(&app, &token, "").await, 200).await;
    assert_eq!((all["total"].as_i64(), all["items"][0]["reason"].as_str()), (Some(4), Some("b")));
    let bad = assert_error(audit(&app, &token, "?size=500").await, 400, "VALIDATION_ERROR").await;
    assert_eq!(bad["details"]["field"], "size");
}

#[tokio::test]
async fn concurrent_adjustments_are_all_applied_and_form_one_audit_chain() {
    let app = spawn_app().await;
    let option = option_with(&app, 100, 0).await;
    let token = manager(&app);
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let delta = if i % 2 == 0 { 3 } else { -1 };
            let req = app
                .request(Method::POST, &format!("/api/admin/inventory/{option}/adjust"))
                .bearer_auth(&token)
                .json(&json!({"delta": delta, "reason": format!("r{i}")}));
            tokio::spawn(async move { req.send().await.unwrap().status().as_u16() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    assert_eq!(stock_of(&app, option).await, (120, 0));
    let chain: Vec<(i32, i32)> =
        sqlx::query_as("SELECT stock_before, stock_after FROM inventory_audit_log ORDER BY created_at, id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    assert_eq!(chain.len(), 20);
    assert_eq!(chain[0].0, 100);
    assert!(chain.windows(2).all(|w| w[0].1 == w[1].0), "each change starts where the previous ended: {chain:?}");
    assert_eq!(count(&app, "outbox_events").await, 20);
}
