-- Apply one batch of order events atomically.
--
-- Why one script per batch: Redis spends ~12 us of CPU per EVALSHA, so a call per event
-- caps throughput; and doing offsets, dedupe, state, counters and dead letters in one
-- atomic step means a crash anywhere leaves either all of a batch applied or none of it.
--
-- KEYS: 1 offsets hash, 2 stats hash, 3 clock string, 4 dirty set, 5 segment-codes hash,
--   6 layout marker
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
check_layout(KEYS[6], offsets_key)
local meta = cjson.decode(ARGV[1])
local topic, outbox_prefix = meta.topic, meta.outbox

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

local function dead_letter(partition, offset, reason, message, value, key)
  local headers = cjson.encode({
    ['rfm.dlq.reason'] = reason, ['rfm.dlq.message'] = message,
    ['rfm.dlq.source'] = topic .. ':' .. partition .. ':' .. string.format('%d', offset) })
  redis.call('XADD', outbox_prefix .. partition, '*', 't', 'dlq', 'k', key, 'v', value, 'h', headers)
  count('dlq:' .. reason)
  return 'dlq:' .. reason
end

-- Profiles read in this batch, written back once at the end: cid -> {key, profile}.
local function profile(pkey, cid)
  local held = touched[cid]
  if held then return held.t end
  return unpack_profile(redis.call('HGET', pkey, cid)) or new_profile()
end

local function touch(pkey, cid, t, partition)
  t.version = t.version + 1
  t.partition = partition
  if not touched[cid] then
    touched[cid] = { key = pkey, t = t }
    touched_list[#touched_list + 1] = cid
  end
end

-- An order record, field "<customer>\31<order>": "ts,amount" while it counts in full, else
-- "ts,amount,refunded,status" (numbers in base 36, status A counts, C cancelled). Refunds
-- are marked under "<customer>\31<order>\31<refund>": ids hold no control characters.
local function decode_order(rec)
  local ts, amt, rest = string.match(rec, '^([^,]*),([^,]*)(.*)$')
  local refunded, status = 0, 'A'
  if rest ~= '' then
    local r, st = string.match(rest, '^,([^,]*),(%a)$')
    refunded, status = dec(r), st
  end
  return { ts = dec(ts), amount = dec(amt), refunded = refunded, status = status }
end

local function parse_order(okey, ofield)
  local rec = redis.call('HGET', okey, ofield)
  if not rec then return nil end
  return decode_order(rec)
end

local function order_record(ts, amount, refunded, status)
  if refunded == 0 and status == 'A' then return enc(ts) .. ',' .. enc(amount) end
  return enc(ts) .. ',' .. enc(amount) .. ',' .. enc(refunded) .. ',' .. status
end

-- Recompute first/last purchase from the orders still counting, after a cancel.
local function recompute_span(okey, cid, t)
  local head = cid .. '\31'
  local all = redis.call('HGETALL', okey)
  local first, last
  for i = 1, #all, 2 do
    local field = all[i]
    if string.sub(field, 1, #head) == head and not string.find(field, '\31', #head + 1, true) then
      local o = decode_order(all[i + 1])
      if o.status == 'A' then
        if not first or o.ts < first then first = o.ts end
        if not last or o.ts > last then last = o.ts end
      end
    end
  end
  t.first, t.last = first, last
end

local function purchase(d, partition)
  local pkey, okey, cid, order_id, amount, ts = d[4], d[5], d[6], d[7], tonumber(d[8]), tonumber(d[9])
  if redis.call('HSETNX', okey, cid .. '\31' .. order_id, order_record(ts, amount, 0, 'A')) == 0 then
    return 'duplicate'
  end
  local t = profile(pkey, cid)
  t.orders = t.orders + 1
  t.spend = t.spend + amount
  if not t.first or ts < t.first then t.first = ts end
  if not t.last or ts > t.last then t.last = ts end
  touch(pkey, cid, t, partition)
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
  if redis.call('HSETNX', okey, cid .. '\31' .. order_id .. '\31' .. refund_id, '1') == 0 then
    return 'duplicate'
  end
  local effective = math.min(amount, o.amount - o.refunded)
  redis.call('HSET', okey, ofield, order_record(o.ts, o.amount, o.refunded + effective, 'A'))
  local t = profile(pkey, cid)
  t.spend = t.spend - effective
  touch(pkey, cid, t, partition)
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
  redis.call('HSET', okey, ofield, order_record(o.ts, o.amount, o.refunded, 'C'))
  local t = profile(pkey, cid)
  t.orders = t.orders - 1
  t.spend = t.spend - (o.amount - o.refunded)
  if t.first == o.ts or t.last == o.ts then recompute_span(okey, cid, t) end
  touch(pkey, cid, t, partition)
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
  if offset <= applied_upto[partition] then
    outcome = 'redelivered'  -- this offset was applied by an earlier batch: not a new event
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

for partition, offset in pairs(new_upto) do
  if offset > applied_upto[partition] then
    redis.call('HSET', offsets_key, topic .. ':' .. partition, string.format('%d', offset))
  end
end
for name, n in pairs(counts) do redis.call('HINCRBY', stats_key, name, n) end
if #touched_list > 0 then
  for i = 1, #touched_list, 500 do
    redis.call('SADD', dirty_key, unpack(touched_list, i, math.min(i + 499, #touched_list)))
  end
  redis.call('SET', clock_key, string.format('%d', clock))
end
-- Write each touched profile once, and return them so the caller scores them without
-- reading them back: ten fields each, in the order of reads.py's PROFILE_FIELDS.
local states = {}
for _, cid in ipairs(touched_list) do
  local held = touched[cid]
  redis.call('HSET', held.key, cid, pack_profile(held.t))
  if meta.states then reply_profile(states, held.t, codes_key) end
end
return { outcomes, touched_list, string.format('%d', clock), states }
