//! The one integration-test binary: real Postgres, real Redis, real HTTP.

mod helpers;

mod auth;
mod catalog;
mod catalog_admin;
mod errors;
mod idempotency;
mod inventory;
mod observe;
mod popular;
mod seed;
mod wallet;
