//! `jupang loadgen open-run` over several sales (`--sales K`).

use std::collections::HashSet;

use serde_json::Value;

use super::{db_url, holders, loadgen, outcome};
use crate::support::coupon_app;

/// The sales of an open-run report, each checked against Postgres directly.
async fn check_sales(app: &crate::support::TestApp, report: &Value, coupons: u64) -> Vec<u64> {
    let sales = report["sales"].as_array().unwrap();
    let mut ids = HashSet::new();
    let mut people = Vec::new();
    for sale in sales {
        let (n, issued) = (sale["people"].as_u64().unwrap(), sale["issued"].as_u64().unwrap());
        assert_eq!(issued, n.min(coupons), "each sale issues min(its people, coupons): {sale}");
        assert_eq!(sale["expected_issued"], issued, "{sale}");
        assert_eq!(sale["stats_issued"], issued, "{sale}");
        let coupon = sale["coupon_id"].as_i64().unwrap();
        assert!(ids.insert(coupon), "every sale is a coupon of its own");
        assert_eq!(holders(app, coupon).await, (issued as i64, issued as i64), "coupon {coupon} in Postgres");
        people.push(n);
    }
    people
}

#[tokio::test]
async fn an_open_run_over_five_sales_issues_min_people_coupons_on_each_and_in_total() {
    let app = coupon_app().await;
    let run = loadgen(
        &[
            "open-run",
            "--target",
            &app.base,
            "--people",
            "300",
            "--coupons",
            "40",
            "--sales",
            "5",
            "--connections",
            "8",
        ],
        &db_url(&app),
        &[],
    )
    .await;

    let r = &run.report;
    assert!(run.success, "verdict failed: {}\nstderr: {}", r["verdict"], run.stderr);
    assert_eq!(r["pick"], "random");
    let people = check_sales(&app, r, 40).await;
    assert_eq!((people.len(), people.iter().sum::<u64>()), (5, 300), "everyone pressed one of the 5 sales");
    let expected: u64 = people.iter().map(|n| (*n).min(40)).sum();
    assert_eq!((r["issued"].as_u64(), r["expected_issued"].as_u64()), (Some(expected), Some(expected)));
    assert_eq!(outcome(&r["load"], "201"), expected);
    assert_eq!(r["people_issued_twice"], 0);
    assert_eq!(r["presses"], 360, "300 people, 60 of them twice");
}

#[tokio::test]
async fn with_enough_coupons_on_every_sale_each_press_of_an_open_model_run_is_a_success() {
    let app = coupon_app().await;
    let run = loadgen(
        &[
            "open-run",
            "--target",
            &app.base,
            "--people",
            "200",
            "--coupons",
            "50",
            "--sales",
            "4",
            "--pick",
            "round-robin",
            "--double-click-ratio",
            "0",
            "--rate",
            "2000",
            "--connections",
            "8",
        ],
        &db_url(&app),
        &[],
    )
    .await;

    let r = &run.report;
    assert!(run.success, "verdict failed: {}\nstderr: {}", r["verdict"], run.stderr);
    assert_eq!(check_sales(&app, r, 50).await, [50, 50, 50, 50], "round-robin: equal shares");
    assert_eq!((r["load"]["requests"].as_u64(), outcome(&r["load"], "201")), (Some(200), 200));
}
