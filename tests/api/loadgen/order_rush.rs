//! `jupang loadgen order-rush`: retries switched off, 503s counted per route, and the open
//! model over buyers.

use serde_json::Value;

use super::{loadgen_on, outcome};
use crate::support::{coupon_app, spawn_app_with};

/// The per-route counts of an order-rush report, by route label.
fn route<'a>(report: &'a Value, label: &str) -> &'a Value {
    report["per_route"].as_array().unwrap().iter().find(|r| r["route"] == label).unwrap()
}

#[tokio::test]
async fn with_retries_off_every_order_and_payment_is_sent_once_and_the_503s_are_counted_per_route() {
    // One request at a time: the server sheds most of sixteen connections with 503 OVERLOADED.
    let app = spawn_app_with(|vars| {
        vars.insert("JUPANG_WORKERS".into(), "consumer".into());
        vars.insert("JUPANG_MAX_IN_FLIGHT".into(), "1".into());
    })
    .await;
    let run = loadgen_on(&app, "order-rush", "--buyers 200 --stock 20 --connections 16 --retries 0").await;

    let r = &run.report;
    assert_eq!(r["retries"], 0, "stderr: {}", run.stderr);
    let (order, pay) = (route(r, "POST /api/orders"), route(r, "POST /api/orders/{id}/payment"));
    assert_eq!(order["requests"], 200, "one order per buyer, never again: {order}");
    assert_eq!(pay["requests"], r["accepted"], "one payment per accepted order, never again: {pay}");
    assert_eq!((order["retries"].as_u64(), pay["retries"].as_u64()), (Some(0), Some(0)));
    for (counts, load) in [(order, &r["load"]["routes"][0]), (pay, &r["load"]["routes"][1])] {
        assert_eq!(counts["route"], load["route"]);
        let shed = outcome(load, "503 OVERLOADED") + outcome(load, "503 TIMEOUT");
        assert_eq!(counts["answered_503"].as_u64(), Some(shed), "{counts} against {}", load["outcomes"]);
        assert_eq!(counts["succeeded"].as_u64(), Some(outcome(load, "201") + outcome(load, "200")), "{counts}");
    }
    let shed = order["answered_503"].as_u64().unwrap() + pay["answered_503"].as_u64().unwrap();
    assert!(shed > 0, "one request in flight at a time sheds some of sixteen connections: {}", r["per_route"]);
}

#[tokio::test]
async fn an_order_rush_at_a_rate_counts_buyers_as_arrivals_and_each_payment_follows_its_order() {
    let app = coupon_app().await;
    let run = loadgen_on(&app, "order-rush", "--buyers 100 --stock 100 --rate 200 --connections 16").await;

    let r = &run.report;
    assert!(run.success, "verdict failed: {}\nstderr: {}", r["verdict"], run.stderr);
    assert_eq!((r["accepted"].as_u64(), r["paid"].as_u64()), (Some(100), Some(100)));
    let load = &r["load"];
    assert_eq!((load["rate"].as_f64(), load["correction"]["kind"].as_str()), (Some(200.0), Some("intended_start")));
    assert_eq!((load["requests"].as_u64(), load["arrivals"].as_u64()), (Some(200), Some(100)), "100 buyers arrive");
    // 100 arrivals at 200/s: the last is due at 0.495 s, whatever the payments do.
    assert!(load["elapsed_secs"].as_f64().unwrap() >= 0.495, "{}", load["elapsed_secs"]);
    assert_eq!(route(r, "POST /api/orders/{id}/payment")["requests"], 100);
}
