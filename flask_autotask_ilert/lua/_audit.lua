-- Shared by the scripts that change a ticket (store.py prepends it to them).
--
-- The audit trail is one field of the ticket's hash: newest record first, one
-- per line, at most KEEP records. Kept inside the ticket's own key so that it
-- costs no key of its own and expires with the mapping.
local function audit_push(key, record, keep)
  if record == '' or keep < 1 then return end
  local trail = redis.call('HGET', key, 'a')
  if trail and keep > 1 then
    local at = 0
    for _ = 1, keep - 1 do
      at = string.find(trail, '\n', at + 1, true)
      if not at then break end
    end
    if at then trail = string.sub(trail, 1, at - 1) end
    record = record .. '\n' .. trail
  end
  redis.call('HSET', key, 'a', record)
end
