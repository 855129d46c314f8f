//! `redis-lua` (V2): one Lua script decides and records an issue atomically in Redis
//! (`lua/issue_coupon.lua`: window, already held, stock, then `XADD` of the issuance, `DECR`,
//! `SADD`), and the consumer persists the stream into Postgres later.
//!
//! No Postgres on the hot path: the user's existence and market and the coupon's terms come
//! from in-process caches ([`super::flash`]), and the request costs one script call. The
//! acknowledgement follows the `XADD` in the same script, so every 201 has its stream entry;
//! durability from there on is Redis's AOF (README, "Durability") and the consumer's.

use uuid::Uuid;

use super::{
    IssueFailure, Issued, Issuer,
    flash::{self, CachedTerms},
    now,
};
use crate::{
    config::IssueStrategy,
    domain::coupon::{IssueError, IssuedCoupon, IssuedStatus},
    state::AppState,
    store::redis::coupons::{self as scripts, IssueReply},
};

/// Issues with the Redis script.
pub struct RedisLuaIssuer<'a> {
    state: &'a AppState,
}

impl<'a> RedisLuaIssuer<'a> {
    /// An issuer over the application's stores and caches.
    pub fn new(state: &'a AppState) -> Self {
        RedisLuaIssuer { state }
    }

    async fn terms(&self, coupon_id: i64) -> Result<CachedTerms, IssueFailure> {
        flash::terms_for(self.state, coupon_id).await.map_err(IssueFailure::Store)?.ok_or(IssueFailure::CouponNotFound)
    }
}

impl Issuer for RedisLuaIssuer<'_> {
    fn strategy(&self) -> IssueStrategy {
        IssueStrategy::RedisLua
    }

    async fn issue(&self, coupon_id: i64, user_id: i64) -> Result<Issued, IssueFailure> {
        let mut terms = self.terms(coupon_id).await?;
        let market = self.state.users.market(&self.state.db, user_id).await?.ok_or(IssueFailure::UserNotFound)?;
        // One retry: after hydrating a coupon whose keys vanished, or after reloading terms an
        // edit changed. A second miss in a row is a fault, not a race.
        for attempt in 0..2 {
            if market != terms.market {
                return Err(IssueFailure::MarketMismatch);
            }
            let at = now();
            let coupon = IssuedCoupon {
                id: Uuid::now_v7(),
                coupon_id,
                user_id,
                status: IssuedStatus::Available,
                issued_at: at,
                expires_at: terms.validity.expires_at(at),
            };
            let reply = scripts::issue(&self.state.redis, &coupon, at.timestamp_millis(), &terms.rev).await?;
            match reply {
                IssueReply::Issued { remaining } => return Ok(Issued { coupon, remaining }),
                IssueReply::NotActive => return Err(IssueError::NotActive.into()),
                IssueReply::AlreadyIssued => return Err(IssueError::AlreadyIssued.into()),
                IssueReply::SoldOut => return Err(IssueError::SoldOut.into()),
                IssueReply::NotHydrated | IssueReply::Stale if attempt == 0 => {
                    self.state.coupon_cache.forget(coupon_id);
                    terms = self.terms(coupon_id).await?;
                }
                IssueReply::NotHydrated | IssueReply::Stale => {}
            }
        }
        Err(IssueFailure::Store(anyhow::anyhow!("coupon {coupon_id}: Redis state changed under two attempts in a row")))
    }
}
