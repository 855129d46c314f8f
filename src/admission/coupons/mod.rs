//! V2 coupon admission (`JUPANG_ISSUE_STRATEGY=redis-lua`): one Lua script decides and records an
//! issue atomically in Redis (`lua/issue_coupon.lua`: window, already held, stock, then `XADD` of
//! the issuance, `DECR`, `SADD`), and the stream consumer persists it into Postgres shortly after.
//!
//! No Postgres on the hot path: the user's existence and market come from the process's shared
//! [`UserMarkets`], the coupon's terms from the [`CouponTermsCache`], and a request costs one
//! script call. The acknowledgement follows the `XADD` in the same script, so every 201 has its
//! stream entry; durability from there on is Redis's AOF (README, "Durability") and the
//! consumer's.
//!
//! **Hydration** ([`hydrate`]: at creation, at start-up for every coupon not yet closed, and at
//! first use): the coupon's stream is read first, then its `user_coupons` rows, so an entry
//! persisted and trimmed in between is still seen (in Postgres). Holders = persisted users ∪
//! users of stream entries; `remaining = total - |holders|`. The result is published only if no
//! one published first (`lua/hydrate_coupon.lua`), so two instances starting together count once.
//!
//! **Read-your-writes** ([`persist`]). A payment (or a cart preview) naming a coupon that is not
//! in Postgres yet looks for it among the user's held records in Redis and persists it first,
//! with the very code the consumer uses ([`admitted_coupons::persist`], idempotent).
//! `GET /users/{id}/coupons` persists the user's not-yet-persisted coupons the same way before
//! reading ("persist on read"), so paging and totals stay exact.
//!
//! **Loser memory** ([`losers`]): once the script has refused a coupon as sold out or closed,
//! its losers are answered from memory, with no Redis call, until an edit's change notice.
//!
//! **Reconciliation** ([`reconcile`]) compares Redis with Postgres per coupon and repairs only
//! in the safe direction.
//!
//! [`admitted_coupons::persist`]: crate::store::pg::admitted_coupons::persist

pub mod hydrate;
pub mod losers;
pub mod persist;
pub mod reconcile;
pub mod terms_cache;

use std::{collections::HashMap, sync::Arc};

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use self::losers::Losers;
pub use self::terms_cache::{CachedTerms, CouponTermsCache, terms_of};
use super::user_markets::UserMarkets;
use crate::{
    domain::coupon::{IssueError, IssuedCoupon, IssuedStatus},
    store::{
        Fault, fault_conversions,
        redis::{
            RedisStore,
            coupons::{self, AdjustReply, IssueReply, IssuingTerms},
            notices::Notices,
        },
    },
};

/// Why the engine did not admit an issue.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// No coupon with this id.
    #[error("no such coupon")]
    CouponNotFound,
    /// No user with this id.
    #[error("no such user")]
    UserNotFound,
    /// The user's market is not the coupon's.
    #[error("the coupon belongs to another market")]
    MarketMismatch,
    /// A business rule said no (window, already held, sold out).
    #[error(transparent)]
    Rule(#[from] IssueError),
    /// A store failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

fault_conversions!(AdmitError);

/// The V2 coupon engine of one process: its stores, the terms cache and the shared user markets.
#[derive(Clone)]
pub struct CouponAdmission {
    db: PgPool,
    redis: RedisStore,
    terms: Arc<CouponTermsCache>,
    losers: Arc<Losers>,
    users: Arc<UserMarkets>,
    /// One restart repair at a time ([`CouponAdmission::rearm`]).
    rearming: Arc<tokio::sync::Mutex<()>>,
    /// For announcing hydrations (the consumers' cue to read a new stream).
    notices: Notices,
}

impl CouponAdmission {
    /// An engine over the stores; `users` is the process's shared user-market cache.
    pub fn new(db: PgPool, redis: RedisStore, users: Arc<UserMarkets>) -> CouponAdmission {
        let notices = Notices::new(&redis);
        CouponAdmission {
            db,
            redis,
            terms: Arc::default(),
            losers: Arc::default(),
            users,
            rearming: Arc::default(),
            notices,
        }
    }

    /// Issues one coupon to a user with the issue script: the coupon usable at once, persisted
    /// into Postgres by the consumer. Returns the coupon and how many are left.
    pub async fn issue(&self, coupon_id: i64, user_id: i64) -> Result<(IssuedCoupon, u32), AdmitError> {
        let mut terms = self.terms_for(coupon_id).await?.ok_or(AdmitError::CouponNotFound)?;
        let market = self.users.market(&self.db, user_id).await?.ok_or(AdmitError::UserNotFound)?;
        // One retry: after hydrating a coupon whose keys vanished, or after reloading terms an
        // edit changed. A second miss in a row is a fault, not a race. Re-arming a restarted
        // Redis takes one more.
        let (mut rearmed, mut reloaded) = (false, false);
        loop {
            if market != terms.market {
                return Err(AdmitError::MarketMismatch);
            }
            let at = now();
            let now_ms = at.timestamp_millis();
            if let Some(refusal) = self.losers.answer(coupon_id, user_id, now_ms) {
                return Err(refusal.into());
            }
            let epoch = self.losers.epoch();
            let coupon = IssuedCoupon {
                id: Uuid::now_v7(),
                coupon_id,
                user_id,
                status: IssuedStatus::Available,
                issued_at: at,
                expires_at: terms.validity.expires_at(at),
            };
            match coupons::issue(&self.redis, &coupon, now_ms, &terms.rev).await? {
                IssueReply::Issued { remaining } => return Ok((coupon, remaining)),
                IssueReply::NotActive { starts_ms, ends_ms } => {
                    self.losers.not_active(coupon_id, epoch, now_ms, starts_ms, ends_ms);
                    return Err(IssueError::NotActive.into());
                }
                IssueReply::AlreadyIssued => return Err(IssueError::AlreadyIssued.into()),
                IssueReply::SoldOut { starts_ms, ends_ms } => {
                    self.remember_sold_out(coupon_id, epoch, starts_ms, ends_ms).await;
                    return Err(IssueError::SoldOut.into());
                }
                IssueReply::ScriptMissing if !rearmed => {
                    rearmed = true;
                    self.rearm().await?;
                }
                IssueReply::NotHydrated | IssueReply::Stale if !reloaded => {
                    reloaded = true;
                    self.terms.forget(coupon_id);
                    terms = self.terms_for(coupon_id).await?.ok_or(AdmitError::CouponNotFound)?;
                }
                IssueReply::ScriptMissing | IssueReply::NotHydrated | IssueReply::Stale => {
                    let what = format!("coupon {coupon_id}: Redis state changed under two attempts in a row");
                    return Err(Fault::invariant(what).into());
                }
            }
        }
    }

    /// The restart fence: Redis answered `NOSCRIPT` for the issue script, so it restarted or
    /// failed over and may have lost its last writes. Every hydrated coupon is repaired from
    /// Postgres (holders put back, `remaining` lowered to match) before the script is loaded
    /// again; requests of this process wait for one repair, and another process that finds the
    /// script loaded knows the repair was done.
    async fn rearm(&self) -> Result<(), Fault> {
        let _one_at_a_time = self.rearming.lock().await;
        if coupons::armed(&self.redis).await? {
            return Ok(());
        }
        let (_, repaired) = reconcile::run(&self.db, &self.redis, true).await?;
        tracing::warn!(
            users_added = repaired.users_added,
            remaining_lowered = repaired.remaining_lowered,
            "Redis did not know the issue script (restart or failover): repaired from Postgres, re-armed"
        );
        coupons::arm(&self.redis).await?;
        Ok(())
    }

    /// Remembers a sold-out coupon with its holders (read now: with nothing left the set no
    /// longer grows). One request per coupon reads them; a failure only leaves it unremembered.
    async fn remember_sold_out(&self, coupon_id: i64, epoch: u64, starts_ms: i64, ends_ms: i64) {
        let Some(claim) = self.losers.claim(coupon_id) else { return };
        match coupons::holders(&self.redis, coupon_id).await {
            Ok(holders) => self.losers.sold_out(claim, epoch, starts_ms, ends_ms, holders),
            Err(e) => tracing::warn!(coupon.id = coupon_id, error.cause = %e, "sold-out coupon not remembered"),
        }
    }

    /// The live `(total, remaining)` of the hydrated coupons among `ids` (Redis counts every
    /// admission at once, Postgres only once it is persisted).
    pub async fn live(&self, ids: &[i64]) -> redis::RedisResult<HashMap<i64, (u32, u32)>> {
        coupons::live(&self.redis, ids).await
    }

    /// Applies edited terms (built with [`terms_of`]) to a hydrated coupon's Redis state; nothing
    /// happens when it is not hydrated.
    pub async fn adjust(&self, coupon_id: i64, terms: &IssuingTerms) -> redis::RedisResult<AdjustReply> {
        coupons::adjust(&self.redis, coupon_id, terms).await
    }

    /// Drops what this process knows of a coupon (`None`: of every coupon), its cached terms
    /// and remembered refusals: an edit changed it. Edits call it before acknowledging, and every
    /// instance on each [`Topic::Coupon`] notice.
    ///
    /// [`Topic::Coupon`]: crate::store::redis::notices::Topic::Coupon
    pub fn forget(&self, coupon_id: Option<i64>) {
        self.losers.forget(coupon_id);
        match coupon_id {
            Some(id) => self.terms.forget(id),
            None => self.terms.forget_all(),
        }
    }
}

/// Now, at the database's precision (microseconds), so what is answered is what is stored.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}
