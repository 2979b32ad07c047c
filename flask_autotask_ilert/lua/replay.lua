-- Move one dead letter back to the tail of its ticket's queue, atomically
-- (store.replay_dead, used by `flask autotask-ilert replay`).
--
-- The event is queued only if its record could be taken off the dead list, so
-- two operators replaying at once cannot send it twice and a crash in between
-- cannot lose it. The ticket's state is checked in the same step: an event the
-- ticket has moved past (an alert create for a ticket resolved meanwhile) stays
-- dead rather than re-open what is closed.
--
-- KEYS[1] dead letters   KEYS[2] the ticket's queue   KEYS[3] ready
-- KEYS[4] the ticket's hash (state and audit trail; never created here)
-- ARGV[1] the dead record, exactly as stored   ARGV[2] the event to queue (JSON)
-- ARGV[3] queue member   ARGV[4] now (ms)
-- ARGV[5] states the ticket must be in, "|"-separated ("" = any)
-- ARGV[6] audit record ("" = none)   ARGV[7] audit entries kept   ARGV[8] its words
-- Returns 1 replayed, 0 no longer in the dead list, -1 the ticket moved on (kept dead).

if ARGV[5] ~= '' then
  local stored = redis.call('HGET', KEYS[4], 's')
  local state = 'NONE'
  if stored then state = string.match(stored, '^([^|]*)') end
  if not string.find('|' .. ARGV[5] .. '|', '|' .. state .. '|', 1, true) then
    return -1
  end
end
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then
  return 0
end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], 'NX', ARGV[4], ARGV[3])
if ARGV[6] ~= '' and redis.call('HEXISTS', KEYS[4], 's') == 1 then
  audit_push(KEYS[4], ARGV[6], tonumber(ARGV[7]), ARGV[8])
end
return 1
