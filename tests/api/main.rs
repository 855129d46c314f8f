//! The one integration-test binary: real Postgres, real Redis, real HTTP.

mod helpers;

mod auth;
mod errors;
mod idempotency;
mod inventory;
mod observe;
mod popular;
mod wallet;
