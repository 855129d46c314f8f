//! Each user's market, cached in process so the V2 hot paths (coupon issue, order admission)
//! never read Postgres for it. One cache per process, shared by both V2 paths and loaded once at
//! start-up; a user created since is fetched on a miss (all newer users in one query, so a burst
//! of new users costs one read, not one each). An unknown id is not cached, so a user created
//! later is found. Markets never change after creation, so entries never go stale.

use std::{
    collections::HashMap,
    sync::{
        RwLock,
        atomic::{AtomicI64, Ordering},
    },
};

use sqlx::PgPool;

use crate::{domain::Market, store::pg::users};

/// User id -> market, filled from Postgres.
#[derive(Default)]
pub struct UserMarkets {
    users: RwLock<HashMap<i64, Market>>,
    max_user: AtomicI64,
    refill: tokio::sync::Mutex<()>,
}

impl UserMarkets {
    fn add(&self, rows: Vec<(i64, String)>) {
        let mut users = self.users.write().expect("cache lock");
        for (id, market) in rows {
            if let Some(m) = Market::parse(&market) {
                users.insert(id, m);
            }
            self.max_user.fetch_max(id, Ordering::Relaxed);
        }
    }

    /// Loads every user in one query (100,000 users take well under a second) and returns how many.
    pub async fn preload(&self, db: &PgPool) -> sqlx::Result<usize> {
        let rows = users::markets(db).await?;
        let n = rows.len();
        self.add(rows);
        Ok(n)
    }

    /// A user's market; `None` when the user does not exist. Reads Postgres only on a miss.
    pub async fn market(&self, db: &PgPool, user_id: i64) -> sqlx::Result<Option<Market>> {
        if let Some(m) = self.users.read().expect("cache lock").get(&user_id) {
            return Ok(Some(*m));
        }
        if user_id > self.max_user.load(Ordering::Relaxed) {
            // Users created since the last load: one query fetches all of them, and concurrent
            // misses wait for it instead of each asking Postgres.
            let _one_at_a_time = self.refill.lock().await;
            let max = self.max_user.load(Ordering::Relaxed);
            if user_id > max {
                let rows = users::markets_after(db, max).await?;
                self.add(rows);
            }
            if let Some(m) = self.users.read().expect("cache lock").get(&user_id) {
                return Ok(Some(*m));
            }
        }
        let market = users::market_of(db, user_id).await?;
        let found = market.as_deref().and_then(Market::parse);
        if let Some(m) = found {
            self.users.write().expect("cache lock").insert(user_id, m);
        }
        Ok(found)
    }
}
