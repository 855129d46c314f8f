//! The service layer: one module per domain. A handler parses and authorises, then calls one
//! service function; a worker runs service (or admission) functions on a schedule or a stream.
//!
//! Services own what spans several store calls: transactions, the V1/V2 choice (coupon issuing,
//! order reservation), read-your-writes of V2 admissions, and storing an idempotent answer with
//! the change it describes ([`idempotency::Receipt`]). Each returns domain or store values and
//! an error enum of its own; the HTTP layer maps those to contract codes (`http::error`).

pub mod admin;
pub mod audit;
pub mod cart;
pub mod catalog;
pub mod catalog_cache;
pub mod coupons;
pub mod guest_carts;
pub mod health;
pub mod idempotency;
pub mod orders;
pub mod payment;
pub mod payment_batch;
pub mod payment_records;
pub mod popular;
pub mod profiles;
mod state;
pub mod waiting_room;
pub mod wallet;

pub use state::{AppState, Shared};

pub use crate::store::Fault;
pub(crate) use crate::store::fault_conversions;
