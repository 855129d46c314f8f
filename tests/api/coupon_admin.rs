//! Coupon campaign administration: create, the role gate, edit rules, counters.

use chrono::{TimeDelta, Utc};
use jupang::http::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use jupang::store::redis::keys::CouponKeys;

use crate::support::{
    TestApp, assert_error, count, coupon_app, coupon_body, create_coupon, issue, json_of, manager, micros, product,
    redis_cmd, settled, spawn_app_with, time_of,
};

async fn patch(app: &TestApp, coupon: i64, body: Value) -> reqwest::Response {
    app.send_json(Method::PATCH, &format!("/api/admin/coupons/{coupon}"), Some(&manager(app)), &body).await
}

async fn row(app: &TestApp, coupon: i64) -> Value {
    sqlx::query_scalar("SELECT to_jsonb(c) - 'updated_at' - 'version' FROM coupons c WHERE id = $1")
        .bind(coupon)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_marketing_manager_creates_a_coupon_that_reads_back_as_given() {
    let app = coupon_app().await;
    let (product, _) = product(&app, "Sneakers", "shoes", true, &[]).await;
    let body = coupon_body(1000, json!({"product_ids": [product], "categories": ["shoes"], "currency": "KRW"}));
    let res = app.send_json(Method::POST, "/api/admin/coupons", Some(&manager(&app)), &body).await;
    let id = json_of(res, 201).await["id"].as_i64().unwrap();

    let c = json_of(app.get(&format!("/api/coupons/{id}")).await, 200).await;
    assert_eq!(c["name"], "선착순 10% 쿠폰");
    assert_eq!((c["discount_type"].clone(), c["discount_value"].clone()), (json!("PERCENT"), json!(10)));
    assert_eq!(c["max_discount"], json!({"amount": 5000, "currency": "KRW"}));
    assert_eq!((c["total_quantity"].clone(), c["remaining_quantity"].clone()), (json!(1000), json!(1000)));
    assert_eq!((c["valid_days"].clone(), c["expires_at"].clone()), (json!(7), Value::Null));
    assert_eq!((c["product_ids"].clone(), c["categories"].clone()), (json!([product]), json!(["shoes"])));
    assert_eq!(time_of(&c["issue_starts_at"]), micros(time_of(&body["issue_starts_at"])));
    assert_eq!(row(&app, id).await["currency"], "KRW");
}

#[tokio::test]
async fn coupon_administration_is_gated_to_marketing_managers_and_ops_admins() {
    let app = coupon_app().await;
    let body = coupon_body(10, json!({}));
    let path = "/api/admin/coupons";
    assert_error(app.send_json(Method::POST, path, None, &body).await, 401, "UNAUTHENTICATED").await;
    for role in [Role::Customer, Role::InventoryManager, Role::CsAgent] {
        let res = app.send_json(Method::POST, path, Some(&app.token(5, &[role])), &body).await;
        assert_error(res, 403, "FORBIDDEN").await;
    }
    assert_eq!(count(&app, "coupons").await, 0);
    let id = json_of(app.send_json(Method::POST, path, Some(&app.token(6, &[Role::OpsAdmin])), &body).await, 201).await
        ["id"]
        .as_i64()
        .unwrap();
    let customer = app.customer(5);
    let res = app.send_json(Method::PATCH, &format!("{path}/{id}"), Some(&customer), &json!({"name": "x"})).await;
    assert_error(res, 403, "FORBIDDEN").await;
    let res = app.request(Method::GET, &format!("{path}/{id}/stats")).bearer_auth(customer).send().await.unwrap();
    assert_error(res, 403, "FORBIDDEN").await;
}

#[tokio::test]
async fn creating_a_coupon_with_a_bad_field_returns_400_naming_it_and_stores_nothing() {
    let app = coupon_app().await;
    let now = Utc::now();
    let cases = [
        (json!({"expires_at": now + TimeDelta::days(9)}), "expires_at"),
        (json!({"valid_days": null}), "expires_at"),
        (json!({"valid_days": 0}), "valid_days"),
        (json!({"discount_value": 101}), "discount_value"),
        (json!({"discount_value": 0}), "discount_value"),
        (json!({"discount_type": "FIXED", "discount_value": 0}), "discount_value"),
        (json!({"issue_ends_at": now - TimeDelta::hours(2)}), "issue_ends_at"),
        (
            json!({"issue_starts_at": now - TimeDelta::days(3), "issue_ends_at": now - TimeDelta::days(2)}),
            "issue_ends_at",
        ),
        (json!({"total_quantity": 0}), "total_quantity"),
        (json!({"market": "JP"}), "market"),
        (json!({"currency": "USD"}), "currency"),
        (json!({"min_order_amount": {"amount": 100, "currency": "USD"}}), "min_order_amount"),
        (json!({"max_discount": 0}), "max_discount"),
        (json!({"name": "  "}), "name"),
        (json!({"product_ids": [424242]}), "product_ids"),
        (json!({"categories": []}), "categories"),
        (json!({"discount_type": "BOGO"}), "discount_type"),
        (json!({"surprise": true}), "surprise"),
    ];
    for (overrides, field) in cases {
        let body = coupon_body(10, overrides.clone());
        let res = app.send_json(Method::POST, "/api/admin/coupons", Some(&manager(&app)), &body).await;
        let err = assert_error(res, 400, "VALIDATION_ERROR").await;
        assert_eq!(err["details"]["field"], field, "{overrides}: {err}");
    }
    assert_eq!(count(&app, "coupons").await, 0);
}

#[tokio::test]
async fn before_issuing_starts_any_field_may_be_edited() {
    let app = coupon_app().await;
    let coupon = create_coupon(&app, 100, json!({})).await;
    let expires = Utc::now() + TimeDelta::days(60);
    let body = json!({"name": "Spring sale", "total_quantity": 10, "discount_type": "FIXED", "discount_value": 3000,
                      "max_discount": null, "expires_at": expires, "categories": ["food"]});
    let c = json_of(patch(&app, coupon, body).await, 200).await;
    assert_eq!((c["name"].clone(), c["total_quantity"].clone()), (json!("Spring sale"), json!(10)));
    assert_eq!((c["discount_type"].clone(), c["discount_value"].clone()), (json!("FIXED"), json!(3000)));
    assert!(c["max_discount"].is_null() && c["valid_days"].is_null());
    assert_eq!(c["categories"], json!(["food"]));
    assert_eq!(json_of(app.get(&format!("/api/coupons/{coupon}")).await, 200).await, c);
    let invalid = patch(&app, coupon, json!({"discount_type": "PERCENT", "discount_value": 3000})).await;
    assert_eq!(assert_error(invalid, 400, "VALIDATION_ERROR").await["details"]["field"], "discount_value");
    assert_error(patch(&app, 999_999, json!({"name": "x"})).await, 404, "COUPON_NOT_FOUND").await;
}

#[tokio::test]
async fn once_issuing_started_raising_the_total_and_ending_the_window_are_allowed() {
    let app = coupon_app().await;
    let coupon = create_coupon(&app, 2, json!({})).await;
    let [a, b, c] = app.create_users(3, "KR", 0).await[..] else { unreachable!() };
    json_of(issue(&app, coupon, a).await, 201).await;
    json_of(issue(&app, coupon, b).await, 201).await;

    let raised = json_of(patch(&app, coupon, json!({"total_quantity": 3})).await, 200).await;
    assert_eq!((raised["total_quantity"].clone(), raised["remaining_quantity"].clone()), (json!(3), json!(1)));
    // "End it now": by the time the request arrives that moment is already a little past.
    let asked = Utc::now();
    let ended = json_of(patch(&app, coupon, json!({"issue_ends_at": asked})).await, 200).await;
    let end = time_of(&ended["issue_ends_at"]);
    assert!(end >= micros(asked) && end <= Utc::now(), "ended at {end}, asked {asked}");
    assert_error(issue(&app, coupon, c).await, 400, "COUPON_NOT_ACTIVE").await;
    assert_eq!(json_of(app.get(&format!("/api/coupons/{coupon}")).await, 200).await["remaining_quantity"], 1);
}

#[tokio::test]
async fn once_issuing_started_other_edits_return_400_coupon_update_not_allowed_and_change_nothing() {
    let app = coupon_app().await;
    let coupon = create_coupon(&app, 5, json!({})).await;
    json_of(issue(&app, coupon, app.create_user("KR", 0).await).await, 201).await;
    settled(&app).await;
    let before = row(&app, coupon).await;
    let later = Utc::now() + TimeDelta::days(5);
    for (body, field) in [
        (json!({"total_quantity": 4}), "total_quantity"),
        (json!({"name": "Renamed"}), "name"),
        (json!({"discount_value": 20}), "discount_value"),
        (json!({"issue_ends_at": later}), "issue_ends_at"),
        (json!({"valid_days": 30}), "expires_at"),
        (json!({"total_quantity": 10, "name": "Renamed"}), "name"),
    ] {
        let err = assert_error(patch(&app, coupon, body.clone()).await, 400, "COUPON_UPDATE_NOT_ALLOWED").await;
        assert_eq!(err["details"]["field"], field, "{body}");
    }
    let past = Utc::now() - TimeDelta::hours(1);
    assert_error(patch(&app, coupon, json!({"issue_ends_at": past})).await, 400, "VALIDATION_ERROR").await;
    assert_eq!(row(&app, coupon).await, before);
}

#[tokio::test]
async fn stats_count_issued_persisted_used_and_remaining() {
    let app = coupon_app().await;
    let coupon = create_coupon(&app, 10, json!({})).await;
    let users = app.create_users(3, "KR", 0).await;
    for u in &users {
        json_of(issue(&app, coupon, *u).await, 201).await;
    }
    settled(&app).await;
    sqlx::query(
        "UPDATE user_coupons SET status = 'USED', used_at = now(), order_id = uuid_generate_v7()
          WHERE coupon_id = $1 AND user_id = $2",
    )
    .bind(coupon)
    .bind(users[0])
    .execute(&app.db)
    .await
    .unwrap();
    let path = format!("/api/admin/coupons/{coupon}/stats");
    let stats = json_of(app.request(Method::GET, &path).bearer_auth(manager(&app)).send().await.unwrap(), 200).await;
    assert_eq!(
        stats,
        json!({"coupon_id": coupon, "total_quantity": 10, "issued": 3, "persisted": 3, "used": 1, "revoked": 0, "remaining": 7})
    );
    let res = app.request(Method::GET, "/api/admin/coupons/424242/stats").bearer_auth(manager(&app)).send().await;
    assert_error(res.unwrap(), 404, "COUPON_NOT_FOUND").await;
}

#[tokio::test]
async fn under_a_v1_design_the_stats_count_postgres_issues_even_with_a_stale_copy_of_the_coupon_in_redis() {
    let app = spawn_app_with(|v| {
        v.insert("JUPANG_ISSUE_STRATEGY".into(), "db-pessimistic".into());
    })
    .await;
    let coupon = create_coupon(&app, 10, json!({})).await;
    // What a `redis-lua` instance sharing this Redis would have hydrated before anyone pressed.
    let keys = CouponKeys::new(&app.redis_prefix, coupon);
    let () = redis_cmd(redis::cmd("HSET").arg(&keys.meta).arg("total").arg(10)).await;
    let () = redis_cmd(redis::cmd("SET").arg(&keys.remaining).arg(10)).await;
    for user in app.create_users(3, "KR", 0).await {
        assert_eq!(issue(&app, coupon, user).await.status(), 201);
    }

    let path = format!("/api/admin/coupons/{coupon}/stats");
    let stats = json_of(app.request(Method::GET, &path).bearer_auth(manager(&app)).send().await.unwrap(), 200).await;
    assert_eq!((stats["issued"].as_i64(), stats["remaining"].as_i64()), (Some(3), Some(7)), "{stats}");
}
