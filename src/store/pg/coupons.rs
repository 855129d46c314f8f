//! Postgres queries of coupon campaigns: definitions, stock counters and what issuing reads.
//! Rows are turned into the domain's [`Coupon`] here; a row the schema's constraints should have
//! refused becomes a decode error (500), never a silently wrong coupon.

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgExecutor};

use crate::domain::{
    Market,
    catalog::Localized,
    coupon::{Coupon, CouponTerms, DiscountType, Inventory, Validity},
};

/// The columns of a coupon row, as one literal so queries stay `&'static str` (statement cache).
macro_rules! coupon_columns {
    () => {
        "c.id, c.name, COALESCE(c.name_en, c.name) AS name_en, c.discount_type, c.discount_value, c.max_discount, c.min_order_amount, c.market, \
         c.total_quantity, c.issued_quantity, c.version, c.issue_starts_at, c.issue_ends_at, c.expires_at, \
         c.valid_days, c.product_ids, c.categories"
    };
}
pub(crate) use coupon_columns;

/// A coupon as stored, with its optimistic-lock version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCoupon {
    /// The domain aggregate.
    pub coupon: Coupon,
    /// Bumped by every change of the row (issue or admin edit).
    pub version: i64,
}

#[derive(FromRow)]
pub(crate) struct CouponRow {
    id: i64,
    name: String,
    name_en: String,
    discount_type: String,
    discount_value: i64,
    max_discount: Option<i64>,
    min_order_amount: i64,
    market: String,
    total_quantity: i32,
    issued_quantity: i32,
    version: i64,
    issue_starts_at: DateTime<Utc>,
    issue_ends_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    valid_days: Option<i32>,
    product_ids: Option<Vec<i64>>,
    categories: Option<Vec<String>>,
}

fn corrupt(what: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("coupons row: {what}").into())
}

impl TryFrom<CouponRow> for StoredCoupon {
    type Error = sqlx::Error;

    fn try_from(r: CouponRow) -> Result<StoredCoupon, sqlx::Error> {
        let validity = match (r.expires_at, r.valid_days) {
            (Some(at), None) => Validity::Until(at),
            (None, Some(days)) => Validity::Days(u32::try_from(days).map_err(|_| corrupt("valid_days"))?),
            _ => return Err(corrupt("exactly one of expires_at, valid_days")),
        };
        let total = u32::try_from(r.total_quantity).map_err(|_| corrupt("total_quantity"))?;
        let used = u32::try_from(r.issued_quantity).map_err(|_| corrupt("issued_quantity"))?;
        let terms = CouponTerms {
            name: Localized { ko: r.name, en: r.name_en },
            discount_type: DiscountType::parse(&r.discount_type).ok_or_else(|| corrupt("discount_type"))?,
            discount_value: r.discount_value,
            max_discount: r.max_discount,
            min_order_amount: r.min_order_amount,
            market: Market::parse(&r.market).ok_or_else(|| corrupt("market"))?,
            issue_starts_at: r.issue_starts_at,
            issue_ends_at: r.issue_ends_at,
            validity,
            product_ids: r.product_ids,
            categories: r.categories,
        };
        let inventory = Inventory::new(total, used).map_err(|_| corrupt("issued above total"))?;
        Ok(StoredCoupon { coupon: Coupon { id: r.id, terms, inventory }, version: r.version })
    }
}

fn split_validity(v: Validity) -> (Option<DateTime<Utc>>, Option<i32>) {
    match v {
        Validity::Until(at) => (Some(at), None),
        // Validity::MAX_DAYS keeps this far below i32::MAX.
        Validity::Days(d) => (None, Some(d as i32)),
    }
}

/// Finds a coupon.
pub async fn find(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<StoredCoupon>> {
    let row: Option<CouponRow> =
        sqlx::query_as(concat!("SELECT ", coupon_columns!(), " FROM coupons c WHERE c.id = $1"))
            .bind(id)
            .fetch_optional(db)
            .await?;
    row.map(StoredCoupon::try_from).transpose()
}

/// Finds a coupon and locks its row until the transaction ends (admin edits).
pub async fn find_for_update(tx: &mut PgConnection, id: i64) -> sqlx::Result<Option<StoredCoupon>> {
    let row: Option<CouponRow> =
        sqlx::query_as(concat!("SELECT ", coupon_columns!(), " FROM coupons c WHERE c.id = $1 FOR UPDATE"))
            .bind(id)
            .fetch_optional(tx)
            .await?;
    row.map(StoredCoupon::try_from).transpose()
}

/// Ids of the coupons whose issue window has not closed at `now` (open or still to open).
pub async fn not_closed(db: impl PgExecutor<'_>, now: DateTime<Utc>) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar("SELECT id FROM coupons WHERE issue_ends_at > $1 ORDER BY id").bind(now).fetch_all(db).await
}

/// One page of the coupons whose issue window is open at `now` (optionally of one market),
/// soonest-closing first, and how many there are in all.
pub async fn list_issuing(
    db: &sqlx::PgPool,
    now: DateTime<Utc>,
    market: Option<Market>,
    limit: i64,
    offset: i64,
) -> sqlx::Result<(Vec<StoredCoupon>, i64)> {
    let market = market.map(|m| m.code());
    let rows: Vec<CouponRow> = sqlx::query_as(concat!(
        "SELECT ",
        coupon_columns!(),
        " FROM coupons c WHERE c.issue_starts_at <= $1 AND c.issue_ends_at > $1 AND ($2::text IS NULL OR c.market = $2)
          ORDER BY c.issue_ends_at, c.id LIMIT $3 OFFSET $4"
    ))
    .bind(now)
    .bind(market)
    .bind(limit)
    .bind(offset)
    .fetch_all(db)
    .await?;
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM coupons c
          WHERE c.issue_starts_at <= $1 AND c.issue_ends_at > $1 AND ($2::text IS NULL OR c.market = $2)",
    )
    .bind(now)
    .bind(market)
    .fetch_one(db)
    .await?;
    Ok((rows.into_iter().map(StoredCoupon::try_from).collect::<sqlx::Result<_>>()?, total))
}

/// Stores a new campaign and returns its id.
pub async fn insert(db: impl PgExecutor<'_>, terms: &CouponTerms, inventory: Inventory) -> sqlx::Result<i64> {
    let (expires_at, valid_days) = split_validity(terms.validity);
    sqlx::query_scalar(
        "INSERT INTO coupons (name, discount_type, discount_value, max_discount, min_order_amount, market, currency,
                              total_quantity, issued_quantity, issue_starts_at, issue_ends_at, expires_at, valid_days,
                              product_ids, categories, name_en)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id",
    )
    .bind(&terms.name.ko)
    .bind(terms.discount_type.as_str())
    .bind(terms.discount_value)
    .bind(terms.max_discount)
    .bind(terms.min_order_amount)
    .bind(terms.market.code())
    .bind(terms.currency().code())
    .bind(inventory.total() as i32)
    .bind(inventory.used() as i32)
    .bind(terms.issue_starts_at)
    .bind(terms.issue_ends_at)
    .bind(expires_at)
    .bind(valid_days)
    .bind(&terms.product_ids)
    .bind(&terms.categories)
    .bind(&terms.name.en)
    .fetch_one(db)
    .await
}

/// Writes an admin edit: terms and total (never `issued_quantity`, which only issuing moves), and
/// bumps the version so optimistic issuers that read the old row retry.
pub async fn update(tx: &mut PgConnection, coupon: &Coupon) -> sqlx::Result<()> {
    let (terms, (expires_at, valid_days)) = (&coupon.terms, split_validity(coupon.terms.validity));
    sqlx::query(
        "UPDATE coupons SET name = $2, discount_type = $3, discount_value = $4, max_discount = $5,
                min_order_amount = $6, market = $7, currency = $8, total_quantity = $9, issue_starts_at = $10,
                issue_ends_at = $11, expires_at = $12, valid_days = $13, product_ids = $14, categories = $15,
                name_en = $16, version = version + 1, updated_at = now()
          WHERE id = $1",
    )
    .bind(coupon.id)
    .bind(&terms.name.ko)
    .bind(terms.discount_type.as_str())
    .bind(terms.discount_value)
    .bind(terms.max_discount)
    .bind(terms.min_order_amount)
    .bind(terms.market.code())
    .bind(terms.currency().code())
    .bind(coupon.inventory.total() as i32)
    .bind(terms.issue_starts_at)
    .bind(terms.issue_ends_at)
    .bind(expires_at)
    .bind(valid_days)
    .bind(&terms.product_ids)
    .bind(&terms.categories)
    .bind(&terms.name.en)
    .execute(tx)
    .await?;
    Ok(())
}

/// Whether every id names an existing product.
pub async fn products_exist(db: impl PgExecutor<'_>, ids: &[i64]) -> sqlx::Result<bool> {
    let found: i64 = sqlx::query_scalar("SELECT count(DISTINCT id) FROM products WHERE id = ANY($1)")
        .bind(ids)
        .fetch_one(db)
        .await?;
    let mut wanted = ids.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    Ok(found == wanted.len() as i64)
}

/// The counters of a campaign for its managers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromRow)]
pub struct CouponStats {
    /// Planned quantity.
    pub total_quantity: i32,
    /// Acknowledged issues (the coupon's counter).
    pub issued: i32,
    /// Issued coupons stored in `user_coupons`.
    pub persisted: i64,
    /// Of those, spent on an order.
    pub used: i64,
    /// Of those, revoked.
    pub revoked: i64,
}

/// The counters of a coupon, if it exists.
pub async fn stats(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<CouponStats>> {
    sqlx::query_as(
        "SELECT c.total_quantity, c.issued_quantity AS issued,
                (SELECT count(*) FROM user_coupons uc WHERE uc.coupon_id = c.id) AS persisted,
                (SELECT count(*) FROM user_coupons uc WHERE uc.coupon_id = c.id AND uc.status = 'USED') AS used,
                (SELECT count(*) FROM user_coupons uc WHERE uc.coupon_id = c.id AND uc.status = 'REVOKED') AS revoked
           FROM coupons c WHERE c.id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await
}
