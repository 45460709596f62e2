-- Ends up to ARGV[4] queued attempts with outcome ARGV[5] (a stop ends them cancelled). A queued
-- attempt holds no reservation (a requeue released it). Returns how many.
local limit, outcome = tonumber(ARGV[4]), ARGV[5]
local n = 0
for _, ch in ipairs(CHANNELS) do
  if n >= limit then break end
  local ids = redis.call('ZRANGE', Q[ch], 0, limit - n - 1)
  for _, id in ipairs(ids) do
    local st = getst(id)
    redis.call('ZREM', Q[ch], id)
    emit(record(KIND.RESULT, id, st, outcome, true, {finished_at = NOW, data = {}}))
    setst(id, {[SF.phase] = PH.ended, [SF.attempt] = st[SF.attempt], [SF.channel] = st[SF.channel],
               [SF.outcome] = outcome, [SF.debtor] = st[SF.debtor], [SF.generation] = st[SF.generation]})
    count(CNT_CHANNEL_OUTCOME(st[SF.channel], outcome), 1)
    count(CNT_OUTCOME(outcome), 1)
    n = n + 1
  end
end
if n > 0 then
  count(CNT.QUEUED, -n)
  count(CNT.FINAL, n)
end
flush_counts()
return n
