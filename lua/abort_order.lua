-- The two ends of undoing an order across stock groups whose admission was refused or abandoned,
-- in its home group. `begin` is the point of no return: a `reserving` intent becomes `aborting`,
-- after which commit_order.lua refuses it, so an order is either committed or undone, never
-- both. The caller then releases every part (settle_part.lua) and calls `finish`, which marks
-- the hash `aborted` and takes it off the due set. A crash in between leaves it `aborting` in
-- the due set, and the sweeper runs the same steps again (each is idempotent).
--
-- KEYS[1] the order's hash, KEYS[2] the home group's due set.
-- ARGV[1] `begin` or `finish`, ARGV[2] order id, ARGV[3] TTL of the settled hash (s).
-- Replies 1 when the order is (being) undone, 0 when it is not an intent (committed or unknown).
local state = redis.call('HGET', KEYS[1], 'state')
if ARGV[1] == 'begin' then
    if state == 'reserving' then
        redis.call('HSET', KEYS[1], 'state', 'aborting')
        return 1
    end
    if state == 'aborting' then
        return 1
    end
    return 0
end
if state == 'aborting' then
    redis.call('HSET', KEYS[1], 'state', 'aborted')
    redis.call('EXPIRE', KEYS[1], ARGV[3])
    redis.call('ZREM', KEYS[2], ARGV[2])
    return 1
end
return 0
