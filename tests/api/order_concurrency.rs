//! Concurrency promises of orders and payment, tested with real simultaneous HTTP requests:
//! no overselling, no double charge, expiry and payment never both win, no deadlocks.

use chrono::{Duration, Utc};
use jupang::workers::expiry::sweep;

use crate::support::{
    TestApp, balance_of, cancel_request, count, for_each_strategy, json_of, option, order_request, pay_request, placed,
    send_all, set_expiry, status_of, stock_of, stock_store,
};

async fn error_code(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: serde_json::Value = res.json().await.unwrap();
    (status, body["code"].as_str().unwrap_or("").to_owned())
}

/// One round of the race: a sweep that considers the order due and a payment, at the same time.
/// `expires_in` places the order's expiry relative to now; the sweep's clock is `sweep_ahead`
/// seconds later, so with a future expiry both sides believe they are right.
async fn race(app: &TestApp, expires_in: i64, sweep_ahead: i64) -> &'static str {
    let user = app.create_user("KR", 10_000).await;
    let opt = option(app, 1_000, 10).await;
    let order = placed(app, user, &[(opt, 1)]).await;
    set_expiry(app, &order, expires_in).await;
    let (db, stock) = (app.db.clone(), stock_store(app).await);
    let sweeper = tokio::spawn(async move { sweep(&db, &stock, Utc::now() + Duration::seconds(sweep_ahead)).await });
    let payment = tokio::spawn(pay_request(app, user, &order, None).send());
    sweeper.await.unwrap().expect("sweep");
    let (status, code) = error_code(payment.await.unwrap().unwrap()).await;
    match status_of(app, &order).await.as_str() {
        "PAID" => {
            assert_eq!(status, 200);
            assert_eq!(balance_of(app, user).await, 9_000, "debited once");
            assert_eq!(stock_of(app, opt).await, (9, 0), "stock confirmed");
            "paid"
        }
        "EXPIRED" => {
            assert_eq!((status, code.as_str()), (400, "ORDER_EXPIRED"));
            assert_eq!(balance_of(app, user).await, 10_000, "wallet untouched");
            assert_eq!(stock_of(app, opt).await, (10, 0), "reservation released");
            "expired"
        }
        other => panic!("the race left the order {other}"),
    }
}

for_each_strategy! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn fifty_simultaneous_single_unit_orders_on_a_stock_of_10_create_exactly_10(strategy: Strategy) {
        let app = strategy.spawn().await;
        let opt = option(&app, 1_000, 10).await;
        let users = app.create_users(50, "KR", 0).await;
        let responses = send_all(users.iter().map(|u| order_request(&app, *u, &[(opt, 1)])).collect()).await;
        let mut created = 0;
        for res in responses {
            match error_code(res).await {
                (201, _) => created += 1,
                (400, code) => assert_eq!(code, "INSUFFICIENT_STOCK"),
                other => panic!("unexpected answer {other:?}"),
            }
        }
        assert_eq!(created, 10);
        assert_eq!(stock_of(&app, opt).await, (10, 10), "reserved exactly the stock, never more");
        assert_eq!(count(&app, "orders").await, 10);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn paying_the_same_order_several_times_at_once_charges_once(strategy: Strategy) {
        let app = strategy.spawn().await;
        let user = app.create_user("KR", 100_000).await;
        let opt = option(&app, 30_000, 10).await;
        let order = placed(&app, user, &[(opt, 1)]).await;
        let responses = send_all((0..5).map(|_| pay_request(&app, user, &order, None)).collect()).await;
        let mut answers = Vec::new();
        for res in responses {
            answers.push(error_code(res).await);
        }
        assert_eq!(answers.iter().filter(|(s, _)| *s == 200).count(), 1, "{answers:?}");
        assert!(
            answers.iter().filter(|(s, _)| *s != 200).all(|(s, c)| *s == 400 && c == "ORDER_NOT_PAYABLE"),
            "{answers:?}"
        );
        assert_eq!(balance_of(&app, user).await, 70_000);
        assert_eq!(count(&app, "payments").await, 1);
        assert_eq!(count(&app, "balance_transactions").await, 1);
        assert_eq!(stock_of(&app, opt).await, (9, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn expiry_racing_a_payment_leaves_the_order_either_paid_or_expired_never_both_nor_neither(strategy: Strategy) {
        let app = strategy.spawn().await;
        let mut outcomes = Vec::new();
        for round in 0..24 {
            let outcome = match round % 3 {
                // Just before expiry by the payment's clock, already due by the sweeper's: either may win.
                0 | 1 => race(&app, 2, 60).await,
                // Just past due for both: whoever locks first, the order ends EXPIRED.
                _ => {
                    let o = race(&app, -1, 0).await;
                    assert_eq!(o, "expired");
                    o
                }
            };
            outcomes.push(outcome);
        }
        // Every round was checked for consistency above; the mix is only informative.
        let paid = outcomes.iter().filter(|o| **o == "paid").count();
        println!("paid {paid}, expired {}", outcomes.len() - paid);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn mixed_multi_item_orders_locking_options_in_different_orders_never_deadlock(strategy: Strategy) {
        let app = strategy.spawn().await;
        let mut opts = Vec::new();
        for _ in 0..5 {
            opts.push(option(&app, 1_000, 1_000).await);
        }
        let users = app.create_users(30, "KR", 1_000_000).await;
        // Each order lists the options in a different rotation and direction.
        let orders: Vec<Vec<(i64, i64)>> = (0..30)
            .map(|i| {
                let mut lines: Vec<(i64, i64)> = (0..5).map(|k| (opts[(i + k) % 5], 1 + (k as i64 % 2))).collect();
                if i % 2 == 1 {
                    lines.reverse();
                }
                lines.truncate(3 + i % 3);
                lines
            })
            .collect();
        let responses =
            send_all(users.iter().zip(&orders).map(|(u, items)| order_request(&app, *u, items)).collect()).await;
        let mut ids = Vec::new();
        for res in responses {
            let body = json_of(res, 201).await;
            ids.push(body["order_id"].as_str().unwrap().to_owned());
        }
        let reserved: i64 = orders.iter().flatten().map(|(_, q)| q).sum();
        let mut total_reserved = 0;
        for o in &opts {
            total_reserved += i64::from(stock_of(&app, *o).await.1);
        }
        assert_eq!(total_reserved, reserved);

        // Then half are paid and half cancelled, all at once, over the same options.
        let requests = users
            .iter()
            .zip(&ids)
            .enumerate()
            .map(|(i, (u, id))| {
                if i % 2 == 0 {
                    pay_request(&app, *u, id, None)
                } else {
                    cancel_request(&app, *u, id)
                }
            })
            .collect();
        for res in send_all(requests).await {
            json_of(res, 200).await;
        }
        let sold: i64 = orders.iter().step_by(2).flatten().map(|(_, q)| q).sum();
        let mut stock = 0;
        for o in &opts {
            let (s, r) = stock_of(&app, *o).await;
            assert_eq!(r, 0, "no reservation left behind");
            stock += i64::from(s);
        }
        assert_eq!(stock, 5 * 1_000 - sold);
    }
}
