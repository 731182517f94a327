import { createHash } from 'node:crypto'

/**
 * Takes a charge back from every window of a request in one round trip (`deductWhen`).
 * KEYS: one counter per window, as for the hit script. ARGV: cost.
 * A counter without an expiry has ended (or was never written): it is left alone, so a refund
 * never creates a key. A counter never goes below zero; KEEPTTL keeps the window's end.
 */
export const REFUND_SCRIPT = `
local cost = tonumber(ARGV[1])
for i = 1, #KEYS do
  if redis.call('PTTL', KEYS[i]) > 0 then
    local left = redis.call('DECRBY', KEYS[i], cost)
    if left < 0 then redis.call('SET', KEYS[i], 0, 'KEEPTTL') end
  end
end
return 1
`

export const REFUND_SCRIPT_SHA = createHash('sha1').update(REFUND_SCRIPT).digest('hex')
