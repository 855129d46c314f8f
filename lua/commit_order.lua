-- Step 3 of an order across stock groups: every part is taken, the intent becomes a pending
-- order, in the home group, in one step: the hash says `pending`, the due set holds it until
-- `expires_at`, the user's recent list names it, and the admission is appended to the home
-- group's stream (the same entry reserve_stock.lua writes; its fields are defined in
-- src/store/redis/streams/orders.rs). Refused when an abort came first.
--
-- KEYS[1] the home group's stream, KEYS[2] the order's hash, KEYS[3] the due set,
-- KEYS[4] the user's recent orders of this group.
-- ARGV[1..8] the admission's fields, ARGV[9] TTL of the hash (s), ARGV[10] TTL of the recent set (s).
-- Replies {1} committed; {2} already committed (a retry); {0} aborted (or no intent): nothing done.
local state = redis.call('HGET', KEYS[2], 'state')
if state ~= 'reserving' then
    if not state or state == 'aborting' or state == 'aborted' then
        return {0}
    end
    return {2}
end
redis.call('HSET', KEYS[2], 'state', 'pending')
redis.call('EXPIRE', KEYS[2], ARGV[9])
redis.call('ZADD', KEYS[3], ARGV[7], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -51)
redis.call('EXPIRE', KEYS[4], ARGV[10])
redis.call('XADD', KEYS[1], '*',
    'order_id', ARGV[1], 'user_id', ARGV[2], 'market', ARGV[3], 'currency', ARGV[4],
    'total', ARGV[5], 'created_at', ARGV[6], 'expires_at', ARGV[7], 'lines', ARGV[8])
return {1}
