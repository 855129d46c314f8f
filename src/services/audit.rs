//! The one audit log of admin writes (api.md "Administration"): [`record`] is the only way in,
//! called with the open transaction of the change so the entry commits (or rolls back) with it;
//! a refused request therefore leaves none. [`list`] reads it back.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;

pub use crate::store::pg::audit::{Change, Entry, Filter};
use crate::{
    auth::{Caller, Role},
    domain::PageRequest,
    services::{AppState, Fault},
    store::pg::audit,
};

/// Entity type of a user profile.
pub const USER: &str = "user";
/// Entity type of a product (its text, flags, options and prices).
pub const PRODUCT: &str = "product";
/// Entity type of a product option's stock: the inventory entries an `inventory_manager` reads.
pub const PRODUCT_OPTION: &str = "product_option";
/// Entity type of a coupon campaign (create, edit, revokes of its user coupons).
pub const COUPON: &str = "coupon";
/// Entity type of an outbox event (redelivery).
pub const OUTBOX_EVENT: &str = "outbox_event";
/// Entity type of an order (fulfilment, refunds by an agent).
pub const ORDER: &str = "order";
/// Entity type of an FX rate (its id is the pair, `USD/KRW`).
pub const FX_RATE: &str = "fx_rate";
/// Entity type of a job run by hand (its id is the job, `popular_products`).
pub const JOB: &str = "job";
/// Entity type of a waiting room (its id is the event, `coupon:5`, `product:7`).
pub const WAITING_ROOM: &str = "waiting_room";

/// The claim spelling of a role (`inventory_manager`).
fn role_name(role: Role) -> String {
    serde_json::to_value(role).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// A value as audit JSON (`Value::Null` for what cannot be serialised: never for our types).
pub fn json_of(value: &impl Serialize) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Writes one entry for `actor`'s change inside `tx`, the transaction of the change itself;
/// answers the entry's time.
pub async fn record(tx: &mut PgConnection, actor: &Caller, change: Change<'_>) -> Result<DateTime<Utc>, Fault> {
    let roles: Vec<String> = actor.roles.iter().copied().map(role_name).collect();
    Ok(audit::insert(tx, actor.user_id, &roles, &change).await?.1)
}

/// A page of the log, newest first, with how many entries match.
pub async fn list(state: &AppState, filter: &Filter, page: PageRequest) -> Result<(Vec<Entry>, i64), Fault> {
    Ok(audit::list(&state.db, filter, page.size, page.offset()).await?)
}
