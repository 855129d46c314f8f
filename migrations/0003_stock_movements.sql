-- Stock movements (issue 10): under V2 every change of an option's stock or reserved is a row
-- here, written in the transaction that causes it (consumer persist, payment, cancel, expiry,
-- refund, admin adjust), and a fold (src/store/pg/movements.rs) applies pending rows to
-- product_options in one UPDATE per option per batch. At any moment:
--   stock    = product_options.stock    + sum(d_stock)    of rows not folded yet
--   reserved = product_options.reserved + sum(d_reserved) of rows not folded yet
-- (the view option_stock). Folded rows stay as history.
--
-- No foreign key on option_id: an FK check takes KEY SHARE on the referenced option row, and
-- hundreds of payments sharing that lock on one hot row is the MultiXact queue this table
-- exists to avoid. Options are never deleted while they have orders (order_items references them).
CREATE TABLE stock_movements (
    id          BIGSERIAL   PRIMARY KEY,
    option_id   BIGINT      NOT NULL,
    d_stock     BIGINT      NOT NULL,
    d_reserved  BIGINT      NOT NULL,
    kind        TEXT        NOT NULL CHECK (kind IN ('reserve', 'release', 'expire', 'sale', 'refund', 'adjust')),
    order_id    UUID,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    folded_at   TIMESTAMPTZ,
    CHECK ((kind = 'adjust') = (order_id IS NULL))
);
-- Exactly once per order, option and kind, whatever retries or races: a second reserve of the
-- same order (consumer and payment persisting it at once) is a constraint error, not a double count.
CREATE UNIQUE INDEX stock_movements_order ON stock_movements (order_id, option_id, kind) WHERE order_id IS NOT NULL;
-- The fold's queue and the derived figures read only pending rows.
CREATE INDEX stock_movements_pending ON stock_movements (option_id) WHERE folded_at IS NULL;

-- An option's exact stock and reserved: the row plus what the fold has not applied yet. Read in
-- one statement, it is consistent with the fold (which moves a batch from here to the row in
-- one transaction).
CREATE VIEW option_stock AS
SELECT po.id,
       po.stock::bigint + coalesce(p.ds, 0) AS stock,
       po.reserved::bigint + coalesce(p.dr, 0) AS reserved
FROM product_options po
CROSS JOIN LATERAL (
    SELECT sum(m.d_stock)::bigint AS ds, sum(m.d_reserved)::bigint AS dr
    FROM stock_movements m WHERE m.option_id = po.id AND m.folded_at IS NULL
) p;

-- The V2 order an Idempotency-Key's claim is admitting (issue 10, deliverable 4): stored and
-- committed before the admission, so a retry after a crash between the admission and its stored
-- answer finds the admission and replays it instead of admitting a second order.
ALTER TABLE idempotency_keys ADD COLUMN order_id UUID;
