import { randomUUID } from 'node:crypto'
import http from 'node:http'
import { flexibleStore, MemoryStore, type StoreOption } from '@tollgate/core'
import { tollgate as expressTollgate, type TollgateExpressOptions } from '@tollgate/express'
import fastifyTollgate, { type TollgateFastifyOptions } from '@tollgate/fastify'
import express from 'express'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Cleanup, closeServer } from './helpers/cleanup.js'
import { send } from './helpers/http.js'
import { listen, portOf } from './helpers/ports.js'
import { postgres, uniqueTable } from './stores/databases.js'

// Several gateways in one process, built one after another and side by side, must each count on
// the store they were given: two replicas on one shared store enforce one limit between them.

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

type Framework = 'Fastify' | 'Express'
type Counting = 'requests' | 'tokens'
type Options = TollgateFastifyOptions & TollgateExpressOptions

interface Started {
  readonly port: number
  close(): Promise<void>
}

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

/** What each counting limits, and the `r=` a client sees after each of six requests. */
const COUNTINGS: Record<Counting, { spec: object; remaining: string[] }> = {
  // Four requests a minute.
  requests: { spec: { limits: '4 per minute' }, remaining: ['3', '2', '1', '0', '0', '0'] },
  // Each request reserves `defaultMaxTokens` (100) and keeps it: four requests' worth of tokens.
  tokens: { spec: { tokens: '400 per minute' }, remaining: ['300', '200', '100', '0', '0', '0'] },
}

/** A gateway with one limited route, GET /chat, listening; `close()` may be called early. */
async function start(framework: Framework, options: Options, counting: Counting): Promise<Started> {
  const spec = COUNTINGS[counting].spec
  const all = { defaultMaxTokens: 100, ...options }
  let closing: Promise<void> | undefined
  let started: Started
  if (framework === 'Fastify') {
    const app = Fastify()
    await app.register(fastifyTollgate, all)
    app.get('/chat', { config: { rateLimit: spec as never } }, async () => ({ ok: true }))
    await app.listen({ port: 0, host: '127.0.0.1' })
    started = { port: portOf(app), close: () => (closing ??= app.close()) }
  } else {
    const gate = expressTollgate(all)
    const app = express()
    app.get('/chat', gate.limit(spec as never), (_req, res) => {
      res.json({ ok: true })
    })
    const server = http.createServer(app)
    const port = await listen(server)
    started = {
      port,
      close: () => (closing ??= closeServer(server).then(() => gate.close())),
    }
  }
  cleanup.add(() => started.close(), null)
  return started
}

async function ask(gateway: Started): Promise<{ status: number; remaining: string | undefined }> {
  const answer = await send(gateway.port, { path: '/chat' })
  const ratelimit = answer.headers.ratelimit
  return { status: answer.status, remaining: /;r=(\d+)/.exec(String(ratelimit ?? ''))?.[1] }
}

/** Six requests, alternating between the replicas. */
async function alternate(one: Started, two: Started) {
  const answers = []
  for (let i = 0; i < 6; i++) answers.push(await ask(i % 2 === 0 ? one : two))
  return answers
}

let admin: Redis
const prefixes: string[] = []

beforeAll(async () => {
  admin = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 })
  admin.on('error', () => {})
  // CI=true: a missing Redis fails here rather than passing unnoticed.
  await admin.connect()
})

afterAll(async () => {
  for (const prefix of prefixes) {
    const keys = await admin.keys(`${prefix}*`)
    if (keys.length > 0) await admin.del(...keys)
  }
  await admin.quit()
})

/** A store the replicas share, and how each replica is given it. */
interface SharedStoreKind {
  readonly name: string
  readonly countings: readonly Counting[]
  /** Made once per test; `replica()` is the `store` (and `keyPrefix`) of one replica. */
  make(): { replica(): Options }
}

const STORES: readonly SharedStoreKind[] = [
  {
    name: 'one MemoryStore instance',
    countings: ['requests', 'tokens'],
    make() {
      const store = new MemoryStore()
      cleanup.add(() => store.close(), null)
      return { replica: () => ({ store }) }
    },
  },
  {
    name: 'Redis, a client per replica',
    countings: ['requests', 'tokens'],
    make() {
      const keyPrefix = `test:${randomUUID()}:`
      prefixes.push(keyPrefix)
      return {
        // A client made just before its gateway, as an app does at startup: still connecting
        // when the first request arrives.
        replica: () => {
          const client = new Redis(REDIS_URL)
          client.on('error', () => {})
          cleanup.add(() => client.quit(), null)
          return { keyPrefix, store: { redis: client } }
        },
      }
    },
  },
  {
    // rate-limiter-flexible stores count requests; their token budgets stay in each process
    // (documented, and warned about at startup).
    name: 'rate-limiter-flexible on PostgreSQL, a pool per replica',
    countings: ['requests'],
    make() {
      const tableName = uniqueTable()
      const keyPrefix = `test:${randomUUID()}:`
      const admin = postgres.connect()
      cleanup.add(async () => {
        await admin.drop(tableName)
        await admin.end()
      }, null)
      return {
        replica: () => {
          const pool = postgres.connect()
          cleanup.add(() => pool.end(), null)
          const store: StoreOption = flexibleStore(pool.factory, { tableName })
          return { keyPrefix, store }
        },
      }
    },
  },
]

describe.each(['Fastify', 'Express'] as const)('%s: gateways in one process', (framework) => {
  for (const kind of STORES) {
    describe(kind.name, () => {
      for (const counting of kind.countings) {
        const expected = COUNTINGS[counting].remaining

        it(`two replicas share one ${counting} limit after another gateway served and closed`, async () => {
          const earlier = await start(framework, {}, counting)
          expect((await ask(earlier)).status).toBe(200)
          await earlier.close()
          const shared = kind.make()
          const one = await start(framework, shared.replica(), counting)
          const two = await start(framework, shared.replica(), counting)
          const answers = await alternate(one, two)
          expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 429, 429])
          expect(answers.map((a) => a.remaining)).toEqual(expected)
        })

        it(`two replicas share one ${counting} limit beside a gateway still serving`, async () => {
          const beside = await start(framework, {}, counting)
          expect((await ask(beside)).status).toBe(200)
          const shared = kind.make()
          const one = await start(framework, shared.replica(), counting)
          const two = await start(framework, shared.replica(), counting)
          const first = await alternate(one, two)
          // The gateway beside them counts on its own store, untouched by theirs.
          expect(await ask(beside)).toMatchObject({
            status: 200,
            remaining: counting === 'requests' ? '2' : '200',
          })
          expect(first.map((a) => a.status)).toEqual([200, 200, 200, 200, 429, 429])
          expect(first.map((a) => a.remaining)).toEqual(expected)
        })
      }
    })
  }
})

describe('several tollgate instances in one app, on one MemoryStore', () => {
  const spec = { limits: '4 per minute', tokens: '400 per minute', scope: 'chat' }
  const expected = ['200 3 300', '200 2 200', '200 1 100', '200 0 0', '429 0 undefined', '429 0 undefined']

  async function alternatePaths(port: number): Promise<string[]> {
    const seen: string[] = []
    for (let i = 0; i < 6; i++) {
      const answer = await send(port, { path: i % 2 === 0 ? '/one/chat' : '/two/chat' })
      const fields = [...String(answer.headers.ratelimit ?? '').matchAll(/;r=(\d+)/g)].map((m) => m[1])
      seen.push(`${answer.status} ${fields[0]} ${fields[1]}`)
    }
    return seen
  }

  it('Fastify: two encapsulated contexts, each with the plugin, share requests and tokens', async () => {
    const store = new MemoryStore()
    cleanup.add(() => store.close(), null)
    const app = Fastify()
    cleanup.add(() => app.close(), null)
    for (const prefix of ['/one', '/two']) {
      await app.register(
        async (child) => {
          await child.register(fastifyTollgate, { store, defaultMaxTokens: 100 })
          child.get('/chat', { config: { rateLimit: spec } }, async () => ({ ok: true }))
        },
        { prefix },
      )
    }
    await app.listen({ port: 0, host: '127.0.0.1' })
    expect(await alternatePaths(portOf(app))).toEqual(expected)
  })

  it('Express: two tollgate() gates share requests and tokens', async () => {
    const store = new MemoryStore()
    cleanup.add(() => store.close(), null)
    const app = express()
    for (const path of ['/one/chat', '/two/chat']) {
      const gate = expressTollgate({ store, defaultMaxTokens: 100 })
      cleanup.add(() => gate.close(), null)
      app.get(path, gate.limit(spec), (_req, res) => {
        res.json({ ok: true })
      })
    }
    const server = http.createServer(app)
    const port = await listen(server)
    cleanup.add(() => closeServer(server), null)
    expect(await alternatePaths(port)).toEqual(expected)
  })
})
