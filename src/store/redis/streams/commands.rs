//! The Redis Stream commands of the V2 consumer, with their replies parsed into plain types.
//!
//! Every function takes the connection to use: the blocking `XREADGROUP` runs on a dedicated
//! connection ([`crate::store::redis::RedisStore::dedicated`]), everything else on the shared one.

use std::{collections::HashMap, time::Duration};

use redis::{
    RedisResult, Value,
    aio::ConnectionLike,
    cluster_routing::Slot,
    streams::{StreamAutoClaimReply, StreamId, StreamReadReply},
};

use super::StreamEntry;

/// What `XINFO GROUPS` says about one consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// Entries delivered to a consumer and not yet acknowledged.
    pub pending: u64,
    /// The last entry id handed to any consumer of the group.
    pub last_delivered: String,
    /// Entries not yet delivered at all (`None` when Redis cannot tell, after deletions).
    pub lag: Option<u64>,
}

/// Whether a Redis error is the server's `code` (e.g. `BUSYGROUP`, `NOGROUP`).
pub fn is_code(e: &redis::RedisError, code: &str) -> bool {
    e.code() == Some(code) || e.to_string().contains(code)
}

/// Creates `group` on `stream` reading from the very beginning (`0`, so entries appended
/// before the group existed are not skipped), creating the stream if needed. An existing group
/// is left as it is.
pub async fn ensure_group<C: ConnectionLike + Send>(conn: &mut C, stream: &str, group: &str) -> RedisResult<()> {
    let created: RedisResult<()> =
        redis::cmd("XGROUP").arg("CREATE").arg(stream).arg(group).arg("0").arg("MKSTREAM").query_async(conn).await;
    match created {
        Err(e) if is_code(&e, "BUSYGROUP") => Ok(()),
        other => other,
    }
}

fn text(v: &Value) -> String {
    redis::from_redis_value_ref::<String>(v).unwrap_or_default()
}

fn entry(stream: &str, id: StreamId, deliveries: u64) -> StreamEntry {
    let fields = id.map.iter().map(|(k, v)| (k.clone(), text(v))).collect();
    StreamEntry { stream: stream.to_owned(), id: id.id, fields, deliveries }
}

/// `XREADGROUP GROUP group consumer COUNT count [BLOCK ms] STREAMS s... >|0`.
///
/// `history = false` reads entries never delivered to anyone (`>`), blocking up to `block`;
/// `history = true` re-reads this consumer's own unacknowledged entries (`0`, no blocking; each
/// re-read counts as a delivery). Entries read with `>` are on their first delivery; re-read
/// ones carry `deliveries = 0` until [`delivery_counts`] fills them in.
///
/// All `streams` must share one slot on Redis Cluster; [`read_group_by_slot`] reads any set.
pub async fn read_group<C: ConnectionLike + Send>(
    conn: &mut C,
    group: &str,
    consumer: &str,
    streams: &[String],
    count: usize,
    block: Duration,
    history: bool,
) -> RedisResult<Vec<StreamEntry>> {
    read(conn, group, consumer, streams, count, (!history).then_some(block), history).await
}

/// How long [`read_group_by_slot`] pauses when every slot came back empty: the bound on how late
/// a consumer on Redis Cluster sees an entry appended while it was idle.
pub const CLUSTER_IDLE_PAUSE: Duration = Duration::from_millis(20);

/// [`read_group`] over streams that may live in different Redis Cluster slots: one `XREADGROUP`
/// cannot name keys of two slots (`CROSSSLOT`), and one blocked read would stall the streams of
/// every other slot. Streams of one slot still block as usual; over several slots each slot is
/// read without blocking, and a round that finds nothing pauses [`CLUSTER_IDLE_PAUSE`] (at most
/// `block`) before answering empty.
pub async fn read_group_by_slot<C: ConnectionLike + Send>(
    conn: &mut C,
    group: &str,
    consumer: &str,
    streams: &[String],
    count: usize,
    block: Duration,
    history: bool,
) -> RedisResult<Vec<StreamEntry>> {
    let mut slots: HashMap<Slot, Vec<String>> = HashMap::new();
    for s in streams {
        slots.entry(Slot::for_key(s)).or_default().push(s.clone());
    }
    if slots.len() <= 1 {
        return read_group(conn, group, consumer, streams, count, block, history).await;
    }
    let mut out = Vec::new();
    for same_slot in slots.values() {
        out.extend(read(conn, group, consumer, same_slot, count, None, history).await?);
    }
    if out.is_empty() && !history {
        tokio::time::sleep(CLUSTER_IDLE_PAUSE.min(block)).await;
    }
    Ok(out)
}

/// One `XREADGROUP`, blocking when `block` is given.
async fn read<C: ConnectionLike + Send>(
    conn: &mut C,
    group: &str,
    consumer: &str,
    streams: &[String],
    count: usize,
    block: Option<Duration>,
    history: bool,
) -> RedisResult<Vec<StreamEntry>> {
    let mut cmd = redis::cmd("XREADGROUP");
    cmd.arg("GROUP").arg(group).arg(consumer).arg("COUNT").arg(count);
    if let Some(block) = block {
        cmd.arg("BLOCK").arg(u64::try_from(block.as_millis()).unwrap_or(u64::MAX));
    }
    cmd.arg("STREAMS").arg(streams);
    for _ in streams {
        cmd.arg(if history { "0" } else { ">" });
    }
    let reply: Option<StreamReadReply> = cmd.query_async(conn).await?;
    let first = if history { 0 } else { 1 };
    Ok(reply
        .map(|r| r.keys.into_iter().flat_map(|k| k.ids.into_iter().map(move |id| entry(&k.key, id, first))).collect())
        .unwrap_or_default())
}

/// `XAUTOCLAIM`: takes over up to `count` entries of `stream` that were delivered to some
/// consumer and not acknowledged for at least `min_idle`, starting at `start`. Returns the id
/// to continue from (`0-0` when the scan is complete) and the claimed entries (`deliveries`
/// still to be filled in by [`delivery_counts`]).
pub async fn autoclaim<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
    group: &str,
    consumer: &str,
    min_idle: Duration,
    start: &str,
    count: usize,
) -> RedisResult<(String, Vec<StreamEntry>)> {
    let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
        .arg(stream)
        .arg(group)
        .arg(consumer)
        .arg(u64::try_from(min_idle.as_millis()).unwrap_or(u64::MAX))
        .arg(start)
        .arg("COUNT")
        .arg(count)
        .query_async(conn)
        .await?;
    let entries = reply.claimed.into_iter().map(|id| entry(stream, id, 0)).collect();
    Ok((reply.next_stream_id, entries))
}

/// How many times each of `ids` (entries of one stream pending in `group` for `consumer`) has
/// been delivered.
pub async fn delivery_counts<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
    group: &str,
    consumer: &str,
    ids: &[&str],
) -> RedisResult<HashMap<String, u64>> {
    let (Some(min), Some(max)) = (ids.iter().min_by_key(|id| parse_id(id)), ids.iter().max_by_key(|id| parse_id(id)))
    else {
        return Ok(HashMap::new());
    };
    // Only this consumer's entries (claimed ones are its own by now); the range may still hold
    // some of them that are not in `ids`, hence the margin.
    let rows: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .arg(*min)
        .arg(*max)
        .arg(ids.len() * 2 + 100)
        .arg(consumer)
        .query_async(conn)
        .await?;
    Ok(rows.into_iter().map(|(id, _, _, n)| (id, n)).collect())
}

/// `XACK`s `ids` of `stream`.
pub async fn ack<C: ConnectionLike + Send>(conn: &mut C, stream: &str, group: &str, ids: &[&str]) -> RedisResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    redis::cmd("XACK").arg(stream).arg(group).arg(ids).query_async(conn).await
}

/// `XINFO GROUPS`: the state of `group` on `stream`; `None` when the stream or group is missing.
pub async fn group_info<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
    group: &str,
) -> RedisResult<Option<GroupInfo>> {
    let groups: RedisResult<Vec<HashMap<String, Value>>> =
        redis::cmd("XINFO").arg("GROUPS").arg(stream).query_async(conn).await;
    let groups = match groups {
        Ok(g) => g,
        Err(e) if e.to_string().contains("no such key") => return Ok(None),
        Err(e) => return Err(e),
    };
    let number = |v: Option<&Value>| v.and_then(|v| redis::from_redis_value_ref::<u64>(v).ok());
    Ok(groups.into_iter().find(|g| g.get("name").map(text).as_deref() == Some(group)).map(|g| GroupInfo {
        pending: number(g.get("pending")).unwrap_or(0),
        last_delivered: g.get("last-delivered-id").map(text).unwrap_or_else(|| "0-0".into()),
        lag: number(g.get("lag")),
    }))
}

/// The smallest id pending (delivered, unacknowledged) in `group`, if any.
pub async fn oldest_pending<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
    group: &str,
) -> RedisResult<Option<String>> {
    let (count, min, _, _): (u64, Option<String>, Option<String>, Value) =
        redis::cmd("XPENDING").arg(stream).arg(group).query_async(conn).await?;
    Ok(if count == 0 { None } else { min })
}

/// The id of the first entry after `id` (exclusive), if any.
pub async fn first_after<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
    id: &str,
) -> RedisResult<Option<String>> {
    let reply: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg(stream).arg(format!("({id}")).arg("+").arg("COUNT").arg(1).query_async(conn).await?;
    Ok(reply.ids.into_iter().next().map(|e| e.id))
}

/// Deletes the entries of `stream` whose id is below `min_id` (`XTRIM MINID`); returns how many.
pub async fn trim_below<C: ConnectionLike + Send>(conn: &mut C, stream: &str, min_id: &str) -> RedisResult<u64> {
    redis::cmd("XTRIM").arg(stream).arg("MINID").arg(min_id).query_async(conn).await
}

/// Moves an entry to `dead` (its fields plus `dead.source_stream`, `dead.source_id`,
/// `dead.deliveries`, `dead.reason`) and acknowledges it, in one `MULTI`: it is never both
/// lost and acknowledged, nor dead-lettered twice by two consumers that both still held it.
pub async fn dead_letter<C: ConnectionLike + Send>(
    conn: &mut C,
    dead: &str,
    group: &str,
    entry: &StreamEntry,
    reason: &str,
) -> RedisResult<()> {
    let mut xadd = redis::cmd("XADD");
    xadd.arg(dead).arg("*");
    for (k, v) in &entry.fields {
        xadd.arg(k).arg(v);
    }
    xadd.arg("dead.source_stream").arg(&entry.stream);
    xadd.arg("dead.source_id").arg(&entry.id);
    xadd.arg("dead.deliveries").arg(entry.deliveries);
    xadd.arg("dead.reason").arg(reason);
    redis::pipe()
        .atomic()
        .add_command(xadd)
        .ignore()
        .xack(&entry.stream, group, &[&entry.id])
        .ignore()
        .query_async(conn)
        .await
}

/// `(ms, seq)` of an entry id; malformed ids sort first.
pub fn parse_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// The smallest id greater than `id`.
pub fn next_id(id: &str) -> String {
    let (ms, seq) = parse_id(id);
    match seq.checked_add(1) {
        Some(seq) => format!("{ms}-{seq}"),
        None => format!("{}-0", ms + 1),
    }
}

/// Consumers of `group` (other than `keep`) with nothing pending and idle for at least
/// `idle`: processes that ended long ago. Each restart names a new consumer, so without this
/// the group's consumer list would only grow.
pub async fn forget_idle_consumers<C: ConnectionLike + Send>(
    conn: &mut C,
    stream: &str,
    group: &str,
    keep: &str,
    idle: Duration,
) -> RedisResult<u64> {
    let consumers: Vec<HashMap<String, Value>> =
        redis::cmd("XINFO").arg("CONSUMERS").arg(stream).arg(group).query_async(conn).await?;
    let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
    let mut forgotten = 0;
    for c in consumers {
        let name = c.get("name").map(text).unwrap_or_default();
        let pending = c.get("pending").and_then(|v| redis::from_redis_value_ref::<u64>(v).ok()).unwrap_or(1);
        let inactive = c.get("idle").and_then(|v| redis::from_redis_value_ref::<u64>(v).ok()).unwrap_or(0);
        if name != keep && pending == 0 && inactive >= idle_ms {
            let _: u64 =
                redis::cmd("XGROUP").arg("DELCONSUMER").arg(stream).arg(group).arg(&name).query_async(conn).await?;
            forgotten += 1;
        }
    }
    Ok(forgotten)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_id_is_the_smallest_one_above() {
        assert_eq!(next_id("1700000000000-0"), "1700000000000-1");
        assert_eq!(next_id(&format!("5-{}", u64::MAX)), "6-0");
        assert!(parse_id("10-2") > parse_id("9-30"));
    }
}
