//! Coupon routes for customers: the open campaigns, first-come issuing, and the coupons a user
//! holds (api.md "Coupons"; seed 001 US-013, US-014).

use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::{Caller, UserScope},
    error::{ApiError, ErrorBody},
    extract::{self, AcceptLanguage},
    waiting_room::Pass,
};
use crate::{
    domain::{
        Lang, Market, Money, PageRequest,
        coupon::{DiscountType, IssuedStatus, Validity},
        waiting_room::{Event, EventKind},
    },
    services::{
        AppState,
        coupons::{self, LiveCoupon, UserCoupon},
        waiting_room,
    },
};

/// The customer-facing coupon routes (mounted under `/api`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_coupons))
        .routes(routes!(get_coupon))
        .routes(routes!(issue_coupon))
        .routes(routes!(list_user_coupons))
}

/// A coupon campaign as clients see it. Amounts are in the currency of the coupon's market;
/// unset optional fields are `null`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CouponView {
    /// Coupon id.
    pub id: i64,
    /// Display name in the caller's language (`Accept-Language`, else the caller's profile).
    pub name: String,
    /// FIXED or PERCENT.
    pub discount_type: DiscountType,
    /// PERCENT: the percentage (1-100); FIXED: minor units of the coupon's currency.
    pub discount_value: i64,
    /// Largest discount the coupon gives, if capped.
    pub max_discount: Option<Money>,
    /// Smallest order total it applies to.
    pub min_order_amount: Money,
    /// The only market whose users can get it.
    pub market: Market,
    /// Planned quantity.
    pub total_quantity: u32,
    /// Still to be handed out.
    pub remaining_quantity: u32,
    /// Issuing opens (inclusive).
    pub issue_starts_at: DateTime<Utc>,
    /// Issuing closes (exclusive).
    pub issue_ends_at: DateTime<Utc>,
    /// Fixed expiry of every issued coupon (`null` when `valid_days` is set).
    pub expires_at: Option<DateTime<Utc>>,
    /// Days an issued coupon stays valid from its issue (`null` when `expires_at` is set).
    pub valid_days: Option<u32>,
    /// Only these products qualify (`null`: any product).
    pub product_ids: Option<Vec<i64>>,
    /// Only these categories qualify (`null`: any category).
    pub categories: Option<Vec<String>>,
}

impl CouponView {
    /// A coupon as clients see it, its name in `lang`.
    pub(crate) fn of(live: &LiveCoupon, lang: Lang) -> CouponView {
        let s = &live.stored;
        let (t, currency) = (&s.coupon.terms, s.coupon.terms.currency());
        let (expires_at, valid_days) = match t.validity {
            Validity::Until(at) => (Some(at), None),
            Validity::Days(d) => (None, Some(d)),
        };
        CouponView {
            id: s.coupon.id,
            name: t.name.get(lang).to_owned(),
            discount_type: t.discount_type,
            discount_value: t.discount_value,
            max_discount: t.max_discount.map(|m| Money::new(m, currency)),
            min_order_amount: Money::new(t.min_order_amount, currency),
            market: t.market,
            total_quantity: s.coupon.inventory.total(),
            remaining_quantity: live.remaining(),
            issue_starts_at: t.issue_starts_at,
            issue_ends_at: t.issue_ends_at,
            expires_at,
            valid_days,
            product_ids: t.product_ids.clone(),
            categories: t.categories.clone(),
        }
    }
}

/// A page of coupon campaigns.
#[derive(Debug, Serialize, ToSchema)]
pub struct CouponPage {
    /// The coupons of this page.
    pub items: Vec<CouponView>,
    /// Page number, from 1.
    pub page: i64,
    /// Page size.
    pub size: i64,
    /// How many match in all.
    pub total: i64,
}

/// Paging and filter of the open campaigns.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CouponListQuery {
    /// Page number from 1 (default 1).
    pub page: Option<i64>,
    /// Page size 1-100 (default 20).
    pub size: Option<i64>,
    /// Only coupons of this market (default: every market).
    pub market: Option<Market>,
}

/// The coupons whose issue window is open now, soonest-closing first.
#[utoipa::path(
    get, path = "/coupons", tag = "coupons", params(CouponListQuery),
    responses((status = 200, body = CouponPage), (status = 400, body = ErrorBody)),
)]
async fn list_coupons(
    State(state): State<AppState>,
    accept: AcceptLanguage,
    extract::Query(q): extract::Query<CouponListQuery>,
) -> Result<Json<CouponPage>, ApiError> {
    let page = PageRequest::new(q.page, q.size)?;
    let (rows, total) = coupons::list_open(&state, q.market, page).await?;
    let items = rows.iter().map(|c| CouponView::of(c, accept.lang())).collect();
    Ok(Json(CouponPage { items, page: page.page, size: page.size, total }))
}

/// One coupon campaign, whether or not its window is open.
#[utoipa::path(
    get, path = "/coupons/{coupon_id}", tag = "coupons",
    params(("coupon_id" = i64, Path, description = "Coupon id")),
    responses((status = 200, body = CouponView), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
)]
async fn get_coupon(
    State(state): State<AppState>,
    accept: AcceptLanguage,
    extract::Path(coupon_id): extract::Path<i64>,
) -> Result<Json<CouponView>, ApiError> {
    Ok(Json(CouponView::of(&coupons::get(&state, coupon_id).await?, accept.lang())))
}

/// Who asks for a coupon.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRequest {
    /// Must be the token's subject.
    pub user_id: i64,
}

/// A coupon handed to a user.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedCouponView {
    /// The issued coupon's id (UUIDv7); give it at payment.
    pub user_coupon_id: Uuid,
    /// The coupon campaign.
    pub coupon_id: i64,
    /// The holder.
    pub user_id: i64,
    /// AVAILABLE.
    pub status: IssuedStatus,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// Usable until then.
    pub expires_at: DateTime<Utc>,
}

/// First come, first served, one per user. A 201 coupon is usable at once (V2: recorded in
/// Redis and persisted into Postgres by the consumer, or by the first request that needs it).
/// While the coupon's waiting room is enabled, the user's pass is required.
#[utoipa::path(
    post, path = "/coupons/{coupon_id}/issue", tag = "coupons", request_body = IssueRequest,
    params(("coupon_id" = i64, Path, description = "Coupon id"),
           ("X-Waiting-Room-Pass" = Option<String>, Header, max_length = 2048, pattern = "^[\\x20-\\x7e]*$",
            description = "The pass of the coupon's waiting room, when it has an enabled one")),
    security(("bearer" = [])),
    responses(
        (status = 201, body = IssuedCouponView),
        (status = 400, body = ErrorBody,
         description = "ALREADY_ISSUED, COUPON_SOLD_OUT (\"선착순 마감\"), COUPON_NOT_ACTIVE, MARKET_MISMATCH, VALIDATION_ERROR"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "FORBIDDEN, WAITING_ROOM_PASS_REQUIRED"),
        (status = 404, body = ErrorBody, description = "COUPON_NOT_FOUND, USER_NOT_FOUND"),
        (status = 409, body = ErrorBody, description = "CONCURRENCY_CONFLICT: contention; retry"),
    ),
)]
async fn issue_coupon(
    State(state): State<AppState>,
    caller: Caller,
    pass: Pass,
    extract::Path(coupon_id): extract::Path<i64>,
    extract::Json(body): extract::Json<IssueRequest>,
) -> Result<(StatusCode, Json<IssuedCouponView>), ApiError> {
    caller.ensure_is(body.user_id)?;
    let event = Event { kind: EventKind::Coupon, id: coupon_id };
    waiting_room::guard(&state, event, body.user_id, pass.value()?)?;
    let issued = coupons::issue(&state, coupon_id, body.user_id).await?.coupon;
    Ok((
        StatusCode::CREATED,
        Json(IssuedCouponView {
            user_coupon_id: issued.id,
            coupon_id: issued.coupon_id,
            user_id: issued.user_id,
            status: issued.status,
            issued_at: issued.issued_at,
            expires_at: issued.expires_at,
        }),
    ))
}

/// Filter and paging of a user's coupons.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserCouponQuery {
    /// AVAILABLE (usable now), USED, EXPIRED or REVOKED; every coupon when absent.
    pub status: Option<IssuedStatus>,
    /// Page number from 1 (default 1).
    pub page: Option<i64>,
    /// Page size 1-100 (default 20).
    pub size: Option<i64>,
}

/// A coupon a user holds.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserCouponView {
    /// The issued coupon's id.
    pub user_coupon_id: Uuid,
    /// The coupon campaign.
    pub coupon_id: i64,
    /// Coupon name in the caller's language.
    pub name: String,
    /// FIXED or PERCENT.
    pub discount_type: DiscountType,
    /// PERCENT: the percentage; FIXED: minor units of the coupon's currency.
    pub discount_value: i64,
    /// Cap of the discount, if any.
    pub max_discount: Option<Money>,
    /// Smallest order total it applies to.
    pub min_order_amount: Money,
    /// As of now: an AVAILABLE coupon past `expires_at` shows EXPIRED.
    pub status: IssuedStatus,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// Usable until then.
    pub expires_at: DateTime<Utc>,
    /// When it was spent (USED only).
    pub used_at: Option<DateTime<Utc>>,
    /// The order it was spent on (USED only).
    pub order_id: Option<Uuid>,
}

/// A page of a user's coupons.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserCouponPage {
    /// The coupons of this page, newest first.
    pub items: Vec<UserCouponView>,
    /// Page number, from 1.
    pub page: i64,
    /// Page size.
    pub size: i64,
    /// How many match in all.
    pub total: i64,
}

impl UserCouponView {
    fn of(c: UserCoupon, lang: Lang) -> Self {
        UserCouponView {
            user_coupon_id: c.id,
            coupon_id: c.coupon_id,
            name: c.name.get(lang).to_owned(),
            discount_type: c.discount_type,
            discount_value: c.discount_value,
            max_discount: c.max_discount,
            min_order_amount: c.min_order_amount,
            status: c.status,
            issued_at: c.issued_at,
            expires_at: c.expires_at,
            used_at: c.used_at,
            order_id: c.order_id,
        }
    }
}

/// The coupons a user holds, newest first; `status=AVAILABLE` lists only those usable now. A
/// coupon issued a moment ago (V2) is listed too: it is persisted on this read if the consumer
/// has not yet persisted it.
#[utoipa::path(
    get, path = "/users/{user_id}/coupons", tag = "coupons",
    params(("user_id" = i64, Path, description = "User id"), UserCouponQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, body = UserCouponPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "USER_NOT_FOUND"),
    ),
)]
async fn list_user_coupons(
    State(state): State<AppState>,
    scope: UserScope,
    accept: AcceptLanguage,
    extract::Query(q): extract::Query<UserCouponQuery>,
) -> Result<Json<UserCouponPage>, ApiError> {
    let page = PageRequest::new(q.page, q.size)?;
    let (rows, total) = coupons::list_held(&state, scope.user_id, q.status, page).await?;
    let items = rows.into_iter().map(|c| UserCouponView::of(c, accept.lang())).collect();
    Ok(Json(UserCouponPage { items, page: page.page, size: page.size, total }))
}
