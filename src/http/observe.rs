//! `/health`, `/ready` and `/metrics`, plus the per-request metrics middleware.

use std::{
    collections::HashMap,
    sync::{LazyLock, PoisonError, RwLock},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{MatchedPath, Request, State},
    http::{Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use metrics::{Counter, Histogram};
use serde_json::json;

use crate::{
    metrics as m,
    services::{AppState, health},
};

/// `http_requests_total{method,route,status}`.
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
/// `http_request_duration_seconds{route}` histogram.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";

/// Describes the HTTP metrics and creates the series of the first request a fresh server
/// answers, the scrape itself, so the HTTP metrics are never missing from a complete exposition.
pub fn register_metrics() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(HTTP_REQUESTS_TOTAL, Unit::Count, "HTTP requests answered, by method, route template and status");
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time to answer an HTTP request, by route template"
    );
    register_series("GET", "/metrics", 200);
}

/// The operational routes (not under `/api`).
pub fn router() -> Router<AppState> {
    Router::new().route("/health", get(health)).route("/ready", get(ready)).route("/metrics", get(metrics))
}

/// Liveness: answers without touching any dependency.
async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: Postgres and Redis answer and every migration is applied.
async fn ready(State(state): State<AppState>) -> Response {
    let checks = health::readiness(&state, Duration::from_secs(1)).await;
    let ok = checks.ready();
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if ok { "ready" } else { "not_ready" },
        "checks": { "postgres": checks.postgres, "redis": checks.redis },
    });
    (status, Json(body)).into_response()
}

/// Prometheus text exposition of every metric plus process metrics.
async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = state.metrics.render();
    body.push_str(&m::process_metrics());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// Middleware: counts requests by route template, method and status, and records their duration
/// by route template (the contract's labels: a latency histogram per method and status would
/// multiply its bucket series for little gain).
///
/// Every label value is a `&'static str` from a bounded set (route templates, standard methods,
/// status codes), and the handles of each series are built once: a request then costs two
/// read-locked map lookups and no allocation.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| route_label(p.as_str()));
    let res = next.run(req).await;
    let elapsed = started.elapsed().as_secs_f64();
    with_series(method, route, res.status().as_u16(), |series| {
        series.requests.increment(1);
        series.duration.record(elapsed);
    });
    res
}

/// Creates one series of the HTTP metrics at zero (start-up registration).
fn register_series(method: &str, route: &str, status: u16) {
    let method = method_label(&method.parse().unwrap_or_default());
    with_series(method, route_label(route), status, |series| series.requests.increment(0));
}

/// The handles of one `(method, route, status)` series.
struct Series {
    requests: Counter,
    duration: Histogram,
}

/// A method as a label: the standard ones by name, anything else as `OTHER` (a client must not
/// be able to mint series).
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [&str; 9] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT", "TRACE"];
    STANDARD.into_iter().find(|m| *m == method.as_str()).unwrap_or("OTHER")
}

/// A matched route template as a label, `/api/v1/...` folded into `/api/...`. Interned: there
/// are as many as the router has routes, each leaked once.
fn route_label(template: &str) -> &'static str {
    static ROUTES: LazyLock<RwLock<HashMap<Box<str>, &'static str>>> = LazyLock::new(Default::default);
    if let Some(route) = ROUTES.read().unwrap_or_else(PoisonError::into_inner).get(template) {
        return route;
    }
    let mut routes = ROUTES.write().unwrap_or_else(PoisonError::into_inner);
    routes
        .entry(template.into())
        .or_insert_with(|| Box::leak(template.replacen("/api/v1/", "/api/", 1).into_boxed_str()))
}

/// Runs `f` with the cached handles of a series, registered on first use.
fn with_series(method: &'static str, route: &'static str, status: u16, f: impl FnOnce(&Series)) {
    type Key = (&'static str, &'static str, u16);
    static SERIES: LazyLock<RwLock<HashMap<Key, Series>>> = LazyLock::new(Default::default);
    let key = (method, route, status);
    if let Some(series) = SERIES.read().unwrap_or_else(PoisonError::into_inner).get(&key) {
        return f(series);
    }
    // A handle taken before the recorder exists would count into nothing, forever.
    m::install();
    let series = Series {
        requests: metrics::counter!(HTTP_REQUESTS_TOTAL, "method" => method, "route" => route, "status" => status.to_string()),
        duration: metrics::histogram!(HTTP_REQUEST_DURATION_SECONDS, "route" => route),
    };
    f(SERIES.write().unwrap_or_else(PoisonError::into_inner).entry(key).or_insert(series));
}
