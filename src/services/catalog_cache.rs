//! The catalog in memory: list pages, product details and the popular products of each market,
//! read from Postgres only on a miss, with cold misses collapsed (single-flight) and every
//! instance dropping what a change notice names.
//!
//! # What is held, and how much
//! | Cache | Key | Bound | Filled from |
//! | --- | --- | --- | --- |
//! | list pages | market, category, search pattern, sort, page, size | [`LIST_PAGES`] entries | one listing query |
//! | list availability | the same key and the page's load | [`LIST_PAGES`] entries, each at most [`LIST_AVAILABILITY_AGE`] old | one `MGET` of the page's counters |
//! | product details | market, product (a product not sold there too) | [`DETAILS`] entries | two queries |
//! | rendered bodies | a list page's load or a detail's load, and the language | 2 x [`LIST_PAGES`] + [`DETAILS`] entries | the HTTP layer's rendering, kept while the availability it shows is current |
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
//! change can never answer a reader after it. A `popular` page also goes stale without notice
//! (it follows paid orders, which publish none): read when older than [`POPULAR_EVERY`], it is
//! reloaded by one background task while its readers keep the page they had. (It used to be
//! keyed by a time bucket instead: every [`POPULAR_EVERY`] all popular pages missed at once, and
//! every reader of them waited for Postgres, a stall of up to 200 ms for the whole listing under
//! load.) Availability is not trusted to the cached rows: see [`CatalogCache::live_options`] and
//! [`CatalogCache::live_list`].

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
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
/// How old a `popular` list page may get before its next reader has it reloaded (in the
/// background): its order follows paid orders, which send no notice.
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
    /// Which load of a list page a derived entry (availability, rendering) belongs to; 0 else.
    load: u64,
    key: K,
}

/// One page of a listing as Postgres answered it.
#[derive(Debug)]
pub struct ListedPage {
    /// The page's products (`available` as Postgres counted it at load time).
    pub rows: Vec<ProductSummaryRow>,
    /// How many products the listing matches.
    pub total: i64,
    /// When it was loaded.
    loaded_at: Instant,
    /// Which load it is (unique in the process): what its availability and renderings follow.
    serial: u64,
}

impl ListedPage {
    /// A page as Postgres answered it.
    pub fn new(rows: Vec<ProductSummaryRow>, total: i64) -> ListedPage {
        ListedPage { rows, total, loaded_at: Instant::now(), serial: 0 }
    }
}

/// A product with its options priced in one market (`available` as Postgres counted it).
#[derive(Debug)]
pub struct CachedProduct {
    /// The product's own columns.
    pub product: ProductRow,
    /// Its options priced in the market, by id (at least one).
    pub options: Vec<OptionRow>,
    /// Which load it is (unique in the process): what its renderings follow.
    serial: u64,
}

impl CachedProduct {
    /// A product as Postgres answered it.
    pub fn new(product: ProductRow, options: Vec<OptionRow>) -> CachedProduct {
        CachedProduct { product, options, serial: 0 }
    }
}

/// The latest popular-products snapshot of a market, if any.
pub type Top = Option<(DateTime<Utc>, Vec<RankedProduct>)>;

/// A list page or a product's detail rendered for one language with the availability it shows:
/// what most catalog reads answer, byte for byte, until the availability or the page changes.
#[derive(Debug)]
pub struct Rendered {
    /// The availability the body shows.
    pub available: Vec<i64>,
    /// The body.
    pub body: Vec<u8>,
    /// Its entity tag.
    pub etag: String,
}

/// What a rendered body shows: one load of a list page, or of a product's detail (by its
/// serial: the load, not the generation of the reader, decides what the body says).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Shown {
    List(Generational<ListKey>),
    Detail(u64),
}

/// The in-process catalog of one instance.
#[derive(Clone)]
pub struct CatalogCache {
    generation: Arc<AtomicU64>,
    /// Postgres loads done by this cache (for tests and metrics: one per miss, not per reader).
    loads: Arc<AtomicU64>,
    /// Popular pages being reloaded in the background (one reload per page at a time).
    reloading: Arc<Mutex<HashSet<Generational<ListKey>>>>,
    lists: Cache<Generational<ListKey>, Arc<ListedPage>>,
    list_avail: Cache<Generational<ListKey>, Arc<Vec<i64>>>,
    rendered: Cache<(Shown, Lang), Arc<Rendered>>,
    details: Cache<Generational<(Market, i64)>, Option<Arc<CachedProduct>>>,
    top: Cache<Generational<Market>, Arc<Top>>,
}

impl Default for CatalogCache {
    fn default() -> Self {
        CatalogCache::new()
    }
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
            reloading: Arc::default(),
            lists: Cache::builder().max_capacity(LIST_PAGES).build(),
            list_avail: Cache::builder().max_capacity(LIST_PAGES).time_to_live(LIST_AVAILABILITY_AGE).build(),
            rendered: Cache::builder().max_capacity(2 * LIST_PAGES + DETAILS).build(),
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

    fn wrap<K>(&self, key: K, load: u64) -> Generational<K> {
        Generational { generation: self.generation.load(Ordering::SeqCst), load, key }
    }

    /// The key of what derives from `page`, loaded for `key`.
    fn derived_key(&self, key: &ListKey, page: &ListedPage) -> Generational<ListKey> {
        self.wrap(key.clone(), page.serial)
    }

    /// Runs `load` as one load of this cache, stamping the page it answers.
    async fn load_page<F: Future<Output = Result<ListedPage, Fault>>>(
        &self,
        load: F,
    ) -> Result<Arc<ListedPage>, Fault> {
        let serial = self.loads.fetch_add(1, Ordering::Relaxed) + 1;
        let page = load.await?;
        Ok(Arc::new(ListedPage { loaded_at: Instant::now(), serial, ..page }))
    }

    /// A list page: from memory, else from `load` of its key (once however many readers miss
    /// together). A `popular` page older than [`POPULAR_EVERY`] is answered as it is while one
    /// background task reloads it.
    pub async fn list<L, F>(&self, key: &ListKey, load: L) -> Result<Arc<ListedPage>, Fault>
    where
        L: Fn(&ListKey) -> F + Send + Sync + 'static,
        F: Future<Output = Result<ListedPage, Fault>> + Send + 'static,
    {
        let k = self.wrap(key.clone(), 0);
        let page =
            self.lists.try_get_with(k.clone(), async { self.load_page(load(key)).await }).await.map_err(shared)?;
        if key.sort == ProductSort::Popular && page.loaded_at.elapsed() >= POPULAR_EVERY {
            self.reload(k, load);
        }
        Ok(page)
    }

    /// Reloads the page of `k` on a task of its own, unless a reload of it is under way.
    fn reload<L, F>(&self, k: Generational<ListKey>, load: L)
    where
        L: Fn(&ListKey) -> F + Send + Sync + 'static,
        F: Future<Output = Result<ListedPage, Fault>> + Send + 'static,
    {
        if !self.reloading.lock().unwrap_or_else(|e| e.into_inner()).insert(k.clone()) {
            return;
        }
        let me = self.clone();
        tokio::spawn(async move {
            // Under a generation that moved on meanwhile, the insert is harmless: nobody asks
            // for that key any more.
            match me.load_page(load(&k.key)).await {
                Ok(page) => me.lists.insert(k.clone(), page).await,
                Err(e) => {
                    tracing::warn!(error.cause = %e, "catalog: a popular page could not be reloaded; its readers keep the older one")
                }
            }
            me.reloading.lock().unwrap_or_else(|e| e.into_inner()).remove(&k);
        });
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
            .try_get_with(self.derived_key(key, page), async {
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

    /// The list page `page` of `key` rendered in `lang` with `available`: the body rendered
    /// before when it showed this very availability, else `render`'s (then kept).
    pub async fn rendered_list(
        &self,
        key: &ListKey,
        page: &ListedPage,
        lang: Lang,
        available: &[i64],
        render: impl FnOnce() -> (Vec<u8>, String),
    ) -> Arc<Rendered> {
        self.rendered((Shown::List(self.derived_key(key, page)), lang), available, render).await
    }

    /// The detail `product` rendered in `lang` with `available` (its options', read now): the
    /// body rendered before when it showed these very numbers, else `render`'s.
    pub async fn rendered_detail(
        &self,
        product: &CachedProduct,
        lang: Lang,
        available: &[i64],
        render: impl FnOnce() -> (Vec<u8>, String),
    ) -> Arc<Rendered> {
        self.rendered((Shown::Detail(product.serial), lang), available, render).await
    }

    async fn rendered(
        &self,
        k: (Shown, Lang),
        available: &[i64],
        render: impl FnOnce() -> (Vec<u8>, String),
    ) -> Arc<Rendered> {
        if let Some(r) = self.rendered.get(&k).await
            && r.available == available
        {
            return r;
        }
        let (body, etag) = render();
        let r = Arc::new(Rendered { available: available.to_vec(), body, etag });
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
                let serial = loads.fetch_add(1, Ordering::Relaxed) + 1;
                load.await.map(|p| p.map(|p| Arc::new(CachedProduct { serial, ..p })))
            })
            .await
            .map_err(shared)
    }

    /// The live availability of `options` (same order), read now (one `MGET` shared with the
    /// pages read at the same moment, none earlier: `StockStore::available_now`): what a
    /// product page shows, so the last unit admitted makes it SOLD_OUT at once. An option
    /// without a counter (not hydrated, V1) keeps what Postgres counted; so does every option
    /// when Redis cannot be read.
    pub async fn live_options(stock: &StockStore, options: &[OptionRow]) -> Vec<i64> {
        let ids: Vec<i64> = options.iter().map(|o| o.id).collect();
        match stock.available_now(&ids).await {
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
