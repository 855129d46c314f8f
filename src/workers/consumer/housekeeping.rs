//! The consumer's housekeeping, every couple of seconds: the backlog and persistence lag gauges,
//! trimming each stream below what the group has acknowledged (never an unacknowledged entry:
//! hydration counts those), and forgetting consumers of processes long gone. Also the backlog
//! count tests await, and the retirement of closed coupon sales ([`retire_sales`]).
//!
//! **Old sales.** A coupon's Redis keys are only needed while it can be issued and until what
//! was issued is in Postgres. Every [`RETIRE_EVERY`], each hydrated coupon is removed from Redis
//! ([`sales::remove`]) when, in this order:
//! 1. its window is over as Redis has it (`meta`'s `ends_ms`): the issue script admits nothing
//!    any more, and an edit cannot reopen a window that has started;
//! 2. its stream holds nothing unacknowledged: nothing pending, nothing undelivered;
//! 3. its dead-letter stream is empty (dead letters wait for an operator, with their sale);
//! 4. it is reconciled: Postgres's `issued_quantity` equals what Redis admitted
//!    (`total - remaining`), and so does the size of its users set.
//!
//! A coupon whose `meta` is missing is being hydrated (the index is written first) and is left
//! alone. `coupon_sale_keys` counts the keys the remaining hydrated coupons hold.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::{COUPON_SALE_KEYS, Consumer, GROUP, STREAM_PENDING_ENTRIES, STREAM_PERSIST_LAG_SECONDS, now_ms};
use crate::store::{
    pg::coupons,
    redis::{
        RedisStore, coupons as scripts,
        keys::CouponKeys,
        sales,
        streams::{StreamSink, commands as streams},
    },
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

/// How often closed sales are looked for.
pub const RETIRE_EVERY: Duration = Duration::from_secs(5);

/// Retires closed coupon sales every [`RETIRE_EVERY`] until `shutdown` is cancelled (see the
/// module documentation). Runs with the consumer worker, whose work it depends on; failures are
/// logged and retried next round.
pub async fn retire_sales(db: PgPool, redis: RedisStore, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RETIRE_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(e) = retire_closed(&db, &redis).await {
            tracing::warn!(error.cause = %format!("{e:#}"), "retiring closed sales failed; retrying next round");
        }
    }
}

/// One round: removes every closed, settled sale, then sets `coupon_sale_keys`. Returns the
/// coupons removed.
pub async fn retire_closed(db: &PgPool, redis: &RedisStore) -> anyhow::Result<Vec<i64>> {
    let mut retired = Vec::new();
    for id in scripts::hydrated(redis).await.context("listing hydrated coupons")? {
        if closed_and_settled(db, redis, id).await.with_context(|| format!("coupon {id}"))? {
            sales::remove(redis, id).await.context("removing a closed sale")?;
            tracing::info!(coupon.id = id, "closed sale removed from Redis: window over, everything persisted");
            retired.push(id);
        }
    }
    let left = scripts::hydrated(redis).await.context("listing hydrated coupons")?;
    let keys = sales::keys_remaining(redis, &left).await.context("counting sale keys")?;
    metrics::gauge!(COUPON_SALE_KEYS).set(keys as f64);
    Ok(retired)
}

/// Whether a coupon's sale is over and all of it is in Postgres (the module documentation's
/// four conditions, cheapest first).
async fn closed_and_settled(db: &PgPool, redis: &RedisStore, id: i64) -> anyhow::Result<bool> {
    let Some(terms) = scripts::terms(redis, id).await? else { return Ok(false) };
    if terms.ends_ms > now_ms() as i64 {
        return Ok(false);
    }
    let k = CouponKeys::new(redis.prefix(), id);
    let mut conn = redis.conn();
    let drained = match streams::group_info(&mut conn, &k.stream, GROUP).await? {
        Some(info) => {
            info.pending == 0 && streams::first_after(&mut conn, &k.stream, &info.last_delivered).await?.is_none()
        }
        // Never read by a consumer: settled only if nothing was ever appended.
        None => sales::stream_len(redis, &k.stream).await? == 0,
    };
    if !drained || sales::stream_len(redis, &k.dead).await? > 0 {
        return Ok(false);
    }
    let Some((total, remaining)) = scripts::live(redis, &[id]).await?.get(&id).copied() else { return Ok(false) };
    let admitted = u64::from(total - remaining);
    let Some(stored) = coupons::find(db, id).await? else { return Ok(false) };
    Ok(u64::from(stored.coupon.inventory.used()) == admitted && sales::holders_count(redis, id).await? == admitted)
}
