-- Rescore customers whose segment stays the same, in Redis; hand back the others.
--
-- Why: a full pass over a million customers spent nearly all its time in Python reading,
-- scoring and writing back customers whose segment does not change, which is almost all of
-- them. For those, this script writes exactly what state/changes.py + write_scores.lua
-- would (scores, due time, version + 1, not dirty; no change event). A customer whose
-- segment changes is returned untouched: Python plans its change event and writes it with
-- compare-and-set, so state/changes.py stays the one place that defines change events.
-- tests/integration/test_quiet_rescoring.py runs both routes on the same customers, in
-- both scoring modes, and compares every key they leave.
--
-- KEYS: 1 dirty set, 2 due-hours zset, 3 segment-codes hash, 4.. profile buckets
-- ARGV: 1 as_of ms (decimal text), 2 due list key head,
--       3 JSON {"kind": "thresholds"|"quintiles", "r": [4], "f": [4], "m": [4],
--               "segments": [125 names, index (r-1)*25 + (f-1)*5 + (m-1)]}
--       4 "buckets": every customer of each bucket of KEYS (a full pass), or
--         "due": the due customers of the due lists (a due pass; see read_due in
--         profile.lua), then 5 profile key head, 6 lists after this hour, 7 about how many
-- Returns {number of customers examined, ids of those whose segment changes, their
-- profiles (as read_customers.lua returns them), due hours read, each list's length}.
local dirty_key, hours_key, codes_key = KEYS[1], KEYS[2], KEYS[3]
local as_of_text, due_head = ARGV[1], ARGV[2]
local as_of = tonumber(as_of_text)
local spec = cjson.decode(ARGV[3])
local quintiles = spec.kind == 'quintiles'
local rc, fc, mc, segments = spec.r, spec.f, spec.m, spec.segments
local any_dirty = redis.call('SCARD', dirty_key) > 0
local DAY = 86400000

local function below(cuts, v)  -- #{cut < v}, as bisect_left
  local n = 0
  for i = 1, 4 do if cuts[i] < v then n = n + 1 end end
  return n
end

local function upto(cuts, v)  -- #{cut <= v}, as bisect_right
  local n = 0
  for i = 1, 4 do if cuts[i] <= v then n = n + 1 end end
  return n
end

local loud, loud_profiles, examined = {}, {}, 0

-- The new packed profile if the segment stays, nil if it changes.
local function rescore(t, cid, bucket)
  examined = examined + 1
  local scores, segment, due = '', '', -1
  local last, orders = t.last, t.orders
  if last and orders > 0 then  -- as changes.score_state and plan_write
    local days = math.floor((as_of - last) / DAY)
    if days < 0 then days = 0 end
    local r, f, m
    if quintiles then
      r, f, m = 1 + below(rc, -days), 1 + below(fc, orders), 1 + below(mc, t.spend)
    else
      local level = below(rc, days)
      r, f, m = 5 - level, 1 + upto(fc, orders), 1 + upto(mc, t.spend)
      if level < 4 then due = last + (rc[level + 1] + 1) * DAY end
    end
    segment = segments[(r - 1) * 25 + (f - 1) * 5 + m]
    scores = r .. f .. m .. enc(days)
  end
  if segment ~= name_of(codes_key, t.seg) then
    loud[#loud + 1] = cid
    reply_profile(loud_profiles, t, codes_key)
    return nil
  end
  t.scores = scores
  t.as_of = scores ~= '' and as_of or nil
  set_due(t, due, bucket, cid, due_head, hours_key)
  t.version = t.version + 1
  if any_dirty then redis.call('SREM', dirty_key, cid) end
  return pack_profile(t)
end

local mode = ARGV[4]
local hours, lengths = {}, {}
if mode == 'buckets' then
  for k = 4, #KEYS do
    local key = KEYS[k]
    local bucket = string.match(key, '{(%d+)}$')
    local all = redis.call('HGETALL', key)
    local writes = {}
    for i = 1, #all, 2 do
      local packed = rescore(unpack_profile(all[i + 1]), all[i], bucket)
      if packed then
        writes[#writes + 1] = all[i]
        writes[#writes + 1] = packed
      end
    end
    for i = 1, #writes, 400 do
      redis.call('HSET', key, unpack(writes, i, math.min(i + 399, #writes)))
    end
  end
else  -- 'due': the customers of the due lists (as due_take.lua reads them)
  local done = {}
  hours, lengths = read_due(hours_key, due_head, ARGV[5], as_of, ARGV[6], tonumber(ARGV[7]),
    function(t, bucket, cid, key)
      if done[cid] then return end
      done[cid] = true
      local packed = rescore(t, cid, bucket)
      if packed then redis.call('HSET', key, cid, packed) end
    end)
end
return { examined, loud, loud_profiles, hours, lengths }
