//! The coupon's stock as an immutable value: every operation returns a new [`Inventory`] and
//! leaves the original untouched, so a half-applied change can never be observed (seed 004, 3.2).

/// The quantity of a coupon: how many were planned and how many have been handed out.
///
/// Invariant, checked at construction and kept by every operation: `used <= total <= MAX_TOTAL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Inventory {
    total: u32,
    used: u32,
}

/// Nothing left to hand out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the coupon is sold out")]
pub struct SoldOut;

/// Why an inventory change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    /// The total would drop below what has already been handed out.
    #[error("total cannot go below the {used} already issued")]
    BelowUsed {
        /// How many have been handed out.
        used: u32,
    },
    /// The total would exceed what the store can hold.
    #[error("total cannot exceed {}", Inventory::MAX_TOTAL)]
    TooLarge,
}

impl Inventory {
    /// The largest total the system of record can hold (a Postgres `INTEGER`).
    pub const MAX_TOTAL: u32 = i32::MAX as u32;

    /// An inventory of `total` of which `used` are handed out.
    pub fn new(total: u32, used: u32) -> Result<Inventory, InventoryError> {
        if total > Self::MAX_TOTAL {
            return Err(InventoryError::TooLarge);
        }
        if used > total {
            return Err(InventoryError::BelowUsed { used });
        }
        Ok(Inventory { total, used })
    }

    /// The planned quantity.
    pub fn total(&self) -> u32 {
        self.total
    }

    /// How many have been handed out.
    pub fn used(&self) -> u32 {
        self.used
    }

    /// How many are left (`total - used`); never negative by construction.
    pub fn remaining(&self) -> u32 {
        self.total - self.used
    }

    /// Whether at least one is left.
    pub fn has_available_stock(&self) -> bool {
        self.remaining() > 0
    }

    /// Whether at least one has been handed out; from then on the coupon's terms are frozen.
    pub fn is_started(&self) -> bool {
        self.used > 0
    }

    /// Hands one out: a new inventory with one more used, or [`SoldOut`].
    pub fn use_one(&self) -> Result<Inventory, SoldOut> {
        if !self.has_available_stock() {
            return Err(SoldOut);
        }
        Ok(Inventory { total: self.total, used: self.used + 1 })
    }

    /// Plans `n` more.
    pub fn add(&self, n: u32) -> Result<Inventory, InventoryError> {
        let total = self.total.checked_add(n).ok_or(InventoryError::TooLarge)?;
        Inventory::new(total, self.used)
    }

    /// Plans `n` fewer; never below what has been handed out.
    pub fn remove(&self, n: u32) -> Result<Inventory, InventoryError> {
        let total = self.total.checked_sub(n).ok_or(InventoryError::BelowUsed { used: self.used })?;
        Inventory::new(total, self.used)
    }

    /// The same inventory with another total (an `add` or a `remove`).
    pub fn with_total(&self, total: u32) -> Result<Inventory, InventoryError> {
        if total >= self.total { self.add(total - self.total) } else { self.remove(self.total - total) }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn use_one_hands_out_one_and_leaves_the_original_unchanged() {
        let before = Inventory::new(2, 1).unwrap();
        let after = before.use_one().unwrap();
        assert_eq!((after.total(), after.used(), after.remaining()), (2, 2, 0));
        assert_eq!((before.used(), before.remaining()), (1, 1));
        assert_eq!(after.use_one(), Err(SoldOut));
    }

    #[test]
    fn is_started_turns_true_with_the_first_issue() {
        let fresh = Inventory::new(3, 0).unwrap();
        assert!(!fresh.is_started() && fresh.has_available_stock());
        assert!(fresh.use_one().unwrap().is_started());
    }

    #[test]
    fn remove_never_goes_below_used_and_add_never_beyond_the_maximum() {
        let inv = Inventory::new(10, 4).unwrap();
        assert_eq!(inv.remove(6).unwrap().total(), 4);
        assert_eq!(inv.remove(7), Err(InventoryError::BelowUsed { used: 4 }));
        assert_eq!(inv.remove(u32::MAX), Err(InventoryError::BelowUsed { used: 4 }));
        assert_eq!(inv.add(Inventory::MAX_TOTAL), Err(InventoryError::TooLarge));
        assert_eq!(inv.with_total(12).unwrap().total(), 12);
        assert_eq!(inv.with_total(3), Err(InventoryError::BelowUsed { used: 4 }));
    }

    #[test]
    fn an_inventory_with_more_used_than_total_cannot_be_built() {
        assert_eq!(Inventory::new(1, 2), Err(InventoryError::BelowUsed { used: 2 }));
        assert_eq!(Inventory::new(Inventory::MAX_TOTAL + 1, 0), Err(InventoryError::TooLarge));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Use,
        Add(u32),
        Remove(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![Just(Op::Use), (0u32..50).prop_map(Op::Add), (0u32..50).prop_map(Op::Remove)]
    }

    fn inventory() -> impl Strategy<Value = Inventory> {
        (0u32..1_000).prop_flat_map(|total| (Just(total), 0..=total)).prop_map(|(t, u)| Inventory::new(t, u).unwrap())
    }

    proptest! {
        #[test]
        fn random_operations_keep_used_within_total_and_never_touch_the_original(
            start in inventory(),
            ops in prop::collection::vec(op(), 0..200),
        ) {
            let mut inv = start;
            for op in ops {
                let before = inv;
                let next = match op {
                    Op::Use => before.use_one().ok(),
                    Op::Add(n) => before.add(n).ok(),
                    Op::Remove(n) => before.remove(n).ok(),
                };
                // The value operated on is never modified, whatever the outcome.
                prop_assert_eq!(before, inv);
                if let Some(next) = next {
                    prop_assert!(next.used() <= next.total());
                    prop_assert_eq!(next.remaining(), next.total() - next.used());
                    match op {
                        Op::Use => prop_assert_eq!(next.used(), before.used() + 1),
                        Op::Add(n) => prop_assert_eq!(next.total(), before.total() + n),
                        Op::Remove(n) => prop_assert_eq!(next.total(), before.total() - n),
                    }
                    // Only issuing changes `used`; planning changes never do.
                    if !matches!(op, Op::Use) {
                        prop_assert_eq!(next.used(), before.used());
                    }
                    inv = next;
                }
            }
        }

        #[test]
        fn use_one_on_an_empty_inventory_always_fails(total in 0u32..10_000) {
            let empty = Inventory::new(total, total).unwrap();
            prop_assert_eq!(empty.use_one(), Err(SoldOut));
            prop_assert!(!empty.has_available_stock());
            prop_assert_eq!(empty.remaining(), 0);
        }

        #[test]
        fn using_until_sold_out_hands_out_exactly_the_remaining(start in inventory()) {
            let mut inv = start;
            let mut handed_out = 0;
            while let Ok(next) = inv.use_one() {
                inv = next;
                handed_out += 1;
            }
            prop_assert_eq!(handed_out, start.remaining());
            prop_assert_eq!(inv.used(), inv.total());
        }

        #[test]
        fn remove_succeeds_exactly_when_the_total_stays_at_or_above_used(start in inventory(), n in 0u32..2_000) {
            let result = start.remove(n);
            prop_assert_eq!(result.is_ok(), start.total() >= n && start.total() - n >= start.used());
        }
    }
}
