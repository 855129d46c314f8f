-- Releases a lock only if it is still ours: a lock whose TTL ran out may already belong to
-- another owner, and a plain DEL would free *their* lock.
-- KEYS[1]: the lock key; ARGV[1]: the owner token given when the lock was taken.
-- Returns 1 when released, 0 when the lock was no longer ours (expired or taken over).
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
