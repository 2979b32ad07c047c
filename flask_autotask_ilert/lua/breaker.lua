-- A circuit breaker shared by every worker, per destination (an ilert API and
-- integration key, an Autotask integration code).
--
-- While a destination fails, its events wait on it instead of each backing off
-- on its own, and one probe at a time tests it: the first event to find a probe
-- due takes the probe lease and is sent; the others are held until then. The
-- first success wakes every held event at once (pacing still applies).
--
-- KEYS[1] the breaker (hash: next = earliest next probe (ms), probe = token of
--         the probe in flight, until = when that probe's lease ends (ms))
-- KEYS[2] held ticket queues (sorted set: member -> its urgency, 0 most urgent)
-- KEYS[3] ready   KEYS[4] leases
-- ARGV[1] op: check | fail | ok | release | settle
-- ARGV[2] now (ms)   ARGV[3] queue member   ARGV[4] token
-- ARGV[5] check: the probe lease (ms); fail: when the next probe may go (ms)
-- ARGV[6] check, fail: the held event's urgency (0, 1, 2: worker._urgency's kinds)
-- ARGV[7] fail: how many failures in a row open the breaker (a flaky destination is
--         retried event by event; a failing one is probed)
-- Returns check: {'closed', 0} | {'probe', 0} | {'hold', when to look again (ms)};
--         ({'closed', 1}: failures were counted, a success should reset them);
--         fail: {'fail', 1 if the breaker is open}; release: {op, 0}; ok: {'ok', queues woken};
--         settle (after a held queue was put off): {'settle', 1 if the breaker had closed
--         meanwhile and the queue was made due now, else 0}.

local op, now, member, token = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local keep = 86400000

if op == 'check' then
  if redis.call('EXISTS', KEYS[1]) == 0 then
    return {'closed', 0}
  end
  local opened = redis.call('HGET', KEYS[1], 'next')
  if not opened then
    return {'closed', 1}
  end
  local nxt = tonumber(opened)
  local probe = redis.call('HGET', KEYS[1], 'probe')
  local until_ms = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
  local probing = probe and until_ms > now
  if not probing and now >= nxt then
    redis.call('HSET', KEYS[1], 'probe', token, 'until', now + tonumber(ARGV[5]))
    return {'probe', 0}
  end
  redis.call('ZADD', KEYS[2], tonumber(ARGV[6] or '0'), member)
  redis.call('PEXPIRE', KEYS[2], keep)
  local back = nxt
  if probing then back = math.max(nxt, until_ms) end
  return {'hold', math.max(back, now + 1)}
end

if op == 'fail' then
  local fails = redis.call('HINCRBY', KEYS[1], 'fails', 1)
  redis.call('PEXPIRE', KEYS[1], keep)
  if fails < tonumber(ARGV[7] or '1') and not redis.call('HGET', KEYS[1], 'next') then
    return {'fail', 0}
  end
  redis.call('HSET', KEYS[1], 'next', tonumber(ARGV[5]))
  if redis.call('HGET', KEYS[1], 'probe') == token then
    redis.call('HDEL', KEYS[1], 'probe', 'until')
  end
  redis.call('PEXPIRE', KEYS[1], keep)
  if member ~= '' then
    redis.call('ZADD', KEYS[2], tonumber(ARGV[6] or '0'), member)
    redis.call('PEXPIRE', KEYS[2], keep)
  end
  return {'fail', 1}
end

if op == 'settle' then
  -- A queue put off as held after its breaker closed (the success came while its worker
  -- still held its lease, so it was not woken): due now after all.
  if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('HEXISTS', KEYS[4], member) == 1 then
    return {'settle', 0}
  end
  local due = redis.call('ZSCORE', KEYS[3], member)
  if due and tonumber(due) > now then
    redis.call('ZADD', KEYS[3], now, member)
    return {'settle', 1}
  end
  return {'settle', 0}
end

if op == 'release' then
  if redis.call('HGET', KEYS[1], 'probe') == token then
    redis.call('HDEL', KEYS[1], 'probe', 'until')
  end
  return {'release', 0}
end

-- ok: the destination answers again. The held queues are due now, the most urgent a
-- little earlier, so that they are claimed, and ask for a send slot, first.
redis.call('DEL', KEYS[1])
local woken = 0
local held_all = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
for i = 1, #held_all, 2 do
  local held, urgency = held_all[i], tonumber(held_all[i + 1])
  local due = redis.call('ZSCORE', KEYS[3], held)
  if due and tonumber(due) > now and redis.call('HEXISTS', KEYS[4], held) == 0 then
    redis.call('ZADD', KEYS[3], now - 2000 + 1000 * urgency, held)
    woken = woken + 1
  end
end
redis.call('DEL', KEYS[2])
return {'ok', woken}
