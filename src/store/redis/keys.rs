//! The Redis key layout of V2 coupon admission.
//!
//! Every key of one coupon carries the hash tag `{coupon:ID}`, so all of them live in one Redis
//! Cluster slot and a Lua script may touch them together. The full key is
//! `{prefix}:{coupon:ID}:{suffix}` with `prefix` = `JUPANG_REDIS_PREFIX`.
//!
//! | suffix | type | holds |
//! | --- | --- | --- |
//! | [`META`] | hash | the issue window, total, market, validity and terms revision |
//! | [`REMAINING`] | string | coupons still to hand out |
//! | [`USERS`] | set | user ids holding one (persisted or not) |
//! | [`HELD`] | hash | user id -> `uc_id|issued_at|expires_at` of admitted coupons |
//! | [`STREAM`] | stream | one entry per admission, drained into Postgres by the consumer |
//! | [`DEAD`] | stream | entries that could never be persisted (dead letters) |
//! | [`SCRATCH`]`:<token>:users`, `...:held` | set, hash | hydration's work in progress |
//!
//! Outside the coupon slots: [`HYDRATED_COUPONS`], the set of hydrated coupon ids (the consumer's
//! list of streams and the read-your-writes lookup).
//!
//! A closed sale's keys are removed once all of it is persisted (`store::redis::sales`, decided
//! by the consumer's housekeeping).

/// Hash of the coupon's issuing terms, the script's source of truth while a sale runs:
/// `starts_ms`, `ends_ms` (the window, epoch milliseconds, start inclusive, end exclusive),
/// `total` (planned quantity), `market` (`KR`/`US`), `validity` (`until:<epoch microseconds>`
/// or `days:<n>`) and `rev` (a token that changes whenever any of these change, so a process
/// holding older terms in memory notices). Its absence means "not hydrated".
pub const META: &str = "meta";
/// Integer counter: how many can still be issued. `total - remaining` is the number of users
/// admitted so far, persisted or not.
pub const REMAINING: &str = "remaining";
/// Set of user ids holding the coupon: everyone persisted in Postgres at hydration plus every
/// user admitted since. One member per issued coupon (checked by the reconciler).
pub const USERS: &str = "users";
/// Hash user id -> `user_coupon_id|issued_at|expires_at` (RFC 3339, microseconds) of each
/// admission ([`super::streams::coupons::held_record`]), written by the issue script: what a payment or a listing needs to persist a coupon the consumer has not
/// reached yet (read-your-writes). Entries already in Postgres are removed by the reconciler.
pub const HELD: &str = "held";
/// Stream of admissions, one entry per issued coupon, with the fields defined in
/// [`super::streams::coupons::FIELDS`]. Trimmed only below what the consumer group has
/// acknowledged.
pub const STREAM: &str = "stream";
/// Stream of the entries of [`STREAM`] that could never be persisted (dead letters): the stream's
/// key with `:dead` appended, as every sink names its dead-letter stream.
pub const DEAD: &str = "stream:dead";
/// Prefix of hydration's temporary keys (`scratch:<token>:users`, `scratch:<token>:held`), built
/// outside the live keys and published atomically; they expire on their own if a hydration dies
/// half-way.
pub const SCRATCH: &str = "scratch";
/// Set of coupon ids whose keys were hydrated (`{prefix}:flash:coupons`). The key string keeps
/// its historical name so that deployments upgraded in place still find their hydrated coupons.
pub const HYDRATED_COUPONS: &str = "flash:coupons";

/// A key of one coupon: `{prefix}:{coupon:ID}:{suffix}`.
pub fn coupon_key(prefix: &str, coupon_id: i64, suffix: &str) -> String {
    format!("{prefix}:{{coupon:{coupon_id}}}:{suffix}")
}

/// The coupon id of a coupon key built by [`coupon_key`], if it is one.
pub fn coupon_of_key(prefix: &str, key: &str) -> Option<i64> {
    let rest = key.strip_prefix(prefix)?.strip_prefix(":{coupon:")?;
    rest.split_once('}').and_then(|(id, _)| id.parse().ok())
}

/// The keys of one coupon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponKeys {
    /// [`META`].
    pub meta: String,
    /// [`REMAINING`].
    pub remaining: String,
    /// [`USERS`].
    pub users: String,
    /// [`HELD`].
    pub held: String,
    /// [`STREAM`].
    pub stream: String,
    /// [`DEAD`].
    pub dead: String,
}

impl CouponKeys {
    /// The keys of `coupon_id` under `prefix`.
    pub fn new(prefix: &str, coupon_id: i64) -> CouponKeys {
        CouponKeys {
            meta: coupon_key(prefix, coupon_id, META),
            remaining: coupon_key(prefix, coupon_id, REMAINING),
            users: coupon_key(prefix, coupon_id, USERS),
            held: coupon_key(prefix, coupon_id, HELD),
            stream: coupon_key(prefix, coupon_id, STREAM),
            dead: coupon_key(prefix, coupon_id, DEAD),
        }
    }

    /// Every key a sale holds (not hydration's scratch keys, which expire on their own).
    pub fn all(&self) -> [&str; 6] {
        [&self.meta, &self.remaining, &self.users, &self.held, &self.stream, &self.dead]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_coupon_shares_its_hash_tag() {
        let k = CouponKeys::new("jupang", 42);
        for key in k.all() {
            assert!(key.starts_with("jupang:{coupon:42}:"), "{key}");
        }
        assert_eq!(coupon_of_key("jupang", &k.stream), Some(42));
        assert_eq!(coupon_of_key("jupang", "jupang:flash:coupons"), None);
        assert_eq!(coupon_of_key("other", &k.stream), None);
    }
}
