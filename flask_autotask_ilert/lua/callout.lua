-- Apply one callout to one ticket's mapping, atomically (see store.py).
--
-- The lifecycle table stays in Python: the caller passes the whole column for
-- the callout's status class (what to do in each stored state), and this script
-- only picks the cell for the state it finds. The work a transition creates is
-- queued in the same call, so a transition without its event cannot exist.
--
-- KEYS[1] ticket    hash: s = "STATE|CLASS|LAST_ACTIVITY_US[|GENERATION]", a = audit trail,
--                   t = last activity of a refused first callout (no s), m = the alert's summary
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
-- ARGV[20] how long a rejected (untracked) ticket's audit and activity time are kept (ms)
-- ARGV[21] the latest activity time used for ordering (us, "" = no limit): later ones,
--          given or stored, are from a wrong clock and order nothing
-- ARGV[22] the alert key of the ticket's first alert ("" = events are queued as given);
--          later alerts (re-alert on reopen) are "<key>-<generation>"
-- ARGV[23] the audit record's words (the status label), audit.py
-- Returns {action, previous state, new state}.

-- Action letters as in audit.py's ACTION_CODES; a state's letter is its first.
local ACTION_CODE = {create = 'C', accept = 'A', resolve = 'R', nothing = 'N', reject = 'J', stale = 'S'}

local function audit(action, from, to)
  if ARGV[18] ~= '' then
    local record = ARGV[18] .. (ACTION_CODE[action] or '?') .. string.sub(from, 1, 1) .. string.sub(to, 1, 1)
    audit_push(KEYS[1], record, tonumber(ARGV[19]), ARGV[23])
  end
end

local fields = redis.call('HMGET', KEYS[1], 's', 't')
local stored, refused = fields[1], fields[2]
local state, last, generation = 'NONE', '', 1
if stored then
  local class, rest
  state, class, last, rest = string.match(stored, '^([^|]*)|([^|]*)|([^|]*)(.*)$')
  if rest ~= '' then
    generation = tonumber(string.sub(rest, 2))
  end
elseif refused then
  last = refused
end

local limit = ARGV[21]
local incoming = ARGV[2]
if limit ~= '' then
  if last ~= '' and tonumber(last) > tonumber(limit) then
    last = ''
  end
  if incoming ~= '' and tonumber(incoming) > tonumber(limit) then
    incoming = ''
  end
end

if incoming ~= '' and last ~= '' and tonumber(incoming) < tonumber(last) then
  audit('stale', state, state)
  return {'stale', state, state}
end
-- Past the stale check, a callout with a time is never older than the stored one:
-- only a callout without one keeps the stored time.
if incoming == '' then
  incoming = last
end

local base = ({NONE = 6, PENDING = 9, ACCEPTED = 12, RESOLVED = 15})[state]
local action, new_state, event = ARGV[base], ARGV[base + 1], ARGV[base + 2]

if action == 'reject' then
  if not stored then
    -- Not tracked, but remembered for a while: its audit, and its time, so that an
    -- older callout of the same ticket delivered after it is stale.
    local kept = false
    if ARGV[18] ~= '' then
      audit('reject', 'NONE', 'NONE')
      kept = true
    end
    if incoming ~= '' then
      redis.call('HSET', KEYS[1], 't', incoming)
      kept = true
    end
    if kept then
      redis.call('PEXPIRE', KEYS[1], ARGV[20])
    end
  end
  return {action, state, state}
end

if action == 'create' and state == 'RESOLVED' then
  generation = generation + 1
end

if event ~= '' then
  if ARGV[22] ~= '' then
    local key = ARGV[22]
    if generation > 1 then
      key = key .. '-' .. generation
    end
    event = string.sub(event, 1, -2) .. ',"alert_key":"' .. key .. '"}'
  end
  redis.call('RPUSH', KEYS[2], event)
  redis.call('ZADD', KEYS[3], 'NX', ARGV[3], ARGV[5])
  redis.call('LPUSH', KEYS[4], '1')
  redis.call('LTRIM', KEYS[4], 0, 63)
  redis.call('PEXPIRE', KEYS[4], 60000)
end

local record = new_state .. '|' .. ARGV[1] .. '|' .. incoming
if generation > 1 then
  record = record .. '|' .. generation
end
redis.call('HSET', KEYS[1], 's', record)
if refused then
  redis.call('HDEL', KEYS[1], 't')
end
if new_state == 'RESOLVED' and state ~= 'RESOLVED' then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
elseif new_state ~= 'RESOLVED' then
  redis.call('PERSIST', KEYS[1])
end
audit(action, state, new_state)
return {action, state, new_state}
