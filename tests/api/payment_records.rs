//! Payment records (api.md "Fulfilment, refunds, payments"): one payment and a user's payments,
//! visible to the owner, `cs_agent` and `ops_admin`, and to nobody else.

use jupang::http::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestApp, assert_error, cancel_request, json_of, option, pay, placed, spawn_app};

/// A paid order of `quantity` units at 10,000 KRW: (order id, payment id).
async fn paid(app: &TestApp, user: i64, quantity: i64) -> (String, String) {
    let opt = option(app, 10_000, 100).await;
    let order = placed(app, user, &[(opt, quantity)]).await;
    json_of(pay(app, user, &order, None).await, 200).await;
    let id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM payments WHERE order_id = $1::uuid")
        .bind(&order)
        .fetch_one(&app.db)
        .await
        .unwrap();
    (order, id.to_string())
}

async fn read(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.request(Method::GET, path).bearer_auth(token).send().await.unwrap()
}

#[tokio::test]
async fn a_payment_is_read_by_its_owner_and_staff_and_is_404_to_anyone_else() {
    let app = spawn_app().await;
    let (owner, stranger) = (app.create_user("KR", 100_000).await, app.create_user("KR", 0).await);
    let (order, payment) = paid(&app, owner, 2).await;
    let path = format!("/api/payments/{payment}");

    let record = json_of(read(&app, &app.customer(owner), &path).await, 200).await;
    let paid_at = record["paid_at"].clone();
    assert!(paid_at.is_string(), "{record}");
    assert_eq!(
        record,
        json!({
            "payment_id": payment, "order_id": order,
            "amount": {"amount": 20000, "currency": "KRW"},
            "discount_amount": {"amount": 0, "currency": "KRW"},
            "method": "WALLET", "status": "COMPLETED", "paid_at": paid_at,
            "refunded_amount": {"amount": 0, "currency": "KRW"},
        })
    );
    for staff in [Role::CsAgent, Role::OpsAdmin] {
        let token = app.token(900, &[staff]);
        assert_eq!(json_of(read(&app, &token, &path).await, 200).await, record, "{staff:?}");
    }
    // Someone else's payment does not exist for them, exactly like a missing one.
    let theirs = assert_error(read(&app, &app.customer(stranger), &path).await, 404, "PAYMENT_NOT_FOUND").await;
    let missing_path = format!("/api/payments/{}", uuid::Uuid::now_v7());
    let missing = assert_error(read(&app, &app.customer(owner), &missing_path).await, 404, "PAYMENT_NOT_FOUND").await;
    assert_eq!(theirs, missing);
    let other_staff = app.token(901, &[Role::MarketingManager]);
    assert_error(read(&app, &other_staff, &path).await, 404, "PAYMENT_NOT_FOUND").await;
    assert_error(app.get(&path).await, 401, "UNAUTHENTICATED").await;
    let bad = assert_error(read(&app, &app.customer(owner), "/api/payments/nope").await, 400, "VALIDATION_ERROR").await;
    assert_eq!(bad["details"]["field"], "payment_id");
}

#[tokio::test]
async fn a_user_s_payments_are_listed_newest_first_for_the_user_and_staff_only() {
    let app = spawn_app().await;
    let (owner, stranger) = (app.create_user("KR", 100_000).await, app.create_user("KR", 0).await);
    let (_, first) = paid(&app, owner, 1).await;
    let (second_order, second) = paid(&app, owner, 3).await;
    let path = format!("/api/users/{owner}/payments?page=1&size=10");

    let page = json_of(read(&app, &app.customer(owner), &path).await, 200).await;
    let ids: Vec<&str> = page["items"].as_array().unwrap().iter().map(|p| p["payment_id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![second.as_str(), first.as_str()], "newest first");
    assert_eq!((page["total"].as_i64(), page["page"].as_i64(), page["size"].as_i64()), (Some(2), Some(1), Some(10)));
    let one =
        json_of(read(&app, &app.customer(owner), &format!("/api/users/{owner}/payments?size=1&page=2")).await, 200);
    assert_eq!(one.await["items"][0]["payment_id"], first.as_str());

    for staff in [Role::CsAgent, Role::OpsAdmin] {
        assert_eq!(json_of(read(&app, &app.token(900, &[staff]), &path).await, 200).await["total"], 2, "{staff:?}");
    }
    // Like every /users/{id}/... route: anyone else is refused 403 (the user id is no secret).
    assert_error(read(&app, &app.customer(stranger), &path).await, 403, "FORBIDDEN").await;
    assert_error(read(&app, &app.token(901, &[Role::MarketingManager]), &path).await, 403, "FORBIDDEN").await;
    let empty = json_of(read(&app, &app.customer(stranger), &format!("/api/users/{stranger}/payments")).await, 200);
    assert_eq!(empty.await["items"], json!([]));

    // A paid order cancelled is refunded in full, and its record says so.
    let res = cancel_request(&app, owner, &second_order).send().await.unwrap();
    json_of(res, 200).await;
    let record: Value = json_of(read(&app, &app.customer(owner), &format!("/api/payments/{second}")).await, 200).await;
    assert_eq!(
        (record["status"].as_str(), record["refunded_amount"]["amount"].as_i64()),
        (Some("REFUNDED"), Some(30_000))
    );
}

#[tokio::test]
async fn a_partial_refund_shows_in_the_payment_record_as_the_order_keeps_it() {
    let app = spawn_app().await;
    let owner = app.create_user("KR", 100_000).await;
    let (order, payment) = paid(&app, owner, 3).await;
    let agent = app.token(900, &[Role::CsAgent]);
    let refund = json!({ "amount": 12_345, "reason": "late delivery" });
    let res = app.send_json(Method::POST, &format!("/api/admin/orders/{order}/refunds"), Some(&agent), &refund).await;
    json_of(res, 201).await;

    let record = json_of(read(&app, &app.customer(owner), &format!("/api/payments/{payment}")).await, 200).await;
    assert_eq!(
        (record["status"].as_str(), &record["amount"], &record["refunded_amount"]),
        (Some("COMPLETED"), &json!({"amount": 30000, "currency": "KRW"}), &json!({"amount": 12345, "currency": "KRW"})),
        "{record}"
    );
    let listed = json_of(read(&app, &agent, &format!("/api/users/{owner}/payments")).await, 200).await;
    assert_eq!(listed["items"][0], record, "the list shows the same record");
    let order_view = json_of(read(&app, &app.customer(owner), &format!("/api/orders/{order}")).await, 200).await;
    assert_eq!(order_view["refunded_amount"], record["refunded_amount"]);
}
