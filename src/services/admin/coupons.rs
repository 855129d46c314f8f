//! Coupon campaigns for their managers: create, edit (keeping a hydrated coupon's Redis state in
//! step), and the counters.

use chrono::Utc;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::{
    admission::coupons::terms_of,
    auth::Caller,
    config::IssueStrategy,
    domain::{
        FieldError, Market,
        coupon::{Coupon, CouponPatch, CouponTerms, Invalid, Inventory, PatchError, Validity},
    },
    services::{
        AppState, Fault,
        audit::{self, Change},
        coupons::{LiveCoupon, live_of},
        fault_conversions,
    },
    store::{
        pg::coupons::{self, CouponStats},
        redis::{coupons::AdjustReply, notices::Topic},
    },
};

/// Why a campaign change was refused.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// No coupon with this id.
    #[error("no such coupon")]
    NotFound,
    /// A field of the terms breaks a rule.
    #[error("{} {}", .0.field, .0.reason)]
    Invalid(Invalid),
    /// A field of the request could not be read as terms (e.g. an amount in another currency).
    #[error("{} {}", .0.field, .0.reason)]
    Field(FieldError),
    /// `product_ids` names a product that does not exist.
    #[error("product_ids names a product that does not exist")]
    UnknownProduct,
    /// Issuing has started and this field may no longer change.
    #[error("{field} may no longer change")]
    NotAllowed {
        /// The field.
        field: &'static str,
    },
    /// The new total is below what was issued meanwhile (Redis admitted more).
    #[error("the total is below the {issued} already issued")]
    BelowIssued {
        /// Issued so far.
        issued: i64,
    },
    /// A store failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

fault_conversions!(CampaignError);

async fn check_products(state: &AppState, ids: Option<&[i64]>) -> Result<(), CampaignError> {
    match ids {
        Some(ids) if !coupons::products_exist(&state.db, ids).await? => Err(CampaignError::UnknownProduct),
        _ => Ok(()),
    }
}

/// A campaign's terms and total as the audit log keeps them.
fn audited(terms: &CouponTerms, total_quantity: u32) -> Value {
    let (expires_at, valid_days) = match terms.validity {
        Validity::Until(at) => (Some(at), None),
        Validity::Days(d) => (None, Some(d)),
    };
    json!({
        "name": { "ko": terms.name.ko, "en": terms.name.en }, "discount_type": terms.discount_type, "discount_value": terms.discount_value,
        "max_discount": terms.max_discount, "min_order_amount": terms.min_order_amount,
        "market": terms.market.code(), "total_quantity": total_quantity,
        "issue_starts_at": terms.issue_starts_at, "issue_ends_at": terms.issue_ends_at,
        "expires_at": expires_at, "valid_days": valid_days,
        "product_ids": terms.product_ids, "categories": terms.categories,
    })
}

/// The audit entry of a campaign change.
fn change(action: &'static str, coupon_id: i64, before: Option<Value>, after: Option<Value>) -> Change<'static> {
    Change { action, entity_type: audit::COUPON, entity_id: coupon_id.to_string(), before, after, reason: None }
}

/// Creates a campaign of `total_quantity` with `terms` for `actor` (audited); returns its id. With
/// V2 issuing it is hydrated at once, so the sale's first requests find it ready.
pub async fn create(
    state: &AppState,
    actor: &Caller,
    terms: CouponTerms,
    total_quantity: i64,
) -> Result<i64, CampaignError> {
    let inventory = Coupon::validate_new(&terms, total_quantity, Utc::now()).map_err(CampaignError::Invalid)?;
    check_products(state, terms.product_ids.as_deref()).await?;
    let mut tx = state.db.begin().await?;
    let id = coupons::insert(&mut *tx, &terms, inventory).await?;
    audit::record(&mut tx, actor, change("coupon.create", id, None, Some(audited(&terms, inventory.total())))).await?;
    tx.commit().await?;
    tracing::info!(coupon.id = id, coupon.total = inventory.total(), "coupon campaign created");
    if state.config.issue_strategy == IssueStrategy::RedisLua {
        // Should Redis fail here, the first issue request hydrates it instead.
        if let Err(e) = state.coupon_admission.hydrate(id).await {
            tracing::warn!(coupon.id = id, error.cause = %format!("{e:#}"), "coupon not hydrated at creation");
        }
    }
    Ok(id)
}

/// Edits a campaign for `actor` (audited) with the patch `patch` builds from its current market;
/// answers the coupon as it now is. Once issuing has started, only a larger total or an earlier
/// (not past) end passes. An edit that changes nothing writes nothing, and no audit entry.
pub async fn update(
    state: &AppState,
    actor: &Caller,
    coupon_id: i64,
    patch: impl FnOnce(Market) -> Result<CouponPatch, FieldError>,
) -> Result<LiveCoupon, CampaignError> {
    let mut conn = state.db.acquire().await?;
    let mut tx = conn.begin().await?;
    // The row lock orders this edit with issuers: pessimistic ones wait, the others see the
    // version move and re-check against the edited coupon.
    let mut stored = coupons::find_for_update(&mut tx, coupon_id).await?.ok_or(CampaignError::NotFound)?;
    // V2: Redis has admitted issues Postgres has not persisted yet; "started" and "never below
    // what was issued" count those too. Not degraded: the edit must see Redis's admissions (and
    // will write there).
    let live = state.coupon_admission.live(&[coupon_id]).await?.get(&coupon_id).copied();
    if let Some((total, remaining)) = live {
        let admitted = total.saturating_sub(remaining).max(stored.coupon.inventory.used());
        let inventory = &mut stored.coupon.inventory;
        *inventory = Inventory::new(inventory.total(), admitted.min(inventory.total())).unwrap_or(*inventory);
    }
    let patch = patch(stored.coupon.terms.market).map_err(CampaignError::Field)?;
    let edited = stored.coupon.patched(&patch, Utc::now()).map_err(|e| match e {
        PatchError::NotAllowed { field } => CampaignError::NotAllowed { field },
        PatchError::Invalid(e) => CampaignError::Invalid(e),
    })?;
    if edited != stored.coupon {
        if edited.terms.product_ids != stored.coupon.terms.product_ids {
            check_products(state, edited.terms.product_ids.as_deref()).await?;
        }
        coupons::update(&mut tx, &edited).await?;
        let (before, after) = (
            audited(&stored.coupon.terms, stored.coupon.inventory.total()),
            audited(&edited.terms, edited.inventory.total()),
        );
        audit::record(&mut tx, actor, change("coupon.update", coupon_id, Some(before), Some(after))).await?;
        let terms = terms_of(&edited);
        if live.is_some()
            && let AdjustReply::BelowIssued { admitted } = state.coupon_admission.adjust(coupon_id, &terms).await?
        {
            // Issued meanwhile: the row lock does not hold the Redis script back. Nothing is
            // committed; Redis is unchanged.
            return Err(CampaignError::BelowIssued { issued: admitted });
        }
        tx.commit().await?;
        // Again after the commit: a hydration that read the row before it (another process, at
        // first use) may have published the old terms in between. Re-applying is a no-op otherwise.
        match state.coupon_admission.adjust(coupon_id, &terms).await? {
            AdjustReply::BelowIssued { admitted } => {
                tracing::warn!(coupon.id = coupon_id, issued = admitted, "edited total below Redis admissions")
            }
            AdjustReply::NotHydrated | AdjustReply::Adjusted { .. } => {}
        }
        // Forgotten here before the answer, and in every other instance on the notice (within
        // its latency, or notices::CHECK_EVERY if it is lost). Unannounced, a raise could stay
        // unseen by the others' loser memory: a failure to announce is not acknowledged.
        state.coupon_admission.forget(Some(coupon_id));
        state.notices.publish(Topic::Coupon, Some(coupon_id)).await?;
        tracing::info!(coupon.id = coupon_id, "coupon campaign edited");
        stored.coupon = edited;
    }
    Ok(LiveCoupon { stored, live: live_of(state, coupon_id).await })
}

/// The counters of a campaign: issued counts every V2 admission in Redis at once, persisted is
/// what Postgres holds so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CampaignCounters {
    /// Planned quantity.
    pub total: i64,
    /// Acknowledged issues.
    pub issued: i64,
    /// Issued coupons stored in Postgres.
    pub persisted: i64,
    /// Spent on orders.
    pub used: i64,
    /// Revoked (still counted as issued).
    pub revoked: i64,
}

/// A campaign's counters.
pub async fn stats(state: &AppState, coupon_id: i64) -> Result<CampaignCounters, CampaignError> {
    let CouponStats { total_quantity, issued, persisted, used, revoked } =
        coupons::stats(&state.db, coupon_id).await?.ok_or(CampaignError::NotFound)?;
    let (total, mut issued) = (i64::from(total_quantity), i64::from(issued));
    if let Some((live_total, remaining)) = live_of(state, coupon_id).await {
        issued = i64::from(live_total) - i64::from(remaining);
    }
    Ok(CampaignCounters { total, issued, persisted, used, revoked })
}
