//! The service layer: one module per domain. A handler parses and authorises, then calls one
//! service function; a worker runs service (or admission) functions on a schedule or a stream.
//!
//! Services own what spans several store calls: transactions, the V1/V2 choice (coupon issuing,
//! order reservation), read-your-writes of V2 admissions, and storing an idempotent answer with
//! the change it describes ([`idempotency::Receipt`]). Each returns domain or store values and
//! an error enum of its own; the HTTP layer maps those to contract codes (`http::error`).

pub mod admin;
pub mod cart;
pub mod catalog;
pub mod coupons;
pub mod health;
pub mod idempotency;
pub mod orders;
pub mod payment;
pub mod popular;
mod state;
pub mod wallet;

pub use state::{AppState, Shared};

pub use crate::store::Fault;

/// `From<sqlx::Error>` and `From<redis::RedisError>` for service errors with a `Fault(Fault)`
/// variant, so `?` works on store calls.
macro_rules! fault_conversions {
    ($($error:ty),+ $(,)?) => {$(
        impl From<sqlx::Error> for $error {
            fn from(e: sqlx::Error) -> Self {
                Self::Fault(e.into())
            }
        }

        impl From<redis::RedisError> for $error {
            fn from(e: redis::RedisError) -> Self {
                Self::Fault(e.into())
            }
        }
    )+};
}
pub(crate) use fault_conversions;
