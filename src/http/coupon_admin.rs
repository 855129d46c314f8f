//! Coupon campaign management for marketing managers (`/admin/coupons`, api.md
//! "Administration"): create, edit within the rules of a started campaign, and watch the counters.

use axum::{Json, extract::State, http::StatusCode, middleware};
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use sqlx::Connection;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::{Role, require_roles},
    coupons::{CouponView, live_of},
    error::{ApiError, ErrorBody, ErrorCode},
    extract,
};
use crate::{
    admission::coupons::terms_of,
    config::IssueStrategy,
    domain::{
        Currency, Market, Money,
        coupon::{Coupon, CouponPatch, CouponTerms, DiscountType, Invalid, Inventory, PatchError, Validity},
    },
    state::AppState,
    store::{
        pg::coupons,
        redis::coupons::{self as flash, AdjustReply},
    },
};

/// The coupon admin routes (mounted under `/api`), behind the `marketing_manager` gate.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_coupon))
        .routes(routes!(update_coupon))
        .routes(routes!(coupon_stats))
        .route_layer(middleware::from_fn_with_state(&[Role::MarketingManager][..], require_roles))
}

/// An amount: minor units of the coupon's currency, or a Money object in that currency.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum AmountInput {
    /// Minor units (KRW: won, USD: cents).
    Minor(i64),
    /// `{"amount": 5000, "currency": "KRW"}`.
    Money(Money),
}

impl AmountInput {
    fn minor(self, field: &'static str, currency: Currency) -> Result<i64, ApiError> {
        match self {
            AmountInput::Minor(a) => Ok(a),
            AmountInput::Money(m) if m.currency == currency => Ok(m.amount),
            AmountInput::Money(_) => Err(ApiError::validation(field, format!("must be in {}", currency.code()))),
        }
    }
}

/// A new campaign. Give exactly one of `expires_at` and `valid_days`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCoupon {
    /// Display name, 1-200 characters.
    pub name: String,
    /// FIXED or PERCENT.
    pub discount_type: DiscountType,
    /// PERCENT: 1-100; FIXED: minor units, greater than 0.
    pub discount_value: i64,
    /// Cap of the discount (> 0), if any.
    pub max_discount: Option<AmountInput>,
    /// Smallest order total (default 0).
    pub min_order_amount: Option<AmountInput>,
    /// KR or US; the coupon's currency is the market's.
    pub market: Market,
    /// Optional; if given, must be the market's currency.
    pub currency: Option<Currency>,
    /// How many can be issued (> 0).
    pub total_quantity: i64,
    /// Issuing opens (inclusive).
    pub issue_starts_at: DateTime<Utc>,
    /// Issuing closes (exclusive); after the start and in the future.
    pub issue_ends_at: DateTime<Utc>,
    /// Fixed expiry of issued coupons; not before `issue_ends_at`.
    pub expires_at: Option<DateTime<Utc>>,
    /// Days an issued coupon stays valid (1-3650).
    pub valid_days: Option<i64>,
    /// Only these (existing) products qualify.
    pub product_ids: Option<Vec<i64>>,
    /// Only these categories qualify.
    pub categories: Option<Vec<String>>,
}

/// The new campaign's id.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedCoupon {
    /// Coupon id.
    pub id: i64,
}

fn validity(expires_at: Option<DateTime<Utc>>, valid_days: Option<i64>) -> Result<Option<Validity>, ApiError> {
    match (expires_at, valid_days) {
        (Some(_), Some(_)) => Err(ApiError::validation("expires_at", "give either expires_at or valid_days, not both")),
        (Some(at), None) => Ok(Some(Validity::Until(at.trunc_subsecs(6)))),
        // Out-of-range days become 0 or u32::MAX, which the domain's 1..=3650 rule refuses.
        (None, Some(d)) => Ok(Some(Validity::Days(u32::try_from(d).unwrap_or(if d < 0 { 0 } else { u32::MAX })))),
        (None, None) => Ok(None),
    }
}

fn invalid(e: Invalid) -> ApiError {
    ApiError::validation(e.field, e.reason)
}

async fn check_products(state: &AppState, ids: Option<&[i64]>) -> Result<(), ApiError> {
    match ids {
        Some(ids) if !coupons::products_exist(&state.db, ids).await? => {
            Err(ApiError::validation("product_ids", "names a product that does not exist"))
        }
        _ => Ok(()),
    }
}

/// Creates a campaign (`marketing_manager`).
#[utoipa::path(
    post, path = "/admin/coupons", tag = "admin", request_body = CreateCoupon, security(("bearer" = [])),
    responses(
        (status = 201, body = CreatedCoupon),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
)]
async fn create_coupon(
    State(state): State<AppState>,
    extract::Json(body): extract::Json<CreateCoupon>,
) -> Result<(StatusCode, Json<CreatedCoupon>), ApiError> {
    let currency = body.market.currency();
    if body.currency.is_some_and(|c| c != currency) {
        return Err(ApiError::validation(
            "currency",
            format!("must be {} for market {}", currency.code(), body.market.code()),
        ));
    }
    let validity = validity(body.expires_at, body.valid_days)?
        .ok_or_else(|| ApiError::validation("expires_at", "give either expires_at or valid_days"))?;
    let terms = CouponTerms {
        name: body.name.trim().to_owned(),
        discount_type: body.discount_type,
        discount_value: body.discount_value,
        max_discount: body.max_discount.map(|m| m.minor("max_discount", currency)).transpose()?,
        min_order_amount: body.min_order_amount.map_or(Ok(0), |m| m.minor("min_order_amount", currency))?,
        market: body.market,
        // Stored at microsecond precision: what is answered later is what was given.
        issue_starts_at: body.issue_starts_at.trunc_subsecs(6),
        issue_ends_at: body.issue_ends_at.trunc_subsecs(6),
        validity,
        product_ids: body.product_ids,
        categories: body.categories,
    };
    let inventory = Coupon::validate_new(&terms, body.total_quantity, Utc::now()).map_err(invalid)?;
    check_products(&state, terms.product_ids.as_deref()).await?;
    let id = coupons::insert(&state.db, &terms, inventory).await?;
    tracing::info!(coupon.id = id, coupon.total = inventory.total(), "coupon campaign created");
    if state.config.issue_strategy == IssueStrategy::RedisLua {
        // Hydrated now so the sale's first requests find it ready; should Redis fail here, the
        // first issue request hydrates it instead.
        if let Err(e) = state.coupon_admission.hydrate(id).await {
            tracing::warn!(coupon.id = id, error.cause = %format!("{e:#}"), "coupon not hydrated at creation");
        }
    }
    Ok((StatusCode::CREATED, Json(CreatedCoupon { id })))
}

/// `Some(value)` for a field that is present, even as `null` (which clears it).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// An edit: only the fields given change. Once issuing has started, only a larger
/// `total_quantity` or an earlier (not past) `issue_ends_at` is accepted.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCoupon {
    /// New name.
    pub name: Option<String>,
    /// New discount type.
    pub discount_type: Option<DiscountType>,
    /// New discount value.
    pub discount_value: Option<i64>,
    /// New cap; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<AmountInput>)]
    pub max_discount: Option<Option<AmountInput>>,
    /// New minimum order total.
    pub min_order_amount: Option<AmountInput>,
    /// New market.
    pub market: Option<Market>,
    /// New total; never below what was issued.
    pub total_quantity: Option<i64>,
    /// New window start.
    pub issue_starts_at: Option<DateTime<Utc>>,
    /// New window end.
    pub issue_ends_at: Option<DateTime<Utc>>,
    /// New fixed expiry (replaces `valid_days`).
    pub expires_at: Option<DateTime<Utc>>,
    /// New validity in days (replaces `expires_at`).
    pub valid_days: Option<i64>,
    /// New product restriction; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<i64>>)]
    pub product_ids: Option<Option<Vec<i64>>>,
    /// New category restriction; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub categories: Option<Option<Vec<String>>>,
}

impl UpdateCoupon {
    fn into_patch(self, current_market: Market) -> Result<CouponPatch, ApiError> {
        let currency = self.market.unwrap_or(current_market).currency();
        Ok(CouponPatch {
            name: self.name,
            discount_type: self.discount_type,
            discount_value: self.discount_value,
            max_discount: self
                .max_discount
                .map(|m| m.map(|a| a.minor("max_discount", currency)).transpose())
                .transpose()?,
            min_order_amount: self.min_order_amount.map(|a| a.minor("min_order_amount", currency)).transpose()?,
            market: self.market,
            total_quantity: self.total_quantity,
            issue_starts_at: self.issue_starts_at.map(|t| t.trunc_subsecs(6)),
            issue_ends_at: self.issue_ends_at.map(|t| t.trunc_subsecs(6)),
            validity: validity(self.expires_at, self.valid_days)?,
            product_ids: self.product_ids,
            categories: self.categories,
        })
    }
}

/// Edits a campaign (`marketing_manager`); answers the coupon as it now is.
#[utoipa::path(
    patch, path = "/admin/coupons/{coupon_id}", tag = "admin", request_body = UpdateCoupon,
    params(("coupon_id" = i64, Path, description = "Coupon id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = CouponView),
        (status = 400, body = ErrorBody, description = "COUPON_UPDATE_NOT_ALLOWED once issuing has started; VALIDATION_ERROR"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
    ),
)]
async fn update_coupon(
    State(state): State<AppState>,
    extract::Path(coupon_id): extract::Path<i64>,
    extract::Json(body): extract::Json<UpdateCoupon>,
) -> Result<Json<CouponView>, ApiError> {
    let mut conn = state.db.acquire().await?;
    let mut tx = conn.begin().await?;
    // The row lock orders this edit with issuers: pessimistic ones wait, the others see the
    // version move and re-check against the edited coupon.
    let mut stored =
        coupons::find_for_update(&mut tx, coupon_id).await?.ok_or_else(|| ApiError::new(ErrorCode::CouponNotFound))?;
    // V2: Redis has admitted issues Postgres has not persisted yet; "started" and "never below
    // what was issued" count those too.
    // Not degraded: the edit must see Redis's admissions (and will write there).
    let live = flash::live(&state.redis, &[coupon_id]).await?.get(&coupon_id).copied();
    if let Some((total, remaining)) = live {
        let admitted = total.saturating_sub(remaining).max(stored.coupon.inventory.used());
        let inventory = &mut stored.coupon.inventory;
        *inventory = Inventory::new(inventory.total(), admitted.min(inventory.total())).unwrap_or(*inventory);
    }
    let patch = body.into_patch(stored.coupon.terms.market)?;
    let edited = stored.coupon.patched(&patch, Utc::now()).map_err(|e| match e {
        PatchError::NotAllowed { field } => {
            ApiError::new(ErrorCode::CouponUpdateNotAllowed).with_details(serde_json::json!({ "field": field }))
        }
        PatchError::Invalid(e) => invalid(e),
    })?;
    if edited != stored.coupon {
        if edited.terms.product_ids != stored.coupon.terms.product_ids {
            check_products(&state, edited.terms.product_ids.as_deref()).await?;
        }
        coupons::update(&mut tx, &edited).await?;
        let terms = terms_of(&edited);
        if live.is_some()
            && let AdjustReply::BelowIssued { admitted } = state.coupon_admission.adjust(coupon_id, &terms).await?
        {
            // Issued meanwhile: the row lock does not hold the Redis script back. Nothing is
            // committed; Redis is unchanged.
            return Err(ApiError::new(ErrorCode::CouponUpdateNotAllowed)
                .with_details(serde_json::json!({ "field": "total_quantity", "issued": admitted })));
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
        state.coupon_admission.forget(coupon_id);
        tracing::info!(coupon.id = coupon_id, "coupon campaign edited");
        stored.coupon = edited;
    }
    Ok(Json(CouponView::from(&stored).with_live(live_of(&state, coupon_id).await)))
}

/// The counters of a campaign.
#[derive(Debug, Serialize, ToSchema)]
pub struct CouponStatsView {
    /// Coupon id.
    pub coupon_id: i64,
    /// Planned quantity.
    pub total_quantity: i64,
    /// Acknowledged issues (V2: counted in Redis the moment they are admitted).
    pub issued: i64,
    /// Issued coupons stored in the database (V1: always equal to `issued`; V2: catches up as
    /// the consumer persists the stream).
    pub persisted: i64,
    /// Spent on orders.
    pub used: i64,
    /// Still to be issued.
    pub remaining: i64,
}

/// A campaign's counters (`marketing_manager`).
#[utoipa::path(
    get, path = "/admin/coupons/{coupon_id}/stats", tag = "admin",
    params(("coupon_id" = i64, Path, description = "Coupon id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = CouponStatsView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
)]
async fn coupon_stats(
    State(state): State<AppState>,
    extract::Path(coupon_id): extract::Path<i64>,
) -> Result<Json<CouponStatsView>, ApiError> {
    let s = coupons::stats(&state.db, coupon_id).await?.ok_or_else(|| ApiError::new(ErrorCode::CouponNotFound))?;
    let (total, mut issued) = (i64::from(s.total_quantity), i64::from(s.issued));
    // V2: issued counts every admission in Redis; persisted is what Postgres holds so far.
    if let Some((live_total, remaining)) = live_of(&state, coupon_id).await {
        issued = i64::from(live_total) - i64::from(remaining);
    }
    Ok(Json(CouponStatsView {
        coupon_id,
        total_quantity: total,
        issued,
        persisted: s.persisted,
        used: s.used,
        remaining: total - issued,
    }))
}
