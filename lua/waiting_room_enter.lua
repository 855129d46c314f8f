-- Enters a user into an event's waiting room, once (store::redis::waiting_room).
--
-- KEYS[1] the room hash, KEYS[2] the room's entrants (hash user id -> seq)
-- ARGV[1] the user id, ARGV[2] a random seed, used if this call is the one that opens the room
--
-- The arrival number comes from one atomic counter (`seq`). The room opens (its early entrants
-- are fixed and shuffled by `seed`) at the first script, this one or the admission step, that
-- runs at or after `opens_ms` by Redis's clock: an entrant is early exactly when it arrived
-- before that, whichever instance served it.
--
-- Reply: {seq, new (1) or already there (0)}; {-1} no such room; {-2} the room is disabled
-- (a user already inside still gets its ticket back).
local seq = redis.call('HGET', KEYS[2], ARGV[1])
local room = redis.call('HMGET', KEYS[1], 'enabled', 'opens_ms', 'early', 'seq')
if not room[1] then
    return {-1}
end
if seq then
    return {tonumber(seq), 0}
end
if room[1] ~= '1' then
    return {-2}
end
if not room[3] then
    local t = redis.call('TIME')
    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    if now >= tonumber(room[2]) then
        redis.call('HSET', KEYS[1], 'early', room[4] or '0', 'seed', ARGV[2])
    end
end
seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[2], ARGV[1], seq)
return {seq, 1}
