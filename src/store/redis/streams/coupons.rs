//! The coupon issuance stream: one stream per hydrated coupon (`{prefix}:{coupon:ID}:stream`),
//! one entry per coupon the issue script (`lua/issue_coupon.lua`) admitted.
//!
//! The entry's fields are defined here, once: [`FIELDS`]. The issue script writes them under
//! these names, and the same script (and hydration) keeps a *held record* per user in the
//! coupon's `held` hash, `user_coupon_id|issued_at|expires_at` ([`held_record`]), which a payment
//! or a listing reads to persist a coupon the consumer has not reached yet. Instants are RFC 3339
//! with microseconds, UTC ([`time_text`]).

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use redis::RedisResult;
use uuid::Uuid;

use super::{StreamEntry, StreamSource};
use crate::{
    domain::coupon::{IssuedCoupon, IssuedStatus},
    store::redis::{
        RedisStore, coupons,
        keys::{self, STREAM},
    },
};

/// The name of the coupon issuance streams, as a sink: logs and metric labels.
pub const NAME: &str = "coupons";

/// `user_coupon_id`: the issued coupon's id (UUIDv7).
pub const USER_COUPON_ID: &str = "user_coupon_id";
/// `coupon_id`: the coupon (campaign); always the coupon of the stream.
pub const COUPON_ID: &str = "coupon_id";
/// `user_id`: the holder.
pub const USER_ID: &str = "user_id";
/// `issued_at`: when it was issued ([`time_text`]).
pub const ISSUED_AT: &str = "issued_at";
/// `expires_at`: when it stops being usable ([`time_text`]).
pub const EXPIRES_AT: &str = "expires_at";
/// Every field of an issuance entry, in the order the issue script writes them.
pub const FIELDS: [&str; 5] = [USER_COUPON_ID, COUPON_ID, USER_ID, ISSUED_AT, EXPIRES_AT];

/// An instant as written into stream entries and held records: RFC 3339, microseconds, UTC.
pub fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.to_utc())
}

/// The fields of the entry of an issued coupon, in [`FIELDS`] order.
pub fn encode(c: &IssuedCoupon) -> [(&'static str, String); 5] {
    [
        (USER_COUPON_ID, c.id.to_string()),
        (COUPON_ID, c.coupon_id.to_string()),
        (USER_ID, c.user_id.to_string()),
        (ISSUED_AT, time_text(c.issued_at)),
        (EXPIRES_AT, time_text(c.expires_at)),
    ]
}

/// The issued coupon an entry's fields describe, or why they do not describe one.
pub fn decode(f: &HashMap<String, String>) -> Result<IssuedCoupon, String> {
    let get = |k: &str| f.get(k).map(String::as_str).ok_or_else(|| format!("missing field {k}"));
    let bad = |k: &str| format!("malformed field {k}");
    Ok(IssuedCoupon {
        id: Uuid::parse_str(get(USER_COUPON_ID)?).map_err(|_| bad(USER_COUPON_ID))?,
        coupon_id: get(COUPON_ID)?.parse().map_err(|_| bad(COUPON_ID))?,
        user_id: get(USER_ID)?.parse().map_err(|_| bad(USER_ID))?,
        status: IssuedStatus::Available,
        issued_at: parse_time(get(ISSUED_AT)?).ok_or_else(|| bad(ISSUED_AT))?,
        expires_at: parse_time(get(EXPIRES_AT)?).ok_or_else(|| bad(EXPIRES_AT))?,
    })
}

/// The held record of an admission: `user_coupon_id|issued_at|expires_at`.
pub fn held_record(c: &IssuedCoupon) -> String {
    format!("{}|{}|{}", c.id, time_text(c.issued_at), time_text(c.expires_at))
}

/// The admission a held record of `user_id` in `coupon_id`'s `held` hash describes.
pub fn parse_held_record(coupon_id: i64, user_id: i64, s: &str) -> Option<IssuedCoupon> {
    let mut parts = s.split('|');
    let (id, issued_at, expires_at) = (parts.next()?, parts.next()?, parts.next()?);
    Some(IssuedCoupon {
        id: Uuid::parse_str(id).ok()?,
        coupon_id,
        user_id,
        status: IssuedStatus::Available,
        issued_at: parse_time(issued_at)?,
        expires_at: parse_time(expires_at)?,
    })
}

/// The coupon issuance streams of a deployment: one per hydrated coupon.
#[derive(Clone)]
pub struct CouponStreams {
    redis: RedisStore,
}

impl CouponStreams {
    /// The streams of the deployment `redis` is configured for.
    pub fn new(redis: RedisStore) -> CouponStreams {
        CouponStreams { redis }
    }
}

impl StreamSource for CouponStreams {
    type Item = IssuedCoupon;

    fn name(&self) -> &'static str {
        NAME
    }

    async fn streams(&self) -> RedisResult<Vec<String>> {
        let ids = coupons::hydrated(&self.redis).await?;
        Ok(ids.into_iter().map(|id| keys::coupon_key(self.redis.prefix(), id, STREAM)).collect())
    }

    fn decode(&self, entry: &StreamEntry) -> Result<IssuedCoupon, String> {
        let c = decode(&entry.fields)?;
        if keys::coupon_of_key(self.redis.prefix(), &entry.stream) != Some(c.coupon_id) {
            return Err("coupon_id does not match the stream".into());
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{SubsecRound, TimeDelta};

    use super::*;

    #[test]
    fn an_issued_coupon_survives_its_entry_and_its_held_record() {
        let at = Utc::now().trunc_subsecs(6);
        let c = IssuedCoupon {
            id: Uuid::now_v7(),
            coupon_id: 3,
            user_id: 9,
            status: IssuedStatus::Available,
            issued_at: at,
            expires_at: at + TimeDelta::days(7),
        };
        assert_eq!(parse_held_record(3, 9, &held_record(&c)), Some(c.clone()));
        let fields: HashMap<String, String> = encode(&c).into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        assert_eq!(fields.keys().count(), FIELDS.len());
        assert_eq!(decode(&fields), Ok(c));
        assert_eq!(decode(&HashMap::new()), Err("missing field user_coupon_id".to_owned()));
    }
}
