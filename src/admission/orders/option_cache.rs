//! The in-process cache that keeps Postgres off the hot path of a V2 order: the catalog's option
//! data (prices, names, sale flag). Users' markets come from [`crate::admission::user_markets`].
//!
//! It is loaded at start-up and filled on a miss with one query; a miss that Postgres cannot
//! answer either (an unknown id) is not cached, so something created later is found.
//!
//! Product edits (`PATCH /admin/products/{id}`: prices, names, sale flag) reach it through the
//! change notices: every instance calls [`OptionCache::forget_product`] on a
//! `Topic::Product` notice (the editing instance before it answers), so the next order reads the
//! edited options. A new FX rate sends a whole-catalog notice, so prices
//! converted at the old rate go too. A load that started before the change must not put the old rows back after
//! it: each forget bumps a generation, and a load whose generation moved meanwhile answers its
//! rows without keeping them.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use sqlx::PgPool;

use crate::store::pg::catalog::{self, OptionInfo};

/// The option cache of one process.
#[derive(Default)]
pub struct OptionCache {
    options: RwLock<HashMap<i64, Arc<OptionInfo>>>,
    /// Bumped by every forget: loads that straddle one are not kept.
    generation: AtomicU64,
}

impl OptionCache {
    /// Loads every option (start-up).
    pub async fn load_all(&self, db: &PgPool) -> sqlx::Result<()> {
        let generation = self.generation.load(Ordering::SeqCst);
        let options = catalog::option_infos(db, None).await?;
        let mut map = self.options.write().expect("not poisoned");
        if self.generation.load(Ordering::SeqCst) == generation {
            map.extend(options.into_iter().map(|o| (o.id, Arc::new(o))));
        }
        Ok(())
    }

    /// Forgets the options of a product (`None`: of every product): they are read again.
    pub fn forget_product(&self, product_id: Option<i64>) {
        let mut map = self.options.write().expect("not poisoned");
        // Under the write lock: a load holding rows read before the change checks the
        // generation under the same lock, so it either sees the bump or is forgotten here.
        self.generation.fetch_add(1, Ordering::SeqCst);
        match product_id {
            Some(id) => map.retain(|_, o| o.product_id != id),
            None => map.clear(),
        }
    }

    /// The options of `ids` that exist (a miss is read from Postgres once, in one query).
    pub async fn options(&self, db: &PgPool, ids: &[i64]) -> sqlx::Result<HashMap<i64, Arc<OptionInfo>>> {
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        let generation;
        {
            let map = self.options.read().expect("not poisoned");
            generation = self.generation.load(Ordering::SeqCst);
            for id in ids {
                match map.get(id) {
                    Some(o) => {
                        found.insert(*id, o.clone());
                    }
                    None => missing.push(*id),
                }
            }
        }
        if !missing.is_empty() {
            let loaded = catalog::option_infos(db, Some(&missing)).await?;
            let mut map = self.options.write().expect("not poisoned");
            let keep = self.generation.load(Ordering::SeqCst) == generation;
            for o in loaded {
                let o = Arc::new(o);
                if keep {
                    map.insert(o.id, o.clone());
                }
                found.insert(o.id, o);
            }
        }
        Ok(found)
    }
}
