//! Waiting-room routes (api.md "Waiting room"): configure a room per coupon or product, enter
//! it, poll a ticket. The protected calls themselves (`POST /coupons/{id}/issue`, `POST
//! /orders`) read the pass header through [`Pass`].

use axum::{
    Json,
    extract::{FromRequestParts, State},
    http::{HeaderValue, StatusCode, request::Parts},
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{
    auth::{Caller, Role},
    error::{ApiError, ErrorBody, ErrorCode},
    extract,
};
use crate::{
    domain::waiting_room::{Event, EventKind, is_ticket_id},
    services::{
        AppState,
        waiting_room::{self, Room, Settings, Ticket},
    },
};

/// The header a protected call carries its pass in.
pub const PASS_HEADER: &str = "x-waiting-room-pass";
/// Longest `X-Waiting-Room-Pass` value read (a few passes, comma separated).
const MAX_PASS_HEADER: usize = 2048;

/// The pass header of a protected call, as sent. Only this header is taken from the request
/// (the protected calls are the hottest routes: a copy of every header cost allocations).
pub struct Pass(Option<HeaderValue>);

impl<S: Send + Sync> FromRequestParts<S> for Pass {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Pass(parts.headers.get(PASS_HEADER).cloned()))
    }
}

impl Pass {
    /// The header, if present: at most [`MAX_PASS_HEADER`] printable ASCII characters, as the
    /// document declares, or 400 naming it.
    pub fn value(&self) -> Result<Option<&str>, ApiError> {
        let Some(v) = &self.0 else { return Ok(None) };
        match v.to_str() {
            Ok(s) if s.len() <= MAX_PASS_HEADER && s.bytes().all(|b| (0x20..=0x7e).contains(&b)) => Ok(Some(s)),
            _ => Err(ApiError::validation(
                "X-Waiting-Room-Pass",
                format!("at most {MAX_PASS_HEADER} printable ASCII characters"),
            )),
        }
    }
}

/// The waiting-room routes (mounted under `/api`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(put_room, get_room)).routes(routes!(enter)).routes(routes!(poll))
}

/// A room's settings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoomSettings {
    /// While enabled, the event's protected calls require a pass.
    pub enabled: bool,
    /// New admissions per second.
    #[schema(minimum = 1, maximum = 1000000)]
    pub admit_per_second: u32,
    /// Most admitted tickets whose passes are alive at once.
    #[schema(minimum = 1, maximum = 10000000)]
    pub max_active: u32,
    /// Lifetime of a pass, seconds.
    #[schema(minimum = 1, maximum = 86400)]
    pub pass_ttl_secs: u32,
    /// Everyone entering before it is shuffled at it; later entrants follow arrival. Changing
    /// it after the room opened has no effect.
    pub opens_at: DateTime<Utc>,
    /// `true`: every pass issued so far stops working (within about 250 ms on every
    /// instance) and every admitted ticket becomes EXPIRED.
    #[serde(default)]
    pub revoke_passes: bool,
}

/// A room with its counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomView {
    /// `coupon` or `product`.
    pub event_type: EventKind,
    /// The coupon or product id.
    pub event_id: i64,
    /// Whether its calls require a pass.
    pub enabled: bool,
    /// New admissions per second.
    pub admit_per_second: u64,
    /// Most passes alive at once.
    pub max_active: u64,
    /// Pass lifetime, seconds.
    pub pass_ttl_secs: u64,
    /// The opening.
    pub opens_at: DateTime<Utc>,
    /// The pass epoch (a revoke bumps it).
    pub pass_epoch: u64,
    /// Entered and not admitted yet.
    pub waiting: u64,
    /// Admitted so far.
    pub admitted: u64,
    /// Admitted with passes alive (as of the last admission step).
    pub active: u64,
}

impl RoomView {
    fn of(event: Event, r: &Room) -> RoomView {
        let s = &r.settings;
        RoomView {
            event_type: event.kind,
            event_id: event.id,
            enabled: s.enabled,
            admit_per_second: s.admit_per_second,
            max_active: s.max_active,
            pass_ttl_secs: s.pass_ttl_secs,
            opens_at: DateTime::from_timestamp_millis(s.opens_ms).unwrap_or_default(),
            pass_epoch: r.epoch,
            waiting: r.waiting,
            admitted: r.admitted,
            active: r.active,
        }
    }
}

/// The event a room belongs to, as the path names it.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EventPath {
    /// `coupon` or `product`.
    pub event_type: EventKind,
    /// The coupon's or product's id.
    #[param(minimum = 1)]
    pub event_id: i64,
}

/// A ticket of a room, as the path names it.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TicketPath {
    /// `coupon` or `product`.
    pub event_type: EventKind,
    /// The coupon's or product's id.
    #[param(minimum = 1)]
    pub event_id: i64,
    // Its pattern is written into the document by `contract` (`TICKET_ID_PATTERN`).
    /// The ticket id entering answered: its arrival number, `-`, 24 lowercase hex digits.
    pub ticket_id: String,
}

/// Coupons' rooms are `marketing_manager`'s, products' `inventory_manager`'s (`ops_admin` both).
fn ensure_manages(caller: &Caller, kind: EventKind) -> Result<(), ApiError> {
    let role = match kind {
        EventKind::Coupon => Role::MarketingManager,
        EventKind::Product => Role::InventoryManager,
    };
    if caller.has(role) { Ok(()) } else { Err(ApiError::new(ErrorCode::Forbidden)) }
}

fn event(kind: EventKind, id: i64) -> Result<Event, ApiError> {
    if id < 1 {
        return Err(ApiError::validation("event_id", "must be a positive id"));
    }
    Ok(Event { kind, id })
}

/// Creates or changes an event's waiting room (`marketing_manager` for a coupon,
/// `inventory_manager` for a product).
#[utoipa::path(
    put, path = "/admin/waiting-rooms/{event_type}/{event_id}", tag = "waiting-room", request_body = RoomSettings,
    params(EventPath),
    security(("bearer" = [])),
    responses(
        (status = 200, body = RoomView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "COUPON_NOT_FOUND, PRODUCT_NOT_FOUND"),
    ),
)]
async fn put_room(
    State(state): State<AppState>,
    caller: Caller,
    extract::Path(path): extract::Path<EventPath>,
    extract::Json(body): extract::Json<RoomSettings>,
) -> Result<Json<RoomView>, ApiError> {
    ensure_manages(&caller, path.event_type)?;
    let event = event(path.event_type, path.event_id)?;
    let within = |field: &str, v: u32, max: u32| {
        if (1..=max).contains(&v) {
            Ok(u64::from(v))
        } else {
            Err(ApiError::validation(field, format!("must be 1 to {max}")))
        }
    };
    let settings = Settings {
        enabled: body.enabled,
        admit_per_second: within("admit_per_second", body.admit_per_second, 1_000_000)?,
        max_active: within("max_active", body.max_active, 10_000_000)?,
        pass_ttl_secs: within("pass_ttl_secs", body.pass_ttl_secs, 86_400)?,
        opens_ms: body.opens_at.timestamp_millis(),
    };
    let room = waiting_room::configure(&state, &caller, event, settings, body.revoke_passes).await?;
    Ok(Json(RoomView::of(event, &room)))
}

/// An event's waiting room with its counts.
#[utoipa::path(
    get, path = "/admin/waiting-rooms/{event_type}/{event_id}", tag = "waiting-room",
    params(EventPath),
    security(("bearer" = [])),
    responses(
        (status = 200, body = RoomView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "WAITING_ROOM_NOT_FOUND"),
    ),
)]
async fn get_room(
    State(state): State<AppState>,
    caller: Caller,
    extract::Path(path): extract::Path<EventPath>,
) -> Result<Json<RoomView>, ApiError> {
    ensure_manages(&caller, path.event_type)?;
    let event = event(path.event_type, path.event_id)?;
    Ok(Json(RoomView::of(event, &waiting_room::room(&state, event).await?)))
}

/// Enters the caller into the event's waiting room: 201 with a new ticket, 200 with the same
/// ticket when the caller had entered already.
#[utoipa::path(
    post, path = "/waiting-rooms/{event_type}/{event_id}/tickets", tag = "waiting-room",
    params(EventPath),
    security(("bearer" = [])),
    responses(
        (status = 201, body = Ticket, description = "A new ticket"),
        (status = 200, body = Ticket, description = "The caller's ticket (entered before)"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "WAITING_ROOM_NOT_FOUND: no enabled room"),
    ),
)]
async fn enter(
    State(state): State<AppState>,
    caller: Caller,
    extract::Path(path): extract::Path<EventPath>,
) -> Result<(StatusCode, Json<Ticket>), ApiError> {
    let (ticket, new) = waiting_room::enter(&state, event(path.event_type, path.event_id)?, caller.user_id).await?;
    Ok((if new { StatusCode::CREATED } else { StatusCode::OK }, Json(ticket)))
}

/// Where the caller's ticket stands; an ADMITTED ticket carries its pass.
#[utoipa::path(
    get, path = "/waiting-rooms/{event_type}/{event_id}/tickets/{ticket_id}", tag = "waiting-room",
    params(TicketPath),
    security(("bearer" = [])),
    responses(
        (status = 200, body = Ticket),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "TICKET_NOT_FOUND, WAITING_ROOM_NOT_FOUND"),
    ),
)]
async fn poll(
    State(state): State<AppState>,
    caller: Caller,
    extract::Path(path): extract::Path<TicketPath>,
) -> Result<Json<Ticket>, ApiError> {
    if !is_ticket_id(&path.ticket_id) {
        return Err(ApiError::validation("ticket_id", "not a ticket id (a number, `-`, 24 hex digits)"));
    }
    Ok(Json(waiting_room::poll(&state, event(path.event_type, path.event_id)?, caller.user_id, &path.ticket_id).await?))
}
