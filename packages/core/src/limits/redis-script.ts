import { createHash } from 'node:crypto'

/**
 * Checks every window, then charges all of them or none, in one round trip.
 * KEYS: one counter per window. ARGV: cost, then amount and window length (ms) per key.
 * Returns { allowed (1|0), used_1, ttl_1, used_2, ttl_2, ... }.
 * A key without an expiry (never written by this script) is treated as empty.
 */
export const HIT_SCRIPT = `
local cost = tonumber(ARGV[1])
local n = #KEYS
local out = {1}
local fresh = {}
for i = 1, n do
  local amount = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1])
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
      redis.call('SET', KEYS[i], cost, 'PX', tonumber(ARGV[2 * i + 1]))
      out[2 * i] = cost
    else
      out[2 * i] = redis.call('INCRBY', KEYS[i], cost)
    end
  end
end
return out
`

export const HIT_SCRIPT_SHA = createHash('sha1').update(HIT_SCRIPT).digest('hex')
