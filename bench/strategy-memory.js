/**
 * Memory per client key of each limit strategy, in the memory store (heap and array-buffer growth over 100 000 keys)
 * and in Redis (`MEMORY USAGE` of one key). `node --expose-gc bench/strategy-memory.js`; needs the
 * built packages and, for the Redis figures, Redis at REDIS_URL.
 */
import { MemoryStore, RedisStore } from '@tollgate/core'

const KEYS = 100_000
const AMOUNT = 100
const WINDOW_MS = 60_000
const STRATEGIES = ['fixed-window', 'moving-window', 'sliding-window-counter']
// Hits per key: one, a tenth of the amount, and the whole amount (a full moving log).
const FILLS = [1, 10, AMOUNT]

function gc() {
  for (let i = 0; i < 3; i++) globalThis.gc()
}

/** The JS heap plus array buffers (a moving log's timestamps live in a Float64Array's buffer). */
function used() {
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}

function memoryBytesPerKey(strategy, hits) {
  const window = { id: 'w', amount: AMOUNT, windowMs: WINDOW_MS, strategy }
  const keys = Array.from({ length: KEYS }, (_, i) => `198.51.${i >> 8}.${i & 255}-${i}`)
  const store = new MemoryStore({ now: () => 1_000_000_000 })
  gc()
  const before = used()
  for (const key of keys) for (let h = 0; h < hits; h++) store.hit(key, [window], 1)
  gc()
  const after = used()
  store.close()
  return (after - before) / KEYS
}

async function redisBytesPerKey(redis, strategy, hits) {
  const prefix = `tgmem:${process.pid}:`
  const store = new RedisStore({ client: redis, prefix })
  const window = { id: 'w', amount: AMOUNT, windowMs: WINDOW_MS, strategy }
  for (let h = 0; h < hits; h++) await store.hit('client', [window], 1)
  const bytes = await redis.memory('USAGE', `${prefix}{client}:w`)
  await redis.del(`${prefix}{client}:w`)
  return bytes
}

const rows = []
let redis
try {
  const { Redis } = await import('ioredis')
  redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
  })
  await redis.connect()
} catch {
  redis = undefined
}
for (const strategy of STRATEGIES) {
  for (const hits of FILLS) {
    const memory = memoryBytesPerKey(strategy, hits)
    const onRedis = redis ? await redisBytesPerKey(redis, strategy, hits) : undefined
    rows.push(`| ${strategy} | ${hits} | ${Math.round(memory)} | ${onRedis ?? '–'} |`)
  }
}
redis?.disconnect()
console.log(`"${AMOUNT} per minute", ${KEYS} keys for the memory store; Node ${process.version}\n`)
console.log('| strategy | hits in the window | memory store, bytes/key | Redis, bytes/key |')
console.log('| --- | --- | --- | --- |')
for (const row of rows) console.log(row)
