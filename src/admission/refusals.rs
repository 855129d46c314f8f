//! The shared core of the in-process refusal memories (coupons' losers, sold-out options): a map
//! by id that forgets on change notices, and never takes a remembrance decided before a forget.
//!
//! A request reads [`Refusals::epoch`] before the Redis call whose refusal it may remember; every
//! forget moves the epoch, and [`Refusals::remember`] inserts only while the epoch is unchanged,
//! under the same lock the forget takes. So a refusal decided before an edit (a raise, a release)
//! that arrives after the edit's notice is dropped rather than remembered for good.

use std::{
    collections::HashMap,
    sync::{PoisonError, RwLock},
};

struct Map<V> {
    epoch: u64,
    entries: HashMap<i64, V>,
}

/// Remembered refusals by id.
pub struct Refusals<V> {
    map: RwLock<Map<V>>,
}

impl<V> Default for Refusals<V> {
    fn default() -> Self {
        Refusals { map: RwLock::new(Map { epoch: 0, entries: HashMap::new() }) }
    }
}

impl<V> Refusals<V> {
    /// Read before the call whose refusal is to be remembered.
    pub fn epoch(&self) -> u64 {
        self.map.read().unwrap_or_else(PoisonError::into_inner).epoch
    }

    /// Runs `f` over the entries (a read lock, held only for `f`).
    pub fn with<R>(&self, f: impl FnOnce(&HashMap<i64, V>) -> R) -> R {
        f(&self.map.read().unwrap_or_else(PoisonError::into_inner).entries)
    }

    /// Remembers `value` for `id`, unless a forget happened since `epoch`.
    pub fn remember(&self, id: i64, epoch: u64, value: V) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        if map.epoch == epoch {
            map.entries.insert(id, value);
        }
    }

    /// Forgets `id` (`None`: everything).
    pub fn forget(&self, id: Option<i64>) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        map.epoch += 1;
        match id {
            Some(id) => {
                map.entries.remove(&id);
            }
            None => map.entries.clear(),
        }
    }
}
