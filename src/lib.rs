//! Jupang: a flash-sale e-commerce backend.
//!
//! Layers, imports pointing downward only (`scripts/check-layers.sh` checks it):
//! [`http`] (axum: parse, authorise, call one service) -> [`services`] (one module per domain:
//! transactions, the V1/V2 choice, read-your-writes) -> [`admission`] (V2, the Redis-Lua
//! admission engine) -> [`store`] (Postgres and Redis adapters, the stream contract) ->
//! [`domain`] (the business vocabulary in plain Rust). [`workers`] run service and admission
//! functions on a schedule or a stream. [`config`], [`metrics`], [`telemetry`] and [`auth`] are
//! leaves anyone may use; [`app`] is the composition root that wires them all.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admission;
pub mod app;
pub mod auth;
pub mod config;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod services;
pub mod store;
pub mod telemetry;
pub mod workers;

pub use app::{Application, run};
pub use config::Config;
