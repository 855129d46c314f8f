-- Applies a coupon edit to its hydrated state: new terms, and `remaining` moved by exactly the
-- change of `total` (computed against the stored total, so applying the same edit twice is a
-- no-op). Refuses a total below what has been admitted.
--
-- KEYS[1] meta   KEYS[2] remaining
-- ARGV[1] starts_ms  ARGV[2] ends_ms  ARGV[3] total  ARGV[4] market  ARGV[5] validity
-- ARGV[6] rev to set when market or validity change
--
-- Replies: {'NOT_HYDRATED'} | {'BELOW_ISSUED', admitted} | {'OK', remaining}.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {'NOT_HYDRATED'}
end
local meta = redis.call('HMGET', KEYS[1], 'total', 'market', 'validity')
local delta = tonumber(ARGV[3]) - tonumber(meta[1])
local remaining = tonumber(redis.call('GET', KEYS[2]) or '0')
if remaining + delta < 0 then
  return {'BELOW_ISSUED', tonumber(meta[1]) - remaining}
end
if delta ~= 0 then
  remaining = redis.call('INCRBY', KEYS[2], delta)
end
redis.call('HSET', KEYS[1], 'starts_ms', ARGV[1], 'ends_ms', ARGV[2], 'total', ARGV[3])
if meta[2] ~= ARGV[4] or meta[3] ~= ARGV[5] then
  redis.call('HSET', KEYS[1], 'market', ARGV[4], 'validity', ARGV[5], 'rev', ARGV[6])
end
return {'OK', remaining}
