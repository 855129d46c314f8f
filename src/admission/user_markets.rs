//! Each user's market and language, cached in process so the hot paths never read Postgres for
//! them: the V2 engines (coupon issue, order admission) need the market, every answer without
//! `Accept-Language` the language. One cache per process, loaded once at start-up; a user
//! created since is fetched on a miss (all newer users in one query, so a burst of new users
//! costs one read, not one each). An unknown id is not cached, so a user created later is found.
//!
//! Markets never change after creation. Languages do (`PATCH /users/{id}`): the writer updates
//! its own cache at once and announces the change (a `user` notice); every instance then drops
//! that user's entry ([`UserMarkets::forget`]) and reads it again on the next request. A whole-
//! topic notice (a lost notice, a reconnect) reloads every user in the background. A load that
//! raced a change is not kept: a generation counter, bumped by every change, must be unchanged
//! between a load's query and its insert.

use std::{
    collections::HashMap,
    sync::{
        RwLock,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
};

use sqlx::PgPool;

use crate::{
    domain::{Lang, Market},
    store::pg::users,
};

/// What the cache knows of a user.
#[derive(Debug, Clone, Copy)]
struct Facts {
    market: Market,
    lang: Lang,
}

/// User id -> market and language, filled from Postgres.
#[derive(Default)]
pub struct UserMarkets {
    users: RwLock<HashMap<i64, Facts>>,
    max_user: AtomicI64,
    refill: tokio::sync::Mutex<()>,
    generation: AtomicU64,
}

impl UserMarkets {
    /// Caches rows read when the generation was `generation`; a change since makes them suspect,
    /// so they are dropped (the next lookup reads again).
    fn add(&self, rows: Vec<(i64, String, String)>, generation: u64) {
        let mut users = self.users.write().expect("cache lock");
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        for (id, market, lang) in rows {
            if let Some(market) = Market::parse(&market) {
                let lang = Lang::parse(&lang).unwrap_or_else(|| Lang::of_market(market));
                users.insert(id, Facts { market, lang });
            }
            self.max_user.fetch_max(id, Ordering::Relaxed);
        }
    }

    /// Loads every user in one query (100,000 users take well under a second) and returns how many.
    pub async fn preload(&self, db: &PgPool) -> sqlx::Result<usize> {
        let generation = self.generation.load(Ordering::Acquire);
        let rows = users::directory(db).await?;
        let n = rows.len();
        self.add(rows, generation);
        Ok(n)
    }

    /// A user's market; `None` when the user does not exist. Reads Postgres only on a miss.
    pub async fn market(&self, db: &PgPool, user_id: i64) -> sqlx::Result<Option<Market>> {
        Ok(self.facts(db, user_id).await?.map(|f| f.market))
    }

    /// A user's language; `None` when the user does not exist. Reads Postgres only on a miss.
    pub async fn language(&self, db: &PgPool, user_id: i64) -> sqlx::Result<Option<Lang>> {
        Ok(self.facts(db, user_id).await?.map(|f| f.lang))
    }

    fn cached(&self, user_id: i64) -> Option<Facts> {
        self.users.read().expect("cache lock").get(&user_id).copied()
    }

    async fn facts(&self, db: &PgPool, user_id: i64) -> sqlx::Result<Option<Facts>> {
        if let Some(f) = self.cached(user_id) {
            return Ok(Some(f));
        }
        if user_id > self.max_user.load(Ordering::Relaxed) {
            // Users created since the last load: one query fetches all of them, and concurrent
            // misses wait for it instead of each asking Postgres.
            let _one_at_a_time = self.refill.lock().await;
            let max = self.max_user.load(Ordering::Relaxed);
            if user_id > max {
                let generation = self.generation.load(Ordering::Acquire);
                let rows = users::directory_after(db, max).await?;
                self.add(rows, generation);
            }
            if let Some(f) = self.cached(user_id) {
                return Ok(Some(f));
            }
        }
        let generation = self.generation.load(Ordering::Acquire);
        let Some(row) = users::directory_of(db, user_id).await? else { return Ok(None) };
        self.add(vec![row.clone()], generation);
        let market = Market::parse(&row.1);
        Ok(market.map(|market| Facts { market, lang: Lang::parse(&row.2).unwrap_or_else(|| Lang::of_market(market)) }))
    }

    /// This process changed a user's language (committed): answer it from now on.
    pub fn set_language(&self, user_id: i64, lang: Lang) {
        let mut users = self.users.write().expect("cache lock");
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(f) = users.get_mut(&user_id) {
            f.lang = lang;
        }
    }

    /// Some instance changed a user (`Some`) or possibly any user (`None`): drop what may be
    /// stale. A single user is read again on its next lookup; for `None` the caller reloads
    /// everyone ([`UserMarkets::reload`]) while the old entries keep answering.
    pub fn forget(&self, user_id: Option<i64>) {
        let mut users = self.users.write().expect("cache lock");
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(id) = user_id {
            users.remove(&id);
        }
    }

    /// Reads every user again (after a whole-topic notice); a change meanwhile makes it retry.
    pub async fn reload(&self, db: &PgPool) -> sqlx::Result<()> {
        for _ in 0..3 {
            let generation = self.generation.load(Ordering::Acquire);
            let rows = users::directory(db).await?;
            self.add(rows, generation);
            if self.generation.load(Ordering::Acquire) == generation {
                return Ok(());
            }
        }
        Ok(())
    }
}
