//! A real Prometheus scraping a real `jupang serve`: every metric of the contract reaches it with
//! exactly the contract's labels, and a fresh server already exposes them.
//!
//! The server is a child process (not an in-process test app) so its metrics are its own: the
//! in-process apps of the other tests share one recorder.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use tokio::time::Instant;

use crate::support::{
    prometheus::{Scraped, scraped, serve_everything},
    sample_names, scrape,
};

/// The contract's metrics (api.md, Metrics; and the outbox's of "Events and the data platform")
/// and their labels besides `job` and `instance`; `_bucket` stands for the histogram.
const CONTRACT: [(&str, &[&str]); 14] = [
    ("http_requests_total", &["method", "route", "status"]),
    ("http_request_duration_seconds_bucket", &["route", "le"]),
    ("coupon_issue_total", &["strategy", "outcome"]),
    ("coupon_remaining", &["coupon_id"]),
    ("order_create_total", &["outcome"]),
    ("payment_total", &["outcome"]),
    ("stream_pending_entries", &["stream"]),
    ("stream_persist_lag_seconds", &["stream"]),
    ("outbox_pending_events", &[]),
    ("outbox_delivery_total", &["outcome"]),
    ("outbox_oldest_pending_age_seconds", &[]),
    ("outbox_breaker_state", &[]),
    ("process_cpu_seconds_total", &[]),
    ("process_resident_memory_bytes", &[]),
];

#[tokio::test]
async fn a_real_prometheus_scraping_serve_sees_every_contract_metric_with_its_labels_and_values() {
    let Scraped { mut app, prometheus } = scraped().await;
    // Values the traffic must have produced on this fresh process, exactly.
    let expected: BTreeMap<&str, f64> = [
        (r#"up{job="jupang"}"#, 1.0),
        (r#"sum(coupon_issue_total{strategy="redis-lua",outcome="issued"})"#, 1.0),
        (r#"sum(coupon_issue_total{strategy="redis-lua",outcome="already_issued"})"#, 1.0),
        (r#"sum(coupon_issue_total{outcome="sold_out"})"#, 0.0),
        (r#"sum(order_create_total{outcome="created"})"#, 1.0),
        (r#"sum(payment_total{outcome="paid"})"#, 1.0),
        (r#"count(coupon_remaining == 9)"#, 1.0),
        (r#"sum(http_requests_total{route="/api/coupons/{coupon_id}/issue",method="POST"})"#, 2.0),
    ]
    .into_iter()
    .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut missing, mut wrong) = (Vec::new(), Vec::new());
    loop {
        missing.clear();
        wrong.clear();
        for (name, _) in CONTRACT {
            if prometheus.value(&format!(r#"count({{__name__="{name}",job="jupang"}})"#)).await.is_none() {
                missing.push(name);
            }
        }
        for (query, want) in &expected {
            let got = prometheus.value(query).await;
            if got != Some(*want) {
                wrong.push(format!("{query} = {got:?}, expected {want}"));
            }
        }
        if missing.is_empty() && wrong.is_empty() {
            break;
        }
        if let Some(status) = app.server_exit() {
            panic!("serve exited ({status}) while being scraped");
        }
        assert!(
            Instant::now() < deadline,
            "within 60 s Prometheus did not see {missing:?}; wrong: {wrong:#?}\ntargets: {}\nlog:\n{}",
            prometheus.targets().await,
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Exactly the contract's labels (plus the target's job and instance), never more.
    for (name, labels) in CONTRACT {
        let want: BTreeSet<&str> = labels.iter().copied().chain(["__name__", "job", "instance"]).collect();
        for sample in prometheus.query(name).await.unwrap() {
            let got: BTreeSet<&str> = sample["metric"].as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(got, want, "labels of {name}: {sample}");
        }
    }
    // Route labels are templates: no raw id ever becomes a label value.
    for sample in prometheus.query("http_requests_total").await.unwrap() {
        let route = sample["metric"]["route"].as_str().unwrap();
        let raw_id = route.split('/').any(|seg| !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit()));
        assert!(!raw_id, "a raw path as a route label: {route}");
    }
    prometheus.stop().await;
}

#[tokio::test]
async fn a_freshly_started_serve_exposes_every_contract_metric_before_any_traffic() {
    let app = serve_everything().await;
    let exposition = scrape(&app).await;
    let names = sample_names(&exposition);
    // `coupon_remaining{coupon_id}` has no series until a coupon is issued: nothing to report.
    for (name, _) in CONTRACT.iter().filter(|(n, _)| *n != "coupon_remaining") {
        assert!(names.contains(*name), "{name} missing from a fresh server:\n{exposition}");
    }
    for outcome in ["issued", "already_issued", "sold_out", "not_active", "error"] {
        let series = format!(r#"coupon_issue_total{{strategy="redis-lua",outcome="{outcome}"}} 0"#);
        assert!(exposition.lines().any(|l| l == series), "{series} missing:\n{exposition}");
    }
    for series in [r#"order_create_total{outcome="created"} 0"#, r#"payment_total{outcome="paid"} 0"#] {
        assert!(exposition.lines().any(|l| l == series), "{series} missing:\n{exposition}");
    }
    // Histograms, not summaries: buckets from half a millisecond.
    assert!(exposition.contains("# TYPE http_request_duration_seconds histogram"), "{exposition}");
    assert!(exposition.contains(r#"le="0.0005""#), "{exposition}");
    assert!(exposition.contains("# HELP coupon_issue_total "), "metrics are described:\n{exposition}");
}
