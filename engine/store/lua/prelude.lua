-- Shared by every wave script. KEYS is WaveKeys.script_keys:
--   1 meta  2 tasks  3 state  4 counts  5 leases  6 results  7 data
--   8 q:ivr  9 q:sms  10 q:viber  11 q:whatsapp  12 parts  13 phones  14 debtors
-- ARGV[1] is the results stream MAXLEN, ARGV[2] the engine time (epoch ms).
--
-- Task state JSON (hash KEYS[3]): s = q (queued) | l (leased) | f (final);
--   a attempt, c channel, p priority, ph phase of a lease (claimed | sending | accepted),
--   o owner process, cid correlation id, tg pacing target, hs holds a target slot,
--   ca/sa/aa claimed/sent/accepted at (ms), out final outcome, d debtor id,
--   pa/po the previous attempt and its outcome (while a retry or cascade waits).
local Q = {ivr = KEYS[8], sms = KEYS[9], viber = KEYS[10], whatsapp = KEYS[11]}
local MAXLEN = ARGV[1]
local NOW = tonumber(ARGV[2])

local function getst(id)
  local raw = redis.call('HGET', KEYS[3], id)
  if not raw then return nil end
  return cjson.decode(raw)
end

local function setst(id, st)
  redis.call('HSET', KEYS[3], id, cjson.encode(st))
end

local function emit(rec)
  redis.call('XADD', KEYS[6], 'MAXLEN', '~', MAXLEN, '*', 'r', cjson.encode(rec))
end

-- Counters are summed in Lua and written once per script call (flush_counts).
local COUNTS = {}
local function count(field, by)
  COUNTS[field] = (COUNTS[field] or 0) + by
end
local function flush_counts()
  for field, by in pairs(COUNTS) do
    if by ~= 0 then redis.call('HINCRBY', KEYS[4], field, by) end
  end
  COUNTS = {}
end

-- Multi-key commands in chunks (Lua's unpack has a limited stack).
local function chunked(cmd, key, list, step)
  for i = 1, #list, step do
    local last = math.min(i + step - 1, #list)
    redis.call(cmd, key, unpack(list, i, last))
  end
end

local function wave_id()
  return redis.call('HGET', KEYS[1], 'wave_id')
end

local META = nil
local function meta()
  if not META then META = redis.call('HMGET', KEYS[1], 'wave_id', 'campaign_id') end
  return META
end

-- The result record: the one place its shape is decided (engine.models.Result parses it).
-- Debtor and channel come from the state (st.d, st.c), wave and campaign from the meta hash,
-- so no task JSON is decoded on the hot path.
local function record(kind, id, st, outcome, final, payload)
  local debtor = st.d
  if not debtor then debtor = cjson.decode(redis.call('HGET', KEYS[2], id)).debtor_id end
  local m = meta()
  local rec = {
    kind = kind, task_id = id, attempt = st.a, wave_id = m[1],
    campaign_id = m[2], debtor_id = debtor, channel = st.c,
    final = final, claimed_at = st.ca, sent_at = st.sa, accepted_at = st.aa,
  }
  if outcome and outcome ~= '' then rec.outcome = outcome end
  if payload then
    rec.provider_code = payload.provider_code
    rec.provider_text = payload.provider_text
    rec.data = payload.data
    rec.finished_at = payload.finished_at
  end
  if kind == 'dispatched' then rec.data = {target = st.tg} end
  return rec
end
