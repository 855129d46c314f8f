//! The catalog: the product listing and a product's detail, each priced in one market.
//!
//! The market is the explicit choice, else the caller's market, else the one implied by the
//! preferred language, else KR ([`market`]); the language of product text is the caller's
//! choice alone, so a Korean shopper can browse the US catalogue in Korean.
//!
//! Reads are served from the process's [`CatalogCache`] (Postgres only on a miss); availability
//! comes from the V2 stock counters where they exist.

use std::sync::Arc;

use super::{
    AppState, Fault,
    catalog_cache::{CachedProduct, CatalogCache, ListKey, ListedPage},
    fault_conversions,
};
pub use crate::store::pg::catalog::{OptionRow, ProductRow, ProductSummaryRow};
use crate::{
    domain::{Lang, Market, PageRequest, catalog::ProductSort},
    store::{
        pg::{
            catalog::{self, ListFilter},
            orders::{HeldStock, Reservation},
        },
        redis::notices::Topic,
    },
};

/// Why a catalog read failed.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No such product on sale in the market.
    #[error("no product {product_id} on sale in the market")]
    ProductNotFound {
        /// The product asked for.
        product_id: i64,
    },
    /// A store failed.
    #[error(transparent)]
    Fault(#[from] Fault),
}

fault_conversions!(CatalogError);

/// What decides the market a catalog read is priced in.
#[derive(Debug, Clone, Copy, Default)]
pub struct MarketHint {
    /// `?market=`, when given.
    pub explicit: Option<Market>,
    /// The caller's user id, when the request carried a valid token.
    pub caller: Option<i64>,
    /// The language the request prefers (`Accept-Language`), when it names a supported one.
    pub lang: Option<Lang>,
}

/// The market a catalog read is priced in: the explicit one, else the caller's, else the one
/// implied by the preferred language, else KR.
pub async fn market(state: &AppState, hint: MarketHint) -> Result<Market, Fault> {
    Ok(resolve(state, hint).await?.0)
}

/// [`market`], and whether the caller decided it (then the answer is the caller's own, which a
/// shared cache must not keep). Users' markets come from the process's cache.
pub async fn resolve(state: &AppState, hint: MarketHint) -> Result<(Market, bool), Fault> {
    if let Some(m) = hint.explicit {
        return Ok((m, false));
    }
    if let Some(caller) = hint.caller {
        // Staff tokens may name no profile; they fall through to the language.
        if let Some(market) = state.order_admission.users().market(&state.db, caller).await? {
            return Ok((market, true));
        }
    }
    Ok((hint.lang.map_or(Market::Kr, Market::for_lang), false))
}

/// What a listing is filtered and sorted by.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// Exact category slug, if any.
    pub category: Option<String>,
    /// A `LIKE` pattern over both names (`domain::catalog::contains_pattern`), if any.
    pub name_pattern: Option<String>,
    /// The order.
    pub sort: ProductSort,
}

/// A catalog answer: what it says, the market it is priced in, and whether the caller decided
/// that market (a private answer).
#[derive(Debug)]
pub struct Answer<T> {
    /// The market.
    pub market: Market,
    /// True when the caller's own market priced it.
    pub personal: bool,
    /// The answer.
    pub value: T,
}

/// A page of the listing with live availability.
#[derive(Debug)]
pub struct ListPage {
    /// What the page is cached under (for the rendered body, [`CatalogCache::rendered`]).
    pub key: ListKey,
    /// The page as cached (rows and total).
    pub page: Arc<ListedPage>,
    /// Each row's available units (same order), at most `LIST_AVAILABILITY_AGE` old.
    pub available: Arc<Vec<i64>>,
}

/// One page of the products listed in the hinted market, from memory (Postgres on a miss).
pub async fn list(
    state: &AppState,
    hint: MarketHint,
    listing: Listing,
    page: PageRequest,
) -> Result<Answer<ListPage>, CatalogError> {
    let (market, personal) = resolve(state, hint).await?;
    let Listing { category, name_pattern, sort } = listing;
    let key = ListKey { market, category, name_pattern, sort, page: page.page, size: page.size };
    let db = state.db.clone();
    // Owned: a stale `popular` page is reloaded on a task of its own.
    let load = move |key: &ListKey| {
        let db = db.clone();
        let filter = ListFilter {
            market: key.market,
            category: key.category.clone(),
            name_pattern: key.name_pattern.clone(),
            sort: key.sort,
        };
        let page = key.page_request();
        async move {
            let mut conn = db.acquire().await?;
            let (rows, total) = catalog::list(&mut conn, &filter, page).await?;
            Ok(ListedPage::new(rows, total))
        }
    };
    let listed = state.catalog.list(&key, load).await?;
    let available = state.catalog.live_list(state.order_admission.stock(), &key, &listed).await;
    Ok(Answer { market, personal, value: ListPage { key, page: listed, available } })
}

/// A product with live availability.
#[derive(Debug)]
pub struct ProductView {
    /// The product and its priced options as cached.
    pub product: Arc<CachedProduct>,
    /// Each option's available units (same order), read now.
    pub available: Vec<i64>,
}

/// An on-sale product with its options priced in the hinted market (at least one: a product
/// without a price there is not sold there and not found), from memory (Postgres on a miss),
/// with its availability read now.
pub async fn product(state: &AppState, hint: MarketHint, product_id: i64) -> Result<Answer<ProductView>, CatalogError> {
    let (market, personal) = resolve(state, hint).await?;
    let cached = state
        .catalog
        .product(market, product_id, async {
            let Some(product) = catalog::find_on_sale(&state.db, product_id).await? else {
                return Ok(None);
            };
            let options = catalog::priced_options(&state.db, product_id, market.currency()).await?;
            Ok((!options.is_empty()).then(|| CachedProduct::new(product, options)))
        })
        .await?
        .ok_or(CatalogError::ProductNotFound { product_id })?;
    let available = CatalogCache::live_options(state.order_admission.stock(), &cached.options).await;
    Ok(Answer { market, personal, value: ProductView { product: cached, available } })
}

/// Announces a committed change of the catalog to every instance. This instance drops its copies
/// (the catalog, and for a product the order path's options) at once (its next read, the
/// writer's own, sees the change); the others when the notice arrives. Should the notice not go out (Redis down), the failure is logged: the change itself
/// is committed, so the caller still succeeds.
pub async fn changed(state: &AppState, topic: Topic, id: Option<i64>) {
    state.catalog.invalidate();
    if topic == Topic::Product {
        // The V2 order path's own copy of the options (prices, names, sale flag).
        state.order_admission.product_changed(id);
    }
    if let Err(e) = state.notices.publish(topic, id).await {
        tracing::error!(notice.topic = topic.as_str(), notice.id = ?id, error.cause = %e, "could not announce a catalog change; other instances keep their copy until the next notice");
    }
}

/// After a V1 stock write committed (a reservation held in Postgres, which no V2 counter
/// follows): the availability of its options changed, one [`Topic::Stock`] notice per option.
pub async fn stock_changed(state: &AppState, held: &HeldStock) {
    if held.reservation != Reservation::Db {
        return;
    }
    for (option_id, _) in &held.lines {
        changed(state, Topic::Stock, Some(*option_id)).await;
    }
}
