//! What remains in Redis of coupon sales, and the removal of a closed one. When a sale may go
//! (its window over, every admission persisted and reconciled) is the consumer's housekeeping's
//! decision (`workers::consumer::housekeeping`).

use redis::RedisResult;

use super::{
    RedisStore,
    keys::{CouponKeys, HYDRATED_COUPONS},
    spread::SpreadPipe,
};

/// How many keys the coupons `ids` still hold in Redis ([`CouponKeys::all`]), one round trip
/// (one per slot, concurrently, on a cluster).
pub async fn keys_remaining(redis: &RedisStore, ids: &[i64]) -> RedisResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let mut pipe = SpreadPipe::new();
    for id in ids {
        // One EXISTS per coupon: its keys share one hash tag, so one cluster slot.
        let coupon = CouponKeys::new(redis.prefix(), *id);
        let keys = coupon.all();
        pipe.add(keys[0], redis::cmd("EXISTS").arg(&keys[..]).clone());
    }
    let counts: Vec<u64> = pipe.query(redis).await?;
    Ok(counts.iter().sum())
}

/// The number of users holding a coupon as Redis counts them (the size of its users set).
pub async fn holders_count(redis: &RedisStore, coupon_id: i64) -> RedisResult<u64> {
    redis::cmd("SCARD").arg(&CouponKeys::new(redis.prefix(), coupon_id).users).query_async(&mut redis.conn()).await
}

/// Entries of a stream (0 when it does not exist).
pub async fn stream_len(redis: &RedisStore, stream: &str) -> RedisResult<u64> {
    redis::cmd("XLEN").arg(stream).query_async(&mut redis.conn()).await
}

/// Removes a closed coupon's keys: out of the hydrated index first, so no reader (the consumer,
/// read-your-writes, reconcile) looks for it any more, then every key in one `UNLINK` (one
/// slot). A request for the coupon afterwards hydrates it again from Postgres, as for any
/// coupon not in Redis, and is refused as closed. A crash between the two leaves keys no one
/// reads; the reverse order could have a consumer recreate the stream it still listed.
pub async fn remove(redis: &RedisStore, coupon_id: i64) -> RedisResult<()> {
    let mut conn = redis.conn();
    let _: i64 = redis::cmd("SREM").arg(redis.key(HYDRATED_COUPONS)).arg(coupon_id).query_async(&mut conn).await?;
    let keys = CouponKeys::new(redis.prefix(), coupon_id);
    let _: i64 = redis::cmd("UNLINK").arg(&keys.all()[..]).query_async(&mut conn).await?;
    Ok(())
}
