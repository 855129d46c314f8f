-- Applies deltas to the avail counters that exist (hydrated options); missing ones are left to
-- hydration, which reads Postgres. Used by stock adjustments and by V1 (`reservation = 'db'`)
-- orders, whose reservations live in Postgres but must keep the V2 counters in step.
--
-- KEYS[1..] avail counters. ARGV[1] '1' to refuse when an existing counter would fall below
-- zero (a stock write-off larger than what is still sellable), '0' otherwise; ARGV[2..] deltas
-- (ARGV[i + 1] goes with KEYS[i]).
-- Replies {1} when applied, {0, i, avail} when refused (nothing changed).
if ARGV[1] == '1' then
    for i = 1, #KEYS do
        local v = redis.call('GET', KEYS[i])
        if v and tonumber(v) + tonumber(ARGV[i + 1]) < 0 then
            return {0, i, tonumber(v)}
        end
    end
end
for i = 1, #KEYS do
    if redis.call('EXISTS', KEYS[i]) == 1 then
        redis.call('INCRBY', KEYS[i], ARGV[i + 1])
    end
end
return {1}
