//! Loser memory: once the issue script has said a coupon is closed (sold out, or outside its
//! window), this process answers the coupon's losers from memory, with no Redis round trip. In an
//! open run 99% of the requests lose, so this is most of the traffic.
//!
//! What is remembered, per coupon, from the script's own refusals:
//! - **sold out** (`SOLD_OUT`): the window `[starts, ends)` and the users holding one, read once
//!   right after the refusal (with `remaining = 0` the issue script adds nobody, so the set is
//!   final until an edit raises the total). A request is answered in the domain's rule order:
//!   outside the window `COUPON_NOT_ACTIVE`, a holder `ALREADY_ISSUED`, anyone else
//!   `COUPON_SOLD_OUT`.
//! - **ended** (`NOT_ACTIVE` at or after the end): `COUPON_NOT_ACTIVE`.
//! - **not open yet** (`NOT_ACTIVE` before the start): `COUPON_NOT_ACTIVE` only until the start,
//!   so the memory can never keep a sale closed past its opening.
//!
//! The memory only ever answers a refusal: it never admits, so the exactness promises of the
//! script hold unchanged.
//!
//! # Forgetting (the bound)
//! Everything that could turn a refusal into an admission (a raised `total_quantity`, a window
//! change, a reconciler repair) publishes a [`Topic::Coupon`] notice after its Redis change, and
//! every instance drops the coupon's entry on it ([`Losers::forget`]). The instance that made the
//! edit drops it before acknowledging the edit. Every other instance obeys within the notice's
//! latency (about a millisecond), or within [`CHECK_EVERY`] plus a round trip when the notice was
//! lost (the listener's revision check announces the whole topic).
//!
//! A refusal that was decided before a forget but arrives after it must not be remembered: every
//! forget moves an epoch, a request reads the epoch before its script call, and a remembrance is
//! taken only if the epoch has not moved (checked under the same lock the forget takes).
//!
//! [`Topic::Coupon`]: crate::store::redis::notices::Topic::Coupon
//! [`CHECK_EVERY`]: crate::store::redis::notices::CHECK_EVERY

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, PoisonError},
};

use crate::{admission::refusals::Refusals, domain::coupon::IssueError};

/// `coupon_issue_remembered_total{coupon_id,outcome}`: issue refusals answered from the loser
/// memory, without Redis (`outcome`: `sold_out`, `not_active`, `already_issued`).
pub const COUPON_ISSUE_REMEMBERED_TOTAL: &str = "coupon_issue_remembered_total";

/// A sold-out coupon with more holders than this is not remembered (memory bound: about 20
/// bytes per holder).
pub const MAX_REMEMBERED_HOLDERS: usize = 200_000;

/// Counters of one coupon's remembered refusals, created once per remembrance.
#[derive(Clone)]
struct Counters {
    sold_out: metrics::Counter,
    not_active: metrics::Counter,
    already_issued: metrics::Counter,
}

impl Counters {
    fn new(coupon_id: i64) -> Counters {
        // A handle taken before the recorder exists would count into nothing, forever.
        crate::metrics::install();
        let c = |outcome: &'static str| metrics::counter!(COUPON_ISSUE_REMEMBERED_TOTAL, "coupon_id" => coupon_id.to_string(), "outcome" => outcome);
        Counters { sold_out: c("sold_out"), not_active: c("not_active"), already_issued: c("already_issued") }
    }
}

#[derive(Clone)]
enum Known {
    /// The window ended (or was closed): not active, until an edit says otherwise.
    Ended,
    /// Not open before this instant (epoch ms); forgotten from then on.
    OpensAt(i64),
    /// None left in the window `[starts_ms, ends_ms)`; `holders` hold one each.
    SoldOut { starts_ms: i64, ends_ms: i64, holders: Arc<HashSet<i64>> },
}

struct Entry {
    known: Known,
    counters: Counters,
}

/// The refusals this process remembers, per coupon (one per process).
#[derive(Default)]
pub struct Losers {
    map: Refusals<Entry>,
    /// Coupons whose holders are being read (one reader per coupon at a time).
    loading: Mutex<HashSet<i64>>,
}

impl Losers {
    /// The epoch to pass back to [`Losers::ended`] / [`Losers::sold_out`]: read it before the
    /// script call whose refusal is to be remembered.
    pub fn epoch(&self) -> u64 {
        self.map.epoch()
    }

    /// The refusal `user_id` gets for `coupon_id` at `now_ms`, when it is known; `None` when only
    /// the script can tell.
    pub fn answer(&self, coupon_id: i64, user_id: i64, now_ms: i64) -> Option<IssueError> {
        self.map.with(|entries| Losers::answer_from(entries.get(&coupon_id)?, user_id, now_ms))
    }

    fn answer_from(entry: &Entry, user_id: i64, now_ms: i64) -> Option<IssueError> {
        let (error, counter) = match &entry.known {
            Known::Ended => (IssueError::NotActive, &entry.counters.not_active),
            Known::OpensAt(at) if now_ms < *at => (IssueError::NotActive, &entry.counters.not_active),
            Known::OpensAt(_) => return None,
            Known::SoldOut { starts_ms, ends_ms, .. } if now_ms < *starts_ms || now_ms >= *ends_ms => {
                (IssueError::NotActive, &entry.counters.not_active)
            }
            Known::SoldOut { holders, .. } if holders.contains(&user_id) => {
                (IssueError::AlreadyIssued, &entry.counters.already_issued)
            }
            Known::SoldOut { .. } => (IssueError::SoldOut, &entry.counters.sold_out),
        };
        counter.increment(1);
        Some(error)
    }

    /// Remembers a `NOT_ACTIVE` answered at `now_ms` for the window `[starts_ms, ends_ms)`,
    /// unless a forget happened since `epoch`.
    pub fn not_active(&self, coupon_id: i64, epoch: u64, now_ms: i64, starts_ms: i64, ends_ms: i64) {
        let known = if now_ms >= ends_ms {
            Known::Ended
        } else if now_ms < starts_ms {
            Known::OpensAt(starts_ms)
        } else {
            return; // Inconsistent with the reply; remember nothing.
        };
        self.remember(coupon_id, epoch, known);
    }

    /// Claims the reading of a sold-out coupon's holders; `None` when it is remembered already
    /// or another request reads them. The claim is released when dropped (also when the request
    /// is abandoned while reading), or by [`Losers::sold_out`].
    pub fn claim(&self, coupon_id: i64) -> Option<Claim<'_>> {
        let known = self.map.with(|entries| {
            matches!(entries.get(&coupon_id), Some(Entry { known: Known::SoldOut { .. } | Known::Ended, .. }))
        });
        let claimed = !known && self.loading.lock().unwrap_or_else(PoisonError::into_inner).insert(coupon_id);
        claimed.then_some(Claim { losers: self, coupon_id })
    }

    /// Remembers a `SOLD_OUT` in the window `[starts_ms, ends_ms)` with the coupon's holders
    /// (read after the refusal, under `claim`), unless a forget happened since `epoch`.
    pub fn sold_out(&self, claim: Claim<'_>, epoch: u64, starts_ms: i64, ends_ms: i64, holders: Vec<i64>) {
        if holders.len() <= MAX_REMEMBERED_HOLDERS {
            let holders = Arc::new(holders.into_iter().collect());
            self.remember(claim.coupon_id, epoch, Known::SoldOut { starts_ms, ends_ms, holders });
        }
    }

    fn remember(&self, coupon_id: i64, epoch: u64, known: Known) {
        self.map.remember(coupon_id, epoch, Entry { known, counters: Counters::new(coupon_id) });
    }

    /// Forgets what is known of a coupon (`None`: of every coupon): it may admit again.
    pub fn forget(&self, coupon_id: Option<i64>) {
        self.map.forget(coupon_id);
    }
}

/// The right to read one sold-out coupon's holders (one reader per coupon at a time).
pub struct Claim<'a> {
    losers: &'a Losers,
    coupon_id: i64,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.losers.loading.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.coupon_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sold_out_coupon_answers_in_rule_order_and_a_forget_clears_it() {
        let l = Losers::default();
        let e = l.epoch();
        let claim = l.claim(1).expect("the first claim");
        assert!(l.claim(1).is_none(), "one reader at a time");
        l.sold_out(claim, e, 100, 200, vec![7]);
        assert!(l.claim(1).is_none(), "remembered: nothing left to read");
        assert_eq!(l.answer(1, 8, 150), Some(IssueError::SoldOut));
        assert_eq!(l.answer(1, 7, 150), Some(IssueError::AlreadyIssued));
        assert_eq!(l.answer(1, 8, 200), Some(IssueError::NotActive));
        l.forget(Some(1));
        assert_eq!(l.answer(1, 8, 150), None);
    }

    #[test]
    fn a_refusal_decided_before_a_forget_is_not_remembered() {
        let l = Losers::default();
        let e = l.epoch();
        l.forget(Some(2));
        l.not_active(1, e, 300, 100, 200);
        assert_eq!(l.answer(1, 8, 300), None);
    }

    #[test]
    fn a_window_not_open_yet_is_remembered_only_until_it_opens() {
        let l = Losers::default();
        l.not_active(1, l.epoch(), 50, 100, 200);
        assert_eq!(l.answer(1, 8, 99), Some(IssueError::NotActive));
        assert_eq!(l.answer(1, 8, 100), None);
    }
}
