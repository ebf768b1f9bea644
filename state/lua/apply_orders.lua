-- Apply one batch of order events atomically.
--
-- Why one script per batch: Redis spends ~12 us of CPU per EVALSHA, so a call per event
-- caps throughput; and doing offsets, dedupe, state, counters and dead letters in one
-- atomic step means a crash anywhere leaves either all of a batch applied or none of it.
--
-- All or nothing: Redis does not roll back a script that fails after it has written, so the
-- script reads and computes first (every key it will write is read, or type-checked, on the
-- way) and writes only at the end. A runtime error anywhere in the batch (a key of the wrong
-- type, an order record in no known format, a bug) leaves Redis as it was, and the caller
-- applies the batch again one event at a time to dead-letter only the event that fails
-- (stream/isolation.py). The writes at the end go to keys already known to hold the right
-- type; Redis checks memory before a script starts, not between its writes, so nothing
-- stops them half-way (tests/faults/test_fault_script_error.py).
--
-- KEYS: 1 offsets hash, 2 stats hash, 3 clock string, 4 dirty set, 5 segment-codes hash,
--   6 layout marker, 7 outboxes set (partitions that have an outbox), 8 seq floor (a new
--   customer's change numbers start after it: state/lua/forget.lua), 9 partition clocks
--   (the latest event time applied from each input partition: window.lua's watermark)
-- ARGV[1]: JSON {"topic": str, "outbox": outbox key prefix,
--   "firsts": {partition: first offset of this batch in it},
--   "floors": {partition: offset below which everything is known to be handled},
--   "states": whether to return the touched profiles}
-- ARGV[2..]: per event three slots: descriptor JSON, original value bytes, original key bytes.
--   descriptor for a valid event:
--     [partition, offset, kind, profiles_key, orders_key, customer_id, order_id, amount,
--      occurred_ms, refund_id]   (state/keys.py: the customer's two bucket hashes)
--   (amount and occurred_ms as decimal strings; kind is purchase|refund|cancel)
--   descriptor for an event rejected before the state was read: [partition, offset, "reject", reason, message]
-- Before applying anything, each partition's first offset is checked against the offset after
-- the last one applied (or its floor): a batch that starts later is a gap (events committed to
-- Kafka but not in Redis, e.g. after Redis lost its last second of writes) and nothing is
-- applied: the reply is {"gap", partition, next_expected_offset} and the caller fills it first.
-- Returns {outcomes, touched_ids, clock, states}: outcomes[i] is "applied", "duplicate", "dlq:<reason>"
-- or "redelivered" (an offset an earlier batch already applied: the same event seen again, so
-- it is counted apart and not as a new input event);
-- touched_ids are the customers whose state changed (also added to the dirty set).

local offsets_key, stats_key, clock_key, dirty_key, codes_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local outboxes_key, seq_floor_key, partition_clocks_key = KEYS[7], KEYS[8], KEYS[9]
check_layout(KEYS[6], offsets_key)
-- Type checks of the keys only written at the end (WRONGTYPE now, not half-way through).
redis.call('HLEN', stats_key)
redis.call('SCARD', dirty_key)
redis.call('SCARD', outboxes_key)
local meta = cjson.decode(ARGV[1])
local topic, outbox_prefix = meta.topic, meta.outbox
-- Windows (state/lua/window.lua) and the retention: an event whose time is at least the
-- retention before the clock (now, or the event clock as this event arrives) may concern
-- an order record already deleted, so it can no longer be deduplicated: too_old.
local window_days, retention_ms = meta.window_days or 0, meta.retention_ms or 0
local wall_now = meta.now  -- nil: RFM_CLOCK=event, whose retention follows the watermark
local partition_clocks, changed_clocks = {}, {}
do
  local all = redis.call('HGETALL', partition_clocks_key)
  for i = 1, #all, 2 do partition_clocks[all[i]] = tonumber(all[i + 1]) end
end
local function least_clock()
  local least
  for _, t in pairs(partition_clocks) do
    if not least or t < least then least = t end
  end
  return least
end
local mark = least_clock()  -- the watermark, kept up to date as events are applied

local applied_upto = {}   -- partition -> last applied offset (as stored before this batch)
local new_upto = {}
local counts = {}
local outcomes = {}
local touched, touched_list = {}, {}
local clock = tonumber(redis.call('GET', clock_key) or '0')

for partition, first in pairs(meta.firsts or {}) do
  local stored = redis.call('HGET', offsets_key, topic .. ':' .. partition)
  local expected = stored and (tonumber(stored) + 1) or 0
  local floor = (meta.floors or {})[partition]
  if floor and floor > expected then expected = floor end
  if first > expected then
    return { 'gap', tonumber(partition), string.format('%d', expected) }
  end
end

local function count(name) counts[name] = (counts[name] or 0) + 1 end

-- Writes held back until everything is computed: order records by key and field (read
-- through: a later event of the batch sees what an earlier one staged), dead letters in order.
local staged_orders, staged_keys = {}, {}
local dead_letters, outboxes = {}, {}
local window_drops = {}  -- {bucket, cid}: windows of other settings, deleted at the end

local function dead_letter(partition, offset, reason, message, value, key)
  local headers = cjson.encode({
    ['rfm.dlq.reason'] = reason, ['rfm.dlq.message'] = message,
    ['rfm.dlq.source'] = topic .. ':' .. partition .. ':' .. string.format('%d', offset) })
  local box = outbox_prefix .. partition
  if not outboxes[box] then
    redis.call('XLEN', box)  -- a key of the wrong type fails here, before any write
    outboxes[box] = partition
  end
  dead_letters[#dead_letters + 1] = { box, key, value, headers }
  count('dlq:' .. reason)
  return 'dlq:' .. reason
end

local function order_get(okey, ofield)
  local staged = staged_orders[okey]
  local value = staged and staged[ofield]
  if value then return value end
  return redis.call('HGET', okey, ofield)
end

local function order_set(okey, ofield, value)
  local staged = staged_orders[okey]
  if not staged then
    staged = {}
    staged_orders[okey] = staged
    staged_keys[#staged_keys + 1] = okey
  end
  staged[ofield] = value
end

local seq_floor  -- read once, when the batch creates its first customer
local function new_customer()
  local t = new_profile()
  if not seq_floor then seq_floor = tonumber(redis.call('GET', seq_floor_key) or '0') end
  t.seq = seq_floor
  return t
end

-- Profiles read in this batch, written back once at the end, with their windows:
-- cid -> {key, profile, order bucket, window}. The window is false where none is stored:
-- a customer all of whose live orders are in its window keeps none (its window is its
-- lifetime; the scoring step derives it, state/lua/window.lua), nor does one from before
-- windows (the scoring step folds the records). A window of another length (the setting
-- changed) is deleted: kept, it would miss the events applied meanwhile.
local function profile(pkey, cid, okey)
  local held = touched[cid]
  if held then return held.t, held.w end
  local t = unpack_profile(redis.call('HGET', pkey, cid))
  local stored = order_get(okey, cid)
  local w = false
  if stored then
    w = decode_window(stored)
    if window_days == 0 or w.days ~= window_days then
      window_drops[#window_drops + 1] = { okey, cid }
      w = false
    end
  end
  held = { key = pkey, t = t or new_customer(), okey = okey, w = w }
  touched[cid] = held
  return held.t, held.w
end

local function touch(cid, partition)
  local held = touched[cid]
  held.t.version = held.t.version + 1
  held.t.partition = partition
  if not held.listed then
    held.listed = true
    touched_list[#touched_list + 1] = cid
  end
end

-- Order records and windows: state/lua/window.lua.
local function parse_order(okey, ofield)
  local rec = order_get(okey, ofield)
  if not rec then return nil end
  return decode_order(rec)
end

-- Recompute first/last purchase from the orders still counting, after a cancel of the
-- first or the last. Only the end that moves is recomputed: records past the retention may
-- be deleted, but always the oldest ones, so the records left hold the new first; the new
-- last is among them or is the latest deleted one, which the window keeps (window.lua).
local function recompute_span(okey, cid, t, cancelled_ts)
  local head = cid .. '\31'
  local records = {}
  local all = redis.call('HGETALL', okey)
  for i = 1, #all, 2 do records[all[i]] = all[i + 1] end
  for field, value in pairs(staged_orders[okey] or {}) do records[field] = value end
  local first, last
  for field, value in pairs(records) do
    if string.sub(field, 1, #head) == head and not string.find(field, '\31', #head + 1, true) then
      local o = decode_order(value)
      if o.status == 'A' then
        if not first or o.ts < first then first = o.ts end
        if not last or o.ts > last then last = o.ts end
      end
    end
  end
  if t.first == cancelled_ts then t.first = first end
  if t.last == cancelled_ts then
    local w = decode_window(order_get(okey, cid))
    local pruned = w and w.pruned
    if pruned and (not last or pruned > last) then last = pruned end
    t.last = last
  end
end

local function purchase(d, partition)
  local pkey, okey, cid, order_id, amount, ts = d[4], d[5], d[6], d[7], tonumber(d[8]), tonumber(d[9])
  local ofield = cid .. '\31' .. order_id
  if order_get(okey, ofield) then return 'duplicate' end
  order_set(okey, ofield, order_record(ts, amount, 0, 'A'))
  local t, w = profile(pkey, cid, okey)
  t.orders = t.orders + 1
  t.spend = t.spend + amount
  if not t.first or ts < t.first then t.first = ts end
  if not t.last or ts > t.last then t.last = ts end
  if w then window_add(w, ts, amount, retention_ms) end
  touch(cid, partition)
  return 'applied'
end

local function refund(d, partition, offset, value, key)
  local pkey, okey, cid, order_id, amount, refund_id = d[4], d[5], d[6], d[7], tonumber(d[8]), d[10]
  local ofield = cid .. '\31' .. order_id
  local o = parse_order(okey, ofield)
  if not o then
    return dead_letter(partition, offset, 'unknown_order',
      'refund of order ' .. order_id .. ' which this customer never purchased', value, key)
  end
  if o.status == 'C' then
    return dead_letter(partition, offset, 'order_cancelled',
      'refund of order ' .. order_id .. ' which was cancelled', value, key)
  end
  if refund_id == '' then refund_id = d[9] .. ':' .. d[8] end
  local rfield = ofield .. '\31' .. refund_id
  if order_get(okey, rfield) then return 'duplicate' end
  order_set(okey, rfield, '1')
  local effective = math.min(amount, o.amount - o.refunded)
  order_set(okey, ofield, order_record(o.ts, o.amount, o.refunded + effective, 'A'))
  local t, w = profile(pkey, cid, okey)
  t.spend = t.spend - effective
  if w then window_refund(w, o.ts, effective) end
  touch(cid, partition)
  return 'applied'
end

local function cancel(d, partition, offset, value, key)
  local pkey, okey, cid, order_id = d[4], d[5], d[6], d[7]
  local ofield = cid .. '\31' .. order_id
  local o = parse_order(okey, ofield)
  if not o then
    return dead_letter(partition, offset, 'unknown_order',
      'cancel of order ' .. order_id .. ' which this customer never purchased', value, key)
  end
  if o.status == 'C' then return 'duplicate' end
  order_set(okey, ofield, order_record(o.ts, o.amount, o.refunded, 'C'))
  local t, w = profile(pkey, cid, okey)
  t.orders = t.orders - 1
  t.spend = t.spend - (o.amount - o.refunded)
  if w then window_cancel(w, o.ts, o.amount - o.refunded) end
  if t.first == o.ts or t.last == o.ts then recompute_span(okey, cid, t, o.ts) end
  touch(cid, partition)
  return 'applied'
end

for i = 2, #ARGV, 3 do
  local d = cjson.decode(ARGV[i])
  local value, key = ARGV[i + 1], ARGV[i + 2]
  local partition, offset = d[1], d[2]
  local pfield = topic .. ':' .. partition
  if applied_upto[partition] == nil then
    applied_upto[partition] = tonumber(redis.call('HGET', offsets_key, pfield) or '-1')
  end
  local outcome
  if offset > applied_upto[partition] and d[3] ~= 'reject' then
    -- A partition's clock is the latest valid event time it delivered, whatever became of
    -- the event; its first event counts before it is judged, so never finds itself too old.
    local t, own = tonumber(d[9]), pfield
    local was = partition_clocks[own]
    if not was or t > was then
      partition_clocks[own], changed_clocks[own] = t, t
      if not was or was == mark then mark = least_clock() end
    end
  end
  if offset <= applied_upto[partition] then
    outcome = 'redelivered'  -- this offset was applied by an earlier batch: not a new event
  elseif d[3] == 'reject' then
    outcome = dead_letter(partition, offset, d[4], d[5], value, key)
  elseif retention_ms > 0 and (wall_now or mark) and
      (wall_now or mark) - tonumber(d[9]) >= retention_ms then
    outcome = dead_letter(partition, offset, 'too_old', 'occurred_at is ' ..
      string.format('%d', math.floor(((wall_now or mark) - tonumber(d[9])) / 86400000)) ..
      ' days before the clock, beyond the order retention of ' ..
      string.format('%d', retention_ms / 86400000) .. ' days: it can no longer be deduplicated',
      value, key)
  elseif d[3] == 'reject' then
    outcome = dead_letter(partition, offset, d[4], d[5], value, key)
  elseif d[3] == 'purchase' then
    outcome = purchase(d, partition)
  elseif d[3] == 'refund' then
    outcome = refund(d, partition, offset, value, key)
  elseif d[3] == 'cancel' then
    outcome = cancel(d, partition, offset, value, key)
  else
    outcome = dead_letter(partition, offset, 'internal_error', 'unknown kind ' .. tostring(d[3]), value, key)
  end
  if outcome == 'applied' then
    local t = tonumber(d[9])
    if t > clock then clock = t end
  end
  if outcome == 'applied' or outcome == 'duplicate' or outcome == 'redelivered' then
    count(outcome)
  end
  outcomes[#outcomes + 1] = outcome
  if new_upto[partition] == nil or offset > new_upto[partition] then new_upto[partition] = offset end
end

-- Everything is known: write it. The windows go with the order records.
for _, cid in ipairs(touched_list) do
  local held = touched[cid]
  if held.w then order_set(held.okey, cid, window_text(held.w)) end
end
for _, drop in ipairs(window_drops) do redis.call('HDEL', drop[1], drop[2]) end
for _, okey in ipairs(staged_keys) do
  local fields = {}
  for field, value in pairs(staged_orders[okey]) do
    fields[#fields + 1] = field
    fields[#fields + 1] = value
  end
  redis.call('HSET', okey, unpack(fields))
end
for _, d in ipairs(dead_letters) do
  redis.call('XADD', d[1], '*', 't', 'dlq', 'k', d[2], 'v', d[3], 'h', d[4])
end
for _, partition in pairs(outboxes) do redis.call('SADD', outboxes_key, partition) end
for partition, offset in pairs(new_upto) do
  if offset > applied_upto[partition] then
    redis.call('HSET', offsets_key, topic .. ':' .. partition, string.format('%d', offset))
  end
end
for name, n in pairs(counts) do redis.call('HINCRBY', stats_key, name, n) end
for field, t in pairs(changed_clocks) do
  redis.call('HSET', partition_clocks_key, field, string.format('%d', t))
end
if #touched_list > 0 then
  for i = 1, #touched_list, 500 do
    redis.call('SADD', dirty_key, unpack(touched_list, i, math.min(i + 499, #touched_list)))
  end
  redis.call('SET', clock_key, string.format('%d', clock))
end
-- Write each touched profile once, and return them so the caller scores them without
-- reading them back: twelve fields each, in the order of reads.py's PROFILE_FIELDS.
local states = {}
for _, cid in ipairs(touched_list) do
  local held = touched[cid]
  redis.call('HSET', held.key, cid, pack_profile(held.t))
  if meta.states then reply_profile(states, held.t, codes_key) end
end
return { outcomes, touched_list, string.format('%d', clock), states }
