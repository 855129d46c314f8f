-- Gives back the units of one stock group of an order across groups, exactly once per part.
-- `release` (expiry, cancel, and the undoing of an abandoned or refused admission): only a part
-- marked `held` returns its units; a part never taken is marked `released` anyway, which fences
-- out a late reservation of it. `refund`: a part not yet `refunded` returns its units (as
-- restock_stock.lua does for an order of one group, the marker may have expired).
-- Counters that do not exist are left alone (hydration reads Postgres).
--
-- KEYS[1] the part's marker, KEYS[2..] the avail counter of each line of this group.
-- ARGV[1] `release` or `refund`, ARGV[2] TTL of the marker (s), ARGV[3..] quantity of each line
-- (ARGV[i + 1] goes with KEYS[i]).
-- Replies 1 when units were given back, 0 otherwise.
local marker = redis.call('GET', KEYS[1])
local give = false
if ARGV[1] == 'release' then
    give = marker == 'held'
    if not marker or marker == 'held' then
        redis.call('SET', KEYS[1], 'released', 'EX', ARGV[2])
    end
else
    give = marker ~= 'refunded'
    if give then
        redis.call('SET', KEYS[1], 'refunded', 'EX', ARGV[2])
    end
end
if not give then
    return 0
end
for i = 2, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 1 then
        redis.call('INCRBY', KEYS[i], ARGV[i + 1])
    end
end
return 1
