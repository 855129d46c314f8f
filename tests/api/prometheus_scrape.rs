//! A real Prometheus (the Debian package, `/usr/bin/prometheus`) scraping a real `jupang serve`:
//! every metric of the contract reaches it with exactly the contract's labels, a fresh server
//! already exposes them, and every expression of the Grafana dashboard is valid PromQL over
//! metric names the server really exports.
//!
//! The server is a child process (not the in-process test app) so its metrics are its own: the
//! in-process apps of the other tests share one recorder.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    process::Stdio,
    time::Duration,
};

use axum::{Router, http::StatusCode, routing::post};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::{
    process::{Child, Command},
    time::Instant,
};

use crate::{
    child::{self, ChildServe},
    coupon_support::create_coupon,
    fixtures::option,
    helpers::{TestApp, json_of, spawn_app, unique},
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

/// A data platform that accepts every event, so the outbox worker delivers.
async fn platform() -> String {
    let app = Router::new().route("/events", post(|| async { StatusCode::ACCEPTED }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// `jupang serve` as a child process on `app`'s database and Redis prefix with every worker on.
/// Returns the child and its `host:port` once it logs its address.
async fn serve(app: &TestApp) -> (Child, String) {
    let platform = platform().await;
    let ChildServe { child, addr, .. } =
        child::serve_app(app, &[("JUPANG_WORKERS", "all"), ("JUPANG_DATA_PLATFORM_URL", &platform)]).await;
    (child, addr)
}

/// The names of the samples of an exposition (`x_bucket`, `x_sum`, `x_count` for a histogram).
fn sample_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(['{', ' ']).next().unwrap().to_owned())
        .collect()
}

/// A little of everything on `serve`: an issue and a double click, an order and its payment, so
/// the labelled series have values to show.
async fn traffic(app: &TestApp, base: &str, coupon: i64, user: i64, option: i64) {
    let client = reqwest::Client::new();
    let token = app.customer(user);
    let send = |method: Method, path: String, body: Value| {
        client.request(method, format!("{base}{path}")).bearer_auth(&token).json(&body).send()
    };
    let issue = format!("/api/coupons/{coupon}/issue");
    json_of(send(Method::POST, issue.clone(), json!({ "user_id": user })).await.unwrap(), 201).await;
    json_of(send(Method::POST, issue, json!({ "user_id": user })).await.unwrap(), 400).await;
    let items = json!([{ "product_option_id": option, "quantity": 1 }]);
    let order = json_of(
        send(Method::POST, "/api/orders".into(), json!({ "user_id": user, "items": items })).await.unwrap(),
        201,
    )
    .await;
    let path = format!("/api/orders/{}/payment", order["order_id"].as_str().unwrap());
    json_of(send(Method::POST, path, json!({ "user_id": user })).await.unwrap(), 200).await;
}

/// A private Prometheus process scraping one target every second, with its data in a temporary
/// directory; killed (and the directory removed) when dropped.
struct Prometheus {
    child: Child,
    url: String,
    dir: PathBuf,
    client: reqwest::Client,
}

/// The Prometheus binary: `JUPANG_PROMETHEUS`, else `prometheus` on the `PATH`, else the Debian
/// package's path. Missing, the test fails: it must not pass without having seen a Prometheus.
fn prometheus_binary() -> PathBuf {
    if let Ok(path) = std::env::var("JUPANG_PROMETHEUS") {
        return path.into();
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join("prometheus")).find(|p| p.is_file()));
    on_path.or_else(|| Some(PathBuf::from("/usr/bin/prometheus")).filter(|p| p.is_file())).unwrap_or_else(|| {
        panic!(
            "no prometheus binary: install the Debian package (`apt-get install prometheus`, or run \
             `scripts/services.sh up` as root, which does it without starting the system service) or set \
             JUPANG_PROMETHEUS to a prometheus binary"
        )
    })
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`) as job `jupang`, and waits until it is ready.
    async fn start(target: &str) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("jupang-prometheus-{}", unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: jupang\n    metrics_path: /metrics\n    static_configs:\n      \
             - targets: [\"{target}\"]\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let binary = prometheus_binary();
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                let _ = std::fs::remove_dir_all(&dir);
                panic!("cannot start {}: {e} (JUPANG_PROMETHEUS, or the Debian package)", binary.display())
            });
        let mut prometheus = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
            client: reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = prometheus.client.get(format!("{}/-/ready", prometheus.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return prometheus;
            }
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                panic!("prometheus exited ({status}) before it was ready:\n{}", prometheus.log());
            }
            assert!(Instant::now() < deadline, "prometheus not ready within 30 s:\n{}", prometheus.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Its log, for failure messages.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query: the result vector, or Prometheus's error.
    async fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let q: String = form_urlencoded::byte_serialize(promql.as_bytes()).collect();
        let res = self.client.get(format!("{}/api/v1/query?query={q}", self.url)).send().await;
        let body: Value = res.map_err(|e| e.to_string())?.json().await.map_err(|e| e.to_string())?;
        if body["status"] != "success" {
            return Err(format!("{}: {}", body["errorType"], body["error"]));
        }
        Ok(body["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// The value of a query answering one sample, if it does.
    async fn value(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql).await.ok()?;
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// What Prometheus says about its targets (for failure messages).
    async fn targets(&self) -> String {
        let res = self.client.get(format!("{}/api/v1/targets", self.url)).send().await;
        match res {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(e) => e.to_string(),
        }
    }

    /// Kills the process and removes its data.
    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        // A dying Prometheus may still write into its directory: wait (briefly) until it is gone.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `serve` (child process) that has had a little traffic, scraped by a real Prometheus.
struct Scraped {
    _app: TestApp,
    serve: Child,
    base: String,
    prometheus: Prometheus,
}

async fn scraped() -> Scraped {
    let app = spawn_app().await;
    let coupon = create_coupon(&app, 10, json!({ "min_order_amount": 0 })).await;
    let option = option(&app, 10_000, 5).await;
    let user = app.create_user("KR", 100_000).await;
    let (serve, addr) = serve(&app).await;
    let base = format!("http://{addr}");
    traffic(&app, &base, coupon, user, option).await;
    let prometheus = Prometheus::start(&addr).await;
    Scraped { _app: app, serve, base, prometheus }
}

#[tokio::test]
async fn a_real_prometheus_scraping_serve_sees_every_contract_metric_with_its_labels_and_values() {
    let Scraped { _app, mut serve, prometheus, .. } = scraped().await;
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
        if let Ok(Some(status)) = serve.try_wait() {
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
    let _ = serve.kill().await;
}

#[tokio::test]
async fn a_freshly_started_serve_exposes_every_contract_metric_before_any_traffic() {
    let app = spawn_app().await;
    let (mut serve, addr) = serve(&app).await;
    let exposition = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
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
    let _ = serve.kill().await;
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
    let Scraped { _app, mut serve, base, prometheus } = scraped().await;
    let exported = sample_names(&reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap());
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
    let _ = serve.kill().await;
}
