-- Read-only: when the head of each given ticket queue was queued, and how long
-- each queue is (see store.queue_heads).
--
-- The head is a ticket's oldest undelivered event, so the oldest head is the
-- oldest event of all. Only two numbers per queue leave Redis instead of the
-- event bodies, and the caller passes the queues in small batches so that a
-- large backlog never holds Redis up for long.
--
-- KEYS  the queue keys
-- Returns {queued_at or -1, length, queued_at or -1, length, ...} in KEYS order.

local out = {}
for _, key in ipairs(KEYS) do
  local at = -1
  local head = redis.call('LINDEX', key, 0)
  if head then
    local ok, event = pcall(cjson.decode, head)
    if ok and type(event) == 'table' and tonumber(event['queued_at']) then
      at = tonumber(event['queued_at'])
    end
  end
  out[#out + 1] = at
  out[#out + 1] = redis.call('LLEN', key)
end
return out
