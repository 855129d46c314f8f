//! V2 coupon admission in Redis: the Lua scripts (`lua/*_coupon.lua`) and the reads around
//! them. Key layout: [`super::keys`]; the issuance stream and held records:
//! [`super::streams::coupons`].
//!
//! Scripts are [`redis::Script`]s: sent by SHA (`EVALSHA`), and loaded again by the client when
//! a restarted or failed-over Redis answers `NOSCRIPT`, except the issue script: its `NOSCRIPT`
//! is the restart fence ([`IssueReply::ScriptMissing`]). A Redis that restarted (or a replica
//! that took over) may have lost its last writes (`appendfsync everysec` and a machine crash,
//! or asynchronous replication); admitting on that state could issue beyond the quantity or
//! twice to one user. So the issue script is loaded only by [`arm`], which the admission calls
//! after a repair from Postgres, and never by [`load_scripts`] or hydration.

use std::{collections::HashMap, sync::LazyLock};

use chrono::{DateTime, TimeZone, Utc};
use redis::{RedisResult, Value};

use super::{
    RedisStore,
    keys::{CouponKeys, HYDRATED_COUPONS, SCRATCH, coupon_key},
    spread::SpreadPipe,
    streams::{
        self,
        coupons::{held_record, parse_held_record, time_text},
    },
};
use crate::domain::{
    Market,
    coupon::{IssuedCoupon, Validity},
};

static ISSUE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../../../lua/issue_coupon.lua")));
static HYDRATE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../../../lua/hydrate_coupon.lua")));
static ADJUST: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../../../lua/adjust_coupon.lua")));
static REPAIR: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../../../lua/repair_coupon.lua")));

/// Scratch keys of a hydration disappear after this long if it never publishes.
const SCRATCH_TTL_SECS: i64 = 120;

/// The issuing terms kept in a coupon's `meta` hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuingTerms {
    /// Window start, epoch ms (inclusive).
    pub starts_ms: i64,
    /// Window end, epoch ms (exclusive).
    pub ends_ms: i64,
    /// Planned quantity.
    pub total: u32,
    /// The only market whose users may hold it.
    pub market: Market,
    /// How long an issued coupon stays usable.
    pub validity: Validity,
    /// Changes whenever market or validity change (see [`super::keys::META`]).
    pub rev: String,
}

fn validity_text(v: Validity) -> String {
    match v {
        Validity::Until(at) => format!("until:{}", at.timestamp_micros()),
        Validity::Days(d) => format!("days:{d}"),
    }
}

fn parse_validity(s: &str) -> Option<Validity> {
    match s.split_once(':')? {
        ("until", us) => Utc.timestamp_micros(us.parse().ok()?).single().map(Validity::Until),
        ("days", d) => d.parse().ok().map(Validity::Days),
        _ => None,
    }
}

/// What the issue script decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueReply {
    /// The coupon's keys do not exist: hydrate, then retry.
    NotHydrated,
    /// The caller's terms revision is not the stored one: reload the terms, then retry.
    Stale,
    /// Outside the issue window `[starts_ms, ends_ms)`.
    NotActive {
        /// Window start, epoch ms, as Redis has it.
        starts_ms: i64,
        /// Window end, epoch ms, as Redis has it.
        ends_ms: i64,
    },
    /// The user holds one already.
    AlreadyIssued,
    /// None left (in the window `[starts_ms, ends_ms)`).
    SoldOut {
        /// Window start, epoch ms, as Redis has it.
        starts_ms: i64,
        /// Window end, epoch ms, as Redis has it.
        ends_ms: i64,
    },
    /// Issued and recorded in the coupon's stream.
    Issued {
        /// Left after this one.
        remaining: u32,
    },
    /// Redis does not know the issue script: it restarted, failed over or flushed its scripts.
    /// Repair its state from Postgres, [`arm`], then retry.
    ScriptMissing,
}

fn status(v: &[Value]) -> String {
    v.first().and_then(|s| redis::from_redis_value_ref::<String>(s).ok()).unwrap_or_default()
}

fn int(v: &[Value], i: usize) -> i64 {
    v.get(i).and_then(|s| redis::from_redis_value_ref::<i64>(s).ok()).unwrap_or(0)
}

fn unexpected(what: &str, reply: &[Value]) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Client, "unexpected script reply", format!("{what}: {reply:?}")))
}

/// Runs the issue script for `coupon` (already decided: exists, user and market match) at
/// `now`, under the terms revision `rev` the caller holds.
pub async fn issue(redis: &RedisStore, coupon: &IssuedCoupon, now_ms: i64, rev: &str) -> RedisResult<IssueReply> {
    let k = CouponKeys::new(redis.prefix(), coupon.coupon_id);
    let sent = redis::cmd("EVALSHA")
        .arg(ISSUE.get_hash())
        .arg(5)
        .arg(&k.meta)
        .arg(&k.remaining)
        .arg(&k.users)
        .arg(&k.held)
        .arg(&k.stream)
        .arg(now_ms)
        .arg(coupon.user_id)
        .arg(coupon.id.to_string())
        .arg(time_text(coupon.issued_at))
        .arg(time_text(coupon.expires_at))
        .arg(rev)
        .arg(coupon.coupon_id)
        .query_async::<Vec<Value>>(&mut redis.conn())
        .await;
    let reply = match sent {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            return Ok(IssueReply::ScriptMissing);
        }
        r => r?,
    };
    Ok(match status(&reply).as_str() {
        "ISSUED" => IssueReply::Issued { remaining: u32::try_from(int(&reply, 1)).unwrap_or(0) },
        "NOT_HYDRATED" => IssueReply::NotHydrated,
        "STALE" => IssueReply::Stale,
        "NOT_ACTIVE" => IssueReply::NotActive { starts_ms: int(&reply, 1), ends_ms: int(&reply, 2) },
        "ALREADY_ISSUED" => IssueReply::AlreadyIssued,
        "SOLD_OUT" => IssueReply::SoldOut { starts_ms: int(&reply, 1), ends_ms: int(&reply, 2) },
        _ => return Err(unexpected("issue_coupon", &reply)),
    })
}

/// Loads the scripts other than the issue script (see [`arm`]) into Redis now, so the first
/// requests of a sale do not pay for it.
pub async fn load_scripts(redis: &RedisStore) -> RedisResult<()> {
    let mut conn = redis.conn();
    for script in [&*HYDRATE, &*ADJUST, &*REPAIR] {
        let _: String = script.prepare_invoke().load_async(&mut conn).await?;
    }
    Ok(())
}

/// Whether Redis knows the issue script (on a cluster: every master does).
pub async fn armed(redis: &RedisStore) -> RedisResult<bool> {
    let known: Vec<bool> =
        redis::cmd("SCRIPT").arg("EXISTS").arg(ISSUE.get_hash()).query_async(&mut redis.conn()).await?;
    Ok(known.iter().all(|k| *k))
}

/// Loads the issue script: from now on this Redis admits. Only after its state was repaired
/// from Postgres (see the module doc).
pub async fn arm(redis: &RedisStore) -> RedisResult<()> {
    let _: String = ISSUE.prepare_invoke().load_async(&mut redis.conn()).await?;
    Ok(())
}

/// The coupon's stored terms; `None` when it is not hydrated.
pub async fn terms(redis: &RedisStore, coupon_id: i64) -> RedisResult<Option<IssuingTerms>> {
    let k = CouponKeys::new(redis.prefix(), coupon_id);
    let m: HashMap<String, String> = redis::cmd("HGETALL").arg(&k.meta).query_async(&mut redis.conn()).await?;
    let parsed = (|| {
        Some(IssuingTerms {
            starts_ms: m.get("starts_ms")?.parse().ok()?,
            ends_ms: m.get("ends_ms")?.parse().ok()?,
            total: m.get("total")?.parse().ok()?,
            market: Market::parse(m.get("market")?)?,
            validity: parse_validity(m.get("validity")?)?,
            rev: m.get("rev")?.clone(),
        })
    })();
    if parsed.is_none() && !m.is_empty() {
        return Err(unexpected("meta", &[]));
    }
    Ok(parsed)
}

/// Builds a coupon's state into scratch keys and publishes it only if the coupon is not
/// hydrated yet; `true` when this call published. `holders` are every user holding one
/// (persisted or pending), `pending` the admissions not in Postgres (for read-your-writes).
pub async fn publish_hydration(
    redis: &RedisStore,
    coupon_id: i64,
    terms: &IssuingTerms,
    holders: &[i64],
    pending: &[IssuedCoupon],
) -> RedisResult<bool> {
    let k = CouponKeys::new(redis.prefix(), coupon_id);
    let token = format!("{:016x}", rand::random::<u64>());
    let scratch_users = coupon_key(redis.prefix(), coupon_id, &format!("{SCRATCH}:{token}:users"));
    let scratch_held = coupon_key(redis.prefix(), coupon_id, &format!("{SCRATCH}:{token}:held"));
    let mut conn = redis.conn();
    // Indexed first: once published, admissions can happen, and the consumer must know the stream.
    let _: i64 = redis::cmd("SADD").arg(redis.key(HYDRATED_COUPONS)).arg(coupon_id).query_async(&mut conn).await?;
    for chunk in holders.chunks(5_000) {
        redis::pipe()
            .sadd(&scratch_users, chunk)
            .ignore()
            .expire(&scratch_users, SCRATCH_TTL_SECS)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
    }
    for chunk in pending.chunks(2_000) {
        let items: Vec<(i64, String)> = chunk.iter().map(|c| (c.user_id, held_record(c))).collect();
        redis::pipe()
            .hset_multiple(&scratch_held, &items)
            .ignore()
            .expire(&scratch_held, SCRATCH_TTL_SECS)
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
    }
    let mut hydrate = HYDRATE.prepare_invoke();
    hydrate.key(&k.meta).key(&k.remaining).key(&k.users).key(&k.held).key(&scratch_users).key(&scratch_held);
    let published: i64 = with_terms(&mut hydrate, terms).invoke_async(&mut conn).await?;
    Ok(published == 1)
}

/// Appends the terms as the hydrate and adjust scripts take them (`ARGV[1..6]`: starts_ms,
/// ends_ms, total, market, validity, rev).
fn with_terms<'a, 'b>(
    inv: &'b mut redis::ScriptInvocation<'a>,
    terms: &IssuingTerms,
) -> &'b mut redis::ScriptInvocation<'a> {
    inv.arg(terms.starts_ms)
        .arg(terms.ends_ms)
        .arg(terms.total)
        .arg(terms.market.code())
        .arg(validity_text(terms.validity))
        .arg(&terms.rev)
}

/// What an edit did to a hydrated coupon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdjustReply {
    /// Not hydrated: nothing to change (hydration will read the edited row).
    NotHydrated,
    /// The new total is below the `admitted` count.
    BelowIssued {
        /// Users admitted so far.
        admitted: i64,
    },
    /// Applied; `remaining` now.
    Adjusted {
        /// Left to issue.
        remaining: i64,
    },
}

/// Applies edited terms to a hydrated coupon (see `lua/adjust_coupon.lua`).
pub async fn adjust(redis: &RedisStore, coupon_id: i64, terms: &IssuingTerms) -> RedisResult<AdjustReply> {
    let k = CouponKeys::new(redis.prefix(), coupon_id);
    let mut adjust = ADJUST.prepare_invoke();
    adjust.key(&k.meta).key(&k.remaining);
    let reply: Vec<Value> = with_terms(&mut adjust, terms).invoke_async(&mut redis.conn()).await?;
    Ok(match status(&reply).as_str() {
        "OK" => AdjustReply::Adjusted { remaining: int(&reply, 1) },
        "BELOW_ISSUED" => AdjustReply::BelowIssued { admitted: int(&reply, 1) },
        "NOT_HYDRATED" => AdjustReply::NotHydrated,
        _ => return Err(unexpected("adjust_coupon", &reply)),
    })
}

/// The reconciler's safe repair (see `lua/repair_coupon.lua`): `(users added, remaining lowered
/// by)`, or `None` when the coupon is not hydrated.
pub async fn repair(redis: &RedisStore, coupon_id: i64, missing_users: &[i64]) -> RedisResult<Option<(i64, i64)>> {
    let k = CouponKeys::new(redis.prefix(), coupon_id);
    let reply: Vec<i64> =
        REPAIR.key(&k.meta).key(&k.remaining).key(&k.users).arg(missing_users).invoke_async(&mut redis.conn()).await?;
    Ok(match reply[..] {
        [-1, _] => None,
        [added, lowered] => Some((added, lowered)),
        _ => None,
    })
}

/// The live counters of hydrated coupons among `ids`: id -> (total, remaining), one round trip.
pub async fn live(redis: &RedisStore, ids: &[i64]) -> RedisResult<HashMap<i64, (u32, u32)>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut pipe = SpreadPipe::new();
    for id in ids {
        let k = CouponKeys::new(redis.prefix(), *id);
        pipe.add(&k.meta, redis::Cmd::hget(&k.meta, "total")).add(&k.remaining, redis::Cmd::get(&k.remaining));
    }
    let replies: Vec<Option<i64>> = pipe.query(redis).await?;
    Ok(ids
        .iter()
        .zip(replies.chunks(2))
        .filter_map(|(id, r)| match r {
            [Some(total), Some(remaining)] => Some((*id, (*total as u32, (*remaining).max(0) as u32))),
            _ => None,
        })
        .collect())
}

/// Ids of the hydrated coupons.
pub async fn hydrated(redis: &RedisStore) -> RedisResult<Vec<i64>> {
    let mut ids: Vec<i64> =
        redis::cmd("SMEMBERS").arg(redis.key(HYDRATED_COUPONS)).query_async(&mut redis.conn()).await?;
    ids.sort_unstable();
    Ok(ids)
}

/// The admissions recorded for `user_id` across every hydrated coupon (persisted or not), one
/// round trip after the index read.
pub async fn held_by_user(redis: &RedisStore, user_id: i64) -> RedisResult<Vec<IssuedCoupon>> {
    let ids = hydrated(redis).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = SpreadPipe::new();
    for id in &ids {
        let held = CouponKeys::new(redis.prefix(), *id).held;
        pipe.add(&held, redis::Cmd::hget(&held, user_id));
    }
    let values: Vec<Option<String>> = pipe.query(redis).await?;
    Ok(ids.iter().zip(values).filter_map(|(c, v)| v.and_then(|v| parse_held_record(*c, user_id, &v))).collect())
}

/// The admissions of a coupon's stream that decode and belong to it (the stream keeps only what
/// may be unacknowledged, plus what was acknowledged since the last trim).
pub async fn stream_admissions(redis: &RedisStore, coupon_id: i64) -> RedisResult<Vec<IssuedCoupon>> {
    let k = CouponKeys::new(redis.prefix(), coupon_id);
    let reply: redis::streams::StreamRangeReply =
        redis::cmd("XRANGE").arg(&k.stream).arg("-").arg("+").query_async(&mut redis.conn()).await?;
    Ok(reply
        .ids
        .into_iter()
        .map(|e| e.map.iter().map(|(k, v)| (k.clone(), redis::from_redis_value_ref(v).unwrap_or_default())).collect())
        .filter_map(|fields: HashMap<String, String>| streams::coupons::decode(&fields).ok())
        .filter(|c| c.coupon_id == coupon_id)
        .collect())
}

/// Every admission of a coupon Redis still knows: the held records (kept until persisted) and
/// the stream's entries, each once.
pub async fn admissions(redis: &RedisStore, coupon_id: i64) -> RedisResult<Vec<IssuedCoupon>> {
    let k = CouponKeys::new(redis.prefix(), coupon_id);
    let held: HashMap<i64, String> = redis::cmd("HGETALL").arg(&k.held).query_async(&mut redis.conn()).await?;
    let mut all: Vec<IssuedCoupon> =
        held.into_iter().filter_map(|(user, v)| parse_held_record(coupon_id, user, &v)).collect();
    for c in stream_admissions(redis, coupon_id).await? {
        if !all.iter().any(|a| a.id == c.id) {
            all.push(c);
        }
    }
    Ok(all)
}

/// The users set of a coupon.
pub async fn holders(redis: &RedisStore, coupon_id: i64) -> RedisResult<Vec<i64>> {
    let k = CouponKeys::new(redis.prefix(), coupon_id);
    redis::cmd("SMEMBERS").arg(&k.users).query_async(&mut redis.conn()).await
}

/// The users with a held record (admissions kept for read-your-writes).
pub async fn held_users(redis: &RedisStore, coupon_id: i64) -> RedisResult<Vec<i64>> {
    let k = CouponKeys::new(redis.prefix(), coupon_id);
    redis::cmd("HKEYS").arg(&k.held).query_async(&mut redis.conn()).await
}

/// Forgets the held records of users whose coupon is persisted (no longer needed for
/// read-your-writes).
pub async fn forget_held(redis: &RedisStore, coupon_id: i64, users: &[i64]) -> RedisResult<()> {
    let k = CouponKeys::new(redis.prefix(), coupon_id);
    for chunk in users.chunks(5_000) {
        let _: i64 = redis::cmd("HDEL").arg(&k.held).arg(chunk).query_async(&mut redis.conn()).await?;
    }
    Ok(())
}

/// The terms to store for a coupon, with a fresh revision token.
pub fn terms_of(
    starts: DateTime<Utc>,
    ends: DateTime<Utc>,
    total: u32,
    market: Market,
    validity: Validity,
) -> IssuingTerms {
    IssuingTerms {
        starts_ms: starts.timestamp_millis(),
        ends_ms: ends.timestamp_millis(),
        total,
        market,
        validity,
        rev: format!("{:016x}", rand::random::<u64>()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_round_trips_through_its_text() {
        let until = Validity::Until(chrono::SubsecRound::trunc_subsecs(Utc::now(), 6));
        assert_eq!(parse_validity(&validity_text(until)), Some(until));
        assert_eq!(parse_validity(&validity_text(Validity::Days(7))), Some(Validity::Days(7)));
        assert_eq!(parse_validity("weeks:2"), None);
    }
}
