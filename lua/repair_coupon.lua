-- The reconciler's repair, in the safe direction only: users persisted in Postgres but missing
-- from the users set are added back, and `remaining` is lowered (never raised) to what the set
-- allows, `total - |users|`. Both in one step with the issue script excluded, so admissions
-- running meanwhile are neither lost nor counted twice.
--
-- KEYS[1] meta   KEYS[2] remaining   KEYS[3] users
-- ARGV: user ids to make sure are in the set
--
-- Reply: {added, lowered_by} ({-1, 0} when not hydrated).
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {-1, 0}
end
local added = 0
for i = 1, #ARGV, 500 do
  local last = math.min(i + 499, #ARGV)
  added = added + redis.call('SADD', KEYS[3], unpack(ARGV, i, last))
end
local total = tonumber(redis.call('HGET', KEYS[1], 'total'))
local allowed = total - redis.call('SCARD', KEYS[3])
if allowed < 0 then
  allowed = 0
end
local remaining = tonumber(redis.call('GET', KEYS[2]) or '0')
if remaining > allowed then
  redis.call('SET', KEYS[2], allowed)
  return {added, remaining - allowed}
end
return {added, 0}
