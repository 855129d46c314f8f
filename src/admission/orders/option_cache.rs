//! The in-process cache that keeps Postgres off the hot path of a V2 order: the catalog's option
//! data (prices, names, sale flag). Users' markets come from [`crate::admission::user_markets`].
//!
//! It is loaded at start-up and filled on a miss with one query; a miss that Postgres cannot
//! answer either (an unknown id) is not cached, so something created later is found. Prices
//! converted at an FX rate go stale when the rate changes: every instance drops its entries on
//! the `Topic::Product` notice that follows (a whole-catalog one for a rate), and the writer's
//! own instance at once ([`OptionCache::forget`]).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use sqlx::PgPool;

use crate::store::pg::catalog::{self, OptionInfo};

/// The option cache of one process.
#[derive(Default)]
pub struct OptionCache {
    options: RwLock<HashMap<i64, Arc<OptionInfo>>>,
}

impl OptionCache {
    /// Loads every option (start-up).
    pub async fn load_all(&self, db: &PgPool) -> sqlx::Result<()> {
        let options = catalog::option_infos(db, None).await?;
        self.options.write().expect("not poisoned").extend(options.into_iter().map(|o| (o.id, Arc::new(o))));
        Ok(())
    }

    /// Drops the options of a product (`None`: every option), so the next order reads them again.
    pub fn forget(&self, product_id: Option<i64>) {
        let mut map = self.options.write().expect("not poisoned");
        match product_id {
            None => map.clear(),
            Some(p) => map.retain(|_, o| o.product_id != p),
        }
    }

    /// The options of `ids` that exist (a miss is read from Postgres once, in one query).
    pub async fn options(&self, db: &PgPool, ids: &[i64]) -> sqlx::Result<HashMap<i64, Arc<OptionInfo>>> {
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        {
            let map = self.options.read().expect("not poisoned");
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
            for o in loaded {
                let o = Arc::new(o);
                map.insert(o.id, o.clone());
                found.insert(o.id, o);
            }
        }
        Ok(found)
    }
}
