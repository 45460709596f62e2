-- ARGV[3..]: groups of (task id, channel, score, task JSON, priority, zone label, phone, debtor).
-- Returns one flag per task: 1 added, 0 already loaded. Counters move only for new tasks,
-- so loading a file twice changes nothing.
local out = {}
local added = 0
for i = 3, #ARGV, 8 do
  local id, ch = ARGV[i], ARGV[i + 1]
  if redis.call('HSETNX', KEYS[2], id, ARGV[i + 3]) == 1 then
    redis.call('ZADD', Q[ch], ARGV[i + 2], id)
    setst(id, {s = 'q', a = 1, c = ch, p = tonumber(ARGV[i + 4])})
    count('z:' .. ARGV[i + 5], 1)
    count('c:' .. ch .. ':total', 1)
    redis.call('HSET', KEYS[13], ARGV[i + 6], ARGV[i + 7])
    local cur = redis.call('HGET', KEYS[14], ARGV[i + 7])
    redis.call('HSET', KEYS[14], ARGV[i + 7], cur and (cur .. ',' .. id) or id)
    added = added + 1
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if added > 0 then
  count('queued', added)
  count('total', added)
end
return out
