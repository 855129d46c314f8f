//! Prometheus metrics: the recorder, metric names, and process metrics.
//!
//! Names and labels are the contract's (api.md, Metrics); labels stay low-cardinality
//! (route templates, never raw paths or user ids).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// `http_requests_total{method,route,status}`.
pub const HTTP_REQUESTS_TOTAL: &str = "http_requests_total";
/// `http_request_duration_seconds{method,route}` histogram.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "http_request_duration_seconds";

/// `http_requests_shed_total{reason}`: requests answered 503 `OVERLOADED` instead of being
/// served; `reason` is `in_flight` (over `JUPANG_MAX_IN_FLIGHT`) or `db_pool` (no Postgres
/// connection within `JUPANG_DB_ACQUIRE_TIMEOUT_MS`). They also count in `http_requests_total`.
pub const HTTP_REQUESTS_SHED_TOTAL: &str = "http_requests_shed_total";

/// Latency buckets in seconds: fine below 50 ms where the flash path lives.
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

/// Process metrics in the exposition format, read from `/proc/self` at scrape time (Linux).
pub fn process_metrics() -> String {
    let mut out = String::new();
    let page_size = 4096u64;
    let ticks_per_sec = 100.0;
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the parenthesised command name; utime=14, stime=15, starttime=22 (1-based).
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let num = |i: usize| f.get(i - 3).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            let cpu = (num(14) + num(15)) / ticks_per_sec;
            out.push_str(&format!("# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {cpu}\n"));
            out.push_str(&format!("# TYPE process_threads gauge\nprocess_threads {}\n", num(20)));
            if let Ok(boot) = boot_time() {
                let start = boot + num(22) / ticks_per_sec;
                out.push_str(&format!("# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds {start}\n"));
            }
        }
    }
    if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
        let f: Vec<u64> = statm.split_whitespace().filter_map(|v| v.parse().ok()).collect();
        if f.len() >= 2 {
            out.push_str(&format!(
                "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes {}\n\
                 # TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {}\n",
                f[0] * page_size,
                f[1] * page_size
            ));
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        out.push_str(&format!("# TYPE process_open_fds gauge\nprocess_open_fds {}\n", fds.count()));
    }
    out
}

fn boot_time() -> std::io::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<f64>().ok()))
        .ok_or_else(|| std::io::Error::other("no btime"))
}
