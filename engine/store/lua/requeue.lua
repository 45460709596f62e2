-- Puts leased attempts back in their queue, the same attempt, and settles their reservations
-- (a requeue releases: the next claim reserves anew).
-- ARGV[4]: JSON array of [id, attempt, score, guard, unsent, settlement, generation]:
--   guard = 'claim'   the caller's own claim (its generation), sent or not;
--           'expired' the lease has expired (recovery);
--   unsent = true     the connector answered Retry: the begin-send counted a send that never
--                     reached the wire, so it is taken back (a send is counted once);
--   settlement        [[key, field, counters, verdict], ...] (engine.store.schema.Reservation).
-- Returns a flag per item, then the outbox entries written.
local out = {}
for _, item in ipairs(cjson.decode(ARGV[4])) do
  local id, attempt, guard = item[1], tonumber(item[2]), item[4]
  local st = getst(id)
  local ok = st and leased(st) and st[SF.attempt] == attempt
  if ok and guard == GUARD.CLAIM then ok = st[SF.generation] == tonumber(item[7]) end
  if ok and guard == GUARD.EXPIRED then
    local exp = redis.call('ZSCORE', KEYS[K.leases], id)
    ok = exp ~= false and tonumber(exp) <= NOW
  end
  if ok then
    if item[5] == true and st[SF.phase] == PH.sending then
      count(CNT.SENT, -1)
      count(CNT_CHANNEL_SENT(st[SF.channel]), -1)
    end
    redis.call('ZREM', KEYS[K.leases], id)
    redis.call('ZADD', Q[st[SF.channel]], string.format('%.0f', item[3]), id)
    setst(id, {[SF.phase] = PH.queued, [SF.attempt] = attempt, [SF.channel] = st[SF.channel],
               [SF.priority] = st[SF.priority], [SF.debtor] = st[SF.debtor], [SF.generation] = st[SF.generation],
               [SF.prev_attempt] = st[SF.prev_attempt], [SF.prev_outcome] = st[SF.prev_outcome]})
    settle(item[6])
    count(CNT.LEASED, -1)
    count(CNT.QUEUED, 1)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
flush_counts()
return answer(out)
