-- Rescore customers in Redis, change events included: the route of the rescoring passes
-- and of the customers a batch of orders touched.
--
-- Why: a full pass over a million customers spent nearly all its time in Python reading,
-- scoring and writing back customers, and a due pass mostly on building the change events
-- of the customers that cross into another segment. This script does what state/changes.py
-- (plan_write, change_record_of) and write_scores.lua do for a pass (never an announcement):
-- scores, due time, segment and its counters, the change record in the outbox with the
-- next sequence number (state/change_events.py: the relay renders the event's JSON),
-- version + 1, not dirty. tests/integration/test_rescore_in_redis.py runs
-- this route and the Python route on the same customers (ids with quotes, backslashes and
-- non-ASCII characters, both scoring modes, full and due passes) and compares every key
-- they leave, outbox records byte for byte.
--
-- KEYS: 1 dirty set, 2 due-hours zset, 3 segment-codes hash, 4 segments hash,
--       5.. profile buckets
-- ARGV: 1 as_of ms (decimal text), 2 due list key head, 3 outbox key prefix, 4 cause,
--       5 JSON {"kind": "thresholds"|"quintiles", "r": [4], "f": [4], "m": [4],
--               "segments": [125 names, index (r-1)*25 + (f-1)*5 + (m-1)],
--               "currency": code, "exponent": minor-unit digits}
--       6 "buckets": every customer of each bucket of KEYS (a full pass), or
--         "ids": the customers ARGV[7..], KEYS[5..] their buckets (after orders), or
--         "due": the due customers of the due lists (a due pass; see read_due in
--         profile.lua), then 7 profile key head, 8 lists after this hour, 9 about how many
-- Returns {customers examined, segment changes, partitions whose outbox got one,
-- transitions as previous, new, how many triples ('' for none), due hours read, each list's
-- length}.
local dirty_key, hours_key, codes_key, segments_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local as_of, due_head, outbox_prefix = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local cause = ARGV[4]
local spec = cjson.decode(ARGV[5])
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

-- "rfm" as stored, by segment table index: concatenating numbers costs a printf each.
local rfm_texts = {}
local function rfm_text(index, r, f, m)
  local s = rfm_texts[index]
  if not s then
    s = string.format('%d%d%d', r, f, m)
    rfm_texts[index] = s
  end
  return s
end

-- Segment changes are tallied by previous and new segment: the reply and the segment counters
-- are built from the tally at the end, not from a pair per change.
local examined, changes, partitions, tally = 0, 0, {}, {}  -- partitions: whose outbox got one

-- A segment change, as write_scores.lua records the one plan_write makes: counters (from
-- the tally), the change record in the partition's outbox (change_events.change_record:
-- numbers in base 36 as the profile holds them, so the text route copies them; the part
-- every change of this call shares joined once), and what the reply reports. scores is
-- '' for a customer with no order left.
local record_tail = ',' .. string.format('%d', spec.exponent) .. ',' .. spec.currency .. ',' ..
  ARGV[1] .. ',' .. cause
local outboxes = {}  -- partition -> outbox key
local function announce(cid, partition, previous, segment, seq, scores, orders, spend)
  local box = outboxes[partition]
  if not box then
    box = outbox_prefix .. decimal(partition)
    outboxes[partition] = box
    partitions[#partitions + 1] = decimal(partition)
  end
  redis.call('XADD', box, '*', 't', 'chg', 'k', cid, 'v', seq .. ',' .. previous .. ',' ..
    segment .. ',' .. scores .. ',' .. orders .. ',' .. spend .. record_tail)
  changes = changes + 1
  local row = tally[previous]
  if not row then
    row = {}
    tally[previous] = row
  end
  row[segment] = (row[segment] or 0) + 1
end

-- R, F, M, the segment table index and the due time (nil when R can drop no further) of a
-- customer with orders, as changes.score_state and plan_write compute them.
local level_at = {}  -- thresholds: recency days -> #{cut < days}
local function score(last, orders, spend)
  local days = math.floor((as_of - last) / DAY)
  if days < 0 then days = 0 end
  local r, f, m, due
  if quintiles then
    r, f, m = 1 + below(rc, -days), 1 + below(fc, orders), 1 + below(mc, spend)
  else
    local level = level_at[days]
    if level == nil then
      level = below(rc, days)
      level_at[days] = level
    end
    r, f, m = 5 - level, 1 + upto(fc, orders), 1 + upto(mc, spend)
    if level < 4 then due = last + (rc[level + 1] + 1) * DAY end
  end
  return r, f, m, days, (r - 1) * 25 + (f - 1) * 5 + m, due
end

-- Score one customer as changes.plan_write does, and return its new packed profile.
local function rescore(t, cid, bucket)
  examined = examined + 1
  local scores, segment, due = '', '', -1
  if t.last and t.orders > 0 then
    local r, f, m, days, index, due_ms = score(t.last, t.orders, t.spend)
    segment = segments[index]
    scores = rfm_text(index, r, f, m) .. enc(days)
    due = due_ms or -1
  end
  local previous = name_of(codes_key, t.seg)
  if segment ~= previous then
    t.seg = code_of(codes_key, segment)
    t.seq = t.seq + 1
    announce(cid, t.partition, previous, segment, enc(t.seq), scores, enc(t.orders), enc(t.spend))
  end
  t.scores = scores
  t.as_of = scores ~= '' and as_of or nil
  set_due(t, due, bucket, cid, due_head, hours_key)
  t.version = t.version + 1
  if any_dirty then redis.call('SREM', dirty_key, cid) end
  return pack_profile(t)
end

-- The usual customer (orders left, its segment's code registered) is
-- rescored on its packed text, to the bytes rescore() + pack_profile() would write, without
-- the table unpack_profile builds: one match, numbers decoded only where scoring needs
-- them, the partition kept as text. Counted with callgrind, a table, nine decodes and a
-- repack cost more than the scoring (tests/integration/test_rescore_in_redis.py compares
-- both routes with the Python route, key for key). nil: take rescore().
local TEXT = '^([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),[^,]*,[^,]*,([^,]*)$'
local as_of_text = enc(as_of)
local function rescore_text(value, cid, bucket)
  local f, l, n, sp, v, p, g, q, due = string.match(value, TEXT)
  if not f or f == '' then return nil end
  local orders, spend, last = dec(n), dec(sp), dec(f) + dec(l)
  if orders <= 0 then return nil end
  local r, fs, m, days, index, due_ms = score(last, orders, spend)
  local segment = segments[index]
  local code, previous = codes[segment], names[g] or (g == '' and '')
  if not code or not previous then return nil end
  local scores = rfm_text(index, r, fs, m) .. enc(days)
  if code ~= g then
    q = enc(dec(q) + 1)
    announce(cid, dec(p), previous, segment, q, scores, n, sp)
  end
  local old_due = dec(due)
  if due_ms ~= old_due then
    list_due(old_due, due_ms, bucket, cid, due_head, hours_key)
    due = enc(due_ms)
  end
  examined = examined + 1
  return f .. ',' .. l .. ',' .. n .. ',' .. sp .. ',' .. enc(dec(v) + 1) .. ',' .. p .. ',' ..
    code .. ',' .. q .. ',' .. scores .. ',' .. as_of_text ..
    ',' .. due
end

-- The text route when it can take the customer, else the general one. Either way the
-- customer is scored now, so no longer dirty.
local function rescore_value(value, cid, bucket)
  local packed = rescore_text(value, cid, bucket)
  if not packed then return rescore(unpack_profile(value), cid, bucket) end
  if any_dirty then redis.call('SREM', dirty_key, cid) end
  return packed
end

local mode = ARGV[6]
local hours, lengths = {}, {}
load_codes(codes_key)  -- rescore_text reads codes and names directly
if mode == 'buckets' then
  for k = 5, #KEYS do
    local key = KEYS[k]
    local bucket = string.match(key, '{(%d+)}$')
    local all = redis.call('HGETALL', key)
    local writes = {}
    for i = 1, #all, 2 do
      local cid, value = all[i], all[i + 1]
      writes[#writes + 1] = cid
      writes[#writes + 1] = rescore_value(value, cid, bucket)
    end
    for i = 1, #writes, 400 do
      redis.call('HSET', key, unpack(writes, i, math.min(i + 399, #writes)))
    end
  end
elseif mode == 'ids' then
  for i = 7, #ARGV do
    local key, cid = KEYS[i - 2], ARGV[i]
    local value = redis.call('HGET', key, cid)
    if value then
      redis.call('HSET', key, cid, rescore_value(value, cid, string.match(key, '{(%d+)}$')))
    end
  end
else  -- 'due': new due times are after as_of, so no list read here needs its entries yet
  -- A customer listed twice is rescored once: its profile is written at once, with a due
  -- time after as_of (or none), so read_due finds it not due at its second entry.
  defer_due_lists()
  hours, lengths = read_due(hours_key, due_head, ARGV[7], as_of, ARGV[8], tonumber(ARGV[9]),
    function(value, bucket, cid, key)
      redis.call('HSET', key, cid, rescore_value(value, cid, bucket))
    end)
  push_due_lists(due_head, hours_key)
end
-- One counter update per segment, zero included: the Python route creates the same fields.
local counts, transitions = {}, {}
local function count(name, by)
  if name ~= '' then counts[name] = (counts[name] or 0) + by end
end
for previous, row in pairs(tally) do
  for segment, n in pairs(row) do
    count(previous, -n)
    count(segment, n)
    transitions[#transitions + 1] = previous
    transitions[#transitions + 1] = segment
    transitions[#transitions + 1] = n
  end
end
for name, by in pairs(counts) do redis.call('HINCRBY', segments_key, name, by) end
return { examined, changes, partitions, transitions, hours, lengths }
