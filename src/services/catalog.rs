//! The catalog: the product listing and a product's detail, each priced in one market.
//!
//! The market is the explicit choice, else the caller's market, else the one implied by the
//! preferred language, else KR ([`market`]); the language of product text is the caller's
//! choice alone, so a Korean shopper can browse the US catalogue in Korean.

use super::{AppState, Fault, fault_conversions};
pub use crate::store::pg::catalog::{OptionRow, ProductRow, ProductSummaryRow};
use crate::{
    domain::{Lang, Market, PageRequest, catalog::ProductSort},
    store::pg::{
        catalog::{self, ListFilter},
        users,
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
    if let Some(m) = hint.explicit {
        return Ok(m);
    }
    if let Some(caller) = hint.caller {
        // Staff tokens may name no profile; they fall through to the language.
        if let Some(user) = users::find(&state.db, caller).await? {
            return Ok(user.market());
        }
    }
    Ok(hint.lang.map_or(Market::Kr, Market::for_lang))
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

/// One page of the products listed in the hinted market, with the market and the number of
/// products the listing matches.
pub async fn list(
    state: &AppState,
    hint: MarketHint,
    listing: Listing,
    page: PageRequest,
) -> Result<(Market, Vec<ProductSummaryRow>, i64), CatalogError> {
    let Listing { category, name_pattern, sort } = listing;
    let filter = ListFilter { market: market(state, hint).await?, category, name_pattern, sort };
    let mut conn = state.db.acquire().await?;
    let (rows, total) = catalog::list(&mut conn, &filter, page).await?;
    Ok((filter.market, rows, total))
}

/// An on-sale product with its options priced in the hinted market (at least one: a product
/// without a price there is not sold there and not found).
pub async fn product(
    state: &AppState,
    hint: MarketHint,
    product_id: i64,
) -> Result<(Market, ProductRow, Vec<OptionRow>), CatalogError> {
    let market = market(state, hint).await?;
    let not_found = CatalogError::ProductNotFound { product_id };
    let product = catalog::find_on_sale(&state.db, product_id).await?.ok_or(not_found)?;
    let options = catalog::priced_options(&state.db, product_id, market.currency()).await?;
    if options.is_empty() {
        return Err(CatalogError::ProductNotFound { product_id });
    }
    Ok((market, product, options))
}
