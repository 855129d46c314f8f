//! Orders across stock groups on the real cluster: two products whose counters live on two
//! masters, so no script can take both; the protocol of `store::redis::stock::across` must keep
//! every order whole, through a rush and through a `kill -9` of `serve` in the middle of one.

use reqwest::Client;
use serde_json::{Value, json};

use super::{cluster_turn, cluster_url, master_of, on_cluster};
use crate::support::{Strategy, TestApp, avail_of, child::serve_app, eventually, option, stock_of, stock_store, sweep};

/// A V2 app on the cluster whose consumer runs.
async fn cluster_order_app() -> TestApp {
    Strategy::RedisLua
        .spawn_with(|v| {
            on_cluster(v);
            v.insert("JUPANG_WORKERS".into(), "consumer".into());
        })
        .await
}

/// Two options of `units` each, of two products, whose counters are on two different masters
/// (hence two slots): asserted, not assumed.
async fn two_products_on_two_masters(app: &TestApp, units: i32) -> (i64, i64) {
    let keys = stock_store(app).await.keys().clone();
    let first = option(app, 1_000, units).await;
    let (slot, master) = master_of(&keys.avail(first)).await;
    for _ in 0..40 {
        let other = option(app, 1_000, units).await;
        let (other_slot, other_master) = master_of(&keys.avail(other)).await;
        if other_master != master {
            assert_ne!(slot, other_slot);
            return (first, other);
        }
    }
    panic!("40 options and none on another master than option {first}");
}

/// What one buyer of one unit of each option got: `Some(order)` paid (with the answered
/// order's lines), `None` refused `INSUFFICIENT_STOCK`; `Err` anything else (a lost connection
/// when the server is killed).
async fn order_and_pay(
    client: Client,
    token: String,
    base: String,
    user: i64,
    lines: [i64; 2],
) -> Result<Option<Value>, String> {
    let items: Vec<Value> = lines.iter().map(|o| json!({ "product_option_id": o, "quantity": 1 })).collect();
    let res = client
        .post(format!("{base}/api/orders"))
        .bearer_auth(&token)
        .json(&json!({ "user_id": user, "items": items }))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    let body: Value = res.json().await.map_err(|e| e.to_string())?;
    match (status, body["code"].as_str()) {
        (201, _) => {}
        (400, Some("INSUFFICIENT_STOCK")) => return Ok(None),
        other => return Err(format!("order answered {other:?}: {body}")),
    }
    let order = body["order_id"].as_str().unwrap().to_owned();
    let paid = client
        .post(format!("{base}/api/orders/{order}/payment"))
        .bearer_auth(&token)
        .json(&json!({ "user_id": user }))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    match paid.status().as_u16() {
        200 => Ok(Some(body)),
        other => Err(format!("payment answered {other}")),
    }
}

/// `buyers` buyers of both options at once against `base`; their answers.
async fn rush(app: &TestApp, base: &str, buyers: &[i64], lines: [i64; 2]) -> Vec<Result<Option<Value>, String>> {
    let tasks: Vec<_> = buyers
        .iter()
        .map(|u| tokio::spawn(order_and_pay(app.client.clone(), app.customer(*u), base.to_owned(), *u, lines)))
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Every order Postgres holds has both lines, and the paid ones took exactly `sold` units of
/// each option: never half an order, never a unit twice.
async fn assert_whole(app: &TestApp, lines: [i64; 2], sold: i64) {
    let halves: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders o WHERE (SELECT count(*) FROM order_items i WHERE i.order_id = o.id) <> 2",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(halves, 0, "an order without both of its lines");
    for opt in lines {
        let paid: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(i.quantity), 0)::bigint FROM order_items i JOIN orders o ON o.id = i.order_id \
             WHERE o.status = 'PAID' AND i.option_id = $1",
        )
        .bind(opt)
        .fetch_one(&app.db)
        .await
        .unwrap();
        assert_eq!(paid, sold, "units of option {opt} sold");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_buyers_of_a_two_product_order_across_masters_for_fifty_units_get_exactly_fifty_whole_orders() {
    let _turn = cluster_turn().await;
    let app = cluster_order_app().await;
    let (a, b) = two_products_on_two_masters(&app, 50).await;
    let buyers = app.create_users(300, "KR", 10_000).await;

    let answers = rush(&app, &app.base, &buyers, [a, b]).await;

    let paid: Vec<&Value> = answers.iter().flat_map(|r| r.as_ref().unwrap()).collect();
    assert_eq!((paid.len(), answers.len() - paid.len()), (50, 250), "exactly the stock, the rest refused");
    for order in &paid {
        assert_eq!(order["items"].as_array().unwrap().len(), 2, "{order}");
    }
    assert_eq!((avail_of(&app, a).await, avail_of(&app, b).await), (Some(0), Some(0)));
    eventually(20, "Postgres holds the fifty orders, paid, and no other", || async {
        stock_of(&app, a).await == (0, 0) && stock_of(&app, b).await == (0, 0)
    })
    .await;
    assert_whole(&app, [a, b], 50).await;
    // In process: the CLI helper joins the cluster's node URLs in a way `jupang reconcile`
    // refuses (a support issue, not the reconciler's).
    let drift = jupang::admission::orders::hydrate::reconcile(&app.db, &stock_store(&app).await).await.unwrap();
    assert!(drift.drifted.is_empty(), "{drift:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_serve_killed_mid_rush_of_two_product_orders_across_masters_leaks_no_unit_and_sells_none_twice() {
    let _turn = cluster_turn().await;
    let app = cluster_order_app().await;
    let (a, b) = two_products_on_two_masters(&app, 50).await;
    let cluster = cluster_url();
    let v2 = [
        ("REDIS_URL", cluster.as_str()),
        ("JUPANG_ORDER_STRATEGY", "redis-lua"),
        ("JUPANG_WORKERS", "consumer"),
        ("JUPANG_STREAM_CLAIM_IDLE_MS", "500"),
    ];
    let mut first = serve_app(&app, &v2).await;
    let buyers = app.create_users(300, "KR", 10_000).await;
    let base = format!("http://{}", first.addr);
    let payments =
        || async { sqlx::query_scalar::<_, i64>("SELECT count(*) FROM payments").fetch_one(&app.db).await.unwrap() };
    let kill = async {
        eventually(30, "10 payments stored", || async { payments().await >= 10 }).await;
        first.child.kill().await.unwrap();
    };
    let (answers, ()) = tokio::join!(rush(&app, &base, &buyers, [a, b]), kill);
    let acknowledged: Vec<&Value> = answers.iter().filter_map(|r| r.as_ref().ok()).flatten().collect();
    assert!(!acknowledged.is_empty() && acknowledged.len() < 50, "the kill landed mid-rush: {}", acknowledged.len());

    // Restarted: the consumer persists what was admitted; the sweep (clock past every deadline
    // and expiry) undoes admissions cut between masters and expires the unpaid orders.
    let second = serve_app(&app, &v2).await;
    sweep(&app, chrono::Utc::now() + chrono::Duration::hours(2)).await;
    let sold: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'PAID'").fetch_one(&app.db).await.unwrap();
    assert!(sold >= acknowledged.len() as i64, "{sold} sold, {} acknowledged", acknowledged.len());
    for opt in [a, b] {
        assert_eq!(avail_of(&app, opt).await, Some(50 - sold), "option {opt}: every unpaid unit back");
        assert_eq!(stock_of(&app, opt).await, (50 - sold as i32, 0));
    }
    assert_whole(&app, [a, b], sold).await;

    // The sale goes on to its end on the restarted process: exactly what is left is sold.
    let more = app.create_users(200, "KR", 10_000).await;
    let answers = rush(&app, &format!("http://{}", second.addr), &more, [a, b]).await;
    let paid = answers.iter().flat_map(|r| r.as_ref().unwrap()).count() as i64;
    assert_eq!(paid, 50 - sold, "the rest of the stock, exactly");
    eventually(20, "Postgres agrees: sold out", || async {
        stock_of(&app, a).await == (0, 0) && stock_of(&app, b).await == (0, 0)
    })
    .await;
    assert_whole(&app, [a, b], 50).await;
    assert_eq!((avail_of(&app, a).await, avail_of(&app, b).await), (Some(0), Some(0)));
    // In process: the CLI helper joins the cluster's node URLs in a way `jupang reconcile`
    // refuses (a support issue, not the reconciler's).
    let drift = jupang::admission::orders::hydrate::reconcile(&app.db, &stock_store(&app).await).await.unwrap();
    assert!(drift.drifted.is_empty(), "{drift:?}");
}
