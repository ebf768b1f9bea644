-- luacheck settings for state/lua (run by `python -m rfm_dev.lualint`, in `make lint`).
-- Redis runs scripts on Lua 5.1: KEYS and ARGV are set per call, redis and cjson are
-- Redis's libraries (unpack is in lua51).
std = "lua51"
globals = {"KEYS", "ARGV"}
read_globals = {"redis", "cjson"}
max_line_length = false
