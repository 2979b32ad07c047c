-- Lease up to N tickets whose queues are due, for one worker.
--
-- A lease is the member's score pushed into the future plus the owner's token:
-- a worker that dies simply lets the score come due again, and the next claim
-- takes the ticket over. Per-ticket order holds because a ticket is worked by
-- one lease at a time and only its queue head is ever sent.
--
-- KEYS[1] ready   KEYS[2] leases (hash member -> token)
-- ARGV[1] now (ms)   ARGV[2] lease length (ms)   ARGV[3] token   ARGV[4] N

local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[4]))
local until_ms = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, member in ipairs(members) do
  redis.call('ZADD', KEYS[1], until_ms, member)
  redis.call('HSET', KEYS[2], member, ARGV[3])
end
return members
