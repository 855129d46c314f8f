//! V2 orders once admitted: payment before persistence, read-your-writes, and every way an
//! order's units return (expiry, cancel, refund, a lost release) reaching both Redis and
//! Postgres exactly once.

use chrono::{Duration, Utc};
use jupang::store::{pg::payment, redis::streams::StreamSink};
use uuid::Uuid;

use crate::support::{
    assert_error, avail_of, balance_of, cancel, cancel_request, events, eventually, json_of, option, order_sink,
    order_state, pay, pay_request, placed, raw_orders, raw_stock, send_all, settle, status_of, stock_store,
    stream_entries, sweep, v2,
};

#[tokio::test]
async fn an_order_paid_before_it_was_persisted_is_persisted_once_and_paid() {
    let app = v2().await;
    let user = app.create_user("KR", 100_000).await;
    let opt = option(&app, 30_000, 10).await;
    let order = placed(&app, user, &[(opt, 1)]).await;
    assert_eq!(raw_orders(&app).await, 0, "no consumer runs");
    let body = json_of(pay(&app, user, &order, None).await, 200).await;
    assert_eq!((body["status"].as_str(), body["balance_after"]["amount"].as_i64()), (Some("PAID"), Some(70_000)));
    assert_eq!(raw_orders(&app).await, 1);
    assert_eq!(raw_stock(&app, opt).await, (9, 0), "reserved by the persistence, confirmed by the payment");
    assert_eq!(order_state(&app, &order).await.as_deref(), Some("paid"), "never releasable again");
    assert_eq!(avail_of(&app, opt).await, Some(9));
    // The consumer catching up later changes nothing.
    settle(&app).await;
    assert_eq!((raw_orders(&app).await, raw_stock(&app, opt).await), (1, (9, 0)));
    assert_eq!(events(&app, "order.created").await.len(), 1);
    assert_eq!(status_of(&app, &order).await, "PAID");
    // A sweep long after the expiry finds nothing to release.
    assert_eq!(sweep(&app, Utc::now() + Duration::hours(2)).await, 0);
    assert_eq!(avail_of(&app, opt).await, Some(9));
}

#[tokio::test]
async fn an_order_not_yet_persisted_is_readable_listed_and_cancellable_by_its_owner() {
    let app = v2().await;
    let user = app.create_user("KR", 0).await;
    let stranger = app.create_user("KR", 0).await;
    let opt = option(&app, 1_000, 10).await;
    let order = placed(&app, user, &[(opt, 4)]).await;
    let path = format!("/api/orders/{order}");
    assert_error(app.get_as(stranger, &path).await, 404, "ORDER_NOT_FOUND").await;
    assert_eq!(json_of(app.get_as(user, &path).await, 200).await["status"], "PENDING");
    let second = placed(&app, user, &[(opt, 1)]).await;
    let list = json_of(app.get_as(user, &format!("/api/users/{user}/orders")).await, 200).await;
    let ids: Vec<&str> = list["items"].as_array().unwrap().iter().map(|o| o["order_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [second.as_str(), order.as_str()], "the latest orders are listed at once, newest first");
    assert_eq!(json_of(cancel(&app, user, &second).await, 200).await["status"], "CANCELLED");
    assert_eq!(avail_of(&app, opt).await, Some(6));
    assert_eq!(raw_stock(&app, opt).await, (10, 4));
}

#[tokio::test]
async fn expiry_releases_a_v2_order_in_both_places_exactly_once() {
    let app = v2().await;
    let user = app.create_user("KR", 100_000).await;
    let opt = option(&app, 1_000, 10).await;
    let order = placed(&app, user, &[(opt, 4)]).await;
    assert_eq!(sweep(&app, Utc::now()).await, 0, "not due yet");
    assert_eq!(avail_of(&app, opt).await, Some(6));
    // Due, and never persisted by a consumer: the sweeper persists it and expires it.
    assert_eq!(sweep(&app, Utc::now() + Duration::hours(1)).await, 1);
    assert_eq!(status_of(&app, &order).await, "EXPIRED");
    assert_eq!((raw_stock(&app, opt).await, avail_of(&app, opt).await), ((10, 0), Some(10)));
    assert_eq!(order_state(&app, &order).await.as_deref(), Some("released"));
    // Every further attempt to release it is a no-op.
    assert_eq!(sweep(&app, Utc::now() + Duration::hours(2)).await, 0);
    let id: Uuid = order.parse().unwrap();
    assert!(!stock_store(&app).await.release(id, &[(opt, 4)]).await.unwrap());
    assert_error(cancel(&app, user, &order).await, 400, "ORDER_NOT_CANCELLABLE").await;
    assert_error(pay(&app, user, &order, None).await, 400, "ORDER_EXPIRED").await;
    assert_eq!((raw_stock(&app, opt).await, avail_of(&app, opt).await), ((10, 0), Some(10)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancels_and_sweeps_racing_over_the_same_orders_release_each_exactly_once() {
    let app = v2().await;
    let opt = option(&app, 1_000, 20).await;
    let buyers = app.create_users(20, "KR", 0).await;
    let mut orders = Vec::new();
    for u in &buyers {
        orders.push(placed(&app, *u, &[(opt, 1)]).await);
    }
    assert_eq!(avail_of(&app, opt).await, Some(0));
    settle(&app).await;
    let stock = stock_store(&app).await;
    let later = Utc::now() + Duration::hours(1);
    let sweepers: Vec<_> = (0..4)
        .map(|_| {
            let (db, stock) = (app.db.clone(), stock.clone());
            tokio::spawn(async move { jupang::workers::expiry::sweep(&db, &stock, later).await })
        })
        .collect();
    let cancels = send_all(buyers.iter().zip(&orders).map(|(u, o)| cancel_request(&app, *u, o)).collect()).await;
    for s in sweepers {
        s.await.unwrap().expect("sweep");
    }
    for res in cancels {
        let status = res.status().as_u16();
        assert!(status == 200 || status == 400, "{status}");
    }
    for o in &orders {
        let s = status_of(&app, o).await;
        assert!(s == "CANCELLED" || s == "EXPIRED", "{s}");
    }
    assert_eq!(avail_of(&app, opt).await, Some(20), "each unit returned once, none twice");
    assert_eq!(raw_stock(&app, opt).await, (20, 0));
}

#[tokio::test]
async fn a_release_lost_after_its_commit_is_repaired_by_the_next_sweep() {
    let app = v2().await;
    let user = app.create_user("KR", 0).await;
    let opt = option(&app, 1_000, 10).await;
    let order = placed(&app, user, &[(opt, 3)]).await;
    settle(&app).await;
    // Cancelled in Postgres, and the process "dies" before the Redis step.
    payment::cancel(&app.db, order.parse().unwrap(), |_| true, Utc::now()).await.unwrap();
    assert_eq!((raw_stock(&app, opt).await, avail_of(&app, opt).await), ((10, 0), Some(7)), "under-counts: safe");
    assert_eq!(sweep(&app, Utc::now()).await, 0, "not due: the repair waits for the order's expiry");
    assert_eq!(sweep(&app, Utc::now() + Duration::hours(1)).await, 0, "nothing left to expire");
    assert_eq!(avail_of(&app, opt).await, Some(10), "the sweeper settled what Postgres had settled");
    assert_eq!(status_of(&app, &order).await, "CANCELLED");
}

#[tokio::test]
async fn refunding_a_paid_v2_order_returns_its_units_to_both_places_once() {
    let app = v2().await;
    let user = app.create_user("KR", 100_000).await;
    let opt = option(&app, 10_000, 10).await;
    let order = placed(&app, user, &[(opt, 2)]).await;
    json_of(pay(&app, user, &order, None).await, 200).await;
    assert_eq!((raw_stock(&app, opt).await, avail_of(&app, opt).await), ((8, 0), Some(8)));
    assert_eq!(json_of(cancel(&app, user, &order).await, 200).await["status"], "REFUNDED");
    assert_eq!((raw_stock(&app, opt).await, avail_of(&app, opt).await), ((10, 0), Some(10)));
    let refund: Uuid = sqlx::query_scalar("SELECT id FROM order_refunds WHERE order_id = $1::uuid")
        .bind(&order)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let again = stock_store(&app).await.restock(refund, order.parse().unwrap(), &[(opt, 2)]).await.unwrap();
    assert!(!again, "once only");
    assert_eq!(avail_of(&app, opt).await, Some(10));
}

#[tokio::test]
async fn an_order_persisted_by_its_payment_commits_with_the_payment_or_not_at_all() {
    let app = v2().await;
    let user = app.create_user("KR", 100_000).await;
    let opt = option(&app, 30_000, 10).await;
    let order = placed(&app, user, &[(opt, 1)]).await;
    // The payment fails after it wrote the order's rows: one transaction, so neither stays.
    sqlx::raw_sql(
        "CREATE FUNCTION fail_payment() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'injected'; END $$ \
         LANGUAGE plpgsql; \
         CREATE TRIGGER fail_payment BEFORE INSERT ON payments FOR EACH ROW EXECUTE FUNCTION fail_payment();",
    )
    .execute(&app.db)
    .await
    .unwrap();
    assert_error(pay(&app, user, &order, None).await, 500, "INTERNAL").await;
    assert_eq!(raw_orders(&app).await, 0, "the order's rows went with the failed payment");
    assert_eq!((balance_of(&app, user).await, avail_of(&app, opt).await), (100_000, Some(9)));
    assert_eq!(order_state(&app, &order).await.as_deref(), Some("pending"), "still held in Redis");
    sqlx::raw_sql("DROP TRIGGER fail_payment ON payments").execute(&app.db).await.unwrap();
    json_of(pay(&app, user, &order, None).await, 200).await;
    settle(&app).await;
    assert_eq!((raw_orders(&app).await, raw_stock(&app, opt).await), (1, (9, 0)));
    assert_eq!(events(&app, "order.created").await.len(), 1);
}

#[tokio::test]
async fn a_payment_refused_for_the_balance_keeps_the_order_it_persisted_and_charges_nothing() {
    let app = v2().await;
    let user = app.create_user("KR", 0).await;
    let opt = option(&app, 30_000, 10).await;
    let order = placed(&app, user, &[(opt, 2)]).await;
    assert_error(pay(&app, user, &order, None).await, 400, "INSUFFICIENT_BALANCE").await;
    assert_eq!(raw_orders(&app).await, 1, "persisted as the consumer would have");
    assert_eq!((raw_stock(&app, opt).await, balance_of(&app, user).await), ((10, 2), 0));
    settle(&app).await;
    assert_eq!((raw_orders(&app).await, events(&app, "order.created").await.len()), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_racing_the_consumer_batch_of_its_order_waits_for_that_commit_and_pays_once() {
    let app = v2().await;
    let user = app.create_user("KR", 100_000).await;
    let opt = option(&app, 30_000, 10).await;
    let order = placed(&app, user, &[(opt, 1)]).await;
    // A consumer batch that has inserted the order and not committed yet.
    let sink = order_sink(&app).await;
    let mut batch = app.db.begin().await.unwrap();
    sink.persist(&mut batch, &stream_entries(&app).await).await.unwrap();
    let paying = tokio::spawn(pay_request(&app, user, &order, None).send());
    eventually(10, "the payment waits on the batch's insert of its order", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&app.db)
        .await
        .unwrap();
        waiting > 0
    })
    .await;
    batch.commit().await.unwrap();
    json_of(paying.await.unwrap().unwrap(), 200).await;
    assert_eq!((raw_orders(&app).await, raw_stock(&app, opt).await), (1, (9, 0)));
    assert_eq!(events(&app, "order.created").await.len(), 1);
    assert_eq!(balance_of(&app, user).await, 70_000);
}
