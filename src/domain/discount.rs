//! Discount rules of coupons and the checks a coupon must pass to be redeemed on an order.
//!
//! Plain arithmetic over integer minor units: a discount is never negative, never more than the
//! part of the order it applies to, and a percentage never more than its cap.

use chrono::{DateTime, Utc};

use super::Market;

/// How a coupon takes money off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscountKind {
    /// A fixed amount in minor units of the coupon's currency.
    Fixed {
        /// The amount off (> 0).
        amount: i64,
    },
    /// A percentage of the eligible amount, rounded down to the minor unit, optionally capped.
    Percent {
        /// 1..=100.
        percent: i64,
        /// The most it may take off, in minor units.
        max_discount: Option<i64>,
    },
}

/// A coupon's discount and the conditions under which it applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscountRule {
    /// What it takes off.
    pub kind: DiscountKind,
    /// The order total (before discount) must be at least this.
    pub min_order_amount: i64,
    /// Only these products count towards the eligible amount (`None`/empty: no restriction).
    pub product_ids: Option<Vec<i64>>,
    /// Only products of these categories count (`None`/empty: no restriction).
    pub categories: Option<Vec<String>>,
    /// The market the coupon is sold in; it never applies to another market's orders.
    pub market: Market,
}

/// One line of an order or cart, as far as discounts care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscountLine {
    /// The product the line is for.
    pub product_id: i64,
    /// The product's category.
    pub category: String,
    /// unit price x quantity, in minor units.
    pub subtotal: i64,
}

/// Why a coupon cannot be redeemed; each maps to one contract error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedemptionError {
    /// `EXPIRED_COUPON`: past its expiry, or already marked EXPIRED.
    Expired,
    /// `ALREADY_USED`.
    AlreadyUsed,
    /// `COUPON_REVOKED`: taken back by its campaign's managers.
    Revoked,
    /// `INVALID_COUPON`: not the caller's (or unknown).
    Invalid,
    /// `COUPON_MIN_ORDER_AMOUNT`: the order total is below the minimum.
    MinOrderAmount {
        /// The coupon's minimum.
        min_order_amount: i64,
        /// The order's total.
        order_total: i64,
    },
    /// `COUPON_NOT_APPLICABLE`: wrong market, or no line matches the product/category restriction.
    NotApplicable,
}

/// A held coupon's status as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserCouponStatus {
    /// May be used.
    Available,
    /// Used by an order.
    Used,
    /// Marked expired.
    Expired,
    /// Taken back by the campaign's managers.
    Revoked,
}

impl UserCouponStatus {
    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<UserCouponStatus> {
        match s {
            "AVAILABLE" => Some(UserCouponStatus::Available),
            "USED" => Some(UserCouponStatus::Used),
            "EXPIRED" => Some(UserCouponStatus::Expired),
            "REVOKED" => Some(UserCouponStatus::Revoked),
            _ => None,
        }
    }
}

/// What redemption needs to know about a coupon someone holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCoupon {
    /// Who holds it.
    pub owner_user_id: i64,
    /// Its stored status.
    pub status: UserCouponStatus,
    /// When it stops being usable.
    pub expires_at: DateTime<Utc>,
}

impl DiscountRule {
    /// Whether a line counts towards the eligible amount. With both restrictions set a line
    /// qualifies by either (a campaign for "these products and this category").
    fn covers(&self, line: &DiscountLine) -> bool {
        let products = self.product_ids.as_deref().filter(|p| !p.is_empty());
        let categories = self.categories.as_deref().filter(|c| !c.is_empty());
        match (products, categories) {
            (None, None) => true,
            (p, c) => p.is_some_and(|p| p.contains(&line.product_id)) || c.is_some_and(|c| c.contains(&line.category)),
        }
    }

    /// The discount this rule gives an order of `lines` in `market`, in minor units.
    pub fn discount_for(&self, lines: &[DiscountLine], market: Market) -> Result<i64, RedemptionError> {
        if market != self.market {
            return Err(RedemptionError::NotApplicable);
        }
        let eligible: Vec<&DiscountLine> = lines.iter().filter(|l| self.covers(l)).collect();
        if eligible.is_empty() {
            return Err(RedemptionError::NotApplicable);
        }
        let base: i64 = eligible.iter().map(|l| l.subtotal.max(0)).sum();
        let order_total: i64 = lines.iter().map(|l| l.subtotal.max(0)).sum();
        if order_total < self.min_order_amount {
            return Err(RedemptionError::MinOrderAmount { min_order_amount: self.min_order_amount, order_total });
        }
        let raw = match self.kind {
            DiscountKind::Fixed { amount } => amount,
            DiscountKind::Percent { percent, max_discount } => {
                // i128 so a large base times 100 cannot overflow; integer division floors
                // towards zero, which for non-negative values is rounding down.
                let pct = percent.clamp(0, 100) as i128;
                let off = (base as i128 * pct / 100) as i64;
                max_discount.map_or(off, |cap| off.min(cap))
            }
        };
        Ok(raw.clamp(0, base))
    }
}

/// Checks a held coupon for `caller` on an order and returns the discount: ownership first (so
/// nothing is revealed about other people's coupons), then its status, its expiry, then the rule.
pub fn validate_redemption(
    held: &HeldCoupon,
    caller_user_id: i64,
    now: DateTime<Utc>,
    rule: &DiscountRule,
    lines: &[DiscountLine],
    market: Market,
) -> Result<i64, RedemptionError> {
    if held.owner_user_id != caller_user_id {
        return Err(RedemptionError::Invalid);
    }
    match held.status {
        UserCouponStatus::Used => return Err(RedemptionError::AlreadyUsed),
        UserCouponStatus::Expired => return Err(RedemptionError::Expired),
        UserCouponStatus::Revoked => return Err(RedemptionError::Revoked),
        UserCouponStatus::Available => {}
    }
    if held.expires_at <= now {
        return Err(RedemptionError::Expired);
    }
    rule.discount_for(lines, market)
}

#[cfg(test)]
#[path = "discount_tests.rs"]
mod tests;
