//! Load shedding: at most `JUPANG_MAX_IN_FLIGHT` requests are handled at once; any request
//! beyond that answers 503 `OVERLOADED` with `Retry-After` at once, instead of queueing work
//! (memory, Postgres pool waiters, Redis pipeline) until every request is slow and the process
//! collapses.
//!
//! `/health`, `/ready` and `/metrics` are never shed: orchestrators and Prometheus must still
//! see a saturated process (alive, and how busy), or they would restart it or lose the very
//! numbers that explain the overload.
//!
//! The limiter sits on the hottest path, so it is a plain tower service rather than a
//! `from_fn` middleware: admitting a request is one atomic compare-and-swap on the semaphore
//! plus an `Arc` count, and its future is the handler's own future with the permit beside it
//! (no boxing, no allocation). The permit returns when the response is produced, or when the
//! request is dropped (a timeout, a client gone).
//!
//! It runs inside the metrics middleware (`observe::track`), so a shed request is still counted
//! in `http_requests_total{status="503"}`; sheds are also counted by reason in
//! `http_requests_shed_total`.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    extract::Request,
    response::{IntoResponse, Response},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use super::error::{ApiError, RETRY_AFTER_SECS};

/// `http_requests_shed_total{reason}`: requests answered 503 `OVERLOADED` instead of being
/// served; `reason` is `in_flight` (over `JUPANG_MAX_IN_FLIGHT`, here) or `db_pool` (no Postgres
/// connection within `JUPANG_DB_ACQUIRE_TIMEOUT_MS`, `http::error`). They also count in
/// `http_requests_total`.
pub const HTTP_REQUESTS_SHED_TOTAL: &str = "http_requests_shed_total";

/// Describes [`HTTP_REQUESTS_SHED_TOTAL`] and creates both reasons at zero.
pub fn register_metrics() {
    metrics::describe_counter!(
        HTTP_REQUESTS_SHED_TOTAL,
        metrics::Unit::Count,
        "Requests refused with 503 OVERLOADED, by reason (in_flight, db_pool)"
    );
    for reason in ["in_flight", "db_pool"] {
        metrics::counter!(HTTP_REQUESTS_SHED_TOTAL, "reason" => reason).increment(0);
    }
}

/// Whether a path is exempt from the limit (the operational routes).
fn is_exempt(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics")
}

/// Limits the requests in flight across every route it wraps (clones share the permits).
#[derive(Clone)]
pub struct InFlightLimitLayer {
    permits: Arc<Semaphore>,
}

impl InFlightLimitLayer {
    /// A limit of `max_in_flight` concurrent requests (`JUPANG_MAX_IN_FLIGHT`).
    pub fn new(max_in_flight: usize) -> InFlightLimitLayer {
        InFlightLimitLayer { permits: Arc::new(Semaphore::new(max_in_flight)) }
    }
}

impl<S> Layer<S> for InFlightLimitLayer {
    type Service = InFlightLimit<S>;

    fn layer(&self, inner: S) -> InFlightLimit<S> {
        InFlightLimit { inner, permits: self.permits.clone() }
    }
}

/// The service [`InFlightLimitLayer`] wraps around a route.
#[derive(Clone)]
pub struct InFlightLimit<S> {
    inner: S,
    permits: Arc<Semaphore>,
}

impl<S> Service<Request> for InFlightLimit<S>
where
    S: Service<Request, Response = Response>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = S::Error;
    type Future = InFlightFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        if is_exempt(req.uri().path()) {
            return InFlightFuture::Running { inner: self.inner.call(req), _permit: None };
        }
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => InFlightFuture::Running { inner: self.inner.call(req), _permit: Some(permit) },
            Err(_) => {
                metrics::counter!(HTTP_REQUESTS_SHED_TOTAL, "reason" => "in_flight").increment(1);
                // The `localize` middleware renders the body in the caller's language.
                InFlightFuture::Shed(Some(ApiError::overloaded(RETRY_AFTER_SECS).into_response()))
            }
        }
    }
}

/// The response future of [`InFlightLimit`]: the handler's future holding its permit, or the
/// ready 503 of a shed request.
pub enum InFlightFuture<F> {
    /// Admitted (or exempt): the handler runs; the permit is released when this is dropped.
    Running {
        /// The handler's future.
        inner: F,
        /// `None` for exempt routes.
        _permit: Option<OwnedSemaphorePermit>,
    },
    /// Shed: the 503 answer, taken on the first poll.
    Shed(Option<Response>),
}

impl<F, E> Future for InFlightFuture<F>
where
    F: Future<Output = Result<Response, E>> + Unpin,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            InFlightFuture::Running { inner, .. } => Pin::new(inner).poll(cx),
            InFlightFuture::Shed(res) => {
                Poll::Ready(Ok(res.take().expect("a shed future is polled to completion once")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{convert::Infallible, sync::Arc};

    use axum::{body::Body, http::StatusCode};
    use tokio::sync::Notify;
    use tower::ServiceExt;

    use super::*;

    type BoxedFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    /// A handler that answers `/slow` only once `gate` is notified, every other path at once.
    fn limited(
        max: usize,
        gate: Arc<Notify>,
    ) -> impl Service<Request, Response = Response, Error = Infallible> + Clone {
        let handler = tower::service_fn(move |req: Request| {
            let gate = gate.clone();
            Box::pin(async move {
                if req.uri().path() == "/slow" {
                    gate.notified().await;
                }
                Ok(StatusCode::OK.into_response())
            }) as BoxedFuture
        });
        InFlightLimitLayer::new(max).layer(handler)
    }

    fn get(path: &str) -> Request {
        Request::builder().uri(path).body(Body::empty()).unwrap()
    }

    async fn answer(
        svc: &mut (impl Service<Request, Response = Response, Error = Infallible> + Clone),
        path: &str,
    ) -> Response {
        svc.ready().await.unwrap().call(get(path)).await.unwrap()
    }

    #[tokio::test]
    async fn a_request_beyond_the_limit_is_shed_until_a_permit_returns() {
        let gate = Arc::new(Notify::new());
        let mut svc = limited(1, gate.clone());
        let slow = svc.ready().await.unwrap().call(get("/slow"));

        let shed = answer(&mut svc, "/api/coupons").await;
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.headers()["retry-after"], "1");
        for path in ["/health", "/ready", "/metrics"] {
            assert_eq!(answer(&mut svc, path).await.status(), StatusCode::OK, "{path} is exempt");
        }

        gate.notify_one();
        assert_eq!(slow.await.unwrap().status(), StatusCode::OK);
        assert_eq!(answer(&mut svc, "/api/coupons").await.status(), StatusCode::OK, "the permit came back");
    }

    #[tokio::test]
    async fn a_dropped_request_gives_its_permit_back() {
        let mut svc = limited(1, Arc::new(Notify::new()));
        let abandoned = svc.ready().await.unwrap().call(get("/slow"));
        assert_eq!(answer(&mut svc, "/api/coupons").await.status(), StatusCode::SERVICE_UNAVAILABLE);
        drop(abandoned);
        assert_eq!(answer(&mut svc, "/api/coupons").await.status(), StatusCode::OK);
    }
}
