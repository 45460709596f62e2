-- ARGV[4]: JSON array of [task id, channel, score, task JSON, priority, zone label, phone, debtor].
-- Returns one flag per task: 1 added, 0 already loaded. Counters move only for new tasks,
-- so loading a file twice changes nothing.
local out = {}
local added = 0
for _, row in ipairs(cjson.decode(ARGV[4])) do
  local id, ch = row[1], row[2]
  if redis.call('HSETNX', KEYS[K.tasks], id, row[4]) == 1 then
    redis.call('ZADD', Q[ch], string.format('%.0f', row[3]), id)
    -- Priority 0 and generation 0 are left out (read as 0): every number cjson writes costs a snprintf.
    local priority = row[5]
    if priority == 0 then priority = nil end
    setst(id, {[SF.phase] = PH.queued, [SF.attempt] = 1, [SF.channel] = ch, [SF.priority] = priority,
               [SF.debtor] = row[8]})
    count(CNT_ZONE(row[6]), 1)
    count(CNT_CHANNEL_TOTAL(ch), 1)
    redis.call('HSET', KEYS[K.phones], row[7], row[8])
    local cur = redis.call('HGET', KEYS[K.debtors], row[8])
    redis.call('HSET', KEYS[K.debtors], row[8], cur and (cur .. ',' .. id) or id)
    added = added + 1
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
if added > 0 then
  count(CNT.QUEUED, added)
  count(CNT.TOTAL, added)
end
flush_counts()
return out
