-- Ends a debtor's queued attempts in this wave (opt-out, an inbound call that cancels
-- robocalls). A queued attempt holds no reservation.
-- ARGV: 4 debtor id, 5 channel ('' = every channel), 6 outcome, 7 reason. Returns how many.
local list = redis.call('HGET', KEYS[K.debtors], ARGV[4])
if not list then return 0 end
local n = 0
for id in string.gmatch(list, '([^,]+)') do
  local st = getst(id)
  if st and st[SF.phase] == PH.queued and (ARGV[5] == '' or st[SF.channel] == ARGV[5]) then
    redis.call('ZREM', Q[st[SF.channel]], id)
    emit(record(KIND.RESULT, id, st, ARGV[6], true, {finished_at = NOW, provider_text = ARGV[7], data = {}}))
    setst(id, {[SF.phase] = PH.ended, [SF.attempt] = st[SF.attempt], [SF.channel] = st[SF.channel],
               [SF.outcome] = ARGV[6], [SF.debtor] = st[SF.debtor], [SF.generation] = st[SF.generation]})
    count(CNT_CHANNEL_OUTCOME(st[SF.channel], ARGV[6]), 1)
    count(CNT_OUTCOME(ARGV[6]), 1)
    n = n + 1
  end
end
if n > 0 then
  count(CNT.QUEUED, -n)
  count(CNT.FINAL, n)
end
flush_counts()
return n
