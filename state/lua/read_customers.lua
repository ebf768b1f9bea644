-- Read many customers' profiles in one call.
--
-- Why a script: one EVALSHA for a thousand customers costs the client one command to encode
-- instead of a thousand HGETs, and only scripts know the packed profile format.
-- KEYS: 1 segment-codes hash, 2.. each customer's profile bucket; ARGV: 1 order bucket
-- key head, 2.. the customer ids.
-- Returns fifteen fields per customer (false where there is none): twelve in the order of
-- reads.py's PROFILE_FIELDS, then its stored window (state/lua/window.lua) as the last
-- scoring left it: window days, orders, spend.
local codes_key, orders_head = KEYS[1], ARGV[1]
local out = {}
for i = 2, #ARGV do
  local cid, key = ARGV[i], KEYS[i]
  reply_profile(out, unpack_profile(redis.call('HGET', key, cid)), codes_key)
  local w = decode_window(redis.call('HGET', orders_head .. string.match(key, '{(%d+)}$') .. '}',
    cid))
  out[#out + 1] = w and decimal(w.days) or false
  out[#out + 1] = w and num(w.n) or false
  out[#out + 1] = w and num(w.spend) or false
end
return out
