//! The catalog in memory: list pages, product details and the popular products of each market,
//! read from Postgres only on a miss, with cold misses collapsed (single-flight) and every
//! instance dropping what a change notice names.
//!
//! # What is held, and how much
//! | Cache | Key | Bound | Filled from |
//! | --- | --- | --- | --- |
//! | list pages | market, category, search pattern, sort, page, size | [`LIST_PAGES`] entries | one listing query |
//! | list availability | the same key | [`LIST_PAGES`] entries, each at most [`LIST_AVAILABILITY_AGE`] old | one `MGET` of the page's counters |
//! | rendered list pages | the same key and the language | 2 x [`LIST_PAGES`] entries | the HTTP layer's rendering, kept while the availability it shows is current |
//! | product details | market, product (a product not sold there too) | [`DETAILS`] entries | two queries |
//! | popular products | market | 2 entries, at most [`TOP_AGE`] old | the latest snapshot |
//!
//! Entries hold both languages' text, so one entry serves `ko` and `en` readers alike. Bounded
//! by entry count (moka's TinyLFU evicts the least useful); at the defaults a page of 100
//! products is some 20 KB, so the caches stay well under 100 MB.
//!
//! # Staying right
//! Every key carries the *generation* of the catalog. A [`Topic::Product`] or [`Topic::Stock`]
//! notice (from this or any instance, or the listener's revision check healing a lost one)
//! bumps it: readers then ask for keys nobody has loaded yet, so a load that started before the
//! change can never answer a reader after it. The `popular` sort also carries a time bucket of
//! [`POPULAR_EVERY`], since it follows paid orders that publish no notice. Availability is not
//! trusted to the cached rows: see [`CatalogCache::live_options`] and
//! [`CatalogCache::live_list`].

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use chrono::{DateTime, Utc};
use moka::future::Cache;

use super::Fault;
use crate::{
    domain::{Lang, Market, PageRequest, catalog::ProductSort},
    store::{
        pg::{
            catalog::{OptionRow, ProductRow, ProductSummaryRow},
            popular::RankedProduct,
        },
        redis::{
            notices::{Notices, Topic},
            stock::StockStore,
        },
    },
};

/// Most list pages held (and most list availabilities).
pub const LIST_PAGES: u64 = 4_096;
/// Most product details held.
pub const DETAILS: u64 = 16_384;
/// How old a list page's availability may get before the next reader refreshes it: the list's
/// `stock_status` follows a sale within this (well within the 1 s promised).
pub const LIST_AVAILABILITY_AGE: Duration = Duration::from_millis(400);
/// How long a `popular` list page is kept: its order follows paid orders, which send no notice.
pub const POPULAR_EVERY: Duration = Duration::from_secs(10);
/// How long the popular products are kept at most: a safety net for a snapshot written by a
/// process that published no notice (the job's route publishes one).
pub const TOP_AGE: Duration = Duration::from_secs(60);

/// What a list page is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ListKey {
    /// The market.
    pub market: Market,
    /// Exact category, if any.
    pub category: Option<String>,
    /// `LIKE` pattern over both names, if any.
    pub name_pattern: Option<String>,
    /// The order.
    pub sort: ProductSort,
    /// Page number from 1.
    pub page: i64,
    /// Items per page.
    pub size: i64,
}

impl ListKey {
    /// The page request of this key.
    pub fn page_request(&self) -> PageRequest {
        PageRequest { page: self.page, size: self.size }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Generational<K> {
    generation: u64,
    /// Time bucket of keys that go stale without notice (0 for the others).
    bucket: u64,
    key: K,
}

/// One page of a listing as Postgres answered it.
#[derive(Debug)]
pub struct ListedPage {
    /// The page's products (`available` as Postgres counted it at load time).
    pub rows: Vec<ProductSummaryRow>,
    /// How many products the listing matches.
    pub total: i64,
}

/// A product with its options priced in one market (`available` as Postgres counted it).
#[derive(Debug)]
pub struct CachedProduct {
    /// The product's own columns.
    pub product: ProductRow,
    /// Its options priced in the market, by id (at least one).
    pub options: Vec<OptionRow>,
}

/// The latest popular-products snapshot of a market, if any.
pub type Top = Option<(DateTime<Utc>, Vec<RankedProduct>)>;

/// A list page rendered for one language with the availability it shows: what most catalog reads
/// answer, byte for byte, until the availability or the page changes.
#[derive(Debug)]
pub struct Rendered {
    /// The availability the body shows (compared by identity: a refresh is a new `Arc`).
    pub available: Arc<Vec<i64>>,
    /// The body.
    pub body: Vec<u8>,
    /// Its entity tag.
    pub etag: String,
}

/// The in-process catalog of one instance.
#[derive(Clone)]
pub struct CatalogCache {
    generation: Arc<AtomicU64>,
    /// Postgres loads done by this cache (for tests and metrics: one per miss, not per reader).
    loads: Arc<AtomicU64>,
    lists: Cache<Generational<ListKey>, Arc<ListedPage>>,
    list_avail: Cache<Generational<ListKey>, Arc<Vec<i64>>>,
    rendered: Cache<(Generational<ListKey>, Lang), Arc<Rendered>>,
    details: Cache<Generational<(Market, i64)>, Option<Arc<CachedProduct>>>,
    top: Cache<Generational<Market>, Arc<Top>>,
}

impl Default for CatalogCache {
    fn default() -> Self {
        CatalogCache::new()
    }
}

fn bucket(every: Duration) -> u64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    now.as_secs() / every.as_secs().max(1)
}

fn shared(e: Arc<Fault>) -> Fault {
    Fault::Shared(e)
}

impl CatalogCache {
    /// Empty caches at the documented bounds.
    pub fn new() -> CatalogCache {
        CatalogCache {
            generation: Arc::default(),
            loads: Arc::default(),
            lists: Cache::builder().max_capacity(LIST_PAGES).build(),
            list_avail: Cache::builder().max_capacity(LIST_PAGES).time_to_live(LIST_AVAILABILITY_AGE).build(),
            rendered: Cache::builder().max_capacity(2 * LIST_PAGES).build(),
            details: Cache::builder().max_capacity(DETAILS).build(),
            top: Cache::builder().max_capacity(2).time_to_live(TOP_AGE).build(),
        }
    }

    /// Obeys the change notices: a product (edit, new product, price) or a stock change (V1
    /// writes, adjustments) drops the catalog; a new popularity snapshot (daily) too.
    pub fn subscribe(&self, notices: &Notices) {
        for topic in [Topic::Product, Topic::Stock, Topic::Popular] {
            let me = self.clone();
            notices.on(topic, move |_| me.invalidate());
        }
    }

    /// Drops everything: readers from now on load afresh.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        // The new generation already hides them; this frees the memory.
        self.lists.invalidate_all();
        self.list_avail.invalidate_all();
        self.rendered.invalidate_all();
        self.details.invalidate_all();
        self.top.invalidate_all();
    }

    /// How many times this cache read Postgres.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    fn wrap<K>(&self, key: K, bucket: u64) -> Generational<K> {
        Generational { generation: self.generation.load(Ordering::SeqCst), bucket, key }
    }

    fn list_key(&self, key: &ListKey) -> Generational<ListKey> {
        let b = if key.sort == ProductSort::Popular { bucket(POPULAR_EVERY) } else { 0 };
        self.wrap(key.clone(), b)
    }

    /// A list page: from memory, else from `load` (once however many readers miss together).
    pub async fn list<F>(&self, key: &ListKey, load: F) -> Result<Arc<ListedPage>, Fault>
    where
        F: Future<Output = Result<ListedPage, Fault>>,
    {
        let loads = self.loads.clone();
        self.lists
            .try_get_with(self.list_key(key), async move {
                loads.fetch_add(1, Ordering::Relaxed);
                load.await.map(Arc::new)
            })
            .await
            .map_err(shared)
    }

    /// The live availability of each product of `page` (same order): the sum of its options'
    /// Redis counters, read at most [`LIST_AVAILABILITY_AGE`] ago with one `MGET` per page; a
    /// product with an option whose counter does not exist (not hydrated, V1) keeps what
    /// Postgres counted. A Redis failure falls back to Postgres's count too.
    pub async fn live_list(&self, stock: &StockStore, key: &ListKey, page: &ListedPage) -> Arc<Vec<i64>> {
        if page.rows.is_empty() {
            return Arc::new(Vec::new());
        }
        let fallback = || Arc::new(page.rows.iter().map(|r| r.available).collect::<Vec<_>>());
        let loaded = self
            .list_avail
            .try_get_with(self.list_key(key), async {
                let ids: Vec<i64> = page.rows.iter().flat_map(|r| r.option_ids.iter().copied()).collect();
                let counters = stock.available(&ids).await?;
                let mut counters = counters.into_iter();
                let sums = page
                    .rows
                    .iter()
                    .map(|r| {
                        let mine: Vec<Option<i64>> = counters.by_ref().take(r.option_ids.len()).collect();
                        mine.iter().try_fold(0i64, |sum, c| c.map(|c| sum + c.max(0))).unwrap_or(r.available)
                    })
                    .collect();
                Ok::<_, redis::RedisError>(Arc::new(sums))
            })
            .await;
        loaded.unwrap_or_else(|e| {
            tracing::warn!(error.cause = %e, "catalog: stock counters unreadable; listing Postgres's count");
            fallback()
        })
    }

    /// The list page of `key` rendered in `lang` with `available`: the body rendered before
    /// when it showed this very availability, else `render`'s (then kept).
    pub async fn rendered(
        &self,
        key: &ListKey,
        lang: Lang,
        available: &Arc<Vec<i64>>,
        render: impl FnOnce() -> (Vec<u8>, String),
    ) -> Arc<Rendered> {
        let k = (self.list_key(key), lang);
        if let Some(r) = self.rendered.get(&k).await
            && Arc::ptr_eq(&r.available, available)
        {
            return r;
        }
        let (body, etag) = render();
        let r = Arc::new(Rendered { available: available.clone(), body, etag });
        self.rendered.insert(k, r.clone()).await;
        r
    }

    /// A product's detail in a market (`None`: not on sale there), from memory or `load`.
    pub async fn product<F>(
        &self,
        market: Market,
        product_id: i64,
        load: F,
    ) -> Result<Option<Arc<CachedProduct>>, Fault>
    where
        F: Future<Output = Result<Option<CachedProduct>, Fault>>,
    {
        let loads = self.loads.clone();
        self.details
            .try_get_with(self.wrap((market, product_id), 0), async move {
                loads.fetch_add(1, Ordering::Relaxed);
                load.await.map(|p| p.map(Arc::new))
            })
            .await
            .map_err(shared)
    }

    /// The live availability of `options` (same order), read now with one `MGET`: what a
    /// product page shows, so the last unit admitted makes it SOLD_OUT at once. An option
    /// without a counter (not hydrated, V1) keeps what Postgres counted; so does every option
    /// when Redis cannot be read.
    pub async fn live_options(stock: &StockStore, options: &[OptionRow]) -> Vec<i64> {
        let ids: Vec<i64> = options.iter().map(|o| o.id).collect();
        match stock.available(&ids).await {
            Ok(counters) => options.iter().zip(counters).map(|(o, c)| c.map_or(o.available, |c| c.max(0))).collect(),
            Err(e) => {
                tracing::warn!(error.cause = %e, "catalog: stock counters unreadable; showing Postgres's count");
                options.iter().map(|o| o.available).collect()
            }
        }
    }

    /// The popular products of a market, from memory or `load`.
    pub async fn top<F>(&self, market: Market, load: F) -> Result<Arc<Top>, Fault>
    where
        F: Future<Output = Result<Top, Fault>>,
    {
        let loads = self.loads.clone();
        self.top
            .try_get_with(self.wrap(market, 0), async move {
                loads.fetch_add(1, Ordering::Relaxed);
                load.await.map(Arc::new)
            })
            .await
            .map_err(shared)
    }
}
