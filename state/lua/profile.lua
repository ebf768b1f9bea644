-- Prelude of every script that touches customer profiles (state/scripts.py prepends it).
--
-- A profile is one value in its bucket hash (state/keys.py): eleven comma-separated fields,
-- numbers in base 36 (a leading '-' when negative), '' where there is none:
--   first (epoch ms), last - first, orders, spend (minor units), version, partition,
--   segment code, seq, scores ("rfm" digits then recency days in base 36), as_of, due (ms)
-- Why so terse: Redis keeps a bucket as a listpack only while every value stays under
-- 64 bytes, and a listpack entry costs its bytes plus about two; this layout is ~50 bytes.
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
local PROFILE = '^([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*),([^,]*)$'

local function enc(n)
  if n == nil then return '' end
  local negative = n < 0
  if negative then n = -n end
  local s = ''
  repeat
    local d = n % 36
    s = string.sub(DIGITS, d + 1, d + 1) .. s
    n = (n - d) / 36
  until n == 0
  if negative then return '-' .. s end
  return s
end

local function dec(s)
  if s == nil or s == '' then return nil end
  if string.byte(s, 1) == 45 then return -tonumber(string.sub(s, 2), 36) end
  return tonumber(s, 36)
end

-- The text each number was read from is kept (raw) so that packing a profile again only
-- encodes the numbers that changed: a quiet rescore changes two or three of them.
local function unpack_profile(value)  -- nil for a customer that does not exist
  if not value then return nil end
  local f, l, n, sp, v, p, g, q, sc, at, due = string.match(value, PROFILE)
  local first = dec(f)
  local t = { first = first, last = first and first + dec(l), orders = dec(n), spend = dec(sp),
    version = dec(v), partition = dec(p), seg = g, seq = dec(q), scores = sc, as_of = dec(at),
    due = dec(due) }
  t.raw = { first = t.first, last = t.last, orders = t.orders, spend = t.spend,
    as_of = t.as_of, due = t.due, f = f, l = l, n = n, sp = sp, at = at, d = due }
  return t
end

local function new_profile()
  return { orders = 0, spend = 0, version = 0, partition = 0, seg = '', seq = 0, scores = '' }
end

local last_as_of, last_as_of_text  -- a pass writes one as_of to every customer
local function pack_profile(t)
  local raw = t.raw or {}
  local f = (t.first == raw.first) and raw.f or enc(t.first)
  local l = (t.first == raw.first and t.last == raw.last) and raw.l or
    enc(t.first and t.last - t.first)
  local n = (t.orders == raw.orders) and raw.n or enc(t.orders)
  local sp = (t.spend == raw.spend) and raw.sp or enc(t.spend)
  local at = raw.at
  if t.as_of == nil then
    at = ''
  elseif t.as_of ~= raw.as_of then
    if t.as_of ~= last_as_of then last_as_of, last_as_of_text = t.as_of, enc(t.as_of) end
    at = last_as_of_text
  end
  local due = (t.due == raw.due) and raw.d or enc(t.due)
  return f .. ',' .. l .. ',' .. n .. ',' .. sp .. ',' .. enc(t.version) .. ',' ..
    enc(t.partition) .. ',' .. t.seg .. ',' .. enc(t.seq) .. ',' .. t.scores .. ',' .. at ..
    ',' .. due
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

local function num(n)
  if n == nil then return false end
  return string.format('%d', n)
end

-- Append a profile to a script's reply as PROFILE_FIELDS: f l n $ v p g q s due.
local function reply_profile(out, t, codes_key)
  if not t then
    for _ = 1, 10 do out[#out + 1] = false end
    return
  end
  local seg = name_of(codes_key, t.seg)
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
end

-- A due-list entry is only added when the due time moves to another hour: the entry of the
-- old hour stays valid for a due time anywhere in that hour (due passes read the profile).
local function set_due(t, due_ms, bucket, cid, due_head, hours_key)
  local old = t.due
  if due_ms < 0 then t.due = nil return end
  t.due = due_ms
  local hour = math.floor(due_ms / HOUR)
  if old and math.floor(old / HOUR) == hour then return end
  if redis.call('RPUSH', due_head .. string.format('%d', hour), bucket .. ':' .. cid) == 1 then
    redis.call('ZADD', hours_key, hour, hour)
  end
end

-- Read the due lists of the hours after `after` ('-inf' at first) up to as_of's hour, whole
-- lists, until `limit` customers were found. An entry counts when the customer's profile
-- still holds a due time in that list's hour (a later purchase moved it, and listed it
-- under another hour) and that time has come: visit(profile, bucket, id, bucket key) is
-- called for each such customer. Returns the hours read and each list's length then.
local function read_due(hours_key, due_head, profiles_head, as_of, after, limit, visit)
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
      local t = unpack_profile(redis.call('HGET', key, cid))
      if t and t.due and t.due <= as_of and math.floor(t.due / HOUR) == h then
        found = found + 1
        visit(t, bucket, cid, key)
      end
    end
  end
  return hours, lengths
end

-- JSON string as orjson writes it: only '"', '\' and control characters are escaped.
local JSON_ESCAPES = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f',
  ['\n'] = '\\n', ['\r'] = '\\r', ['\t'] = '\\t' }
local function json_escape(c)
  return JSON_ESCAPES[c] or string.format('\\u%04x', string.byte(c))
end
local function json_string(s)
  return '"' .. (string.gsub(s, '[%z\1-\31"\\]', json_escape)) .. '"'
end
