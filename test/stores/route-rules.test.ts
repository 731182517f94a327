import { randomUUID } from 'node:crypto'
import type { Request, Response } from 'express'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { Redis } from 'ioredis'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { Cleanup } from '../helpers/cleanup.js'
import { type Framework, startExpress, startFastify } from '../helpers/gateways.js'

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const redis = new Redis(REDIS_URL)
afterAll(() => redis.quit())
const cleanup = new Cleanup()
afterEach(() => cleanup.run())

type Store = 'memory' | 'Redis'

interface Answer {
  status: number
}

/** A request as both frameworks' handlers read it: the method and one header. */
interface Incoming {
  method: string
  headers: Record<string, string | string[] | undefined>
}

const failedLogin = (_request: unknown, status: number) => status >= 400
const notServerError = (_request: unknown, status: number) => status < 500
const internal = (request: Incoming) => request.headers['x-internal'] === 'yes'

/** The same routes in either framework; each answers the status its `x-status` header asks for. */
const ROUTES = [
  { url: '/login', methods: ['POST'], limit: { limits: '2 per minute', deductWhen: failedLogin } },
  { url: '/generate', methods: ['POST'], limit: '3 per minute' },
  { url: '/item', methods: ['GET', 'POST'], limit: { limits: '1 per minute', perMethod: true } },
  { url: '/write', methods: ['GET', 'POST'], limit: { limits: '1 per minute', methods: ['POST'] } },
  { url: '/internal', methods: ['GET'], limit: { limits: '1 per minute', skip: internal } },
  { url: '/a', methods: ['GET'], limit: { limits: '2 per minute', scope: 'shared' } },
  { url: '/b', methods: ['GET'], limit: { limits: '2 per minute', scope: 'shared' } },
] as const

function statusOf(request: Incoming): number {
  return Number(request.headers['x-status'] ?? 200)
}

async function start(
  framework: Framework,
  store: Store,
): Promise<(method: string, path: string, headers?: Record<string, string>) => Promise<number>> {
  const options = {
    store: store === 'memory' ? ('memory' as const) : { redis },
    keyPrefix: `tollgate-test:${randomUUID()}:`,
    deductWhen: notServerError,
  }
  let port: number
  if (framework === 'Fastify') {
    ;({ port } = await startFastify(cleanup, options, (app) => {
      for (const route of ROUTES) {
        app.route({
          method: [...route.methods],
          url: route.url,
          config: { rateLimit: route.limit as never },
          handler: async (request: FastifyRequest, reply: FastifyReply) =>
            reply.code(statusOf(request)).send({}),
        })
      }
    }))
  } else {
    ;({ port } = await startExpress(cleanup, options, (app, gate) => {
      for (const route of ROUTES) {
        app.all(route.url, gate.limit(route.limit as never), (req: Request, res: Response) => {
          res.status(statusOf(req)).json({})
        })
      }
    }))
  }
  return async (method, path, headers = {}) => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers })
    await response.arrayBuffer()
    return (response as Answer).status
  }
}

async function series(n: number, send: () => Promise<number>): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < n; i++) out.push(await send())
  return out
}

describe.each([
  ['Fastify', 'memory'],
  ['Fastify', 'Redis'],
  ['Express', 'memory'],
  ['Express', 'Redis'],
] as const)('%s, %s store', (framework, store) => {
  it('deductWhen on a route counts only the responses it names (failed logins)', async () => {
    const send = await start(framework, store)
    expect(await series(4, () => send('POST', '/login'))).toEqual([200, 200, 200, 200])
    expect(await series(3, () => send('POST', '/login', { 'x-status': '401' }))).toEqual([401, 401, 429])
    expect(await send('POST', '/login')).toBe(429)
  })

  it('deductWhen plugin-wide refunds what the route answered 5xx', async () => {
    const send = await start(framework, store)
    expect(await series(5, () => send('POST', '/generate', { 'x-status': '503' }))).toEqual([
      503, 503, 503, 503, 503,
    ])
    expect(await series(4, () => send('POST', '/generate'))).toEqual([200, 200, 200, 429])
  })

  it('perMethod gives each method of one route its own budget', async () => {
    const send = await start(framework, store)
    expect([await send('GET', '/item'), await send('POST', '/item')]).toEqual([200, 200])
    expect([await send('GET', '/item'), await send('POST', '/item')]).toEqual([429, 429])
  })

  it('methods limits only the methods named; the others pass uncounted', async () => {
    const send = await start(framework, store)
    expect(await series(3, () => send('GET', '/write'))).toEqual([200, 200, 200])
    expect([await send('POST', '/write'), await send('POST', '/write')]).toEqual([200, 429])
  })

  it('skip on one route exempts the requests its predicate picks', async () => {
    const send = await start(framework, store)
    expect(await series(3, () => send('GET', '/internal', { 'x-internal': 'yes' }))).toEqual([200, 200, 200])
    expect([await send('GET', '/internal'), await send('GET', '/internal')]).toEqual([200, 429])
  })

  it('routes naming the same scope share one limit', async () => {
    const send = await start(framework, store)
    expect([await send('GET', '/a'), await send('GET', '/b'), await send('GET', '/a')]).toEqual([
      200, 200, 429,
    ])
  })
})
