//! The waiting rooms' Redis state (api.md "Waiting room"): a room per event, the whole line in
//! a few counters.
//!
//! Every key of one room carries the hash tag `{wr:EVENT}` (`{wr:coupon:5}`), so they share one
//! Redis Cluster slot and one script may touch them together. The full key is
//! `{prefix}:{wr:EVENT}:{suffix}`.
//!
//! | suffix | type | holds |
//! | --- | --- | --- |
//! | [`ROOM`] | hash | settings (`enabled`, `rate`, `max_active`, `ttl` s, `opens_ms`, `epoch`) and the line: `seq` (arrivals, the atomic counter positions come from), `early` and `seed` (set once, at opening), `admitted` (the serving counter: every position up to it is admitted), `expired_to` (every position up to it has an expired pass), `credit`, `last_ms`, `measured` (admissions per 1000 s), `last_exp` |
//! | [`ENTRANTS`] | hash | user id -> `seq`: what makes entering idempotent |
//! | [`BATCHES`] | sorted set | one member `first:last:expires_ms` per admission step still alive, scored by `last` |
//!
//! Outside the room slots: [`ROOMS`] (`{prefix}:waiting-rooms`), the set of configured events,
//! which every instance loads to know which calls are protected.
//!
//! Costs: entering is one script on two keys; a WAITING poll is one `HMGET` of one small hash
//! (however long the line); the poll that finds its ticket admitted adds one `ZRANGEBYSCORE ...
//! LIMIT 0 1` on the batches (at most one member per admission step of the last pass lifetime);
//! an admission step is one script, O(1) plus the batches it retires.

use std::{collections::HashMap, sync::LazyLock};

use redis::AsyncCommands;

use super::RedisStore;
use crate::domain::waiting_room::Event;

/// The room's settings and line (a hash).
pub const ROOM: &str = "room";
/// User id -> arrival number (a hash).
pub const ENTRANTS: &str = "entrants";
/// Admission steps whose passes may still be alive (a sorted set).
pub const BATCHES: &str = "batches";
/// Set of configured events (`coupon:5`), outside the room slots.
pub const ROOMS: &str = "waiting-rooms";
/// The burst bound of admissions, in ms of `admit_per_second` (10% of a second): the credit a
/// room may save up while it is capped by `max_active` or empty.
pub const BURST_MS: u64 = 100;

static CONFIGURE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../../../lua/waiting_room_configure.lua")));
static ENTER: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../../../lua/waiting_room_enter.lua")));
static ADVANCE: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("../../../lua/waiting_room_advance.lua")));

/// A room's settings as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Whether the event's protected calls require a pass.
    pub enabled: bool,
    /// New admissions per second.
    pub admit_per_second: u64,
    /// Most passes alive at once.
    pub max_active: u64,
    /// Lifetime of a pass (s).
    pub pass_ttl_secs: u64,
    /// Opening, epoch ms: who enters before it is shuffled.
    pub opens_ms: i64,
}

/// A room's settings with its pass epoch (what the instances cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Configured {
    /// The settings.
    pub settings: Settings,
    /// Passes of another epoch are refused (bumped by a revoke).
    pub epoch: u64,
}

/// The line of a room, as one `HMGET` reads it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Line {
    /// Arrivals so far.
    pub seq: u64,
    /// Arrivals before opening (`None`: not open yet).
    pub early: Option<u64>,
    /// The opening shuffle's seed.
    pub seed: u64,
    /// Every position up to this one is admitted.
    pub admitted: u64,
    /// Every position up to this one has an expired pass.
    pub expired_to: u64,
    /// Measured admissions per 1000 s.
    pub measured_milli: u64,
    /// The pass epoch (read with the line, so a pass is never minted in a revoked epoch).
    pub epoch: u64,
}

/// The reply of one admission step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Positions admitted by this step.
    pub admitted_now: u64,
    /// Arrivals not admitted yet (`None`: the room is disabled or gone).
    pub waiting: Option<u64>,
    /// Admitted with passes still alive.
    pub active: u64,
}

/// Why entering did not give a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnterRefusal {
    /// No room is configured for the event.
    NoRoom,
    /// The room is disabled (and the user had not entered).
    Disabled,
}

/// The waiting rooms of one deployment.
#[derive(Clone)]
pub struct RoomStore {
    redis: RedisStore,
}

/// A key of one room: `{prefix}:{wr:EVENT}:{suffix}`.
pub fn room_key(prefix: &str, event: Event, suffix: &str) -> String {
    format!("{prefix}:{{wr:{event}}}:{suffix}")
}

fn opt_u64(v: &Option<i64>) -> u64 {
    v.unwrap_or(0).max(0) as u64
}

impl RoomStore {
    /// The rooms under `redis`'s prefix.
    pub fn new(redis: &RedisStore) -> RoomStore {
        RoomStore { redis: redis.clone() }
    }

    /// A key of one room under this deployment's prefix.
    pub fn key(&self, event: Event, suffix: &str) -> String {
        room_key(self.redis.prefix(), event, suffix)
    }

    /// Creates or changes a room; `revoke` ends every pass and admission so far. Returns the
    /// pass epoch.
    pub async fn configure(&self, event: Event, s: Settings, revoke: bool) -> redis::RedisResult<u64> {
        let epoch: u64 = CONFIGURE
            .key(self.key(event, ROOM))
            .key(self.key(event, BATCHES))
            .arg(u8::from(s.enabled))
            .arg(s.admit_per_second)
            .arg(s.max_active)
            .arg(s.pass_ttl_secs)
            .arg(s.opens_ms)
            .arg(u8::from(revoke))
            .invoke_async(&mut self.redis.conn())
            .await?;
        // Listed after it exists: a lister never finds an event without its room.
        let _: () = self.redis.conn().sadd(self.redis.key(ROOMS), event.to_string()).await?;
        Ok(epoch)
    }

    /// A room's settings and epoch, if it is configured.
    pub async fn settings(&self, event: Event) -> redis::RedisResult<Option<Configured>> {
        let v: Vec<Option<i64>> = redis::cmd("HMGET")
            .arg(self.key(event, ROOM))
            .arg(&["enabled", "rate", "max_active", "ttl", "opens_ms", "epoch"])
            .query_async(&mut self.redis.conn())
            .await?;
        let [enabled, rate, max_active, ttl, opens, epoch] = v[..] else {
            return Err((redis::ErrorKind::Parse, "HMGET answered the wrong number of fields").into());
        };
        let Some(enabled) = enabled else { return Ok(None) };
        let settings = Settings {
            enabled: enabled == 1,
            admit_per_second: opt_u64(&rate),
            max_active: opt_u64(&max_active),
            pass_ttl_secs: opt_u64(&ttl),
            opens_ms: opens.unwrap_or(0),
        };
        Ok(Some(Configured { settings, epoch: opt_u64(&epoch) }))
    }

    /// Every configured room with its settings (start-up, and after a change notice).
    pub async fn all(&self) -> redis::RedisResult<HashMap<Event, Configured>> {
        let names: Vec<String> = self.redis.conn().smembers(self.redis.key(ROOMS)).await?;
        let mut rooms = HashMap::with_capacity(names.len());
        for event in names.iter().filter_map(|n| Event::parse(n)) {
            if let Some(c) = self.settings(event).await? {
                rooms.insert(event, c);
            }
        }
        Ok(rooms)
    }

    /// The line of a room: one `HMGET` of one small hash.
    pub async fn line(&self, event: Event) -> redis::RedisResult<Line> {
        let v: Vec<Option<i64>> = redis::cmd("HMGET")
            .arg(self.key(event, ROOM))
            .arg(&["seq", "early", "seed", "admitted", "expired_to", "measured", "epoch"])
            .query_async(&mut self.redis.conn())
            .await?;
        let [seq, early, seed, admitted, expired_to, measured, epoch] = v[..] else {
            return Err((redis::ErrorKind::Parse, "HMGET answered the wrong number of fields").into());
        };
        Ok(Line {
            seq: opt_u64(&seq),
            early: early.map(|e| e.max(0) as u64),
            seed: seed.unwrap_or(0) as u64,
            admitted: opt_u64(&admitted),
            expired_to: opt_u64(&expired_to),
            measured_milli: opt_u64(&measured),
            epoch: opt_u64(&epoch),
        })
    }

    /// Enters `user_id` (once): its arrival number and whether it is new.
    pub async fn enter(
        &self,
        event: Event,
        user_id: i64,
        seed: u64,
    ) -> redis::RedisResult<Result<(u64, bool), EnterRefusal>> {
        let reply: Vec<i64> = ENTER
            .key(self.key(event, ROOM))
            .key(self.key(event, ENTRANTS))
            .arg(user_id)
            .arg(seed_arg(seed))
            .invoke_async(&mut self.redis.conn())
            .await?;
        Ok(match reply[..] {
            [-1] => Err(EnterRefusal::NoRoom),
            [-2] => Err(EnterRefusal::Disabled),
            [seq, new] if seq > 0 => Ok((seq as u64, new == 1)),
            _ => return Err((redis::ErrorKind::Parse, "unexpected reply of the enter script").into()),
        })
    }

    /// When the passes of `position` expire (epoch ms), if its admission step is still alive.
    pub async fn pass_expiry(&self, event: Event, position: u64) -> redis::RedisResult<Option<i64>> {
        let members: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.key(event, BATCHES))
            .arg(position)
            .arg("+inf")
            .arg("LIMIT")
            .arg(0)
            .arg(1)
            .query_async(&mut self.redis.conn())
            .await?;
        Ok(members.first().and_then(|m| {
            let mut parts = m.splitn(3, ':').map(|p| p.parse::<i64>().ok());
            let (first, _last, exp) = (parts.next()??, parts.next()??, parts.next()??);
            // The first batch ending at or after the position may start after it: the
            // position's own batch is gone (expired), and a later batch's expiry is not its own.
            (first as u64 <= position).then_some(exp)
        }))
    }

    /// One admission step (see `lua/waiting_room_advance.lua`).
    pub async fn advance(&self, event: Event, seed: u64) -> redis::RedisResult<Step> {
        let reply: Vec<i64> = ADVANCE
            .key(self.key(event, ROOM))
            .key(self.key(event, BATCHES))
            .arg(seed_arg(seed))
            .arg(BURST_MS)
            .invoke_async(&mut self.redis.conn())
            .await?;
        let [k, waiting, active, _] = reply[..] else {
            return Err((redis::ErrorKind::Parse, "unexpected reply of the advance script").into());
        };
        Ok(Step {
            admitted_now: k.max(0) as u64,
            waiting: (waiting >= 0).then_some(waiting as u64),
            active: active.max(0) as u64,
        })
    }
}

/// A seed as Redis keeps it: below 2^53, so Lua's doubles carry it exactly.
fn seed_arg(seed: u64) -> u64 {
    seed & ((1 << 53) - 1)
}

#[cfg(test)]
mod tests {
    use redis::cluster_routing::Slot;

    use super::*;
    use crate::{domain::waiting_room::EventKind, store::redis::stock::keys::one_slot};

    #[test]
    fn every_key_of_a_room_shares_its_hash_tag() {
        let event = Event { kind: EventKind::Coupon, id: 5 };
        for k in [ROOM, ENTRANTS, BATCHES].map(|s| room_key("jupang", event, s)) {
            assert!(k.starts_with("jupang:{wr:coupon:5}:"), "{k}");
        }
        assert_eq!(seed_arg(u64::MAX), (1 << 53) - 1);
    }

    #[test]
    fn one_rooms_keys_share_one_cluster_slot_and_rooms_spread_over_many() {
        let mut slots = std::collections::HashSet::new();
        for kind in [EventKind::Coupon, EventKind::Product] {
            for id in 1..=100 {
                let event = Event { kind, id };
                let keys = [ROOM, ENTRANTS, BATCHES].map(|s| room_key("jupang", event, s));
                assert!(one_slot(&keys), "{keys:?}");
                slots.insert(Slot::for_key(&keys[0]));
            }
        }
        assert!(slots.len() > 150, "200 rooms on {} slots: they would crowd one master", slots.len());
    }
}
