//! Outbox administration (`/admin/outbox`): list events by delivery status and re-send one.
//! For `ops_admin` and `data_platform` (the platform may ask again for what it lost).

use axum::{Json, extract::State, http::StatusCode, middleware};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use super::{
    auth::{Caller, Role, require_roles},
    error::{ApiError, ErrorBody},
    extract::{Path, Query},
};
use crate::{
    domain::PageRequest,
    services::{
        AppState,
        admin::outbox::{self, OutboxEvent},
    },
};

/// The outbox routes (mounted under `/api`), behind their role gate.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_events))
        .routes(routes!(redeliver))
        .route_layer(middleware::from_fn_with_state(&[Role::OpsAdmin, Role::DataPlatform][..], require_roles))
}

/// Delivery status of an outbox event.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum DeliveryStatus {
    /// Waiting for (or backing off between) delivery attempts.
    Pending,
    /// Acknowledged by the data platform with a 2xx.
    Delivered,
    /// Every attempt failed; re-send it with `POST /admin/outbox/{event_id}/redeliver`.
    Failed,
}

impl DeliveryStatus {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "PENDING",
            DeliveryStatus::Delivered => "DELIVERED",
            DeliveryStatus::Failed => "FAILED",
        }
    }
}

/// Filters and page of the event list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only events in this status (all when absent).
    pub status: Option<DeliveryStatus>,
    /// Page number, from 1.
    pub page: Option<i64>,
    /// Page size, 1-100 (default 20).
    pub size: Option<i64>,
}

/// An outbox event with its delivery state.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// The event id (UUIDv7), also the `Idempotency-Key` of its deliveries.
    pub event_id: Uuid,
    /// `order.created`, `payment.completed`, `coupon.issued`, `coupon.used`, `stock.changed`,
    /// `order.cancelled` or `order.expired`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Delivery status.
    pub status: DeliveryStatus,
    /// Attempts made in the current round (a re-send starts a new round).
    pub attempts: i32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the change happened.
    pub occurred_at: DateTime<Utc>,
    /// When the next attempt is due (while PENDING).
    pub next_attempt_at: DateTime<Utc>,
    /// When the data platform acknowledged it.
    pub delivered_at: Option<DateTime<Utc>>,
    /// The event's fields, as delivered.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl From<OutboxEvent> for EventView {
    fn from(e: OutboxEvent) -> Self {
        let status = match e.status.as_str() {
            "DELIVERED" => DeliveryStatus::Delivered,
            "FAILED" => DeliveryStatus::Failed,
            _ => DeliveryStatus::Pending,
        };
        EventView {
            event_id: e.id,
            kind: e.kind,
            status,
            attempts: e.attempts,
            last_error: e.last_error,
            occurred_at: e.occurred_at,
            next_attempt_at: e.next_attempt_at,
            delivered_at: e.delivered_at,
            payload: e.payload,
        }
    }
}

/// A page of events.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// The events, newest first.
    pub items: Vec<EventView>,
    /// This page's number, from 1.
    pub page: i64,
    /// The page size.
    pub size: i64,
    /// Events matching the filter, on all pages.
    pub total: i64,
}

/// Outbox events, newest first, e.g. `?status=FAILED` for those waiting to be re-sent.
#[utoipa::path(
    get, path = "/admin/outbox", tag = "admin", params(ListQuery), security(("bearer" = [])),
    responses(
        (status = 200, body = EventPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    ),
)]
async fn list_events(State(state): State<AppState>, Query(q): Query<ListQuery>) -> Result<Json<EventPage>, ApiError> {
    let page = PageRequest::new(q.page, q.size)?;
    let (items, total) = outbox::list(&state, q.status.map(DeliveryStatus::as_str), page).await?;
    let items = items.into_iter().map(EventView::from).collect();
    Ok(Json(EventPage { items, page: page.page, size: page.size, total }))
}

/// Re-sends an event: a FAILED (or already DELIVERED) event gets a new round of attempts, due
/// now; a PENDING one is already on its way and is left as it is. Deliveries carry the same
/// `Idempotency-Key`, so the platform can drop duplicates.
#[utoipa::path(
    post, path = "/admin/outbox/{event_id}/redeliver", tag = "admin", security(("bearer" = [])),
    params(("event_id" = Uuid, Path, description = "Event id")),
    responses(
        (status = 202, body = EventView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
)]
async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    Path(event_id): Path<Uuid>,
) -> Result<(StatusCode, Json<EventView>), ApiError> {
    let event = outbox::redeliver(&state, &caller, event_id).await?;
    Ok((StatusCode::ACCEPTED, Json(event.into())))
}
