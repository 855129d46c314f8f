-- Step 2 of an order across stock groups: takes the order's lines of ONE group, all or none.
-- The part's marker records it; a marker left by an abort that came first (`released`) fences
-- this part out, so a slow admitter can never take units after its order was undone.
-- take_lines is lua/take_lines.lua, prepended to this script.
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
local refused = take_lines(2, 2, #KEYS - 1)
if refused then
    return refused
end
redis.call('SET', KEYS[1], 'held', 'EX', ARGV[1])
return {1}
