//! The consumer's housekeeping, every couple of seconds: the backlog and persistence lag gauges,
//! trimming each stream below what the group has acknowledged (never an unacknowledged entry:
//! hydration counts those), and forgetting consumers of processes long gone. Also the backlog
//! count tests await.

use std::time::Duration;

use super::{Consumer, GROUP, STREAM_PENDING_ENTRIES, STREAM_PERSIST_LAG_SECONDS, now_ms};
use crate::store::redis::{
    RedisStore,
    streams::{StreamSink, commands as streams},
};

impl<S: StreamSink> Consumer<S> {
    /// Gauges, then trimming below what the group acknowledged.
    pub(super) async fn housekeeping(&mut self, streams: &[String]) -> anyhow::Result<()> {
        let mut conn = self.redis.conn();
        let (mut backlog, mut oldest_ms) = (0u64, None::<u64>);
        for stream in streams {
            let Some(info) = streams::group_info(&mut conn, stream, GROUP).await? else { continue };
            backlog += info.pending + info.lag.unwrap_or(0);
            let min_pending = streams::oldest_pending(&mut conn, stream, GROUP).await?;
            let oldest = match &min_pending {
                Some(id) => Some(id.clone()),
                None if info.lag.unwrap_or(1) > 0 => {
                    streams::first_after(&mut conn, stream, &info.last_delivered).await?
                }
                None => None,
            };
            if let Some(id) = oldest {
                let ms = streams::parse_id(&id).0;
                oldest_ms = Some(oldest_ms.map_or(ms, |o| o.min(ms)));
            }
            // Everything below the oldest pending entry is acknowledged; with nothing pending,
            // everything up to the last delivered one is.
            let keep_from = match min_pending {
                Some(id) => Some(id),
                None if info.last_delivered != "0-0" => Some(streams::next_id(&info.last_delivered)),
                None => None,
            };
            if let Some(keep_from) = keep_from {
                streams::trim_below(&mut conn, stream, &keep_from).await?;
            }
            streams::forget_idle_consumers(&mut conn, stream, GROUP, &self.settings.consumer, FORGET_CONSUMERS_AFTER)
                .await?;
        }
        let name = self.sink.name();
        metrics::gauge!(STREAM_PENDING_ENTRIES, "stream" => name).set(backlog as f64);
        let lag = oldest_ms.map_or(0.0, |ms| now_ms().saturating_sub(ms) as f64 / 1000.0);
        metrics::gauge!(STREAM_PERSIST_LAG_SECONDS, "stream" => name).set(lag);
        Ok(())
    }
}

/// Consumers with nothing pending and idle this long are removed from their group.
const FORGET_CONSUMERS_AFTER: Duration = Duration::from_secs(3_600);

/// Entries of the sink's streams not yet persisted (delivered-unacknowledged plus never
/// delivered). Zero means every admission so far is in Postgres: tests await it, with a
/// deadline, instead of sleeping.
pub async fn backlog<S: StreamSink>(sink: &S, redis: &RedisStore) -> redis::RedisResult<u64> {
    let mut conn = redis.conn();
    let mut total = 0;
    for stream in sink.streams().await? {
        let len: u64 = redis::cmd("XLEN").arg(&stream).query_async(&mut conn).await?;
        total += match streams::group_info(&mut conn, &stream, GROUP).await? {
            // Without a reliable lag, count the whole stream: trimming keeps only what may be
            // unacknowledged, so this errs on the side of "not yet".
            Some(info) => info.pending + info.lag.unwrap_or(len),
            None => len,
        };
    }
    Ok(total)
}
