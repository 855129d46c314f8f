//! The in-process cache that keeps Postgres off the hot path of a V2 order: the catalog's option
//! data (prices, names, sale flag). Users' markets come from [`crate::store::user_markets`].
//!
//! It is loaded at start-up and filled on a miss with one query; a miss that Postgres cannot
//! answer either (an unknown id) is not cached, so something created later is found. The API
//! never edits prices, names, sale flags or markets after creation (products are only added), so
//! entries never go stale through it; an edit made directly in the database needs a restart.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use sqlx::{FromRow, PgPool};

use crate::domain::{Currency, Market};

/// What an order needs to know about an option.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct OptionInfo {
    /// Option id.
    pub id: i64,
    /// Its product.
    pub product_id: i64,
    /// Product category (coupon restrictions).
    pub category: String,
    /// Product name in Korean.
    pub name_ko: String,
    /// Product name in English.
    pub name_en: String,
    /// Option name.
    pub option_name: String,
    /// Whether the product is on sale.
    pub on_sale: bool,
    /// Price in KRW, if sold in Korea.
    pub krw: Option<i64>,
    /// Price in USD cents, if sold in the US.
    pub usd: Option<i64>,
}

impl OptionInfo {
    /// The price in a currency (None: not sold in that market).
    pub fn price(&self, currency: Currency) -> Option<i64> {
        match currency {
            Currency::Krw => self.krw,
            Currency::Usd => self.usd,
        }
    }

    /// The product name in a market's language.
    pub fn product_name(&self, market: Market) -> &str {
        match market {
            Market::Kr => &self.name_ko,
            Market::Us => &self.name_en,
        }
    }
}

const OPTION_SELECT: &str = "SELECT po.id, po.product_id, p.category, p.name_ko, p.name_en, po.name AS option_name, \
            p.on_sale, krw.amount AS krw, usd.amount AS usd \
     FROM product_options po JOIN products p ON p.id = po.product_id \
     LEFT JOIN option_prices krw ON krw.option_id = po.id AND krw.currency = 'KRW' \
     LEFT JOIN option_prices usd ON usd.option_id = po.id AND usd.currency = 'USD'";

/// The option cache of one process.
#[derive(Default)]
pub struct CatalogCache {
    options: RwLock<HashMap<i64, Arc<OptionInfo>>>,
}

impl CatalogCache {
    /// Loads every option (start-up).
    pub async fn load_all(&self, db: &PgPool) -> sqlx::Result<()> {
        let options: Vec<OptionInfo> = sqlx::query_as(OPTION_SELECT).fetch_all(db).await?;
        self.options.write().expect("not poisoned").extend(options.into_iter().map(|o| (o.id, Arc::new(o))));
        Ok(())
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
            let loaded: Vec<OptionInfo> =
                sqlx::query_as(&format!("{OPTION_SELECT} WHERE po.id = ANY($1)")).bind(&missing).fetch_all(db).await?;
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
