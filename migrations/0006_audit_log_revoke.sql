-- Issue 16: one audit log for every admin write, and revoked user coupons.

-- Every admin write leaves one row here, written in the transaction of the change it describes
-- (services::audit::record). `before` / `after` are the entity's state as JSON (NULL: it did not
-- exist before / does not exist after); `roles` are the token's roles at the time.
CREATE TABLE audit_log (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor        BIGINT      NOT NULL,
    roles        TEXT[]      NOT NULL,
    action       TEXT        NOT NULL CHECK (length(action) BETWEEN 1 AND 100),
    entity_type  TEXT        NOT NULL CHECK (length(entity_type) BETWEEN 1 AND 100),
    entity_id    TEXT        NOT NULL CHECK (length(entity_id) BETWEEN 1 AND 100),
    before       JSONB,
    after        JSONB,
    reason       TEXT        CHECK (reason IS NULL OR length(reason) BETWEEN 1 AND 500),
    at           TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX audit_log_entity ON audit_log (entity_type, entity_id, at DESC, id DESC);
CREATE INDEX audit_log_actor ON audit_log (actor, at DESC, id DESC);
CREATE INDEX audit_log_at ON audit_log (at DESC, id DESC);

-- The stock audit of before, folded in with its history: same actor, reason, time and figures.
-- Its roles were never recorded; `inventory_manager` is the role its route required.
INSERT INTO audit_log (actor, roles, action, entity_type, entity_id, before, after, reason, at)
SELECT actor_user_id, ARRAY['inventory_manager'], 'inventory.adjust', 'product_option', option_id::text,
       jsonb_build_object('stock', stock_before), jsonb_build_object('stock', stock_after, 'delta', delta),
       reason, created_at
FROM inventory_audit_log ORDER BY created_at, id;

DROP TABLE inventory_audit_log;

-- The old name stays readable (operators' queries, the stock audit route's shape) as a view of
-- the stock entries of the one log.
CREATE VIEW inventory_audit_log AS
SELECT id,
       entity_id::bigint AS option_id,
       actor AS actor_user_id,
       reason,
       (after ->> 'delta')::integer AS delta,
       (before ->> 'stock')::integer AS stock_before,
       (after ->> 'stock')::integer AS stock_after,
       at AS created_at
FROM audit_log
WHERE entity_type = 'product_option' AND action = 'inventory.adjust';

-- A revoked user coupon: no longer usable, listed as REVOKED, never returned to the campaign's
-- first-come quantity (issued_quantity keeps counting it).
ALTER TABLE user_coupons DROP CONSTRAINT user_coupons_status_check;
ALTER TABLE user_coupons ADD CONSTRAINT user_coupons_status_check
    CHECK (status IN ('AVAILABLE', 'USED', 'EXPIRED', 'REVOKED'));
ALTER TABLE user_coupons ADD COLUMN revoked_at TIMESTAMPTZ;
ALTER TABLE user_coupons ADD CONSTRAINT user_coupons_revoked_at
    CHECK ((status = 'REVOKED') = (revoked_at IS NOT NULL));
