//! Every configured room, in process: what makes a protected call's pass check free of Redis.
//!
//! Loaded at start-up and reloaded whole on every `waiting_room` change notice (rooms are few;
//! a reload is one `SMEMBERS` and one `HMGET` per room). A change made on any instance (a room
//! enabled, disabled, or its passes revoked) is therefore enforced everywhere within the
//! notices' bound: about a millisecond when the notice arrives, [`CHECK_EVERY`] (250 ms) plus a
//! reload when it is lost. That is the documented revocation bound.
//!
//! [`CHECK_EVERY`]: crate::store::redis::notices::CHECK_EVERY

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use crate::{
    domain::waiting_room::{Event, EventKind},
    store::redis::waiting_room::{Configured, RoomStore},
};

/// The rooms one process knows.
#[derive(Clone)]
pub struct Registry {
    store: RoomStore,
    rooms: Arc<RwLock<Arc<HashMap<Event, Configured>>>>,
    /// Reloads run one at a time, so the last to finish read the newest state.
    reloading: Arc<tokio::sync::Mutex<()>>,
}

impl Registry {
    /// An empty registry over `store` ([`Registry::reload`] fills it).
    pub fn new(store: RoomStore) -> Registry {
        Registry { store, rooms: Arc::default(), reloading: Arc::default() }
    }

    /// Reads every room from Redis and replaces what is cached.
    pub async fn reload(&self) -> redis::RedisResult<()> {
        let _one = self.reloading.lock().await;
        let rooms = self.store.all().await?;
        for event in rooms.keys() {
            super::touch_metrics(*event);
        }
        *self.rooms.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(rooms);
        Ok(())
    }

    /// Reloads in the background (a notice handler must not wait), retrying a failed read.
    pub fn reload_soon(&self) {
        let me = self.clone();
        tokio::spawn(async move {
            for attempt in 0..5u64 {
                match me.reload().await {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!(error.cause = %e, attempt, "waiting rooms: reload failed");
                        tokio::time::sleep(std::time::Duration::from_millis(100 * (attempt + 1))).await;
                    }
                }
            }
        });
    }

    fn snapshot(&self) -> Arc<HashMap<Event, Configured>> {
        self.rooms.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The room of `event`, if one is configured.
    pub fn get(&self, event: Event) -> Option<Configured> {
        self.snapshot().get(&event).copied()
    }

    /// The enabled room of `event`, if there is one: its calls need a pass.
    pub fn enabled(&self, event: Event) -> Option<Configured> {
        self.get(event).filter(|c| c.settings.enabled)
    }

    /// Whether any product has an enabled room (orders skip the product lookup otherwise).
    pub fn any_enabled(&self, kind: EventKind) -> bool {
        self.snapshot().iter().any(|(e, c)| e.kind == kind && c.settings.enabled)
    }

    /// Every enabled room (the ticker advances them).
    pub fn enabled_events(&self) -> Vec<Event> {
        self.snapshot().iter().filter(|(_, c)| c.settings.enabled).map(|(e, _)| *e).collect()
    }
}
