//! The engine every scenario runs on: one task per connection, each asking its [`Workload`] for
//! the next call, sending it (paced by the open model or as fast as answers come back), and
//! recording latency and outcome per route. Nothing is shared on the hot path but a few atomic
//! counters; histograms and counts are per task and merged at the end.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use hyper::{Method, Request, Uri, body::Bytes, header::HeaderValue};
use serde::Deserialize;
use tokio::sync::Notify;

use super::{
    client::{Body, Conn, Target, TransportError},
    histogram::{new_histogram, record},
    schedule::Pacing,
};

/// One request to send.
#[derive(Debug, Clone)]
pub struct Call {
    /// The route label latency and outcomes are reported under (`POST /api/coupons/{id}/issue`).
    pub route: &'static str,
    /// HTTP method.
    pub method: Method,
    /// Path and query.
    pub uri: Uri,
    /// `Authorization` header value, if any.
    pub auth: Option<HeaderValue>,
    /// JSON body, if any.
    pub body: Option<Bytes>,
    /// The scenario's own reference (a user id, an index).
    pub tag: u64,
    /// Pause before sending (a client backing off before a retry).
    pub delay: Duration,
    /// Earlier attempts of the same call (retries).
    pub attempt: u32,
    /// Sent on the heels of an earlier answer on this connection (a payment after its order, a
    /// retry): not an arrival of the open model. It takes no slot of the schedule, its latency
    /// counts from when it became due, and it is sent even after the run's end (it finishes an
    /// arrival that was part of the run).
    pub follow_up: bool,
    /// `Accept-Language` header value, if any (catalog reads are localised).
    pub language: Option<HeaderValue>,
}

impl Call {
    /// A call without body, authorization or delay.
    pub fn new(route: &'static str, method: Method, uri: Uri) -> Call {
        Call {
            route,
            method,
            uri,
            auth: None,
            body: None,
            tag: 0,
            delay: Duration::ZERO,
            attempt: 0,
            follow_up: false,
            language: None,
        }
    }

    fn request(&self) -> Request<Body> {
        let mut req = Request::builder().method(self.method.clone()).uri(self.uri.clone());
        if let Some(auth) = &self.auth {
            req = req.header(hyper::header::AUTHORIZATION, auth.clone());
        }
        if let Some(language) = &self.language {
            req = req.header(hyper::header::ACCEPT_LANGUAGE, language.clone());
        }
        let body = match &self.body {
            Some(b) => {
                req = req.header(hyper::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                b.clone()
            }
            None => Bytes::new(),
        };
        req.body(Body::new(body)).expect("a request built from valid parts")
    }
}

/// What came back for a call.
#[derive(Debug)]
pub struct Answer<'a> {
    /// HTTP status, or the transport error when there was no answer.
    pub status: Result<u16, TransportError>,
    /// The contract's error `code` from a JSON error body.
    pub code: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

/// The scenario logic of one connection.
pub trait Workload: Send + 'static {
    /// The next call, or `None` when this connection has nothing more to send.
    fn next(&mut self) -> Option<Call>;
    /// Sees the answer to a call (to chain a follow-up or a retry, or to keep what it says).
    fn answered(&mut self, call: &Call, answer: &Answer<'_>);
}

/// The outcome an answer is counted under: HTTP status plus error code, or a transport error.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Outcome {
    /// HTTP status; 0 for a transport error.
    pub status: u16,
    /// The contract's error code, or the transport error kind.
    pub code: Option<Box<str>>,
}

impl Outcome {
    /// `201`, `400 ALREADY_ISSUED`, `transport error: timeout`.
    pub fn label(&self) -> String {
        match (self.status, &self.code) {
            (0, code) => format!("transport error: {}", code.as_deref().unwrap_or("?")),
            (s, Some(code)) => format!("{s} {code}"),
            (s, None) => s.to_string(),
        }
    }
}

/// Latency and outcomes of one route.
#[derive(Debug, Clone)]
pub struct RouteStats {
    /// Route label.
    pub route: &'static str,
    /// From actual send to complete answer (service time as the client saw it).
    pub service: Histogram<u64>,
    /// From intended send time to complete answer (open model only).
    pub intended: Option<Histogram<u64>>,
    /// Answers per outcome.
    pub outcomes: Vec<(Outcome, u64)>,
}

impl RouteStats {
    fn new(route: &'static str, open: bool) -> RouteStats {
        RouteStats { route, service: new_histogram(), intended: open.then(new_histogram), outcomes: Vec::new() }
    }

    fn count(&mut self, status: u16, code: Option<&str>, n: u64) {
        // A handful of distinct outcomes: a linear search allocates nothing once each is known.
        match self.outcomes.iter_mut().find(|(o, _)| o.status == status && o.code.as_deref() == code) {
            Some((_, c)) => *c += n,
            None => self.outcomes.push((Outcome { status, code: code.map(Into::into) }, n)),
        }
    }

    fn merge(&mut self, other: RouteStats) {
        self.service.add(&other.service).expect("auto-resizing histograms add");
        if let (Some(a), Some(b)) = (self.intended.as_mut(), other.intended.as_ref()) {
            a.add(b).expect("auto-resizing histograms add");
        }
        for (o, n) in other.outcomes {
            self.count(o.status, o.code.as_deref(), n);
        }
    }

    /// Answers with this status (0: transport errors).
    pub fn with_status(&self, status: u16) -> u64 {
        self.outcomes.iter().filter(|(o, _)| o.status == status).map(|(_, n)| n).sum()
    }
}

/// What a run measured.
#[derive(Debug)]
pub struct RunStats {
    /// How the load was offered.
    pub pacing: Pacing,
    /// Per route, in the order first seen.
    pub routes: Vec<RouteStats>,
    /// Calls answered or failed.
    pub calls: u64,
    /// Arrivals sent: the calls that took a slot of the schedule (every call but follow-ups).
    pub arrivals: u64,
    /// From the start of the clock to the last answer.
    pub elapsed: Duration,
    /// When the last answer came in.
    pub last_answer: Instant,
    /// Connections opened again during the run.
    pub reconnects: u64,
}

#[derive(Deserialize)]
struct ErrorCode<'a> {
    #[serde(borrow)]
    code: Option<&'a str>,
}

/// Options of one run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Pacing and connection count.
    pub pacing: Pacing,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Stop sending after this long (the calls in flight finish).
    pub duration: Option<Duration>,
    /// Label of the progress line on stderr; `None` is quiet.
    pub progress: Option<String>,
    /// Stop sending arrivals once this is set (another run of the same process has ended);
    /// follow-ups and the calls in flight finish.
    pub stop: Option<Arc<AtomicBool>>,
    /// Notified once every connection is open and the clock starts.
    pub started: Option<Arc<Notify>>,
}

impl RunOptions {
    /// Options with `pacing` and `timeout` and nothing else: no end but the workloads' own, quiet.
    pub fn new(pacing: Pacing, timeout: Duration) -> RunOptions {
        RunOptions { pacing, timeout, duration: None, progress: None, stop: None, started: None }
    }
}

struct Shared {
    slots: AtomicU64,
    arrivals: AtomicU64,
    done: AtomicU64,
    stop: AtomicBool,
    t0: Instant,
    options: RunOptions,
}

/// Runs one workload per connection (`workloads.len()` must equal the pacing's connection
/// count) until each has nothing more to send, and returns the stats and the workloads.
pub async fn run<W: Workload>(
    target: &Target,
    options: RunOptions,
    workloads: Vec<W>,
) -> anyhow::Result<(RunStats, Vec<W>)> {
    anyhow::ensure!(workloads.len() == options.pacing.connections(), "one workload per connection");
    let target = Arc::new(target.clone());
    // Every connection is open before the clock starts: the handshakes are not the server's load.
    let mut conns = Vec::with_capacity(workloads.len());
    for _ in 0..workloads.len() {
        let mut conn = Conn::new(target.clone());
        conn.connect().await.map_err(|e| anyhow::anyhow!("cannot connect to {}: {}", target.base, e.as_str()))?;
        conns.push(conn);
    }
    let shared = Arc::new(Shared {
        slots: AtomicU64::new(0),
        arrivals: AtomicU64::new(0),
        done: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        t0: Instant::now(),
        options: options.clone(),
    });
    let progress = options.progress.clone().map(|label| tokio::spawn(progress(label, shared.clone())));
    if let Some(started) = &options.started {
        started.notify_one();
    }
    let tasks: Vec<_> =
        conns.into_iter().zip(workloads).map(|(conn, w)| tokio::spawn(connection(conn, w, shared.clone()))).collect();
    let (mut routes, mut finished, mut reconnects) = (Vec::<RouteStats>::new(), Vec::new(), 0);
    let mut last_answer = shared.t0;
    for task in tasks {
        let (w, stats, last, conn) = task.await?;
        for r in stats {
            match routes.iter_mut().find(|x| x.route == r.route) {
                Some(x) => x.merge(r),
                None => routes.push(r),
            }
        }
        last_answer = last_answer.max(last);
        reconnects += conn.reconnects();
        finished.push(w);
    }
    shared.stop.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        p.abort();
    }
    let stats = RunStats {
        pacing: options.pacing,
        calls: shared.done.load(Ordering::Relaxed),
        arrivals: shared.arrivals.load(Ordering::Relaxed),
        routes,
        elapsed: last_answer - shared.t0,
        last_answer,
        reconnects,
    };
    Ok((stats, finished))
}

/// One connection's loop.
async fn connection<W: Workload>(mut conn: Conn, mut w: W, shared: Arc<Shared>) -> (W, Vec<RouteStats>, Instant, Conn) {
    let open = matches!(shared.options.pacing, Pacing::Open { .. });
    let deadline = shared.options.duration.map(|d| shared.t0 + d);
    let (mut stats, mut last) = (Vec::<RouteStats>::new(), shared.t0);
    let stopped = || shared.options.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed));
    loop {
        let Some(call) = w.next() else { break };
        let intended = if call.follow_up {
            // Due once its pause is over: sent at once, whatever the schedule says.
            open.then(|| Instant::now() + call.delay)
        } else {
            if deadline.is_some_and(|d| Instant::now() >= d) || stopped() {
                break;
            }
            // Slots are taken in arrival order, so the open model's schedule is one arrival per slot.
            let slot = shared.slots.fetch_add(1, Ordering::Relaxed);
            let intended = shared.options.pacing.intended(shared.t0, slot);
            if let (Some(at), Some(end)) = (intended, deadline)
                && at >= end
            {
                // Due after the end of the run: not part of it.
                break;
            }
            if let Some(at) = intended {
                tokio::time::sleep_until(at.into()).await;
                if stopped() {
                    break;
                }
            }
            shared.arrivals.fetch_add(1, Ordering::Relaxed);
            intended
        };
        if !call.delay.is_zero() {
            tokio::time::sleep(call.delay).await;
        }
        let sent = Instant::now();
        let result = conn.exchange_within(call.request(), shared.options.timeout).await;
        let done = Instant::now();
        last = done;
        let (status, body) = match &result {
            Ok((status, body)) => (Ok(status.as_u16()), body.as_ref()),
            Err(e) => (Err(*e), &[][..]),
        };
        let code = match status {
            Ok(s) if s >= 400 => serde_json::from_slice::<ErrorCode>(body).ok().and_then(|e| e.code),
            Err(e) => Some(e.as_str()),
            Ok(_) => None,
        };
        let route = match stats.iter().position(|r| r.route == call.route) {
            Some(i) => &mut stats[i],
            None => {
                stats.push(RouteStats::new(call.route, open));
                stats.last_mut().expect("just pushed")
            }
        };
        record(&mut route.service, done - sent);
        if let (Some(h), Some(at)) = (route.intended.as_mut(), intended) {
            record(h, done - at);
        }
        route.count(status.unwrap_or(0), code, 1);
        if status == Err(TransportError::Connect) {
            // The server is not accepting: do not spin through the plan at full speed.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        w.answered(&call, &Answer { status, code, body });
        shared.done.fetch_add(1, Ordering::Relaxed);
    }
    (w, stats, last, conn)
}

/// Prints `label: N requests, R req/s` on stderr once a second until the run ends.
async fn progress(label: String, shared: Arc<Shared>) {
    let mut tick = tokio::time::interval_at((shared.t0 + Duration::from_secs(1)).into(), Duration::from_secs(1));
    let mut before = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let done = shared.done.load(Ordering::Relaxed);
        eprintln!("{label}: {done} requests done, {} req/s", done - before);
        before = done;
    }
}

/// The retry a real client makes of a call answered with the contract's retryable errors:
/// 409 `CONCURRENCY_CONFLICT` at once, 503 `OVERLOADED` after a short pause. `None` when the
/// answer is not retryable or `max_retries` are spent.
pub fn retry_of(call: &Call, answer: &Answer<'_>, max_retries: u32) -> Option<Call> {
    let delay = match (answer.status, answer.code) {
        (Ok(409), Some("CONCURRENCY_CONFLICT")) => Duration::ZERO,
        (Ok(503), Some("OVERLOADED")) => Duration::from_millis(100),
        _ => return None,
    };
    (call.attempt < max_retries).then(|| Call { delay, attempt: call.attempt + 1, follow_up: true, ..call.clone() })
}
