//! The life of an order: its states and the only transitions between them.
//!
//! ```text
//! PENDING --Pay--> PAID --Fulfill--> FULFILLED
//!    |               \--Cancel--> REFUNDED
//!    |--Cancel--> CANCELLED
//!    \--Expire--> EXPIRED
//! ```
//! CANCELLED, REFUNDED and EXPIRED are terminal. Refunds ([`OrderStatus::refundable`]) are not
//! an edge of their own: a PAID or FULFILLED order may be refunded in parts and stays where it
//! is until the last part, which makes it REFUNDED.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Currency, discount::RedemptionError};

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Created; its stock is reserved until `expires_at`.
    Pending,
    /// Paid from the wallet; its stock is confirmed.
    Paid,
    /// Shipped; can no longer be cancelled.
    Fulfilled,
    /// Cancelled before payment; its reservation returned.
    Cancelled,
    /// Cancelled after payment: money, stock and coupon returned.
    Refunded,
    /// Not paid in time; its reservation returned.
    Expired,
}

/// Something that happens to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderEvent {
    /// The customer pays.
    Pay,
    /// The customer (or an operator) cancels.
    Cancel,
    /// The reservation ran out.
    Expire,
    /// The order ships.
    Fulfill,
}

/// Why an event does not apply to an order's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionError {
    /// `ORDER_NOT_PAYABLE`: already paid, cancelled, refunded or fulfilled.
    NotPayable,
    /// `ORDER_EXPIRED`: the order expired; the customer must create it again.
    Expired,
    /// `ORDER_NOT_CANCELLABLE`: fulfilled, or already cancelled/refunded/expired.
    NotCancellable,
    /// Only a PENDING order can expire (the sweeper skips the rest).
    NotPending,
    /// `ORDER_NOT_FULFILLABLE`: only a PAID order can be fulfilled.
    NotPaid,
    /// `ORDER_NOT_REFUNDABLE`: never paid (PENDING, CANCELLED, EXPIRED).
    NotRefundable,
}

impl OrderStatus {
    /// Every state.
    pub const ALL: [OrderStatus; 6] = [
        OrderStatus::Pending,
        OrderStatus::Paid,
        OrderStatus::Fulfilled,
        OrderStatus::Cancelled,
        OrderStatus::Refunded,
        OrderStatus::Expired,
    ];

    /// The stored and wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Paid => "PAID",
            OrderStatus::Fulfilled => "FULFILLED",
            OrderStatus::Cancelled => "CANCELLED",
            OrderStatus::Refunded => "REFUNDED",
            OrderStatus::Expired => "EXPIRED",
        }
    }

    /// Parses the stored spelling.
    pub fn parse(s: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Whether no [`OrderEvent`] can move the order any more (a FULFILLED one may still be refunded).
    pub fn is_terminal(self) -> bool {
        !matches!(self, OrderStatus::Pending | OrderStatus::Paid)
    }

    /// The state after `event`, or why it does not apply.
    pub fn apply(self, event: OrderEvent) -> Result<OrderStatus, TransitionError> {
        use OrderEvent as E;
        use OrderStatus as S;
        match (self, event) {
            (S::Pending, E::Pay) => Ok(S::Paid),
            (S::Pending, E::Cancel) => Ok(S::Cancelled),
            (S::Pending, E::Expire) => Ok(S::Expired),
            (S::Paid, E::Cancel) => Ok(S::Refunded),
            (S::Paid, E::Fulfill) => Ok(S::Fulfilled),
            (S::Expired, E::Pay) => Err(TransitionError::Expired),
            (_, E::Pay) => Err(TransitionError::NotPayable),
            (_, E::Cancel) => Err(TransitionError::NotCancellable),
            (_, E::Expire) => Err(TransitionError::NotPending),
            (_, E::Fulfill) => Err(TransitionError::NotPaid),
        }
    }

    /// Whether a refund may be asked of the order: a PAID or FULFILLED one, or a REFUNDED one,
    /// which has nothing left (so the answer is `REFUND_EXCEEDS_PAID`, not a state error).
    pub fn refundable(self) -> Result<(), TransitionError> {
        match self {
            OrderStatus::Paid | OrderStatus::Fulfilled | OrderStatus::Refunded => Ok(()),
            _ => Err(TransitionError::NotRefundable),
        }
    }

    /// Paying at `now`: like [`OrderStatus::apply`] with `Pay`, except that a PENDING order whose
    /// reservation ran out (the sweeper has not caught it yet) is already expired.
    pub fn pay_at(self, expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<OrderStatus, TransitionError> {
        if self == OrderStatus::Pending && expires_at <= now {
            return Err(TransitionError::Expired);
        }
        self.apply(OrderEvent::Pay)
    }
}

/// A business rule said no; each maps to one contract error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// `USER_NOT_FOUND`.
    UserNotFound,
    /// `PRODUCT_OPTION_NOT_FOUND` (also for products not on sale).
    OptionNotFound {
        /// The option asked for.
        option_id: i64,
    },
    /// `MARKET_MISMATCH`: the option has no price in the user's currency.
    MarketMismatch {
        /// The option asked for.
        option_id: i64,
    },
    /// `INSUFFICIENT_STOCK`.
    InsufficientStock {
        /// The option short of stock.
        option_id: i64,
        /// What can still be sold.
        available: i64,
        /// What was asked for.
        requested: i64,
    },
    /// `EMPTY_ORDER`.
    EmptyOrder,
    /// `CART_ITEM_NOT_FOUND`.
    CartItemNotFound,
    /// `ORDER_NOT_FOUND` (also for another user's order).
    OrderNotFound,
    /// `ORDER_NOT_PAYABLE` / `ORDER_EXPIRED` / `ORDER_NOT_CANCELLABLE`.
    Transition(TransitionError),
    /// A coupon check failed.
    Coupon(RedemptionError),
    /// `INSUFFICIENT_BALANCE`.
    InsufficientBalance {
        /// The wallet's currency.
        currency: Currency,
        /// The wallet balance.
        balance: i64,
        /// What the payment needs.
        required: i64,
    },
    /// `REFUND_EXCEEDS_PAID`: more money or units than were paid for and not refunded yet.
    RefundExceedsPaid {
        /// The option asked for (None: an amount refund).
        option_id: Option<i64>,
        /// Units (items) or minor units (amount) still refundable.
        refundable: i64,
        /// What was asked for.
        requested: i64,
    },
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The legal edges, written out independently of `apply`.
    const LEGAL: [(OrderStatus, OrderEvent, OrderStatus); 5] = [
        (OrderStatus::Pending, OrderEvent::Pay, OrderStatus::Paid),
        (OrderStatus::Pending, OrderEvent::Cancel, OrderStatus::Cancelled),
        (OrderStatus::Pending, OrderEvent::Expire, OrderStatus::Expired),
        (OrderStatus::Paid, OrderEvent::Cancel, OrderStatus::Refunded),
        (OrderStatus::Paid, OrderEvent::Fulfill, OrderStatus::Fulfilled),
    ];

    fn any_event() -> impl Strategy<Value = OrderEvent> {
        prop_oneof![
            Just(OrderEvent::Pay),
            Just(OrderEvent::Cancel),
            Just(OrderEvent::Expire),
            Just(OrderEvent::Fulfill)
        ]
    }

    #[test]
    fn errors_map_to_the_contract_codes() {
        assert_eq!(OrderStatus::Paid.apply(OrderEvent::Pay), Err(TransitionError::NotPayable));
        assert_eq!(OrderStatus::Cancelled.apply(OrderEvent::Pay), Err(TransitionError::NotPayable));
        assert_eq!(OrderStatus::Expired.apply(OrderEvent::Pay), Err(TransitionError::Expired));
        assert_eq!(OrderStatus::Fulfilled.apply(OrderEvent::Cancel), Err(TransitionError::NotCancellable));
        assert_eq!(OrderStatus::Expired.apply(OrderEvent::Cancel), Err(TransitionError::NotCancellable));
    }

    #[test]
    fn a_pending_order_past_its_expiry_cannot_be_paid() {
        let now = Utc::now();
        assert_eq!(OrderStatus::Pending.pay_at(now, now), Err(TransitionError::Expired));
        assert_eq!(OrderStatus::Pending.pay_at(now + chrono::Duration::seconds(1), now), Ok(OrderStatus::Paid));
        assert_eq!(OrderStatus::Paid.pay_at(now - chrono::Duration::seconds(1), now), Err(TransitionError::NotPayable));
    }

    #[test]
    fn statuses_round_trip_through_their_spelling() {
        for s in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(OrderStatus::parse("pending"), None);
    }

    proptest! {
        #[test]
        fn random_event_sequences_never_leave_the_legal_graph(events in proptest::collection::vec(any_event(), 0..30)) {
            let mut state = OrderStatus::Pending;
            for e in events {
                match state.apply(e) {
                    Ok(next) => {
                        prop_assert!(LEGAL.contains(&(state, e, next)), "{state:?} --{e:?}--> {next:?}");
                        state = next;
                    }
                    Err(_) => prop_assert!(!LEGAL.iter().any(|(from, ev, _)| *from == state && *ev == e)),
                }
            }
        }

        #[test]
        fn terminal_states_stay_terminal(events in proptest::collection::vec(any_event(), 1..10)) {
            for start in OrderStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
                for e in &events {
                    prop_assert!(start.apply(*e).is_err());
                }
            }
        }
    }
}
