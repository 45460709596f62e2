-- The stop-list gate for a claimed batch (after common.lua), in one call on a single Redis: the
-- three or four HMGETs of a pipeline cost the dispatcher more, packed and parsed argument by
-- argument, than everything else the gate does (a Redis Cluster keeps the pipeline: these hashes
-- are on different nodes).
-- KEYS: stop-listed debtors, stop-listed phones, deactivated phones, and (when a retention key is
-- set) the keyed hashes of erased debtors' phones.
-- ARGV[1]: now, epoch ms ('' : every deactivation stops, expired or not).
-- ARGV[2]: JSON array of [debtor, phone, phone hash or ''].
-- Returns per item: 0 go on, 1 stop-listed, 2 phone deactivated.
local now = tonumber(ARGV[1])
local items = cjson.decode(ARGV[2])
local function column(key, at)
  local out = {}
  for start = 1, #items, 1000 do
    local names = {}
    for i = start, math.min(start + 999, #items) do names[#names + 1] = items[i][at] end
    local got = redis.call('HMGET', key, unpack(names))
    for j = 1, #got do out[start + j - 1] = got[j] end
  end
  return out
end
local debtors = column(KEYS[1], 1)
local phones = column(KEYS[2], 2)
local invalid = column(KEYS[3], 2)
local hashed = {}
if KEYS[4] then hashed = column(KEYS[4], 3) end
local out = {}
for i = 1, #items do
  local kind = nil
  if hashed[i] then kind = cjson.decode(hashed[i])[ERASED_PHONE_KIND] end
  local code = 0
  if debtors[i] or phones[i] or kind == ERASED.STOP then
    code = 1
  elseif kind == ERASED.INVALID then
    code = 2
  elseif invalid[i] then
    -- A deactivation stops the phone until its time is up (no time, or a value that is not
    -- the engine's JSON: for ever).
    local ok, entry = pcall(cjson.decode, invalid[i])
    local ends = ok and type(entry) == 'table' and tonumber(entry[DEACTIVATION_UNTIL]) or nil
    if now == nil or ends == nil or now < ends then code = 2 end
  end
  out[i] = code
end
return out
