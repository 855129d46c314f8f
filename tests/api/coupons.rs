//! Customer coupon routes: the open campaigns, issuing (seed 001 US-013) and owned coupons
//! (US-014). These run with the default configuration (`redis-lua`, V2) and its stream
//! consumer; every design is run against the same rules in `coupon_concurrency`.

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    assert_error, assert_metric, counts, coupon_app, coupon_child_app, create_coupon, forget_in_redis, issue,
    issued_events, json_of, micros, scrape, settled, time_of,
};

#[tokio::test]
async fn issuing_with_95_of_100_issued_succeeds_and_the_issued_count_becomes_96() {
    let app = coupon_app().await;
    let coupon = create_coupon(&app, 100, json!({})).await;
    let earlier = app.create_users(95, "KR", 0).await;
    sqlx::query(
        "INSERT INTO user_coupons (id, coupon_id, user_id, issued_at, expires_at)
         SELECT uuid_generate_v7(), $1, u, now(), now() + interval '7 days' FROM unnest($2::bigint[]) u",
    )
    .bind(coupon)
    .bind(&earlier)
    .execute(&app.db)
    .await
    .unwrap();
    sqlx::query("UPDATE coupons SET issued_quantity = 95 WHERE id = $1").bind(coupon).execute(&app.db).await.unwrap();
    // Written behind the issuer's back: Redis hydrates the coupon again from the database.
    forget_in_redis(&app, coupon);
    let user1 = app.create_user("KR", 0).await;

    let body = json_of(issue(&app, coupon, user1).await, 201).await;

    assert_eq!(body["coupon_id"], coupon);
    assert_eq!(body["user_id"], user1);
    assert_eq!(body["status"], "AVAILABLE");
    Uuid::parse_str(body["user_coupon_id"].as_str().unwrap()).expect("a UUID");
    assert_eq!(time_of(&body["expires_at"]) - time_of(&body["issued_at"]), TimeDelta::days(7));
    assert_eq!(counts(&app, coupon).await, (96, 96));
    let detail = json_of(app.get(&format!("/api/coupons/{coupon}")).await, 200).await;
    assert_eq!(detail["remaining_quantity"], 4);
}

#[tokio::test]
async fn issuing_a_sold_out_coupon_returns_400_coupon_sold_out_and_changes_nothing() {
    let app = coupon_app().await;
    let coupon = create_coupon(&app, 1, json!({})).await;
    let [first, late] = app.create_users(2, "KR", 0).await[..] else { unreachable!() };
    json_of(issue(&app, coupon, first).await, 201).await;

    let body = assert_error(issue(&app, coupon, late).await, 400, "COUPON_SOLD_OUT").await;
    assert_eq!(body["message"], "선착순 마감");
    let english = app
        .request(Method::POST, &format!("/api/coupons/{coupon}/issue"))
        .bearer_auth(app.customer(late))
        .header("Accept-Language", "en-US")
        .json(&json!({ "user_id": late }))
        .send()
        .await
        .unwrap();
    assert_eq!(assert_error(english, 400, "COUPON_SOLD_OUT").await["message"], "sold out");
    assert_eq!(counts(&app, coupon).await, (1, 1));
    assert_eq!(issued_events(&app, coupon).await, 1);
}

#[tokio::test]
async fn a_second_issue_by_the_same_user_returns_400_already_issued_and_changes_nothing() {
    let app = coupon_app().await;
    let coupon = create_coupon(&app, 10, json!({})).await;
    let user1 = app.create_user("KR", 0).await;
    json_of(issue(&app, coupon, user1).await, 201).await;

    assert_error(issue(&app, coupon, user1).await, 400, "ALREADY_ISSUED").await;
    assert_eq!(counts(&app, coupon).await, (1, 1));
    assert_eq!(issued_events(&app, coupon).await, 1);
}

#[tokio::test]
async fn a_user_holding_a_coupon_that_sold_out_since_is_told_already_issued() {
    let app = coupon_app().await;
    let coupon = create_coupon(&app, 1, json!({})).await;
    let user1 = app.create_user("KR", 0).await;
    json_of(issue(&app, coupon, user1).await, 201).await;
    assert_error(issue(&app, coupon, user1).await, 400, "ALREADY_ISSUED").await;
}

#[tokio::test]
async fn owned_coupons_with_one_expired_and_one_used_list_one_available() {
    let app = coupon_app().await;
    let user = app.create_user("KR", 0).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let coupon = create_coupon(&app, 10, json!({})).await;
        held.push(json_of(issue(&app, coupon, user).await, 201).await["user_coupon_id"].as_str().unwrap().to_owned());
    }
    let (expired, used, available) = (&held[0], &held[1], &held[2]);
    settled(&app).await;
    let order_id = Uuid::now_v7();
    sqlx::query("UPDATE user_coupons SET expires_at = now() - interval '1 second' WHERE id = $1::uuid")
        .bind(expired)
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query("UPDATE user_coupons SET status = 'USED', used_at = now(), order_id = $2 WHERE id = $1::uuid")
        .bind(used)
        .bind(order_id)
        .execute(&app.db)
        .await
        .unwrap();
    let list = |status: &str| {
        let (app, token) = (&app, app.customer(user));
        let path = format!("/api/users/{user}/coupons{status}");
        async move { json_of(app.request(Method::GET, &path).bearer_auth(token).send().await.unwrap(), 200).await }
    };

    let page = list("?status=AVAILABLE").await;
    assert_eq!(page["total"], 1);
    let item = &page["items"][0];
    assert_eq!(item["user_coupon_id"], available.as_str());
    assert_eq!(item["status"], "AVAILABLE");
    assert_eq!(item["name"], "선착순 10% 쿠폰");
    assert_eq!(item["discount_type"], "PERCENT");
    assert_eq!(item["discount_value"], 10);
    assert_eq!(item["max_discount"], json!({"amount": 5000, "currency": "KRW"}));
    assert_eq!(item["min_order_amount"], json!({"amount": 10000, "currency": "KRW"}));
    assert!(item["used_at"].is_null() && item["order_id"].is_null());

    let page = list("?status=EXPIRED").await;
    assert_eq!((page["total"].clone(), page["items"][0]["user_coupon_id"].clone()), (json!(1), json!(expired)));
    assert_eq!(page["items"][0]["status"], "EXPIRED", "an AVAILABLE row past its expiry reads as EXPIRED");
    let page = list("?status=USED").await;
    assert_eq!(page["items"][0]["order_id"], order_id.to_string());
    assert!(page["items"][0]["used_at"].is_string());
    let all = list("").await;
    assert_eq!((all["total"].clone(), all["page"].clone(), all["size"].clone()), (json!(3), json!(1), json!(20)));
    assert_eq!(all["items"][0]["user_coupon_id"], available.as_str(), "newest first");
}

#[tokio::test]
async fn another_customer_cannot_read_a_users_coupons() {
    let app = coupon_app().await;
    let [owner, other] = app.create_users(2, "KR", 0).await[..] else { unreachable!() };
    let res =
        app.request(Method::GET, &format!("/api/users/{owner}/coupons")).bearer_auth(app.customer(other)).send().await;
    assert_error(res.unwrap(), 403, "FORBIDDEN").await;
    assert_error(app.get(&format!("/api/users/{owner}/coupons")).await, 401, "UNAUTHENTICATED").await;
}

#[tokio::test]
async fn issuing_before_the_window_opens_returns_400_coupon_not_active() {
    let app = coupon_app().await;
    let start = Utc::now() + TimeDelta::hours(1);
    let coupon =
        create_coupon(&app, 10, json!({"issue_starts_at": start, "issue_ends_at": start + TimeDelta::hours(1)})).await;
    let user = app.create_user("KR", 0).await;
    assert_error(issue(&app, coupon, user).await, 400, "COUPON_NOT_ACTIVE").await;
    assert_eq!(counts(&app, coupon).await, (0, 0));
}

#[tokio::test]
async fn issuing_after_the_window_closed_returns_400_coupon_not_active() {
    let app = coupon_app().await;
    let coupon = create_coupon(&app, 10, json!({})).await;
    // Time passes: the window closed a second ago.
    sqlx::query(
        "UPDATE coupons SET issue_starts_at = now() - interval '2 days', issue_ends_at = now() - interval '1 second'
          WHERE id = $1",
    )
    .bind(coupon)
    .execute(&app.db)
    .await
    .unwrap();
    forget_in_redis(&app, coupon);
    let user = app.create_user("KR", 0).await;
    assert_error(issue(&app, coupon, user).await, 400, "COUPON_NOT_ACTIVE").await;
    assert_eq!(counts(&app, coupon).await, (0, 0));
}

#[tokio::test]
async fn an_unknown_coupon_is_404_coupon_not_found() {
    let app = coupon_app().await;
    let user = app.create_user("KR", 0).await;
    assert_error(issue(&app, 987_654, user).await, 404, "COUPON_NOT_FOUND").await;
    assert_error(app.get("/api/coupons/987654").await, 404, "COUPON_NOT_FOUND").await;
    assert_error(app.get("/api/coupons/abc").await, 400, "VALIDATION_ERROR").await;
}

#[tokio::test]
async fn issuing_needs_a_token_and_only_for_the_tokens_own_user() {
    let app = coupon_app().await;
    let coupon = create_coupon(&app, 10, json!({})).await;
    let [me, other] = app.create_users(2, "KR", 0).await[..] else { unreachable!() };
    let path = format!("/api/coupons/{coupon}/issue");
    let anonymous = app.send_json(Method::POST, &path, None, &json!({ "user_id": me })).await;
    assert_error(anonymous, 401, "UNAUTHENTICATED").await;
    let for_other = app.send_json(Method::POST, &path, Some(&app.customer(me)), &json!({ "user_id": other })).await;
    assert_error(for_other, 403, "FORBIDDEN").await;
    let no_user = app.send_json(Method::POST, &path, Some(&app.customer(me)), &json!({})).await;
    assert_eq!(assert_error(no_user, 400, "VALIDATION_ERROR").await["details"]["field"], "user_id");
    assert_eq!(counts(&app, coupon).await, (0, 0));
}

#[tokio::test]
async fn a_user_of_another_market_gets_400_market_mismatch() {
    let app = coupon_app().await;
    let coupon = create_coupon(&app, 10, json!({})).await;
    let american = app.create_user("US", 0).await;
    assert_error(issue(&app, coupon, american).await, 400, "MARKET_MISMATCH").await;
    assert_eq!(counts(&app, coupon).await, (0, 0));
}

#[tokio::test]
async fn a_token_for_a_user_without_a_profile_gets_404_user_not_found() {
    let app = coupon_app().await;
    let coupon = create_coupon(&app, 10, json!({})).await;
    assert_error(issue(&app, coupon, 777_777).await, 404, "USER_NOT_FOUND").await;
}

#[tokio::test]
async fn the_open_coupon_list_shows_only_coupons_whose_window_is_open() {
    let app = coupon_app().await;
    let expires = Utc::now() + TimeDelta::days(30);
    let open = create_coupon(&app, 50, json!({"valid_days": null, "expires_at": expires})).await;
    let later = Utc::now() + TimeDelta::days(1);
    create_coupon(&app, 10, json!({"issue_starts_at": later, "issue_ends_at": later + TimeDelta::days(1)})).await;
    let closed = create_coupon(&app, 10, json!({})).await;
    sqlx::query("UPDATE coupons SET issue_ends_at = now() - interval '1 second' WHERE id = $1")
        .bind(closed)
        .execute(&app.db)
        .await
        .unwrap();
    let us = create_coupon(
        &app,
        5,
        json!({"market": "US", "discount_type": "FIXED", "discount_value": 500, "max_discount": null, "min_order_amount": {"amount": 2000, "currency": "USD"}}),
    )
    .await;
    json_of(issue(&app, open, app.create_user("KR", 0).await).await, 201).await;

    let page = json_of(app.get("/api/coupons").await, 200).await;
    let ids: Vec<i64> = page["items"].as_array().unwrap().iter().map(|c| c["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{page}");
    assert!(ids.contains(&open) && ids.contains(&us));
    assert_eq!(page["total"], 2);
    let item = page["items"].as_array().unwrap().iter().find(|c| c["id"] == open).unwrap();
    assert_eq!(item["total_quantity"], 50);
    assert_eq!(item["remaining_quantity"], 49);
    assert_eq!(item["market"], "KR");
    assert_eq!(time_of(&item["expires_at"]), micros(expires));
    assert!(item["valid_days"].is_null() && item["product_ids"].is_null() && item["categories"].is_null());
    for key in [
        "name",
        "discount_type",
        "discount_value",
        "max_discount",
        "min_order_amount",
        "issue_starts_at",
        "issue_ends_at",
    ] {
        assert!(item.get(key).is_some(), "{key} missing in {item}");
    }

    let us_only = json_of(app.get("/api/coupons?market=US&size=1").await, 200).await;
    assert_eq!((us_only["total"].clone(), us_only["size"].clone()), (json!(1), json!(1)));
    assert_eq!(us_only["items"][0]["min_order_amount"], json!({"amount": 2000, "currency": "USD"}));
    assert_eq!(us_only["items"][0]["discount_value"], 500);
    let second_page = json_of(app.get("/api/coupons?size=1&page=2").await, 200).await;
    assert_eq!(second_page["items"].as_array().unwrap().len(), 1);
    assert_error(app.get("/api/coupons?size=101").await, 400, "VALIDATION_ERROR").await;
    assert_error(app.get("/api/coupons?page=0").await, 400, "VALIDATION_ERROR").await;
}

#[tokio::test]
async fn an_issued_coupon_is_stored_with_its_coupon_issued_event_and_counted_in_metrics() {
    // A server process of its own: its counters moved for this test's requests only.
    let app = coupon_child_app().await;
    let expires = Utc::now() + TimeDelta::days(10);
    let coupon = create_coupon(&app, 10, json!({"valid_days": null, "expires_at": expires})).await;
    let user = app.create_user("KR", 0).await;
    let body = json_of(issue(&app, coupon, user).await, 201).await;
    assert_eq!(time_of(&body["expires_at"]), micros(expires), "a fixed expiry is the coupon's");
    settled(&app).await;

    let (id, status, issued_at): (Uuid, String, DateTime<Utc>) =
        sqlx::query_as("SELECT id, status, issued_at FROM user_coupons WHERE coupon_id = $1 AND user_id = $2")
            .bind(coupon)
            .bind(user)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((id.to_string(), status.as_str()), (body["user_coupon_id"].as_str().unwrap().to_owned(), "AVAILABLE"));
    assert_eq!(issued_at, time_of(&body["issued_at"]), "the answered time is the stored one");
    let payload: Value = sqlx::query_scalar("SELECT payload FROM outbox_events WHERE type = 'coupon.issued'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(payload["coupon_id"], coupon);
    assert_eq!(payload["user_id"], user);
    assert_eq!(payload["user_coupon_id"], body["user_coupon_id"]);
    assert!(payload["occurred_at"].is_string());

    let metrics = scrape(&app).await;
    let outcomes = [("issued", 1.0), ("already_issued", 0.0), ("sold_out", 0.0), ("not_active", 0.0), ("error", 0.0)];
    for (outcome, want) in outcomes {
        let outcome = format!(r#"outcome="{outcome}""#);
        assert_metric(&metrics, "coupon_issue_total", &[r#"strategy="redis-lua""#, &outcome], want);
    }
    assert_metric(&metrics, "coupon_remaining", &[&format!(r#"coupon_id="{coupon}""#)], 9.0);
}

#[tokio::test]
async fn the_openapi_document_describes_every_coupon_route() {
    let app = coupon_app().await;
    let doc = json_of(app.get("/api-docs/openapi.json").await, 200).await;
    for (path, method) in [
        ("/api/coupons", "get"),
        ("/api/coupons/{coupon_id}", "get"),
        ("/api/coupons/{coupon_id}/issue", "post"),
        ("/api/users/{user_id}/coupons", "get"),
        ("/api/admin/coupons", "post"),
        ("/api/admin/coupons/{coupon_id}", "patch"),
        ("/api/admin/coupons/{coupon_id}/stats", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} missing");
    }
    assert!(doc["components"]["schemas"]["IssuedCouponView"].is_object());
}
