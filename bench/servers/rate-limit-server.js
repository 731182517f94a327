/**
 * One rate-limited app per process, so each variant gets the server core to itself and its CPU time
 * is its own. `node bench/servers/rate-limit-server.js <variant> <key prefix>`; prints {"port":N}.
 *
 * Every variant answers GET /limited with the same small JSON. The limits are far above what a run
 * can send, so no request is ever rejected and only the cost of counting is measured.
 */
import { createServer } from 'node:http'

const [variant = '', prefix = 'tgbench:'] = process.argv.slice(2)
const ONE_WINDOW = { text: '100000000 per hour', max: 100_000_000, windowMs: 3_600_000 }
// flask-limiter's "200 per day, 50 per hour", scaled up so it never rejects.
const TWO_WINDOWS = {
  text: '1000000000 per day, 100000000 per hour',
  day: { max: 1_000_000_000, windowMs: 86_400_000 },
  hour: { max: 100_000_000, windowMs: 3_600_000 },
}
const body = { hello: 'world' }

/** @type {Array<() => Promise<unknown>>} */
const closers = []

async function redisClient() {
  const { Redis } = await import('ioredis')
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { lazyConnect: true })
  await redis.connect()
  closers.push(() => redis.quit())
  return redis
}

/** @param {string} name */
async function fastifyApp(name) {
  const { default: Fastify } = await import('fastify')
  const app = Fastify({ logger: false })
  closers.unshift(() => app.close())
  const handler = async () => body
  const redis = name.endsWith('-redis') ? await redisClient() : undefined

  if (name === 'fastify-bare') {
    app.get('/limited', handler)
  } else if (name.startsWith('fastify-peer-2w')) {
    // @fastify/rate-limit counts one window per registration, and one registration runs its hook once
    // per request, so two windows take two registrations in nested contexts, each with its own store.
    const { default: rateLimit } = await import('@fastify/rate-limit')
    await app.register(async (outer) => {
      await outer.register(rateLimit, {
        ...TWO_WINDOWS.day,
        timeWindow: TWO_WINDOWS.day.windowMs,
        enableDraftSpec: true,
        ...(redis ? { redis, nameSpace: `${prefix}day:` } : {}),
      })
      await outer.register(async (inner) => {
        await inner.register(rateLimit, {
          ...TWO_WINDOWS.hour,
          timeWindow: TWO_WINDOWS.hour.windowMs,
          enableDraftSpec: true,
          ...(redis ? { redis, nameSpace: `${prefix}hour:` } : {}),
        })
        inner.get('/limited', handler)
      })
    })
  } else if (name.startsWith('fastify-peer')) {
    const { default: rateLimit } = await import('@fastify/rate-limit')
    await app.register(rateLimit, {
      max: ONE_WINDOW.max,
      timeWindow: ONE_WINDOW.windowMs,
      // The draft-spec headers are the closest @fastify/rate-limit has to the IETF fields tollgate sends.
      enableDraftSpec: true,
      ...(redis ? { redis, nameSpace: prefix } : {}),
    })
    app.get('/limited', handler)
  } else if (name.startsWith('fastify-tollgate')) {
    const { default: tollgate } = await import('@tollgate/fastify')
    await app.register(tollgate, { store: redis ? { redis } : 'memory', keyPrefix: prefix })
    const limits = name.startsWith('fastify-tollgate-2w') ? TWO_WINDOWS.text : ONE_WINDOW.text
    app.get('/limited', { config: { rateLimit: limits } }, handler)
  } else {
    throw new Error(`unknown variant ${name}`)
  }
  await app.listen({ port: 0, host: '127.0.0.1' })
  return /** @type {import('node:net').AddressInfo} */ (app.server.address()).port
}

/** @param {string} name */
async function expressApp(name) {
  const { default: express } = await import('express')
  const app = express()
  /** @type {import('express').RequestHandler} */
  const handler = (_req, res) => {
    res.json(body)
  }
  const redis = name.endsWith('-redis') ? await redisClient() : undefined

  if (name === 'express-bare') {
    app.get('/limited', handler)
  } else if (name.startsWith('express-peer')) {
    const { rateLimit } = await import('express-rate-limit')
    // express-rate-limit's own Redis store, from the same authors; one per window, as in memory.
    const { RedisStore } = await import('rate-limit-redis')
    /** @param {string} window */
    const redisStore = (window) =>
      new RedisStore({
        // @ts-expect-error ioredis answers the store's commands; its reply type is wider than the store's
        sendCommand: (command, ...args) => redis.call(command, ...args),
        prefix: `${prefix}${window}:`,
      })
    /** @param {{ max: number, windowMs: number }} w @param {string} window */
    const limiter = (w, window) =>
      rateLimit({
        windowMs: w.windowMs,
        limit: w.max,
        standardHeaders: 'draft-8',
        legacyHeaders: false,
        ...(redis ? { store: redisStore(window) } : {}),
      })
    if (name.startsWith('express-peer-2w')) {
      app.get('/limited', limiter(TWO_WINDOWS.day, 'day'), limiter(TWO_WINDOWS.hour, 'hour'), handler)
    } else {
      app.get('/limited', limiter(ONE_WINDOW, 'hour'), handler)
    }
  } else if (name.startsWith('express-tollgate')) {
    const { tollgate } = await import('@tollgate/express')
    const gate = tollgate({ store: redis ? { redis } : 'memory', keyPrefix: prefix })
    closers.push(() => gate.close())
    const limits = name.startsWith('express-tollgate-2w') ? TWO_WINDOWS.text : ONE_WINDOW.text
    app.get('/limited', gate.limit(limits), handler)
  } else {
    throw new Error(`unknown variant ${name}`)
  }
  const server = createServer(app)
  closers.unshift(() => new Promise((resolve) => server.close(resolve)))
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)))
  return /** @type {import('node:net').AddressInfo} */ (server.address()).port
}

async function shutdown() {
  for (const close of closers) await close().catch(() => {})
  process.exit(0)
}
process.once('SIGTERM', shutdown)
process.once('SIGINT', shutdown)

try {
  const port = variant.startsWith('express') ? await expressApp(variant) : await fastifyApp(variant)
  console.log(JSON.stringify({ port }))
} catch (err) {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err)
  process.exit(1)
}
