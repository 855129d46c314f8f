//! The one integration-test binary: real Postgres, real Redis, real HTTP.

mod helpers;
mod proxy;

mod auth;
mod cli;
mod errors;
mod observe;
mod outbox;
