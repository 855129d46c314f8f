-- Wallet area: idempotency claims and popularity snapshot runs.

-- Which attempt holds an Idempotency-Key and since when. `.complete` and the release after a 5xx
-- only touch the row while it still carries their own claim_token, so an attempt that overran its
-- lease (and was taken over) can never complete or delete the new holder's claim.
ALTER TABLE idempotency_keys
    ADD COLUMN claim_token UUID,
    ADD COLUMN claimed_at  TIMESTAMPTZ NOT NULL DEFAULT now();

-- One row each time the popular-products job wrote a market's snapshot for a date, even when
-- nothing sold: "the latest snapshot is empty" must differ from "there is no snapshot", and
-- popularity_snapshots has rows only for ranks that exist.
CREATE TABLE popularity_snapshot_runs (
    snapshot_date  DATE        NOT NULL,
    market         TEXT        NOT NULL CHECK (market IN ('KR', 'US')),
    window_start   TIMESTAMPTZ NOT NULL,
    generated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (snapshot_date, market),
    CHECK (window_start < generated_at)
);
