-- Ends up to ARGV[3] queued tasks with outcome ARGV[4] (stop → cancelled). Returns how many.
local limit, outcome = tonumber(ARGV[3]), ARGV[4]
local n = 0
for _, ch in ipairs({'ivr', 'sms', 'viber', 'whatsapp'}) do
  if n >= limit then break end
  local ids = redis.call('ZRANGE', Q[ch], 0, limit - n - 1)
  for _, id in ipairs(ids) do
    local st = getst(id)
    redis.call('ZREM', Q[ch], id)
    emit(record('result', id, st, outcome, true, {finished_at = NOW, data = {}}))
    setst(id, {s = 'f', a = st.a, c = st.c, out = outcome, d = st.d})
    count('c:' .. st.c .. ':o:' .. outcome, 1)
    count('o:' .. outcome, 1)
    n = n + 1
  end
end
if n > 0 then
  count('queued', -n)
  count('final', n)
end
flush_counts()
return n
