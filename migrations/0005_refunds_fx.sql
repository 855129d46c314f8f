-- Fulfilment, partial refunds and FX prices (issue 15).

-- Refunds -------------------------------------------------------------------------------------

-- What was given back of final_amount so far; REFUNDED once everything is.
ALTER TABLE orders
    ADD COLUMN refunded_amount BIGINT NOT NULL DEFAULT 0,
    ADD CONSTRAINT orders_refunded_within_paid CHECK (refunded_amount BETWEEN 0 AND final_amount);

-- Per line: units refunded, and of those the units that went back on sale (only units refunded
-- before fulfilment do). The ledger check derives a V2 order's expected movements from them.
ALTER TABLE order_items
    ADD COLUMN refunded_quantity  INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN restocked_quantity INTEGER NOT NULL DEFAULT 0,
    -- Where unit_price came from: the option's list price in the order's currency, or an FX
    -- conversion of its price in the other one (captured, like the price itself).
    ADD COLUMN price_source TEXT NOT NULL DEFAULT 'list' CHECK (price_source IN ('list', 'fx')),
    ADD CONSTRAINT order_items_refunded_within_ordered
        CHECK (restocked_quantity >= 0 AND restocked_quantity <= refunded_quantity AND refunded_quantity <= quantity);

-- Orders refunded whole before this migration (customer cancel of a PAID order).
UPDATE orders SET refunded_amount = final_amount WHERE status = 'REFUNDED';
UPDATE order_items oi SET refunded_quantity = oi.quantity, restocked_quantity = oi.quantity
FROM orders o WHERE o.id = oi.order_id AND o.status = 'REFUNDED';

-- One row per refund (admin partial/full refunds and the customer's cancel of a PAID order).
CREATE TABLE order_refunds (
    id             UUID        PRIMARY KEY,
    order_id       UUID        NOT NULL REFERENCES orders (id),
    amount         BIGINT      NOT NULL CHECK (amount >= 0),
    currency       TEXT        NOT NULL CHECK (currency IN ('KRW', 'USD')),
    reason         TEXT        NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    -- [{product_option_id, quantity, restocked}] of the units this refund covers.
    items          JSONB       NOT NULL,
    actor_user_id  BIGINT      NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX order_refunds_order ON order_refunds (order_id, created_at);

-- A refund's stock return is exactly once per refund and option (an order may now be refunded
-- in several parts, each returning units of the same option).
ALTER TABLE stock_movements ADD COLUMN refund_id UUID;
DROP INDEX stock_movements_order;
CREATE UNIQUE INDEX stock_movements_order ON stock_movements (order_id, option_id, kind)
    WHERE order_id IS NOT NULL AND refund_id IS NULL;
CREATE UNIQUE INDEX stock_movements_refund ON stock_movements (refund_id, option_id) WHERE refund_id IS NOT NULL;

ALTER TABLE outbox_events DROP CONSTRAINT outbox_events_type_check;
ALTER TABLE outbox_events ADD CONSTRAINT outbox_events_type_check CHECK (type IN (
    'order.created', 'payment.completed', 'coupon.issued', 'coupon.used', 'stock.changed',
    'order.cancelled', 'order.expired', 'order.refunded'));

-- FX prices -----------------------------------------------------------------------------------

-- `USD/KRW` = 1385.20 means 1 USD costs 1385.20 KRW. Exact decimal, never a float.
CREATE TABLE fx_rates (
    pair        TEXT        PRIMARY KEY CHECK (pair IN ('USD/KRW')),
    rate        NUMERIC     NOT NULL CHECK (rate > 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The price of every option in every currency it is sold in: its list price, else its price in
-- the other currency converted at the rate in force, rounded half-up to the minor unit. The one
-- home of the conversion: catalog, cart and orders all read prices here. `div` truncates an
-- exact numeric quotient, so floor((2p + q) / 2q) is round-half-up of p/q with no rounding of
-- its own (domain::fx::convert states the same rule in Rust; tests/api/fx.rs holds them equal).
--   KRW -> USD cents: p/q = krw * 100 / rate       -> div(200 * krw + rate, 2 * rate)
--   USD cents -> KRW: p/q = cents * rate / 100     -> div(2 * cents * rate + 100, 200)
CREATE VIEW option_market_prices AS
SELECT option_id, currency, amount, 'list'::text AS source FROM option_prices
UNION ALL
SELECT k.option_id, 'USD'::text, div(200 * k.amount + r.rate, 2 * r.rate)::bigint, 'fx'::text
FROM option_prices k JOIN fx_rates r ON r.pair = 'USD/KRW'
WHERE k.currency = 'KRW'
  AND NOT EXISTS (SELECT 1 FROM option_prices u WHERE u.option_id = k.option_id AND u.currency = 'USD')
UNION ALL
SELECT u.option_id, 'KRW'::text, div(2 * u.amount * r.rate + 100, 200)::bigint, 'fx'::text
FROM option_prices u JOIN fx_rates r ON r.pair = 'USD/KRW'
WHERE u.currency = 'USD'
  AND NOT EXISTS (SELECT 1 FROM option_prices k WHERE k.option_id = u.option_id AND k.currency = 'KRW');
