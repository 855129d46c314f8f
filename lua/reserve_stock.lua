-- All-or-nothing stock reservation of one order (V2, JUPANG_ORDER_STRATEGY=redis-lua).
-- Every key carries the hash tag of the order's stock group (src/store/redis/stock/keys.rs), so
-- the script runs unchanged on Redis Cluster; an order across groups uses reserve_part.lua.
-- take_lines is lua/take_lines.lua, prepended to this script.
--
-- KEYS[1] the admission stream, KEYS[2] the order's hash, KEYS[3] the due set (orders by expiry),
-- KEYS[4] the user's recent orders, KEYS[5..] the avail counter of each line (distinct options).
-- ARGV[1] order id, ARGV[2] user id, ARGV[3] market, ARGV[4] currency, ARGV[5] total,
-- ARGV[6] created_at (ms), ARGV[7] expires_at (ms), ARGV[8] lines (JSON),
-- ARGV[9] TTL of the order hash (s), ARGV[10] TTL of the recent-orders set (s),
-- ARGV[11..] quantity of each line, in the order of KEYS[5..].
--
-- The entry's (and the hash's) field names are defined once in Rust, in
-- src/store/redis/streams/orders.rs (FIELDS, in the order of ARGV[1..8]); keep the names below in
-- step with it (tests/api/stream_codec.rs round-trips this script's entries).
--
-- Replies: {1} admitted; {2} this order id was already admitted (a retried call: nothing done);
-- {0, i, avail} line i is short (only `avail` left; nothing done);
-- {-1, i, j, ...} lines i, j, ... have no counter yet (the caller hydrates them and retries).
-- An order is never acknowledged without its stream entry: the XADD is part of this script.
local FIRST_AVAIL = 5
local FIRST_QTY = 11
local n = #KEYS - FIRST_AVAIL + 1

if redis.call('EXISTS', KEYS[2]) == 1 then
    return {2}
end

local refused = take_lines(FIRST_AVAIL, FIRST_QTY, n)
if refused then
    return refused
end

local fields = {
    'order_id', ARGV[1], 'user_id', ARGV[2], 'market', ARGV[3], 'currency', ARGV[4],
    'total', ARGV[5], 'created_at', ARGV[6], 'expires_at', ARGV[7], 'lines', ARGV[8],
}
redis.call('HSET', KEYS[2], 'state', 'pending', unpack(fields))
redis.call('EXPIRE', KEYS[2], ARGV[9])
redis.call('ZADD', KEYS[3], ARGV[7], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[1])
-- Read-your-writes of order lists only needs the latest few.
redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -51)
redis.call('EXPIRE', KEYS[4], ARGV[10])
redis.call('XADD', KEYS[1], '*', unpack(fields))
return {1}
