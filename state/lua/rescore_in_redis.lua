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
-- All or nothing, customer by customer: each customer is scored into local values first
-- (under pcall), and only a customer scored without error joins the writes, which are all
-- made at the end, to keys already read or type-checked. A customer whose state trips the
-- script (a profile in no known format, a bug on an unforeseen value) is skipped, left as
-- it was and reported (its due list is dropped as usual: a full pass or its next order
-- tries it again); a key of the wrong type where the call
-- writes fails the whole call before anything is written (tests/integration/
-- test_script_errors.py).
--
-- KEYS: 1 dirty set, 2 due-hours zset, 3 segment-codes hash, 4 segments hash,
--       5 outboxes set, 6.. profile buckets
-- ARGV: 1 as_of ms (decimal text), 2 due list key head, 3 outbox key prefix, 4 cause,
--       5 JSON {"kind": "thresholds"|"quintiles", "r": [4], "f": [4], "m": [4],
--               "segments": [125 names, index (r-1)*25 + (f-1)*5 + (m-1)],
--               "currency": code, "exponent": minor-unit digits,
--               "window_days": days (0: every order), "retention_ms": ms (0: forever)}
--       6 JSON {"orders_head": order bucket key up to the bucket number,
--               "prune_before": order records at or before it are deleted (null: none),
--               "watermark_key": with RFM_CLOCK=event, prune by the watermark instead,
--               "announce": queue a change even where the segment stays}
--       7 "buckets": every customer of each bucket of KEYS (a full pass), or
--         "ids": the customers ARGV[8..], KEYS[6..] their buckets (after orders), or
--         "due": the due customers of the due lists (a due pass; see read_due in
--         profile.lua), then 8 profile key head, 9 lists after this hour, 10 about how many
-- F and M count the customer's window (state/lua/window.lua): the stored one where it
-- answers for as_of, else folded again from the order records, which also deletes the
-- records past the retention. A full pass folds every bucket's records (one read a bucket):
-- `rfm-stream rescore` re-derives every window, e.g. after the window setting changed.
-- Returns {customers examined, segment changes, partitions whose outbox got one,
-- transitions as previous, new, how many triples ('' for none), due hours read, each list's
-- length, customers that could not be scored}.
local dirty_key, hours_key, codes_key, segments_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local outboxes_key = KEYS[5]
local FIRST_BUCKET = 6
local as_of, due_head, outbox_prefix = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local cause = ARGV[4]
local spec = cjson.decode(ARGV[5])
local quintiles = spec.kind == 'quintiles'
local rc, fc, mc, segments = spec.r, spec.f, spec.m, spec.segments
local window_days, retention_ms = spec.window_days or 0, spec.retention_ms or 0
local call = cjson.decode(ARGV[6])
local orders_head, announce = call.orders_head, call.announce
local prune_before = call.prune_before
if prune_before == cjson.null then prune_before = nil end
if call.watermark_key and retention_ms > 0 then
  local mark = watermark(call.watermark_key)
  prune_before = mark and mark - retention_ms
end
-- Never past as_of's own horizon: a pass scoring as of a time the watermark has since passed
-- (the order path goes on while a pass runs) must not delete records its windows count.
if prune_before and prune_before > as_of - retention_ms then prune_before = as_of - retention_ms end
local prune_lag = prune_before and math.max(0, as_of - prune_before - retention_ms) or 0
local any_dirty = redis.call('SCARD', dirty_key) > 0
-- Type checks of the keys only written at the end.
redis.call('ZCARD', hours_key)
redis.call('HLEN', segments_key)
redis.call('SCARD', outboxes_key)
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

-- Writes held back until the end: profiles by key (read through by the due route), change
-- records in order, customers no longer dirty. Segment changes are tallied by previous and
-- new segment: the reply and the segment counters are built from the tally at the end.
local staged, staged_keys = {}, {}
local changes_out, clean = {}, {}
-- Window writes: order bucket -> {cid -> window text}, and the order records to delete.
local window_writes, window_keys, drops = {}, {}, {}
local examined, changes, partitions, tally, failed, failed_seen = 0, 0, {}, {}, {}, {}

local function staged_get(key, cid)
  local held = staged[key]
  local value = held and held[cid]
  if value then return value end
  return redis.call('HGET', key, cid)
end

-- A segment change, as write_scores.lua records the one plan_write makes: the change record
-- for the partition's outbox (change_events.change_record: numbers in base 36 as the profile
-- holds them, so the text route copies them; the part every change of this call shares
-- joined once). scores is '' for a customer with no order left.
local record_tail = ',' .. string.format('%d', spec.exponent) .. ',' .. spec.currency .. ',' ..
  ARGV[1] .. ',' .. cause
local days_text = ',' .. string.format('%d', window_days)
-- since, first, last and profile_previous as change_events.change_record has them.
local function change_of(cid, partition, previous, segment, seq, scores, orders, spend,
    lifetime_orders, lifetime_spend, since, first, last, profile_previous)
  return { partition, cid, seq .. ',' .. previous .. ',' .. segment .. ',' .. scores .. ',' ..
    orders .. ',' .. spend .. record_tail .. ',' .. lifetime_orders .. ',' .. lifetime_spend ..
    days_text .. ',' .. since .. ',' .. first .. ',' .. last .. ',' .. profile_previous,
    previous, segment }
end

-- R, F, M, the segment table index and the due time (nil when R can drop no further) of a
-- customer with orders, as changes.score_state and plan_write compute them. orders and
-- spend are the window's; with no order in the window F and M are 1, whatever the cuts.
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
  if orders == 0 then f, m = 1, 1 end
  return r, f, m, days, (r - 1) * 25 + (f - 1) * 5 + m, due
end

-- Score one customer as changes.plan_write does: its new packed profile, its change (or
-- nil) and its due time before and after. Writes nothing.
local function rescore(t, cid, w)
  local scores, segment = '', ''
  local due
  local orders, spend = t.orders, t.spend
  if w then orders, spend = w.n, w.spend end
  if t.last and t.orders > 0 then
    local r, f, m, days, index, due_ms = score(t.last, orders, spend)
    segment = segments[index]
    scores = rfm_text(index, r, f, m) .. enc(days)
    due = earlier(due_ms, w and w.due)
  else
    due = w and w.due  -- records left to delete at the retention
  end
  local previous = name_of(codes_key, t.seg)
  local change
  if segment ~= previous or announce then
    -- An announcement of the same segment carries when it was entered ('?': unknown, a
    -- profile from before the history); a change entered it at as_of ('').
    local since, profile_previous = '', ''
    if segment ~= previous then
      enter_segment(t, code_of(codes_key, segment), as_of)
    else
      since = t.since and enc(t.since) or '?'
      profile_previous = name_of(codes_key, t.prev)
    end
    t.seq = t.seq + 1
    local first, last = '', ''
    if t.first then first, last = enc(t.first), enc(t.last - t.first) end
    change = change_of(cid, t.partition, previous, segment, enc(t.seq), scores, enc(orders),
      enc(spend), enc(t.orders), enc(t.spend), since, first, last, profile_previous)
  end
  local old_due = t.due
  t.scores = scores
  t.as_of = scores ~= '' and as_of or nil
  t.due = due
  t.version = t.version + 1
  return pack_profile(t), change, old_due, due
end

-- The usual customer (orders left, its segment's code registered) is
-- rescored on its packed text, to the bytes rescore() + pack_profile() would write, without
-- the table unpack_profile builds: one match, numbers decoded only where scoring needs
-- them, the partition kept as text. Counted with callgrind, a table, nine decodes and a
-- repack cost more than the scoring (tests/integration/test_rescore_in_redis.py compares
-- both routes with the Python route, key for key). nil: take rescore().
local TEXT =
  '^([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),[^,]*,([^,]*),([^,]*),([^,]*),([^,]*)$'
local as_of_text = enc(as_of)
local function rescore_text(value, cid, w)
  if announce then return nil end
  local f, l, n, sp, v, p, g, q, at, pg, since, due = string.match(value, TEXT)
  if not f or f == '' then return nil end  -- no orders, or a profile before the history
  local lifetime_orders, last = dec(n), dec(f) + dec(l)
  if lifetime_orders <= 0 then return nil end
  local orders, spend, wn, wsp = lifetime_orders, dec(sp), n, sp
  if w then orders, spend, wn, wsp = w.n, w.spend, enc(w.n), enc(w.spend) end
  local r, fs, m, days, index, due_ms = score(last, orders, spend)
  due_ms = earlier(due_ms, w and w.due)
  local segment = segments[index]
  local code, previous = codes[segment], names[g] or (g == '' and '')
  if not code or not previous then return nil end
  local scores = rfm_text(index, r, fs, m) .. enc(days)
  local change
  if code ~= g then
    q = enc(dec(q) + 1)
    change = change_of(cid, dec(p), previous, segment, q, scores, wn, wsp, n, sp, '', f, l, '')
    pg, since = g, '0'  -- entered at as_of: as_of - since is 0
  elseif since ~= '' and at ~= as_of_text then  -- since is kept relative to as_of
    local since_ms = dec(since)
    if at ~= '' then since_ms = dec(at) - since_ms end
    since = enc(as_of - since_ms)
  end
  local old_due = dec(due)
  if due_ms ~= old_due then due = enc(due_ms) end
  return f .. ',' .. l .. ',' .. n .. ',' .. sp .. ',' .. enc(dec(v) + 1) .. ',' .. p .. ',' ..
    code .. ',' .. q .. ',' .. scores .. ',' .. as_of_text .. ',' .. pg .. ',' .. since ..
    ',' .. due, change, old_due, due_ms
end

-- The customer's window at as_of (nil without windows). While every live order is in it
-- (the first purchase is), it is the lifetime's and nothing is stored for it: most
-- customers, ~40 bytes each (docs/performance.md). Else the stored one where it answers,
-- else folded from the order records, the new text and the records to delete staged. A
-- full pass hands in its bucket (`bucket`: {okey}), folded whole once, on first need, so a
-- bucket whose customers all have their window at hand is not read at all.
local HEAD = '^([^,]*),[^,]*,([^,]*),([^,]*),'
local window_ms = window_days * DAY

local function fold_bucket(bucket)
  if bucket.windows == nil then
    local ok, found = pcall(fold_orders, redis.call('HGETALL', bucket.okey), nil, as_of,
      window_days, retention_ms, prune_before, nil, prune_lag)
    -- a record that trips the fold: customer by customer, so only its customer fails
    bucket.windows = ok and found or false
  end
  return bucket.windows or nil
end

local function window_for(okey, cid, bucket, value)
  if window_days == 0 then return nil end
  local f, n, sp = string.match(value, HEAD)
  local first = dec(f)
  if first and as_of - first < window_ms then
    return { n = dec(n), spend = dec(sp), due = first + window_ms }
  end
  local held = window_writes[okey]
  local w = decode_window(held and held[cid] or redis.call('HGET', okey, cid))
  if window_holds(w, window_days, as_of) then return w end
  local windows = bucket and fold_bucket(bucket)
  if not windows then
    windows = fold_orders(redis.call('HGETALL', okey), cid, as_of, window_days, retention_ms,
      prune_before, nil, prune_lag)
  end
  local c = windows[cid]
  local fresh = folded_window(c, window_days, as_of, w)
  if not held then
    held = {}
    window_writes[okey] = held
    window_keys[#window_keys + 1] = okey
  end
  held[cid] = window_text(fresh)
  if c then
    for _, field in ipairs(c.drop) do drops[#drops + 1] = { okey, field } end
  end
  return fresh
end

local function score_value(value, cid, bucket, folded)
  local w = window_for(orders_head .. bucket .. '}', cid, folded, value)
  local packed, change, old_due, due = rescore_text(value, cid, w)
  if packed then return packed, change, old_due, due end
  return rescore(unpack_profile(value), cid, w)
end

-- Score one customer (the text route when it can take it, else the general one) and, if
-- that raised no error, stage what it writes. Either way the customer is examined.
local outboxes = {}  -- partition -> outbox key (type-checked)
local function rescore_value(key, value, cid, bucket, folded)
  if failed_seen[cid] then return end  -- listed twice
  examined = examined + 1
  local marks = #drops
  local ok, packed, change, old_due, due = pcall(score_value, value, cid, bucket, folded)
  if not ok then
    failed[#failed + 1] = cid
    failed_seen[cid] = true
    for i = #drops, marks + 1, -1 do drops[i] = nil end  -- nothing of it is written
    local held = window_writes[orders_head .. bucket .. '}']
    if held then held[cid] = nil end
    return
  end
  local held = staged[key]
  if not held then
    held = {}
    staged[key] = held
    staged_keys[#staged_keys + 1] = key
  end
  held[cid] = packed
  if change then
    local partition = change[1]
    if not outboxes[partition] then
      local box = outbox_prefix .. decimal(partition)
      redis.call('XLEN', box)  -- WRONGTYPE now, not at the end
      outboxes[partition] = box
      partitions[#partitions + 1] = decimal(partition)
    end
    changes_out[#changes_out + 1] = change
    changes = changes + 1
    local row = tally[change[4]]
    if not row then
      row = {}
      tally[change[4]] = row
    end
    row[change[5]] = (row[change[5]] or 0) + 1
  end
  list_due(old_due, due, bucket, cid, due_head, hours_key)
  if any_dirty then clean[#clean + 1] = cid end
end

local mode = ARGV[7]
local hours, lengths = {}, {}
load_codes(codes_key)  -- rescore_text reads codes and names directly
defer_due_lists()
if mode == 'buckets' then
  for k = FIRST_BUCKET, #KEYS do
    local key = KEYS[k]
    local bucket = string.match(key, '{(%d+)}$')
    local all = redis.call('HGETALL', key)
    local folded = window_days > 0 and { okey = orders_head .. bucket .. '}' } or nil
    for i = 1, #all, 2 do rescore_value(key, all[i + 1], all[i], bucket, folded) end
  end
elseif mode == 'ids' then
  for i = 8, #ARGV do
    local key, cid = KEYS[i - 8 + FIRST_BUCKET], ARGV[i]
    local value = staged_get(key, cid)
    if value then rescore_value(key, value, cid, string.match(key, '{(%d+)}$')) end
  end
else  -- 'due': new due times are after as_of, so no list read here needs its entries yet
  -- A customer listed twice is rescored once: reads see the staged profile, whose due time
  -- is after as_of (or none), so read_due finds it not due at its second entry.
  hours, lengths = read_due(hours_key, due_head, ARGV[8], as_of, ARGV[9], tonumber(ARGV[10]),
    function(value, bucket, cid, key) rescore_value(key, value, cid, bucket) end, staged_get)
end

-- Everything is computed: write it.
for _, key in ipairs(staged_keys) do
  local writes = {}
  for cid, packed in pairs(staged[key]) do
    writes[#writes + 1] = cid
    writes[#writes + 1] = packed
  end
  for i = 1, #writes, 400 do
    redis.call('HSET', key, unpack(writes, i, math.min(i + 399, #writes)))
  end
end
for _, okey in ipairs(window_keys) do
  local writes = {}
  for cid, text in pairs(window_writes[okey]) do
    writes[#writes + 1] = cid
    writes[#writes + 1] = text
  end
  for i = 1, #writes, 400 do  -- none left when its customers failed
    redis.call('HSET', okey, unpack(writes, i, math.min(i + 399, #writes)))
  end
end
for _, drop in ipairs(drops) do redis.call('HDEL', drop[1], drop[2]) end
for _, c in ipairs(changes_out) do
  redis.call('XADD', outboxes[c[1]], '*', 't', 'chg', 'k', c[2], 'v', c[3])
end
for _, partition in ipairs(partitions) do redis.call('SADD', outboxes_key, partition) end
push_due_lists(due_head, hours_key)
for i = 1, #clean, 500 do
  redis.call('SREM', dirty_key, unpack(clean, i, math.min(i + 499, #clean)))
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
return { examined, changes, partitions, transitions, hours, lengths, failed }
