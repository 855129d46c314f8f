//! Order-creation benchmark (not a test): `N` single-unit orders of one option, from `users`
//! distinct buyers, over `concurrency` keep-alive connections; prints throughput and latency
//! percentiles. Used to compare `JUPANG_ORDER_STRATEGY=redis-lua` with `db-pessimistic`
//! against a release build (see README, "Benchmarks").
//!
//! ```text
//! cargo run --release --example order_bench -- http://127.0.0.1:18080 tokens.csv <option_id> [requests] [concurrency]
//! ```
//! `tokens.csv` is the output of `jupang token --users 1..N --out tokens.csv`.

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, base, tokens, option, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: order_bench <base url> <tokens.csv> <option id> [requests] [concurrency]");
    };
    let option: i64 = option.parse()?;
    let requests: usize = rest.first().map(|s| s.parse()).transpose()?.unwrap_or(5_000);
    let concurrency: usize = rest.get(1).map(|s| s.parse()).transpose()?.unwrap_or(64);
    let buyers: Vec<(i64, String)> = std::fs::read_to_string(tokens)?
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(','))
        .map(|(u, t)| Ok((u.parse()?, t.to_owned())))
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!buyers.is_empty(), "no tokens in {tokens}");
    let client =
        reqwest::Client::builder().pool_max_idle_per_host(concurrency).timeout(Duration::from_secs(30)).build()?;
    let url = format!("{base}/api/orders");
    let next = Arc::new(AtomicUsize::new(0));
    let buyers = Arc::new(buyers);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, next, buyers) = (client.clone(), url.clone(), next.clone(), buyers.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= requests {
                        break seen;
                    }
                    let (user, token) = &buyers[i % buyers.len()];
                    let body = json!({ "user_id": user, "items": [{ "product_option_id": option, "quantity": 1 }] });
                    let t = Instant::now();
                    let status = match client.post(&url).bearer_auth(token).json(&body).send().await {
                        Ok(res) => {
                            let status = res.status().as_u16();
                            let _ = res.bytes().await;
                            status
                        }
                        Err(_) => 0,
                    };
                    seen.push((status, t.elapsed()));
                }
            })
        })
        .collect();
    let mut all = Vec::with_capacity(requests);
    for w in workers {
        all.extend(w.await?);
    }
    let elapsed = started.elapsed();
    let count = |s: u16| all.iter().filter(|(st, _)| *st == s).count();
    println!(
        "requests {} in {:.2} s: {:.0} req/s; 201: {}, 400: {}, other: {}",
        all.len(),
        elapsed.as_secs_f64(),
        all.len() as f64 / elapsed.as_secs_f64(),
        count(201),
        count(400),
        all.len() - count(201) - count(400)
    );
    report("all", all.iter().map(|(_, d)| *d).collect());
    report("201", all.iter().filter(|(s, _)| *s == 201).map(|(_, d)| *d).collect());
    report("400", all.iter().filter(|(s, _)| *s == 400).map(|(_, d)| *d).collect());
    Ok(())
}

fn report(what: &str, mut latencies: Vec<Duration>) {
    if latencies.is_empty() {
        return;
    }
    latencies.sort_unstable();
    let p = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "  {what:>3}: n={:>5} p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        ms(p(0.50)),
        ms(p(0.90)),
        ms(p(0.99)),
        ms(*latencies.last().unwrap())
    );
}
