-- FX prices are computed in numeric: `200 * amount` in bigint overflowed for a large list price
-- and every catalog read touching that option answered 500 (found by the fuzzer). A converted
-- price beyond bigint is not offered: the option is not sold in that market, as with no rate.
CREATE OR REPLACE VIEW option_market_prices AS
SELECT option_id, currency, amount, 'list'::text AS source FROM option_prices
UNION ALL
SELECT c.option_id, 'USD'::text, c.amount::bigint, 'fx'::text
FROM (SELECT k.option_id, div(200 * k.amount::numeric + r.rate, 2 * r.rate) AS amount
      FROM option_prices k JOIN fx_rates r ON r.pair = 'USD/KRW'
      WHERE k.currency = 'KRW'
        AND NOT EXISTS (SELECT 1 FROM option_prices u WHERE u.option_id = k.option_id AND u.currency = 'USD')) c
WHERE c.amount <= 9223372036854775807
UNION ALL
SELECT c.option_id, 'KRW'::text, c.amount::bigint, 'fx'::text
FROM (SELECT u.option_id, div(2 * u.amount::numeric * r.rate + 100, 200) AS amount
      FROM option_prices u JOIN fx_rates r ON r.pair = 'USD/KRW'
      WHERE u.currency = 'USD'
        AND NOT EXISTS (SELECT 1 FROM option_prices k WHERE k.option_id = u.option_id AND k.currency = 'KRW')) c
WHERE c.amount <= 9223372036854775807;
