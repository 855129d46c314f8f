//! Postgres side of V2 orders: persisting admissions (the stream consumer's [`OrderSink`], and
//! the read-your-writes path that persists one order from its Redis hash).
//!
//! Persisting is idempotent: orders are inserted with `ON CONFLICT (id) DO NOTHING`, and only
//! the orders actually inserted get their items, their `reserve` movements (the ledger,
//! [`super::movements`]) and their `order.created` event. A redelivered entry, or an order the payment path persisted first,
//! changes nothing.

use std::collections::HashSet;

use serde_json::json;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::{
    movements::{self, Kind},
    outbox::{self, EventType, NewEvent},
};
use crate::store::redis::streams::{
    Decoded, DecodedSink, PersistError, is_rejection,
    orders::{Admission, AdmittedLine, OrderStream},
};

/// Persists admissions as PENDING orders holding their reservation in Postgres
/// (`reservation = 'redis'`), inside the caller's transaction; returns the ids actually inserted.
pub async fn persist(tx: &mut PgConnection, admissions: &[Admission]) -> sqlx::Result<Vec<Uuid>> {
    // Sorted and distinct: two batches that overlap insert in the same order, so they queue on
    // the first shared order id instead of deadlocking.
    let mut batch: Vec<&Admission> = admissions.iter().collect();
    batch.sort_by_key(|a| a.order_id);
    batch.dedup_by_key(|a| a.order_id);
    if batch.is_empty() {
        return Ok(Vec::new());
    }
    let inserted: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO orders (id, user_id, market, currency, status, total_amount, discount_amount, final_amount, \
                             reservation, expires_at, created_at, updated_at) \
         SELECT id, user_id, market, currency, 'PENDING', total, 0, total, 'redis', expires_at, created_at, created_at \
         FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::timestamptz[], $7::timestamptz[]) \
              AS t (id, user_id, market, currency, total, expires_at, created_at) \
         ORDER BY id \
         ON CONFLICT (id) DO NOTHING RETURNING id",
    )
    .bind(batch.iter().map(|a| a.order_id).collect::<Vec<_>>())
    .bind(batch.iter().map(|a| a.user_id).collect::<Vec<_>>())
    .bind(batch.iter().map(|a| a.market.code()).collect::<Vec<_>>())
    .bind(batch.iter().map(|a| a.currency.code()).collect::<Vec<_>>())
    .bind(batch.iter().map(|a| a.total).collect::<Vec<_>>())
    .bind(batch.iter().map(|a| a.expires_at).collect::<Vec<_>>())
    .bind(batch.iter().map(|a| a.created_at).collect::<Vec<_>>())
    .fetch_all(&mut *tx)
    .await?;
    if inserted.is_empty() {
        return Ok(inserted);
    }
    let fresh: HashSet<Uuid> = inserted.iter().copied().collect();
    let new: Vec<&Admission> = batch.into_iter().filter(|a| fresh.contains(&a.order_id)).collect();

    let lines: Vec<(Uuid, &AdmittedLine)> =
        new.iter().flat_map(|a| a.lines.iter().map(move |l| (a.order_id, l))).collect();
    sqlx::query(
        "INSERT INTO order_items (order_id, product_id, option_id, product_name, option_name, unit_price, quantity, subtotal, \
                                  price_source) \
         SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::bigint[], $7::int[], $8::bigint[], \
                              $9::text[])",
    )
    .bind(lines.iter().map(|(id, _)| *id).collect::<Vec<_>>())
    .bind(lines.iter().map(|(_, l)| l.product_id).collect::<Vec<_>>())
    .bind(lines.iter().map(|(_, l)| l.option_id).collect::<Vec<_>>())
    .bind(lines.iter().map(|(_, l)| l.product_name.as_str()).collect::<Vec<_>>())
    .bind(lines.iter().map(|(_, l)| l.option_name.as_str()).collect::<Vec<_>>())
    .bind(lines.iter().map(|(_, l)| l.unit_price).collect::<Vec<_>>())
    .bind(lines.iter().map(|(_, l)| l.quantity as i32).collect::<Vec<_>>())
    .bind(lines.iter().map(|(_, l)| l.subtotal()).collect::<Vec<_>>())
    .bind(lines.iter().map(|(_, l)| l.price_source.as_str()).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;

    // The reservation is a ledger row per line, keyed by order: no option row is locked, so a
    // batch never queues behind payments of the same product (nor they behind it).
    let reserved: Vec<(Uuid, i64, i64)> = lines.iter().map(|(id, l)| (*id, l.option_id, l.quantity)).collect();
    movements::append_lines(&mut *tx, Kind::Reserve, &reserved).await?;

    let events = new
        .iter()
        .map(|a| {
            let items: Vec<_> =
                a.lines.iter().map(|l| json!({ "product_option_id": l.option_id, "quantity": l.quantity })).collect();
            let total = json!({ "amount": a.total, "currency": a.currency.code() });
            NewEvent {
                kind: EventType::OrderCreated,
                occurred_at: a.created_at,
                payload: json!({ "order_id": a.order_id, "user_id": a.user_id, "items": items, "total_amount": total }),
            }
        })
        .collect();
    outbox::enqueue_all(&mut *tx, events).await?;
    Ok(inserted)
}

/// The sink of V2 orders: persists the admission streams `P:{stock:<group>}:stream` ([`OrderStream`]).
#[derive(Debug, Clone)]
pub struct OrderSink {
    source: OrderStream,
}

impl OrderSink {
    /// The sink of the streams named `streams` ([`crate::store::redis::stock::StockKeys::streams`]).
    pub fn new(streams: Vec<String>) -> OrderSink {
        OrderSink { source: OrderStream::new(streams) }
    }
}

impl DecodedSink for OrderSink {
    type Source = OrderStream;

    fn source(&self) -> &OrderStream {
        &self.source
    }

    /// Persists a batch of admissions. Entries a constraint refuses (which would only happen if
    /// Redis admitted more than Postgres can hold: see reconciliation) are reported as poison,
    /// found with one savepoint per entry; the consumer then persists the rest and dead-letters
    /// the poison after repeated deliveries.
    async fn persist_decoded<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        items: &'a [Decoded<Admission>],
    ) -> Result<(), PersistError> {
        let admissions: Vec<Admission> = items.iter().map(|d| d.item.clone()).collect();
        let mut sp = tx.begin().await?;
        match persist(&mut sp, &admissions).await {
            Ok(_) => sp.commit().await?,
            Err(e) if is_rejection(&e) => {
                sp.rollback().await?;
                let (mut poison, mut reasons) = (Vec::new(), Vec::new());
                // One savepoint per entry finds the culprits and keeps the others.
                for d in items {
                    let mut one = tx.begin().await?;
                    match persist(&mut one, std::slice::from_ref(&d.item)).await {
                        Ok(_) => one.commit().await?,
                        Err(e) if is_rejection(&e) => {
                            one.rollback().await?;
                            poison.push(d.id.clone());
                            reasons.push(e.to_string());
                        }
                        Err(e) => return Err(PersistError::Unavailable(e)),
                    }
                }
                if !poison.is_empty() {
                    return Err(PersistError::Poison { ids: poison, reason: reasons.join("; ") });
                }
            }
            Err(e) => return Err(PersistError::Unavailable(e)),
        }
        Ok(())
    }
}
