-- The customers whose R score can have dropped by as_of, from the hourly due lists.
--
-- A list entry is only a candidate: it counts when the customer's profile still holds a due
-- time in that list's hour (a later purchase moved it, and appended it to another list) and
-- that time has come. Nothing is deleted here: due_retire.lua drops a list once its
-- customers are rescored, so a crash in between loses nothing.
-- KEYS: 1 due-hours zset
-- ARGV: 1 as_of ms, 2 due list key head, 3 profile key head ("P:b:{"),
--       4 read lists of hours after this one ("-inf" at first), 5 stop after this many candidates
-- Returns {hours, lengths, candidates}: the hours read, each list's length when read, and
-- per candidate two values: bucket number and customer id.
local hours_key = KEYS[1]
local as_of, due_head, profiles_head = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local limit = tonumber(ARGV[5])
local upto = math.floor(as_of / HOUR)
local after = ARGV[4] == '-inf' and '-inf' or '(' .. ARGV[4]
local hours, lengths, candidates = {}, {}, {}
local listed = redis.call('ZRANGEBYSCORE', hours_key, after, upto)
for _, hour in ipairs(listed) do
  if #candidates >= 2 * limit then break end
  local list = redis.call('LRANGE', due_head .. hour, 0, -1)
  hours[#hours + 1] = hour
  lengths[#lengths + 1] = #list
  local h = tonumber(hour)
  for _, entry in ipairs(list) do
    local bucket, cid = string.match(entry, '^(%d+):(.*)$')
    local t = unpack_profile(redis.call('HGET', profiles_head .. bucket .. '}', cid))
    if t and t.due and t.due <= as_of and math.floor(t.due / HOUR) == h then
      candidates[#candidates + 1] = bucket
      candidates[#candidates + 1] = cid
    end
  end
end
return { hours, lengths, candidates }
