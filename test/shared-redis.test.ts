import { type ChildProcess, spawn } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import type { Server } from 'node:http'
import { type AddressInfo, createServer } from 'node:net'
import { tollgate as expressTollgate, type Gate } from '@tollgate/express'
import fastifyTollgate from '@tollgate/fastify'
import express, { type Express, type RequestHandler } from 'express'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { createClient, type RedisClientType } from 'redis'
import request from 'supertest'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const CI = process.env.CI === 'true'

async function reachable(url: string): Promise<boolean> {
  const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => null, connectTimeout: 2000 })
  probe.on('error', () => {})
  try {
    await probe.connect()
    return (await probe.ping()) === 'PONG'
  } catch {
    return false
  } finally {
    probe.disconnect()
  }
}

const redisUp = await reachable(REDIS_URL)
if (!redisUp && !CI) console.warn(`Redis at ${REDIS_URL} is unreachable: skipping the shared-Redis tests`)
// Under CI the tests run anyway and fail in beforeAll, so a missing Redis cannot pass unnoticed.
const describeRedis = redisUp || CI ? describe : describe.skip

const apps: FastifyInstance[] = []
const servers: Server[] = []
const gates: Gate[] = []

afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()))
  await Promise.all(
    servers.splice(0).map(
      (server) =>
        new Promise<void>((resolve) => {
          server.closeAllConnections()
          server.close(() => resolve())
        }),
    ),
  )
  await Promise.all(gates.splice(0).map((gate) => gate.close()))
})

const ok: RequestHandler = (_req, res) => {
  res.json({ ok: true })
}

type Store = NonNullable<Parameters<typeof expressTollgate>[0]>['store']

interface Client {
  get(path: string, headers?: Record<string, string>): Promise<{ status: number; ratelimit: string | null }>
}

/** A Fastify app on a real socket with `routes` and the plugin over `store`. */
async function fastifyApp(
  options: Parameters<typeof fastifyTollgate>[1],
  routes: (app: FastifyInstance) => void,
): Promise<Client> {
  const app = Fastify()
  apps.push(app)
  await app.register(fastifyTollgate, options)
  routes(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  return {
    async get(path, headers = {}) {
      // A generous bound: a request that hangs while Redis is down fails instead of stalling.
      const res = await fetch(`http://127.0.0.1:${port}${path}`, {
        headers,
        signal: AbortSignal.timeout(10_000),
      })
      await res.arrayBuffer()
      return { status: res.status, ratelimit: res.headers.get('ratelimit') }
    },
  }
}

/** An Express app on a real socket, built by `build` around a gate. */
async function expressApp(
  options: Parameters<typeof expressTollgate>[0],
  build: (app: Express, gate: Gate) => void,
) {
  const gate = expressTollgate(options)
  gates.push(gate)
  const app = express()
  build(app, gate)
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s))
  })
  servers.push(server)
  const { port } = server.address() as AddressInfo
  const client: Client = {
    async get(path, headers = {}) {
      const res = await request(`http://127.0.0.1:${port}`).get(path).set(headers).timeout(10_000)
      return { status: res.status, ratelimit: (res.headers.ratelimit as string | undefined) ?? null }
    },
  }
  return client
}

async function statuses(client: Client, path: string, n: number, headers?: Record<string, string>) {
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push((await client.get(path, headers)).status)
  return out
}

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

describeRedis('two apps sharing one Redis', { timeout: 30_000 }, () => {
  let io: Redis
  let nodeRedis: RedisClientType
  const prefixes: string[] = []

  function uniquePrefix(): string {
    const prefix = `test:${randomUUID()}:`
    prefixes.push(prefix)
    return prefix
  }

  beforeAll(async () => {
    if (!redisUp) throw new Error(`Redis at ${REDIS_URL} is unreachable, and CI=true requires it`)
    io = new Redis(REDIS_URL)
    io.on('error', () => {})
    nodeRedis = createClient({ url: REDIS_URL })
    nodeRedis.on('error', () => {})
    await nodeRedis.connect()
  })

  afterAll(async () => {
    if (io !== undefined) {
      for (const prefix of prefixes) {
        const keys = await io.keys(`${prefix}*`)
        if (keys.length > 0) await io.del(...keys)
      }
      await io.quit()
    }
    if (nodeRedis?.isOpen) await nodeRedis.close()
  })

  it('enforces one limit across a Fastify app (ioredis) and an Express app (redis)', async () => {
    const keyPrefix = uniquePrefix()
    // Both name the same scope, so their counters meet in Redis whatever the routes are called.
    const fast = await fastifyApp({ keyPrefix, store: { redis: io } }, (app) => {
      app.get(
        '/v1/chat',
        { config: { rateLimit: { limits: '4 per minute', scope: 'chat' } } },
        async () => ({}),
      )
    })
    const exp = await expressApp({ keyPrefix, store: { redis: nodeRedis } }, (app, gate) => {
      app.get('/chat', gate.limit('4 per minute', { scope: 'chat' }), ok)
    })
    const seen = [
      await fast.get('/v1/chat'),
      await exp.get('/chat'),
      await fast.get('/v1/chat'),
      await exp.get('/chat'),
    ]
    expect(seen.map((r) => r.status)).toEqual([200, 200, 200, 200])
    expect(seen.map((r) => /;r=(\d+);/.exec(r.ratelimit ?? '')?.[1])).toEqual(['3', '2', '1', '0'])
    expect((await fast.get('/v1/chat')).status).toBe(429)
    expect((await exp.get('/chat')).status).toBe(429)
  })

  it('enforces one limit across two Fastify instances, charging no window on a rejection', async () => {
    const keyPrefix = uniquePrefix()
    const routes = (app: FastifyInstance) => {
      app.get('/a', async () => ({}))
    }
    const options = { keyPrefix, defaultLimits: '10 per hour, 3 per minute', store: { redis: io } }
    const one = await fastifyApp(options, routes)
    const two = await fastifyApp(options, routes)
    expect(await statuses(one, '/a', 2)).toEqual([200, 200])
    expect(await statuses(two, '/a', 3)).toEqual([200, 429, 429])
    expect(await statuses(one, '/a', 1)).toEqual([429])

    const keys = (await io.keys(`${keyPrefix}*`)).sort()
    expect(keys).toHaveLength(2)
    const counts = await Promise.all(keys.map((key) => io.get(key)))
    // The three rejections left the hourly budget at the three requests that passed.
    expect(counts).toEqual(['3', '3'])
  })

  it('enforces one limit across two Express instances, mounted on a path prefix', async () => {
    const keyPrefix = uniquePrefix()
    const build = (app: Express, gate: Gate) => {
      app.use('/api', gate.limit('3 per minute'))
      app.get('/api/a', ok)
      app.get('/api/b', ok)
    }
    const one = await expressApp({ keyPrefix, store: { redis: nodeRedis } }, build)
    const two = await expressApp({ keyPrefix, store: { redis: io } }, build)
    expect(await statuses(one, '/api/a', 1)).toEqual([200])
    expect(await statuses(two, '/api/b', 1)).toEqual([200])
    expect(await statuses(one, '/api/b', 2)).toEqual([200, 429])
    expect(await statuses(two, '/api/a', 1)).toEqual([429])
  })

  it('shares application limits and custom keys through Redis', async () => {
    const keyPrefix = uniquePrefix()
    const keyGenerator = (req: { headers: Record<string, unknown> }) => String(req.headers['x-api-key'])
    const fast = await fastifyApp(
      { keyPrefix, applicationLimits: '3 per minute', keyGenerator, store: { redis: io } },
      (app) => {
        app.get('/a', async () => ({}))
      },
    )
    const exp = await expressApp(
      { keyPrefix, applicationLimits: '3 per minute', keyGenerator, store: { redis: nodeRedis } },
      (app, gate) => {
        app.get('/b', gate.limit(), ok)
      },
    )
    const alice = { 'x-api-key': 'alice' }
    expect(await statuses(fast, '/a', 2, alice)).toEqual([200, 200])
    expect(await statuses(exp, '/b', 2, alice)).toEqual([200, 429])
    expect(await statuses(exp, '/b', 1, { 'x-api-key': 'bob' })).toEqual([200])
  })
})

/** A free TCP port on the loopback interface, for a private redis-server. */
async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

function startRedisServer(port: number): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  return new Promise((resolve, reject) => {
    let output = ''
    child.once('error', reject)
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${output}`)))
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Ready to accept connections')) resolve(child)
    })
  })
}

async function killRedisServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exited
}

const hasRedisServer = await new Promise<boolean>((resolve) => {
  const probe = spawn('redis-server', ['--version'], { stdio: 'ignore' })
  probe.once('error', () => resolve(false))
  probe.once('exit', (code) => resolve(code === 0))
})
if (!hasRedisServer && !CI) console.warn('redis-server is not installed: skipping the Redis outage tests')
const describeOutage = hasRedisServer || CI ? describe : describe.skip

interface OutageClient {
  store: Store
  ready(): boolean
  close(): Promise<void>
}

const clients: Record<string, (port: number) => Promise<OutageClient>> = {
  async ioredis(port) {
    const client = new Redis({ host: '127.0.0.1', port, retryStrategy: () => 50 })
    client.on('error', () => {})
    await until(() => client.status === 'ready', 'ioredis to connect')
    return {
      store: { redis: client, timeoutMs: 1000 },
      ready: () => client.status === 'ready',
      close: async () => client.disconnect(),
    }
  },
  async redis(port) {
    const client = createClient({ socket: { host: '127.0.0.1', port, reconnectStrategy: () => 50 } })
    client.on('error', () => {})
    await client.connect()
    return {
      store: { redis: client, timeoutMs: 1000 },
      ready: () => client.isReady,
      close: async () => client.destroy(),
    }
  },
}

// Each test starts, kills and restarts a server: bounds generous enough for a loaded machine.
describeOutage('a Redis outage', { timeout: 60_000 }, () => {
  let server: ChildProcess | undefined
  let inspector: Redis | undefined
  const opened: OutageClient[] = []

  beforeAll(() => {
    if (!hasRedisServer) throw new Error('redis-server is not installed, and CI=true requires it')
  })

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((client) => client.close()))
    inspector?.disconnect()
    inspector = undefined
    if (server !== undefined) await killRedisServer(server)
    server = undefined
  })

  it.each([
    ['ioredis', 'fastify'],
    ['redis', 'express'],
  ] as const)(
    'keeps a %s-backed %s app answering, logs once, and resumes counting in Redis',
    async (clientName, framework) => {
      // A port of its own, so a server left over by an earlier test cannot answer for this one.
      const port = await freePort()
      server = await startRedisServer(port)
      const client = await clients[clientName]!(port)
      opened.push(client)
      inspector = new Redis({ host: '127.0.0.1', port, retryStrategy: () => 50 })
      inspector.on('error', () => {})
      const logger = { warn: vi.fn(), info: vi.fn() }
      const keyPrefix = `test:${randomUUID()}:`
      const options = {
        keyPrefix,
        logger,
        defaultLimits: '5 per minute',
        store: client.store,
        keyGenerator: (req: { headers: Record<string, unknown> }) => String(req.headers['x-client']),
      }
      const app =
        framework === 'fastify'
          ? await fastifyApp(options, (a) => {
              a.get('/limited', async () => ({}))
            })
          : await expressApp(options, (a, gate) => {
              a.get('/limited', gate.limit(), ok)
            })
      const main = { 'x-client': 'main' }
      const countInRedis = async () => {
        const keys = await inspector!.keys(`${keyPrefix}{main}*`)
        return keys.length === 0 ? 0 : Number(await inspector!.get(keys[0]!))
      }

      expect(await statuses(app, '/limited', 2, main)).toEqual([200, 200])
      expect(await countInRedis()).toBe(2)

      // A request racing the kill must be answered too, whichever path it takes. It uses its
      // own key so that a command replayed after the restart cannot skew the main counts.
      const killed = killRedisServer(server)
      const racer = await app.get('/limited', { 'x-client': 'racer' })
      expect([200, 429]).toContain(racer.status)
      await killed
      await until(() => !client.ready(), 'the client to notice the outage')

      // The insurance limiter starts from zero in this process: five pass, then 429s.
      const during = await statuses(app, '/limited', 8, main)
      expect(during).toEqual([200, 200, 200, 200, 200, 429, 429, 429])
      const outageWarnings = logger.warn.mock.calls.filter(([message]) =>
        String(message).includes('unavailable'),
      )
      expect(outageWarnings).toHaveLength(1)

      server = await startRedisServer(port)
      await until(() => client.ready(), 'the client to reconnect')
      await until(() => inspector!.status === 'ready', 'the inspector to reconnect')
      // While Redis is known down only a probe now and then asks it (backing off up to 5 s):
      // requests of another client until one of them is counted in Redis again.
      await until(async () => {
        await app.get('/limited', { 'x-client': 'probe' })
        return (await inspector!.keys(`${keyPrefix}{probe}*`)).length > 0
      }, 'a probe to find Redis back')

      // The insurance counter is spent, so a 200 here can only come from the fresh Redis.
      const after = await app.get('/limited', main)
      expect(after.status).toBe(200)
      expect(after.ratelimit).toMatch(/;r=4;/)
      await until(() => inspector!.status === 'ready', 'the inspector to reconnect')
      expect(await countInRedis()).toBe(1)
      expect(await statuses(app, '/limited', 2, main)).toEqual([200, 200])
      expect(await countInRedis()).toBe(3)

      expect(
        logger.warn.mock.calls.filter(([message]) => String(message).includes('unavailable')),
      ).toHaveLength(1)
      const recoveries = logger.info.mock.calls.filter(([message]) => String(message).includes('back'))
      expect(recoveries).toHaveLength(1)
    },
  )
})
