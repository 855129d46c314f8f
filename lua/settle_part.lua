-- Releases the units of one stock group of an order across groups, exactly once per part
-- (expiry, cancel, and the undoing of an abandoned or refused admission): only a part marked
-- `held` returns its units; a part never taken is marked `released` anyway, which fences out a
-- late reservation of it. (A refund has markers of its own: restock_stock.lua, per group.)
-- Counters that do not exist are left alone (hydration reads Postgres).
--
-- KEYS[1] the part's marker, KEYS[2..] the avail counter of each line of this group.
-- ARGV[1] TTL of the marker (s), ARGV[2..] quantity of each line (ARGV[i] goes with KEYS[i]).
-- Replies 1 when units were given back, 0 otherwise.
local marker = redis.call('GET', KEYS[1])
if marker and marker ~= 'held' then
    return 0
end
redis.call('SET', KEYS[1], 'released', 'EX', ARGV[1])
if not marker then
    return 0
end
for i = 2, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 1 then
        redis.call('INCRBY', KEYS[i], ARGV[i])
    end
end
return 1
