-- Settle a leased ticket: drop its delivered (or dead) head, then either hand
-- the ticket back to the ready set or let it go.
--
-- The head is removed only if it is still the event the worker sent, so a
-- worker whose lease ran out cannot pop the event another worker now owns.
-- Only the lease owner touches the ready set and the lease.
--
-- KEYS[1] queue   KEYS[2] ready   KEYS[3] leases   KEYS[4] dead letters
-- KEYS[5] the ticket's hash (for its audit trail; never created here)
-- ARGV[1] member   ARGV[2] token   ARGV[3] event id ("" = pop nothing)
-- ARGV[4] when the ticket may next be worked (ms)
-- ARGV[5] dead-letter record ("" = delivered, not dead)
-- ARGV[6] replacement head JSON ("" = pop the head instead; used to reschedule)
-- ARGV[7] "1" = checkpoint only: replace the head but keep the lease and the schedule
-- ARGV[8] audit record ("" = none)   ARGV[9] audit entries kept
-- Returns {popped (0/1), still owned (0/1), events left}.

local popped = 0
local head = redis.call('LINDEX', KEYS[1], 0)
if head and ARGV[3] ~= '' and cjson.decode(head)['id'] == ARGV[3] then
  if ARGV[6] ~= '' then
    redis.call('LSET', KEYS[1], 0, ARGV[6])
  else
    redis.call('LPOP', KEYS[1])
    popped = 1
    if ARGV[5] ~= '' then
      redis.call('RPUSH', KEYS[4], ARGV[5])
    end
  end
end

if ARGV[8] ~= '' and redis.call('HEXISTS', KEYS[5], 's') == 1 then
  audit_push(KEYS[5], ARGV[8], tonumber(ARGV[9]))
end

local left = redis.call('LLEN', KEYS[1])
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then
  return {popped, 0, left}
end
if ARGV[7] == '1' then
  return {popped, 1, left}
end
redis.call('HDEL', KEYS[3], ARGV[1])
if left > 0 then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return {popped, 1, left}
