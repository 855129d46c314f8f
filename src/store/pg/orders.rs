//! Postgres side of orders: creation with an all-or-nothing stock reservation, and reads.
//! Payment and cancellation are in `payment.rs`; stock movements in `reservations.rs`.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::{FromRow, PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use super::{
    cart,
    movements::{self, Kind},
    outbox::{self, EventType},
    reservations,
};
pub use crate::domain::order::Rejection;
use crate::domain::{Currency, Market, Money, fx::PriceSource, order::OrderStatus};

/// A store call failed: either a rule or the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A business rule refused; nothing changed.
    #[error("rejected: {0:?}")]
    Rejected(Rejection),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl From<Rejection> for StoreError {
    fn from(r: Rejection) -> Self {
        StoreError::Rejected(r)
    }
}

/// One line of an order.
#[derive(Debug, Clone, FromRow)]
pub struct OrderItem {
    /// The order it belongs to.
    pub order_id: Uuid,
    /// Product id.
    pub product_id: i64,
    /// Option id.
    pub option_id: i64,
    /// Product name captured at order time (in the user's market language).
    pub product_name: String,
    /// Option name captured at order time.
    pub option_name: String,
    /// Price per unit captured at order time.
    pub unit_price: i64,
    /// Units.
    pub quantity: i32,
    /// unit_price x quantity.
    pub subtotal: i64,
    /// Where unit_price came from (list price or FX conversion), captured with it.
    #[sqlx(try_from = "String")]
    pub price_source: PriceSource,
    /// Units refunded so far.
    pub refunded_quantity: i32,
}

/// Where an order's stock reservation lives (`orders.reservation`), so settling it goes to the
/// right place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// V1 (`'db'`): only in Postgres.
    Db,
    /// V2 (`'redis'`): admitted by the Redis counters, mirrored in Postgres once persisted.
    Redis,
}

impl Reservation {
    /// Parses the column (`'db'` / `'redis'`).
    pub fn parse(s: &str) -> Reservation {
        if s == "redis" { Reservation::Redis } else { Reservation::Db }
    }
}

/// An order's reservation as the Redis steps after a commit need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldStock {
    /// The order.
    pub order_id: Uuid,
    /// Where its reservation lives.
    pub reservation: Reservation,
    /// (option id, quantity) of each line.
    pub lines: Vec<(i64, i64)>,
}

/// An order with its items.
#[derive(Debug, Clone)]
pub struct Order {
    /// UUIDv7.
    pub id: Uuid,
    /// Owner.
    pub user_id: i64,
    /// State.
    pub status: OrderStatus,
    /// The user's currency at order time.
    pub currency: Currency,
    /// Sum of the items.
    pub total_amount: i64,
    /// Coupon discount (0 until paid with a coupon).
    pub discount_amount: i64,
    /// What was (or would be) charged.
    pub final_amount: i64,
    /// What was given back of final_amount so far.
    pub refunded_amount: i64,
    /// The coupon used, if any.
    pub user_coupon_id: Option<Uuid>,
    /// Where its stock reservation lives.
    pub reservation: Reservation,
    /// When an unpaid order expires.
    pub expires_at: DateTime<Utc>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Payment time.
    pub paid_at: Option<DateTime<Utc>>,
    /// Cancellation/refund time.
    pub cancelled_at: Option<DateTime<Utc>>,
    /// The lines.
    pub items: Vec<OrderItem>,
}

impl Order {
    /// An amount in the order's currency.
    pub fn money(&self, amount: i64) -> Money {
        Money::new(amount, self.currency)
    }

    /// Its reservation, for the Redis step after a commit.
    pub fn held(&self) -> HeldStock {
        HeldStock {
            order_id: self.id,
            reservation: self.reservation,
            lines: self.items.iter().map(|i| (i.option_id, i64::from(i.quantity))).collect(),
        }
    }
}

/// An `orders` row.
#[derive(Debug, Clone, FromRow)]
pub(crate) struct OrderRow {
    pub id: Uuid,
    pub user_id: i64,
    pub status: String,
    pub market: String,
    pub currency: String,
    pub total_amount: i64,
    pub discount_amount: i64,
    pub final_amount: i64,
    pub refunded_amount: i64,
    pub user_coupon_id: Option<Uuid>,
    pub reservation: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub paid_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

pub(crate) const ORDER_COLUMNS: &str = "id, user_id, status, market, currency, total_amount, discount_amount, final_amount, \
     refunded_amount, user_coupon_id, reservation, expires_at, created_at, paid_at, cancelled_at";

impl OrderRow {
    /// The status (the column's CHECK allows only the six spellings).
    pub fn status(&self) -> OrderStatus {
        OrderStatus::parse(&self.status).unwrap_or(OrderStatus::Expired)
    }

    /// The market the order was placed in.
    pub fn market(&self) -> Market {
        Market::parse(&self.market).unwrap_or(Market::Kr)
    }

    pub(crate) fn with_items(self, items: Vec<OrderItem>) -> Order {
        Order {
            id: self.id,
            user_id: self.user_id,
            status: self.status(),
            currency: Currency::parse(&self.currency).unwrap_or(Currency::Krw),
            total_amount: self.total_amount,
            discount_amount: self.discount_amount,
            final_amount: self.final_amount,
            refunded_amount: self.refunded_amount,
            user_coupon_id: self.user_coupon_id,
            reservation: Reservation::parse(&self.reservation),
            expires_at: self.expires_at,
            created_at: self.created_at,
            paid_at: self.paid_at,
            cancelled_at: self.cancelled_at,
            items,
        }
    }
}

/// Where the lines of a new order come from.
#[derive(Debug, Clone)]
pub enum OrderSource {
    /// Explicit (option id, quantity) pairs; the same option may repeat and is merged.
    Items(Vec<(i64, i64)>),
    /// The user's cart, emptied of what was ordered when the order is created.
    Cart,
}

/// Creates a PENDING order, reserving every line's stock, inside the caller's transaction (which
/// the caller commits, together with anything it must record atomically, e.g. an idempotent answer).
pub async fn create(
    tx: &mut PgConnection,
    user_id: i64,
    source: OrderSource,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<Order, StoreError> {
    let user: Option<(String, String)> = sqlx::query_as("SELECT market, currency FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
    let (market, currency) = user.ok_or(Rejection::UserNotFound)?;
    let lines: Vec<(i64, i64)> = match &source {
        OrderSource::Items(items) => items.clone(),
        OrderSource::Cart => cart::lock_quantities(&mut *tx, user_id).await?,
    };
    let mut wanted: BTreeMap<i64, i64> = BTreeMap::new();
    for (option_id, quantity) in lines {
        *wanted.entry(option_id).or_default() += quantity;
    }
    if wanted.is_empty() {
        return Err(Rejection::EmptyOrder.into());
    }
    let ids: Vec<i64> = wanted.keys().copied().collect();
    let options = reservations::lock_for_order(&mut *tx, &ids, &currency).await?;
    for (&option_id, &requested) in &wanted {
        let opt =
            options.iter().find(|o| o.id == option_id && o.on_sale).ok_or(Rejection::OptionNotFound { option_id })?;
        if opt.price.is_none() {
            return Err(Rejection::MarketMismatch { option_id }.into());
        }
        if opt.available() < requested {
            return Err(Rejection::InsufficientStock { option_id, available: opt.available().max(0), requested }.into());
        }
    }
    reservations::apply(&mut *tx, &wanted.iter().map(|(id, q)| (*id, 0, *q)).collect::<Vec<_>>()).await?;

    let order_id = Uuid::now_v7();
    let english = Market::parse(&market) == Some(Market::Us);
    let items: Vec<OrderItem> = options
        .iter()
        .filter_map(|o| {
            let quantity = *wanted.get(&o.id)?;
            let unit_price = o.price?;
            Some(OrderItem {
                order_id,
                product_id: o.product_id,
                option_id: o.id,
                product_name: if english { o.name_en.clone() } else { o.name_ko.clone() },
                option_name: o.option_name.clone(),
                unit_price,
                quantity: quantity as i32,
                subtotal: unit_price.saturating_mul(quantity),
                price_source: PriceSource::from_column(o.price_source.clone()),
                refunded_quantity: 0,
            })
        })
        .collect();
    let total: i64 = items.iter().map(|i| i.subtotal).sum();
    let expires_at = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(10));
    sqlx::query(
        "INSERT INTO orders (id, user_id, market, currency, status, total_amount, discount_amount, final_amount, \
                             reservation, expires_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'PENDING', $5, 0, $5, 'db', $6, $7, $7)",
    )
    .bind(order_id)
    .bind(user_id)
    .bind(&market)
    .bind(&currency)
    .bind(total)
    .bind(expires_at)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    insert_items(&mut *tx, &items).await?;
    // The reservation applied above, announced now that the order's items exist.
    movements::announce_for_orders(&mut *tx, Kind::Reserve, &[order_id]).await?;
    let money = |amount: i64| json!({ "amount": amount, "currency": currency });
    let event_items: Vec<_> =
        items.iter().map(|i| json!({ "product_option_id": i.option_id, "quantity": i.quantity })).collect();
    outbox::enqueue(
        &mut *tx,
        EventType::OrderCreated,
        now,
        json!({ "order_id": order_id, "user_id": user_id, "items": event_items, "total_amount": money(total) }),
    )
    .await?;
    if matches!(source, OrderSource::Cart) {
        cart::remove_options(&mut *tx, user_id, &ids).await?;
    }
    Ok(Order {
        id: order_id,
        user_id,
        status: OrderStatus::Pending,
        currency: Currency::parse(&currency).unwrap_or(Currency::Krw),
        total_amount: total,
        discount_amount: 0,
        final_amount: total,
        refunded_amount: 0,
        user_coupon_id: None,
        reservation: Reservation::Db,
        expires_at,
        created_at: now,
        paid_at: None,
        cancelled_at: None,
        items,
    })
}

async fn insert_items(tx: &mut PgConnection, items: &[OrderItem]) -> sqlx::Result<()> {
    let col = |f: fn(&OrderItem) -> i64| items.iter().map(f).collect::<Vec<i64>>();
    sqlx::query(
        "INSERT INTO order_items (order_id, product_id, option_id, product_name, option_name, unit_price, quantity, subtotal, \
                                  price_source) \
         SELECT $1, * FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::int[], $8::bigint[], \
                                  $9::text[])",
    )
    .bind(items.first().map(|i| i.order_id))
    .bind(col(|i| i.product_id))
    .bind(col(|i| i.option_id))
    .bind(items.iter().map(|i| i.product_name.clone()).collect::<Vec<_>>())
    .bind(items.iter().map(|i| i.option_name.clone()).collect::<Vec<_>>())
    .bind(col(|i| i.unit_price))
    .bind(items.iter().map(|i| i.quantity).collect::<Vec<i32>>())
    .bind(col(|i| i.subtotal))
    .bind(items.iter().map(|i| i.price_source.as_str()).collect::<Vec<_>>())
    .execute(tx)
    .await?;
    Ok(())
}

/// The items of some orders, in option order.
pub async fn items_of(db: impl PgExecutor<'_>, order_ids: &[Uuid]) -> sqlx::Result<Vec<OrderItem>> {
    sqlx::query_as(
        "SELECT order_id, product_id, option_id, product_name, option_name, unit_price, quantity, subtotal, \
                price_source, refunded_quantity \
         FROM order_items WHERE order_id = ANY($1) ORDER BY order_id, option_id",
    )
    .bind(order_ids)
    .fetch_all(db)
    .await
}

/// The status of each of `ids` that Postgres has (`(id, status)`; unknown ids are absent).
pub async fn statuses(db: impl PgExecutor<'_>, ids: &[Uuid]) -> sqlx::Result<Vec<(Uuid, String)>> {
    sqlx::query_as("SELECT id, status FROM orders WHERE id = ANY($1)").bind(ids).fetch_all(db).await
}

/// One order with its items.
pub async fn find(pool: &PgPool, order_id: Uuid) -> sqlx::Result<Option<Order>> {
    let row: Option<OrderRow> = sqlx::query_as(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"))
        .bind(order_id)
        .fetch_optional(pool)
        .await?;
    match row {
        None => Ok(None),
        Some(row) => {
            let items = items_of(pool, &[order_id]).await?;
            Ok(Some(row.with_items(items)))
        }
    }
}

/// A page of a user's orders, newest first, optionally of one status; and how many there are.
pub async fn list_for_user(
    pool: &PgPool,
    user_id: i64,
    status: Option<OrderStatus>,
    page: i64,
    size: i64,
) -> sqlx::Result<(Vec<Order>, i64)> {
    let status = status.map(OrderStatus::as_str);
    let total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM orders WHERE user_id = $1 AND ($2::text IS NULL OR status = $2)")
            .bind(user_id)
            .bind(status)
            .fetch_one(pool)
            .await?;
    let rows: Vec<OrderRow> = sqlx::query_as(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 AND ($2::text IS NULL OR status = $2) \
         ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
    ))
    .bind(user_id)
    .bind(status)
    .bind(size)
    .bind((page - 1).saturating_mul(size))
    .fetch_all(pool)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let mut items = items_of(pool, &ids).await?;
    let orders = rows
        .into_iter()
        .map(|r| {
            let mine = items.extract_if(.., |i| i.order_id == r.id).collect();
            r.with_items(mine)
        })
        .collect();
    Ok((orders, total))
}
