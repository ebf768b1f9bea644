-- Prelude of every script that touches customer profiles (state/scripts.py prepends it).
--
-- A profile is one value in its bucket hash (state/keys.py): thirteen comma-separated fields,
-- numbers in base 36 (a leading '-' when negative), '' where there is none:
--   first (epoch ms), last - first, orders, spend (minor units), version, partition,
--   segment code, seq, scores ("rfm" digits then recency days in base 36), as_of,
--   previous segment code, segment since (the as_of of the change that put the customer in
--   its segment: as_of - since, or epoch ms where the profile has no as_of), due (ms)
-- Profiles written before the segment history have eleven fields (no previous segment, no
-- since): they read as unknown ('' and nil), are written in thirteen fields at their next
-- write and hold both from their next segment change.
-- Why so terse: Redis keeps a bucket as a listpack only while every value stays under
-- 64 bytes, and a listpack entry costs its bytes plus about two; this layout is ~54 bytes
-- without the history (the previous segment and since) and ~60 with it. Since is kept
-- relative to as_of because a customer rescored into its segment holds '0' there, not
-- eight digits (tests/integration/test_segment_history.py measures).
-- Segment names are stored once, as codes, in the segment-codes hash ("n:<name>" -> code,
-- "c:<code>" -> name). Python never sees this format: scripts return profiles in the field
-- order of state/reads.py's PROFILE_FIELDS, numbers in decimal.

local HOUR = 3600000
local LAYOUT = '2'

-- Refuse state written in another layout (before buckets: one hash per customer) instead of
-- silently starting over beside it. A store without the marker but with applied offsets
-- was written by such a version.
local function check_layout(layout_key, offsets_key)
  local layout = redis.call('GET', layout_key)
  if layout == LAYOUT then return end
  if layout or redis.call('EXISTS', offsets_key) == 1 then
    error('rfm-stream: the state under ' .. layout_key .. ' was written in layout ' ..
      tostring(layout or 1) .. '; this version reads layout ' .. LAYOUT ..
      ': replay the orders topic into a new RFM_REDIS_PREFIX')
  end
  redis.call('SET', layout_key, LAYOUT)
end
local DIGITS = '0123456789abcdefghijklmnopqrstuvwxyz'
local PROFILE = '^([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*)$'
local PROFILE_BEFORE_HISTORY = '^([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*)$'

-- enc and dec run several times for every profile a script reads or writes, so they avoid
-- what costs most in Redis's Lua (counted with callgrind): a new string per digit (enc
-- builds the bytes in one reused buffer) and decoding the same short text again (counters,
-- partitions, small offsets are memoised).
local BYTES, buffer = {}, {}
for d = 0, 35 do BYTES[d] = string.byte(DIGITS, d + 1) end
local SMALL = {}  -- enc() of 0..4095: versions, partitions, seqs, recency days, codes
local function enc(n)
  if n == nil then return '' end
  local small = n >= 0 and n < 4096
  if small and SMALL[n] then return SMALL[n] end
  local m, i = n, 32
  if n < 0 then m = -n end
  repeat
    local d = m % 36
    i = i - 1
    buffer[i] = BYTES[d]
    m = (m - d) / 36
  until m == 0
  local s = string.char(unpack(buffer, i, 31))
  if n < 0 then return '-' .. s end
  if small then SMALL[n] = s end
  return s
end

local DECODED = {}  -- dec() of texts up to 3 characters
local function dec(s)
  local n = DECODED[s]
  if n then return n end
  if s == nil or s == '' then return nil end
  if string.byte(s, 1) == 45 then  -- '-' (not s < '0': Lua compares strings by locale)
    n = -tonumber(string.sub(s, 2), 36)
  else
    n = tonumber(s, 36)
  end
  if #s <= 3 then DECODED[s] = n end
  return n
end

-- The numbers and text each profile was read from are kept (was_*, text_*) so that packing
-- it again only encodes the numbers that changed: a quiet rescore changes two or three. One
-- table, not two: every script that reads a profile pays for building it.
local function unpack_profile(value)  -- nil for a customer that does not exist
  if not value then return nil end
  local f, l, n, sp, v, p, g, q, sc, at, pg, since, due = string.match(value, PROFILE)
  if not f then
    f, l, n, sp, v, p, g, q, sc, at, due = string.match(value, PROFILE_BEFORE_HISTORY)
    pg, since = '', ''
  end
  local first, orders, spend, as_of, due_ms = dec(f), dec(n), dec(sp), dec(at), dec(due)
  local last = first and first + dec(l)
  local since_ms = dec(since)
  if since_ms and as_of then since_ms = as_of - since_ms end
  return { first = first, last = last, orders = orders, spend = spend, version = dec(v),
    partition = dec(p), seg = g, seq = dec(q), scores = sc, as_of = as_of, due = due_ms,
    prev = pg, since = since_ms,
    was_first = first, was_last = last, was_orders = orders, was_spend = spend,
    was_as_of = as_of, was_due = due_ms, was_since = since_ms, text_since = since,
    text_f = f, text_l = l, text_n = n, text_sp = sp, text_at = at, text_due = due }
end

local function new_profile()
  return { orders = 0, spend = 0, version = 0, partition = 0, seg = '', seq = 0, scores = '',
    prev = '' }
end

local last_as_of, last_as_of_text  -- a pass writes one as_of to every customer
local function pack_profile(t)
  local same_first = t.first == t.was_first
  local f = same_first and t.text_f or enc(t.first)
  local l = (same_first and t.last == t.was_last) and t.text_l or
    enc(t.first and t.last - t.first)
  local n = (t.orders == t.was_orders) and t.text_n or enc(t.orders)
  local sp = (t.spend == t.was_spend) and t.text_sp or enc(t.spend)
  local at = t.text_at
  if t.as_of == nil then
    at = ''
  elseif t.as_of ~= t.was_as_of then
    if t.as_of ~= last_as_of then last_as_of, last_as_of_text = t.as_of, enc(t.as_of) end
    at = last_as_of_text
  end
  local due = (t.due == t.was_due) and t.text_due or enc(t.due)
  local since
  if t.since == nil then
    since = ''
  elseif t.since == t.was_since and t.as_of == t.was_as_of then
    since = t.text_since
  elseif t.as_of == nil then
    since = enc(t.since)
  else
    since = enc(t.as_of - t.since)
  end
  return f .. ',' .. l .. ',' .. n .. ',' .. sp .. ',' .. enc(t.version) .. ',' ..
    enc(t.partition) .. ',' .. t.seg .. ',' .. enc(t.seq) .. ',' .. t.scores .. ',' .. at ..
    ',' .. t.prev .. ',' .. since .. ',' .. due
end

-- Scores as Python sends and reads them: "r,f,m,recency_days,as_of_ms" or ''.
local function set_scores(t, text)
  if text == '' then
    t.scores, t.as_of = '', nil
    return
  end
  local r, f, m, days, as_of = string.match(text, '^(%d),(%d),(%d),(%d+),(%d+)$')
  t.scores, t.as_of = r .. f .. m .. enc(tonumber(days)), tonumber(as_of)
end

local function scores_text(t)
  if t.scores == '' then return false end
  local s = t.scores
  return string.sub(s, 1, 1) .. ',' .. string.sub(s, 2, 2) .. ',' .. string.sub(s, 3, 3) .. ',' ..
    string.format('%d', dec(string.sub(s, 4))) .. ',' .. string.format('%d', t.as_of)
end

local codes, names  -- the segment-codes hash, read once per script call
local function load_codes(key)
  if codes then return end
  codes, names = {}, {}
  local all = redis.call('HGETALL', key)
  for i = 1, #all, 2 do
    local kind, rest = string.sub(all[i], 1, 2), string.sub(all[i], 3)
    if kind == 'n:' then codes[rest] = all[i + 1] else names[rest] = all[i + 1] end
  end
end

local function code_of(key, name)
  if name == '' then return '' end
  load_codes(key)
  local code = codes[name]
  if not code then
    local n = 1
    for _ in pairs(codes) do n = n + 1 end
    code = enc(n)
    redis.call('HSET', key, 'n:' .. name, code, 'c:' .. code, name)
    codes[name], names[code] = code, name
  end
  return code
end

local function name_of(key, code)
  if code == '' then return '' end
  load_codes(key)
  return names[code] or error('segment code ' .. code .. ' is not in ' .. key)
end

local DECIMAL = {}  -- decimal text of 0..4095: orders, seqs, partitions, recency days
local function decimal(n)
  local s = DECIMAL[n]
  if s then return s end
  s = string.format('%d', n)
  if n >= 0 and n < 4096 then DECIMAL[n] = s end
  return s
end

local function num(n)
  if n == nil then return false end
  return decimal(n)
end

-- A segment change: the customer leaves its segment (code) for another at as_of.
local function enter_segment(t, code, as_of)
  t.prev, t.seg, t.since = t.seg, code, as_of
end

-- Append a profile to a script's reply as PROFILE_FIELDS: f l n $ v p g q s due pg since.
local function reply_profile(out, t, codes_key)
  if not t then
    for _ = 1, 12 do out[#out + 1] = false end
    return
  end
  local seg = name_of(codes_key, t.seg)
  local prev = name_of(codes_key, t.prev)
  out[#out + 1] = num(t.first)
  out[#out + 1] = num(t.last)
  out[#out + 1] = num(t.orders)
  out[#out + 1] = num(t.spend)
  out[#out + 1] = num(t.version)
  out[#out + 1] = num(t.partition)
  out[#out + 1] = seg ~= '' and seg or false
  out[#out + 1] = num(t.seq)
  out[#out + 1] = scores_text(t)
  out[#out + 1] = num(t.due)
  out[#out + 1] = prev ~= '' and prev or false
  out[#out + 1] = num(t.since)
end

-- A due-list entry is only added when the due time moves to another hour: the entry of the
-- old hour stays valid for a due time anywhere in that hour (due passes read the profile).
-- old_ms and due_ms may be nil (no due time).
-- A script that lists many customers collects the entries instead (defer_due_lists) and
-- pushes them with one RPUSH per hour at its end (push_due_lists): the customers of a due
-- pass's call mostly move to the same few hours, and an RPUSH each cost a due pass ~3,900
-- instructions a customer (of ~92,000, callgrind). Every script that writes scores defers
-- them, so its writes all happen at its end (all or nothing: rescore_in_redis.lua).
local pending_due  -- hour -> entries, while deferred
local function list_due(old_ms, due_ms, bucket, cid, due_head, hours_key)
  if due_ms == nil then return end
  local hour = math.floor(due_ms / HOUR)
  if old_ms and math.floor(old_ms / HOUR) == hour then return end
  if pending_due then
    local entries = pending_due[hour]
    if not entries then
      redis.call('LLEN', due_head .. string.format('%d', hour))  -- WRONGTYPE now, not at the end
      entries = {}
      pending_due[hour] = entries
    end
    entries[#entries + 1] = bucket .. ':' .. cid
  elseif redis.call('RPUSH', due_head .. string.format('%d', hour), bucket .. ':' .. cid) == 1 then
    redis.call('ZADD', hours_key, hour, hour)
  end
end

local function defer_due_lists()
  pending_due = {}
end

local function push_due_lists(due_head, hours_key)
  for hour, entries in pairs(pending_due) do
    local key, length = due_head .. string.format('%d', hour), 0
    for i = 1, #entries, 400 do
      length = redis.call('RPUSH', key, unpack(entries, i, math.min(i + 399, #entries)))
    end
    if length == #entries then redis.call('ZADD', hours_key, hour, hour) end
  end
  pending_due = nil
end

-- A packed profile's due time, its last field. The pattern can only match at the last
-- comma, but searched from the start it is tried at every byte of the profile: that cost a
-- due pass ~8,800 more instructions a customer (of ~100,000, counted with callgrind) than
-- searching from near the end. A due time is at most 9 base-36 digits, so the last comma is
-- among the last 10 bytes; the whole value is searched only if it is not.
local function due_of(value)
  local text = string.match(value, ',([^,]*)$', math.max(1, #value - 9)) or
    string.match(value, ',([^,]*)$')
  return dec(text)
end

-- Read the due lists of the hours after `after` ('-inf' at first) up to as_of's hour, whole
-- lists, until `limit` customers were found. An entry counts when the customer's profile
-- still holds a due time in that list's hour (a later purchase moved it, and listed it
-- under another hour) and that time has come: visit(packed profile, bucket, id, bucket key)
-- is called for each such customer. Only the due time is read here (the last field): the
-- visitor unpacks what it needs. Returns the hours read and each list's length then.
-- get(key, cid) reads a profile (default HGET): a script that holds its writes back until
-- its end passes one that sees them, so a customer listed twice is found not due the second
-- time.
local function read_due(hours_key, due_head, profiles_head, as_of, after, limit, visit, get)
  local hours, lengths, found = {}, {}, 0
  local from = after == '-inf' and '-inf' or '(' .. after
  local listed = redis.call('ZRANGEBYSCORE', hours_key, from, math.floor(as_of / HOUR))
  for _, hour in ipairs(listed) do
    if found >= limit then break end
    local list = redis.call('LRANGE', due_head .. hour, 0, -1)
    hours[#hours + 1] = hour
    lengths[#lengths + 1] = #list
    local h = tonumber(hour)
    for _, entry in ipairs(list) do
      local bucket, cid = string.match(entry, '^(%d+):(.*)$')
      local key = profiles_head .. bucket .. '}'
      local value
      if get then value = get(key, cid) else value = redis.call('HGET', key, cid) end
      local due = value and due_of(value)
      if due and due <= as_of and math.floor(due / HOUR) == h then
        found = found + 1
        visit(value, bucket, cid, key)
      end
    end
  end
  return hours, lengths
end
