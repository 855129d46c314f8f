//! Admin edits of a coupon campaign. Before the first issue anything may change (within the
//! definition rules); once a coupon has been handed out its terms are a promise to the holders,
//! so only two edits remain: more stock, or closing the window early (seed 004 `isStarted()`).

use chrono::{DateTime, TimeDelta, Utc};

use super::{Coupon, CouponTerms, DiscountType, Invalid, Validity, invalid, new_total};
use crate::domain::{Market, catalog::Localized};

/// How far in the past a requested window end is still read as "now" (clock skew, latency).
pub const END_NOW_GRACE: TimeDelta = TimeDelta::seconds(60);

/// The fields an edit sets; `None` leaves a field as it is. For the optional fields the inner
/// `Option` is the new value (`Some(None)` clears the restriction or cap).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CouponPatch {
    /// New name (both languages).
    pub name: Option<Localized>,
    /// New discount type.
    pub discount_type: Option<DiscountType>,
    /// New discount value.
    pub discount_value: Option<i64>,
    /// New cap (or none).
    pub max_discount: Option<Option<i64>>,
    /// New minimum order amount.
    pub min_order_amount: Option<i64>,
    /// New market.
    pub market: Option<Market>,
    /// New total quantity.
    pub total_quantity: Option<i64>,
    /// New window start.
    pub issue_starts_at: Option<DateTime<Utc>>,
    /// New window end.
    pub issue_ends_at: Option<DateTime<Utc>>,
    /// New validity (a fixed expiry or a number of days).
    pub validity: Option<Validity>,
    /// New product restriction (or none).
    pub product_ids: Option<Option<Vec<i64>>>,
    /// New category restriction (or none).
    pub categories: Option<Option<Vec<String>>>,
}

/// Why an edit was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// Issuing has started and the edit is not "more stock" or "close the window early".
    #[error("{field} cannot change once issuing has started")]
    NotAllowed {
        /// The first field the edit may not change.
        field: &'static str,
    },
    /// The edited coupon would break a definition rule.
    #[error(transparent)]
    Invalid(#[from] Invalid),
}

impl Coupon {
    /// The coupon after `patch` at `now`, or why the edit is refused; `self` is unchanged.
    /// A field set to its current value is not a change.
    pub fn patched(&self, patch: &CouponPatch, now: DateTime<Utc>) -> Result<Coupon, PatchError> {
        let old = &self.terms;
        let mut terms = CouponTerms {
            name: patch.name.as_ref().map_or_else(
                || old.name.clone(),
                |n| Localized { ko: n.ko.trim().to_owned(), en: n.en.trim().to_owned() },
            ),
            discount_type: patch.discount_type.unwrap_or(old.discount_type),
            discount_value: patch.discount_value.unwrap_or(old.discount_value),
            max_discount: patch.max_discount.unwrap_or(old.max_discount),
            min_order_amount: patch.min_order_amount.unwrap_or(old.min_order_amount),
            market: patch.market.unwrap_or(old.market),
            issue_starts_at: patch.issue_starts_at.unwrap_or(old.issue_starts_at),
            issue_ends_at: patch.issue_ends_at.unwrap_or(old.issue_ends_at),
            validity: patch.validity.unwrap_or(old.validity),
            product_ids: patch.product_ids.clone().unwrap_or_else(|| old.product_ids.clone()),
            categories: patch.categories.clone().unwrap_or_else(|| old.categories.clone()),
        };
        let total = match patch.total_quantity {
            Some(t) => new_total(t)?,
            None => self.inventory.total(),
        };
        if self.inventory.is_started() {
            if let Some(field) = frozen_change(old, &terms) {
                return Err(PatchError::NotAllowed { field });
            }
            if total < self.inventory.total() {
                return Err(PatchError::NotAllowed { field: "total_quantity" });
            }
            if terms.issue_ends_at > old.issue_ends_at {
                return Err(PatchError::NotAllowed { field: "issue_ends_at" });
            }
            if terms.issue_ends_at < old.issue_ends_at && terms.issue_ends_at < now {
                // "End it now" arrives a little after the admin's now: within the grace it means
                // now; further in the past it would rewrite what already happened.
                if terms.issue_ends_at < now - END_NOW_GRACE {
                    return Err(invalid("issue_ends_at", "the window can be ended now at the earliest").into());
                }
                terms.issue_ends_at = now;
            }
        }
        // Before the first issue `used` is 0 (any positive total fits); after it only raises pass.
        let inventory =
            self.inventory.with_total(total).map_err(|_| PatchError::NotAllowed { field: "total_quantity" })?;
        terms.validate()?;
        Ok(Coupon { id: self.id, terms, inventory })
    }
}

/// The first field other than `issue_ends_at` that differs: the terms holders were promised.
fn frozen_change(old: &CouponTerms, new: &CouponTerms) -> Option<&'static str> {
    let changes = [
        ("name", old.name != new.name),
        ("discount_type", old.discount_type != new.discount_type),
        ("discount_value", old.discount_value != new.discount_value),
        ("max_discount", old.max_discount != new.max_discount),
        ("min_order_amount", old.min_order_amount != new.min_order_amount),
        ("market", old.market != new.market),
        ("issue_starts_at", old.issue_starts_at != new.issue_starts_at),
        ("expires_at", old.validity != new.validity),
        ("product_ids", old.product_ids != new.product_ids),
        ("categories", old.categories != new.categories),
    ];
    changes.into_iter().find(|(_, changed)| *changed).map(|(field, _)| field)
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;
    use crate::domain::coupon::tests::coupon;

    fn patch(f: impl FnOnce(&mut CouponPatch)) -> CouponPatch {
        let mut p = CouponPatch::default();
        f(&mut p);
        p
    }

    #[test]
    fn before_the_first_issue_anything_valid_may_change() {
        let c = coupon(100, 0);
        let p = patch(|p| {
            p.name = Some("Renamed".into());
            p.total_quantity = Some(10);
            p.discount_value = Some(20);
            p.validity = Some(Validity::Days(3));
        });
        let after = c.patched(&p, Utc::now()).unwrap();
        assert_eq!(
            (after.terms.name.ko.as_str(), after.inventory.total(), after.terms.discount_value),
            ("Renamed", 10, 20)
        );
        assert_eq!(c.inventory.total(), 100, "the original is unchanged");
    }

    #[test]
    fn before_the_first_issue_an_edit_still_obeys_the_definition_rules() {
        let err = coupon(100, 0).patched(&patch(|p| p.discount_value = Some(150)), Utc::now()).unwrap_err();
        assert_eq!(
            err,
            PatchError::Invalid(Invalid { field: "discount_value", reason: "a PERCENT discount must be 1 to 100" })
        );
        let err = coupon(100, 0).patched(&patch(|p| p.total_quantity = Some(0)), Utc::now()).unwrap_err();
        assert!(matches!(err, PatchError::Invalid(Invalid { field: "total_quantity", .. })));
    }

    #[test]
    fn once_started_only_raising_the_total_or_ending_the_window_is_allowed() {
        let c = coupon(100, 1);
        let now = Utc::now();
        assert_eq!(c.patched(&patch(|p| p.total_quantity = Some(150)), now).unwrap().inventory.total(), 150);
        assert_eq!(c.patched(&patch(|p| p.issue_ends_at = Some(now)), now).unwrap().terms.issue_ends_at, now);
        let not_allowed = |p: CouponPatch| match c.patched(&p, now) {
            Err(PatchError::NotAllowed { field }) => field,
            other => panic!("expected NotAllowed, got {other:?}"),
        };
        assert_eq!(not_allowed(patch(|p| p.total_quantity = Some(99))), "total_quantity");
        assert_eq!(not_allowed(patch(|p| p.name = Some("New".into()))), "name");
        assert_eq!(not_allowed(patch(|p| p.discount_value = Some(11))), "discount_value");
        assert_eq!(not_allowed(patch(|p| p.validity = Some(Validity::Days(8)))), "expires_at");
        let later = c.terms.issue_ends_at + TimeDelta::days(1);
        assert_eq!(not_allowed(patch(|p| p.issue_ends_at = Some(later))), "issue_ends_at");
        let past = now - END_NOW_GRACE - TimeDelta::seconds(1);
        assert!(matches!(c.patched(&patch(|p| p.issue_ends_at = Some(past)), now), Err(PatchError::Invalid(_))));
        let just_now = now - TimeDelta::milliseconds(300);
        let ended = c.patched(&patch(|p| p.issue_ends_at = Some(just_now)), now).unwrap();
        assert_eq!(ended.terms.issue_ends_at, now, "a moment ago means now");
    }

    #[test]
    fn once_started_setting_a_field_to_its_current_value_is_not_a_change() {
        let c = coupon(100, 1);
        let p = patch(|p| {
            p.name = Some(c.terms.name.clone());
            p.total_quantity = Some(100);
            p.max_discount = Some(c.terms.max_discount);
        });
        assert_eq!(c.patched(&p, Utc::now()).unwrap(), c);
    }

    #[test]
    fn the_total_can_never_drop_below_what_was_issued() {
        let c = coupon(100, 100);
        assert_eq!(
            c.patched(&patch(|p| p.total_quantity = Some(50)), Utc::now()).unwrap_err(),
            PatchError::NotAllowed { field: "total_quantity" }
        );
    }
}
