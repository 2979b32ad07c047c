-- Apply one callout to one ticket's mapping, atomically (see store.py).
--
-- The lifecycle table stays in Python: the caller passes the whole column for
-- the callout's status class (what to do in each stored state), and this script
-- only picks the cell for the state it finds. The work a transition creates is
-- queued in the same call, so a transition without its event cannot exist.
--
-- KEYS[1] ticket    hash: s = "STATE|CLASS|LAST_ACTIVITY_US", a = audit trail
-- KEYS[2] queue     the ticket's pending events (list, oldest first)
-- KEYS[3] ready     sorted set: queue member -> time it may next be worked (ms)
-- KEYS[4] wake      list of wake-up tokens for idle delivery threads (capped, expiring)
-- ARGV[1] status class of this callout
-- ARGV[2] last activity, integer microseconds, or "" when the callout had none
-- ARGV[3] now (ms)
-- ARGV[4] how long a RESOLVED mapping is kept (ms)
-- ARGV[5] queue member naming this ticket in the ready set
-- ARGV[6..17] the column: action, new state, event JSON ("" for none) for
--             NONE, PENDING, ACCEPTED, RESOLVED in that order
-- ARGV[18] audit record prefix: time and kind, audit.py ("" = no audit trail)   ARGV[19] audit entries kept
-- ARGV[20] how long the audit of a rejected (untracked) ticket is kept (ms)
-- ARGV[21] the audit record's words (the status label), audit.py
-- Returns {action, previous state, new state}.

-- Action letters as in audit.py's ACTION_CODES; a state's letter is its first.
local ACTION_CODE = {create = 'C', accept = 'A', resolve = 'R', nothing = 'N', reject = 'J', stale = 'S'}

local function audit(action, from, to)
  if ARGV[18] ~= '' then
    local record = ARGV[18] .. (ACTION_CODE[action] or '?') .. string.sub(from, 1, 1) .. string.sub(to, 1, 1)
    audit_push(KEYS[1], record, tonumber(ARGV[19]), ARGV[21])
  end
end

local state, last = 'NONE', ''
local stored = redis.call('HGET', KEYS[1], 's')
if stored then
  local class
  state, class, last = string.match(stored, '^([^|]*)|([^|]*)|(.*)$')
end

local incoming = ARGV[2]
if incoming ~= '' and last ~= '' and tonumber(incoming) < tonumber(last) then
  audit('stale', state, state)
  return {'stale', state, state}
end
if incoming == '' or (last ~= '' and tonumber(last) > tonumber(incoming)) then
  incoming = last
end

local base = ({NONE = 6, PENDING = 9, ACCEPTED = 12, RESOLVED = 15})[state]
local action, new_state, event = ARGV[base], ARGV[base + 1], ARGV[base + 2]

if action == 'reject' then
  if ARGV[18] ~= '' and not stored then
    audit('reject', 'NONE', 'NONE')
    redis.call('PEXPIRE', KEYS[1], ARGV[20])
  end
  return {action, state, state}
end

if event ~= '' then
  redis.call('RPUSH', KEYS[2], event)
  redis.call('ZADD', KEYS[3], 'NX', ARGV[3], ARGV[5])
  redis.call('LPUSH', KEYS[4], '1')
  redis.call('LTRIM', KEYS[4], 0, 63)
  redis.call('PEXPIRE', KEYS[4], 60000)
end

redis.call('HSET', KEYS[1], 's', new_state .. '|' .. ARGV[1] .. '|' .. incoming)
if new_state == 'RESOLVED' and state ~= 'RESOLVED' then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
elseif new_state ~= 'RESOLVED' then
  redis.call('PERSIST', KEYS[1])
end
audit(action, state, new_state)
return {action, state, new_state}
