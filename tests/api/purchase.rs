//! The V2 purchase path (issue 10): buyers order and pay at once, over HTTP, on one or two
//! `serve` processes; payments never wait on the shared option row; the stock ledger and its
//! fold keep Postgres exact, and `jupang reconcile` checks Postgres against its own ledger.

use std::time::Duration;

use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use crate::support::{
    Strategy, TestApp, balance_of, child::serve_app, eventually, json_of, option, pay_request, placed, spawn_app_with,
    stock_of, stock_store,
};

/// What one buyer got: `Some(true)` paid, `Some(false)` refused `INSUFFICIENT_STOCK`.
async fn order_and_pay(
    client: reqwest::Client,
    token: String,
    base: String,
    user: i64,
    opt: i64,
) -> Result<bool, String> {
    let send = |method: Method, path: String, body: Value| -> RequestBuilder {
        client.request(method, format!("{base}{path}")).bearer_auth(&token).json(&body)
    };
    let items = json!([{ "product_option_id": opt, "quantity": 1 }]);
    let res = send(Method::POST, "/api/orders".into(), json!({ "user_id": user, "items": items }))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let body: Value = res.json().await.map_err(|e| e.to_string())?;
    match (status, body["code"].as_str()) {
        (201, _) => {}
        (400, Some("INSUFFICIENT_STOCK")) => return Ok(false),
        other => return Err(format!("order answered {other:?}: {body}")),
    }
    let order = body["order_id"].as_str().unwrap().to_owned();
    let res = send(Method::POST, format!("/api/orders/{order}/payment"), json!({ "user_id": user }))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    match res.status().as_u16() {
        200 => Ok(true),
        other => Err(format!("payment answered {other}: {}", res.text().await.unwrap_or_default())),
    }
}

/// `buyers` users, each ordering one unit of a fresh option of `units` and paying at once,
/// spread over `bases` in turn; returns (the option, how many paid, how many were refused).
async fn rush(app: &TestApp, bases: &[String], buyers: usize, units: i32) -> (i64, usize, usize) {
    let opt = option(app, 1_000, units).await;
    let users = app.create_users(buyers, "KR", 10_000).await;
    let tasks: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            let (client, token, base) = (app.client.clone(), app.customer(*u), bases[i % bases.len()].clone());
            tokio::spawn(order_and_pay(client, token, base, *u, opt))
        })
        .collect();
    let (mut paid, mut refused) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(true) => paid += 1,
            Ok(false) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    (opt, paid, refused)
}

/// Sold out everywhere: the Redis counter, the exact Postgres figures, the option row once the
/// fold ran, and a ledger that adds up (50 reserves, 50 sales, nothing else).
async fn assert_sold_out(app: &TestApp, opt: i64, units: i64) {
    let counter = stock_store(app).await.available(&[opt]).await.unwrap();
    assert_eq!(counter, vec![Some(0)], "the Redis counter");
    eventually(10, "the consumer persisted every order and the exact figures are 0/0", || async {
        stock_of(app, opt).await == (0, 0)
    })
    .await;
    let row = || async {
        sqlx::query_as::<_, (i32, i32)>("SELECT stock, reserved FROM product_options WHERE id = $1")
            .bind(opt)
            .fetch_one(&app.db)
            .await
            .unwrap()
    };
    eventually(5, "the fold applied every movement to the option row", || async { row().await == (0, 0) }).await;
    let ledger: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT kind, count(*), sum(d_stock)::bigint, sum(d_reserved)::bigint FROM stock_movements \
         WHERE option_id = $1 GROUP BY kind ORDER BY kind",
    )
    .bind(opt)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(
        ledger,
        vec![("reserve".to_owned(), units, 0, units), ("sale".to_owned(), units, -units, -units)],
        "one reserve and one sale per paid unit"
    );
    let paid: i64 = sqlx::query_scalar("SELECT count(*) FROM payments WHERE status = 'COMPLETED'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(paid, units, "every 200 is one stored payment");
    let report = crate::support::child::reconcile(app, &[]).await;
    assert!(report.contains("0 drifted"), "{report}");
    assert!(report.contains("ledger: 0 option(s) disagree"), "{report}");
}

/// A V2 app whose consumer and fold run.
async fn v2_with_workers() -> TestApp {
    spawn_app_with(|v| {
        v.insert("JUPANG_ORDER_STRATEGY".into(), "redis-lua".into());
        v.insert("JUPANG_WORKERS".into(), "consumer".into());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_buyers_for_fifty_units_each_order_and_pay_exactly_fifty_are_paid() {
    let app = v2_with_workers().await;
    let (opt, paid, refused) = rush(&app, std::slice::from_ref(&app.base), 300, 50).await;
    assert_eq!((paid, refused), (50, 250));
    assert_sold_out(&app, opt, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_buyers_for_fifty_units_on_two_serve_processes_exactly_fifty_are_paid() {
    let app = v2_with_workers().await;
    let second = serve_app(&app, &[("JUPANG_ORDER_STRATEGY", "redis-lua"), ("JUPANG_WORKERS", "consumer")]).await;
    let bases = [app.base.clone(), format!("http://{}", second.addr)];
    let (opt, paid, refused) = rush(&app, &bases, 300, 50).await;
    assert_eq!((paid, refused), (50, 250));
    assert_sold_out(&app, opt, 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_completes_while_another_transaction_holds_the_option_row() {
    let app = Strategy::RedisLua.spawn().await;
    let user = app.create_user("KR", 10_000).await;
    let opt = option(&app, 1_000, 5).await;
    let order = placed(&app, user, &[(opt, 2)]).await;
    // The lock an admin adjustment, a V1 order or the fold holds; a V2 payment (which here also
    // persists the order the consumer has not) must not wait for it.
    let mut blocker = app.db.begin().await.unwrap();
    sqlx::query("SELECT id FROM product_options WHERE id = $1 FOR NO KEY UPDATE")
        .bind(opt)
        .execute(&mut *blocker)
        .await
        .unwrap();
    let res = tokio::time::timeout(Duration::from_secs(5), pay_request(&app, user, &order, None).send())
        .await
        .expect("the payment never waits on the option row")
        .unwrap();
    json_of(res, 200).await;
    blocker.rollback().await.unwrap();
    assert_eq!(balance_of(&app, user).await, 8_000);
    assert_eq!(stock_of(&app, opt).await, (3, 0), "exact at once, before any fold");
}

/// Holds every idempotent answer's commit for a while: the window between a V2 admission and
/// its stored answer, made wide enough to kill the process inside it.
const HOLD_ANSWERS: &str = "CREATE FUNCTION hold_answer() RETURNS trigger AS $$
     BEGIN PERFORM pg_sleep(60); RETURN NEW; END $$ LANGUAGE plpgsql;
     CREATE TRIGGER hold_answer BEFORE UPDATE ON idempotency_keys
     FOR EACH ROW WHEN (NEW.state = 'COMPLETED') EXECUTE FUNCTION hold_answer();";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_kill_9_between_admission_and_answer_then_a_retry_with_the_same_key_replays_the_one_admission() {
    let app = Strategy::RedisLua.spawn().await;
    let user = app.create_user("KR", 10_000).await;
    let opt = option(&app, 1_000, 5).await;
    let v2 = [("JUPANG_ORDER_STRATEGY", "redis-lua"), ("JUPANG_WORKERS", "none")];
    let mut first = serve_app(&app, &v2).await;
    sqlx::raw_sql(HOLD_ANSWERS).execute(&app.db).await.unwrap();
    let body = json!({ "user_id": user, "items": [{ "product_option_id": opt, "quantity": 2 }] });
    let order_on = |addr: &str| {
        app.client
            .post(format!("http://{addr}/api/orders"))
            .bearer_auth(app.customer(user))
            .header("Idempotency-Key", "crash-1")
            .json(&body)
    };
    let in_flight = tokio::spawn(order_on(&first.addr).send());

    // Inside the window: admitted in Redis, the key bound to the order, the answer not stored.
    let stock = stock_store(&app).await;
    let bound = || async {
        sqlx::query_scalar::<_, Option<uuid::Uuid>>("SELECT order_id FROM idempotency_keys WHERE user_id = $1")
            .bind(user)
            .fetch_optional(&app.db)
            .await
            .unwrap()
            .flatten()
    };
    let held = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%COMPLETED%' \
             AND wait_event = 'PgSleep'",
        )
        .fetch_one(&app.db)
        .await
        .unwrap()
            == 1
    };
    eventually(10, "the answer's commit is held after the admission", || async { held().await }).await;
    let order_id = bound().await.expect("the key is bound to the order before the admission");
    assert!(!stock.order(order_id).await.unwrap().is_empty(), "admitted in Redis");
    assert_eq!(stock.available(&[opt]).await.unwrap(), vec![Some(3)]);

    first.child.kill().await.unwrap();
    assert!(in_flight.await.unwrap().is_err(), "the client never got an answer");
    sqlx::raw_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() \
         AND wait_event = 'PgSleep'; DROP TRIGGER hold_answer ON idempotency_keys;",
    )
    .execute(&app.db)
    .await
    .unwrap();
    // The claim's lease has run out (30 s; moved instead of waited for).
    sqlx::query("UPDATE idempotency_keys SET claimed_at = now() - interval '1 hour' WHERE user_id = $1")
        .bind(user)
        .execute(&app.db)
        .await
        .unwrap();

    let second = serve_app(&app, &v2).await;
    let retry = json_of(order_on(&second.addr).send().await.unwrap(), 201).await;
    assert_eq!(retry["order_id"], json!(order_id.to_string()), "the retry found the admission");
    let replay = order_on(&second.addr).send().await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(json_of(replay, 201).await["order_id"], retry["order_id"]);
    assert_eq!(stock.available(&[opt]).await.unwrap(), vec![Some(3)], "admitted once: 2 units taken, once");
    let orders: i64 = sqlx::query_scalar("SELECT count(*) FROM orders WHERE user_id = $1")
        .bind(user)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(orders, 1);
    assert_eq!(stock_of(&app, opt).await, (5, 2), "Postgres holds the one reservation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refunds_and_cancels_racing_payments_on_one_option_keep_stock_within_what_was_received() {
    let app = v2_with_workers().await;
    let opt = option(&app, 1_000, 25).await;
    // Ten buyers have paid; they ask for refunds while ten more order and pay and five more
    // order and cancel before paying, all at once.
    let refunders = app.create_users(10, "KR", 10_000).await;
    let mut paid = Vec::new();
    for u in &refunders {
        let order = placed(&app, *u, &[(opt, 1)]).await;
        json_of(pay_request(&app, *u, &order, None).send().await.unwrap(), 200).await;
        paid.push(order);
    }
    let (buyers, cancellers) = (app.create_users(10, "KR", 10_000).await, app.create_users(5, "KR", 10_000).await);
    let watch = {
        let db = app.db.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..200 {
                let (stock, reserved): (i64, i64) =
                    sqlx::query_as("SELECT stock, reserved FROM option_stock WHERE id = $1")
                        .bind(opt)
                        .fetch_one(&db)
                        .await
                        .unwrap();
                seen.push((stock, reserved));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        })
    };
    let mut tasks = Vec::new();
    for (u, order) in refunders.iter().zip(&paid) {
        let req = crate::support::cancel_request(&app, *u, order);
        tasks.push(tokio::spawn(async move { Some(req.send().await.unwrap()) }));
    }
    for u in buyers {
        let (client, token, base) = (app.client.clone(), app.customer(u), app.base.clone());
        tasks.push(tokio::spawn(async move {
            let paid = order_and_pay(client, token, base, u, opt).await.unwrap();
            assert!(paid, "fifteen units left for fifteen buyers, whatever the refunds do");
            None
        }));
    }
    for u in &cancellers {
        let req = crate::support::cancel_request(&app, *u, &placed(&app, *u, &[(opt, 1)]).await);
        tasks.push(tokio::spawn(async move { Some(req.send().await.unwrap()) }));
    }
    for t in tasks {
        if let Some(res) = t.await.unwrap() {
            assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        }
    }
    for (stock, reserved) in watch.await.unwrap() {
        assert!(0 <= reserved && reserved <= stock && stock <= 25, "stock {stock}, reserved {reserved}");
    }
    // Twenty sold, ten of them refunded, five cancelled: 15 left, nothing held.
    assert_eq!(stock_of(&app, opt).await, (15, 0));
    assert_eq!(stock_store(&app).await.available(&[opt]).await.unwrap(), vec![Some(15)]);
    let report = crate::support::child::reconcile(&app, &[]).await;
    assert!(report.contains("0 drifted") && report.contains("ledger: 0 option(s) disagree"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_postgres_cut_during_a_rush_admission_answers_payments_503_with_nothing_half_done_then_succeed() {
    use crate::support::proxy::{TcpProxy, upstream_of};
    let mut proxy = TcpProxy::start(upstream_of(&std::env::var("DATABASE_URL").unwrap()).await).await;
    let mut direct = String::new();
    let app = spawn_app_with(|v| {
        direct = v["DATABASE_URL"].clone();
        v.insert("DATABASE_URL".into(), proxy.url_through(&direct));
        v.insert("JUPANG_ORDER_STRATEGY".into(), "redis-lua".into());
        v.insert("JUPANG_WORKERS".into(), "consumer".into());
    })
    .await;
    let db = sqlx::PgPool::connect(&direct).await.unwrap();
    let (warm, opt) = (option(&app, 100, 100).await, option(&app, 1_000, 30).await);
    let users = app.create_users(60, "KR", 10_000).await;
    // The sale has begun: every buyer's market and both options are cached, as during a rush.
    for u in &users {
        placed(&app, *u, &[(warm, 1)]).await;
    }
    placed(&app, users[0], &[(opt, 1)]).await;
    let stock = stock_store(&app).await;
    assert_eq!(stock.available(&[opt]).await.unwrap(), vec![Some(29)]);

    proxy.kill().await;
    let answers = crate::support::send_all(
        users[1..].iter().map(|u| crate::support::order_request(&app, *u, &[(opt, 1)])).collect(),
    )
    .await;
    let mut admitted = Vec::new();
    for (u, res) in users[1..].iter().zip(answers) {
        let status = res.status().as_u16();
        let body: Value = res.json().await.unwrap();
        match status {
            201 => admitted.push((*u, body["order_id"].as_str().unwrap().to_owned())),
            400 => assert_eq!(body["code"], "INSUFFICIENT_STOCK"),
            other => panic!("admission answered {other} without Postgres: {body}"),
        }
    }
    assert_eq!(admitted.len(), 29, "admission keeps answering and sells out");
    let refused =
        crate::support::send_all(admitted.iter().map(|(u, o)| pay_request(&app, *u, o, None)).collect()).await;
    for res in refused {
        assert_eq!(res.status(), 503);
    }

    proxy.revive().await;
    let charged: i64 = sqlx::query_scalar("SELECT count(*) FROM balance_transactions WHERE type = 'PAYMENT'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(charged, 0, "no payment left anything behind");
    assert_eq!(stock.available(&[opt]).await.unwrap(), vec![Some(0)], "the counter never moved back");
    let paid = crate::support::send_all(admitted.iter().map(|(u, o)| pay_request(&app, *u, o, None)).collect()).await;
    for res in paid {
        assert_eq!(res.status(), 200);
    }
    eventually(10, "every order persisted and paid, 1 unit still held", || async {
        let s: (i64, i64) = sqlx::query_as("SELECT stock, reserved FROM option_stock WHERE id = $1")
            .bind(opt)
            .fetch_one(&db)
            .await
            .unwrap();
        s == (1, 1)
    })
    .await;
    for (u, _) in &admitted {
        assert_eq!(balance_of(&app, *u).await, 10_000 - 1_000, "charged once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_serve_killed_mid_rush_loses_no_acknowledged_payment_sells_no_unit_twice_and_unpaid_units_return_at_expiry() {
    let app = Strategy::RedisLua.spawn().await;
    let v2 = [
        ("JUPANG_ORDER_STRATEGY", "redis-lua"),
        ("JUPANG_WORKERS", "consumer"),
        ("JUPANG_STREAM_CLAIM_IDLE_MS", "500"),
    ];
    let mut first = serve_app(&app, &v2).await;
    let opt = option(&app, 1_000, 100).await;
    let users = app.create_users(300, "KR", 10_000).await;
    let base = format!("http://{}", first.addr);
    let tasks: Vec<_> = users
        .iter()
        .map(|u| tokio::spawn(order_and_pay(app.client.clone(), app.customer(*u), base.clone(), *u, opt)))
        .collect();
    let payments =
        || async { sqlx::query_scalar::<_, i64>("SELECT count(*) FROM payments").fetch_one(&app.db).await.unwrap() };
    eventually(30, "20 payments stored", || async { payments().await >= 20 }).await;
    first.child.kill().await.unwrap();
    let mut acknowledged = Vec::new();
    for (u, t) in users.iter().zip(tasks) {
        if let Ok(true) = t.await.unwrap() {
            acknowledged.push(*u);
        }
    }
    assert!(!acknowledged.is_empty() && acknowledged.len() < 100, "the kill landed mid-rush");

    // Restarted: its consumer claims the dead one's unacknowledged entries once they idled 500 ms.
    let _second = serve_app(&app, &v2).await;
    let admitted = 100 - stock_store(&app).await.available(&[opt]).await.unwrap()[0].unwrap();
    eventually(15, "every admitted order persisted", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM orders").fetch_one(&app.db).await.unwrap();
        n == admitted
    })
    .await;
    for u in &acknowledged {
        let (orders, paid): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE o.status = 'PAID' AND p.status = 'COMPLETED') \
             FROM orders o LEFT JOIN payments p ON p.order_id = o.id WHERE o.user_id = $1",
        )
        .bind(u)
        .fetch_one(&app.db)
        .await
        .unwrap();
        assert_eq!((orders, paid), (1, 1), "user {u} was answered 200: paid exactly once");
        assert_eq!(balance_of(&app, *u).await, 9_000);
    }
    let sold: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'PAID'").fetch_one(&app.db).await.unwrap();
    assert!(sold >= acknowledged.len() as i64 && sold <= admitted, "{sold} sold of {admitted} admitted");

    // Unpaid orders expire and give their units back, in Redis and in Postgres.
    crate::support::sweep(&app, chrono::Utc::now() + chrono::Duration::hours(2)).await;
    assert_eq!(stock_store(&app).await.available(&[opt]).await.unwrap(), vec![Some(100 - sold)]);
    assert_eq!(stock_of(&app, opt).await, (100 - sold as i32, 0));
    let report = crate::support::child::reconcile(&app, &[]).await;
    assert!(report.contains("0 drifted") && report.contains("ledger: 0 option(s) disagree"), "{report}");
}
