//! Coupons (seed 004): the [`Coupon`] aggregate root, its immutable [`Inventory`] and the
//! [`IssuedCoupon`]s it hands out. Plain Rust: the storage strategies (row lock, version check,
//! Redis lock) only decide *when* these rules run, never what they say.

mod inventory;
mod issued;
mod patch;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub use inventory::{Inventory, InventoryError, SoldOut};
pub use issued::{IssuedCoupon, IssuedStatus};
pub use patch::{CouponPatch, END_NOW_GRACE, PatchError};

use super::{Currency, Market, catalog::Localized};

/// How a coupon discounts an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DiscountType {
    /// A fixed amount in minor units of the coupon's currency.
    Fixed,
    /// A percentage (1..=100) of the order, optionally capped by `max_discount`.
    Percent,
}

impl DiscountType {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            DiscountType::Fixed => "FIXED",
            DiscountType::Percent => "PERCENT",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<DiscountType> {
        match s {
            "FIXED" => Some(DiscountType::Fixed),
            "PERCENT" => Some(DiscountType::Percent),
            _ => None,
        }
    }
}

/// How long an issued coupon stays usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Validity {
    /// Until a fixed instant, whenever it was issued.
    Until(DateTime<Utc>),
    /// For a number of days from the moment it was issued.
    Days(u32),
}

impl Validity {
    /// Longest `valid_days` accepted: ten years.
    pub const MAX_DAYS: u32 = 3650;

    /// When a coupon issued at `issued_at` expires.
    pub fn expires_at(self, issued_at: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Validity::Until(at) => at,
            Validity::Days(days) => issued_at + TimeDelta::days(i64::from(days)),
        }
    }
}

/// What a marketing manager defines about a coupon: everything but its id and its stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponTerms {
    /// Display name in Korean and English, each 1-200 characters.
    pub name: Localized,
    /// FIXED or PERCENT.
    pub discount_type: DiscountType,
    /// FIXED: minor units (> 0); PERCENT: 1..=100.
    pub discount_value: i64,
    /// Cap of the discount in minor units, if any.
    pub max_discount: Option<i64>,
    /// Smallest order total the coupon applies to, in minor units.
    pub min_order_amount: i64,
    /// The only market whose users may hold it; its currency is the market's.
    pub market: Market,
    /// Issuing opens at this instant (inclusive).
    pub issue_starts_at: DateTime<Utc>,
    /// Issuing closes at this instant (exclusive).
    pub issue_ends_at: DateTime<Utc>,
    /// How long an issued coupon stays usable.
    pub validity: Validity,
    /// Only orders with one of these products qualify, if set.
    pub product_ids: Option<Vec<i64>>,
    /// Only orders with a product of one of these categories qualify, if set.
    pub categories: Option<Vec<String>>,
}

/// A definition rule a coupon broke: the offending field and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    /// The API field at fault.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn invalid(field: &'static str, reason: &'static str) -> Invalid {
    Invalid { field, reason }
}

impl CouponTerms {
    /// The currency of its amounts: the market's.
    pub fn currency(&self) -> Currency {
        self.market.currency()
    }

    /// Whether issuing is open at `now`: `issue_starts_at <= now < issue_ends_at`.
    pub fn is_issuing(&self, now: DateTime<Utc>) -> bool {
        self.issue_starts_at <= now && now < self.issue_ends_at
    }

    /// Checks the definition rules that hold whatever the stock and the time.
    pub fn validate(&self) -> Result<(), Invalid> {
        for name in [&self.name.ko, &self.name.en] {
            if name.trim() != name || !(1..=200).contains(&name.chars().count()) {
                return Err(invalid("name", "must be 1 to 200 characters without surrounding spaces"));
            }
        }
        match self.discount_type {
            DiscountType::Percent if !(1..=100).contains(&self.discount_value) => {
                return Err(invalid("discount_value", "a PERCENT discount must be 1 to 100"));
            }
            DiscountType::Fixed if self.discount_value <= 0 => {
                return Err(invalid("discount_value", "a FIXED discount must be greater than 0"));
            }
            _ => {}
        }
        if self.max_discount.is_some_and(|m| m <= 0) {
            return Err(invalid("max_discount", "must be greater than 0"));
        }
        if self.min_order_amount < 0 {
            return Err(invalid("min_order_amount", "must not be negative"));
        }
        if self.issue_ends_at <= self.issue_starts_at {
            return Err(invalid("issue_ends_at", "must be after issue_starts_at"));
        }
        match self.validity {
            // A coupon that could be issued already expired is a campaign mistake.
            Validity::Until(at) if at < self.issue_ends_at => {
                return Err(invalid("expires_at", "must not be before issue_ends_at"));
            }
            Validity::Days(d) if !(1..=Validity::MAX_DAYS).contains(&d) => {
                return Err(invalid("valid_days", "must be 1 to 3650"));
            }
            _ => {}
        }
        if let Some(ids) = &self.product_ids
            && (ids.is_empty() || ids.len() > 1000 || ids.iter().any(|id| *id <= 0))
        {
            return Err(invalid("product_ids", "must be 1 to 1000 positive ids (omit for every product)"));
        }
        if let Some(cats) = &self.categories
            && (cats.is_empty() || cats.len() > 100 || cats.iter().any(|c| !(1..=100).contains(&c.chars().count())))
        {
            return Err(invalid(
                "categories",
                "must be 1 to 100 names of 1 to 100 characters (omit for every category)",
            ));
        }
        Ok(())
    }
}

/// Why a user cannot be issued a coupon, in the order the rules are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// Outside the issue window.
    #[error("the coupon is not being issued now")]
    NotActive,
    /// The user already holds one (one per person).
    #[error("the user already holds this coupon")]
    AlreadyIssued,
    /// None left.
    #[error("the coupon is sold out")]
    SoldOut,
}

/// The aggregate root: a coupon campaign with its stock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coupon {
    /// Id in the system of record.
    pub id: i64,
    /// What the campaign offers and when.
    pub terms: CouponTerms,
    /// How many are planned and handed out.
    pub inventory: Inventory,
}

impl Coupon {
    /// Checks a new campaign: its terms, a quantity of at least one, and a window that has not
    /// already closed. Returns the fresh inventory.
    pub fn validate_new(terms: &CouponTerms, total_quantity: i64, now: DateTime<Utc>) -> Result<Inventory, Invalid> {
        terms.validate()?;
        if terms.issue_ends_at <= now {
            return Err(invalid("issue_ends_at", "must be in the future"));
        }
        new_total(total_quantity).and_then(|t| Inventory::new(t, 0).map_err(|_| too_large()))
    }

    /// Issues one to `user_id` at `now`. `already_holds` says whether the user holds one already
    /// (read by the caller under whatever concurrency control its strategy uses).
    ///
    /// Rules in order: the window is open (`NotActive`), the user holds none (`AlreadyIssued`),
    /// one is left (`SoldOut`). Returns the coupon with its new inventory and the issued coupon;
    /// `self` is unchanged.
    pub fn issue(
        &self,
        user_id: i64,
        now: DateTime<Utc>,
        already_holds: bool,
    ) -> Result<(Coupon, IssuedCoupon), IssueError> {
        if !self.terms.is_issuing(now) {
            return Err(IssueError::NotActive);
        }
        if already_holds {
            return Err(IssueError::AlreadyIssued);
        }
        let inventory = self.inventory.use_one().map_err(|SoldOut| IssueError::SoldOut)?;
        let issued = IssuedCoupon {
            id: Uuid::now_v7(),
            coupon_id: self.id,
            user_id,
            status: IssuedStatus::Available,
            issued_at: now,
            expires_at: self.terms.validity.expires_at(now),
        };
        Ok((Coupon { inventory, ..self.clone() }, issued))
    }
}

fn too_large() -> Invalid {
    invalid("total_quantity", "must be at most 2147483647")
}

/// A requested total quantity as a stock size: at least one, at most what the store holds.
fn new_total(total_quantity: i64) -> Result<u32, Invalid> {
    if total_quantity <= 0 {
        return Err(invalid("total_quantity", "must be greater than 0"));
    }
    u32::try_from(total_quantity).ok().filter(|t| *t <= Inventory::MAX_TOTAL).ok_or_else(too_large)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A KR coupon of `total` with `used` issued, open from an hour ago for a day, valid 7 days.
    pub(crate) fn coupon(total: u32, used: u32) -> Coupon {
        let now = Utc::now();
        Coupon {
            id: 7,
            terms: CouponTerms {
                name: "10% off".into(),
                discount_type: DiscountType::Percent,
                discount_value: 10,
                max_discount: Some(5_000),
                min_order_amount: 10_000,
                market: Market::Kr,
                issue_starts_at: now - TimeDelta::hours(1),
                issue_ends_at: now + TimeDelta::days(1),
                validity: Validity::Days(7),
                product_ids: None,
                categories: None,
            },
            inventory: Inventory::new(total, used).unwrap(),
        }
    }

    #[test]
    fn issuing_takes_one_from_stock_and_leaves_the_original_unchanged() {
        let c = coupon(100, 95);
        let now = Utc::now();
        let (after, issued) = c.issue(42, now, false).unwrap();
        assert_eq!(after.inventory.used(), 96);
        assert_eq!(c.inventory.used(), 95);
        assert_eq!((issued.coupon_id, issued.user_id, issued.status), (7, 42, IssuedStatus::Available));
        assert_eq!(issued.issued_at, now);
        assert_eq!(issued.expires_at, now + TimeDelta::days(7));
    }

    #[test]
    fn a_fixed_expiry_is_the_same_for_everyone() {
        let mut c = coupon(10, 0);
        let at = c.terms.issue_ends_at + TimeDelta::days(30);
        c.terms.validity = Validity::Until(at);
        assert_eq!(c.issue(1, Utc::now(), false).unwrap().1.expires_at, at);
    }

    #[test]
    fn rules_are_checked_window_then_duplicate_then_stock() {
        let sold_out = coupon(5, 5);
        let now = Utc::now();
        assert_eq!(sold_out.issue(1, now, false).unwrap_err(), IssueError::SoldOut);
        assert_eq!(sold_out.issue(1, now, true).unwrap_err(), IssueError::AlreadyIssued);
        let early = sold_out.terms.issue_starts_at - TimeDelta::seconds(1);
        assert_eq!(sold_out.issue(1, early, true).unwrap_err(), IssueError::NotActive);
        let closed = sold_out.terms.issue_ends_at;
        assert_eq!(sold_out.issue(1, closed, false).unwrap_err(), IssueError::NotActive);
        assert!(coupon(5, 0).issue(1, coupon(5, 0).terms.issue_starts_at, false).is_ok(), "start is inclusive");
    }

    #[test]
    fn definition_rules_name_the_field_at_fault() {
        let field = |f: fn(&mut CouponTerms)| {
            let mut t = coupon(1, 0).terms;
            f(&mut t);
            t.validate().err().map(|e| e.field)
        };
        assert_eq!(field(|_| {}), None);
        assert_eq!(field(|t| t.discount_value = 101), Some("discount_value"));
        assert_eq!(field(|t| t.discount_value = 0), Some("discount_value"));
        assert_eq!(
            field(|t| {
                t.discount_type = DiscountType::Fixed;
                t.discount_value = 150
            }),
            None
        );
        assert_eq!(field(|t| t.issue_ends_at = t.issue_starts_at), Some("issue_ends_at"));
        assert_eq!(field(|t| t.validity = Validity::Days(0)), Some("valid_days"));
        assert_eq!(
            field(|t| t.validity = Validity::Until(t.issue_ends_at - TimeDelta::seconds(1))),
            Some("expires_at")
        );
        assert_eq!(field(|t| t.name = " ".into()), Some("name"));
        assert_eq!(field(|t| t.product_ids = Some(vec![])), Some("product_ids"));
        assert_eq!(field(|t| t.categories = Some(vec![String::new()])), Some("categories"));
        assert_eq!(field(|t| t.max_discount = Some(0)), Some("max_discount"));
    }

    #[test]
    fn a_new_campaign_needs_a_positive_quantity_and_a_window_still_open() {
        let t = coupon(1, 0).terms;
        let now = Utc::now();
        assert_eq!(Coupon::validate_new(&t, 0, now).unwrap_err().field, "total_quantity");
        assert_eq!(Coupon::validate_new(&t, i64::from(u32::MAX), now).unwrap_err().field, "total_quantity");
        assert_eq!(Coupon::validate_new(&t, 50, t.issue_ends_at).unwrap_err().field, "issue_ends_at");
        assert_eq!(Coupon::validate_new(&t, 50, now).unwrap().total(), 50);
    }
}
