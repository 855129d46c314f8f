//! Coupon campaigns for their managers: the list with counts, and revoking issued coupons
//! (AVAILABLE -> REVOKED, USED reported, V2 admissions not yet persisted included, a revoke
//! racing a payment with exactly one winner).

use jupang::{http::auth::Role, store::pg::admitted_coupons, store::redis::coupons as redis_coupons};
use reqwest::{Method, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    TestApp, assert_error, count, create_coupon, issue, json_of, manager, order_items, pay, persisted, redis_store,
    simple, spawn_app,
};

async fn revoke(app: &TestApp, coupon_id: i64, ids: &[Uuid], reason: &str) -> Response {
    let body = json!({ "user_coupon_ids": ids, "reason": reason });
    app.send_json(Method::POST, &format!("/api/admin/coupons/{coupon_id}/revoke"), Some(&manager(app)), &body).await
}

async fn issued(app: &TestApp, coupon_id: i64, user: i64) -> Uuid {
    json_of(issue(app, coupon_id, user).await, 201).await["user_coupon_id"].as_str().unwrap().parse().unwrap()
}

/// An order of 20,000 KRW (above the coupon's minimum) for `user`; its id.
async fn order_of(app: &TestApp, user: i64, option: i64) -> String {
    let body = json_of(order_items(app, user, &[(option, 1)]).await, 201).await;
    body["order_id"].as_str().unwrap().to_owned()
}

async fn campaign(app: &TestApp, coupon_id: i64) -> Value {
    let res = app.request(Method::GET, "/api/admin/coupons?status=ISSUING&market=KR").bearer_auth(manager(app)).send();
    let page = json_of(res.await.unwrap(), 200).await;
    page["items"].as_array().unwrap().iter().find(|c| c["id"] == coupon_id).cloned().expect("listed")
}

#[tokio::test]
async fn a_revoke_takes_available_coupons_persisted_or_not_leaves_used_ones_and_a_revoked_one_cannot_pay() {
    // No consumer: what Redis admits stays unpersisted until someone needs it.
    let app = spawn_app().await;
    let coupon = create_coupon(&app, 10, json!({})).await;
    let option = {
        let id = simple(&app, "Revoke", 20_000, 50).await;
        sqlx::query_scalar("SELECT id FROM product_options WHERE product_id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap()
    };
    let users = app.create_users(3, "KR", 1_000_000).await;
    let (kept, spent, unpersisted) = (
        issued(&app, coupon, users[0]).await,
        issued(&app, coupon, users[1]).await,
        issued(&app, coupon, users[2]).await,
    );
    json_of(pay(&app, users[1], &order_of(&app, users[1], option).await, Some(spent)).await, 200).await;
    assert_eq!(persisted(&app.db, coupon).await.1, 1, "only the spent coupon is in Postgres yet");

    let stranger = Uuid::now_v7();
    let done = json_of(revoke(&app, coupon, &[unpersisted, spent, stranger], "abuse").await, 200).await;
    assert_eq!(done["revoked"], json!([unpersisted]), "{done}");
    assert_eq!((done["used"].clone(), done["not_found"].clone()), (json!([spent]), json!([stranger])));

    // It cannot pay, with its own code, and is listed as REVOKED.
    let order = order_of(&app, users[2], option).await;
    assert_error(pay(&app, users[2], &order, Some(unpersisted)).await, 400, "COUPON_REVOKED").await;
    let mine = app.get_as(users[2], &format!("/api/users/{}/coupons?status=REVOKED", users[2])).await;
    assert_eq!(json_of(mine, 200).await["items"][0]["status"], "REVOKED");
    // The consumer persisting the admission later changes nothing.
    let redis = redis_store(&app).await;
    let admitted = redis_coupons::admissions(&redis, coupon).await.unwrap();
    let mut tx = app.db.begin().await.unwrap();
    assert!(admitted_coupons::persist(&mut tx, &admitted).await.unwrap().iter().all(|c| c.id == kept));
    tx.commit().await.unwrap();
    let status: String = sqlx::query_scalar("SELECT status FROM user_coupons WHERE id = $1")
        .bind(unpersisted)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(status, "REVOKED");

    // Counts: a revoked coupon stays issued (it does not return to the first-come quantity).
    let listed = campaign(&app, coupon).await;
    assert_eq!(listed["status"], "ISSUING");
    assert_eq!(
        listed["stats"],
        json!({ "issued": 3, "persisted": 3, "used": 1, "revoked": 1, "remaining": 7 }),
        "{listed}"
    );
    assert_eq!(persisted(&app.db, coupon).await.0, 3);
    let res = app.request(Method::GET, &format!("/api/admin/coupons/{coupon}/stats")).bearer_auth(manager(&app)).send();
    let stats = json_of(res.await.unwrap(), 200).await;
    assert_eq!(
        (stats["issued"].clone(), stats["used"].clone(), stats["revoked"].clone()),
        (json!(3), json!(1), json!(1))
    );
}

#[tokio::test]
async fn a_revoke_racing_a_payment_with_the_coupon_has_exactly_one_winner_and_both_answer_clearly() {
    let app = spawn_app().await;
    let coupon = create_coupon(&app, 100, json!({})).await;
    let product = simple(&app, "Race", 20_000, 100).await;
    let option: i64 = sqlx::query_scalar("SELECT id FROM product_options WHERE product_id = $1")
        .bind(product)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let users = app.create_users(12, "KR", 1_000_000).await;
    let (mut paid, mut revoked) = (0, 0);
    for user in users {
        let uc = issued(&app, coupon, user).await;
        let order = order_of(&app, user, option).await;
        let ids = [uc];
        let (payment, revoke) = tokio::join!(pay(&app, user, &order, Some(uc)), revoke(&app, coupon, &ids, "race"));
        let revoke = json_of(revoke, 200).await;
        let status: String = sqlx::query_scalar("SELECT status FROM user_coupons WHERE id = $1")
            .bind(uc)
            .fetch_one(&app.db)
            .await
            .unwrap();
        if payment.status() == 200 {
            paid += 1;
            assert_eq!((revoke["used"].clone(), revoke["revoked"].clone()), (json!([uc]), json!([])), "{revoke}");
            assert_eq!(status, "USED");
        } else {
            revoked += 1;
            assert_error(payment, 400, "COUPON_REVOKED").await;
            assert_eq!((revoke["revoked"].clone(), revoke["used"].clone()), (json!([uc]), json!([])), "{revoke}");
            assert_eq!(status, "REVOKED");
            // Nothing was charged: the order is still PENDING.
            let state: String = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1::uuid")
                .bind(&order)
                .fetch_one(&app.db)
                .await
                .unwrap();
            assert_eq!(state, "PENDING");
        }
    }
    assert_eq!(paid + revoked, 12);
}

#[tokio::test]
async fn a_refused_revoke_is_a_clear_4xx_and_changes_nothing() {
    let app = spawn_app().await;
    let coupon = create_coupon(&app, 10, json!({})).await;
    let user = app.create_user("KR", 0).await;
    let uc = issued(&app, coupon, user).await;
    let before = count(&app, "audit_log").await;
    let error = assert_error(revoke(&app, coupon, &[], "empty").await, 400, "VALIDATION_ERROR").await;
    assert_eq!(error["details"]["field"], "user_coupon_ids");
    let error = assert_error(revoke(&app, coupon, &[uc], "  ").await, 400, "VALIDATION_ERROR").await;
    assert_eq!(error["details"]["field"], "reason");
    assert_error(revoke(&app, 987_654, &[uc], "unknown").await, 404, "COUPON_NOT_FOUND").await;
    let body = json!({ "user_coupon_ids": [uc], "reason": "not mine to revoke" });
    let token = app.token(user, &[Role::InventoryManager]);
    let res = app.send_json(Method::POST, &format!("/api/admin/coupons/{coupon}/revoke"), Some(&token), &body).await;
    assert_error(res, 403, "FORBIDDEN").await;
    assert_eq!(count(&app, "audit_log").await, before, "a refused revoke left an audit entry");
    assert_eq!(count(&app, "user_coupons WHERE status = 'REVOKED'").await, 0);
}
