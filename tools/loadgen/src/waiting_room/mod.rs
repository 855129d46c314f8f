//! `jupang loadgen waiting-room`: a fresh coupon with a waiting room (api.md "Waiting room"),
//! N entrants (users 1..=N) who enter and then poll as told (`poll_after_ms`) until admitted.
//! The verdict: no admission order violation (no ticket seen WAITING by a poll sent after a
//! larger position was seen admitted), never more than `max_active` passes alive at once (from
//! the passes' own admission and expiry), everyone admitted (or admitted and expired before
//! polling, reported). The report adds the poll rate the server saw, p99 of enter and poll, and
//! the time to admit everyone.
//!
//! Polls are not paced by the load generator: the server shapes them, which is what is measured.
//! At most `--connections` requests are in flight at once (entering and polling each).
//!
//! Before that run, in the same process and on the same connections, the [`throughput`] phases:
//! the `GET /health` ceiling, entering and polling as fast as the server answers, and Redis's CPU
//! per poll (`--throughput-polls 0` skips them).

pub mod throughput;

use std::{
    fmt::Write,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use chrono::{TimeDelta, Utc};
use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::{
    Common, Env, emit,
    histogram::{Summary, new_histogram, record},
    report::LoadReport,
    schedule::Pacing,
    setup::Setup,
    verdict::Verdict,
};
use throughput::Throughput;

/// Options of `jupang loadgen waiting-room`.
#[derive(Debug, Clone, Args)]
pub struct WaitingRoomArgs {
    #[command(flatten)]
    common: Common,
    /// Entrants (users 1..=N).
    #[arg(long, default_value_t = 5_000)]
    entrants: u32,
    /// The room's `admit_per_second`.
    #[arg(long, default_value_t = 500)]
    admit_per_second: u32,
    /// The room's `max_active`.
    #[arg(long, default_value_t = 300)]
    max_active: u32,
    /// The room's `pass_ttl_secs`.
    #[arg(long, default_value_t = 1)]
    pass_ttl_secs: u32,
    /// Requests in flight at most (entering and polling each).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Longest the run may take before it is a failure.
    #[arg(long, default_value_t = 600)]
    deadline_secs: u64,
    /// Polls of the throughput phase (default: twice the entrants; 0 skips the ceiling, enter
    /// and poll throughput phases).
    #[arg(long)]
    throughput_polls: Option<usize>,
}

/// What a waiting-room run measured and concluded.
#[derive(Debug, Clone, Serialize)]
pub struct WaitingRoomReport {
    /// `waiting-room`.
    pub scenario: &'static str,
    /// Entrants.
    pub entrants: u32,
    /// The coupon whose room it was.
    pub coupon_id: i64,
    /// Tickets seen ADMITTED.
    pub admitted: u64,
    /// Tickets whose pass had expired when they polled.
    pub expired_before_poll: u64,
    /// Polls seen WAITING after a larger position was seen admitted.
    pub order_violations: u64,
    /// Most passes alive at one instant.
    pub peak_active: u64,
    /// The room's cap.
    pub max_active: u32,
    /// Polls per second, as sent (the server's shaping).
    pub poll_rate: f64,
    /// Polls sent.
    pub polls: u64,
    /// Latency of entering.
    pub enter: Summary,
    /// Latency of polling.
    pub poll: Summary,
    /// From the first entry to the last admission seen (s).
    pub time_to_admit_all_secs: f64,
    /// Non-2xx answers or transport errors.
    pub errors: u64,
    /// Enter and poll throughput against the `GET /health` ceiling, and Redis's cost per poll.
    pub throughput: Option<Throughput>,
    /// The checks.
    pub verdict: Verdict,
}

/// One poll of a ticket, as a client saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// When it was sent.
    pub sent: Instant,
    /// When its answer arrived.
    pub got: Instant,
    /// The ticket's position.
    pub position: u64,
    /// `WAITING`, `ADMITTED` or `EXPIRED`.
    pub status: String,
    /// The expiry (epoch ms) of the pass it carried, if admitted.
    pub pass_expires_ms: Option<i64>,
}

impl Seen {
    /// The poll of `answer` (a ticket), sent at `sent` and answered at `got`.
    pub fn of(answer: &Value, sent: Instant, got: Instant) -> Seen {
        Seen {
            sent,
            got,
            position: answer["position"].as_u64().unwrap_or(0),
            status: answer["status"].as_str().unwrap_or("?").to_owned(),
            pass_expires_ms: answer["pass"].as_str().and_then(|p| p.split('.').nth(4)?.parse().ok()),
        }
    }
}

struct Shared {
    http: reqwest::Client,
    base: String,
    event: String,
    enter_gate: Semaphore,
    poll_gate: Semaphore,
    seen: Mutex<Vec<Seen>>,
    enter_h: Mutex<hdrhistogram::Histogram<u64>>,
    poll_h: Mutex<hdrhistogram::Histogram<u64>>,
    errors: Mutex<u64>,
}

async fn call(s: &Shared, req: reqwest::RequestBuilder) -> Option<(Value, Duration)> {
    let start = Instant::now();
    let answer = async { req.send().await.ok()?.error_for_status().ok()?.json::<Value>().await.ok() }.await;
    if answer.is_none() {
        *s.errors.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }
    answer.map(|v| (v, start.elapsed()))
}

async fn one_entrant(s: Arc<Shared>, token: String, deadline: Instant) {
    let url = format!("{}/api/waiting-rooms/{}/tickets", s.base, s.event);
    let entered = {
        let _p = s.enter_gate.acquire().await.expect("never closed");
        call(&s, s.http.post(&url).bearer_auth(&token)).await
    };
    let Some((t, took)) = entered else { return };
    record(&mut s.enter_h.lock().unwrap_or_else(|e| e.into_inner()), took);
    let Some(ticket) = t["ticket_id"].as_str().map(str::to_owned) else { return };
    let mut wait = t["poll_after_ms"].as_u64().unwrap_or(1_000);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let polled = {
            let _p = s.poll_gate.acquire().await.expect("never closed");
            let sent = Instant::now();
            call(&s, s.http.get(format!("{url}/{ticket}")).bearer_auth(&token)).await.map(|a| (a, sent))
        };
        let Some(((t, took), sent)) = polled else { continue };
        record(&mut s.poll_h.lock().unwrap_or_else(|e| e.into_inner()), took);
        let status = t["status"].as_str().unwrap_or("?").to_owned();
        let pass_expires_ms = t["pass"].as_str().and_then(|p| p.split('.').nth(4)?.parse().ok());
        let done = status != "WAITING";
        let position = t["position"].as_u64().unwrap_or(0);
        s.seen.lock().unwrap_or_else(|e| e.into_inner()).push(Seen {
            sent,
            got: sent + took,
            position,
            status,
            pass_expires_ms,
        });
        if done {
            return;
        }
        wait = t["poll_after_ms"].as_u64().unwrap_or(1_000);
    }
}

/// Polls seen WAITING although a poll answered earlier had seen a larger position admitted.
pub fn order_violations(seen: &[Seen]) -> u64 {
    let mut admitted: Vec<(Instant, u64)> =
        seen.iter().filter(|s| s.status != "WAITING").map(|s| (s.got, s.position)).collect();
    admitted.sort();
    let mut top = 0;
    let highest: Vec<(Instant, u64)> = admitted
        .into_iter()
        .map(|(at, p)| {
            top = top.max(p);
            (at, top)
        })
        .collect();
    seen.iter()
        .filter(|s| s.status == "WAITING")
        .filter(|s| {
            let i = highest.partition_point(|(at, _)| *at < s.sent);
            i > 0 && highest[i - 1].1 > s.position
        })
        .count() as u64
}

/// Most passes alive at one instant: each lives `[expiry - ttl, expiry)`.
pub fn peak_active(expiries: &[i64], ttl_ms: i64) -> u64 {
    let mut edges: Vec<(i64, i64)> = expiries.iter().flat_map(|e| [(e - ttl_ms, 1), (*e, -1)]).collect();
    edges.sort();
    let (mut alive, mut peak) = (0i64, 0i64);
    for (_, d) in edges {
        alive += d;
        peak = peak.max(alive);
    }
    peak as u64
}

/// The throughput phases on a room of their own that admits one person a minute (its polls
/// find their tickets WAITING), unless `--throughput-polls 0`.
async fn throughput_phases(
    args: &WaitingRoomArgs,
    env: &Env,
    setup: &Setup,
    target: &super::client::Target,
) -> anyhow::Result<Option<Throughput>> {
    let polls = args.throughput_polls.unwrap_or(2 * args.entrants as usize);
    if polls == 0 {
        return Ok(None);
    }
    let coupon_id = setup.create_coupon(target, args.entrants).await?;
    let room = json!({ "enabled": true, "admit_per_second": 1, "max_active": 1, "pass_ttl_secs": 60,
                       "opens_at": Utc::now() - TimeDelta::seconds(1) });
    let event = format!("coupon/{coupon_id}");
    setup.admin_put(target, &format!("/api/admin/waiting-rooms/{event}"), room).await.context("the throughput room")?;
    let options = args.common.options(Pacing::Closed { connections: args.connections }, "waiting-room");
    let tokens = setup.customer_tokens(args.entrants);
    Ok(Some(throughput::measure(target, &event, tokens, polls, &options, env.redis_url.as_deref()).await?))
}

/// Answers of a phase that were not 2xx (transport errors included).
fn failed(load: &LoadReport) -> u64 {
    load.outcomes.iter().filter(|o| !(200..300).contains(&o.status)).map(|o| o.count).sum()
}

/// Runs the scenario and prints its report.
pub async fn run(args: WaitingRoomArgs, env: &Env) -> anyhow::Result<()> {
    let target = args.common.target()?;
    let setup = Setup::new(env).await?;
    setup.ensure_users(args.entrants).await?;
    let throughput = throughput_phases(&args, env, &setup, &target).await?;
    let coupon_id = setup.create_coupon(&target, args.entrants).await?;
    let event = format!("coupon/{coupon_id}");
    let room = json!({ "enabled": true, "admit_per_second": args.admit_per_second, "max_active": args.max_active,
                       "pass_ttl_secs": args.pass_ttl_secs, "opens_at": Utc::now() - TimeDelta::seconds(1) });
    setup
        .admin_put(&target, &format!("/api/admin/waiting-rooms/{event}"), room)
        .await
        .context("configuring the room")?;
    let tokens = setup.customer_tokens(args.entrants);
    let shared = Arc::new(Shared {
        http: reqwest::Client::builder()
            .timeout(Duration::from_millis(args.common.timeout_ms))
            .pool_max_idle_per_host(args.connections * 2)
            .build()?,
        base: target.base.clone(),
        event,
        enter_gate: Semaphore::new(args.connections),
        poll_gate: Semaphore::new(args.connections),
        seen: Mutex::default(),
        enter_h: Mutex::new(new_histogram()),
        poll_h: Mutex::new(new_histogram()),
        errors: Mutex::default(),
    });
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.deadline_secs);
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|t| {
            let token = t.to_str().unwrap_or_default().trim_start_matches("Bearer ").to_owned();
            tokio::spawn(one_entrant(shared.clone(), token, deadline))
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    let elapsed = started.elapsed();
    let seen = std::mem::take(&mut *shared.seen.lock().unwrap_or_else(|e| e.into_inner()));
    let finals: Vec<&Seen> = seen.iter().filter(|s| s.status != "WAITING").collect();
    let expiries: Vec<i64> = finals.iter().filter_map(|s| s.pass_expires_ms).collect();
    let last_admission = finals.iter().map(|s| s.got).max().unwrap_or(started);
    let mut verdict = Verdict::new();
    let violations = order_violations(&seen);
    let peak = peak_active(&expiries, i64::from(args.pass_ttl_secs) * 1000);
    verdict.check("admission in position order", violations == 0, format!("{violations} violations"));
    verdict.check(
        "never more than max_active passes alive",
        peak <= u64::from(args.max_active),
        format!("peak {peak}, max_active {}", args.max_active),
    );
    verdict.check(
        "everyone admitted",
        finals.len() == args.entrants as usize,
        format!("{} of {}", finals.len(), args.entrants),
    );
    if let Some(t) = &throughput {
        let bad = failed(&t.ceiling) + failed(&t.enter) + failed(&t.poll);
        verdict.check("throughput phases: every answer 2xx", bad == 0, format!("{bad} not 2xx"));
    }
    let report = WaitingRoomReport {
        scenario: "waiting-room",
        entrants: args.entrants,
        coupon_id,
        admitted: expiries.len() as u64,
        expired_before_poll: (finals.len() - expiries.len()) as u64,
        order_violations: violations,
        peak_active: peak,
        max_active: args.max_active,
        poll_rate: seen.len() as f64 / elapsed.as_secs_f64().max(1e-3),
        polls: seen.len() as u64,
        enter: Summary::of(&shared.enter_h.lock().unwrap_or_else(|e| e.into_inner())),
        poll: Summary::of(&shared.poll_h.lock().unwrap_or_else(|e| e.into_inner())),
        time_to_admit_all_secs: (last_admission - started).as_secs_f64(),
        errors: *shared.errors.lock().unwrap_or_else(|e| e.into_inner()),
        throughput,
        verdict,
    };
    emit(args.common.json, &report, || markdown(&report))?;
    report.verdict.into_result()
}

fn markdown(r: &WaitingRoomReport) -> String {
    let mut s = format!("## waiting-room: {} entrants, coupon {}\n\n", r.entrants, r.coupon_id);
    let _ = writeln!(s, "| measure | value |\n| --- | --- |");
    let _ = writeln!(s, "| admitted with a pass | {} |", r.admitted);
    let _ = writeln!(s, "| expired before polling | {} |", r.expired_before_poll);
    let _ = writeln!(s, "| order violations | {} |", r.order_violations);
    let _ = writeln!(s, "| peak active passes | {} (max_active {}) |", r.peak_active, r.max_active);
    let _ = writeln!(s, "| polls | {} ({:.0}/s) |", r.polls, r.poll_rate);
    let _ = writeln!(s, "| enter p50 / p99 | {:.2} / {:.2} ms |", r.enter.p50_ms, r.enter.p99_ms);
    let _ = writeln!(s, "| poll p50 / p99 | {:.2} / {:.2} ms |", r.poll.p50_ms, r.poll.p99_ms);
    let _ = writeln!(s, "| time to admit everyone | {:.1} s |", r.time_to_admit_all_secs);
    let _ = writeln!(s, "| errors | {} |\n", r.errors);
    if let Some(t) = &r.throughput {
        s.push_str(&throughput_markdown(t));
    }
    s + &r.verdict.markdown()
}

fn throughput_markdown(t: &Throughput) -> String {
    let mut s = String::from("Throughput, closed loop, one phase after the other on the same connections:\n\n");
    s.push_str(
        "| phase | requests | req/s | p50 ms | p99 ms | × ceiling |\n| --- | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for (name, load, ratio) in [
        ("GET /health", &t.ceiling, 1.0),
        ("enter", &t.enter, t.enter_ratio),
        ("poll (WAITING)", &t.poll, t.poll_ratio),
    ] {
        let l = &load.latency;
        let _ = writeln!(
            s,
            "| {name} | {} | {:.0} | {:.2} | {:.2} | {ratio:.2} |",
            load.requests, load.throughput_rps, l.p50_ms, l.p99_ms
        );
    }
    match &t.redis {
        Some(c) => {
            let _ = writeln!(
                s,
                "\nRedis per poll: {:.1} µs of CPU (INFO cpu), {:.2} commands taking {:.1} µs (INFO commandstats).\n",
                c.cpu_us_per_poll, c.commands_per_poll, c.command_us_per_poll
            );
        }
        None => s.push_str("\nRedis per poll: not measured (set REDIS_URL to one Redis).\n\n"),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_counts_passes_alive_at_one_instant() {
        assert_eq!(peak_active(&[1_000, 1_500, 1_900, 3_100], 1_000), 3, "three alive from 900 to 1,000");
        assert_eq!(peak_active(&[1_000, 2_000], 1_000), 1, "one expires as the next begins");
        assert_eq!(peak_active(&[], 1_000), 0);
    }
}
