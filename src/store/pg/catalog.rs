//! Postgres queries of the catalog domain.
//!
//! A product is *listed in a market* when it is on sale and at least one of its options has a
//! price in that market's currency (its own, or converted at the FX rate in force: the view
//! `option_market_prices`). Only such options count: an option without a price in the
//! market cannot be bought there, so it adds neither a price nor availability.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor};

use crate::domain::{
    Currency, Market, PageRequest,
    catalog::{NewProduct, ProductSort},
    fx::PriceSource,
};

/// What a listing is filtered by.
#[derive(Debug, Clone)]
pub struct ListFilter {
    /// The market whose currency prices the products (and whose sales rank `popular`).
    pub market: Market,
    /// Exact category slug, if any.
    pub category: Option<String>,
    /// A `LIKE` pattern over both names (see `domain::catalog::contains_pattern`), if any.
    pub name_pattern: Option<String>,
    /// The order.
    pub sort: ProductSort,
}

/// One product of a listing.
#[derive(Debug, Clone, FromRow)]
pub struct ProductSummaryRow {
    /// Product id.
    pub id: i64,
    /// Korean name.
    pub name_ko: String,
    /// English name.
    pub name_en: String,
    /// Category slug.
    pub category: String,
    /// Lowest option price in the market currency.
    pub price: i64,
    /// Where that price came from (a list price wins a tie with a converted one).
    #[sqlx(try_from = "String")]
    pub price_source: PriceSource,
    /// Sum of sellable quantities (stock minus reservations) of the priced options.
    pub available: i64,
    /// The priced options, by id (whose live counters make up `available` under V2).
    pub option_ids: Vec<i64>,
}

/// A product's own columns, for the detail view.
#[derive(Debug, Clone, FromRow)]
pub struct ProductRow {
    /// Product id.
    pub id: i64,
    /// Korean name.
    pub name_ko: String,
    /// English name.
    pub name_en: String,
    /// Korean description.
    pub description_ko: String,
    /// English description.
    pub description_en: String,
    /// Category slug.
    pub category: String,
    /// Picture URL.
    pub image_url: Option<String>,
}

/// One option of a product with its price in one currency.
#[derive(Debug, Clone, FromRow)]
pub struct OptionRow {
    /// Option id.
    pub id: i64,
    /// Option name.
    pub name: String,
    /// Price in the asked currency.
    pub price: i64,
    /// Where the price came from.
    #[sqlx(try_from = "String")]
    pub price_source: PriceSource,
    /// Sellable quantity: stock minus reservations.
    pub available: i64,
}

/// The ORDER BY of each sort, always ending in the id so the order is total.
fn order_by(sort: ProductSort) -> &'static str {
    match sort {
        ProductSort::PriceAsc => "l.price ASC, l.id ASC",
        ProductSort::PriceDesc => "l.price DESC, l.id ASC",
        ProductSort::Popular => "sold DESC, last_sold_at DESC NULLS LAST, l.id ASC",
        ProductSort::Newest => "l.created_at DESC, l.id DESC",
    }
}

/// The lowest of a product's option prices in one currency (`pr`: rows of
/// `option_market_prices`) as `price`, and where it came from as `price_source`: a list price
/// wins a tie with a converted one. A macro so that [`LISTED`] can be one constant.
macro_rules! lowest_price_sql {
    () => {
        "min(pr.amount) AS price, (array_agg(pr.source ORDER BY pr.amount, pr.source DESC))[1] AS price_source"
    };
}

/// A product's shown price, aggregated over its options joined as `pr` to
/// `option_market_prices`: the one home of "a product's price in a market" for every SQL read
/// (listings, popular products); a product page picks the same option in `http::catalog`.
pub const LOWEST_PRICE: &str = lowest_price_sql!();

/// The listed products of the filter, priced in `currency` (the CTE every listing query shares).
const LISTED: &str = concat!(
    r"
    listed AS (
        SELECT p.id, p.name_ko, p.name_en, p.category, p.created_at, ",
    lowest_price_sql!(),
    r",
               sum(GREATEST(s.stock - s.reserved, 0))::bigint AS available,
               array_agg(o.id ORDER BY o.id) AS option_ids
        FROM products p
        JOIN product_options o ON o.product_id = p.id
        JOIN option_stock s ON s.id = o.id
        JOIN option_market_prices pr ON pr.option_id = o.id AND pr.currency = $1
        WHERE p.on_sale
          AND ($2::text IS NULL OR p.category = $2)
          AND ($3::text IS NULL OR p.name_ko ILIKE $3 ESCAPE '\' OR p.name_en ILIKE $3 ESCAPE '\')
        GROUP BY p.id
    )"
);

/// Units sold per product in paid (or since fulfilled) orders of the market in the last 3 days.
const SALES: &str = r"
    sales AS (
        SELECT oi.product_id, sum(oi.quantity)::bigint AS sold, max(o.paid_at) AS last_sold_at
        FROM orders o
        JOIN order_items oi ON oi.order_id = o.id
        WHERE o.status IN ('PAID', 'FULFILLED')
          AND o.paid_at >= now() - interval '3 days'
          AND o.market = $6
        GROUP BY oi.product_id
    )";

/// One page of the listing and the number of products the filter matches.
pub async fn list(
    db: &mut PgConnection,
    filter: &ListFilter,
    page: PageRequest,
) -> sqlx::Result<(Vec<ProductSummaryRow>, i64)> {
    let currency = filter.market.currency().code();
    // Sales are only aggregated when they decide the order; other sorts skip the join.
    let sql = if filter.sort == ProductSort::Popular {
        format!(
            "WITH {LISTED}, {SALES}
             SELECT l.id, l.name_ko, l.name_en, l.category, l.price, l.price_source, l.available, l.option_ids,
                    COALESCE(s.sold, 0) AS sold, s.last_sold_at, count(*) OVER () AS total
             FROM listed l LEFT JOIN sales s ON s.product_id = l.id
             ORDER BY {} LIMIT $4 OFFSET $5",
            order_by(filter.sort)
        )
    } else {
        format!(
            "WITH {LISTED}
             SELECT l.id, l.name_ko, l.name_en, l.category, l.price, l.price_source, l.available, l.option_ids,
                    count(*) OVER () AS total
             FROM listed l
             ORDER BY {} LIMIT $4 OFFSET $5",
            order_by(filter.sort)
        )
    };
    let mut query = sqlx::query(&sql)
        .bind(currency)
        .bind(filter.category.as_deref())
        .bind(filter.name_pattern.as_deref())
        .bind(page.size)
        .bind(page.offset());
    if filter.sort == ProductSort::Popular {
        query = query.bind(filter.market.code());
    }
    let rows = query.fetch_all(&mut *db).await?;
    let total = match rows.first() {
        Some(row) => sqlx::Row::try_get::<i64, _>(row, "total")?,
        // Past the last page the window count has no row to ride on: count on its own.
        None if page.offset() > 0 => count(&mut *db, filter).await?,
        None => 0,
    };
    let items = rows.iter().map(ProductSummaryRow::from_row).collect::<sqlx::Result<Vec<_>>>()?;
    Ok((items, total))
}

async fn count(db: &mut PgConnection, filter: &ListFilter) -> sqlx::Result<i64> {
    sqlx::query_scalar(&format!("WITH {LISTED} SELECT count(*) FROM listed"))
        .bind(filter.market.currency().code())
        .bind(filter.category.as_deref())
        .bind(filter.name_pattern.as_deref())
        .fetch_one(db)
        .await
}

/// An on-sale product's own columns.
pub async fn find_on_sale(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<ProductRow>> {
    sqlx::query_as(
        "SELECT id, name_ko, name_en, description_ko, description_en, category, image_url
         FROM products WHERE id = $1 AND on_sale",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}

/// The options of a product priced in `currency`, by id; the others are not sold there.
pub async fn priced_options(
    db: impl PgExecutor<'_>,
    product_id: i64,
    currency: Currency,
) -> sqlx::Result<Vec<OptionRow>> {
    sqlx::query_as(
        "SELECT o.id, o.name, pr.amount AS price, pr.source AS price_source,
                GREATEST(s.stock - s.reserved, 0)::bigint AS available
         FROM product_options o
         JOIN option_stock s ON s.id = o.id
         JOIN option_market_prices pr ON pr.option_id = o.id AND pr.currency = $2
         WHERE o.product_id = $1
         ORDER BY o.id",
    )
    .bind(product_id)
    .bind(currency.code())
    .fetch_all(db)
    .await
}

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
    /// Price in KRW, if sold in Korea (listed, or converted from USD at the rate in force).
    pub krw: Option<i64>,
    /// Where the KRW price came from (`list` / `fx`).
    pub krw_source: Option<String>,
    /// Price in USD cents, if sold in the US (listed, or converted from KRW).
    pub usd: Option<i64>,
    /// Where the USD price came from.
    pub usd_source: Option<String>,
}

impl OptionInfo {
    /// The price in a currency and where it came from (None: not sold in that market).
    pub fn price(&self, currency: Currency) -> Option<(i64, PriceSource)> {
        let (amount, source) = match currency {
            Currency::Krw => (self.krw, &self.krw_source),
            Currency::Usd => (self.usd, &self.usd_source),
        };
        let source = PriceSource::from_column(source.clone());
        amount.map(|a| (a, source))
    }

    /// The product name in a market's language.
    pub fn product_name(&self, market: Market) -> &str {
        match market {
            Market::Kr => &self.name_ko,
            Market::Us => &self.name_en,
        }
    }
}

const OPTION_INFO: &str = "SELECT po.id, po.product_id, p.category, p.name_ko, p.name_en, po.name AS option_name, \
            p.on_sale, krw.amount AS krw, krw.source AS krw_source, usd.amount AS usd, usd.source AS usd_source \
     FROM product_options po JOIN products p ON p.id = po.product_id \
     LEFT JOIN option_market_prices krw ON krw.option_id = po.id AND krw.currency = 'KRW' \
     LEFT JOIN option_market_prices usd ON usd.option_id = po.id AND usd.currency = 'USD'";

/// What orders need to know of the options `ids` that exist; of every option when `ids` is `None`.
pub async fn option_infos(db: impl PgExecutor<'_>, ids: Option<&[i64]>) -> sqlx::Result<Vec<OptionInfo>> {
    match ids {
        None => sqlx::query_as(OPTION_INFO).fetch_all(db).await,
        Some(ids) => sqlx::query_as(&format!("{OPTION_INFO} WHERE po.id = ANY($1)")).bind(ids).fetch_all(db).await,
    }
}

/// The id of every option, ascending.
pub async fn option_ids(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar("SELECT id FROM product_options ORDER BY id").fetch_all(db).await
}

/// Ids of a product just inserted: the product's and its options' in the order given.
#[derive(Debug, Clone)]
pub struct InsertedProduct {
    /// Product id.
    pub id: i64,
    /// Option ids, in the order of `NewProduct::options`.
    pub option_ids: Vec<i64>,
}

/// Inserts a validated product with its options and prices, inside the caller's transaction.
/// `created_at` defaults to now (the seed spreads its products over time so `newest` shows an
/// order).
pub async fn insert(
    tx: &mut PgConnection,
    product: &NewProduct,
    created_at: Option<DateTime<Utc>>,
) -> sqlx::Result<InsertedProduct> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO products
             (category, name_ko, name_en, description_ko, description_en, image_url, on_sale, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, COALESCE($8, now()), COALESCE($8, now()))
         RETURNING id",
    )
    .bind(&product.category)
    .bind(&product.name.ko)
    .bind(&product.name.en)
    .bind(&product.description.ko)
    .bind(&product.description.en)
    .bind(product.image_url.as_deref())
    .bind(product.on_sale)
    .bind(created_at)
    .fetch_one(&mut *tx)
    .await?;
    let mut option_ids = Vec::with_capacity(product.options.len());
    for option in &product.options {
        let option_id: i64 = sqlx::query_scalar(
            "INSERT INTO product_options (product_id, name, stock, created_at, updated_at)
             VALUES ($1, $2, $3, COALESCE($4, now()), COALESCE($4, now())) RETURNING id",
        )
        .bind(id)
        .bind(&option.name)
        .bind(option.stock)
        .bind(created_at)
        .fetch_one(&mut *tx)
        .await?;
        let (currencies, amounts): (Vec<&str>, Vec<i64>) =
            option.prices.iter().map(|(c, amount)| (c.code(), *amount)).unzip();
        sqlx::query(
            "INSERT INTO option_prices (option_id, currency, amount)
             SELECT $1, c, a FROM unnest($2::text[], $3::bigint[]) AS t (c, a)",
        )
        .bind(option_id)
        .bind(&currencies)
        .bind(&amounts)
        .execute(&mut *tx)
        .await?;
        option_ids.push(option_id);
    }
    Ok(InsertedProduct { id, option_ids })
}
