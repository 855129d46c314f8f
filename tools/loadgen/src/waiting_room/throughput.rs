//! The throughput phases of `jupang loadgen waiting-room`, in one run on the same connections:
//! `GET /health` (the ceiling), then entering a room, then polling its tickets, each a closed
//! loop as fast as answers come back (polls ignore `poll_after_ms` here: this is the server's
//! capacity, not the shaped load). Their room admits one person a minute, so nearly every poll
//! finds its ticket WAITING: the common case, one `HMGET` on Redis.
//!
//! Redis's own cost of a poll comes from `INFO cpu` and `INFO commandstats` read before and after
//! the poll phase (`REDIS_URL`, a single Redis; omitted for a cluster's list of nodes).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use hyper::{Method, Uri, header::HeaderValue};
use serde::Serialize;
use serde_json::Value;

use crate::{
    client::Target,
    engine::{self, Answer, Call, RunOptions, Workload},
    open_run,
    report::LoadReport,
};

/// The route label of entering.
pub const ENTER_ROUTE: &str = "POST /api/waiting-rooms/{type}/{id}/tickets";
/// The route label of polling.
pub const POLL_ROUTE: &str = "GET /api/waiting-rooms/{type}/{id}/tickets/{ticket_id}";

/// The three phases and what Redis spent on the polls.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// `GET /health`, as many requests as entries.
    pub ceiling: LoadReport,
    /// Every entrant enters once.
    pub enter: LoadReport,
    /// Polls of the tickets, round robin.
    pub poll: LoadReport,
    /// Enter throughput over the ceiling's.
    pub enter_ratio: f64,
    /// Poll throughput over the ceiling's.
    pub poll_ratio: f64,
    /// Redis's cost per poll, when `REDIS_URL` names one Redis.
    pub redis: Option<RedisCost>,
}

/// What Redis spent during the poll phase, per poll.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RedisCost {
    /// Redis process CPU (user + system, `INFO cpu`) per poll, µs: network I/O included.
    pub cpu_us_per_poll: f64,
    /// Commands Redis executed per poll (`INFO commandstats`, every command).
    pub commands_per_poll: f64,
    /// Time inside those commands per poll, µs (`INFO commandstats` `usec`).
    pub command_us_per_poll: f64,
}

/// Redis's counters at one instant.
#[derive(Debug, Clone, Copy, Default)]
struct RedisCounters {
    cpu_secs: f64,
    calls: u64,
    usec: u64,
}

async fn redis_counters(url: &str) -> anyhow::Result<RedisCounters> {
    let mut conn = redis::Client::open(url)?.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO").arg("cpu").arg("commandstats").query_async(&mut conn).await?;
    Ok(parse_info(&info))
}

/// The CPU and command counters of an `INFO cpu commandstats` answer.
fn parse_info(info: &str) -> RedisCounters {
    let mut c = RedisCounters::default();
    for line in info.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("used_cpu_sys:").or_else(|| line.strip_prefix("used_cpu_user:")) {
            c.cpu_secs += v.parse::<f64>().unwrap_or(0.0);
        } else if let Some((_, stats)) = line.strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) {
            for (k, v) in stats.split(',').filter_map(|kv| kv.split_once('=')) {
                match k {
                    "calls" => c.calls += v.parse::<u64>().unwrap_or(0),
                    "usec" => c.usec += v.parse::<u64>().unwrap_or(0),
                    _ => {}
                }
            }
        }
    }
    c
}

/// Enters users `tokens[i]` one each, keeping the ticket ids.
struct Enter {
    uri: Uri,
    tokens: Arc<Vec<HeaderValue>>,
    next: Arc<AtomicUsize>,
    tickets: Vec<(usize, String)>,
}

impl Workload for Enter {
    fn next(&mut self) -> Option<Call> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let token = self.tokens.get(i)?;
        let mut call = Call::new(ENTER_ROUTE, Method::POST, self.uri.clone());
        call.auth = Some(token.clone());
        call.tag = i as u64;
        Some(call)
    }

    fn answered(&mut self, call: &Call, answer: &Answer<'_>) {
        let ticket = serde_json::from_slice::<Value>(answer.body).ok();
        if let Some(id) = ticket.as_ref().and_then(|t| t["ticket_id"].as_str()) {
            self.tickets.push((call.tag as usize, id.to_owned()));
        }
    }
}

/// Polls `tickets` round robin until `total` polls are taken.
struct Poll {
    tickets: Arc<Vec<(HeaderValue, Uri)>>,
    next: Arc<AtomicUsize>,
    total: usize,
}

impl Workload for Poll {
    fn next(&mut self) -> Option<Call> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        if i >= self.total || self.tickets.is_empty() {
            return None;
        }
        let (token, uri) = &self.tickets[i % self.tickets.len()];
        let mut call = Call::new(POLL_ROUTE, Method::GET, uri.clone());
        call.auth = Some(token.clone());
        Some(call)
    }

    fn answered(&mut self, _: &Call, _: &Answer<'_>) {}
}

/// Runs the phases on `event`'s room (`coupon/5`) with `tokens` as the entrants and `polls`
/// polls; `redis_url` for Redis's cost.
pub async fn measure(
    target: &Target,
    event: &str,
    tokens: Vec<HeaderValue>,
    polls: usize,
    options: &RunOptions,
    redis_url: Option<&str>,
) -> anyhow::Result<Throughput> {
    let labelled = |name: &str| {
        let mut o = options.clone();
        o.progress = options.progress.as_ref().map(|_| format!("waiting-room {name}"));
        o
    };
    let ceiling = open_run::ceiling(target, tokens.len(), labelled("GET /health")).await?;

    let path = format!("/api/waiting-rooms/{event}/tickets");
    let (tokens, next) = (Arc::new(tokens), Arc::new(AtomicUsize::new(0)));
    let enters = (0..options.pacing.connections())
        .map(|_| Enter {
            uri: Uri::try_from(path.as_str()).expect("a valid path"),
            tokens: tokens.clone(),
            next: next.clone(),
            tickets: Vec::new(),
        })
        .collect();
    let (stats, enters) = engine::run(target, labelled("enter"), enters).await?;
    let enter = LoadReport::new(target, &stats);
    let tickets: Vec<(HeaderValue, Uri)> = enters
        .into_iter()
        .flat_map(|w| w.tickets)
        .filter_map(|(i, id)| Some((tokens[i].clone(), Uri::try_from(format!("{path}/{id}")).ok()?)))
        .collect();
    anyhow::ensure!(tickets.len() == tokens.len(), "{} of {} entries gave a ticket", tickets.len(), tokens.len());

    // One Redis only: a cluster's polls land on the room's node, which one URL cannot name.
    let redis_url = redis_url.filter(|u| !u.contains(','));
    let before = match redis_url {
        Some(url) => Some(redis_counters(url).await?),
        None => None,
    };
    let (tickets, next) = (Arc::new(tickets), Arc::new(AtomicUsize::new(0)));
    let pollers =
        (0..options.pacing.connections()).map(|_| Poll { tickets: tickets.clone(), next: next.clone(), total: polls });
    let (stats, _) = engine::run(target, labelled("poll"), pollers.collect()).await?;
    let poll = LoadReport::new(target, &stats);
    let redis = match (redis_url, before) {
        (Some(url), Some(b)) => {
            let a = redis_counters(url).await?;
            let n = poll.requests.max(1) as f64;
            Some(RedisCost {
                cpu_us_per_poll: (a.cpu_secs - b.cpu_secs) * 1e6 / n,
                commands_per_poll: a.calls.saturating_sub(b.calls) as f64 / n,
                command_us_per_poll: a.usec.saturating_sub(b.usec) as f64 / n,
            })
        }
        _ => None,
    };
    let ratio =
        |r: &LoadReport| if ceiling.throughput_rps > 0.0 { r.throughput_rps / ceiling.throughput_rps } else { 0.0 };
    Ok(Throughput { enter_ratio: ratio(&enter), poll_ratio: ratio(&poll), ceiling, enter, poll, redis })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_gives_the_cpu_and_the_sum_over_every_command() {
        let info = "# CPU\r\nused_cpu_sys:1.500000\r\nused_cpu_user:2.250000\r\nused_cpu_sys_children:9.0\r\n\
                    # Commandstats\r\ncmdstat_hmget:calls=10,usec=30,usec_per_call=3.00,rejected_calls=0\r\n\
                    cmdstat_info:calls=2,usec=100,usec_per_call=50.00\r\n";
        let c = parse_info(info);
        assert_eq!(c.cpu_secs, 3.75);
        assert_eq!((c.calls, c.usec), (12, 130));
    }
}
