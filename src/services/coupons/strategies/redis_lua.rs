//! `redis-lua` (V2): the coupon admission engine ([`crate::admission::coupons`]) decides and
//! records an issue atomically in Redis with one script, and the consumer persists it later.

use super::{IssueFailure, Issued, Issuer};
use crate::{admission::coupons::CouponAdmission, config::IssueStrategy};

/// Issues with the Redis script.
pub struct RedisLuaIssuer<'a> {
    engine: &'a CouponAdmission,
}

impl<'a> RedisLuaIssuer<'a> {
    /// An issuer over the process's coupon admission engine.
    pub fn new(engine: &'a CouponAdmission) -> Self {
        RedisLuaIssuer { engine }
    }
}

impl Issuer for RedisLuaIssuer<'_> {
    fn strategy(&self) -> IssueStrategy {
        IssueStrategy::RedisLua
    }

    async fn issue(&self, coupon_id: i64, user_id: i64) -> Result<Issued, IssueFailure> {
        let (coupon, remaining) = self.engine.issue(coupon_id, user_id).await?;
        Ok(Issued { coupon, remaining })
    }
}
