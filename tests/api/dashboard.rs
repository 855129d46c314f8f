//! The provisioned Grafana dashboard: every panel reads the datasource variable, and every
//! expression is valid PromQL (a real Prometheus parses it) over metric names a real `jupang
//! serve` exports.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::{
    prometheus::{Scraped, scraped},
    sample_names, scrape,
};

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

/// The panels with a query that reads `metric`.
fn panels_reading(doc: &Value, metric: &str) -> Vec<Value> {
    let panels = doc["panels"].as_array().unwrap();
    let reads = |p: &&Value| {
        p["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| t["expr"].as_str().is_some_and(|e| metric_names(e).contains(metric)))
    };
    panels.iter().filter(reads).cloned().collect()
}

#[test]
fn the_dashboard_shows_the_outbox_lag_in_seconds_and_the_breaker_state_by_its_names() {
    use jupang::workers::outbox::{BreakerState, OUTBOX_BREAKER_STATE, OUTBOX_OLDEST_PENDING_AGE};

    let doc = dashboard();
    let lag = panels_reading(&doc, OUTBOX_OLDEST_PENDING_AGE);
    assert_eq!(lag.len(), 1, "one panel of the outbox lag");
    assert_eq!(lag[0]["fieldConfig"]["defaults"]["unit"], "s", "{}", lag[0]["title"]);
    let breaker = panels_reading(&doc, OUTBOX_BREAKER_STATE);
    assert_eq!(breaker.len(), 1, "one panel of the breaker");
    let defaults = &breaker[0]["fieldConfig"]["defaults"];
    let mappings = defaults["mappings"].as_array().expect("the breaker panel maps its values to names");
    let options = &mappings.iter().find(|m| m["type"] == "value").expect("a value mapping")["options"];
    let shown: Vec<(String, String)> =
        options.as_object().unwrap().iter().map(|(v, o)| (v.clone(), o["text"].as_str().unwrap().to_owned())).collect();
    let states: Vec<(String, String)> =
        BreakerState::ALL.iter().map(|s| ((*s as i32).to_string(), s.name().to_owned())).collect();
    assert_eq!(shown, states, "the gauge's values and the breaker's state names");
    assert_eq!(
        (defaults["min"].as_i64(), defaults["max"].as_i64()),
        (Some(0), Some(BreakerState::ALL.len() as i64 - 1))
    );
}
