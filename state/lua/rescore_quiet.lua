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
-- KEYS: 1 due zset, 2 dirty set, 3.. customer hashes (as SCAN returned them)
-- ARGV: 1 length of the customer key head ("rfm:c:{"), 2 as_of ms (decimal text),
--       3 JSON {"kind": "thresholds"|"quintiles", "r": [4], "f": [4], "m": [4],
--               "segments": [125 names, index (r-1)*25 + (f-1)*5 + (m-1)]}
-- Returns the keys of the customers whose segment changes.
local due_key, dirty_key = KEYS[1], KEYS[2]
local head = tonumber(ARGV[1])
local as_of_text = ARGV[2]
local as_of = tonumber(as_of_text)
local spec = cjson.decode(ARGV[3])
local quintiles = spec.kind == 'quintiles'
local rc, fc, mc, segments = spec.r, spec.f, spec.m, spec.segments
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

local function customer_id(key)  -- as keys.unescape_id
  local escaped = string.sub(key, head + 1, -2)
  if string.find(escaped, '%', 1, true) then
    escaped = escaped:gsub('%%7D', '}'):gsub('%%7B', '{'):gsub('%%25', '%%')
  end
  return escaped
end

local loud = {}
for i = 3, #KEYS do
  local key = KEYS[i]
  local p = redis.call('HMGET', key, 'l', 'n', '$', 'g', 'v')
  if p[5] then  -- the customer still exists
    local last, orders, spend = tonumber(p[1]), tonumber(p[2] or '0'), tonumber(p[3] or '0')
    local scores, segment, due = '', '', -1
    if last and orders > 0 then  -- as changes.score_state and plan_write
      local days = math.floor((as_of - last) / DAY)
      if days < 0 then days = 0 end
      local r, f, m
      if quintiles then
        r, f, m = 1 + below(rc, -days), 1 + below(fc, orders), 1 + below(mc, spend)
      else
        local level = below(rc, days)
        r, f, m = 5 - level, 1 + upto(fc, orders), 1 + upto(mc, spend)
        if level < 4 then due = last + (rc[level + 1] + 1) * DAY end
      end
      segment = segments[(r - 1) * 25 + (f - 1) * 5 + m]
      scores = string.format('%d,%d,%d,%d,', r, f, m, days) .. as_of_text
    end
    if segment ~= (p[4] or '') then
      loud[#loud + 1] = key
    else  -- as write_scores.lua for an entry without a change event
      local cid = customer_id(key)
      if scores == '' then redis.call('HDEL', key, 's') else redis.call('HSET', key, 's', scores) end
      if due >= 0 then
        redis.call('ZADD', due_key, string.format('%d', due), cid)
      else
        redis.call('ZREM', due_key, cid)
      end
      redis.call('HINCRBY', key, 'v', 1)
      redis.call('SREM', dirty_key, cid)
    end
  end
end
return loud
