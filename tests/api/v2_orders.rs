//! V2 orders (`JUPANG_ORDER_STRATEGY=redis-lua`) over real HTTP, Redis and Postgres: the Redis
//! counters admit, the sink persists (settlement is in `v2_order_settlement`; stock adjustments,
//! hydration and reconciliation in `v2_stock`). The shared order tests (orders, payment,
//! expiry, order_concurrency) also run under redis-lua; these are the promises specific to the
//! design. Postgres is read raw here (no settling) wherever the point is what has or has not
//! reached it yet.

use std::collections::HashMap;

use chrono::Utc;
use jupang::store::redis::streams::{PersistError, StreamSink};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    Strategy, assert_error, avail_of, count, events, eventually, json_of, option, order_request, order_sink,
    order_state, persist, placed, raw_orders, raw_stock, redis_store, send_all, settle, stock_of, stream_entries, v2,
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
