-- Prices are at most 40,000,000 minor units (domain::catalog::MAX_PRICE), as the API declares
-- and enforces since this migration: what is computed from prices (cart lines, order totals,
-- converted prices) then stays far inside bigint. A database holding a larger price fails
-- here, naming the constraint: lower that price first.
ALTER TABLE option_prices
    ADD CONSTRAINT option_prices_amount_max CHECK (amount <= 40000000);
