-- One admission step of an event's waiting room (store::redis::waiting_room): opens the room
-- when its time has come, retires expired admissions, and admits the next positions in order.
-- Every instance's ticker runs it; being one script, two instances never advance at once, and
-- the rate comes from Redis's clock and the room's own credit, not from how many call it.
--
-- KEYS[1] the room hash, KEYS[2] the room's batches (sorted set: score = last position of the
--         batch, member = `first:last:expires_ms`)
-- ARGV[1] a random seed, used if this step opens the room
-- ARGV[2] the most credit that may accumulate, in ms of admissions (the burst bound)
--
-- Credit is kept in milli-admissions: `rate` per ms elapsed, at most ARGV[2] ms worth, so
-- admissions never run ahead of `admit_per_second` by more than that burst. A batch is the
-- positions admitted by one step; its passes all expire at `expires_ms`, never earlier than the
-- batch before (so batches expire in position order even after the TTL is lowered).
--
-- Reply: {admitted now, waiting, active, admitted in all}; {0, -1, 0, 0} when the room is
-- disabled or missing.
local f = redis.call('HMGET', KEYS[1], 'enabled', 'rate', 'max_active', 'ttl', 'opens_ms', 'seq', 'early',
    'admitted', 'expired_to', 'credit', 'last_ms', 'measured', 'last_exp')
if f[1] ~= '1' then
    return {0, -1, 0, 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate, max_active, ttl_ms = tonumber(f[2]), tonumber(f[3]), tonumber(f[4]) * 1000
local seq = tonumber(f[6] or '0')
if not f[7] then
    if now < tonumber(f[5]) then
        redis.call('HSET', KEYS[1], 'last_ms', now)
        return {0, seq, 0, 0}
    end
    redis.call('HSET', KEYS[1], 'early', seq, 'seed', ARGV[1])
end
local admitted = tonumber(f[8] or '0')
local expired_to = tonumber(f[9] or '0')
for _ = 1, 10000 do
    local head = redis.call('ZRANGE', KEYS[2], 0, 0)
    if #head == 0 then break end
    local _, last, exp = string.match(head[1], '^(%d+):(%d+):(%d+)$')
    if tonumber(exp) > now then break end
    redis.call('ZREMRANGEBYRANK', KEYS[2], 0, 0)
    expired_to = tonumber(last)
end
local last_ms = tonumber(f[11] or now)
local elapsed = math.max(0, now - last_ms)
local credit = math.min(tonumber(f[10] or '0') + elapsed * rate, math.max(1000, rate * tonumber(ARGV[2])))
local waiting = seq - admitted
local k = math.max(0, math.min(math.floor(credit / 1000), max_active - (admitted - expired_to), waiting))
if k > 0 then
    local exp = math.max(now + ttl_ms, tonumber(f[13] or '0'))
    redis.call('ZADD', KEYS[2], admitted + k, (admitted + 1) .. ':' .. (admitted + k) .. ':' .. exp)
    redis.call('HSET', KEYS[1], 'last_exp', exp)
    admitted = admitted + k
    credit = credit - k * 1000
end
-- The measured admission rate (admissions per 1000 s), an average over about 2 s of the steps
-- that had someone waiting: what the estimated waits are computed from.
-- It starts at the configured rate: an average climbing from zero would tell the first
-- entrants waits many times too long.
local measured = tonumber(f[12] or (rate * 1000))
if waiting > 0 and elapsed > 0 then
    local alpha = math.min(1, elapsed / 2000)
    measured = measured + alpha * (k * 1000000 / elapsed - measured)
end
redis.call('HSET', KEYS[1], 'admitted', admitted, 'expired_to', expired_to, 'credit', math.floor(credit),
    'last_ms', now, 'measured', math.floor(measured))
return {k, seq - admitted, admitted - expired_to, admitted}
