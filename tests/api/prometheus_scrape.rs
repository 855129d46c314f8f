//! A real Prometheus (the Debian package, `/usr/bin/prometheus`) scraping a real `jupang serve`:
//! every metric of the contract reaches it with exactly the contract's labels, a fresh server
//! already exposes them, and every expression of the Grafana dashboard is valid PromQL over
//! metric names the server really exports.
//!
//! The server is a child process (not the in-process test app) so its metrics are its own: the
//! in-process apps of the other tests share one recorder.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use serde_json::Value;
use tokio::time::Instant;

use crate::support::{
    prometheus::{Scraped, scraped, serve_everything},
    sample_names, scrape,
};

/// The contract's metrics (api.md, Metrics) and their labels besides `job` and `instance`;
/// `_bucket` stands for the histogram.
const CONTRACT: [(&str, &[&str]); 12] = [
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

/// The metric names a PromQL expression reads: identifiers that are neither functions,
/// keywords, label names (in matchers or grouping clauses) nor Grafana variables.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const GROUPING: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];
    // Aggregations may put `by (...)` before their parentheses: never metric names either.
    const KEYWORDS: [&str; 20] = [
        "bool",
        "offset",
        "and",
        "or",
        "unless",
        "inf",
        "nan",
        "atan2",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    // The index after the `close` that ends what opens at `from`, skipping quoted strings.
    let skip_to = |from: usize, close: char| {
        let mut j = from + 1;
        let mut quote = None;
        while j < chars.len() {
            match (quote, chars[j]) {
                (Some(_), '\\') => j += 1,
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, c) if c == close => break,
                (None, '"' | '\'' | '`') => quote = Some(chars[j]),
                _ => {}
            }
            j += 1;
        }
        j + 1
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            i = skip_to(i, '}');
        } else if c == '[' {
            i = skip_to(i, ']');
        } else if c == '"' || c == '\'' || c == '`' {
            i = skip_to(i, c);
        } else if c.is_ascii_digit() || c == '$' {
            // Numbers, durations (`5m`) and Grafana variables (`$__rate_interval`).
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            let ident: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let call = chars.get(next) == Some(&'(');
            if GROUPING.contains(&ident.as_str()) {
                if call {
                    i = skip_to(next, ')');
                }
            } else if !call && !KEYWORDS.contains(&ident.to_lowercase().as_str()) {
                names.insert(ident);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_of_an_expression_leave_out_functions_labels_keywords_and_variables() {
    let expr = r#"histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket{route!="/metrics"}[$__rate_interval])))
        / on (route) group_left sum(rate(http_requests_total{status=~"5.."}[5m] offset 1h)) > bool 0 or vector(0)"#;
    let names: Vec<String> = metric_names(expr).into_iter().collect();
    assert_eq!(names, ["http_request_duration_seconds_bucket", "http_requests_total"]);
}

/// The provisioned dashboard.
fn dashboard() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/dashboards/jupang.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("the dashboard is JSON")
}

#[test]
fn every_dashboard_panel_and_query_uses_the_datasource_variable() {
    let doc = dashboard();
    let variables = doc["templating"]["list"].as_array().unwrap();
    assert!(
        variables.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus")
    );
    let panels = doc["panels"].as_array().unwrap();
    let queried: Vec<&Value> = panels.iter().filter(|p| p["type"] != "row").collect();
    assert!(!queried.is_empty());
    for panel in queried {
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{}", panel["title"]);
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{} has no query", panel["title"]);
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{}", panel["title"]);
        }
    }
}

/// Every `expr` of the dashboard, wherever it sits (panels, rows, variables).
fn dashboard_exprs() -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(expr)) = map.get("expr") {
                    out.push(expr.clone());
                }
                map.values().for_each(|v| walk(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut exprs = Vec::new();
    walk(&dashboard(), &mut exprs);
    exprs
}

#[tokio::test]
async fn every_dashboard_expression_is_valid_promql_over_metrics_serve_really_exports() {
    let exprs = dashboard_exprs();
    assert!(exprs.len() >= 15, "the dashboard lost its panels: {exprs:?}");
    let Scraped { app, prometheus } = scraped().await;
    let exported = sample_names(&scrape(&app).await);
    for expr in &exprs {
        for name in metric_names(expr) {
            assert!(exported.contains(&name), "the dashboard reads {name}, which serve does not export: {expr}");
        }
        let promql = expr
            .replace("$__rate_interval", "1m")
            .replace("$__interval", "15s")
            .replace("$__range", "5m")
            .replace("$instance", ".*");
        assert!(!promql.contains('$'), "an unknown Grafana variable in {expr}");
        if let Err(e) = prometheus.query(&promql).await {
            panic!("Prometheus refuses a dashboard expression: {e}\n{promql}");
        }
    }
    prometheus.stop().await;
}
