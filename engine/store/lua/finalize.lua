-- Ends attempts: records each result once and either ends the task or queues its next attempt.
-- ARGV[3]: JSON array of [id, attempt, outcome, payload, next, guard] (one argument: packing
-- thousands of small arguments costs the client more than the script does).
--   next  = '' (the task is final) or 'channel|attempt|score' (retry or cascade);
--   guard = ''        the attempt is leased (owner's send, or a late event);
--           'expired' the attempt is leased and its lease has expired (recovery);
--           'queued'  the attempt is waiting in a queue (stop, sweeps);
--           'open'    the attempt is queued or leased but not yet sent (stop reaching a claim).
-- Returns per item: flag (1 applied, 0 duplicate/late), pacing target to release or '',
-- 1 when that target slot was held until now.
local items = cjson.decode(ARGV[3])
local ids = {}
for i, item in ipairs(items) do ids[i] = item[1] end
local states = redis.call('HMGET', KEYS[3], unpack(ids))
local gathered = redis.call('HMGET', KEYS[7], unpack(ids))
local out = {}
local updates, unleased, gathered_done = {}, {}, {}
local seen = {}
for i, item in ipairs(items) do
  local id, attempt, outcome = item[1], tonumber(item[2]), item[3]
  local payload = item[4]
  local nxt, guard = item[5], item[6]
  -- The same task twice in one batch: the second sees the first's result.
  local st = seen[id] or (states[i] and cjson.decode(states[i]))
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
      if (st.s == 'f' and st.a == attempt and st.out == outcome) or (st.pa == attempt and st.po == outcome) then
        -- The same outcome again (several processes see one Asterisk's events, a provider
        -- resends a webhook): recorded once already.
        count('duplicate', 1)
      else
        -- News about an attempt already ended or superseded (a read after delivered, a
        -- delivery after the SMS fallback went out): keep it, change nothing.
        emit(record('late', id, st, outcome, false, payload))
        count('late', 1)
      end
    end
    out[#out + 1] = 0; out[#out + 1] = ''; out[#out + 1] = 0
  else
    if st.s == 'q' then
      redis.call('ZREM', Q[st.c], id)
      count('queued', -1)
    else
      unleased[#unleased + 1] = id
      count('leased', -1)
    end
    if gathered[i] then
      local extra = cjson.decode(gathered[i])
      if type(payload.data) ~= 'table' then payload.data = {} end
      for k, v in pairs(extra) do
        if payload.data[k] == nil then payload.data[k] = v end
      end
      gathered_done[#gathered_done + 1] = id
    end
    local release, held = st.tg or '', st.hs or 0
    local final = nxt == ''
    emit(record('result', id, st, outcome, final, payload))
    count('c:' .. st.c .. ':o:' .. outcome, 1)
    local new
    if final then
      new = {s = 'f', a = attempt, c = st.c, out = outcome, d = st.d}
      count('final', 1)
      count('o:' .. outcome, 1)
      count('m:' .. math.floor(NOW / 60000), 1)
    else
      local ch, natt, score = string.match(nxt, '([^|]+)|([^|]+)|([^|]+)')
      redis.call('ZADD', Q[ch], score, id)
      -- pa/po: the attempt just ended and its outcome, to tell a duplicate of it from news.
      new = {s = 'q', a = tonumber(natt), c = ch, p = st.p, d = st.d, pa = attempt, po = outcome}
      count('queued', 1)
    end
    seen[id] = new
    updates[#updates + 1] = id; updates[#updates + 1] = cjson.encode(new)
    out[#out + 1] = 1; out[#out + 1] = release; out[#out + 1] = held
  end
end
if #updates > 0 then chunked('HSET', KEYS[3], updates, 2000) end
if #unleased > 0 then
  chunked('ZREM', KEYS[5], unleased, 1000)
  chunked('HDEL', KEYS[12], unleased, 1000)
end
if #gathered_done > 0 then chunked('HDEL', KEYS[7], gathered_done, 1000) end
flush_counts()
return out
