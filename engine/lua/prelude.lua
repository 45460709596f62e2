-- Shared by every wave script. KEYS is WaveKeys.script_keys:
--   1 meta  2 tasks  3 state  4 counts  5 leases  6 results  7 data
--   8 q:ivr  9 q:sms  10 q:viber  11 q:whatsapp  12 parts  13 phones  14 debtors
-- ARGV[1] is the results stream MAXLEN, ARGV[2] the engine time (epoch ms).
--
-- Task state JSON (hash KEYS[3]): s = q (queued) | l (leased) | f (final);
--   a attempt, c channel, p priority, ph phase of a lease (claimed | sending | accepted),
--   o owner process, cid correlation id, tg pacing target, hs holds a target slot,
--   ca/sa/aa claimed/sent/accepted at (ms), out final outcome.
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

local function count(field, by)
  redis.call('HINCRBY', KEYS[4], field, by)
end

local function wave_id()
  return redis.call('HGET', KEYS[1], 'wave_id')
end

-- The result record: the one place its shape is decided (engine.models.Result parses it).
local function record(kind, id, st, outcome, final, payload)
  local task = cjson.decode(redis.call('HGET', KEYS[2], id))
  local rec = {
    kind = kind, task_id = id, attempt = st.a, wave_id = task.wave_id,
    campaign_id = task.campaign_id, debtor_id = task.debtor_id, channel = st.c or task.channel,
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
