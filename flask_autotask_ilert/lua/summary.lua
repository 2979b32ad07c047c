-- Keep the summary of a ticket's newest alert in its record, for the ACCEPT and
-- RESOLVE events that follow (ilert's event schema requires a summary on each).
--
-- Only a record that still exists gets it: a ticket forgotten, or expired,
-- while its ALERT was being delivered is not brought back as a hash holding
-- nothing but a summary (and no expiry).
--
-- KEYS[1] ticket hash   ARGV[1] the summary (short: the hash stays compact)
-- Returns 1 if kept, 0 if the ticket has no record (no state).

if redis.call('HEXISTS', KEYS[1], 's') == 0 then
  return 0
end
redis.call('HSET', KEYS[1], 'm', ARGV[1])
return 1
