//! Prometheus metrics: the recorder, metric names, and process metrics.
//!
//! Names and labels are the contract's (api.md, Metrics); labels stay low-cardinality
//! (route templates, never raw paths or user ids).

use std::sync::OnceLock;

use metrics::{Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::{
    admission::{self, orders::hydrate},
    config::Config,
    http::{observe, orders, payment},
    workers::{consumer, expiry, outbox},
};

/// `http_requests_total{method,route,status}`.
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
/// `http_request_duration_seconds{route}` histogram.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";
/// The names of the V2 stream sinks, the label values of the stream gauges.
const SINKS: [&str; 2] = ["coupons", "orders"];

/// `http_requests_shed_total{reason}`: requests answered 503 `OVERLOADED` instead of being
/// served; `reason` is `in_flight` (over `JUPANG_MAX_IN_FLIGHT`) or `db_pool` (no Postgres
/// connection within `JUPANG_DB_ACQUIRE_TIMEOUT_MS`). They also count in `http_requests_total`.
pub const HTTP_REQUESTS_SHED_TOTAL: &str = "http_requests_shed_total";

/// Latency buckets in seconds: fine below 50 ms where the V2 hot paths live.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 1.0, 2.5, 5.0, 10.0];

/// Batch-size buckets of the stream consumers (`consumer_batch_size`).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0];

/// Installs the global recorder once and returns its handle (tests build many apps per process).
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("static non-empty buckets")
                .set_buckets_for_metric(Matcher::Full("consumer_batch_size".into()), BATCH_BUCKETS)
                .expect("static non-empty buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder (e.g. a test harness) may already be set; the handle still renders ours.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Describes every metric (HELP text, unit) and creates, at zero, the series whose label sets are
/// known in advance, so a freshly started `serve` exposes every metric of the contract and
/// `rate()` has a first sample to start from.
///
/// Counters are created with `increment(0)` and gauges with `increment(0.0)`: neither changes a
/// value already there (tests build many apps in one process, sharing one recorder). Gauges a
/// worker maintains are created only when that worker runs: a zero nobody measures would lie.
/// `coupon_remaining{coupon_id}` appears with the first issue of each coupon.
pub fn register(config: &Config) {
    install();
    describe();
    crate::services::coupons::register_metrics(config.issue_strategy);
    for outcome in orders::OUTCOMES {
        counter!(orders::ORDER_CREATE_TOTAL, "outcome" => outcome).increment(0);
    }
    for outcome in payment::OUTCOMES {
        counter!(payment::PAYMENT_TOTAL, "outcome" => outcome).increment(0);
    }
    for reason in ["in_flight", "db_pool"] {
        counter!(HTTP_REQUESTS_SHED_TOTAL, "reason" => reason).increment(0);
    }
    // The scrape itself is the first request a fresh server answers: its series exist from the
    // first scrape on, so the HTTP metrics are never missing from a complete exposition.
    observe::register_series("GET", "/metrics", 200);
    if config.workers.consumer {
        for sink in SINKS {
            gauge!(consumer::STREAM_PENDING_ENTRIES, "stream" => sink).increment(0.0);
            gauge!(consumer::STREAM_PERSIST_LAG_SECONDS, "stream" => sink).increment(0.0);
            counter!(consumer::STREAM_DEAD_LETTER_TOTAL, "sink" => sink).increment(0);
            // Registering a histogram renders its buckets at zero.
            let _ = histogram!(consumer::CONSUMER_BATCH_SIZE, "sink" => sink);
        }
    }
    if config.workers.outbox && config.data_platform_url.is_some() {
        gauge!(outbox::OUTBOX_PENDING_EVENTS).increment(0.0);
        for outcome in outbox::OUTCOMES {
            counter!(outbox::OUTBOX_DELIVERY_TOTAL, "outcome" => outcome).increment(0);
        }
    }
    if config.workers.expiry {
        counter!(expiry::ORDER_EXPIRED_TOTAL).increment(0);
    }
    if config.workers.reconcile {
        // No drift known until the first round (every 30 s).
        let kinds = admission::coupons::reconcile::drift_by_kind(&[]).map(|(kind, _)| kind);
        for kind in kinds.into_iter().chain(["stock"]) {
            gauge!(admission::RECONCILE_DRIFT, "kind" => kind).increment(0.0);
        }
    }
}

/// HELP text and units of every metric the application exports.
fn describe() {
    describe_counter!(HTTP_REQUESTS_TOTAL, Unit::Count, "HTTP requests answered, by method, route template and status");
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time to answer an HTTP request, by route template"
    );
    describe_counter!(
        HTTP_REQUESTS_SHED_TOTAL,
        Unit::Count,
        "Requests refused with 503 OVERLOADED, by reason (in_flight, db_pool)"
    );
    describe_counter!(orders::ORDER_CREATE_TOTAL, Unit::Count, "Order creations by outcome");
    describe_counter!(payment::PAYMENT_TOTAL, Unit::Count, "Payments by outcome");
    describe_counter!(expiry::ORDER_EXPIRED_TOTAL, Unit::Count, "Unpaid orders expired and their stock returned");
    describe_gauge!(
        consumer::STREAM_PENDING_ENTRIES,
        Unit::Count,
        "V2 stream entries not yet persisted into Postgres, by stream (sink)"
    );
    describe_gauge!(
        consumer::STREAM_PERSIST_LAG_SECONDS,
        Unit::Seconds,
        "Age of the oldest V2 stream entry not yet persisted (0 when caught up), by stream (sink)"
    );
    describe_histogram!(consumer::CONSUMER_BATCH_SIZE, Unit::Count, "Entries per batch the stream consumer persists");
    describe_counter!(consumer::STREAM_DEAD_LETTER_TOTAL, Unit::Count, "Stream entries moved to a dead-letter stream");
    describe_gauge!(outbox::OUTBOX_PENDING_EVENTS, Unit::Count, "Outbox events neither delivered nor FAILED");
    describe_counter!(
        outbox::OUTBOX_DELIVERY_TOTAL,
        Unit::Count,
        "Outbox delivery attempts by outcome (delivered, retry, failed)"
    );
    describe_gauge!(admission::RECONCILE_DRIFT, Unit::Count, "Drift between Redis and Postgres counters, by kind");
    describe_counter!(hydrate::STOCK_HYDRATED_TOTAL, Unit::Count, "Stock counters loaded into Redis from Postgres");
}

/// Process metrics in the exposition format (the names of the Prometheus client libraries), read
/// from `/proc/self` at scrape time (Linux; elsewhere nothing).
pub fn process_metrics() -> String {
    let mut out = String::new();
    // Linux's USER_HZ and page size on every platform this runs on (x86-64, aarch64 4K pages).
    let page_size = 4096u64;
    let ticks_per_sec = 100.0;
    let mut put = |name: &str, kind: &str, help: &str, value: f64| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
    };
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the parenthesised command name; utime=14, stime=15, starttime=22 (1-based).
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let num = |i: usize| f.get(i - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            let cpu = (num(14) + num(15)) / ticks_per_sec;
            put("process_cpu_seconds_total", "counter", "User and system CPU time spent in seconds", cpu);
            put("process_threads", "gauge", "Number of OS threads", num(20));
            if let Ok(boot) = boot_time() {
                let start = boot + num(22) / ticks_per_sec;
                put("process_start_time_seconds", "gauge", "Start time of the process since the epoch", start);
            }
        }
    }
    if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
        let f: Vec<u64> = statm.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        if f.len() >= 2 {
            put("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes", (f[0] * page_size) as f64);
            put("process_resident_memory_bytes", "gauge", "Resident memory size in bytes", (f[1] * page_size) as f64);
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        put("process_open_fds", "gauge", "Number of open file descriptors", fds.count() as f64);
    }
    out
}

fn boot_time() -> std::io::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<f64>().ok()))
        .ok_or_else(|| std::io::Error::other("no btime"))
}

/// How often histogram samples are folded into their buckets between scrapes.
pub const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds recorded histogram samples into buckets every [`UPKEEP_INTERVAL`] until shutdown.
/// The recorder keeps every sample until a render or an upkeep: without this task a server
/// nobody scrapes would grow by 8 bytes per request, forever.
pub async fn upkeep(handle: PrometheusHandle, shutdown: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}
