-- Announces a change every instance must see (store::redis::notices): bumps the topic's revision
-- and publishes the notice, in one atomic step, so the revision a listener polls never lags a
-- notice it was sent.
--
-- KEYS[1] the revisions hash (topic -> counter)
-- ARGV[1] the notices channel, ARGV[2] the topic, ARGV[3] the entity id ('' for the whole topic)
--
-- Reply: the topic's new revision. The message is `topic|revision|id`.
local rev = redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
redis.call('PUBLISH', ARGV[1], ARGV[2] .. '|' .. rev .. '|' .. ARGV[3])
return rev
