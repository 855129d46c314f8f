//! Postgres queries of product edits: a product's editable state read under its row lock, and
//! the edited state written back.

use std::collections::BTreeMap;

use sqlx::PgConnection;

use crate::domain::catalog_edit::{OptionState, ProductState};

type ProductColumns = (i64, String, String, String, String, String, Option<String>, bool);

/// A product's editable state with its row locked until the transaction ends (edits of one
/// product are serialised); `None` when there is no such product.
pub async fn lock(tx: &mut PgConnection, product_id: i64) -> sqlx::Result<Option<ProductState>> {
    let row: Option<ProductColumns> = sqlx::query_as(
        "SELECT id, name_ko, name_en, description_ko, description_en, category, image_url, on_sale
         FROM products WHERE id = $1 FOR NO KEY UPDATE",
    )
    .bind(product_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((id, name_ko, name_en, description_ko, description_en, category, image_url, on_sale)) = row else {
        return Ok(None);
    };
    let rows: Vec<(i64, String, Option<String>, Option<i64>)> = sqlx::query_as(
        "SELECT o.id, o.name, pr.currency, pr.amount FROM product_options o
         LEFT JOIN option_prices pr ON pr.option_id = o.id
         WHERE o.product_id = $1 ORDER BY o.id, pr.currency",
    )
    .bind(product_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut options: Vec<OptionState> = Vec::new();
    for (option_id, name, currency, amount) in rows {
        if options.last().is_none_or(|o| o.id != option_id) {
            options.push(OptionState { id: option_id, name, prices: BTreeMap::new() });
        }
        if let (Some(c), Some(a), Some(o)) = (currency, amount, options.last_mut()) {
            o.prices.insert(c, a);
        }
    }
    Ok(Some(ProductState {
        id,
        name_ko,
        name_en,
        description_ko,
        description_en,
        category,
        image_url,
        on_sale,
        options,
    }))
}

/// Writes `next` over `before` (the product's row must be locked by [`lock`]): the product's
/// columns, then only the options and prices that changed.
pub async fn write(tx: &mut PgConnection, before: &ProductState, next: &ProductState) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE products SET name_ko = $2, name_en = $3, description_ko = $4, description_en = $5, category = $6,
                image_url = $7, on_sale = $8, updated_at = now()
          WHERE id = $1",
    )
    .bind(next.id)
    .bind(&next.name_ko)
    .bind(&next.name_en)
    .bind(&next.description_ko)
    .bind(&next.description_en)
    .bind(&next.category)
    .bind(&next.image_url)
    .bind(next.on_sale)
    .execute(&mut *tx)
    .await?;
    for (old, new) in before.options.iter().zip(&next.options) {
        if old.name != new.name {
            // Only the name: the stock columns stay under the ledger's and the adjusters' locks.
            sqlx::query("UPDATE product_options SET name = $2, updated_at = now() WHERE id = $1")
                .bind(new.id)
                .bind(&new.name)
                .execute(&mut *tx)
                .await?;
        }
        for (currency, amount) in &new.prices {
            if old.prices.get(currency) != Some(amount) {
                sqlx::query(
                    "INSERT INTO option_prices (option_id, currency, amount) VALUES ($1, $2, $3)
                     ON CONFLICT (option_id, currency) DO UPDATE SET amount = EXCLUDED.amount",
                )
                .bind(new.id)
                .bind(currency)
                .bind(amount)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    Ok(())
}
