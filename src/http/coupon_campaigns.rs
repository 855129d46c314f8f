//! Coupon campaigns for their managers, part two (`marketing_manager`; `ops_admin` passes):
//! `GET /admin/coupons` with each campaign's counts, and `POST /admin/coupons/{coupon_id}/revoke`.
//! The rules are `services::admin::revocations`'.

use axum::{Json, extract::State, middleware};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::{Caller, Role, require_roles},
    coupons::CouponView,
    error::{ApiError, ErrorBody},
    extract,
};
use crate::{
    domain::{Market, PageRequest, text},
    services::{
        AppState,
        admin::revocations::{self, WindowStatus},
        coupons::LiveCoupon,
    },
};

/// The routes (mounted under `/api`), behind the `marketing_manager` gate.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_campaigns))
        .routes(routes!(revoke))
        .route_layer(middleware::from_fn_with_state(&[Role::MarketingManager][..], require_roles))
}

/// Where a campaign's issue window is now.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum CampaignStatus {
    /// Issuing has not opened yet.
    Upcoming,
    /// Issuing is open.
    Issuing,
    /// Issuing has closed.
    Ended,
}

impl From<CampaignStatus> for WindowStatus {
    fn from(s: CampaignStatus) -> Self {
        match s {
            CampaignStatus::Upcoming => WindowStatus::Upcoming,
            CampaignStatus::Issuing => WindowStatus::Issuing,
            CampaignStatus::Ended => WindowStatus::Ended,
        }
    }
}

/// Filters and page of the campaign list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CampaignQuery {
    /// Only campaigns whose window is in this state now (all when absent).
    pub status: Option<CampaignStatus>,
    /// Only campaigns of this market.
    pub market: Option<Market>,
    /// Page number, from 1.
    pub page: Option<i64>,
    /// Page size, 1-100 (default 20).
    pub size: Option<i64>,
}

/// Counts of a campaign's coupons.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignCounts {
    /// Acknowledged issues (V2: counted in Redis the moment they are admitted); revoked ones
    /// still count (they do not return to the first-come quantity).
    pub issued: i64,
    /// Issued coupons stored in the database.
    pub persisted: i64,
    /// Spent on orders.
    pub used: i64,
    /// Revoked.
    pub revoked: i64,
    /// Still to be issued.
    pub remaining: i64,
}

/// A campaign with its counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignView {
    /// The campaign, as `GET /coupons/{id}` shows it.
    #[serde(flatten)]
    pub coupon: CouponView,
    /// Where its window is now.
    pub status: CampaignStatus,
    /// Its counts.
    pub stats: CampaignCounts,
}

/// A page of campaigns.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignPage {
    /// Newest first.
    pub items: Vec<CampaignView>,
    /// Page number, from 1.
    pub page: i64,
    /// Page size.
    pub size: i64,
    /// Campaigns matching, on all pages.
    pub total: i64,
}

/// Every campaign with its counts, newest first (`marketing_manager`).
#[utoipa::path(
    get, path = "/admin/coupons", tag = "admin", params(CampaignQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = CampaignPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
)]
async fn list_campaigns(
    State(state): State<AppState>,
    accept: extract::AcceptLanguage,
    extract::Query(q): extract::Query<CampaignQuery>,
) -> Result<Json<CampaignPage>, ApiError> {
    let page = PageRequest::new(q.page, q.size)?;
    let (rows, total) = revocations::list(&state, q.market, q.status.map(Into::into), page).await?;
    let now = Utc::now();
    let items = rows
        .into_iter()
        .map(|s| {
            let t = &s.row.stored.coupon.terms;
            let status = if now < t.issue_starts_at {
                CampaignStatus::Upcoming
            } else if now < t.issue_ends_at {
                CampaignStatus::Issuing
            } else {
                CampaignStatus::Ended
            };
            let remaining = u32::try_from(s.remaining).unwrap_or(0);
            let total = s.row.stored.coupon.inventory.total();
            let live = LiveCoupon { stored: s.row.stored.clone(), live: Some((total, remaining)) };
            CampaignView {
                coupon: CouponView::of(&live, accept.lang()),
                status,
                stats: CampaignCounts {
                    issued: s.issued,
                    persisted: s.row.persisted,
                    used: s.row.used,
                    revoked: s.row.revoked,
                    remaining: s.remaining,
                },
            }
        })
        .collect();
    Ok(Json(CampaignPage { items, page: page.page, size: page.size, total }))
}

/// Which issued coupons to revoke, and why.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// User coupons of this campaign, 1-1000.
    #[schema(min_items = 1, max_items = 1000)]
    pub user_coupon_ids: Vec<Uuid>,
    /// Why, 1-500 characters, not only whitespace (trimmed); kept in the audit log.
    #[schema(min_length = 1, max_length = 500)]
    pub reason: String,
}

/// A user coupon left alone, with its status.
#[derive(Debug, Serialize, ToSchema)]
pub struct Unchanged {
    /// The user coupon.
    pub user_coupon_id: Uuid,
    /// Its status (`REVOKED` already, or `EXPIRED`).
    pub status: String,
}

/// What the revoke did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokeResult {
    /// The campaign.
    pub coupon_id: i64,
    /// Now `REVOKED`: they can no longer pay (`COUPON_REVOKED`).
    pub revoked: Vec<Uuid>,
    /// `USED` on an order: left alone.
    pub used: Vec<Uuid>,
    /// Neither AVAILABLE nor USED: left alone.
    pub unchanged: Vec<Unchanged>,
    /// Not coupons of this campaign.
    pub not_found: Vec<Uuid>,
    /// When.
    pub revoked_at: DateTime<Utc>,
}

/// Revokes issued coupons of a campaign: AVAILABLE ones become `REVOKED`, USED ones are left
/// alone and reported (`marketing_manager`). Revoked coupons do not return to the first-come
/// quantity.
#[utoipa::path(
    post, path = "/admin/coupons/{coupon_id}/revoke", tag = "admin", request_body = RevokeRequest,
    params(("coupon_id" = i64, Path, description = "Coupon id")),
    security(("bearer" = [])),
    responses(
        (status = 200, body = RevokeResult),
        (status = 400, description = "VALIDATION_ERROR (nothing changed)", body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "COUPON_NOT_FOUND", body = ErrorBody),
    ),
)]
async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    extract::Path(coupon_id): extract::Path<i64>,
    extract::Json(body): extract::Json<RevokeRequest>,
) -> Result<Json<RevokeResult>, ApiError> {
    if body.user_coupon_ids.is_empty() || body.user_coupon_ids.len() > 1000 {
        return Err(ApiError::validation("user_coupon_ids", "must name 1 to 1000 user coupons"));
    }
    let reason = text::required("reason", &body.reason, 500)?;
    let done = revocations::revoke(&state, &caller, coupon_id, &body.user_coupon_ids, &reason).await?;
    Ok(Json(RevokeResult {
        coupon_id,
        revoked: done.revoked,
        used: done.used,
        unchanged: done
            .unchanged
            .into_iter()
            .map(|(user_coupon_id, status)| Unchanged { user_coupon_id, status })
            .collect(),
        not_found: done.not_found,
        revoked_at: done.at,
    }))
}
