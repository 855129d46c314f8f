//! The waiting rooms' admission ticker: every [`STEP_EVERY`], one admission step per enabled
//! room (`lua/waiting_room_advance.lua`), and the room's metrics from its reply.
//!
//! Every instance runs it, always: the step is one atomic script that takes its time from
//! Redis and its allowance from the room's own credit, so two instances ticking never admit
//! more, or out of order; they only make a lost instance harmless. Admissions are therefore
//! granted in slices of about `admit_per_second / 10` (a burst bound of
//! [`BURST_MS`](crate::store::redis::waiting_room::BURST_MS)).

use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::services::{
    AppState,
    waiting_room::{ADMITTED_TOTAL, WAITING},
};

/// How often each instance runs an admission step per enabled room.
pub const STEP_EVERY: Duration = Duration::from_millis(100);

/// Runs admission steps until `shutdown`.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(STEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let rooms = &state.waiting_rooms;
        for event in rooms.registry.enabled_events() {
            let seed = rand::rng().random::<u64>();
            match rooms.store.advance(event, seed).await {
                Ok(step) => {
                    let label = event.to_string();
                    if step.admitted_now > 0 {
                        metrics::counter!(ADMITTED_TOTAL, "event" => label.clone()).increment(step.admitted_now);
                    }
                    if let Some(waiting) = step.waiting {
                        metrics::gauge!(WAITING, "event" => label).set(waiting as f64);
                    }
                }
                Err(e) => {
                    tracing::warn!(error.cause = %e, waiting_room.event = %event, "waiting room: admission step failed")
                }
            }
        }
    }
}
