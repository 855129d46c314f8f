//! Coupon campaign management for marketing managers (`/admin/coupons`, api.md
//! "Administration"): create, edit within the rules of a started campaign, and watch the counters.

use axum::{Json, extract::State, http::StatusCode, middleware};
use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    amount::{NonNegativeAmount, PositiveAmount},
    auth::{Caller, Role, require_roles},
    coupons::CouponView,
    error::{ApiError, ErrorBody},
    extract::{self, AcceptLanguage},
    objects_only::Object,
};
use crate::{
    domain::{
        Currency, FieldError, Market,
        catalog::Localized,
        coupon::{CouponPatch, CouponTerms, DiscountType, Validity},
    },
    services::{AppState, admin::coupons},
};

/// The coupon admin routes (mounted under `/api`), behind the `marketing_manager` gate.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_coupon))
        .routes(routes!(update_coupon))
        .routes(routes!(coupon_stats))
        .route_layer(middleware::from_fn_with_state(&[Role::MarketingManager][..], require_roles))
}

/// A coupon name: one text for both languages, or `{ko, en}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CouponName {
    /// The same name in Korean and English.
    Plain(String),
    /// The name in each language.
    Localized(Object<LocalizedCouponName>),
}

/// A coupon name in each language.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalizedCouponName {
    /// Korean.
    pub ko: String,
    /// English.
    pub en: String,
}

impl CouponName {
    /// Both languages, trimmed (the domain refuses what is then empty or too long).
    fn localized(self) -> Localized {
        match self {
            CouponName::Plain(n) => Localized::from(n.trim()),
            CouponName::Localized(Object(n)) => Localized { ko: n.ko.trim().to_owned(), en: n.en.trim().to_owned() },
        }
    }
}

/// `name`: a text of 1-200 characters, or `{ko, en}` of 1-200 characters each.
fn coupon_name_schema() -> utoipa::openapi::Schema {
    use utoipa::openapi::{ObjectBuilder, OneOfBuilder, Type};
    let text = || ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(200));
    let localized = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("ko", text())
        .property("en", text())
        .required("ko")
        .required("en")
        .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)));
    OneOfBuilder::new()
        .item(text().description(Some("The same name in both languages")))
        .item(localized.description(Some("The name in Korean and in English")))
        .build()
        .into()
}

/// A new campaign. Give exactly one of `expires_at` and `valid_days`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCoupon {
    /// Display name, 1-200 characters without surrounding spaces: one text, or `{ko, en}`.
    #[schema(schema_with = coupon_name_schema)]
    pub name: CouponName,
    /// FIXED or PERCENT.
    pub discount_type: DiscountType,
    /// PERCENT: 1-100; FIXED: minor units, greater than 0.
    #[schema(minimum = 1)]
    pub discount_value: i64,
    /// Cap of the discount (at least 1), if any.
    pub max_discount: Option<PositiveAmount>,
    /// Smallest order total (default 0).
    pub min_order_amount: Option<NonNegativeAmount>,
    /// KR or US; the coupon's currency is the market's.
    pub market: Market,
    /// Optional; if given, must be the market's currency.
    pub currency: Option<Currency>,
    /// How many can be issued (> 0).
    #[schema(minimum = 1, maximum = 2147483647)]
    pub total_quantity: i64,
    /// Issuing opens (inclusive).
    pub issue_starts_at: DateTime<Utc>,
    /// Issuing closes (exclusive); after the start and in the future.
    pub issue_ends_at: DateTime<Utc>,
    /// Fixed expiry of issued coupons; not before `issue_ends_at`.
    pub expires_at: Option<DateTime<Utc>>,
    /// Days an issued coupon stays valid (1-3650).
    #[schema(minimum = 1, maximum = 3650)]
    pub valid_days: Option<i64>,
    /// Only these (existing) products qualify: 1-1000 ids.
    #[schema(schema_with = product_ids_schema)]
    pub product_ids: Option<Vec<i64>>,
    /// Only these categories qualify: 1-100 names of 1-100 characters.
    #[schema(schema_with = categories_schema)]
    pub categories: Option<Vec<String>>,
}

/// The new campaign's id.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedCoupon {
    /// Coupon id.
    pub id: i64,
}

fn validity(expires_at: Option<DateTime<Utc>>, valid_days: Option<i64>) -> Result<Option<Validity>, FieldError> {
    match (expires_at, valid_days) {
        (Some(_), Some(_)) => Err(FieldError {
            field: "expires_at".into(),
            reason: "give either expires_at or valid_days, not both".into(),
        }),
        (Some(at), None) => Ok(Some(Validity::Until(at.trunc_subsecs(6)))),
        // Out-of-range days become 0 or u32::MAX, which the domain's 1..=3650 rule refuses.
        (None, Some(d)) => Ok(Some(Validity::Days(u32::try_from(d).unwrap_or(if d < 0 { 0 } else { u32::MAX })))),
        (None, None) => Ok(None),
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
    caller: Caller,
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
        name: body.name.localized(),
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
    let id = coupons::create(&state, &caller, terms, body.total_quantity).await?;
    Ok((StatusCode::CREATED, Json(CreatedCoupon { id })))
}

/// A nullable array of `min..=max` items of `item`.
fn bounded_array(item: utoipa::openapi::ObjectBuilder, min: usize, max: usize) -> utoipa::openapi::Array {
    use utoipa::openapi::{ArrayBuilder, Type, schema::SchemaType};
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(item)
        .min_items(Some(min))
        .max_items(Some(max))
        .build()
}

/// `product_ids`: 1-1000 positive ids, or null.
fn product_ids_schema() -> utoipa::openapi::Array {
    let id = utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::Integer).minimum(Some(1));
    bounded_array(id, 1, 1000)
}

/// `categories`: 1-100 names of 1-100 characters, or null.
fn categories_schema() -> utoipa::openapi::Array {
    let name = utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .min_length(Some(1))
        .max_length(Some(100));
    bounded_array(name, 1, 100)
}

/// `Some(value)` for a field that is present, even as `null` (which clears it).
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// An edit: only the fields given change. Once issuing has started, only a larger
/// `total_quantity` or an earlier (not past) `issue_ends_at` is accepted.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCoupon {
    /// New name: one text, or `{ko, en}`.
    #[schema(schema_with = coupon_name_schema)]
    pub name: Option<CouponName>,
    /// New discount type.
    pub discount_type: Option<DiscountType>,
    /// New discount value.
    #[schema(minimum = 1)]
    pub discount_value: Option<i64>,
    /// New cap; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<PositiveAmount>)]
    pub max_discount: Option<Option<PositiveAmount>>,
    /// New minimum order total.
    pub min_order_amount: Option<NonNegativeAmount>,
    /// New market.
    pub market: Option<Market>,
    /// New total; never below what was issued.
    #[schema(minimum = 1, maximum = 2147483647)]
    pub total_quantity: Option<i64>,
    /// New window start.
    pub issue_starts_at: Option<DateTime<Utc>>,
    /// New window end.
    pub issue_ends_at: Option<DateTime<Utc>>,
    /// New fixed expiry (replaces `valid_days`).
    pub expires_at: Option<DateTime<Utc>>,
    /// New validity in days (replaces `expires_at`), 1-3650.
    #[schema(minimum = 1, maximum = 3650)]
    pub valid_days: Option<i64>,
    /// New product restriction (1-1000 ids); `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = product_ids_schema)]
    pub product_ids: Option<Option<Vec<i64>>>,
    /// New category restriction (1-100 names of 1-100 characters); `null` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = categories_schema)]
    pub categories: Option<Option<Vec<String>>>,
}

impl UpdateCoupon {
    fn into_patch(self, current_market: Market) -> Result<CouponPatch, FieldError> {
        let currency = self.market.unwrap_or(current_market).currency();
        Ok(CouponPatch {
            name: self.name.map(CouponName::localized),
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
    caller: Caller,
    accept: AcceptLanguage,
    extract::Path(coupon_id): extract::Path<i64>,
    extract::Json(body): extract::Json<UpdateCoupon>,
) -> Result<Json<CouponView>, ApiError> {
    let edited = coupons::update(&state, &caller, coupon_id, |market| body.into_patch(market)).await?;
    Ok(Json(CouponView::of(&edited, accept.lang())))
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
    /// Revoked (`POST /admin/coupons/{id}/revoke`); still counted in `issued`.
    pub revoked: i64,
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
    let c = coupons::stats(&state, coupon_id).await?;
    Ok(Json(CouponStatsView {
        coupon_id,
        total_quantity: c.total,
        issued: c.issued,
        persisted: c.persisted,
        used: c.used,
        revoked: c.revoked,
        remaining: c.total - c.issued,
    }))
}
