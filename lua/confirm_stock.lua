-- Marks a V2 order paid after its payment committed in Postgres, so it can never be released.
-- Stock counters do not move: a sale keeps the units out of the sellable quantity for good
-- (Postgres confirms them physically: stock -= qty, reserved -= qty).
--
-- KEYS[1] the order's hash, KEYS[2] the due set. ARGV[1] order id, ARGV[2] TTL of the settled hash (s).
-- Replies 1 when confirmed, 0 when already settled or unknown, -1 when it had been released
-- (an anomaly: Postgres says paid; the caller reports it).
redis.call('ZREM', KEYS[2], ARGV[1])
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'pending' then
    redis.call('HSET', KEYS[1], 'state', 'paid')
    redis.call('EXPIRE', KEYS[1], ARGV[2])
    return 1
end
if state == 'released' then
    return -1
end
return 0
