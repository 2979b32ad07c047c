-- Shared by the scripts that change a ticket (store.py prepends it to them).
--
-- The audit trail is one field of the ticket's hash: fixed-size records
-- (audit.py, 8 bytes each), newest first, at most KEEP of them. Kept inside the
-- ticket's own key so that it costs no key of its own and expires with the
-- mapping; eight records are 64 bytes, which keeps the hash in Redis' compact
-- encoding.
local AUDIT_RECORD = 8

local function audit_push(key, record, keep)
  if record == '' or keep < 1 then return end
  local trail = redis.call('HGET', key, 'a')
  if trail and keep > 1 then
    record = record .. string.sub(trail, 1, (keep - 1) * AUDIT_RECORD)
  end
  redis.call('HSET', key, 'a', record)
end
