//! Group commit of V2 payments (issue 10): payments that arrive together are paid in one
//! Postgres transaction, one savepoint each. Over HTTP, with every payment sent at once, on a
//! child `serve` whose own `/metrics` show the payments were batched: a refused payment is rolled
//! back alone and charged nothing, every accepted one is charged exactly once, the stock is exact
//! in Redis and Postgres, and a replayed `Idempotency-Key` pays once across batches.

use std::{collections::HashMap, sync::Arc};

use reqwest::RequestBuilder;
use serde_json::Value;
use tokio::sync::Barrier;

use crate::support::{
    Strategy, TestApp, balance_of, metric_value, option, pay_request, placed, scrape, spawn_child_app_with, stock_of,
    stock_store,
};

const PRICE: i64 = 1_000;

/// A V2 child `serve` whose stream consumer runs, so it races the payments persisting orders.
async fn v2_child() -> TestApp {
    spawn_child_app_with(|v| {
        v.insert("JUPANG_ORDER_STRATEGY".into(), Strategy::RedisLua.as_str().into());
        v.insert("JUPANG_WORKERS".into(), "consumer".into());
    })
    .await
}

/// Sends every request at the same moment (a barrier releases them together); returns each
/// answer's status, error code (if any) and body, in order.
async fn all_at_once(requests: Vec<RequestBuilder>) -> Vec<(u16, Option<String>, Value)> {
    let barrier = Arc::new(Barrier::new(requests.len()));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|req| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let res = req.send().await.expect("request");
                let status = res.status().as_u16();
                let body: Value = res.json().await.unwrap_or(Value::Null);
                (status, body["code"].as_str().map(str::to_owned), body)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers
}

/// (batches, payments) the child's group commit made: `payment_batch_size` count and sum.
async fn batches(app: &TestApp) -> (f64, f64) {
    let exposition = scrape(app).await;
    (
        metric_value(&exposition, "payment_batch_size_count", &[]),
        metric_value(&exposition, "payment_batch_size_sum", &[]),
    )
}

async fn count(app: &TestApp, sql: &str, user: i64) -> i64 {
    sqlx::query_scalar(sql).bind(user).fetch_one(&app.db).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_buyers_paying_at_once_are_charged_once_when_accepted_and_nothing_when_refused_for_their_balance() {
    let app = v2_child().await;
    // Each buyer orders two units, then pays both at once: the rich can pay both, the middle
    // one of the two (which one is a race), the poor neither.
    let (n, units) = (30, 180);
    let opt = option(&app, PRICE, units).await;
    let rich = app.create_users(n, "KR", 2 * PRICE).await;
    let middle = app.create_users(n, "KR", PRICE + 500).await;
    let poor = app.create_users(n, "KR", 500).await;
    let buyers: Vec<i64> = rich.iter().chain(&middle).chain(&poor).copied().collect();
    let mut orders = Vec::new();
    for &u in &buyers {
        for _ in 0..2 {
            orders.push((u, placed(&app, u, &[(opt, 1)]).await));
        }
    }
    let answers = all_at_once(orders.iter().map(|(u, o)| pay_request(&app, *u, o, None)).collect()).await;

    let mut paid: HashMap<i64, i64> = HashMap::new();
    for ((u, _), (status, code, body)) in orders.iter().zip(&answers) {
        match (status, code.as_deref()) {
            (200, _) => *paid.entry(*u).or_default() += 1,
            (400, Some("INSUFFICIENT_BALANCE")) => {}
            other => panic!("payment of user {u} answered {other:?}: {body}"),
        }
    }
    for (group, want_paid, want_balance) in [(&rich, 2, 0), (&middle, 1, 500), (&poor, 0, 500)] {
        for &u in group {
            let got = paid.get(&u).copied().unwrap_or(0);
            assert_eq!(got, want_paid, "user {u}: payments accepted");
            assert_eq!(balance_of(&app, u).await, want_balance, "user {u}: charged once per accepted payment");
            let stored = count(&app, "SELECT count(*) FROM payments WHERE user_id = $1", u).await;
            let charges = count(&app, "SELECT count(*) FROM balance_transactions WHERE user_id = $1", u).await;
            let orders_paid =
                count(&app, "SELECT count(*) FROM orders WHERE user_id = $1 AND status = 'PAID'", u).await;
            assert_eq!(
                (stored, charges, orders_paid),
                (want_paid, want_paid, want_paid),
                "user {u}: rows of what was paid"
            );
        }
    }

    // Every unit was ordered; 3n of them paid, 3n still reserved by the refused (PENDING) orders.
    let sold = 3 * n as i32;
    assert_eq!(stock_store(&app).await.available(&[opt]).await.unwrap(), vec![Some(0)], "the Redis counter");
    assert_eq!(stock_of(&app, opt).await, (units - sold, units - sold), "Postgres: stock and reserved");
    let (made, total) = batches(&app).await;
    assert_eq!(total, orders.len() as f64, "every payment went through a batch");
    assert!(made < total, "some payments shared a batch ({made} batches for {total} payments)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_idempotency_key_replayed_across_batches_pays_once_and_answers_the_first_answer() {
    let app = v2_child().await;
    let n = 40;
    let opt = option(&app, PRICE, 2 * n).await;
    // Half can pay, half are refused: a replay answers either exactly as the first time.
    let mut buyers = app.create_users(n as usize / 2, "KR", PRICE).await;
    buyers.extend(app.create_users(n as usize / 2, "KR", PRICE / 2).await);
    let mut first = Vec::new();
    let mut second = Vec::new();
    for &u in &buyers {
        first.push(placed(&app, u, &[(opt, 1)]).await);
        second.push(placed(&app, u, &[(opt, 1)]).await);
    }
    let keyed = |i: usize| pay_request(&app, buyers[i], &first[i], None).header("Idempotency-Key", format!("pay-{i}"));

    // Wave 1: each key twice at once (the copy waits on the claim, or replays).
    let wave: Vec<_> = (0..buyers.len()).flat_map(|i| [keyed(i), keyed(i)]).collect();
    let answers = all_at_once(wave).await;
    let mut original = Vec::new();
    for (i, pair) in answers.chunks(2).enumerate() {
        let firsts: Vec<_> = pair.iter().filter(|a| a.1.as_deref() != Some("IDEMPOTENCY_IN_PROGRESS")).collect();
        assert!(!firsts.is_empty(), "user {}: both copies answered in progress", buyers[i]);
        for a in &firsts {
            assert_eq!((a.0, &a.2), (firsts[0].0, &firsts[0].2), "user {}: the copies agree", buyers[i]);
        }
        original.push(firsts[0].clone());
    }
    // Wave 2: every key replayed while the second orders are paid in batches of their own.
    let mut wave: Vec<_> = (0..buyers.len()).map(keyed).collect();
    wave.extend(buyers.iter().zip(&second).map(|(u, o)| pay_request(&app, *u, o, None)));
    let answers = all_at_once(wave).await;
    for (i, &u) in buyers.iter().enumerate() {
        let (status, _, body) = &answers[i];
        assert_eq!((*status, body), (original[i].0, &original[i].2), "user {u}: the replay answers the first answer");
        let rich = i < buyers.len() / 2;
        assert_eq!(original[i].0, if rich { 200 } else { 400 }, "user {u}: {:?}", original[i]);
        // The rich paid the first order only (their second is refused for the balance).
        let second = &answers[buyers.len() + i];
        assert_eq!((second.0, second.1.as_deref()), (400, Some("INSUFFICIENT_BALANCE")), "user {u}: {second:?}");
        let charged = count(&app, "SELECT count(*) FROM balance_transactions WHERE user_id = $1", u).await;
        assert_eq!(charged, i64::from(rich), "user {u}: charged once at most");
        assert_eq!(balance_of(&app, u).await, if rich { 0 } else { PRICE / 2 }, "user {u}: the balance");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_order_paid_twice_at_once_without_a_key_is_paid_once_and_the_other_refused_not_payable() {
    let app = v2_child().await;
    let n = 30;
    let opt = option(&app, PRICE, n).await;
    let buyers = app.create_users(n as usize, "KR", 5 * PRICE).await;
    let mut orders = Vec::new();
    for &u in &buyers {
        orders.push(placed(&app, u, &[(opt, 1)]).await);
    }
    let wave: Vec<_> = buyers
        .iter()
        .zip(&orders)
        .flat_map(|(u, o)| [pay_request(&app, *u, o, None), pay_request(&app, *u, o, None)])
        .collect();
    let answers = all_at_once(wave).await;
    for (pair, &u) in answers.chunks(2).zip(&buyers) {
        let mut got: Vec<_> = pair.iter().map(|a| (a.0, a.1.clone())).collect();
        got.sort();
        assert_eq!(got, vec![(200, None), (400, Some("ORDER_NOT_PAYABLE".to_owned()))], "user {u}");
        assert_eq!(balance_of(&app, u).await, 4 * PRICE, "user {u}: charged once");
    }
    assert_eq!(stock_of(&app, opt).await, (0, 0), "Postgres: every unit sold, none reserved");
}
