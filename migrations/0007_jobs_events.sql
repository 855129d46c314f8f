-- Issue 16, items 4 and 5: the scheduled jobs' runs, and the new event types.

-- One row per job and day it ran for (the daily popular-products snapshot runs at UTC 00:00 in
-- exactly one instance). Written in the job's own transaction, under its advisory lock: a
-- second instance that finds the day's row skips, and the primary key refuses a second run
-- should the lock ever be bypassed. Operators read the history here.
CREATE TABLE job_runs (
    job          TEXT        NOT NULL CHECK (job IN ('popular_products')),
    run_date     DATE        NOT NULL,
    -- 'schedule' (found due at its time) or 'catch_up' (found overdue at start-up).
    cause        TEXT        NOT NULL CHECK (cause IN ('schedule', 'catch_up')),
    -- The instant the job computed for (the worker's clock): sales up to it count.
    due_at       TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (job, run_date)
);

-- Order cancellations and expiries are events now (and refunds: the same list as migration
-- 0005 of the refunds work, so whichever lands first the constraint ends up the same).
ALTER TABLE outbox_events DROP CONSTRAINT IF EXISTS outbox_events_type_check;
ALTER TABLE outbox_events ADD CONSTRAINT outbox_events_type_check CHECK (type IN (
    'order.created', 'payment.completed', 'coupon.issued', 'coupon.used', 'stock.changed',
    'order.cancelled', 'order.expired', 'order.refunded'));

-- The relay's lag, `outbox_oldest_pending_age_seconds`, reads the oldest PENDING event every
-- second: an index keeps that one row away however long the history is.
CREATE INDEX outbox_events_pending_age ON outbox_events (created_at) WHERE status = 'PENDING';
