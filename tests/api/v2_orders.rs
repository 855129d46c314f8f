//! V2 orders (`JUPANG_ORDER_STRATEGY=redis-lua`) over real HTTP, Redis and Postgres: the Redis
//! counters admit, the sink persists, settlement reaches both stores exactly once (stock
//! adjustments, hydration and reconciliation are in `v2_stock`). The shared
//! order tests (orders, payment, expiry, order_concurrency) also run under redis-lua; these are
//! the promises specific to the design. Postgres is read raw here (no settling) wherever the
//! point is what has or has not reached it yet.

use std::collections::HashMap;

use chrono::{Duration, Utc};
use jupang::{
    store::pg::payment,
    workers::stream::{PersistError, StreamSink},
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    Strategy, assert_error, avail_of, cancel, cancel_request, count, events, eventually, json_of, option,
    order_request, order_sink, order_state, pay, persist, placed, raw_orders, raw_stock, redis_store, send_all, settle,
    status_of, stock_of, stock_store, stream_entries, sweep, v2,
};

#[tokio::test]
async fn a_v2_order_takes_its_units_from_the_redis_counter_and_reaches_postgres_only_through_the_sink() {
    let app = v2().await;
    let user = app.create_user("KR", 0).await;
    let opt = option(&app, 12_000, 10).await;
    let body = json_of(order_request(&app, user, &[(opt, 3)]).send().await.unwrap(), 201).await;
    assert_eq!(body["status"], "PENDING");
    assert_eq!(body["total_amount"], json!({"amount": 36000, "currency": "KRW"}));
    assert_eq!(avail_of(&app, opt).await, Some(7), "hydrated from Postgres at first use, then taken");
    assert_eq!((raw_orders(&app).await, raw_stock(&app, opt).await), (0, (10, 0)), "Postgres not touched yet");
    assert_eq!(order_state(&app, body["order_id"].as_str().unwrap()).await.as_deref(), Some("pending"));

    let entries = stream_entries(&app).await;
    assert_eq!(entries.len(), 1, "an acknowledged order always has its stream entry");
    assert_eq!(entries[0].field("order_id"), body["order_id"].as_str());
    for _ in 0..2 {
        // The second delivery (a redelivery after a crash before XACK) must change nothing.
        persist(&app, &entries).await;
        assert_eq!(raw_orders(&app).await, 1);
        assert_eq!(raw_stock(&app, opt).await, (10, 3));
        assert_eq!(count(&app, "order_items").await, 1);
        assert_eq!(events(&app, "order.created").await.len(), 1);
    }
    let (status, reservation, created): (String, String, chrono::DateTime<Utc>) =
        sqlx::query_as("SELECT status, reservation, created_at FROM orders").fetch_one(&app.db).await.unwrap();
    assert_eq!((status.as_str(), reservation.as_str()), ("PENDING", "redis"));
    let read =
        json_of(app.get_as(user, &format!("/api/orders/{}", body["order_id"].as_str().unwrap())).await, 200).await;
    assert_eq!(read["items"], body["items"], "what was answered is what was persisted");
    assert_eq!(read["created_at"], body["created_at"]);
    assert_eq!(
        created.timestamp_millis(),
        chrono::DateTime::parse_from_rfc3339(body["created_at"].as_str().unwrap()).unwrap().timestamp_millis()
    );
}

#[tokio::test]
async fn a_v2_order_short_on_one_line_takes_nothing_and_appends_nothing() {
    let app = v2().await;
    let user = app.create_user("KR", 0).await;
    let plenty = option(&app, 1_000, 100).await;
    let scarce = option(&app, 1_000, 1).await;
    let res = order_request(&app, user, &[(plenty, 5), (scarce, 2)]).send().await.unwrap();
    let body = assert_error(res, 400, "INSUFFICIENT_STOCK").await;
    assert_eq!(body["details"], json!({"product_option_id": scarce, "available": 1, "requested": 2}));
    assert_eq!((avail_of(&app, plenty).await, avail_of(&app, scarce).await), (Some(100), Some(1)));
    assert!(stream_entries(&app).await.is_empty());
    assert_eq!(count(&app, "orders").await, 0);
}

#[tokio::test]
async fn orders_for_another_market_or_an_unknown_option_are_refused_before_redis_is_touched() {
    let app = v2().await;
    let us = app.create_user("US", 0).await;
    let kr_only = option(&app, 1_000, 10).await;
    assert_error(order_request(&app, us, &[(kr_only, 1)]).send().await.unwrap(), 400, "MARKET_MISMATCH").await;
    assert_error(order_request(&app, us, &[(987_654, 1)]).send().await.unwrap(), 404, "PRODUCT_OPTION_NOT_FOUND").await;
    assert_eq!(avail_of(&app, kr_only).await, None, "nothing reserved, nothing even hydrated");
    assert!(stream_entries(&app).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_simultaneous_orders_on_a_stock_of_50_admit_exactly_50() {
    let app = v2().await;
    let opt = option(&app, 1_000, 50).await;
    let buyers = app.create_users(300, "KR", 0).await;
    let responses = send_all(buyers.iter().map(|u| order_request(&app, *u, &[(opt, 1)])).collect()).await;
    let mut created = 0;
    for res in responses {
        match res.status().as_u16() {
            201 => created += 1,
            _ => {
                assert_error(res, 400, "INSUFFICIENT_STOCK").await;
            }
        }
    }
    assert_eq!(created, 50);
    assert_eq!(avail_of(&app, opt).await, Some(0));
    assert_eq!(stream_entries(&app).await.len(), 50);
    settle(&app).await;
    assert_eq!(raw_stock(&app, opt).await, (50, 50), "Postgres reserved exactly the stock, never more");
    assert_eq!(raw_orders(&app).await, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_multi_item_orders_take_all_their_lines_or_none() {
    let app = v2().await;
    let a = option(&app, 1_000, 30).await;
    let b = option(&app, 1_000, 15).await;
    let buyers = app.create_users(80, "KR", 0).await;
    // 40 want one of each, 20 only A, 20 two of B: more than either option holds.
    let wants: Vec<Vec<(i64, i64)>> = (0..80)
        .map(|i| match i % 4 {
            0 | 1 => vec![(a, 1), (b, 1)],
            2 => vec![(a, 1)],
            _ => vec![(b, 2)],
        })
        .collect();
    let responses =
        send_all(buyers.iter().zip(&wants).map(|(u, items)| order_request(&app, *u, items)).collect()).await;
    let mut taken: HashMap<i64, i64> = HashMap::new();
    for (res, items) in responses.into_iter().zip(&wants) {
        if res.status().as_u16() == 201 {
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["items"].as_array().unwrap().len(), items.len(), "an admitted order has every line");
            for (o, q) in items {
                *taken.entry(*o).or_default() += q;
            }
        } else {
            assert_error(res, 400, "INSUFFICIENT_STOCK").await;
        }
    }
    for (opt, stock) in [(a, 30), (b, 15)] {
        let took = taken.get(&opt).copied().unwrap_or(0);
        assert!(took <= stock, "option {opt} oversold: {took} of {stock}");
        assert_eq!(avail_of(&app, opt).await, Some(stock - took), "a refused order took nothing");
        assert_eq!(stock_of(&app, opt).await, (stock as i32, took as i32), "Postgres agrees once persisted");
    }
}

#[tokio::test]
async fn the_consumer_worker_persists_admissions_in_the_background() {
    let app = Strategy::RedisLua
        .spawn_with(|v| {
            v.insert("JUPANG_WORKERS".into(), "consumer".into());
        })
        .await;
    let opt = option(&app, 1_000, 10).await;
    for u in app.create_users(5, "KR", 0).await {
        placed(&app, u, &[(opt, 1)]).await;
    }
    eventually(15, "the consumer persists the orders", || async { raw_orders(&app).await == 5 }).await;
    assert_eq!(raw_stock(&app, opt).await, (10, 5));
    let (sink, redis) = (order_sink(&app).await, redis_store(&app).await);
    eventually(15, "the consumer acknowledges the orders", || async {
        jupang::workers::consumer::backlog(&sink, &redis).await.unwrap() == 0
    })
    .await;
    assert_eq!(sink.name(), "orders");
}

#[tokio::test]
async fn the_sink_names_entries_it_can_never_persist_and_persists_the_others() {
    let app = v2().await;
    let user = app.create_user("KR", 0).await;
    let opt = option(&app, 1_000, 10).await;
    placed(&app, user, &[(opt, 1)]).await;
    placed(&app, user, &[(opt, 2)]).await;
    let mut entries = stream_entries(&app).await;
    let good = entries[0].clone();
    entries[1].fields.insert("lines".into(), "not json".into());
    let mut unknown_option = good.clone();
    unknown_option.id = "1-1".into();
    let lines = unknown_option.fields["lines"].replace(&format!("\"option_id\":{opt}"), "\"option_id\":987654");
    unknown_option.fields.insert("lines".into(), lines);
    unknown_option.fields.insert("order_id".into(), Uuid::now_v7().to_string());
    let sink = order_sink(&app).await;
    for (batch, bad) in [
        (vec![good.clone(), entries[1].clone()], &entries[1].id),
        (vec![good.clone(), unknown_option.clone()], &unknown_option.id),
    ] {
        let mut tx = app.db.begin().await.unwrap();
        match sink.persist(&mut tx, &batch).await {
            Err(PersistError::Poison { ids, .. }) => {
                assert_eq!(&ids, std::slice::from_ref(bad))
            }
            other => panic!("expected poison, got {other:?}"),
        }
    }
    persist(&app, &[good]).await;
    assert_eq!((raw_orders(&app).await, raw_stock(&app, opt).await), (1, (10, 1)));
}

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
    assert!(!stock_store(&app).await.restock(order.parse().unwrap(), &[(opt, 2)]).await.unwrap(), "once only");
    assert_eq!(avail_of(&app, opt).await, Some(10));
}
