//! Coupon-issue benchmark (not a test): an open run of `requests` `POST /api/coupons/{id}/issue`
//! over `connections` keep-alive connections, users taken in order from a token CSV, every
//! `double_click_every`-th request repeating the previous user (a double click). Prints
//! throughput, latency percentiles and answers by status class. Used by `scripts/bench_issue.sh`
//! to compare `JUPANG_ISSUE_STRATEGY`s against a release build; `jupang loadgen` supersedes it.
//!
//! ```text
//! cargo run --release --example issue_bench -- http://127.0.0.1:18432 <coupon_id> tokens.csv <requests> <connections> [double_click_every]
//! ```
//! `tokens.csv` is the output of `jupang token --users 1..N --out tokens.csv`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

fn arg<T: std::str::FromStr>(args: &[String], i: usize, name: &str) -> T {
    args.get(i).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("missing or bad argument {i}: {name}"))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let base: String = arg(&args, 1, "base URL");
    let coupon: i64 = arg(&args, 2, "coupon id");
    let csv: String = arg(&args, 3, "tokens CSV");
    let requests: usize = arg(&args, 4, "requests");
    let connections: usize = arg(&args, 5, "connections");
    let double_click_every: usize = args.get(6).map(|_| arg(&args, 6, "double_click_every")).unwrap_or(0);
    let tokens: Vec<(String, String)> = std::fs::read_to_string(&csv)
        .expect("read the tokens CSV")
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(',').map(|(u, t)| (u.to_owned(), t.to_owned())))
        .collect();
    assert!(!tokens.is_empty(), "no tokens in {csv}");
    let plan: Arc<Vec<usize>> = Arc::new(
        (0..requests)
            .map(|i| if double_click_every > 0 && i % double_click_every == double_click_every - 1 { i - 1 } else { i })
            .map(|i| i % tokens.len())
            .collect(),
    );
    let (tokens, next) = (Arc::new(tokens), Arc::new(AtomicUsize::new(0)));
    let url = format!("{base}/api/coupons/{coupon}/issue");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (plan, tokens, next, url) = (plan.clone(), tokens.clone(), next.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client");
            let (mut latencies, mut classes) = (Vec::new(), [0usize; 6]);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&who) = plan.get(i) else { break };
                let (user, token) = &tokens[who];
                let sent = Instant::now();
                let res = client
                    .post(&url)
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(format!("{{\"user_id\":{user}}}"))
                    .send()
                    .await;
                match res {
                    Ok(r) => {
                        classes[(r.status().as_u16() / 100) as usize] += 1;
                        let _ = r.bytes().await;
                    }
                    Err(_) => classes[0] += 1,
                }
                latencies.push(sent.elapsed());
            }
            (latencies, classes)
        }));
    }
    let (mut latencies, mut classes) = (Vec::new(), [0usize; 6]);
    for task in tasks {
        let (l, c) = task.await.expect("a client task");
        latencies.extend(l);
        classes.iter_mut().zip(c).for_each(|(a, b)| *a += b);
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort();
    let ms = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64() * 1e3;
    println!(
        "requests={} connections={connections} secs={secs:.2} rps={:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2} \
         2xx={} 4xx={} 5xx={} errors={}",
        latencies.len(),
        latencies.len() as f64 / secs,
        ms(0.5),
        ms(0.99),
        ms(1.0),
        classes[2],
        classes[4],
        classes[5],
        classes[0]
    );
}
