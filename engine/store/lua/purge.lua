-- Removes a finished wave's keys, atomically with the checks that allow it (engine.archive.purge):
-- the wave is completed or stopped, it finished at or before ARGV[5] (engine ms), and the
-- consumer group ARGV[4] has every record of its results stream: nothing pending, and its last
-- delivered id is the stream's last id. A record added since the archiver's pass refuses it.
-- Returns {'purged'} or {'kept', why}.
local state = redis.call('HGET', KEYS[K.meta], META.STATE)
if state ~= WS.COMPLETED and state ~= WS.STOPPED then return {'kept', 'not finished'} end
local finished = tonumber(redis.call('HGET', KEYS[K.meta], state .. '_at') or '0')
if finished > tonumber(ARGV[5]) then return {'kept', 'finished too recently'} end

local function id_parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end

local last = redis.call('XREVRANGE', KEYS[K.results], '+', '-', 'COUNT', 1)
if #last > 0 then
  local found = false
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[K.results])) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    if info['name'] == ARGV[4] then
      found = true
      if tonumber(info['pending']) ~= 0 then return {'kept', 'records pending in the archive group'} end
      local lms, lseq = id_parts(last[1][1])
      local dms, dseq = id_parts(info['last-delivered-id'])
      if dms < lms or (dms == lms and dseq < lseq) then return {'kept', 'records not yet archived'} end
    end
  end
  if not found then return {'kept', 'no archive group'} end
end
local names = {}
for i = 1, #KEYS do names[#names + 1] = KEYS[i] end
redis.call('DEL', unpack(names))
return {'purged'}
