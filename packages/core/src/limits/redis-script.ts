import { createHash } from 'node:crypto'
import { REPLY_LUA } from './redis-reply.js'

/**
 * Checks every window, then charges all of them or none, in one round trip.
 * KEYS: one counter per window. ARGV[1]: the integers `cost offset time base amount_1 window_1 ...
 * amount_n window_n` in one string: the call's deadline on the server's clock is `base + offset`
 * ms, `time` is 1 when the caller wants the server's time back (else 0), window lengths are in ms.
 * Answers `allowed (1|0) used_1 ttl_1 ... used_n ttl_n [server-time-ms]`, or `-1 server-time-ms`
 * without touching a key when the deadline has passed: by then the caller has given up and
 * answered from its fallback, so counting the call now would count the request twice (a frozen or
 * overloaded Redis runs queued calls when it wakes).
 * A key without an expiry (never written by this script) is treated as empty.
 *
 * The answer is one status string of integers (see `REPLY_LUA`), not an array reply: ioredis
 * decodes each element of an array reply at a cost of thousands of instructions, more than the
 * rest of the store's work per request, while one short string costs about one element; and it
 * scans that string byte by byte, so the server time comes back only when asked for. The
 * arguments are one string for the same reason on the way out (each argument is encoded on its
 * own), and most of that string is the same on every call of a route: the deadline is split into
 * a constant base and a small offset, which turns into text several times faster than a
 * 13-digit number.
 */
export const HIT_SCRIPT = `${REPLY_LUA}
local nums = {}
for v in string.gmatch(ARGV[1], '%S+') do nums[#nums + 1] = tonumber(v) end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
if now > nums[4] + nums[2] then return reply({-1, now}) end
local cost = nums[1]
local n = #KEYS
local out = {1}
local fresh = {}
for i = 1, n do
  local amount = nums[2 * i + 3]
  local window = nums[2 * i + 4]
  local ttl = redis.call('PTTL', KEYS[i])
  local used = 0
  if ttl < 0 then
    fresh[i] = true
    ttl = window
  else
    used = tonumber(redis.call('GET', KEYS[i]) or '0')
  end
  if used + cost > amount then out[1] = 0 end
  out[2 * i] = used
  out[2 * i + 1] = ttl
end
if out[1] == 1 then
  for i = 1, n do
    if fresh[i] then
      redis.call('SET', KEYS[i], cost, 'PX', nums[2 * i + 4])
      out[2 * i] = cost
    else
      out[2 * i] = redis.call('INCRBY', KEYS[i], cost)
    end
  end
end
if nums[3] == 1 then out[2 * n + 2] = now end
return reply(out)
`

export const HIT_SCRIPT_SHA = createHash('sha1').update(HIT_SCRIPT).digest('hex')
