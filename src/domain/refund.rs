//! What a refund of a paid order covers: its amount, its units, and whether it completes the
//! order's refund. Pure rules; `store::pg::refunds` applies the plan under the order's row lock.
//!
//! - Never more than was paid and not refunded yet, in money or in units (`REFUND_EXCEEDS_PAID`).
//! - Units refunded by items are worth their share of what was charged: `value x final / total`
//!   rounded down, so a coupon's discount is spread over the lines; the refund that takes the
//!   last units gives back exactly what is left, so a refund in parts never loses a minor unit.
//! - An amount refund covers no units, unless it completes the order.
//! - The order is refunded in full when every unit is refunded, or when everything charged is
//!   (an order charged nothing completes only with its units). Completing covers every unit left.

use std::collections::BTreeMap;

use super::order::Rejection;

/// A line of the order as a refund sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundableLine {
    /// The option.
    pub option_id: i64,
    /// Units ordered.
    pub quantity: i64,
    /// Units refunded so far.
    pub refunded: i64,
    /// Price per unit captured by the order.
    pub unit_price: i64,
}

/// What the order was charged and has given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charged {
    /// Sum of the lines.
    pub total: i64,
    /// What was charged (total less the coupon).
    pub final_amount: i64,
    /// Given back so far.
    pub refunded: i64,
}

/// What is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundAsk {
    /// These units `(option_id, quantity)`; an option may repeat (the quantities add up).
    Items(Vec<(i64, i64)>),
    /// This much money (minor units), no units.
    Amount(i64),
    /// Everything not refunded yet (a customer's cancel of a paid order).
    Rest,
}

/// What a refund does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundPlan {
    /// Money given back now.
    pub amount: i64,
    /// Units refunded now, `(option_id, quantity)` in option order.
    pub units: Vec<(i64, i64)>,
    /// Whether the order is refunded in full afterwards.
    pub complete: bool,
}

/// Plans a refund of `ask` against `lines` and `charged`, or says why it is refused.
pub fn plan(lines: &[RefundableLine], charged: Charged, ask: &RefundAsk) -> Result<RefundPlan, Rejection> {
    let left_money = charged.final_amount - charged.refunded;
    let mut units: BTreeMap<i64, i64> = BTreeMap::new();
    let mut amount = match ask {
        RefundAsk::Amount(a) => {
            if *a > left_money {
                return Err(Rejection::RefundExceedsPaid { option_id: None, refundable: left_money, requested: *a });
            }
            *a
        }
        RefundAsk::Items(items) => {
            for (option_id, q) in items {
                *units.entry(*option_id).or_default() += q;
            }
            let mut value: i128 = 0;
            for (&option_id, &requested) in &units {
                let line = lines.iter().find(|l| l.option_id == option_id);
                let refundable = line.map_or(0, |l| l.quantity - l.refunded);
                if requested > refundable {
                    return Err(Rejection::RefundExceedsPaid { option_id: Some(option_id), refundable, requested });
                }
                value += i128::from(line.map_or(0, |l| l.unit_price)) * i128::from(requested);
            }
            if charged.total == 0 {
                0
            } else {
                (value * i128::from(charged.final_amount) / i128::from(charged.total)) as i64
            }
        }
        RefundAsk::Rest => left_money,
    };
    let all_units = lines.iter().all(|l| l.refunded + units.get(&l.option_id).copied().unwrap_or(0) >= l.quantity);
    if !all_units && amount > left_money {
        // Earlier amount refunds took more than these units' share: they are paid for already.
        return Err(Rejection::RefundExceedsPaid { option_id: None, refundable: left_money, requested: amount });
    }
    let complete = matches!(ask, RefundAsk::Rest)
        || all_units
        || (charged.final_amount > 0 && charged.refunded + amount == charged.final_amount);
    if complete {
        // The last part gives back exactly what is left, and every unit left with it.
        amount = left_money;
        for l in lines {
            units.insert(l.option_id, l.quantity - l.refunded);
        }
    }
    units.retain(|_, q| *q > 0);
    Ok(RefundPlan { amount, units: units.into_iter().collect(), complete })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> Vec<RefundableLine> {
        vec![
            RefundableLine { option_id: 1, quantity: 2, refunded: 0, unit_price: 10_000 },
            RefundableLine { option_id: 2, quantity: 1, refunded: 0, unit_price: 5_000 },
        ]
    }
    const CHARGED: Charged = Charged { total: 25_000, final_amount: 25_000, refunded: 0 };

    #[test]
    fn units_are_refunded_at_their_price_and_the_last_part_takes_what_is_left() {
        let p = plan(&lines(), CHARGED, &RefundAsk::Items(vec![(1, 1)])).unwrap();
        assert_eq!(p, RefundPlan { amount: 10_000, units: vec![(1, 1)], complete: false });
        let mut after = lines();
        after[0].refunded = 1;
        let rest = Charged { refunded: 10_000, ..CHARGED };
        let p = plan(&after, rest, &RefundAsk::Items(vec![(1, 1), (2, 1)])).unwrap();
        assert_eq!(p, RefundPlan { amount: 15_000, units: vec![(1, 1), (2, 1)], complete: true });
    }

    #[test]
    fn a_coupon_discount_is_spread_over_the_units_rounding_down() {
        let charged = Charged { total: 25_000, final_amount: 20_001, refunded: 0 };
        let p = plan(&lines(), charged, &RefundAsk::Items(vec![(2, 1)])).unwrap();
        assert_eq!(p.amount, 4_000, "5000 x 20001 / 25000 = 4000.2");
    }

    #[test]
    fn more_than_paid_is_refused_in_money_and_in_units() {
        assert_eq!(
            plan(&lines(), CHARGED, &RefundAsk::Amount(25_001)),
            Err(Rejection::RefundExceedsPaid { option_id: None, refundable: 25_000, requested: 25_001 })
        );
        assert_eq!(
            plan(&lines(), CHARGED, &RefundAsk::Items(vec![(1, 2), (1, 1)])),
            Err(Rejection::RefundExceedsPaid { option_id: Some(1), refundable: 2, requested: 3 })
        );
        assert_eq!(
            plan(&lines(), CHARGED, &RefundAsk::Items(vec![(9, 1)])),
            Err(Rejection::RefundExceedsPaid { option_id: Some(9), refundable: 0, requested: 1 })
        );
    }

    #[test]
    fn an_amount_covers_no_units_unless_it_completes_the_order() {
        let p = plan(&lines(), CHARGED, &RefundAsk::Amount(3_000)).unwrap();
        assert_eq!(p, RefundPlan { amount: 3_000, units: vec![], complete: false });
        let p = plan(&lines(), Charged { refunded: 3_000, ..CHARGED }, &RefundAsk::Amount(22_000)).unwrap();
        assert_eq!(p, RefundPlan { amount: 22_000, units: vec![(1, 2), (2, 1)], complete: true });
    }

    #[test]
    fn units_already_paid_back_by_an_amount_refund_are_refused() {
        let charged = Charged { refunded: 20_000, ..CHARGED };
        assert!(matches!(
            plan(&lines(), charged, &RefundAsk::Items(vec![(1, 1)])),
            Err(Rejection::RefundExceedsPaid { option_id: None, refundable: 5_000, .. })
        ));
    }

    #[test]
    fn the_rest_is_everything_left() {
        let mut after = lines();
        after[1].refunded = 1;
        let p = plan(&after, Charged { refunded: 5_000, ..CHARGED }, &RefundAsk::Rest).unwrap();
        assert_eq!(p, RefundPlan { amount: 20_000, units: vec![(1, 2)], complete: true });
    }
}
