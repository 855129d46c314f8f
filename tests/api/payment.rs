//! Payment (seed 001 US-009, US-010, US-015), cancellation and refund.

use chrono::{Duration, Utc};
use jupang::http::auth::Role;
use reqwest::Method;
use serde_json::json;

use crate::support::{
    CouponSpec, TestApp, assert_error, assert_metric, balance_of, cancel, count, coupon, coupon_state, events,
    for_each_strategy, held_fixed, hold, json_of, option, pay, placed, product_in, scrape, set_expiry, status_of,
    stock_of, sweep,
};

/// A KR user with `balance` and a PENDING order of `qty` x `price` (stock 10): (user, option, order).
async fn pending(app: &TestApp, balance: i64, price: i64, qty: i64) -> (i64, i64, String) {
    let user = app.create_user("KR", balance).await;
    let opt = option(app, price, 10).await;
    let order = placed(app, user, &[(opt, qty)]).await;
    (user, opt, order)
}

/// Asserts a refused payment changed nothing: order PENDING, balance, reservation, no payment.
async fn nothing_paid(app: &TestApp, user: i64, balance: i64, opt: i64, order: &str, reserved: i32) {
    assert_eq!(status_of(app, order).await, "PENDING");
    assert_eq!(balance_of(app, user).await, balance);
    assert_eq!(stock_of(app, opt).await, (10, reserved));
    assert_eq!(count(app, "payments").await, 0);
    assert_eq!(count(app, "balance_transactions").await, 0);
    assert!(events(app, "payment.completed").await.is_empty());
}

for_each_strategy! {
    #[tokio::test]
    async fn paying_50000_with_100000_leaves_50000_confirms_stock_sets_paid_and_emits_events(strategy: Strategy) {
        let app = strategy.spawn().await;
        let (user, opt, order) = pending(&app, 100_000, 25_000, 2).await;
        let body = json_of(pay(&app, user, &order, None).await, 200).await;
        assert_eq!(body["order_id"], order.as_str());
        assert_eq!(body["status"], "PAID");
        assert_eq!(body["total_amount"], json!({"amount": 50000, "currency": "KRW"}));
        assert_eq!(body["discount_amount"]["amount"], 0);
        assert_eq!(body["final_amount"]["amount"], 50_000);
        assert_eq!(body["balance_after"], json!({"amount": 50000, "currency": "KRW"}));
        assert!(body["paid_at"].is_string());
        assert_eq!(balance_of(&app, user).await, 50_000);
        assert_eq!(stock_of(&app, opt).await, (8, 0), "stock confirmed, reservation released");
        assert_eq!(status_of(&app, &order).await, "PAID");
        let tx: (String, i64, i64) =
            sqlx::query_as("SELECT type, amount, balance_after FROM balance_transactions WHERE order_id = $1::uuid")
                .bind(&order)
                .fetch_one(&app.db)
                .await
                .unwrap();
        assert_eq!(tx, ("PAYMENT".to_owned(), -50_000, 50_000));
        let payment: (String, String, i64) =
            sqlx::query_as("SELECT status, method, amount FROM payments WHERE order_id = $1::uuid")
                .bind(&order)
                .fetch_one(&app.db)
                .await
                .unwrap();
        assert_eq!(payment, ("COMPLETED".to_owned(), "WALLET".to_owned(), 50_000));
        let completed = events(&app, "payment.completed").await;
        assert_eq!(completed.len(), 1);
        assert_eq!(completed[0]["order_id"], order.as_str());
        assert_eq!(completed[0]["amount"]["amount"], 50_000);
        assert_eq!(completed[0]["method"], "WALLET");
        assert!(events(&app, "coupon.used").await.is_empty());
    }

    #[tokio::test]
    async fn paying_150000_with_100000_is_insufficient_balance_and_the_order_stays_pending(strategy: Strategy) {
        let app = strategy.spawn().await;
        let (user, opt, order) = pending(&app, 100_000, 75_000, 2).await;
        let body = assert_error(pay(&app, user, &order, None).await, 400, "INSUFFICIENT_BALANCE").await;
        assert_eq!(body["details"]["required"]["amount"], 150_000);
        nothing_paid(&app, user, 100_000, opt, &order, 2).await;
    }

    #[tokio::test]
    async fn paying_an_expired_order_is_400_order_expired(strategy: Strategy) {
        let app = strategy.spawn().await;
        let (user, opt, order) = pending(&app, 100_000, 1_000, 3).await;
        sweep(&app, Utc::now() + Duration::hours(1)).await;
        assert_eq!(status_of(&app, &order).await, "EXPIRED");
        let body = assert_error(pay(&app, user, &order, None).await, 400, "ORDER_EXPIRED").await;
        assert!(body["message"].as_str().unwrap().contains("다시 생성"));
        assert_eq!(balance_of(&app, user).await, 100_000);
        assert_eq!(stock_of(&app, opt).await, (10, 0));
    }

    #[tokio::test]
    async fn paying_a_pending_order_past_its_expiry_expires_it_and_releases_its_stock(strategy: Strategy) {
        let app = strategy.spawn().await;
        let (user, opt, order) = pending(&app, 100_000, 1_000, 3).await;
        set_expiry(&app, &order, -1).await;
        assert_error(pay(&app, user, &order, None).await, 400, "ORDER_EXPIRED").await;
        assert_eq!(status_of(&app, &order).await, "EXPIRED", "expired by the payment itself, no sweep needed");
        assert_eq!(stock_of(&app, opt).await, (10, 0));
        assert_eq!(balance_of(&app, user).await, 100_000);
        assert_eq!(count(&app, "payments").await, 0);
    }

    #[tokio::test]
    async fn paying_a_paid_or_cancelled_order_is_400_order_not_payable(strategy: Strategy) {
        let app = strategy.spawn().await;
        let (user, opt, order) = pending(&app, 100_000, 1_000, 1).await;
        json_of(pay(&app, user, &order, None).await, 200).await;
        assert_error(pay(&app, user, &order, None).await, 400, "ORDER_NOT_PAYABLE").await;
        assert_eq!(balance_of(&app, user).await, 99_000, "charged once");
        let second = placed(&app, user, &[(opt, 1)]).await;
        json_of(cancel(&app, user, &second).await, 200).await;
        assert_error(pay(&app, user, &second, None).await, 400, "ORDER_NOT_PAYABLE").await;
        assert_eq!(balance_of(&app, user).await, 99_000);
    }

    #[tokio::test]
    async fn paying_someone_elses_order_is_404_and_for_someone_else_403(strategy: Strategy) {
        let app = strategy.spawn().await;
        let (user, opt, order) = pending(&app, 100_000, 1_000, 1).await;
        let thief = app.create_user("KR", 100_000).await;
        assert_error(pay(&app, thief, &order, None).await, 404, "ORDER_NOT_FOUND").await;
        let body = json!({"user_id": user});
        let res =
            app.send_json(Method::POST, &format!("/api/orders/{order}/payment"), Some(&app.customer(thief)), &body).await;
        assert_error(res, 403, "FORBIDDEN").await;
        nothing_paid(&app, user, 100_000, opt, &order, 1).await;
        assert_eq!(balance_of(&app, thief).await, 100_000);
    }

    #[tokio::test]
    async fn paying_with_a_fixed_coupon_discounts_it_and_marks_the_coupon_used(strategy: Strategy) {
        let app = strategy.spawn().await;
        let (user, _, order) = pending(&app, 100_000, 30_000, 1).await;
        let uc = held_fixed(&app, user, 5_000).await;
        let body = json_of(pay(&app, user, &order, Some(uc)).await, 200).await;
        assert_eq!(body["discount_amount"]["amount"], 5_000);
        assert_eq!(body["final_amount"]["amount"], 25_000);
        assert_eq!(body["balance_after"]["amount"], 75_000);
        assert_eq!(balance_of(&app, user).await, 75_000);
        let (status, used, used_by) = coupon_state(&app, uc).await;
        assert_eq!((status.as_str(), used), ("USED", true));
        assert_eq!(used_by.unwrap().to_string(), order);
        let used_events = events(&app, "coupon.used").await;
        assert_eq!(used_events.len(), 1);
        assert_eq!(used_events[0]["user_coupon_id"], uc.to_string());
        assert_eq!(used_events[0]["order_id"], order.as_str());
        assert_eq!(used_events[0]["discount_amount"]["amount"], 5_000);
        assert!(used_events[0]["coupon_id"].is_i64());
    }

    #[tokio::test]
    async fn a_percent_coupon_rounds_down_and_stops_at_its_cap(strategy: Strategy) {
        let app = strategy.spawn().await;
        let (user, _, order) = pending(&app, 100_000, 9_999, 1).await;
        let week = Utc::now() + Duration::days(7);
        let fifteen = hold(&app, coupon(&app, CouponSpec::percent(15, None)).await, user, week).await;
        let body = json_of(pay(&app, user, &order, Some(fifteen)).await, 200).await;
        assert_eq!(body["discount_amount"]["amount"], 1_499, "15% of 9,999 rounded down");
        let (user2, _, big) = pending(&app, 1_000_000, 100_000, 5).await;
        let capped = hold(&app, coupon(&app, CouponSpec::percent(50, Some(20_000))).await, user2, week).await;
        let body = json_of(pay(&app, user2, &big, Some(capped)).await, 200).await;
        assert_eq!(body["discount_amount"]["amount"], 20_000);
        assert_eq!(body["final_amount"]["amount"], 480_000);
    }

    #[tokio::test]
    async fn paying_with_an_expired_coupon_is_400_expired_coupon_and_changes_nothing(strategy: Strategy) {
        let app = strategy.spawn().await;
        let (user, opt, order) = pending(&app, 100_000, 10_000, 1).await;
        let c = coupon(&app, CouponSpec::fixed(1_000)).await;
        let uc = hold(&app, c, user, Utc::now() - Duration::minutes(1)).await;
        assert_error(pay(&app, user, &order, Some(uc)).await, 400, "EXPIRED_COUPON").await;
        nothing_paid(&app, user, 100_000, opt, &order, 1).await;
        assert_eq!(coupon_state(&app, uc).await, ("AVAILABLE".to_owned(), false, None));
    }

    #[tokio::test]
    async fn paying_with_an_already_used_coupon_is_400_already_used(strategy: Strategy) {
        let app = strategy.spawn().await;
        let (user, opt, first) = pending(&app, 100_000, 10_000, 1).await;
        let uc = held_fixed(&app, user, 1_000).await;
        json_of(pay(&app, user, &first, Some(uc)).await, 200).await;
        let second = placed(&app, user, &[(opt, 1)]).await;
        assert_error(pay(&app, user, &second, Some(uc)).await, 400, "ALREADY_USED").await;
        assert_eq!(status_of(&app, &second).await, "PENDING");
        assert_eq!(balance_of(&app, user).await, 91_000);
    }

    #[tokio::test]
    async fn paying_with_another_users_coupon_is_400_invalid_coupon(strategy: Strategy) {
        let app = strategy.spawn().await;
        let (user, opt, order) = pending(&app, 100_000, 10_000, 1).await;
        let owner = app.create_user("KR", 0).await;
        let theirs = held_fixed(&app, owner, 1_000).await;
        assert_error(pay(&app, user, &order, Some(theirs)).await, 400, "INVALID_COUPON").await;
        assert_error(pay(&app, user, &order, Some(uuid::Uuid::now_v7())).await, 400, "INVALID_COUPON").await;
        nothing_paid(&app, user, 100_000, opt, &order, 1).await;
        assert_eq!(coupon_state(&app, theirs).await.0, "AVAILABLE");
    }

    #[tokio::test]
    async fn paying_below_the_coupons_minimum_is_400_coupon_min_order_amount(strategy: Strategy) {
        let app = strategy.spawn().await;
        let (user, opt, order) = pending(&app, 100_000, 10_000, 1).await;
        let mut spec = CouponSpec::fixed(3_000);
        spec.min_order_amount = 30_000;
        let uc = hold(&app, coupon(&app, spec).await, user, Utc::now() + Duration::days(1)).await;
        let body = assert_error(pay(&app, user, &order, Some(uc)).await, 400, "COUPON_MIN_ORDER_AMOUNT").await;
        assert_eq!(body["details"]["min_order_amount"], 30_000);
        nothing_paid(&app, user, 100_000, opt, &order, 1).await;
    }

    #[tokio::test]
    async fn a_coupon_restricted_to_another_category_or_market_is_400_coupon_not_applicable(strategy: Strategy) {
        let app = strategy.spawn().await;
        let user = app.create_user("KR", 100_000).await;
        let (_, opts) = product_in(&app, "toys", &[(10_000, 10)], false).await;
        let order = placed(&app, user, &[(opts[0], 1)]).await;
        let mut food_only = CouponSpec::fixed(1_000);
        food_only.categories = Some(vec!["food".into()]);
        let week = Utc::now() + Duration::days(7);
        let uc = hold(&app, coupon(&app, food_only).await, user, week).await;
        assert_error(pay(&app, user, &order, Some(uc)).await, 400, "COUPON_NOT_APPLICABLE").await;
        let mut us = CouponSpec::fixed(100);
        us.market = "US";
        let us_coupon = hold(&app, coupon(&app, us).await, user, week).await;
        assert_error(pay(&app, user, &order, Some(us_coupon)).await, 400, "COUPON_NOT_APPLICABLE").await;
        nothing_paid(&app, user, 100_000, opts[0], &order, 1).await;
    }

    #[tokio::test]
    async fn cancelling_a_pending_order_returns_its_reserved_stock(strategy: Strategy) {
        let app = strategy.spawn().await;
        let (user, opt, order) = pending(&app, 100_000, 1_000, 4).await;
        let body = json_of(cancel(&app, user, &order).await, 200).await;
        assert_eq!(body["status"], "CANCELLED");
        assert!(body["cancelled_at"].is_string());
        assert_eq!(stock_of(&app, opt).await, (10, 0));
        assert_eq!(balance_of(&app, user).await, 100_000);
        assert_error(cancel(&app, user, &order).await, 400, "ORDER_NOT_CANCELLABLE").await;
    }

    #[tokio::test]
    async fn cancelling_a_paid_order_refunds_the_wallet_returns_stock_and_restores_the_coupon(strategy: Strategy) {
        let app = strategy.spawn().await;
        let (user, opt, order) = pending(&app, 100_000, 20_000, 2).await;
        let uc = held_fixed(&app, user, 5_000).await;
        json_of(pay(&app, user, &order, Some(uc)).await, 200).await;
        assert_eq!((balance_of(&app, user).await, stock_of(&app, opt).await), (65_000, (8, 0)));
        let body = json_of(cancel(&app, user, &order).await, 200).await;
        assert_eq!(body["status"], "REFUNDED");
        assert_eq!(balance_of(&app, user).await, 100_000);
        assert_eq!(stock_of(&app, opt).await, (10, 0));
        assert_eq!(coupon_state(&app, uc).await, ("AVAILABLE".to_owned(), false, None));
        let refund: (i64, i64) = sqlx::query_as(
            "SELECT amount, balance_after FROM balance_transactions WHERE type = 'REFUND' AND order_id = $1::uuid",
        )
        .bind(&order)
        .fetch_one(&app.db)
        .await
        .unwrap();
        assert_eq!(refund, (35_000, 100_000));
        let payment: String = sqlx::query_scalar("SELECT status FROM payments WHERE order_id = $1::uuid")
            .bind(&order)
            .fetch_one(&app.db)
            .await
            .unwrap();
        assert_eq!(payment, "REFUNDED");
        // The restored coupon is usable again.
        let again = placed(&app, user, &[(opt, 1)]).await;
        assert_eq!(json_of(pay(&app, user, &again, Some(uc)).await, 200).await["discount_amount"]["amount"], 5_000);
    }

    #[tokio::test]
    async fn refunding_an_order_whose_coupon_has_since_expired_marks_the_coupon_expired(strategy: Strategy) {
        let app = strategy.spawn().await;
        let (user, _, order) = pending(&app, 100_000, 20_000, 1).await;
        let uc = held_fixed(&app, user, 5_000).await;
        json_of(pay(&app, user, &order, Some(uc)).await, 200).await;
        sqlx::query("UPDATE user_coupons SET expires_at = now() - interval '1 minute' WHERE id = $1")
            .bind(uc)
            .execute(&app.db)
            .await
            .unwrap();
        json_of(cancel(&app, user, &order).await, 200).await;
        assert_eq!(coupon_state(&app, uc).await, ("EXPIRED".to_owned(), false, None));
        assert_eq!(balance_of(&app, user).await, 100_000);
    }

    #[tokio::test]
    async fn a_fulfilled_order_is_400_order_not_cancellable_and_keeps_everything(strategy: Strategy) {
        let app = strategy.spawn().await;
        let (user, opt, order) = pending(&app, 100_000, 10_000, 1).await;
        json_of(pay(&app, user, &order, None).await, 200).await;
        sqlx::query("UPDATE orders SET status = 'FULFILLED' WHERE id = $1::uuid")
            .bind(&order)
            .execute(&app.db)
            .await
            .unwrap();
        assert_error(cancel(&app, user, &order).await, 400, "ORDER_NOT_CANCELLABLE").await;
        assert_eq!(status_of(&app, &order).await, "FULFILLED");
        assert_eq!(balance_of(&app, user).await, 90_000);
        assert_eq!(stock_of(&app, opt).await, (9, 0));
    }

    #[tokio::test]
    async fn only_the_owner_or_an_ops_admin_may_cancel_an_order(strategy: Strategy) {
        let app = strategy.spawn().await;
        let (user, opt, order) = pending(&app, 100_000, 10_000, 1).await;
        let stranger = app.create_user("KR", 0).await;
        assert_error(cancel(&app, stranger, &order).await, 404, "ORDER_NOT_FOUND").await;
        assert_eq!(stock_of(&app, opt).await, (10, 1));
        let res = app
            .request(Method::POST, &format!("/api/orders/{order}/cancel"))
            .bearer_auth(app.token(stranger, &[Role::OpsAdmin]))
            .send()
            .await
            .unwrap();
        assert_eq!(json_of(res, 200).await["status"], "CANCELLED");
        assert_eq!(balance_of(&app, user).await, 100_000);
    }

    #[tokio::test]
    async fn payment_and_order_outcomes_are_counted_in_metrics(strategy: Strategy) {
        // A server process of its own: its counters moved for this test's requests only.
        let app = strategy.spawn_child().await;
        let (user, _, order) = pending(&app, 100, 1_000, 1).await;
        assert_error(pay(&app, user, &order, None).await, 400, "INSUFFICIENT_BALANCE").await;
        let text = scrape(&app).await;
        assert_metric(&text, "payment_total", &[r#"outcome="insufficient_balance""#], 1.0);
        assert_metric(&text, "payment_total", &[r#"outcome="paid""#], 0.0);
        assert_metric(&text, "order_create_total", &[r#"outcome="created""#], 1.0);
    }
}
