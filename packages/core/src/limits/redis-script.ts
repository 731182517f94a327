import { createHash } from 'node:crypto'

/**
 * Checks every window, then charges all of them or none, in one round trip.
 * KEYS: one counter per window. ARGV: cost, deadline (ms on the server's clock), then amount and
 * window length (ms) per key.
 * Returns { allowed (1|0), used_1, ttl_1, used_2, ttl_2, ..., server time in ms }, or
 * { -1, server time } without touching a key when the deadline has passed: by then the caller has
 * given up and answered from its fallback, so counting the call now would count the request twice
 * (a frozen or overloaded Redis runs queued calls when it wakes).
 * A key without an expiry (never written by this script) is treated as empty.
 */
export const HIT_SCRIPT = `
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
if now > tonumber(ARGV[2]) then return {-1, now} end
local cost = tonumber(ARGV[1])
local n = #KEYS
local out = {1}
local fresh = {}
for i = 1, n do
  local amount = tonumber(ARGV[2 * i + 1])
  local window = tonumber(ARGV[2 * i + 2])
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
      redis.call('SET', KEYS[i], cost, 'PX', tonumber(ARGV[2 * i + 2]))
      out[2 * i] = cost
    else
      out[2 * i] = redis.call('INCRBY', KEYS[i], cost)
    end
  end
end
out[2 * n + 2] = now
return out
`

export const HIT_SCRIPT_SHA = createHash('sha1').update(HIT_SCRIPT).digest('hex')
