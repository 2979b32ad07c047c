-- Settle a leased ticket with the outcome of its head event, then either hand
-- the ticket back to the ready set, let it go, or (a checkpoint) keep it.
--
-- The head is changed only if it is still the event the worker sent, so a
-- worker whose lease ran out cannot pop or rewrite the event another worker
-- now owns. Only the lease owner touches the ready set and the lease.
--
-- KEYS[1] queue   KEYS[2] ready   KEYS[3] leases   KEYS[4] dead letters
-- KEYS[5] the ticket's hash (for its audit trail; never created here)
-- ARGV[1] member   ARGV[2] token   ARGV[3] event id ("" = touch no event)
-- ARGV[4] when the ticket may next be worked (ms)
-- ARGV[5] the outcome:
--           pop         the head is done with (delivered): remove it
--           dead        remove it and append ARGV[6], its dead-letter record, to the dead list
--           replace     write ARGV[6], the updated event, over it (a retry, a put-off)
--           checkpoint  as replace, but keep the lease and the schedule (the worker goes on)
-- ARGV[6] dead-letter record or updated event (JSON), as the outcome says
-- ARGV[7] audit record ("" = none)   ARGV[8] audit entries kept   ARGV[9] its words
-- Returns {popped (0/1), still owned (0/1), events left}.

local outcome = ARGV[5]
local popped = 0
local head = redis.call('LINDEX', KEYS[1], 0)
if head and ARGV[3] ~= '' and cjson.decode(head)['id'] == ARGV[3] then
  if outcome == 'replace' or outcome == 'checkpoint' then
    redis.call('LSET', KEYS[1], 0, ARGV[6])
  else
    redis.call('LPOP', KEYS[1])
    popped = 1
    if outcome == 'dead' then
      redis.call('RPUSH', KEYS[4], ARGV[6])
    end
  end
end

if ARGV[7] ~= '' and redis.call('HEXISTS', KEYS[5], 's') == 1 then
  audit_push(KEYS[5], ARGV[7], tonumber(ARGV[8]), ARGV[9])
end

local left = redis.call('LLEN', KEYS[1])
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then
  return {popped, 0, left}
end
if outcome == 'checkpoint' then
  return {popped, 1, left}
end
redis.call('HDEL', KEYS[3], ARGV[1])
if left > 0 then
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
else
  redis.call('ZREM', KEYS[2], ARGV[1])
end
return {popped, 1, left}
