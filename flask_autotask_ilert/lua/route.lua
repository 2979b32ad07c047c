-- Remember (or forget) the integration key a ticket's ALERT went to (routing.py).
--
-- Only an existing record gets the field: a ticket forgotten meanwhile must not
-- come back as a record without state or expiry. HSET and HDEL keep the key's
-- expiry, so a RESOLVED record still expires when it should.
--
-- KEYS[1] ticket    hash: s = state, a = audit trail, ARGV[1] = the key's digest
-- ARGV[1] the field's name
-- ARGV[2] the digest, or "" to forget it
-- Returns 1 if the record exists, else 0.

if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
return 1
