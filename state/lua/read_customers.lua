-- Read many customers' profiles in one call.
--
-- Why a script: one EVALSHA with a thousand keys costs the client one command to encode
-- instead of a thousand HMGETs, which is where a full rescoring pass spent most of its time.
-- KEYS: customer hashes. Returns nine fields per key (nil where missing), in the order of
-- reads.py's PROFILE_FIELDS.
local out = {}
for _, key in ipairs(KEYS) do
  local values = redis.call('HMGET', key, 'f', 'l', 'n', '$', 'v', 'p', 'g', 'q', 's')
  for i = 1, 9 do out[#out + 1] = values[i] end
end
return out
