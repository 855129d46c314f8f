-- Step 1 of an order across stock groups (src/store/redis/stock/across.rs): the durable intent,
-- written in the order's home group before any unit is taken. It is the order's hash in state
-- `reserving`, listed in the home group's due set at the admission deadline, so that if the
-- admitting process dies between groups the expiry sweeper finds it and undoes what was taken.
--
-- KEYS[1] the order's hash, KEYS[2] the home group's due set.
-- ARGV[1..8] the admission's fields (as reserve_stock.lua), ARGV[9] the admission deadline (ms),
-- ARGV[10] TTL of the hash (s).
-- Replies {1} intent written; {2} the order is already admitted (a retried call);
-- {3} an intent of this order is still `reserving` (a retry: continue it); {4} it was aborted.
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'reserving' then
    return {3}
end
if state == 'aborting' or state == 'aborted' then
    return {4}
end
if state then
    return {2}
end
redis.call('HSET', KEYS[1], 'state', 'reserving',
    'order_id', ARGV[1], 'user_id', ARGV[2], 'market', ARGV[3], 'currency', ARGV[4],
    'total', ARGV[5], 'created_at', ARGV[6], 'expires_at', ARGV[7], 'lines', ARGV[8])
redis.call('EXPIRE', KEYS[1], ARGV[10])
redis.call('ZADD', KEYS[2], ARGV[9], ARGV[1])
return {1}
