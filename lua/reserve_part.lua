-- Step 2 of an order across stock groups: takes the order's lines of ONE group, all or none.
-- The part's marker records it; a marker left by an abort that came first (`released`) fences
-- this part out, so a slow admitter can never take units after its order was undone.
--
-- KEYS[1] the part's marker, KEYS[2..] the avail counter of each line of this group.
-- ARGV[1] TTL of the marker (s), ARGV[2..] quantity of each line (ARGV[i + 1] goes with KEYS[i + 1]).
-- Replies {1} taken; {2} already taken (a retry); {3} fenced (the order was aborted);
-- {0, i, avail} line i (1-based among this group's lines) is short, nothing taken;
-- {-1, i, j, ...} these lines have no counter yet (hydrate and retry), nothing taken.
local marker = redis.call('GET', KEYS[1])
if marker == 'held' then
    return {2}
end
if marker then
    return {3}
end
local n = #KEYS - 1
local missing = {-1}
local avail = {}
for i = 1, n do
    local v = redis.call('GET', KEYS[i + 1])
    if v then
        avail[i] = tonumber(v)
    else
        missing[#missing + 1] = i
    end
end
if #missing > 1 then
    return missing
end
for i = 1, n do
    if avail[i] < tonumber(ARGV[i + 1]) then
        return {0, i, avail[i]}
    end
end
for i = 1, n do
    redis.call('DECRBY', KEYS[i + 1], ARGV[i + 1])
end
redis.call('SET', KEYS[1], 'held', 'EX', ARGV[1])
return {1}
