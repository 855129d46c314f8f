//! The V2 stream consumer: drains the admissions a [`StreamSink`] names from Redis Streams into
//! Postgres, at least once, and acknowledges nothing that is not committed. The contract it drives
//! (entries, sinks, codecs) is `store::redis::streams`.
//!
//! `JUPANG_STREAM_CONSUMERS` tasks per sink and process ([`spawn_group`]). Every stream gets the
//! consumer group [`GROUP`] (created from id `0` with `MKSTREAM`); each task reads as its own
//! consumer (a name unique per task), so the tasks of one process and several instances share
//! the work, and their batches commit in parallel. A round:
//!
//! 1. `XREADGROUP ... BLOCK` for new entries, on a dedicated connection (a blocked read must not
//!    stall the shared multiplexed connection that serves requests);
//! 2. [`StreamSink::persist`] of the whole batch in one Postgres transaction; a
//!    [`PersistError::Poison`] answer drops those ids and persists the rest in a new one, a
//!    [`PersistError::Rejected`] one (Postgres refused the data) splits the batch until the
//!    refused entries stand alone (`persist.rs`);
//! 3. `XACK` only after the commit. A crash between commit and ack delivers the entries again,
//!    which the sink's idempotence absorbs.
//!
//! Failures: [`PersistError::Unavailable`] (Postgres down) backs off and retries the same
//! entries (re-read from this consumer's pending list), never dead-lettering them. A poison
//! entry (named by the sink, or refused by Postgres on its own) stays pending and is retried until it has been delivered [`MAX_DELIVERIES`] times, then
//! moves to the sink's dead-letter stream with an error log line and
//! `stream_dead_letter_total{sink}`. Entries of a consumer that died are taken over with
//! `XAUTOCLAIM` once idle for `JUPANG_STREAM_CLAIM_IDLE_MS`.
//!
//! Housekeeping every couple of seconds, by the first task of a group only: the backlog and persistence lag gauges, and trimming
//! each stream below what the group has acknowledged (never an unacknowledged entry: hydration
//! counts those).
//!
//! [`PersistError::Poison`]: crate::store::redis::streams::PersistError::Poison
//! [`PersistError::Rejected`]: crate::store::redis::streams::PersistError::Rejected
//! [`PersistError::Unavailable`]: crate::store::redis::streams::PersistError::Unavailable

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use sqlx::PgPool;
use tokio::{sync::Notify, task::JoinHandle};
use tokio_util::sync::CancellationToken;

use crate::{
    services::AppState,
    store::redis::{
        DedicatedConn, RedisStore,
        notices::Topic,
        streams::{
            MAX_DELIVERIES, StreamEntry, StreamSink,
            commands::{self as streams},
        },
    },
};

mod housekeeping;
mod measures;
mod persist;

pub use self::{
    housekeeping::{RETIRE_EVERY, backlog, retire_closed, retire_sales},
    measures::{
        CONSUMER_BATCH_SIZE, COUPON_SALE_KEYS, SINKS, STREAM_DEAD_LETTER_TOTAL, STREAM_PENDING_ENTRIES,
        STREAM_PERSIST_LAG_SECONDS, register_metrics,
    },
};

/// The consumer group every V2 stream is read with.
pub const GROUP: &str = "persist";

/// How a consumer task runs.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// This process's consumer name in every group; unique per process (see [`consumer_name`]).
    pub consumer: String,
    /// Most entries read per stream and round (`COUNT`).
    pub batch: usize,
    /// Longest a read waits for new entries (`BLOCK`); also bounds how soon new streams,
    /// claims and housekeeping are looked at when idle.
    pub block: Duration,
    /// Entries unacknowledged for this long are taken over from their consumer (`XAUTOCLAIM`).
    pub claim_idle: Duration,
    /// Gauges and trimming run this often.
    pub housekeeping_every: Duration,
    /// Whether this task does the housekeeping: one task of a process's group is enough.
    pub housekeeping: bool,
    /// When the sink names no stream, ask again after this long.
    pub idle_poll: Duration,
    /// Signalled when the sink may name a new stream (a new sale): a blocked read is given up
    /// and the streams listed again at once, instead of after the current `block`.
    pub wake: Option<Arc<Notify>>,
}

impl ConsumerSettings {
    /// Defaults around the claim threshold (`JUPANG_STREAM_CLAIM_IDLE_MS`).
    pub fn new(claim_idle: Duration) -> ConsumerSettings {
        ConsumerSettings {
            consumer: consumer_name(),
            batch: 500,
            block: Duration::from_millis(1_000).min(claim_idle.max(Duration::from_millis(50))),
            claim_idle,
            housekeeping_every: Duration::from_secs(2),
            housekeeping: true,
            idle_poll: Duration::from_millis(250),
            wake: None,
        }
    }

    /// The settings of the application's consumers: claim threshold and batch size as configured.
    fn from_config(state: &AppState) -> ConsumerSettings {
        ConsumerSettings { batch: state.config.stream_batch, ..ConsumerSettings::new(state.config.stream_claim_idle) }
    }

    fn claim_every(&self) -> Duration {
        (self.claim_idle / 2).clamp(Duration::from_millis(50), Duration::from_secs(5))
    }
}

/// A consumer name unique to this process (and to each consumer built in it): host, pid and
/// a random suffix, so a restarted process never inherits a dead one's pending entries by name
/// (those are claimed explicitly instead).
pub fn consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "jupang".into());
    let random: u32 = rand::random();
    format!("{host}-{}-{random:08x}", std::process::id())
}

/// Starts the application's consumer tasks for `sink` (`JUPANG_STREAM_CONSUMERS` of them, see
/// [`spawn_group`]); they return once `shutdown` is cancelled.
pub fn spawn<S: StreamSink + Clone>(sink: S, state: &AppState, shutdown: &CancellationToken) -> Vec<JoinHandle<()>> {
    let settings = ConsumerSettings::from_config(state);
    spawn_group(sink, &state.db, &state.redis, settings, state.config.stream_consumers, shutdown)
}

/// Like [`spawn`], woken by every change notice of `topic` (new streams appear with them).
pub fn spawn_woken<S: StreamSink + Clone>(
    sink: S,
    state: &AppState,
    shutdown: &CancellationToken,
    topic: Topic,
) -> Vec<JoinHandle<()>> {
    let mut settings = ConsumerSettings::from_config(state);
    let wake = Arc::new(Notify::new());
    let notify = wake.clone();
    state.notices.on(topic, move |_| notify.notify_waiters());
    settings.wake = Some(wake);
    spawn_group(sink, &state.db, &state.redis, settings, state.config.stream_consumers, shutdown)
}

/// Starts `count` consumer tasks for `sink`, members of the one group [`GROUP`]: the first under
/// `settings.consumer`, the others under names of their own ([`consumer_name`]), so that each
/// entry is delivered to one of them and a task's pending entries are its own (claimed by the
/// others only once idle beyond the threshold, like those of a dead process). Only the first
/// does the housekeeping. Each task holds one Postgres connection while it persists a batch.
pub fn spawn_group<S: StreamSink + Clone>(
    sink: S,
    db: &PgPool,
    redis: &RedisStore,
    settings: ConsumerSettings,
    count: usize,
    shutdown: &CancellationToken,
) -> Vec<JoinHandle<()>> {
    (0..count.max(1))
        .map(|i| {
            let mut own = settings.clone();
            if i > 0 {
                own.consumer = consumer_name();
                own.housekeeping = false;
            }
            tokio::spawn(run(sink.clone(), db.clone(), redis.clone(), own, shutdown.clone()))
        })
        .collect()
}

/// Runs a consumer until `shutdown` is cancelled. Errors are logged and retried with backoff;
/// the task itself never fails.
pub async fn run<S: StreamSink>(
    sink: S,
    db: PgPool,
    redis: RedisStore,
    settings: ConsumerSettings,
    shutdown: CancellationToken,
) {
    tracing::info!(sink = sink.name(), consumer.name = %settings.consumer, "stream consumer started");
    let mut consumer = Consumer {
        sink,
        db,
        redis,
        settings,
        reader: None,
        groups: HashSet::new(),
        history: true,
        last_claim: None,
        last_housekeeping: None,
        failures: 0,
    };
    while !shutdown.is_cancelled() {
        match consumer.round(&shutdown).await {
            Ok(()) => consumer.failures = 0,
            Err(e) => {
                consumer.failures += 1;
                // A read that failed (Redis killed mid-reply) may have been handed entries this
                // consumer never saw: they are in its pending list only, which `>` never reads
                // again, and no one else claims them before the idle threshold.
                consumer.history = true;
                let pause = backoff(consumer.failures);
                tracing::warn!(
                    sink = consumer.sink.name(),
                    error.cause = %format!("{e:#}"),
                    retry_in_ms = pause.as_millis() as u64,
                    "stream consumer round failed; retrying"
                );
                tokio::select! { _ = tokio::time::sleep(pause) => {}, _ = shutdown.cancelled() => {} }
            }
        }
    }
    tracing::info!(sink = consumer.sink.name(), "stream consumer stopped");
}

/// 100 ms doubling up to 5 s.
fn backoff(failures: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << failures.saturating_sub(1).min(6))).min(Duration::from_secs(5))
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

struct Consumer<S> {
    sink: S,
    db: PgPool,
    redis: RedisStore,
    settings: ConsumerSettings,
    /// The dedicated connection of the blocking reads; rebuilt after an error.
    reader: Option<DedicatedConn>,
    /// Streams whose group is known to exist.
    groups: HashSet<String>,
    /// Re-read this consumer's own pending entries before new ones (after a failure, and at
    /// start, harmlessly).
    history: bool,
    last_claim: Option<Instant>,
    last_housekeeping: Option<Instant>,
    failures: u32,
}

fn due(last: Option<Instant>, every: Duration) -> bool {
    last.is_none_or(|t| t.elapsed() >= every)
}

impl<S: StreamSink> Consumer<S> {
    async fn round(&mut self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        // Armed before the streams are listed: a stream announced after the listing wakes the
        // read. Without a wake signal this Notify is never notified.
        let wake = self.settings.wake.clone().unwrap_or_default();
        let mut woken = std::pin::pin!(wake.notified());
        woken.as_mut().enable();
        let streams = self.sink.streams().await.context("listing the sink's streams")?;
        if streams.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(self.settings.idle_poll) => {},
                _ = shutdown.cancelled() => {},
                () = woken.as_mut() => {},
            }
            return Ok(());
        }
        let mut conn = self.redis.conn();
        for s in &streams {
            if !self.groups.contains(s) {
                streams::ensure_group(&mut conn, s, GROUP).await.context("creating a consumer group")?;
                self.groups.insert(s.clone());
            }
        }
        if self.settings.housekeeping && due(self.last_housekeeping, self.settings.housekeeping_every) {
            self.last_housekeeping = Some(Instant::now());
            self.housekeeping(&streams).await.context("stream housekeeping")?;
        }
        if due(self.last_claim, self.settings.claim_every()) {
            self.last_claim = Some(Instant::now());
            self.claim(&streams).await?;
        }
        let history = self.history;
        let entries = {
            if self.reader.is_none() {
                self.reader = Some(self.redis.dedicated().await.context("opening the stream reader connection")?);
            }
            let reader = self.reader.as_mut().expect("just set");
            let (batch, block) = (self.settings.batch, self.settings.block);
            let consumer = &self.settings.consumer;
            let cluster = self.redis.is_cluster();
            let read = async {
                if cluster {
                    streams::read_group_by_slot(reader, GROUP, consumer, &streams, batch, block, history).await
                } else {
                    streams::read_group(reader, GROUP, consumer, &streams, batch, block, history).await
                }
            };
            tokio::select! {
                r = read => r,
                _ = shutdown.cancelled() => return Ok(()),
                () = woken => {
                    // The blocked read is abandoned: its connection stays blocked server-side,
                    // so it is closed (not pooled again), and whatever it may have been handed is
                    // re-read from this consumer's pending entries first.
                    if let Some(r) = self.reader.take() {
                    r.discard();
                }
                    self.history = true;
                    return Ok(());
                }
            }
        };
        let entries = match entries {
            Ok(e) => e,
            Err(e) => {
                if let Some(r) = self.reader.take() {
                    r.discard();
                }
                if streams::is_code(&e, "NOGROUP") {
                    self.groups.clear();
                }
                return Err(e).context("reading the streams");
            }
        };
        if history && entries.is_empty() {
            self.history = false;
            return Ok(());
        }
        self.process(entries, !history).await
    }

    /// `XACK` of a batch Postgres has committed, retried while Redis is unreachable: if Redis
    /// restarted meanwhile and lost these entries, only the count this returns tells (they are
    /// pending nowhere, so no later round sees them again), and [`StreamSink::restore`] must run.
    async fn ack_committed(&mut self, stream: &str, ids: &[&str]) -> anyhow::Result<u64> {
        let mut failures = 0;
        loop {
            match streams::ack(&mut self.redis.conn(), stream, GROUP, ids).await {
                Ok(n) => return Ok(n),
                Err(e) if failures < 20 => {
                    failures += 1;
                    tracing::warn!(error.cause = %e, "acknowledging a persisted batch failed; retrying");
                    tokio::time::sleep(backoff(failures)).await;
                }
                Err(e) => return Err(e).context("acknowledging a persisted batch"),
            }
        }
    }

    /// Takes over entries idle longer than the claim threshold (their consumer is presumably
    /// dead) and processes them.
    async fn claim(&mut self, streams: &[String]) -> anyhow::Result<()> {
        let mut conn = self.redis.conn();
        for stream in streams {
            let mut start = "0-0".to_owned();
            // Bounded, so that one huge backlog of a dead consumer cannot starve new entries.
            for _ in 0..20 {
                let (next, entries) = streams::autoclaim(
                    &mut conn,
                    stream,
                    GROUP,
                    &self.settings.consumer,
                    self.settings.claim_idle,
                    &start,
                    self.settings.batch,
                )
                .await
                .context("claiming idle entries")?;
                if !entries.is_empty() {
                    tracing::info!(
                        sink = self.sink.name(),
                        stream.key = %stream,
                        count = entries.len(),
                        "claimed entries idle beyond the threshold"
                    );
                    self.process(entries, false).await?;
                }
                if next == "0-0" {
                    break;
                }
                start = next;
            }
        }
        Ok(())
    }

    /// Persists a batch, acknowledges what was committed, and deals with poison entries.
    /// `fresh`: read with `>`, so every entry is on its first delivery.
    async fn process(&mut self, mut entries: Vec<StreamEntry>, fresh: bool) -> anyhow::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut conn = self.redis.conn();
        if !fresh {
            let mut by_stream: HashMap<String, Vec<&str>> = HashMap::new();
            for e in &entries {
                by_stream.entry(e.stream.clone()).or_default().push(&e.id);
            }
            let mut counts = HashMap::new();
            for (stream, ids) in by_stream {
                let c = streams::delivery_counts(&mut conn, &stream, GROUP, &self.settings.consumer, &ids).await?;
                counts.extend(c.into_iter().map(|(id, n)| ((stream.clone(), id), n)));
            }
            for e in &mut entries {
                e.deliveries = counts.get(&(e.stream.clone(), e.id.clone())).copied().unwrap_or(1).max(1);
            }
        }
        let name = self.sink.name();
        metrics::histogram!(CONSUMER_BATCH_SIZE, "sink" => name).record(entries.len() as f64);

        let (entries, poison) = self.persist_all(entries).await?;

        let mut by_stream: HashMap<&str, Vec<&str>> = HashMap::new();
        for e in &entries {
            by_stream.entry(&e.stream).or_default().push(&e.id);
        }
        for (stream, ids) in by_stream {
            // Failing for good leaves committed entries pending: they are delivered again later
            // and the sink's idempotence absorbs them.
            let acked = self.ack_committed(stream, &ids).await?;
            if acked < ids.len() as u64 {
                let persisted: Vec<&StreamEntry> = entries.iter().filter(|e| e.stream == stream).collect();
                self.sink.restore(&persisted).await.context("restoring entries Redis no longer knew")?;
            }
        }
        if let Some(oldest) = entries.iter().filter_map(StreamEntry::appended_ms).min() {
            let lag = now_ms().saturating_sub(oldest) as f64 / 1000.0;
            metrics::gauge!(STREAM_PERSIST_LAG_SECONDS, "stream" => name).set(lag);
        }

        for (entry, reason) in poison {
            if entry.deliveries >= MAX_DELIVERIES {
                let dead = self.sink.dead_letter_stream(&entry.stream);
                streams::dead_letter(&mut conn, &dead, GROUP, &entry, &reason).await.context("dead-lettering")?;
                metrics::counter!(STREAM_DEAD_LETTER_TOTAL, "sink" => name).increment(1);
                tracing::error!(
                    sink = name,
                    stream.key = %entry.stream,
                    entry.id = %entry.id,
                    dead.stream = %dead,
                    deliveries = entry.deliveries,
                    error.cause = %reason,
                    "a stream entry can never be persisted; moved to the dead-letter stream"
                );
            } else {
                // Left pending: re-read (a new delivery) at the next round.
                self.history = true;
                tracing::warn!(
                    sink = name,
                    stream.key = %entry.stream,
                    entry.id = %entry.id,
                    deliveries = entry.deliveries,
                    error.cause = %reason,
                    "a stream entry was refused by its sink; it will be retried"
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_100_ms_up_to_5_s() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(30), Duration::from_secs(5));
    }

    #[test]
    fn consumer_names_differ_within_one_process() {
        assert_ne!(consumer_name(), consumer_name());
    }
}
