//! The Redis key layout of V2 stock, spread over [`GROUPS`] stock groups.
//!
//! An option belongs to the group `option_id mod GROUPS` ([`group_of`]). Every key of a group
//! carries the hash tag `{stock:<group>}`, so a group lives in one Redis Cluster slot (and one
//! master): a script may touch any keys of one group together, never keys of two. The groups'
//! tags hash to different slots, so on a cluster the stock of one deployment is spread over up
//! to [`GROUPS`] masters. An order's *home* group is the smallest group among its lines
//! ([`home_of`]): its hash, its due entry, its stream entry and its user's recent entry live there.
//! An order whose lines all sit in one group is admitted by one script call; an order across
//! groups follows the protocol of [`super::across`].
//!
//! Why a fixed number of groups rather than one tag per option: an order is looked up by its id
//! alone (`GET /orders/{id}`, a payment of an order the consumer has not persisted yet, the
//! idempotent retry of a crashed request), and with a fixed set of homes that lookup is one
//! probe per group ([`super::StockStore::locate`]) instead of an index that every order would
//! write in one hot slot. Changing [`GROUPS`] moves every key: do it only on a drained Redis.
//!
//! With `P` the deployment prefix (`JUPANG_REDIS_PREFIX`) and `g` a group:
//!
//! | Key | Type | Holds |
//! | --- | --- | --- |
//! | `P:{stock:g}:avail:<option_id>` | string | sellable units of an option of group g: stock - reserved (Postgres) - units Redis holds that Postgres does not count yet |
//! | `P:{stock:g}:stream` | stream | one entry per admitted order homed in g (fields of [`crate::store::redis::streams::orders::Admission`]) |
//! | `P:{stock:g}:stream:dead` | stream | its dead letters |
//! | `P:{stock:g}:order:<order_id>` | hash | an order homed in g: the admission plus `state` (`reserving`, `aborting`, `aborted` for an order across groups still being admitted or undone; then `pending`, `paid`, `released`) |
//! | `P:{stock:g}:due` | sorted set | orders homed in g that Redis still holds, by when the sweeper must look at them (ms): `expires_at` of a pending order, the admission deadline of one being admitted |
//! | `P:{stock:g}:part:<order_id>` | string | what an order across groups did with its lines of group g: `held`, or `released` (also the fence left by an abort that came first) |
//! | `P:{stock:g}:refund:<refund_id>` | hash | `state: refunded` once a refund's units of group g went back on sale (exactly once per refund and group; a refund across groups has one marker in each) |
//! | `P:{stock:g}:recent:<user_id>` | sorted set | the user's latest orders homed in g, by creation (read-your-writes of order lists) |
//! | `P:{stock:g}:options` | set | options of group g whose counter was hydrated (what reconciliation checks) |

use std::collections::BTreeSet;

use redis::cluster_routing::Slot;
use uuid::Uuid;

/// How many stock groups (hash tags) the options are spread over.
pub const GROUPS: i64 = 16;
/// `P:{stock:g}:avail:<option_id>`: sellable units of an option.
pub const AVAIL: &str = "avail";
/// `P:{stock:g}:stream`: the admission stream of the orders homed in g.
pub const STREAM: &str = "stream";
/// `P:{stock:g}:order:<order_id>`: an order's hash.
pub const ORDER: &str = "order";
/// `P:{stock:g}:due`: orders Redis holds, by when the sweeper must look at them.
pub const DUE: &str = "due";
/// `P:{stock:g}:part:<order_id>`: the state of an order's lines of group g.
pub const PART: &str = "part";
/// `P:{stock:g}:refund:<refund_id>`: the marker that a refund's units of g went back on sale.
pub const REFUND: &str = "refund";
/// `P:{stock:g}:recent:<user_id>`: a user's latest orders.
pub const RECENT: &str = "recent";
/// `P:{stock:g}:options`: the hydrated options.
pub const HYDRATED: &str = "options";

/// The stock group of an option.
pub fn group_of(option_id: i64) -> i64 {
    option_id.rem_euclid(GROUPS)
}

/// The distinct groups of some options, ascending: the order in which an order across groups
/// reserves them (a fixed order, so two orders never wait on each other's parts in a cycle).
pub fn groups_of(option_ids: impl IntoIterator<Item = i64>) -> Vec<i64> {
    option_ids.into_iter().map(group_of).collect::<BTreeSet<_>>().into_iter().collect()
}

/// The home group of an order with lines of these options: the smallest of their groups.
pub fn home_of(option_ids: impl IntoIterator<Item = i64>) -> Option<i64> {
    option_ids.into_iter().map(group_of).min()
}

/// Whether every key hashes to one Redis Cluster slot (true for none or one key).
pub fn one_slot(keys: &[String]) -> bool {
    keys.windows(2).all(|w| Slot::for_key(&w[0]) == Slot::for_key(&w[1]))
}

/// The names of the stock keys of one deployment.
#[derive(Debug, Clone)]
pub struct StockKeys {
    prefix: String,
}

impl StockKeys {
    /// Keys under `prefix` (the deployment's `JUPANG_REDIS_PREFIX`).
    pub fn new(prefix: &str) -> StockKeys {
        StockKeys { prefix: prefix.to_owned() }
    }
    fn key(&self, group: i64, suffix: &str) -> String {
        format!("{}:{{stock:{group}}}:{suffix}", self.prefix)
    }
    /// `P:{stock:g}:avail:<option_id>`, g the option's group.
    pub fn avail(&self, option_id: i64) -> String {
        self.key(group_of(option_id), &format!("{AVAIL}:{option_id}"))
    }
    /// `P:{stock:g}:stream`.
    pub fn stream(&self, group: i64) -> String {
        self.key(group, STREAM)
    }
    /// The admission streams of every group (what the consumer reads).
    pub fn streams(&self) -> Vec<String> {
        (0..GROUPS).map(|g| self.stream(g)).collect()
    }
    /// `P:{stock:g}:order:<order_id>`.
    pub fn order(&self, group: i64, order_id: Uuid) -> String {
        self.key(group, &format!("{ORDER}:{order_id}"))
    }
    /// `P:{stock:g}:due`.
    pub fn due(&self, group: i64) -> String {
        self.key(group, DUE)
    }
    /// `P:{stock:g}:part:<order_id>`.
    pub fn part(&self, group: i64, order_id: Uuid) -> String {
        self.key(group, &format!("{PART}:{order_id}"))
    }
    /// `P:{stock:g}:refund:<refund_id>`.
    pub fn refund(&self, group: i64, refund_id: Uuid) -> String {
        self.key(group, &format!("{REFUND}:{refund_id}"))
    }
    /// `P:{stock:g}:recent:<user_id>`.
    pub fn recent(&self, group: i64, user_id: i64) -> String {
        self.key(group, &format!("{RECENT}:{user_id}"))
    }
    /// `P:{stock:g}:options`.
    pub fn hydrated(&self, group: i64) -> String {
        self.key(group, HYDRATED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_group_shares_one_slot_and_the_groups_use_many() {
        let k = StockKeys::new("jupang");
        let id = Uuid::now_v7();
        let mut slots = std::collections::HashSet::new();
        for g in 0..GROUPS {
            let mut keys = vec![
                k.stream(g),
                k.order(g, id),
                k.due(g),
                k.part(g, id),
                k.refund(g, id),
                k.recent(g, 7),
                k.hydrated(g),
            ];
            keys.extend((0..5).map(|i| k.avail(g + i * GROUPS)));
            assert!(one_slot(&keys), "group {g}: {keys:?}");
            slots.insert(Slot::for_key(&keys[0]));
        }
        assert_eq!(slots.len(), GROUPS as usize, "every group has a slot of its own");
    }

    #[test]
    fn an_orders_groups_are_ascending_and_its_home_is_the_smallest() {
        assert_eq!(groups_of([35, 3, 19, 2]), vec![2, 3]);
        assert_eq!(home_of([35, 18]), Some(2));
        assert_eq!(group_of(-1), GROUPS - 1);
        assert!(!one_slot(&[StockKeys::new("p").avail(1), StockKeys::new("p").avail(2)]));
    }
}
