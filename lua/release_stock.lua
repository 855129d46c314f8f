-- Returns the stock of a PENDING V2 order to its avail counters, exactly once (expiry, cancel).
-- Only an order whose hash is still `pending` is released; the hash then says `released`, so a
-- second call (a retry, a repair pass, a racing sweeper) changes nothing. A counter that does not
-- exist is left alone: hydration computes it from Postgres, which already returned the stock.
--
-- KEYS[1] the order's hash, KEYS[2] the due set, KEYS[3..] the avail counter of each line.
-- ARGV[1] order id, ARGV[2] TTL of the settled hash (s), ARGV[3..] quantity of each line
-- (ARGV[i] goes with KEYS[i]).
-- Replies 1 when released, 0 when there was nothing to release.
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[1], 'state') ~= 'pending' then
    return 0
end
for i = 3, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 1 then
        redis.call('INCRBY', KEYS[i], ARGV[i])
    end
end
redis.call('HSET', KEYS[1], 'state', 'released')
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
