-- Ends a debtor's queued attempts in this wave (opt-out, an inbound call that cancels
-- robocalls). A queued attempt holds no reservation.
-- ARGV: 4 debtor id, 5 channel ('' = every channel), 6 outcome, 7 reason. Returns how many.
local list = redis.call('HGET', KEYS[K.debtors], ARGV[4])
if not list then return 0 end
local n = 0
for id in string.gmatch(list, '([^,]+)') do
  local st = getst(id)
  if st and st.phase == PH.queued and (ARGV[5] == '' or st.channel == ARGV[5]) then
    redis.call('ZREM', Q[st.channel], id)
    emit(record(KIND.RESULT, id, st, ARGV[6], true, {finished_at = NOW, provider_text = ARGV[7], data = {}}))
    setst(id, {phase = PH.ended, attempt = st.attempt, channel = st.channel, outcome = ARGV[6], debtor = st.debtor,
               generation = st.generation})
    count(CNT_CHANNEL_OUTCOME(st.channel, ARGV[6]), 1)
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
