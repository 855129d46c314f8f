//! The read path under load (issue 12): what keeps the listing's tail short (a stale `popular`
//! page never makes its readers wait for Postgres) and the product page cheap (its counter reads
//! grouped) without giving up a live answer.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use futures_util::future::join_all;
use jupang::services::catalog_cache::POPULAR_EVERY;

use super::{Other, within};
use crate::support::{json_of, opt, order_items, product, product_ids, sale, spawn_app};

#[tokio::test]
async fn a_stale_popular_page_is_answered_at_once_while_one_reload_runs_behind_it() {
    let app = spawn_app().await;
    let (a, a_opt) = product(&app, "A", "home", true, &[opt(1_000, 100)]).await;
    let (b, b_opt) = product(&app, "B", "home", true, &[opt(1_000, 100)]).await;
    sale(&app, a_opt[0], 5, "PAID", "KR", 1.0).await;
    let other = Other::sibling(&app).await;
    let state = other.state.clone().unwrap();
    let path = "/api/products?sort=popular&market=KR";
    assert_eq!(product_ids(&other.get(path).await), [a, b]);
    let loaded = Instant::now();
    // B now leads; paid orders send no notice, so the page keeps the old order while fresh.
    sale(&app, b_opt[0], 9, "PAID", "KR", 0.5).await;
    assert_eq!(product_ids(&other.get(path).await), [a, b], "kept while fresh");
    tokio::time::sleep_until((loaded + POPULAR_EVERY).into()).await;

    // Postgres cannot answer the reload now: the orders it ranks by are locked.
    let mut lock = app.db.begin().await.unwrap();
    sqlx::query("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE").execute(&mut *lock).await.unwrap();
    let before = state.catalog.loads();
    let started = Instant::now();
    for page in join_all((0..32).map(|_| other.get(path))).await {
        assert_eq!(product_ids(&page), [a, b], "the stale page, at once");
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "32 readers of a stale page waited {took:?}");
    assert_eq!(product_ids(&other.get(path).await), [a, b]);
    assert_eq!(state.catalog.loads() - before, 1, "one reload, however many readers found the page stale");

    lock.rollback().await.unwrap();
    within(Duration::from_secs(1), "the reload lands", || other.get(path), |p| product_ids(p) == [b, a]).await;
    assert_eq!(state.catalog.loads() - before, 1);
}

#[tokio::test]
async fn product_pages_read_together_share_reads_yet_each_sees_the_last_unit_admitted_before_it_asked() {
    let app = spawn_app().await;
    let (id, options) = product(&app, "Grouped", "home", true, &[opt(1_000, 1)]).await;
    let b = Other::sibling(&app).await;
    let stock = b.state.clone().unwrap().order_admission.stock().clone();
    let user = app.create_user("KR", 1_000_000).await;
    let page = format!("/api/products/{id}");
    assert_eq!(b.get(&page).await["options"][0]["available"], 1);

    // Readers keep B's counter reads busy all along, so later readers join groups.
    let (done, reads) = (AtomicBool::new(false), AtomicU64::new(0));
    let sends_before = stock.grouped_sends();
    let busy = join_all((0..16).map(|_| async {
        while !done.load(Ordering::Relaxed) {
            b.get(&page).await;
            reads.fetch_add(1, Ordering::Relaxed);
        }
    }));
    let sell = async {
        // Let the readers get going first.
        while reads.load(Ordering::Relaxed) < 64 {
            tokio::task::yield_now().await;
        }
        json_of(order_items(&app, user, &[(options[0], 1)]).await, 201).await;
        // Asked after the last unit was admitted, grouped or not: SOLD_OUT on every one.
        let after = join_all((0..64).map(|_| b.get(&page))).await;
        done.store(true, Ordering::Relaxed);
        after
    };
    let (_, after) = tokio::join!(busy, sell);
    for d in &after {
        assert_eq!(d["stock_status"], "SOLD_OUT", "{d}");
        assert_eq!(d["options"][0]["available"], 0, "{d}");
    }
    let reads = reads.load(Ordering::Relaxed) + after.len() as u64;
    let sends = stock.grouped_sends() - sends_before;
    assert!(sends < reads, "{reads} concurrent page reads, {sends} MGETs: grouped");
}
