-- ARGV[3]: JSON array of [task id, channel, score, task JSON, priority, zone label, phone, debtor].
-- Returns one flag per task: 1 added, 0 already loaded. Counters move only for new tasks,
-- so loading a file twice changes nothing.
local out = {}
local added = 0
for _, row in ipairs(cjson.decode(ARGV[3])) do
  local id, ch = row[1], row[2]
  if redis.call('HSETNX', KEYS[2], id, row[4]) == 1 then
    redis.call('ZADD', Q[ch], string.format('%.0f', row[3]), id)
    setst(id, {s = 'q', a = 1, c = ch, p = row[5], d = row[8]})
    count('z:' .. row[6], 1)
    count('c:' .. ch .. ':total', 1)
    redis.call('HSET', KEYS[13], row[7], row[8])
    local cur = redis.call('HGET', KEYS[14], row[8])
    redis.call('HSET', KEYS[14], row[8], cur and (cur .. ',' .. id) or id)
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
flush_counts()
return out
