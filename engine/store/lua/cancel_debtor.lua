-- Ends a debtor's queued tasks in this wave (opt-out, an inbound call that cancels robocalls).
-- ARGV: 3 debtor id, 4 channel ('' = every channel), 5 outcome, 6 reason. Returns how many.
local list = redis.call('HGET', KEYS[14], ARGV[3])
if not list then return 0 end
local n = 0
for id in string.gmatch(list, '([^,]+)') do
  local st = getst(id)
  if st and st.s == 'q' and (ARGV[4] == '' or st.c == ARGV[4]) then
    redis.call('ZREM', Q[st.c], id)
    emit(record('result', id, st, ARGV[5], true, {finished_at = NOW, provider_text = ARGV[6], data = {}}))
    setst(id, {s = 'f', a = st.a, c = st.c, out = ARGV[5], d = st.d})
    count('c:' .. st.c .. ':o:' .. ARGV[5], 1)
    count('o:' .. ARGV[5], 1)
    n = n + 1
  end
end
if n > 0 then
  count('queued', -n)
  count('final', n)
end
flush_counts()
return n
