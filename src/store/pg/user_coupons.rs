//! Postgres queries of issued coupons (`user_coupons`) and of the issue path itself.
//!
//! The issue strategies (`crate::issue`) compose these: a snapshot of everything the rules need
//! in one round trip, the insert that the `UNIQUE (coupon_id, user_id)` index guards, and the
//! counter updates, plain or version-checked.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use super::coupons::{CouponRow, StoredCoupon, coupon_columns};
use crate::domain::{
    Market,
    coupon::{IssuedCoupon, IssuedStatus},
};

/// What the issue rules need, read together: the coupon, whether the user already holds one,
/// and the user's market (`None` when the user does not exist).
#[derive(Debug, Clone)]
pub struct IssueSnapshot {
    /// The coupon and its version.
    pub stored: StoredCoupon,
    /// Whether `user_coupons` already has a row for this user and coupon.
    pub already_holds: bool,
    /// The user's market, if the user exists.
    pub user_market: Option<Market>,
}

#[derive(FromRow)]
struct SnapshotRow {
    #[sqlx(flatten)]
    coupon: CouponRow,
    already_holds: bool,
    user_market: Option<String>,
}

macro_rules! snapshot_query {
    ($lock:literal) => {
        concat!(
            "SELECT ",
            coupon_columns!(),
            ", EXISTS (SELECT 1 FROM user_coupons uc WHERE uc.coupon_id = c.id AND uc.user_id = $2) AS already_holds,
               (SELECT u.market FROM users u WHERE u.id = $2) AS user_market
             FROM coupons c WHERE c.id = $1",
            $lock
        )
    };
}

/// Reads the snapshot without locking; `None` when the coupon does not exist.
pub async fn snapshot(conn: &mut PgConnection, coupon_id: i64, user_id: i64) -> sqlx::Result<Option<IssueSnapshot>> {
    let row: Option<SnapshotRow> =
        sqlx::query_as(snapshot_query!("")).bind(coupon_id).bind(user_id).fetch_optional(conn).await?;
    row.map(into_snapshot).transpose()
}

/// Reads the snapshot and locks the coupon row until the transaction ends: every other issuer of
/// this coupon waits here, so what is read stays true until commit.
pub async fn snapshot_for_update(
    tx: &mut PgConnection,
    coupon_id: i64,
    user_id: i64,
) -> sqlx::Result<Option<IssueSnapshot>> {
    let row: Option<SnapshotRow> =
        sqlx::query_as(snapshot_query!(" FOR UPDATE")).bind(coupon_id).bind(user_id).fetch_optional(tx).await?;
    row.map(into_snapshot).transpose()
}

fn into_snapshot(r: SnapshotRow) -> sqlx::Result<IssueSnapshot> {
    let user_market = match r.user_market {
        Some(m) => Some(Market::parse(&m).ok_or_else(|| sqlx::Error::Decode("users.market".into()))?),
        None => None,
    };
    Ok(IssueSnapshot { stored: StoredCoupon::try_from(r.coupon)?, already_holds: r.already_holds, user_market })
}

/// Stores an issued coupon; `false` when the user already holds this coupon. `ON CONFLICT DO
/// NOTHING` waits for a concurrent insert by the same user and then reports it, without aborting
/// the transaction as a unique violation would.
pub async fn insert(tx: &mut PgConnection, issued: &IssuedCoupon) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "INSERT INTO user_coupons (id, coupon_id, user_id, status, issued_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (coupon_id, user_id) DO NOTHING",
    )
    .bind(issued.id)
    .bind(issued.coupon_id)
    .bind(issued.user_id)
    .bind(issued.status.as_str())
    .bind(issued.issued_at)
    .bind(issued.expires_at)
    .execute(tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Counts one more issued; `false` when none is left. The condition repeats the rule in SQL so
/// that even a strategy whose lock failed cannot over-issue (the CHECK constraint is the last net).
pub async fn count_issue(tx: &mut PgConnection, coupon_id: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE coupons SET issued_quantity = issued_quantity + 1, version = version + 1, updated_at = now()
          WHERE id = $1 AND issued_quantity < total_quantity",
    )
    .bind(coupon_id)
    .execute(tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Counts one more issued only if the row is still at `version` (nobody issued or edited since
/// it was read); `false` on a conflict or when none is left.
pub async fn count_issue_at_version(tx: &mut PgConnection, coupon_id: i64, version: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE coupons SET issued_quantity = issued_quantity + 1, version = version + 1, updated_at = now()
          WHERE id = $1 AND version = $2 AND issued_quantity < total_quantity",
    )
    .bind(coupon_id)
    .bind(version)
    .execute(tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// An issued coupon with what its holder needs to know about the coupon.
#[derive(Debug, Clone, FromRow)]
pub struct HeldCoupon {
    /// The issued coupon's id.
    pub id: Uuid,
    /// The coupon.
    pub coupon_id: i64,
    /// Coupon name in Korean.
    pub name: String,
    /// Coupon name in English.
    pub name_en: String,
    /// FIXED or PERCENT.
    pub discount_type: String,
    /// Minor units or percent.
    pub discount_value: i64,
    /// Cap in minor units.
    pub max_discount: Option<i64>,
    /// Minimum order total in minor units.
    pub min_order_amount: i64,
    /// Currency of the amounts.
    pub currency: String,
    /// Stored status (see [`IssuedStatus::at`] for what a reader sees).
    pub status: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// When it was spent.
    pub used_at: Option<DateTime<Utc>>,
    /// The order it was spent on.
    pub order_id: Option<Uuid>,
}

/// One page of a user's coupons, newest first, filtered by the status a reader sees at `now`
/// (an AVAILABLE row past its expiry counts as EXPIRED), and how many match in all.
pub async fn list_for_user(
    db: &sqlx::PgPool,
    user_id: i64,
    status: Option<IssuedStatus>,
    now: DateTime<Utc>,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<HeldCoupon>, i64)> {
    const FILTER: &str = "uc.user_id = $1 AND CASE $2::text
            WHEN 'AVAILABLE' THEN uc.status = 'AVAILABLE' AND uc.expires_at > $3
            WHEN 'EXPIRED' THEN uc.status = 'EXPIRED' OR (uc.status = 'AVAILABLE' AND uc.expires_at <= $3)
            WHEN 'USED' THEN uc.status = 'USED'
            WHEN 'REVOKED' THEN uc.status = 'REVOKED'
            ELSE TRUE END";
    let status = status.map(IssuedStatus::as_str);
    let rows: Vec<HeldCoupon> = sqlx::query_as(&format!(
        "SELECT uc.id, uc.coupon_id, c.name, COALESCE(c.name_en, c.name) AS name_en, c.discount_type, c.discount_value, c.max_discount, c.min_order_amount,
                c.currency, uc.status, uc.issued_at, uc.expires_at, uc.used_at, uc.order_id
           FROM user_coupons uc JOIN coupons c ON c.id = uc.coupon_id
          WHERE {FILTER}
          ORDER BY uc.issued_at DESC, uc.id DESC LIMIT $4 OFFSET $5"
    ))
    .bind(user_id)
    .bind(status)
    .bind(now)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM user_coupons uc WHERE {FILTER}"))
        .bind(user_id)
        .bind(status)
        .bind(now)
        .fetch_one(db)
        .await?;
    Ok((rows, total))
}
