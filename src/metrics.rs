//! Prometheus metrics infrastructure: the recorder, its histogram buckets, its upkeep, and the
//! process metrics read from `/proc`.
//!
//! Metric names live as constants next to the code that records them, and each module that owns
//! metrics exposes a `register_metrics` (HELP text, units, and the series known in advance at
//! zero) that `app` calls at start-up: `http`, `services::coupons`, `admission`, `workers`. Names
//! and labels are the contract's (api.md, Metrics); labels stay low-cardinality (route templates,
//! never raw paths or user ids).
//!
//! Conventions of registration: counters are created with `increment(0)` and gauges with
//! `increment(0.0)`, which change no value already there (tests build many apps in one process,
//! sharing one recorder); gauges a worker maintains are created only when that worker runs, since
//! a zero nobody measures would lie.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds, for every histogram whose name ends in `_seconds`: fine below
/// 50 ms where the V2 hot paths live.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 1.0, 2.5, 5.0, 10.0];

/// Batch-size buckets, for every histogram whose name ends in `_batch_size`
/// (`consumer_batch_size`).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0];

/// Installs the global recorder once and returns its handle (tests build many apps per process).
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("static non-empty buckets")
                .set_buckets_for_metric(Matcher::Suffix("_batch_size".into()), BATCH_BUCKETS)
                .expect("static non-empty buckets")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder (e.g. a test harness) may already be set; the handle still renders ours.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
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

/// How often histogram samples are folded into their buckets between scrapes: often enough
/// that one fold stays short (at 50,000 requests a second, a second's samples).
pub const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Folds recorded histogram samples into buckets every [`UPKEEP_INTERVAL`] until shutdown.
/// The recorder keeps every sample until a render or an upkeep: without this task a server
/// nobody scrapes would grow by 8 bytes per request, forever. The fold is plain CPU work over
/// every sample since the last one, so it runs on a blocking thread: on a runtime thread it
/// held up the requests queued there for as long as it took.
pub async fn upkeep(handle: PrometheusHandle, shutdown: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {
                let handle = handle.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || handle.run_upkeep()).await {
                    tracing::error!(error.cause = %e, "metrics upkeep failed");
                }
            }
        }
    }
}
