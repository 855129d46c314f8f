//! The one integration-test binary: real Postgres, real Redis, real HTTP.

mod fixtures;
mod helpers;

mod auth;
mod cart;
mod errors;
mod expiry;
mod observe;
mod order_concurrency;
mod orders;
mod payment;
