//! Expiry of unpaid orders (seed 001 US-011): the sweep, its worker, and several sweepers at once.

use chrono::{Duration, Utc};

use crate::support::{
    balance_of, cancel, eventually, for_each_strategy, json_of, option, order_request, pay, placed, send_all,
    set_expiry, status_of, stock_of, stock_store, sweep,
};

for_each_strategy! {
    #[tokio::test]
    async fn a_sweep_expires_pending_orders_past_due_and_returns_their_reserved_stock(strategy: Strategy) {
        let app = strategy.spawn().await;
        let user = app.create_user("KR", 0).await;
        let a = option(&app, 1_000, 10).await;
        let b = option(&app, 1_000, 10).await;
        let first = placed(&app, user, &[(a, 3), (b, 1)]).await;
        let second = placed(&app, user, &[(a, 2)]).await;
        assert_eq!(stock_of(&app, a).await, (10, 5));
        set_expiry(&app, &first, -1).await;
        set_expiry(&app, &second, -1).await;
        assert_eq!(sweep(&app, Utc::now()).await, 2);
        assert_eq!(status_of(&app, &first).await, "EXPIRED");
        assert_eq!(status_of(&app, &second).await, "EXPIRED");
        assert_eq!(stock_of(&app, a).await, (10, 0));
        assert_eq!(stock_of(&app, b).await, (10, 0));
        assert_eq!(sweep(&app, Utc::now()).await, 0, "nothing is expired twice");
        assert_eq!(stock_of(&app, a).await, (10, 0));
    }

    #[tokio::test]
    async fn a_sweep_leaves_orders_not_yet_due_and_paid_or_cancelled_orders_alone(strategy: Strategy) {
        let app = strategy.spawn().await;
        let user = app.create_user("KR", 100_000).await;
        let opt = option(&app, 1_000, 10).await;
        let fresh = placed(&app, user, &[(opt, 1)]).await;
        let paid = placed(&app, user, &[(opt, 2)]).await;
        let cancelled = placed(&app, user, &[(opt, 3)]).await;
        json_of(pay(&app, user, &paid, None).await, 200).await;
        json_of(cancel(&app, user, &cancelled).await, 200).await;
        set_expiry(&app, &paid, -60).await;
        set_expiry(&app, &cancelled, -60).await;
        assert_eq!(sweep(&app, Utc::now()).await, 0);
        assert_eq!(status_of(&app, &fresh).await, "PENDING");
        assert_eq!(status_of(&app, &paid).await, "PAID");
        assert_eq!(status_of(&app, &cancelled).await, "CANCELLED");
        assert_eq!(stock_of(&app, opt).await, (8, 1));
        // Ten minutes later (the default TTL) the fresh one is due.
        assert_eq!(sweep(&app, Utc::now() + Duration::minutes(11)).await, 1);
        assert_eq!(stock_of(&app, opt).await, (8, 0));
        assert_eq!(balance_of(&app, user).await, 98_000);
    }

    #[tokio::test]
    async fn the_expiry_worker_expires_a_due_order_in_the_background(strategy: Strategy) {
        let app = strategy.spawn_with(|v| {
            v.insert("JUPANG_WORKERS".into(), "expiry".into());
            v.insert("JUPANG_EXPIRY_SWEEP_SECS".into(), "1".into());
            v.insert("JUPANG_ORDER_TTL_SECS".into(), "1".into());
        })
        .await;
        let user = app.create_user("KR", 0).await;
        let opt = option(&app, 1_000, 10).await;
        let order = placed(&app, user, &[(opt, 4)]).await;
        eventually(15, "the worker expires the order", || async { status_of(&app, &order).await == "EXPIRED" }).await;
        assert_eq!(stock_of(&app, opt).await, (10, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn several_sweepers_at_once_expire_each_order_exactly_once(strategy: Strategy) {
        let app = strategy.spawn().await;
        let opt = option(&app, 100, 10_000).await;
        let user = app.create_user("KR", 0).await;
        // More than one batch, so the sweepers interleave batch after batch.
        let n = jupang::workers::expiry::BATCH as usize + 50;
        for chunk in (0..n).collect::<Vec<_>>().chunks(25) {
            let res = send_all(chunk.iter().map(|_| order_request(&app, user, &[(opt, 1)])).collect()).await;
            assert!(res.iter().all(|r| r.status().as_u16() == 201));
        }
        assert_eq!(stock_of(&app, opt).await, (10_000, n as i32));
        let later = Utc::now() + Duration::hours(1);
        let stock = stock_store(&app).await;
        let sweepers: Vec<_> = (0..4)
            .map(|_| {
                let (db, stock) = (app.db.clone(), stock.clone());
                tokio::spawn(async move { jupang::workers::expiry::sweep(&db, &stock, later).await })
            })
            .collect();
        let mut total = 0;
        for s in sweepers {
            total += s.await.unwrap().expect("a sweep failed");
        }
        assert_eq!(total, n as u64, "every order expired once, none twice");
        assert_eq!(stock_of(&app, opt).await, (10_000, 0));
    }
}
