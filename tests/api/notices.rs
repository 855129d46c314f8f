//! Change notices: a change announced by one instance reaches every instance's handlers, and a
//! notice lost on the way is healed by the revision check within its documented bound.

use std::time::{Duration, Instant};

use jupang::store::redis::notices::{CHECK_EVERY, REVISIONS, Topic};
use tokio::sync::mpsc;

use crate::support::{forward_notices, redis_cmd, sibling, spawn_app};

/// The next id a handler was given, within `within`.
async fn next(rx: &mut mpsc::UnboundedReceiver<Option<i64>>, within: Duration) -> Option<i64> {
    tokio::time::timeout(within, rx.recv()).await.expect("a notice in time").expect("handler channel open")
}

#[tokio::test]
async fn a_change_announced_by_one_instance_reaches_the_handlers_of_another() {
    let app = spawn_app().await;
    let (a, b) = (sibling(&app, |_| {}).await, sibling(&app, |_| {}).await);
    let mut coupons_on_b = forward_notices(&b.state().notices, Topic::Coupon);
    let mut products_on_b = forward_notices(&b.state().notices, Topic::Product);
    let (notices_a, stop) = (a.state().notices.clone(), b.shutdown_token());
    tokio::spawn(b.run_until_stopped());
    // B's first subscription announces every topic once (whatever it may have cached before).
    assert_eq!(next(&mut coupons_on_b, Duration::from_secs(5)).await, None);
    assert_eq!(next(&mut products_on_b, Duration::from_secs(5)).await, None);

    notices_a.publish(Topic::Coupon, Some(42)).await.unwrap();
    assert_eq!(next(&mut coupons_on_b, Duration::from_secs(1)).await, Some(42));
    notices_a.publish(Topic::Product, None).await.unwrap();
    assert_eq!(next(&mut products_on_b, Duration::from_secs(1)).await, None);
    // A notice goes to its topic's handlers only.
    assert!(coupons_on_b.try_recv().is_err(), "a product notice reached a coupon handler");
    stop.cancel();
}

#[tokio::test]
async fn a_lost_notice_is_healed_by_the_revision_check_within_its_bound() {
    let app = spawn_app().await;
    let b = sibling(&app, |_| {}).await;
    let mut stock = forward_notices(&b.state().notices, Topic::Stock);
    let stop = b.shutdown_token();
    tokio::spawn(b.run_until_stopped());
    assert_eq!(next(&mut stock, Duration::from_secs(5)).await, None, "first subscription");

    // A change whose notice never went out: only the revision moved.
    let started = Instant::now();
    let _: i64 =
        redis_cmd(redis::cmd("HINCRBY").arg(format!("{}:{REVISIONS}", app.redis_prefix)).arg("stock").arg(1)).await;
    assert_eq!(next(&mut stock, CHECK_EVERY * 4).await, None, "the whole topic is announced as changed");
    assert!(started.elapsed() < CHECK_EVERY * 2 + Duration::from_millis(200), "healed after {:?}", started.elapsed());
    stop.cancel();
}
