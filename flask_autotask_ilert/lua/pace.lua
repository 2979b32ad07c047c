-- Reserve a send slot under "at most LIMIT events per WINDOW" for one ilert key.
--
-- A sliding log of reserved send times: the new slot is the earliest moment at
-- which fewer than LIMIT reservations fall inside the window before it. Slots
-- are handed out in order, so a burst is spread out instead of answered 429.
--
-- KEYS[1] the key's log (sorted set: reservation id -> slot time, ms)
-- ARGV[1] now (ms)   ARGV[2] LIMIT   ARGV[3] WINDOW (ms)   ARGV[4] reservation id
-- Returns the slot time (ms); the caller sends then, not before.

local now, limit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local slot = now
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  local nth = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
  slot = math.max(slot, tonumber(nth[2]) + window)
end
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if newest[2] then
  slot = math.max(slot, tonumber(newest[2]))
end
redis.call('ZADD', KEYS[1], slot, ARGV[4])
redis.call('PEXPIRE', KEYS[1], slot - now + window)
return slot
