//! Change notices every instance obeys: the one invalidation mechanism of the in-process caches
//! (coupon terms and sold-out knowledge, catalog, options, users' languages).
//!
//! A writer calls [`Notices::publish`] after its change is committed: `lua/notify.lua` bumps the
//! topic's revision in [`REVISIONS`] and publishes `topic|revision|id` on [`CHANNEL`], atomically.
//! Every process runs [`Notices::listen`]: it subscribes to the channel on a connection of its
//! own and hands each notice to the handlers registered with [`Notices::on`].
//!
//! Pub/sub delivers at most once: a message sent while a listener is disconnected is lost. So
//! the listener also reads [`REVISIONS`] every [`CHECK_EVERY`]; a topic whose revision moved past
//! the last notice seen (or any topic, after a reconnect) is announced to its handlers as a
//! whole-topic notice (`id: None`), which drops everything cached for it. A change is therefore
//! seen by every running instance within [`CHECK_EVERY`] plus a round trip even when its notice
//! was lost, and within about a millisecond when it was not.
//!
//! | Key / channel | Type | Holds |
//! | --- | --- | --- |
//! | `P:notices` ([`CHANNEL`]) | pub/sub channel | `topic|revision|id` per change (`id` empty: the whole topic) |
//! | `P:notices:rev` ([`REVISIONS`]) | hash | topic -> revision, bumped by every notice |

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, RwLock},
    time::Duration,
};

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use super::RedisStore;

/// Suffix of the pub/sub channel: `P:notices`.
pub const CHANNEL: &str = "notices";
/// Suffix of the revisions hash: `P:notices:rev`.
pub const REVISIONS: &str = "notices:rev";
/// How often a listener compares the revisions with the notices it saw: the bound on how long a
/// lost notice can go unnoticed.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);

static NOTIFY: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(include_str!("../../../lua/notify.lua")));

/// What changed. Each topic is a kind of cached thing; its handlers decide what to drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// A coupon's terms or quantity (id: the coupon).
    Coupon,
    /// A product, its options or prices (id: the product).
    Product,
    /// An option's sellable stock changed outside the V2 counters (id: the option).
    Stock,
    /// A new popular-products snapshot (no id).
    Popular,
    /// A user's profile (its language) changed (id: the user).
    User,
    /// A waiting room's settings or pass epoch (id: the coupon or product; rooms are few, so
    /// a listener reloads them all).
    WaitingRoom,
}

impl Topic {
    /// Every topic, for the revision check.
    pub const ALL: [Topic; 6] =
        [Topic::Coupon, Topic::Product, Topic::Stock, Topic::Popular, Topic::User, Topic::WaitingRoom];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Coupon => "coupon",
            Topic::Product => "product",
            Topic::Stock => "stock",
            Topic::Popular => "popular",
            Topic::User => "user",
            Topic::WaitingRoom => "waiting_room",
        }
    }

    fn parse(s: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One change: an entity of a topic, or (`id: None`) possibly every entity of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notice {
    /// What kind of thing changed.
    pub topic: Topic,
    /// Which one; `None` when the listener cannot tell (a lost notice, a reconnect).
    pub id: Option<i64>,
}

/// A reaction to notices of one topic; must be quick (it runs on the listener task).
pub type Handler = Arc<dyn Fn(Option<i64>) + Send + Sync>;

/// The notices of one deployment: publishing, and this process's handlers.
#[derive(Clone)]
pub struct Notices {
    redis: RedisStore,
    handlers: Arc<RwLock<Vec<(Topic, Handler)>>>,
}

/// Parses `topic|revision|id`.
fn parse(payload: &str) -> Option<(Notice, i64)> {
    let mut parts = payload.splitn(3, '|');
    let topic = Topic::parse(parts.next()?)?;
    let rev = parts.next()?.parse().ok()?;
    let id = match parts.next()? {
        "" => None,
        id => Some(id.parse().ok()?),
    };
    Some((Notice { topic, id }, rev))
}

impl Notices {
    /// The notices of the deployment `redis` is configured for, with no handler yet.
    pub fn new(redis: &RedisStore) -> Notices {
        Notices { redis: redis.clone(), handlers: Arc::default() }
    }

    /// Calls `handler` with the id of every notice of `topic` (None: drop everything of it).
    pub fn on(&self, topic: Topic, handler: impl Fn(Option<i64>) + Send + Sync + 'static) {
        self.handlers.write().unwrap_or_else(|e| e.into_inner()).push((topic, Arc::new(handler)));
    }

    /// Announces a committed change to every instance (this one included, through its listener).
    pub async fn publish(&self, topic: Topic, id: Option<i64>) -> redis::RedisResult<()> {
        let id = id.map(|i| i.to_string()).unwrap_or_default();
        let _rev: i64 = NOTIFY
            .key(self.redis.key(REVISIONS))
            .arg(self.redis.key(CHANNEL))
            .arg(topic.as_str())
            .arg(id)
            .invoke_async(&mut self.redis.conn())
            .await?;
        Ok(())
    }

    fn deliver(&self, notice: Notice) {
        let handlers: Vec<Handler> = self
            .handlers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(t, _)| *t == notice.topic)
            .map(|(_, h)| h.clone())
            .collect();
        for h in handlers {
            h(notice.id);
        }
    }

    async fn revisions(&self) -> redis::RedisResult<HashMap<String, i64>> {
        redis::cmd("HGETALL").arg(self.redis.key(REVISIONS)).query_async(&mut self.redis.conn()).await
    }

    /// Listens until `shutdown`: subscribes, delivers notices, heals lost ones from the
    /// revisions, and reconnects (announcing every topic as changed) after a failure.
    pub async fn listen(self, shutdown: CancellationToken) {
        let mut seen: HashMap<Topic, i64> = HashMap::new();
        while !shutdown.is_cancelled() {
            match self.session(&shutdown, &mut seen).await {
                Ok(()) => return,
                Err(e) => tracing::warn!(error.cause = %e, "change notices: listener failed; reconnecting"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    /// One subscription, until it fails (Err) or shutdown (Ok).
    async fn session(&self, shutdown: &CancellationToken, seen: &mut HashMap<Topic, i64>) -> redis::RedisResult<()> {
        let mut pubsub = self.redis.pubsub().await?;
        pubsub.subscribe(self.redis.key(CHANNEL)).await?;
        // Subscribed: from here on nothing is missed. What changed before is in the revisions.
        let revs = self.revisions().await?;
        for topic in Topic::ALL {
            let rev = revs.get(topic.as_str()).copied().unwrap_or(0);
            // Whatever changed while this process was not subscribed (before its first
            // subscription, or while it reconnected) may have been cached before: drop it.
            if seen.insert(topic, rev) != Some(rev) {
                self.deliver(Notice { topic, id: None });
            }
        }
        let mut messages = pubsub.into_on_message();
        // The revisions were just read: the first check is one period away (an immediate one
        // could see a change whose notice is still on its way and announce it twice).
        let mut check = tokio::time::interval_at(tokio::time::Instant::now() + CHECK_EVERY, CHECK_EVERY);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                msg = messages.next() => {
                    let Some(msg) = msg else {
                        return Err(redis::RedisError::from((redis::ErrorKind::Io, "notice subscription closed")));
                    };
                    let payload: String = msg.get_payload()?;
                    match parse(&payload) {
                        Some((notice, rev)) => {
                            let e = seen.entry(notice.topic).or_default();
                            *e = (*e).max(rev);
                            self.deliver(notice);
                        }
                        None => tracing::warn!(notice = %payload, "change notices: malformed notice ignored"),
                    }
                }
                _ = check.tick() => {
                    let revs = self.revisions().await?;
                    for topic in Topic::ALL {
                        let rev = revs.get(topic.as_str()).copied().unwrap_or(0);
                        let known = seen.entry(topic).or_default();
                        if rev > *known {
                            // A notice that never came (or is still on its way: dropping twice is harmless).
                            *known = rev;
                            self.deliver(Notice { topic, id: None });
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_parses_with_and_without_an_id() {
        assert_eq!(parse("coupon|7|42"), Some((Notice { topic: Topic::Coupon, id: Some(42) }, 7)));
        assert_eq!(parse("product|1|"), Some((Notice { topic: Topic::Product, id: None }, 1)));
        assert_eq!(parse("nonsense|1|2"), None);
        assert_eq!(parse("stock|x|2"), None);
        assert_eq!(parse("stock|3"), None);
    }
}
