//! `/health`, `/ready` and `/metrics`, plus the per-request metrics middleware.

use std::time::{Duration, Instant};

use axum::{
    Json, Router,
    extract::{MatchedPath, Request, State},
    http::{StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

use crate::{metrics as m, state::AppState, store::pg};

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
    let timeout = Duration::from_secs(1);
    let (postgres, redis) = tokio::join!(
        async {
            match tokio::time::timeout(timeout, pg::pending_migrations(&state.db)).await {
                Ok(Ok(pending)) if pending.is_empty() => "up",
                Ok(Ok(_)) => "unmigrated",
                _ => "down",
            }
        },
        async { if state.redis.ping(timeout).await { "up" } else { "down" } }
    );
    let ok = postgres == "up" && redis == "up";
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let body = json!({
        "status": if ok { "ready" } else { "not_ready" },
        "checks": { "postgres": postgres, "redis": redis },
    });
    (status, Json(body)).into_response()
}

/// Prometheus text exposition of every metric plus process metrics.
async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = state.metrics.render();
    body.push_str(&m::process_metrics());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

/// Middleware: counts requests and records their duration by route template, method and status.
pub async fn track(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().replacen("/api/v1/", "/api/", 1))
        .unwrap_or_else(|| "unmatched".to_owned());
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!(m::HTTP_REQUESTS_TOTAL, "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(m::HTTP_REQUEST_DURATION_SECONDS, "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    res
}
