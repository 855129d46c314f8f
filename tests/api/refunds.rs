//! Fulfilment and refunds by an agent (issue 15): partial and full, by items or by amount,
//! stock back only for units not shipped, never more than paid, idempotent, and safe against a
//! payment (or another refund) of the same order at the same moment.

use jupang::{
    http::auth::Role,
    store::{pg::movements, redis::stock::group_of},
};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

use crate::support::{
    Strategy, TestApp, assert_error, avail_of, balance_of, cancel, coupon_state, events, for_each_strategy, held_fixed,
    json_of, option, pay, pay_request, placed, redis_cmd, send_all, status_of, stock_of, stock_store,
};
use uuid::Uuid;

/// The agent's user id in tokens (no such user: agents are not customers).
const AGENT: i64 = 900_001;

fn agent(app: &TestApp) -> String {
    app.token(AGENT, &[Role::CsAgent])
}

/// POST /api/admin/orders/{id}/refunds as a `cs_agent`, not yet sent.
fn refund_request(app: &TestApp, order: &str, body: &Value, key: Option<&str>) -> RequestBuilder {
    let req =
        app.request(Method::POST, &format!("/api/admin/orders/{order}/refunds")).bearer_auth(agent(app)).json(body);
    match key {
        Some(k) => req.header("Idempotency-Key", k),
        None => req,
    }
}

async fn refund(app: &TestApp, order: &str, body: Value) -> Response {
    refund_request(app, order, &body, None).send().await.expect("request")
}

async fn fulfill(app: &TestApp, order: &str, token: &str) -> Response {
    app.request(Method::POST, &format!("/api/admin/orders/{order}/fulfill")).bearer_auth(token).send().await.unwrap()
}

/// `(type, amount, balance_after)` of the user's wallet ledger, oldest first.
async fn ledger(app: &TestApp, user: i64) -> Vec<(String, i64, i64)> {
    sqlx::query_as(
        "SELECT type, amount, balance_after FROM balance_transactions WHERE user_id = $1 ORDER BY created_at, id",
    )
    .bind(user)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

/// Postgres agrees with its own stock ledger (V2 orders' movements match their refunds).
async fn no_ledger_drift(app: &TestApp) {
    assert_eq!(movements::check(&app.db).await.unwrap(), vec![]);
}

fn ledger_row(kind: &str, amount: i64, after: i64) -> (String, i64, i64) {
    (kind.to_owned(), amount, after)
}

for_each_strategy! {
    #[tokio::test]
    async fn a_partial_then_a_full_refund_are_exact_return_only_unshipped_units_and_a_third_exceeds(strategy: Strategy) {
        let app = strategy.spawn().await;
        let user = app.create_user("KR", 100_000).await;
        let (a, b) = (option(&app, 10_000, 10).await, option(&app, 5_000, 10).await);
        let order = placed(&app, user, &[(a, 2), (b, 1)]).await;
        json_of(pay(&app, user, &order, None).await, 200).await;
        assert_eq!((stock_of(&app, a).await, stock_of(&app, b).await), ((8, 0), (9, 0)));

        // One unit of A before shipping: 10,000 back, the unit back on sale.
        let first = json_of(refund(&app, &order, json!({"items": [{"product_option_id": a, "quantity": 1}], "reason": "broken"})).await, 201).await;
        assert_eq!(first["amount"], json!({"amount": 10000, "currency": "KRW"}));
        assert_eq!(first["items"], json!([{"product_option_id": a, "quantity": 1, "restocked": true}]));
        assert_eq!(first["balance_after"]["amount"], 85_000);
        assert_eq!(first["order"]["status"], "PAID");
        assert_eq!(first["order"]["refunded_amount"]["amount"], 10_000);
        assert_eq!((stock_of(&app, a).await, stock_of(&app, b).await), ((9, 0), (9, 0)));

        // Shipped, then everything left: 15,000 back, no unit back on sale, REFUNDED.
        assert_eq!(json_of(fulfill(&app, &order, &agent(&app)).await, 200).await["status"], "FULFILLED");
        let body = json!({"items": [{"product_option_id": a, "quantity": 1}, {"product_option_id": b, "quantity": 1}], "reason": "lost"});
        let second = json_of(refund(&app, &order, body).await, 201).await;
        assert_eq!(second["amount"]["amount"], 15_000);
        assert_eq!(second["items"][0]["restocked"], false);
        assert_eq!(second["order"]["status"], "REFUNDED");
        assert_eq!(second["order"]["refunded_amount"]["amount"], 25_000);
        assert_eq!((stock_of(&app, a).await, stock_of(&app, b).await), ((9, 0), (9, 0)), "shipped units stay out");
        assert_eq!(status_of(&app, &order).await, "REFUNDED");
        assert_eq!(balance_of(&app, user).await, 100_000);
        assert_eq!(
            ledger(&app, user).await,
            vec![ledger_row("PAYMENT", -25_000, 75_000), ledger_row("REFUND", 10_000, 85_000), ledger_row("REFUND", 15_000, 100_000)]
        );

        // A third refund has nothing left to give back.
        let third = assert_error(refund(&app, &order, json!({"amount": 1, "reason": "again"})).await, 400, "REFUND_EXCEEDS_PAID").await;
        assert_eq!(third["details"], json!({"refundable_amount": 0, "requested": 1}));
        assert_eq!(balance_of(&app, user).await, 100_000);

        let refunded = events(&app, "order.refunded").await;
        assert_eq!(refunded.len(), 2);
        assert_eq!(refunded[0]["order_id"], order.as_str());
        assert_eq!(refunded[0]["amount"], json!({"amount": 10000, "currency": "KRW"}));
        assert_eq!(refunded[0]["reason"], "broken");
        assert!(refunded[1]["occurred_at"].is_string());
        assert_eq!(refunded[1]["items"].as_array().unwrap().len(), 2);
        let payment: String = sqlx::query_scalar("SELECT status FROM payments WHERE order_id = $1::uuid")
            .bind(&order)
            .fetch_one(&app.db)
            .await
            .unwrap();
        assert_eq!(payment, "REFUNDED");
        if strategy == Strategy::RedisLua {
            assert_eq!((avail_of(&app, a).await, avail_of(&app, b).await), (Some(9), Some(9)), "Redis counters too");
        }
        no_ledger_drift(&app).await;
    }

    #[tokio::test]
    async fn a_refund_by_amount_covers_no_units_until_it_completes_an_unshipped_order(strategy: Strategy) {
        let app = strategy.spawn().await;
        let user = app.create_user("KR", 50_000).await;
        let opt = option(&app, 10_000, 10).await;
        let order = placed(&app, user, &[(opt, 3)]).await;
        json_of(pay(&app, user, &order, None).await, 200).await;
        let part = json_of(refund(&app, &order, json!({"amount": 4_000, "reason": "late"})).await, 201).await;
        assert_eq!((part["items"].clone(), part["order"]["status"].clone()), (json!([]), json!("PAID")));
        assert_eq!(stock_of(&app, opt).await, (7, 0));
        let over = assert_error(refund(&app, &order, json!({"amount": 26_001, "reason": "x"})).await, 400, "REFUND_EXCEEDS_PAID").await;
        assert_eq!(over["details"]["refundable_amount"], 26_000);
        let rest = json_of(refund(&app, &order, json!({"amount": 26_000, "reason": "late"})).await, 201).await;
        assert_eq!(rest["order"]["status"], "REFUNDED");
        assert_eq!(rest["items"], json!([{"product_option_id": opt, "quantity": 3, "restocked": true}]));
        assert_eq!((stock_of(&app, opt).await, balance_of(&app, user).await), ((10, 0), 50_000));
        if strategy == Strategy::RedisLua {
            assert_eq!(avail_of(&app, opt).await, Some(10));
        }
        no_ledger_drift(&app).await;
    }

    #[tokio::test]
    async fn a_replay_with_the_same_idempotency_key_refunds_once(strategy: Strategy) {
        let app = strategy.spawn().await;
        let user = app.create_user("KR", 30_000).await;
        let opt = option(&app, 10_000, 10).await;
        let order = placed(&app, user, &[(opt, 2)]).await;
        json_of(pay(&app, user, &order, None).await, 200).await;
        let body = json!({"items": [{"product_option_id": opt, "quantity": 1}], "reason": "broken"});
        let first = refund_request(&app, &order, &body, Some("refund-1")).send().await.unwrap();
        assert_eq!(first.status(), 201);
        let first = first.text().await.unwrap();
        let again = refund_request(&app, &order, &body, Some("refund-1")).send().await.unwrap();
        assert_eq!(again.status(), 201);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        assert_eq!(again.text().await.unwrap(), first, "the first answer, byte for byte");
        assert_eq!(balance_of(&app, user).await, 20_000);
        assert_eq!(stock_of(&app, opt).await, (9, 0));
        let refunds: i64 = sqlx::query_scalar("SELECT count(*) FROM order_refunds").fetch_one(&app.db).await.unwrap();
        assert_eq!(refunds, 1);
        // The same key for another body is refused; a new key refunds again.
        let other = json!({"amount": 1, "reason": "broken"});
        assert_error(refund_request(&app, &order, &other, Some("refund-1")).send().await.unwrap(), 422, "IDEMPOTENCY_KEY_REUSED").await;
        json_of(refund_request(&app, &order, &body, Some("refund-2")).send().await.unwrap(), 201).await;
        assert_eq!(balance_of(&app, user).await, 30_000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn refunds_racing_the_payment_of_the_same_order_never_both_apply_wrongly(strategy: Strategy) {
        let app = strategy.spawn().await;
        let opt = option(&app, 10_000, 40).await;
        let users = app.create_users(12, "KR", 10_000).await;
        let mut orders = Vec::new();
        for u in &users {
            orders.push(placed(&app, *u, &[(opt, 1)]).await);
        }
        // Each order: its payment and two full refunds, all at once.
        let full = json!({"amount": 10_000, "reason": "race"});
        let mut requests = Vec::new();
        for (u, o) in users.iter().zip(&orders) {
            requests.push(pay_request(&app, *u, o, None));
            requests.push(refund_request(&app, o, &full, None));
            requests.push(refund_request(&app, o, &full, None));
        }
        let answers = send_all(requests).await;
        let mut refunded_total = 0;
        for (i, (u, o)) in users.iter().zip(&orders).enumerate() {
            let codes: Vec<u16> = answers[3 * i..3 * i + 3].iter().map(|r| r.status().as_u16()).collect();
            assert_eq!(codes[0], 200, "the payment never loses to a refund: {codes:?}");
            let refunds = codes[1..].iter().filter(|c| **c == 201).count();
            assert!(codes[1..].iter().all(|c| [201, 400, 409].contains(c)), "{codes:?}");
            assert!(refunds <= 1, "one full refund at most: {codes:?}");
            let (status, balance) = (status_of(&app, o).await, balance_of(&app, *u).await);
            if refunds == 1 {
                assert_eq!((status.as_str(), balance), ("REFUNDED", 10_000));
                refunded_total += 1;
            } else {
                assert_eq!((status.as_str(), balance), ("PAID", 0), "refused before the payment: nothing given back");
            }
        }
        let (stock, reserved) = stock_of(&app, opt).await;
        assert_eq!((stock, reserved), (40 - 12 + refunded_total, 0), "each refunded unit back once");
        if strategy == Strategy::RedisLua {
            assert_eq!(avail_of(&app, opt).await, Some(i64::from(stock)));
        }
        no_ledger_drift(&app).await;
    }

    #[tokio::test]
    async fn the_coupon_comes_back_only_on_a_full_refund_of_an_unshipped_order(strategy: Strategy) {
        let app = strategy.spawn().await;
        let user = app.create_user("KR", 100_000).await;
        let opt = option(&app, 10_000, 10).await;
        let (kept, shipped) = (placed(&app, user, &[(opt, 2)]).await, placed(&app, user, &[(opt, 2)]).await);
        let (uc1, uc2) = (held_fixed(&app, user, 5_000).await, held_fixed(&app, user, 5_000).await);
        json_of(pay(&app, user, &kept, Some(uc1)).await, 200).await;
        json_of(pay(&app, user, &shipped, Some(uc2)).await, 200).await;
        // 15,000 charged for 20,000 of goods: one unit is worth 7,500.
        let part = json_of(refund(&app, &kept, json!({"items": [{"product_option_id": opt, "quantity": 1}], "reason": "x"})).await, 201).await;
        assert_eq!(part["amount"]["amount"], 7_500);
        assert_eq!(coupon_state(&app, uc1).await.0, "USED", "not on a partial refund");
        json_of(refund(&app, &kept, json!({"items": [{"product_option_id": opt, "quantity": 1}], "reason": "x"})).await, 201).await;
        assert_eq!(coupon_state(&app, uc1).await, ("AVAILABLE".to_owned(), false, None));
        json_of(fulfill(&app, &shipped, &agent(&app)).await, 200).await;
        json_of(refund(&app, &shipped, json!({"amount": 15_000, "reason": "x"})).await, 201).await;
        assert_eq!(coupon_state(&app, uc2).await.0, "USED", "a shipped order keeps its coupon used");
        assert_eq!(balance_of(&app, user).await, 100_000);
    }

    #[tokio::test]
    async fn a_customer_cancel_after_a_partial_refund_gives_back_only_what_is_left(strategy: Strategy) {
        let app = strategy.spawn().await;
        let user = app.create_user("KR", 30_000).await;
        let opt = option(&app, 10_000, 10).await;
        let order = placed(&app, user, &[(opt, 3)]).await;
        json_of(pay(&app, user, &order, None).await, 200).await;
        json_of(refund(&app, &order, json!({"items": [{"product_option_id": opt, "quantity": 1}], "reason": "x"})).await, 201).await;
        assert_eq!(json_of(cancel(&app, user, &order).await, 200).await["refunded_amount"]["amount"], 30_000);
        assert_eq!((balance_of(&app, user).await, stock_of(&app, opt).await), (30_000, (10, 0)));
        if strategy == Strategy::RedisLua {
            assert_eq!(avail_of(&app, opt).await, Some(10));
        }
        no_ledger_drift(&app).await;
    }
}

#[tokio::test]
async fn fulfilment_is_for_paid_orders_and_agents_only() {
    let app = Strategy::DbPessimistic.spawn().await;
    let user = app.create_user("KR", 10_000).await;
    let opt = option(&app, 10_000, 10).await;
    let order = placed(&app, user, &[(opt, 1)]).await;
    assert_error(fulfill(&app, &order, &agent(&app)).await, 409, "ORDER_NOT_FULFILLABLE").await;
    assert_error(refund(&app, &order, json!({"amount": 1, "reason": "x"})).await, 409, "ORDER_NOT_REFUNDABLE").await;
    json_of(pay(&app, user, &order, None).await, 200).await;
    assert_error(fulfill(&app, &order, &app.customer(user)).await, 403, "FORBIDDEN").await;
    let marketer = app.token(AGENT, &[Role::MarketingManager]);
    assert_error(fulfill(&app, &order, &marketer).await, 403, "FORBIDDEN").await;
    let ops = app.token(AGENT, &[Role::OpsAdmin]);
    assert_eq!(json_of(fulfill(&app, &order, &ops).await, 200).await["status"], "FULFILLED");
    assert_error(fulfill(&app, &order, &agent(&app)).await, 409, "ORDER_NOT_FULFILLABLE").await;
    assert_error(cancel(&app, user, &order).await, 400, "ORDER_NOT_CANCELLABLE").await;
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_error(fulfill(&app, &unknown, &agent(&app)).await, 404, "ORDER_NOT_FOUND").await;
}

#[tokio::test]
async fn a_refund_names_items_or_an_amount_and_no_more_units_than_were_paid() {
    let app = Strategy::DbPessimistic.spawn().await;
    let user = app.create_user("KR", 20_000).await;
    let (opt, other) = (option(&app, 10_000, 10).await, option(&app, 1_000, 10).await);
    let order = placed(&app, user, &[(opt, 2)]).await;
    json_of(pay(&app, user, &order, None).await, 200).await;
    let item = |id: i64, q: i64| json!([{"product_option_id": id, "quantity": q}]);
    let both = json!({"items": item(opt, 1), "amount": 5, "reason": "x"});
    assert_eq!(
        assert_error(refund(&app, &order, both).await, 400, "VALIDATION_ERROR").await["details"]["field"],
        "amount"
    );
    let neither = json!({"reason": "x"});
    assert_eq!(
        assert_error(refund(&app, &order, neither).await, 400, "VALIDATION_ERROR").await["details"]["field"],
        "items"
    );
    let blank = json!({"amount": 5, "reason": "  "});
    assert_eq!(
        assert_error(refund(&app, &order, blank).await, 400, "VALIDATION_ERROR").await["details"]["field"],
        "reason"
    );
    let too_many = assert_error(
        refund(&app, &order, json!({"items": item(opt, 3), "reason": "x"})).await,
        400,
        "REFUND_EXCEEDS_PAID",
    )
    .await;
    assert_eq!(too_many["details"], json!({"product_option_id": opt, "refundable_quantity": 2, "requested": 3}));
    let not_ordered = assert_error(
        refund(&app, &order, json!({"items": item(other, 1), "reason": "x"})).await,
        400,
        "REFUND_EXCEEDS_PAID",
    )
    .await;
    assert_eq!(not_ordered["details"]["refundable_quantity"], 0);
    assert_eq!((balance_of(&app, user).await, stock_of(&app, opt).await), (0, (8, 0)), "nothing changed");
}

/// A V2 order across two stock groups refunded in two parts: each refund puts its units back
/// once, through its own marker in each group it touches; a retry is a no-op; a restock cut off
/// between its groups (the second group's step undone by hand) gives back only that group when
/// it runs again.
#[tokio::test]
async fn refunds_of_an_order_across_stock_groups_restock_each_group_once_per_refund() {
    let app = Strategy::RedisLua.spawn().await;
    let user = app.create_user("KR", 100_000).await;
    let a = option(&app, 10_000, 10).await;
    let mut b = option(&app, 5_000, 10).await;
    while group_of(b) == group_of(a) {
        b = option(&app, 5_000, 10).await;
    }
    let order = placed(&app, user, &[(a, 2), (b, 2)]).await;
    json_of(pay(&app, user, &order, None).await, 200).await;
    assert_eq!((avail_of(&app, a).await, avail_of(&app, b).await), (Some(8), Some(8)));

    let first = json_of(
        refund(&app, &order, json!({"items": [{"product_option_id": a, "quantity": 1}], "reason": "x"})).await,
        201,
    )
    .await;
    assert_eq!(first["items"][0]["restocked"], true);
    assert_eq!((avail_of(&app, a).await, avail_of(&app, b).await), (Some(9), Some(8)), "one group, one unit");
    let items = json!([{"product_option_id": a, "quantity": 1}, {"product_option_id": b, "quantity": 2}]);
    let second = json_of(refund(&app, &order, json!({"items": items, "reason": "y"})).await, 201).await;
    assert_eq!((avail_of(&app, a).await, avail_of(&app, b).await), (Some(10), Some(10)), "a second refund of A counts");

    let stock = stock_store(&app).await;
    let refund_id: Uuid = second["refund_id"].as_str().unwrap().parse().unwrap();
    let order_id: Uuid = order.parse().unwrap();
    let lines = [(a, 1), (b, 2)];
    assert!(!stock.restock(refund_id, order_id, &lines).await.unwrap(), "a retry gives nothing back");
    assert_eq!((avail_of(&app, a).await, avail_of(&app, b).await), (Some(10), Some(10)));

    // As if the restock had stopped after A's group: B's marker and units not there yet.
    let _: i64 = redis_cmd(redis::cmd("DEL").arg(stock.keys().refund(group_of(b), refund_id))).await;
    let _: i64 = redis_cmd(redis::cmd("DECRBY").arg(stock.keys().avail(b)).arg(2)).await;
    assert!(stock.restock(refund_id, order_id, &lines).await.unwrap());
    assert_eq!((avail_of(&app, a).await, avail_of(&app, b).await), (Some(10), Some(10)), "only B's group again");
    assert_eq!((stock_of(&app, a).await, stock_of(&app, b).await), ((10, 0), (10, 0)));
    no_ledger_drift(&app).await;
}
