-- Compare-and-set one ticket's mapping and queue the work the change creates.
--
-- Used where the decision needs more than the stored state (an ilert webhook
-- also looks at the ticket's last known class): Python reads the mapping,
-- decides with the pure table, and this script applies the decision only if
-- the mapping is still what was read. Otherwise nothing happens and the caller
-- reads again, so two webhooks can never both act on the same state.
--
-- KEYS[1] ticket hash   KEYS[2] queue   KEYS[3] ready
-- ARGV[1] the mapping read ("" = there was none)   ARGV[2] the new mapping
-- ARGV[3] event JSON ("" = none)   ARGV[4] queue member   ARGV[5] now (ms)
-- ARGV[6] retention of a RESOLVED mapping (ms, "" = keep the current expiry)
-- ARGV[7] audit record ("" = none)   ARGV[8] audit entries kept   ARGV[9] its words
-- Returns 1 if applied, 0 if the mapping changed since it was read.

local current = redis.call('HGET', KEYS[1], 's') or ''
if current ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 's', ARGV[2])
if ARGV[6] ~= '' then
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
end
if ARGV[3] ~= '' then
  redis.call('RPUSH', KEYS[2], ARGV[3])
  redis.call('ZADD', KEYS[3], 'NX', ARGV[5], ARGV[4])
end
audit_push(KEYS[1], ARGV[7], tonumber(ARGV[8]), ARGV[9])
return 1
