//! `jupang loadgen waiting-room`: its verdict over a real room.

use super::loadgen_on;
use crate::support::{on_cluster_topology, spawn_app};

#[tokio::test]
async fn a_waiting_room_run_admits_everyone_in_order_under_the_cap_and_says_so() {
    let app = spawn_app().await;
    let run =
        loadgen_on(&app, "waiting-room", "--entrants 600 --admit-per-second 400 --max-active 200 --connections 32")
            .await;
    let r = &run.report;
    assert!(run.success, "verdict: {}; stderr: {}", r["verdict"], run.stderr);
    assert_eq!(r["order_violations"], 0, "{r}");
    let peak = r["peak_active"].as_u64().unwrap();
    assert!((1..=200).contains(&peak), "{r}");
    assert_eq!(r["admitted"].as_u64().unwrap() + r["expired_before_poll"].as_u64().unwrap(), 600, "{r}");
    assert!(r["polls"].as_u64().unwrap() >= 600 && r["poll"]["p99_ms"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["time_to_admit_all_secs"].as_f64().unwrap() >= 2.0, "600 at 200 per 1 s pass lifetime: {r}");

    // The throughput phases ran in the same process: the ceiling, 600 entries, 1,200 polls.
    let t = &r["throughput"];
    for (phase, n) in [("ceiling", 600), ("enter", 600), ("poll", 1_200)] {
        assert_eq!(t[phase]["requests"], n, "{phase}: {t}");
        assert!(t[phase]["throughput_rps"].as_f64().unwrap() > 0.0, "{phase}: {t}");
    }
    assert!(t["enter_ratio"].as_f64().unwrap() > 0.0 && t["poll_ratio"].as_f64().unwrap() > 0.0, "{t}");
    if !on_cluster_topology() {
        // Every WAITING poll is one HMGET at least (other tests share this Redis: more, never less).
        let redis = &t["redis"];
        assert!(redis["commands_per_poll"].as_f64().unwrap() >= 0.99, "{redis}");
        assert!(redis["cpu_us_per_poll"].as_f64().unwrap() > 0.0, "{redis}");
    }
}
