//! `jupang loadgen open-run` over several sales (`--sales K`) and the search for the highest
//! rate held (`--find-rate`).

use std::collections::HashSet;

use serde_json::Value;

use super::{holders, loadgen_on, outcome};
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
    let run = loadgen_on(&app, "open-run", "--people 300 --coupons 40 --sales 5 --connections 8").await;

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
    let run = loadgen_on(
        &app,
        "open-run",
        "--people 200 --coupons 50 --sales 4 --pick round-robin --double-click-ratio 0 --rate 2000 --connections 8",
    )
    .await;

    let r = &run.report;
    assert!(run.success, "verdict failed: {}\nstderr: {}", r["verdict"], run.stderr);
    assert_eq!(check_sales(&app, r, 50).await, [50, 50, 50, 50], "round-robin: equal shares");
    assert_eq!((r["load"]["requests"].as_u64(), outcome(&r["load"], "201")), (Some(200), 200));
}

#[tokio::test]
async fn the_rate_search_doubles_up_to_the_maximum_while_probes_hold_each_on_a_fresh_sale() {
    let app = coupon_app().await;
    let run = loadgen_on(
        &app,
        "open-run",
        "--find-rate --p99-ms 60000 --probe-secs 1 --start-rate 50 \
         --max-rate 200 --people 100 --coupons 10 --connections 8",
    )
    .await;

    let r = &run.report;
    assert!(run.success, "search failed: {}\nstderr: {}", r["probes"], run.stderr);
    let rates: Vec<f64> = r["probes"].as_array().unwrap().iter().map(|p| p["rate"].as_f64().unwrap()).collect();
    assert_eq!(rates, [50.0, 100.0, 200.0]);
    assert_eq!(r["highest_held_rps"], 200.0);
    let mut coupons = HashSet::new();
    for (probe, run) in r["probes"].as_array().unwrap().iter().zip(r["runs"].as_array().unwrap()) {
        assert_eq!((probe["held"].as_bool(), probe["verdict"].as_str()), (Some(true), Some("PASS")), "{probe}");
        // A probe lasts its second: about rate × 1 s arrivals (the 200/s one presses again).
        let arrivals = run["load"]["arrivals"].as_f64().unwrap();
        assert!((arrivals - probe["rate"].as_f64().unwrap()).abs() <= 1.0, "{arrivals} arrivals in {probe}");
        assert_eq!(run["issued"], 10, "{}", run["verdict"]);
        let coupon = run["coupon_id"].as_i64().unwrap();
        assert!(coupons.insert(coupon), "each probe on a fresh sale");
        assert_eq!(holders(&app, coupon).await, (10, 10));
    }
}

#[tokio::test]
async fn a_rate_search_where_nothing_holds_halves_the_rate_and_exits_non_zero() {
    let app = coupon_app().await;
    let run = loadgen_on(
        &app,
        "open-run",
        "--find-rate --p99-ms 0.001 --probe-secs 1 --start-rate 40 \
         --max-probes 2 --people 50 --coupons 10 --connections 4",
    )
    .await;

    assert!(!run.success, "exit status 0 though no rate held");
    assert!(run.stderr.contains("no rate held"), "stderr: {}", run.stderr);
    let r = &run.report;
    let probes = r["probes"].as_array().unwrap();
    let rates: Vec<f64> = probes.iter().map(|p| p["rate"].as_f64().unwrap()).collect();
    assert_eq!(rates, [40.0, 20.0]);
    assert!(probes.iter().all(|p| p["held"] == false && p["verdict"] == "PASS"), "held only by latency: {probes:?}");
    assert!(r["highest_held_rps"].is_null());
}
