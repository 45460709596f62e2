-- Ends an attempt: records its result once and either ends the task or queues its next attempt.
-- ARGV: groups of (id, attempt, outcome, payload JSON, next, guard).
--   next  = '' (the task is final) or 'channel|attempt|score' (retry or cascade);
--   guard = ''        the attempt is leased (owner's send, or a late event);
--           'expired' the attempt is leased and its lease has expired (recovery);
--           'queued'  the attempt is waiting in a queue (stop, sweeps);
--           'open'    the attempt is queued or leased but not yet sent (stop reaching a claim).
-- Returns per group: flag (1 applied, 0 duplicate/late), pacing target to release or '',
-- 1 when that target slot was held until now.
local out = {}
for i = 3, #ARGV, 6 do
  local id, attempt, outcome = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local payload = cjson.decode(ARGV[i + 3])
  local nxt, guard = ARGV[i + 4], ARGV[i + 5]
  local st = getst(id)
  local ok = false
  if st and st.s ~= 'f' and st.a == attempt then
    if guard == '' then ok = st.s == 'l'
    elseif guard == 'expired' then
      local exp = redis.call('ZSCORE', KEYS[5], id)
      ok = st.s == 'l' and exp ~= false and tonumber(exp) <= NOW
    elseif guard == 'queued' then ok = st.s == 'q'
    elseif guard == 'open' then ok = st.s == 'q' or (st.s == 'l' and st.ph == 'claimed')
    end
  end
  if not ok then
    if st and guard == '' and outcome ~= '' then
      -- A duplicate or an event for an attempt already superseded: keep it, change nothing.
      emit(record('late', id, st, outcome, false, payload))
      count('late', 1)
    end
    out[#out + 1] = 0; out[#out + 1] = ''; out[#out + 1] = 0
  else
    if st.s == 'q' then
      redis.call('ZREM', Q[st.c], id)
      count('queued', -1)
    else
      redis.call('ZREM', KEYS[5], id)
      count('leased', -1)
    end
    local gathered = redis.call('HGET', KEYS[7], id)
    if gathered then
      local extra = cjson.decode(gathered)
      if type(payload.data) ~= 'table' then payload.data = {} end
      for k, v in pairs(extra) do
        if payload.data[k] == nil then payload.data[k] = v end
      end
      redis.call('HDEL', KEYS[7], id)
    end
    redis.call('HDEL', KEYS[12], id)
    local release, held = st.tg or '', st.hs or 0
    local final = nxt == ''
    emit(record('result', id, st, outcome, final, payload))
    count('c:' .. st.c .. ':o:' .. outcome, 1)
    if final then
      setst(id, {s = 'f', a = attempt, c = st.c, out = outcome})
      count('final', 1)
      count('o:' .. outcome, 1)
      count('m:' .. math.floor(NOW / 60000), 1)
    else
      local ch, natt, score = string.match(nxt, '([^|]+)|([^|]+)|([^|]+)')
      redis.call('ZADD', Q[ch], score, id)
      setst(id, {s = 'q', a = tonumber(natt), c = ch, p = st.p})
      count('queued', 1)
    end
    out[#out + 1] = 1; out[#out + 1] = release; out[#out + 1] = held
  end
end
return out
