-- Shared by the scripts that change a ticket (store.py prepends it to them).
--
-- The audit trail is two fields of the ticket's hash: fixed-size records in
-- 'a' (audit.py, 8 bytes each), newest first, at most KEEP of them, and in 'w'
-- one line of words per record (a status label, who acted in ilert, why a
-- delivery failed; empty when there are none), in the same order. Kept inside
-- the ticket's own key so that it costs no key of its own and expires with
-- the mapping; audit.py bounds a line so that a full trail stays within the
-- 2 KB budget per tracked ticket.
local AUDIT_RECORD = 8

local function audit_push(key, record, keep, words)
  if record == '' or keep < 1 then return end
  local line = words or ''
  local trail = redis.call('HGET', key, 'a')
  local lines = redis.call('HGET', key, 'w')
  if trail and keep > 1 then
    record = record .. string.sub(trail, 1, (keep - 1) * AUDIT_RECORD)
  end
  if lines and keep > 1 then
    local kept, start = 1, 1
    while kept < keep do
      local stop = string.find(lines, '\n', start, true)
      if not stop then start = #lines + 2; break end
      start = stop + 1
      kept = kept + 1
    end
    line = line .. '\n' .. string.sub(lines, 1, start - 2)
  end
  redis.call('HSET', key, 'a', record, 'w', line)
end
