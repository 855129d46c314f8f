-- Publishes a coupon's hydrated state, only if no one did already (several instances may hydrate
-- the same coupon at once: the first to publish wins, the others' work is discarded, so the
-- users are never counted twice).
--
-- KEYS[1] meta   KEYS[2] remaining   KEYS[3] users   KEYS[4] held
-- KEYS[5] scratch users (set built by the caller)   KEYS[6] scratch held (hash built by the caller)
-- ARGV[1] starts_ms  ARGV[2] ends_ms  ARGV[3] total  ARGV[4] market  ARGV[5] validity  ARGV[6] rev
--
-- Reply: 1 published, 0 already hydrated (scratch keys dropped).
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DEL', KEYS[5], KEYS[6])
  return 0
end
if redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('RENAME', KEYS[5], KEYS[3])
  redis.call('PERSIST', KEYS[3])
else
  redis.call('DEL', KEYS[3])
end
if redis.call('EXISTS', KEYS[6]) == 1 then
  redis.call('RENAME', KEYS[6], KEYS[4])
  redis.call('PERSIST', KEYS[4])
else
  redis.call('DEL', KEYS[4])
end
-- Every holder is one issued coupon, persisted or still in the stream.
local remaining = tonumber(ARGV[3]) - redis.call('SCARD', KEYS[3])
if remaining < 0 then
  remaining = 0
end
redis.call('SET', KEYS[2], remaining)
redis.call('HSET', KEYS[1], 'starts_ms', ARGV[1], 'ends_ms', ARGV[2], 'total', ARGV[3],
  'market', ARGV[4], 'validity', ARGV[5], 'rev', ARGV[6])
return 1
