//! The audit log of admin writes: `GET /admin/audit` (`ops_admin`; an `inventory_manager` reads
//! the inventory entries, entity type `product_option`, only).

use axum::{Json, extract::State, middleware};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::{Caller, Role, require_roles},
    error::{ApiError, ErrorBody, ErrorCode},
    extract::Query,
};
use crate::{
    domain::PageRequest,
    services::{
        AppState,
        audit::{self, Entry, Filter},
    },
};

/// The audit route (mounted under `/api`): `inventory_manager` passes the gate, and is then
/// held to the inventory entries.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_entries))
        .route_layer(middleware::from_fn_with_state(&[Role::InventoryManager][..], require_roles))
}

/// The longest text filter, in characters (as declared on each).
const MAX_FILTER: usize = 100;

/// A text filter of at most [`MAX_FILTER`] characters, as given (an entity id is matched exactly).
fn bounded(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.chars().count() > MAX_FILTER => {
            Err(ApiError::validation(field, format!("must be at most {MAX_FILTER} characters")))
        }
        v => Ok(v),
    }
}

/// Filters and page of the log.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries about this kind of thing: `user`, `product`, `product_option` (stock),
    /// `coupon`, `order`, `fx_rate`, `job`, `waiting_room`, `outbox_event`.
    #[param(max_length = 100)] // MAX_FILTER
    pub entity_type: Option<String>,
    /// Only entries about this id (as text: `42`, or an event's UUID).
    #[param(max_length = 100)] // MAX_FILTER
    pub entity_id: Option<String>,
    /// Only entries by this user id.
    #[param(minimum = 1)]
    pub actor: Option<i64>,
    /// Page number, from 1.
    pub page: Option<i64>,
    /// Page size, 1-100 (default 20).
    pub size: Option<i64>,
}

/// One admin write.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    /// Entry id.
    pub id: i64,
    /// Who (the token's user id).
    pub actor: i64,
    /// The actor's roles at the time.
    pub roles: Vec<String>,
    /// What was done (`product.update`, `coupon.revoke`, `inventory.adjust`...).
    pub action: String,
    /// The kind of thing changed.
    pub entity_type: String,
    /// Which one.
    pub entity_id: String,
    /// Its state before (`null`: it did not exist).
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    /// Its state after.
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
    /// Why, when the request said.
    pub reason: Option<String>,
    /// When (the change's transaction).
    pub at: DateTime<Utc>,
}

impl From<Entry> for AuditEntryView {
    fn from(e: Entry) -> Self {
        AuditEntryView {
            id: e.id,
            actor: e.actor,
            roles: e.roles,
            action: e.action,
            entity_type: e.entity_type,
            entity_id: e.entity_id,
            before: e.before,
            after: e.after,
            reason: e.reason,
            at: e.at,
        }
    }
}

/// A page of the log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub items: Vec<AuditEntryView>,
    /// Page number, from 1.
    pub page: i64,
    /// Page size.
    pub size: i64,
    /// Entries matching, on all pages.
    pub total: i64,
}

/// The audit log, newest first, filtered (`ops_admin`; `inventory_manager`: inventory entries).
#[utoipa::path(
    get, path = "/admin/audit", tag = "admin", params(AuditQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, description = "FORBIDDEN: an inventory_manager asking for other entries", body = ErrorBody),
    ),
)]
async fn list_entries(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let page = PageRequest::new(q.page, q.size)?;
    let mut filter = Filter {
        entity_type: bounded("entity_type", q.entity_type)?,
        entity_id: bounded("entity_id", q.entity_id)?,
        actor: q.actor,
    };
    if filter.actor.is_some_and(|a| a < 1) {
        return Err(ApiError::validation("actor", "must be a user id, 1 or more"));
    }
    if !caller.has(Role::OpsAdmin) {
        // Through the gate as an inventory manager: the stock entries only.
        match filter.entity_type.as_deref() {
            None => filter.entity_type = Some(audit::PRODUCT_OPTION.to_owned()),
            Some(t) if t == audit::PRODUCT_OPTION => {}
            Some(_) => return Err(ApiError::new(ErrorCode::Forbidden)),
        }
    }
    let (items, total) = audit::list(&state, &filter, page).await?;
    Ok(Json(AuditPage { items: items.into_iter().map(Into::into).collect(), page: page.page, size: page.size, total }))
}
