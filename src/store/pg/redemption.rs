//! Reading and redeeming a held coupon (`user_coupons` joined with its `coupons` rule) for the
//! shopping flow. Issuing coupons lives elsewhere; this module only uses the tables.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor};
use uuid::Uuid;

use crate::domain::{
    Market,
    discount::{DiscountKind, DiscountRule, HeldCoupon, UserCouponStatus},
};

/// A held coupon with the rule of its coupon.
#[derive(Debug, Clone)]
pub struct Redeemable {
    /// The user coupon's id.
    pub user_coupon_id: Uuid,
    /// The coupon (campaign) id.
    pub coupon_id: i64,
    /// Owner, status and expiry.
    pub held: HeldCoupon,
    /// The discount and its conditions.
    pub rule: DiscountRule,
}

#[derive(FromRow)]
struct Row {
    id: Uuid,
    coupon_id: i64,
    user_id: i64,
    status: String,
    expires_at: DateTime<Utc>,
    discount_type: String,
    discount_value: i64,
    max_discount: Option<i64>,
    min_order_amount: i64,
    market: String,
    product_ids: Option<Vec<i64>>,
    categories: Option<Vec<String>>,
}

impl Row {
    fn into_redeemable(self) -> Redeemable {
        let kind = if self.discount_type == "PERCENT" {
            DiscountKind::Percent { percent: self.discount_value, max_discount: self.max_discount }
        } else {
            DiscountKind::Fixed { amount: self.discount_value }
        };
        Redeemable {
            user_coupon_id: self.id,
            coupon_id: self.coupon_id,
            held: HeldCoupon {
                owner_user_id: self.user_id,
                // The column's CHECK allows only the four spellings.
                status: UserCouponStatus::parse(&self.status).unwrap_or(UserCouponStatus::Expired),
                expires_at: self.expires_at,
            },
            rule: DiscountRule {
                kind,
                min_order_amount: self.min_order_amount,
                product_ids: self.product_ids,
                categories: self.categories,
                market: Market::parse(&self.market).unwrap_or(Market::Kr),
            },
        }
    }
}

const SELECT: &str = "SELECT uc.id, uc.coupon_id, uc.user_id, uc.status, uc.expires_at, c.discount_type, \
     c.discount_value, c.max_discount, c.min_order_amount, c.market, c.product_ids, c.categories \
     FROM user_coupons uc JOIN coupons c ON c.id = uc.coupon_id WHERE uc.id = $1";

/// Reads a held coupon without locking (the cart's preview).
pub async fn find(db: impl PgExecutor<'_>, user_coupon_id: Uuid) -> sqlx::Result<Option<Redeemable>> {
    Ok(sqlx::query_as::<_, Row>(SELECT).bind(user_coupon_id).fetch_optional(db).await?.map(Row::into_redeemable))
}

/// Reads a held coupon and locks its `user_coupons` row until the transaction ends, so two
/// payments can never both use it. The campaign row is only read: its rule does not change
/// once issuing has started, and not locking it keeps payments off the issuing hot row.
pub async fn lock(tx: &mut PgConnection, user_coupon_id: Uuid) -> sqlx::Result<Option<Redeemable>> {
    let sql = format!("{SELECT} FOR NO KEY UPDATE OF uc");
    Ok(sqlx::query_as::<_, Row>(&sql).bind(user_coupon_id).fetch_optional(tx).await?.map(Row::into_redeemable))
}

/// Marks a locked coupon USED by an order.
pub async fn mark_used(
    tx: &mut PgConnection,
    user_coupon_id: Uuid,
    order_id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE user_coupons SET status = 'USED', used_at = $2, order_id = $3 WHERE id = $1")
        .bind(user_coupon_id)
        .bind(now)
        .bind(order_id)
        .execute(tx)
        .await?;
    Ok(())
}

/// Gives a coupon back after its order was refunded: AVAILABLE again while it has not expired,
/// EXPIRED otherwise; either way it no longer points at the order.
pub async fn restore(tx: &mut PgConnection, user_coupon_id: Uuid, now: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE user_coupons \
         SET status = CASE WHEN expires_at > $2 THEN 'AVAILABLE' ELSE 'EXPIRED' END, used_at = NULL, order_id = NULL \
         WHERE id = $1",
    )
    .bind(user_coupon_id)
    .bind(now)
    .execute(tx)
    .await?;
    Ok(())
}
