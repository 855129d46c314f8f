//! Postgres queries of coupon campaigns for their managers: the list with per-campaign counts,
//! and revoking issued coupons (AVAILABLE -> REVOKED, under the row locks payments take).

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use super::coupons::{CouponRow, StoredCoupon, coupon_columns};
use crate::domain::Market;

/// Where a campaign's issue window is at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowStatus {
    /// Issuing has not opened yet.
    Upcoming,
    /// Issuing is open.
    Issuing,
    /// Issuing has closed.
    Ended,
}

impl WindowStatus {
    fn as_str(self) -> &'static str {
        match self {
            WindowStatus::Upcoming => "UPCOMING",
            WindowStatus::Issuing => "ISSUING",
            WindowStatus::Ended => "ENDED",
        }
    }
}

/// A campaign with the counts of its issued coupons in Postgres.
#[derive(Debug, Clone)]
pub struct CampaignRow {
    /// The campaign.
    pub stored: StoredCoupon,
    /// Issued coupons stored.
    pub persisted: i64,
    /// Of those, spent on orders.
    pub used: i64,
    /// Of those, revoked.
    pub revoked: i64,
}

#[derive(FromRow)]
struct Row {
    #[sqlx(flatten)]
    coupon: CouponRow,
    persisted: i64,
    used: i64,
    revoked: i64,
}

const FILTER: &str = "($1::text IS NULL OR c.market = $1) AND CASE $2::text
        WHEN 'UPCOMING' THEN c.issue_starts_at > $3
        WHEN 'ISSUING' THEN c.issue_starts_at <= $3 AND c.issue_ends_at > $3
        WHEN 'ENDED' THEN c.issue_ends_at <= $3
        ELSE TRUE END";

/// A page of campaigns (optionally of one market and window status at `now`), newest first, with
/// their counts, and how many match.
pub async fn list(
    db: &PgPool,
    market: Option<Market>,
    status: Option<WindowStatus>,
    now: DateTime<Utc>,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<CampaignRow>, i64)> {
    let (market, status) = (market.map(Market::code), status.map(WindowStatus::as_str));
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT {}, coalesce(n.persisted, 0) AS persisted, coalesce(n.used, 0) AS used,
                coalesce(n.revoked, 0) AS revoked
           FROM coupons c
           LEFT JOIN LATERAL (
               SELECT count(*) AS persisted, count(*) FILTER (WHERE uc.status = 'USED') AS used,
                      count(*) FILTER (WHERE uc.status = 'REVOKED') AS revoked
               FROM user_coupons uc WHERE uc.coupon_id = c.id
           ) n ON TRUE
          WHERE {FILTER}
          ORDER BY c.id DESC LIMIT $4 OFFSET $5",
        coupon_columns!()
    ))
    .bind(market)
    .bind(status)
    .bind(now)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM coupons c WHERE {FILTER}"))
        .bind(market)
        .bind(status)
        .bind(now)
        .fetch_one(db)
        .await?;
    let items = rows
        .into_iter()
        .map(|r| {
            Ok(CampaignRow {
                stored: StoredCoupon::try_from(r.coupon)?,
                persisted: r.persisted,
                used: r.used,
                revoked: r.revoked,
            })
        })
        .collect::<sqlx::Result<_>>()?;
    Ok((items, total))
}

/// The statuses of those of `ids` that are coupons of `coupon_id`, their rows locked until the
/// transaction ends (as a payment locks the coupon it spends: the two are serialised).
pub async fn lock_statuses(tx: &mut PgConnection, coupon_id: i64, ids: &[Uuid]) -> sqlx::Result<Vec<(Uuid, String)>> {
    sqlx::query_as(
        "SELECT id, status FROM user_coupons WHERE coupon_id = $1 AND id = ANY($2) ORDER BY id FOR NO KEY UPDATE",
    )
    .bind(coupon_id)
    .bind(ids)
    .fetch_all(tx)
    .await
}

/// Revokes the locked AVAILABLE coupons among `ids`; answers those revoked. `issued_quantity` is
/// left as it is: a revoked coupon does not return to the first-come quantity.
pub async fn revoke(tx: &mut PgConnection, ids: &[Uuid], now: DateTime<Utc>) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "UPDATE user_coupons SET status = 'REVOKED', revoked_at = $2
          WHERE id = ANY($1) AND status = 'AVAILABLE' RETURNING id",
    )
    .bind(ids)
    .bind(now)
    .fetch_all(tx)
    .await
}
