//! Coupons for customers: the open campaigns (with V2's live counts), first-come issuing with
//! the configured design ([`strategies`]), and the coupons a user holds (persisted on read when
//! V2 admitted them moments ago).

pub mod strategies;

use std::{
    collections::HashMap,
    sync::{LazyLock, OnceLock, PoisonError, RwLock},
};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use self::strategies::{AnyIssuer, Issuer};
pub use self::strategies::{IssueFailure, Issued, LOCK_KEY_PREFIX};
use super::{AppState, Fault, fault_conversions};
use crate::{
    config::IssueStrategy,
    domain::{
        Currency, Market, Money, PageRequest,
        catalog::Localized,
        coupon::{DiscountType, IssueError, IssuedStatus},
    },
    store::pg::{
        coupons::{self, StoredCoupon},
        user_coupons::{self, HeldCoupon},
        users,
    },
};

/// `coupon_issue_total{strategy,outcome}`: issue attempts by design and outcome
/// (`issued`, `already_issued`, `sold_out`, `not_active`, `error`).
pub const COUPON_ISSUE_TOTAL: &str = "coupon_issue_total";
/// `coupon_remaining{coupon_id}`: what this process last saw left of a coupon.
pub const COUPON_REMAINING: &str = "coupon_remaining";
/// The `outcome` label values of [`COUPON_ISSUE_TOTAL`], in the contract's order.
pub const OUTCOMES: [&str; 5] = ["issued", "already_issued", "sold_out", "not_active", "error"];

/// Why a coupon read failed.
#[derive(Debug, thiserror::Error)]
pub enum CouponError {
    /// No coupon with this id.
    #[error("no such coupon")]
    CouponNotFound,
    /// No user with this id.
    #[error("no such user")]
    UserNotFound,
    /// A store failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

fault_conversions!(CouponError);

/// A campaign as stored, with the live remaining quantity of a hydrated coupon (V2): Redis
/// counts every admission at once, Postgres only once the consumer persisted it.
#[derive(Debug, Clone)]
pub struct LiveCoupon {
    /// The campaign as Postgres has it.
    pub stored: StoredCoupon,
    /// Redis's `(total, remaining)` when the coupon is hydrated (and Redis answered).
    pub live: Option<(u32, u32)>,
}

impl LiveCoupon {
    /// Still to be handed out: the live count when there is one, else Postgres's.
    pub fn remaining(&self) -> u32 {
        let inventory = &self.stored.coupon.inventory;
        self.live.map_or(inventory.remaining(), |(_, remaining)| remaining.min(inventory.total()))
    }
}

/// The coupons whose issue window is open now (optionally of one market), soonest-closing
/// first, with how many there are in all.
pub async fn list_open(
    state: &AppState,
    market: Option<Market>,
    page: PageRequest,
) -> Result<(Vec<LiveCoupon>, i64), CouponError> {
    let (rows, total) = coupons::list_issuing(&state.db, Utc::now(), market, page.size, page.offset()).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.coupon.id).collect();
    let live = live_counts(state, &ids).await;
    let items =
        rows.into_iter().map(|stored| LiveCoupon { live: live.get(&stored.coupon.id).copied(), stored }).collect();
    Ok((items, total))
}

/// One campaign, whether or not its window is open.
pub async fn get(state: &AppState, coupon_id: i64) -> Result<LiveCoupon, CouponError> {
    let stored = coupons::find(&state.db, coupon_id).await?.ok_or(CouponError::CouponNotFound)?;
    Ok(LiveCoupon { stored, live: live_of(state, coupon_id).await })
}

/// The live `(total, remaining)` of the hydrated coupons among `ids`. A read that only displays
/// them degrades to Postgres's (persisted) counters when Redis does not answer. Only `redis-lua`
/// issues through those counters: under a V1 design Postgres counts every issue, and a copy in
/// Redis (hydrated while a `redis-lua` instance ran) is stale by construction, so none is read.
pub async fn live_counts(state: &AppState, ids: &[i64]) -> HashMap<i64, (u32, u32)> {
    if state.config.issue_strategy != IssueStrategy::RedisLua {
        return HashMap::new();
    }
    state.coupon_admission.live(ids).await.unwrap_or_else(|e| {
        tracing::warn!(error.cause = %e, "live coupon counters unavailable; showing persisted ones");
        HashMap::new()
    })
}

/// The live `(total, remaining)` of one coupon if it is hydrated in Redis (see [`live_counts`]).
pub async fn live_of(state: &AppState, coupon_id: i64) -> Option<(u32, u32)> {
    live_counts(state, &[coupon_id]).await.get(&coupon_id).copied()
}

/// Issues one coupon to a user with the configured design and records the outcome metrics.
pub async fn issue(state: &AppState, coupon_id: i64, user_id: i64) -> Result<Issued, IssueFailure> {
    let issuer = AnyIssuer::for_state(state);
    let result = issuer.issue(coupon_id, user_id).await;
    let outcome = match &result {
        Ok(_) => 0,
        Err(IssueFailure::Rule(IssueError::AlreadyIssued)) => 1,
        Err(IssueFailure::Rule(IssueError::SoldOut)) => 2,
        Err(IssueFailure::Rule(IssueError::NotActive)) => 3,
        Err(_) => 4,
    };
    issue_counter(issuer.strategy(), outcome).increment(1);
    let remaining = match &result {
        Ok(issued) => Some(issued.remaining),
        Err(IssueFailure::Rule(IssueError::SoldOut)) => Some(0),
        _ => None,
    };
    if let Some(remaining) = remaining {
        set_remaining(coupon_id, remaining);
    }
    result
}

/// Describes the coupon metrics and creates `coupon_issue_total{strategy,outcome}` at zero for
/// `strategy` and every outcome (`coupon_remaining{coupon_id}` appears with a coupon's first issue).
pub fn register_metrics(strategy: IssueStrategy) {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_counter!(
        COUPON_ISSUE_TOTAL,
        Unit::Count,
        "Coupon issue attempts by strategy and outcome (issued, already_issued, sold_out, not_active, error)"
    );
    describe_gauge!(COUPON_REMAINING, Unit::Count, "Coupons left to issue, as this process last saw it");
    describe_counter!(
        strategies::COUPON_ISSUE_CONFLICTS_TOTAL,
        Unit::Count,
        "Optimistic-strategy version conflicts (each one a retry)"
    );
    for outcome in 0..OUTCOMES.len() {
        issue_counter(strategy, outcome).increment(0);
    }
}

/// The counter of one strategy and outcome (an index into [`OUTCOMES`]), built once: issuing is
/// the hottest path, and building a labelled key per request costs an allocation and a hash.
fn issue_counter(strategy: IssueStrategy, outcome: usize) -> &'static metrics::Counter {
    static COUNTERS: [[OnceLock<metrics::Counter>; OUTCOMES.len()]; IssueStrategy::ALL.len()] =
        [const { [const { OnceLock::new() }; OUTCOMES.len()] }; IssueStrategy::ALL.len()];
    let s = IssueStrategy::ALL.iter().position(|&s| s == strategy).expect("ALL lists every strategy");
    COUNTERS[s][outcome].get_or_init(|| {
        // A handle taken before the recorder exists would count into nothing, forever.
        crate::metrics::install();
        metrics::counter!(COUPON_ISSUE_TOTAL, "strategy" => strategy.as_str(), "outcome" => OUTCOMES[outcome])
    })
}

/// Sets `coupon_remaining{coupon_id}` through a handle cached per coupon, so an issue does not
/// format the id and build a key each time (one entry per coupon, as in the registry itself).
fn set_remaining(coupon_id: i64, remaining: u32) {
    static GAUGES: LazyLock<RwLock<HashMap<i64, metrics::Gauge>>> = LazyLock::new(Default::default);
    if let Some(gauge) = GAUGES.read().unwrap_or_else(PoisonError::into_inner).get(&coupon_id) {
        gauge.set(f64::from(remaining));
        return;
    }
    crate::metrics::install();
    let gauge = metrics::gauge!(COUPON_REMAINING, "coupon_id" => coupon_id.to_string());
    gauge.set(f64::from(remaining));
    GAUGES.write().unwrap_or_else(PoisonError::into_inner).insert(coupon_id, gauge);
}

/// A coupon a user holds, as of now.
#[derive(Debug, Clone)]
pub struct UserCoupon {
    /// The issued coupon's id.
    pub id: Uuid,
    /// The coupon campaign.
    pub coupon_id: i64,
    /// Coupon name in both languages.
    pub name: Localized,
    /// FIXED or PERCENT.
    pub discount_type: DiscountType,
    /// PERCENT: the percentage; FIXED: minor units of the coupon's currency.
    pub discount_value: i64,
    /// Cap of the discount, if any.
    pub max_discount: Option<Money>,
    /// Smallest order total it applies to.
    pub min_order_amount: Money,
    /// As of now: an AVAILABLE coupon past its expiry is EXPIRED.
    pub status: IssuedStatus,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// Usable until then.
    pub expires_at: DateTime<Utc>,
    /// When it was spent.
    pub used_at: Option<DateTime<Utc>>,
    /// The order it was spent on.
    pub order_id: Option<Uuid>,
}

impl UserCoupon {
    fn of(h: HeldCoupon, now: DateTime<Utc>) -> Result<UserCoupon, Fault> {
        let corrupt = |what: &str| Fault::invariant(format!("user_coupons row {}: bad {what}", h.id));
        let currency = Currency::parse(&h.currency).ok_or_else(|| corrupt("currency"))?;
        let status = IssuedStatus::parse(&h.status).ok_or_else(|| corrupt("status"))?;
        Ok(UserCoupon {
            id: h.id,
            coupon_id: h.coupon_id,
            discount_type: DiscountType::parse(&h.discount_type).ok_or_else(|| corrupt("discount_type"))?,
            name: Localized { ko: h.name, en: h.name_en },
            discount_value: h.discount_value,
            max_discount: h.max_discount.map(|m| Money::new(m, currency)),
            min_order_amount: Money::new(h.min_order_amount, currency),
            status: status.at(h.expires_at, now),
            issued_at: h.issued_at,
            expires_at: h.expires_at,
            used_at: h.used_at,
            order_id: h.order_id,
        })
    }
}

/// One page of the coupons a user holds, newest first, optionally of one status as of now, with
/// how many match in all. Coupons V2 admitted that the consumer has not persisted yet are
/// persisted first, so the page and the total are exact.
pub async fn list_held(
    state: &AppState,
    user_id: i64,
    status: Option<IssuedStatus>,
    page: PageRequest,
) -> Result<(Vec<UserCoupon>, i64), CouponError> {
    users::find(&state.db, user_id).await?.ok_or(CouponError::UserNotFound)?;
    state.coupon_admission.persist_held(user_id).await?;
    let now = Utc::now();
    let (rows, total) = user_coupons::list_for_user(&state.db, user_id, status, now, page.size, page.offset()).await?;
    let items = rows.into_iter().map(|h| UserCoupon::of(h, now)).collect::<Result<_, _>>()?;
    Ok((items, total))
}
