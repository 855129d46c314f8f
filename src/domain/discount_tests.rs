//! Unit and property tests of discount rules and coupon redemption.

use chrono::{Duration, Utc};
use proptest::prelude::*;

use super::*;

fn line(product_id: i64, category: &str, subtotal: i64) -> DiscountLine {
    DiscountLine { product_id, category: category.into(), subtotal }
}

fn rule(kind: DiscountKind) -> DiscountRule {
    DiscountRule { kind, min_order_amount: 0, product_ids: None, categories: None, market: Market::Kr }
}

fn held(owner: i64, status: UserCouponStatus, expires_in_secs: i64) -> HeldCoupon {
    HeldCoupon { owner_user_id: owner, status, expires_at: Utc::now() + Duration::seconds(expires_in_secs) }
}

#[test]
fn a_fixed_discount_takes_its_amount_off_but_never_more_than_the_order() {
    let r = rule(DiscountKind::Fixed { amount: 5_000 });
    assert_eq!(r.discount_for(&[line(1, "food", 50_000)], Market::Kr), Ok(5_000));
    assert_eq!(r.discount_for(&[line(1, "food", 3_000)], Market::Kr), Ok(3_000));
}

#[test]
fn a_percent_discount_rounds_down_to_the_minor_unit_and_respects_its_cap() {
    let r = rule(DiscountKind::Percent { percent: 15, max_discount: None });
    // 15% of 9,999 is 1,499.85: rounded down.
    assert_eq!(r.discount_for(&[line(1, "food", 9_999)], Market::Kr), Ok(1_499));
    let capped = rule(DiscountKind::Percent { percent: 50, max_discount: Some(10_000) });
    assert_eq!(capped.discount_for(&[line(1, "food", 100_000)], Market::Kr), Ok(10_000));
    assert_eq!(capped.discount_for(&[line(1, "food", 10_001)], Market::Kr), Ok(5_000));
}

#[test]
fn a_restricted_coupon_discounts_only_the_matching_lines() {
    let mut r = rule(DiscountKind::Percent { percent: 10, max_discount: None });
    r.categories = Some(vec!["food".into()]);
    let lines = [line(1, "food", 10_000), line(2, "toys", 90_000)];
    assert_eq!(r.discount_for(&lines, Market::Kr), Ok(1_000));
    r.categories = None;
    r.product_ids = Some(vec![2]);
    assert_eq!(r.discount_for(&lines, Market::Kr), Ok(9_000));
    r.product_ids = Some(vec![3]);
    assert_eq!(r.discount_for(&lines, Market::Kr), Err(RedemptionError::NotApplicable));
}

#[test]
fn a_coupon_of_another_market_is_not_applicable() {
    let r = rule(DiscountKind::Fixed { amount: 100 });
    assert_eq!(r.discount_for(&[line(1, "food", 5_000)], Market::Us), Err(RedemptionError::NotApplicable));
}

#[test]
fn the_minimum_order_amount_compares_the_whole_order_total() {
    let mut r = rule(DiscountKind::Fixed { amount: 1_000 });
    r.min_order_amount = 30_000;
    r.categories = Some(vec!["food".into()]);
    let below = [line(1, "food", 10_000), line(2, "toys", 19_999)];
    assert_eq!(
        r.discount_for(&below, Market::Kr),
        Err(RedemptionError::MinOrderAmount { min_order_amount: 30_000, order_total: 29_999 })
    );
    let enough = [line(1, "food", 10_000), line(2, "toys", 20_000)];
    assert_eq!(r.discount_for(&enough, Market::Kr), Ok(1_000));
}

#[test]
fn redemption_checks_ownership_then_status_then_expiry_then_the_rule() {
    let r = rule(DiscountKind::Fixed { amount: 1_000 });
    let lines = [line(1, "food", 10_000)];
    let now = Utc::now();
    let check = |h: &HeldCoupon| validate_redemption(h, 7, now, &r, &lines, Market::Kr);
    assert_eq!(check(&held(8, UserCouponStatus::Used, -10)), Err(RedemptionError::Invalid));
    assert_eq!(check(&held(7, UserCouponStatus::Used, -10)), Err(RedemptionError::AlreadyUsed));
    assert_eq!(check(&held(7, UserCouponStatus::Expired, 3600)), Err(RedemptionError::Expired));
    assert_eq!(check(&held(7, UserCouponStatus::Revoked, 3600)), Err(RedemptionError::Revoked));
    assert_eq!(check(&held(8, UserCouponStatus::Revoked, 3600)), Err(RedemptionError::Invalid));
    assert_eq!(check(&held(7, UserCouponStatus::Available, -1)), Err(RedemptionError::Expired));
    assert_eq!(check(&held(7, UserCouponStatus::Available, 3600)), Ok(1_000));
}

fn any_kind() -> impl Strategy<Value = DiscountKind> {
    prop_oneof![
        (1i64..10_000_000).prop_map(|amount| DiscountKind::Fixed { amount }),
        (1i64..=100, proptest::option::of(1i64..10_000_000))
            .prop_map(|(percent, max_discount)| DiscountKind::Percent { percent, max_discount }),
    ]
}

fn any_lines() -> impl Strategy<Value = Vec<DiscountLine>> {
    proptest::collection::vec(
        (1i64..6, prop_oneof![Just("food"), Just("toys")], 0i64..1_000_000_000_000).prop_map(|(p, c, s)| line(p, c, s)),
        1..6,
    )
}

proptest! {
    #[test]
    fn a_discount_is_never_negative_nor_more_than_the_eligible_amount(
        kind in any_kind(),
        lines in any_lines(),
        products in proptest::option::of(proptest::collection::vec(1i64..6, 0..3)),
    ) {
        let mut r = rule(kind);
        r.product_ids = products;
        let total: i64 = lines.iter().map(|l| l.subtotal).sum();
        if let Ok(d) = r.discount_for(&lines, Market::Kr) {
            let eligible: i64 = lines.iter().filter(|l| r.covers(l)).map(|l| l.subtotal).sum();
            prop_assert!(d >= 0);
            prop_assert!(d <= eligible);
            prop_assert!(d <= total);
        }
    }

    #[test]
    fn a_percent_discount_never_exceeds_its_cap_nor_the_exact_percentage(
        percent in 1i64..=100,
        cap in proptest::option::of(1i64..10_000_000),
        lines in any_lines(),
    ) {
        let r = rule(DiscountKind::Percent { percent, max_discount: cap });
        let d = r.discount_for(&lines, Market::Kr).unwrap();
        let total: i64 = lines.iter().map(|l| l.subtotal).sum();
        if let Some(cap) = cap {
            prop_assert!(d <= cap);
        }
        // Rounded down: d <= total * percent / 100 exactly, and less than one minor unit below it
        // unless the cap bit.
        prop_assert!((d as i128) * 100 <= total as i128 * percent as i128);
        if cap.is_none_or(|c| d < c) {
            prop_assert!(((d + 1) as i128) * 100 > total as i128 * percent as i128);
        }
    }
}
