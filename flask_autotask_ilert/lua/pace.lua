-- Give the next free send slot of one ilert key to the most urgent waiting head.
--
-- A sliding log of granted send times keeps at most LIMIT sends in any WINDOW.
-- Heads that want to send are ranked in a per-key sorted set (lower score =
-- more urgent: HIGH alerts, then LOW alerts, then accepts and resolves, each
-- by the time it was queued). A slot that is free now goes only to a head
-- ranked among the first "free slots" waiting; any other head is told when to
-- come back (its estimated slot) and keeps its place in the ranking. So the
-- next free slot goes to the most urgent head waiting, not to the first asker.
-- A waiter that does not come back within GRACE of its estimate (its ticket
-- forgotten, its worker gone) drops out of the ranking; it rejoins if it returns.
--
-- KEYS[1] the key's log (sorted set: head id -> granted time, ms)
-- KEYS[2] waiting heads (sorted set: head id -> rank)
-- KEYS[3] when each waiting head is due back (sorted set: head id -> ms)
-- ARGV[1] now (ms)   ARGV[2] LIMIT   ARGV[3] WINDOW (ms, with the jitter margin)
-- ARGV[4] head id    ARGV[5] its rank   ARGV[6] LATE: the jitter margin (ms)
-- ARGV[7] GRACE (ms)
-- Returns {1, granted time} (send now) or {0, when to come back (ms)}.

local now, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local id, late, grace = ARGV[4], tonumber(ARGV[6]), tonumber(ARGV[7])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window - late)
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - grace)
for _, member in ipairs(gone) do
  redis.call('ZREM', KEYS[2], member)
  redis.call('ZREM', KEYS[3], member)
end
redis.call('ZADD', KEYS[2], tonumber(ARGV[5]), id)

local free = limit - redis.call('ZCOUNT', KEYS[1], '(' .. (now - window), '+inf')
local position = redis.call('ZRANK', KEYS[2], id)
local count = redis.call('ZCARD', KEYS[1])

if position < free then
  -- The slot counts from when it became free (at most LATE ago), so that a head
  -- sent a little after its slot does not push every later slot back.
  local granted = now
  if count >= limit then
    local nth = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
    granted = math.max(now - late, tonumber(nth[2]) + window)
  end
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if newest[2] then
    granted = math.max(granted, tonumber(newest[2]))
  end
  granted = math.min(granted, now)
  redis.call('ZADD', KEYS[1], granted, id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('PEXPIRE', KEYS[1], window + late)
  return {1, granted}
end

-- Not this head's turn: the slot it may expect, counted over the last LIMIT grants.
local ahead = position - math.max(free, 0)
local recent = math.min(count, limit)
local back = now + 50
if recent > 0 then
  local base = redis.call('ZRANGE', KEYS[1], count - recent, -1, 'WITHSCORES')
  local nth = ahead % recent
  back = math.max(back, tonumber(base[2 * nth + 2]) + window * (math.floor(ahead / recent) + 1))
end
redis.call('ZADD', KEYS[3], back, id)
local keep = back - now + grace + window
redis.call('PEXPIRE', KEYS[2], keep)
redis.call('PEXPIRE', KEYS[3], keep)
return {0, back}
