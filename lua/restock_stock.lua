-- Puts the units of one refund of a paid order back on sale, exactly once: the refund's marker
-- hash records `refunded`, so a retried call is a no-op (an order may be refunded in parts).
-- Counters that do not exist are left alone (hydration reads the restocked figure from Postgres).
--
-- One call per stock group of the refund's lines (on Redis Cluster a call names keys of one slot):
-- KEYS[1] the refund's marker hash in that group, KEYS[2] the group's due set (the order's entry
-- is there when it is the order's home group), KEYS[3..] the avail counter of each line of it.
-- ARGV[1] order id, ARGV[2] TTL of the settled hash (s), ARGV[3..] quantity of each line.
-- Replies 1 when restocked, 0 when it already was.
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[1], 'state') == 'refunded' then
    return 0
end
redis.call('HSET', KEYS[1], 'state', 'refunded')
redis.call('EXPIRE', KEYS[1], ARGV[2])
for i = 3, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 1 then
        redis.call('INCRBY', KEYS[i], ARGV[i])
    end
end
return 1
