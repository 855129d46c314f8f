-- Configures an event's waiting room (store::redis::waiting_room), creating it at its first call.
--
-- KEYS[1] the room hash, KEYS[2] the room's batches (sorted set)
-- ARGV[1] enabled (0/1), ARGV[2] admit_per_second, ARGV[3] max_active, ARGV[4] pass_ttl_secs,
-- ARGV[5] opens_at (epoch ms), ARGV[6] revoke (1: every pass issued so far stops being valid)
--
-- Revoking bumps the room's epoch (a pass names the epoch it was issued in, and every instance
-- refuses a pass of another epoch) and ends every admission so far: the tickets already
-- admitted become EXPIRED, so no poll mints them a pass of the new epoch, and their places
-- under max_active are free at once.
--
-- Reply: the room's epoch.
redis.call('HSET', KEYS[1], 'enabled', ARGV[1], 'rate', ARGV[2], 'max_active', ARGV[3], 'ttl', ARGV[4],
    'opens_ms', ARGV[5])
local epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
if epoch == 0 or ARGV[6] == '1' then
    epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
end
if ARGV[6] == '1' then
    local admitted = redis.call('HGET', KEYS[1], 'admitted') or '0'
    redis.call('HSET', KEYS[1], 'expired_to', admitted)
    redis.call('HDEL', KEYS[1], 'last_exp')
    redis.call('DEL', KEYS[2])
end
return epoch
