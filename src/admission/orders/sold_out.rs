//! Options known to be sold out: once the reservation script has found an option's counter at
//! zero (or below), this process refuses orders for it from memory, with no Redis round trip,
//! `INSUFFICIENT_STOCK` with `available: 0`. It only ever refuses: the script still decides every
//! admission.
//!
//! # Forgetting (the bound)
//! Every increment of a counter goes through [`StockStore`] (release on expiry or cancel,
//! restock on refund, adjustments and V1 orders' returns, hydration), which publishes a
//! [`Topic::Stock`] notice per option after the increment; every instance forgets the option on
//! it, within the notice's latency (about a millisecond), or [`CHECK_EVERY`] plus a round trip
//! when the notice was lost (the listener's revision check). Should the notice itself fail to be
//! published after its increment, an entry is also forgotten [`SOLD_OUT_TTL`] after it was
//! learned: that is the worst-case bound.
//!
//! A refusal decided before a forget is not remembered after it: forgets move an epoch that the
//! request read before its script call (as in the coupons' loser memory).
//!
//! When several lines of an order are short, the script reports the first short one in option
//! order, the memory the first remembered one: the order is refused either way, the line named
//! may differ.
//!
//! [`StockStore`]: crate::store::redis::stock::StockStore
//! [`Topic::Stock`]: crate::store::redis::notices::Topic::Stock
//! [`CHECK_EVERY`]: crate::store::redis::notices::CHECK_EVERY

use std::time::{Duration, Instant};

use crate::admission::refusals::Refusals;

/// `order_create_remembered_total{option_id}`: orders refused from the sold-out memory, without
/// Redis, by the option named in the refusal.
pub const ORDER_CREATE_REMEMBERED_TOTAL: &str = "order_create_remembered_total";

/// How long a sold-out option is remembered at most, notices or not.
pub const SOLD_OUT_TTL: Duration = Duration::from_secs(1);

struct Entry {
    since: Instant,
    refused: metrics::Counter,
}

/// The options this process knows to be sold out (one per process).
#[derive(Default)]
pub struct SoldOut {
    map: Refusals<Entry>,
}

impl SoldOut {
    /// Read before the script call whose refusal is to be remembered.
    pub fn epoch(&self) -> u64 {
        self.map.epoch()
    }

    /// The first of `option_ids` known to be sold out now, if any.
    pub fn known(&self, option_ids: impl IntoIterator<Item = i64>) -> Option<i64> {
        self.map.with(|entries| {
            if entries.is_empty() {
                return None;
            }
            option_ids.into_iter().find(|id| match entries.get(id) {
                Some(e) if e.since.elapsed() < SOLD_OUT_TTL => {
                    e.refused.increment(1);
                    true
                }
                _ => false,
            })
        })
    }

    /// Remembers that `option_id` had nothing left, unless a forget happened since `epoch`.
    pub fn remember(&self, option_id: i64, epoch: u64) {
        // A handle taken before the recorder exists would count into nothing, forever.
        crate::metrics::install();
        let refused = metrics::counter!(ORDER_CREATE_REMEMBERED_TOTAL, "option_id" => option_id.to_string());
        self.map.remember(option_id, epoch, Entry { since: Instant::now(), refused });
    }

    /// Forgets an option (`None`: every option): its counter rose.
    pub fn forget(&self, option_id: Option<i64>) {
        self.map.forget(option_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_option_is_forgotten_on_a_notice_and_a_stale_refusal_is_not_remembered() {
        let s = SoldOut::default();
        s.remember(3, s.epoch());
        assert_eq!(s.known([1, 3]), Some(3));
        let before = s.epoch();
        s.forget(Some(3));
        assert_eq!(s.known([3]), None);
        s.remember(3, before);
        assert_eq!(s.known([3]), None);
    }
}
