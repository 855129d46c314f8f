//! The waiting room (api.md "Waiting room"; seed 004 Phase 3, 대기열): a fair admission queue
//! in front of a sale expected to exceed capacity.
//!
//! The line is counters in Redis (`store::redis::waiting_room`): a ticket's position comes from
//! an atomic counter (the early entrants' from one seeded shuffle at opening,
//! `domain::waiting_room::position`), and admission advances a serving counter, in one script,
//! at `admit_per_second`, never past `max_active` live passes ([`crate::workers::waiting_room`]
//! runs the steps in every instance). A pass is signed ([`pass`]) and checked in process
//! against the rooms every instance caches ([`registry`]).

pub mod pass;
pub mod registry;

pub use crate::domain::waiting_room::{Ticket, TicketStatus};
use chrono::{DateTime, Utc};
use rand::Rng;

use serde_json::json;

use super::{
    AppState, Fault,
    audit::{self, Change},
    fault_conversions,
};
pub use crate::store::redis::waiting_room::Settings;
use crate::{
    auth::Caller,
    domain::waiting_room::{self as line, Event, EventKind},
    store::{
        pg,
        redis::{
            notices::Topic,
            waiting_room::{Configured, EnterRefusal, RoomStore},
        },
    },
};
pub use pass::{Refusal, Signer};
pub use registry::Registry;

/// `waiting_room_waiting{event}`: arrivals not admitted yet (set by every admission step).
pub const WAITING: &str = "waiting_room_waiting";
/// `waiting_room_admitted_total{event}`: positions admitted (by the steps of this instance).
pub const ADMITTED_TOTAL: &str = "waiting_room_admitted_total";
/// `waiting_room_pass_rejected_total{event,reason}`: protected calls refused for their pass.
pub const PASS_REJECTED_TOTAL: &str = "waiting_room_pass_rejected_total";

/// Describes the waiting room's metrics.
pub fn register_metrics() {
    metrics::describe_gauge!(WAITING, metrics::Unit::Count, "Entrants of a waiting room not admitted yet");
    metrics::describe_counter!(ADMITTED_TOTAL, metrics::Unit::Count, "Waiting-room positions admitted");
    metrics::describe_counter!(PASS_REJECTED_TOTAL, metrics::Unit::Count, "Protected calls refused for their pass");
}

/// Creates an event's series at zero (when its room becomes known).
pub fn touch_metrics(event: Event) {
    let e = event.to_string();
    metrics::counter!(ADMITTED_TOTAL, "event" => e.clone()).increment(0);
    for r in Refusal::ALL {
        metrics::counter!(PASS_REJECTED_TOTAL, "event" => e.clone(), "reason" => r.as_str()).increment(0);
    }
}

/// The waiting rooms of one process: Redis state, signing, and the cached rooms.
#[derive(Clone)]
pub struct WaitingRooms {
    /// The rooms' Redis keys and scripts.
    pub store: RoomStore,
    /// Ticket ids and passes.
    pub signer: Signer,
    /// The rooms every protected call is checked against.
    pub registry: Registry,
}

impl WaitingRooms {
    /// The rooms of a deployment (registry empty until [`Registry::reload`]).
    pub fn new(store: RoomStore, jwt_secret: &[u8]) -> WaitingRooms {
        WaitingRooms { registry: Registry::new(store.clone()), store, signer: Signer::new(jwt_secret) }
    }
}

/// Why a waiting-room request failed.
#[derive(Debug, thiserror::Error)]
pub enum WaitingRoomError {
    /// The coupon or product does not exist.
    #[error("no such {0:?}")]
    EventNotFound(EventKind),
    /// No room is configured for the event, or it is disabled (entering).
    #[error("no waiting room")]
    NoRoom,
    /// The ticket id is not one of the caller's tickets for this event.
    #[error("no such ticket")]
    TicketNotFound,
    /// A protected call without a valid pass.
    #[error("waiting-room pass refused ({})", .1.as_str())]
    PassRequired(Event, Refusal),
    /// A store failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

fault_conversions!(WaitingRoomError);

/// A room as the admin reads it.
#[derive(Debug, Clone, Copy)]
pub struct Room {
    /// Its settings.
    pub settings: Settings,
    /// The pass epoch.
    pub epoch: u64,
    /// Arrivals not admitted yet.
    pub waiting: u64,
    /// Positions admitted so far.
    pub admitted: u64,
    /// Admitted, with passes still alive (as of the last admission step). Above `max_active`
    /// after the cap was lowered, until enough of those passes expire.
    pub active: u64,
}

/// Creates or changes the room of an event that exists for `actor` (audited); `revoke`
/// invalidates every pass issued so far. Settings the room already has change nothing: no
/// entry, no write, no notice. Every instance follows within the notices' bound ([`registry`]).
pub async fn configure(
    state: &AppState,
    actor: &Caller,
    event: Event,
    settings: Settings,
    revoke: bool,
) -> Result<Room, WaitingRoomError> {
    let exists = match event.kind {
        EventKind::Coupon => pg::coupons::find(&state.db, event.id).await?.is_some(),
        EventKind::Product => pg::coupons::products_exist(&state.db, &[event.id]).await?,
    };
    if !exists {
        return Err(WaitingRoomError::EventNotFound(event.kind));
    }
    let rooms = &state.waiting_rooms;
    let before = rooms.store.settings(event).await?.map(|c| c.settings);
    if before == Some(settings) && !revoke {
        // Nothing to write, audit or announce: every instance already enforces these settings.
        return room(state, event).await;
    }
    // The room lives in Redis: its audit entry is written first in a transaction committed only
    // once Redis took the change, so a refused or failed change leaves no entry.
    let mut tx = state.db.begin().await?;
    audit::record(&mut tx, actor, room_change(event, before, settings, revoke)).await?;
    rooms.store.configure(event, settings, revoke).await?;
    tx.commit().await?;
    state.notices.publish(Topic::WaitingRoom, Some(event.id)).await?;
    // This instance enforces it before answering; the others on their notice.
    rooms.registry.reload().await?;
    room(state, event).await
}

/// The audit entry of a room's (re)configuration.
fn room_change(event: Event, before: Option<Settings>, after: Settings, revoke: bool) -> Change<'static> {
    let view = |s: Settings| {
        json!({
            "enabled": s.enabled, "admit_per_second": s.admit_per_second, "max_active": s.max_active,
            "pass_ttl_secs": s.pass_ttl_secs, "opens_at": DateTime::from_timestamp_millis(s.opens_ms),
        })
    };
    let mut after = view(after);
    after["revoke_passes"] = json!(revoke);
    Change {
        action: "waiting_room.configure",
        entity_type: audit::WAITING_ROOM,
        entity_id: event.to_string(),
        before: before.map(view),
        after: Some(after),
        reason: None,
    }
}

/// The room of an event with its counts.
pub async fn room(state: &AppState, event: Event) -> Result<Room, WaitingRoomError> {
    let store = &state.waiting_rooms.store;
    let c = store.settings(event).await?.ok_or(WaitingRoomError::NoRoom)?;
    let l = store.line(event).await?;
    Ok(Room {
        settings: c.settings,
        epoch: c.epoch,
        waiting: l.seq.saturating_sub(l.admitted),
        admitted: l.admitted,
        active: l.admitted.saturating_sub(l.expired_to),
    })
}

/// Enters `user_id` into the event's enabled room (once: entering again returns the same
/// ticket). The flag says whether the ticket is new.
pub async fn enter(state: &AppState, event: Event, user_id: i64) -> Result<(Ticket, bool), WaitingRoomError> {
    let rooms = &state.waiting_rooms;
    let seed = rand::rng().random::<u64>();
    let (seq, new) = rooms.store.enter(event, user_id, seed).await?.map_err(|r| match r {
        EnterRefusal::NoRoom | EnterRefusal::Disabled => WaitingRoomError::NoRoom,
    })?;
    let ticket_id = rooms.signer.ticket_id(event, user_id, seq);
    Ok((ticket(state, event, user_id, seq, ticket_id).await?, new))
}

/// Where the caller's ticket stands; an admitted one carries its pass.
pub async fn poll(state: &AppState, event: Event, user_id: i64, ticket_id: &str) -> Result<Ticket, WaitingRoomError> {
    let seq =
        state.waiting_rooms.signer.ticket_seq(event, user_id, ticket_id).ok_or(WaitingRoomError::TicketNotFound)?;
    ticket(state, event, user_id, seq, ticket_id.to_owned()).await
}

async fn settings_of(state: &AppState, event: Event) -> Result<Configured, WaitingRoomError> {
    let rooms = &state.waiting_rooms;
    match rooms.registry.get(event) {
        Some(c) => Ok(c),
        // Configured a moment ago on another instance, its notice not here yet.
        None => rooms.store.settings(event).await?.ok_or(WaitingRoomError::NoRoom),
    }
}

async fn ticket(
    state: &AppState,
    event: Event,
    user_id: i64,
    seq: u64,
    ticket_id: String,
) -> Result<Ticket, WaitingRoomError> {
    let rooms = &state.waiting_rooms;
    let s = settings_of(state, event).await?.settings;
    let l = rooms.store.line(event).await?;
    let now_ms = Utc::now().timestamp_millis();
    let mut t = Ticket {
        ticket_id,
        status: TicketStatus::Waiting,
        position: line::position(seq, l.early, l.seed),
        people_ahead: None,
        estimated_wait_secs: 0,
        poll_after_ms: line::MIN_POLL_MS,
        pass: None,
        pass_expires_at: None,
    };
    let Some(p) = t.position else {
        // Not open: wait for the opening, then (at worst) for everyone who entered early.
        let until_open_ms = (s.opens_ms - now_ms).max(0) as u64;
        let after = line::estimated_wait_secs(l.seq.saturating_sub(1), 0, s.admit_per_second);
        t.estimated_wait_secs = until_open_ms.div_ceil(1000) + after;
        t.poll_after_ms = line::poll_after_ms(until_open_ms).min(until_open_ms.max(line::MIN_POLL_MS));
        return Ok(t);
    };
    if p > l.admitted {
        let ahead = p - l.admitted - 1;
        t.people_ahead = Some(ahead);
        t.estimated_wait_secs = line::estimated_wait_secs(ahead, l.measured_milli, s.admit_per_second);
        // When to poll comes from the configured rate, which the real one never exceeds (the
        // cap only slows it): nobody is told to come back after its turn has passed.
        t.poll_after_ms = line::poll_after_ms(line::estimated_wait_ms(ahead, 0, s.admit_per_second));
        return Ok(t);
    }
    t.people_ahead = Some(0);
    t.poll_after_ms = line::MAX_POLL_MS;
    t.status = TicketStatus::Expired;
    if p > l.expired_to
        && let Some(expires_ms) = rooms.store.pass_expiry(event, p).await?
        && expires_ms > now_ms
    {
        t.status = TicketStatus::Admitted;
        let claims = pass::PassClaims { event, user_id, epoch: l.epoch, expires_ms };
        t.pass = Some(rooms.signer.pass(&claims));
        t.pass_expires_at = DateTime::from_timestamp_millis(expires_ms);
    }
    Ok(t)
}

/// A protected call of `user_id` on `event`: passes when the event has no enabled room, or
/// with a valid pass among `passes` (the `X-Waiting-Room-Pass` header; several, comma
/// separated, for an order naming several protected products). No Redis round trip.
pub fn guard(state: &AppState, event: Event, user_id: i64, passes: Option<&str>) -> Result<(), WaitingRoomError> {
    let rooms = &state.waiting_rooms;
    let Some(room) = rooms.registry.enabled(event) else { return Ok(()) };
    let now_ms = Utc::now().timestamp_millis();
    let mut refusal = Refusal::Missing;
    for pass in passes.into_iter().flat_map(|p| p.split(',')).map(str::trim).filter(|p| !p.is_empty()) {
        match rooms.signer.check(Some(pass), event, user_id, room.epoch, now_ms) {
            Ok(()) => return Ok(()),
            // The most telling refusal: a pass for another event says less than one for this.
            Err(Refusal::OtherEvent) if refusal != Refusal::Missing => {}
            Err(r) => refusal = r,
        }
    }
    metrics::counter!(PASS_REJECTED_TOTAL, "event" => event.to_string(), "reason" => refusal.as_str()).increment(1);
    Err(WaitingRoomError::PassRequired(event, refusal))
}

/// An order's products that have enabled rooms each need a pass (`items`: the order's option
/// ids, or `None` for an order from the cart).
pub async fn guard_order(
    state: &AppState,
    user_id: i64,
    option_ids: Option<Vec<i64>>,
    passes: Option<&str>,
) -> Result<(), WaitingRoomError> {
    if !state.waiting_rooms.registry.any_enabled(EventKind::Product) {
        return Ok(());
    }
    let option_ids = match option_ids {
        Some(ids) => ids,
        None => pg::cart::quantities(&state.db, user_id).await?.into_iter().map(|(o, _)| o).collect(),
    };
    for product_id in state.order_admission.products_of(&option_ids).await? {
        guard(state, Event { kind: EventKind::Product, id: product_id }, user_id, passes)?;
    }
    Ok(())
}
