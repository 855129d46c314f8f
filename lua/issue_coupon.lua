-- Issues one coupon, atomically: the V2 (redis-lua) decision and its durable record.
--
-- KEYS[1] meta (hash)   KEYS[2] remaining (counter)   KEYS[3] users (set)
-- KEYS[4] held (hash)   KEYS[5] stream
-- ARGV[1] now (epoch ms)        ARGV[2] user_id         ARGV[3] user_coupon_id (UUIDv7)
-- ARGV[4] issued_at (RFC 3339)  ARGV[5] expires_at      ARGV[6] terms revision the caller holds
-- ARGV[7] coupon_id
--
-- The stream entry's fields (and the held record, `user_coupon_id|issued_at|expires_at`) are
-- defined once in Rust, in src/store/redis/streams/coupons.rs (FIELDS, held_record); keep the
-- names below in step with it (tests/api/stream_codec.rs round-trips this script's entries).
--
-- Replies: {'NOT_HYDRATED'} | {'STALE'} (the caller's terms are outdated: reload, retry) |
-- {'NOT_ACTIVE', starts_ms, ends_ms} | {'ALREADY_ISSUED'} | {'SOLD_OUT', starts_ms, ends_ms} |
-- {'ISSUED', remaining, stream_entry_id}.
-- Rule order as the domain's: window, already held, stock. The window comes with the refusals
-- that close a coupon, so the caller can remember them (src/admission/coupons/losers.rs).
local meta = redis.call('HMGET', KEYS[1], 'starts_ms', 'ends_ms', 'rev')
if not meta[1] or not meta[2] then
  return {'NOT_HYDRATED'}
end
if meta[3] ~= ARGV[6] then
  return {'STALE'}
end
local now = tonumber(ARGV[1])
if now < tonumber(meta[1]) or now >= tonumber(meta[2]) then
  return {'NOT_ACTIVE', tonumber(meta[1]), tonumber(meta[2])}
end
if redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 1 then
  return {'ALREADY_ISSUED'}
end
local remaining = tonumber(redis.call('GET', KEYS[2]) or '0')
if remaining <= 0 then
  return {'SOLD_OUT', tonumber(meta[1]), tonumber(meta[2])}
end
-- The stream entry first: should it fail, nothing else has changed and nothing is acknowledged.
local id = redis.call('XADD', KEYS[5], '*',
  'user_coupon_id', ARGV[3], 'coupon_id', ARGV[7], 'user_id', ARGV[2],
  'issued_at', ARGV[4], 'expires_at', ARGV[5])
remaining = redis.call('DECR', KEYS[2])
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('HSET', KEYS[4], ARGV[2], ARGV[3] .. '|' .. ARGV[4] .. '|' .. ARGV[5])
return {'ISSUED', remaining, id}
