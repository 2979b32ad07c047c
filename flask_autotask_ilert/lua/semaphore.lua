-- A counting semaphore with expiring holders, shared by every worker process.
--
-- Autotask refuses more than a few concurrent requests per integration code
-- and endpoint ("Thread Threshold Exceeded"); holders that die simply expire.
--
-- KEYS[1] holders (sorted set: token -> expiry, ms)
-- ARGV[1] now (ms)   ARGV[2] limit   ARGV[3] hold at most (ms)   ARGV[4] token
-- Returns 1 if a place was taken, 0 if all are in use.

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[3]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
