import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tollgate as expressTollgate } from '@tollgate/express'
import fastifyTollgate from '@tollgate/fastify'
import express from 'express'
import Fastify from 'fastify'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { closeServer } from './helpers/http.js'

// Every user callback the limits call, failing in every way it can, through real sockets in both
// adapters: the process lives, the failure is logged once, and the client gets a sane answer.

interface Options {
  defaultLimits?: string
  keyGenerator?: (request: never) => string | Promise<string>
  skip?: (request: never) => boolean | Promise<boolean>
  cost?: number | ((request: never) => number)
  allowList?: (request: never, key: string) => boolean
  onExceeded?: (request: never, decision: never) => unknown
  rejectionBody?: (request: never, decision: never) => unknown
  clientRetryMaxSeconds?: number | false
}

interface App {
  url: string
  close(): Promise<void>
}

type Logger = {
  warn: ReturnType<typeof vi.fn<(message: string) => void>>
  info: ReturnType<typeof vi.fn<(message: string) => void>>
}

const ADAPTERS: Record<string, (options: Options, logger: Logger) => Promise<App>> = {
  async fastify(options, logger) {
    const app = Fastify()
    await app.register(fastifyTollgate, { ...(options as object), logger })
    app.get('/r', async () => ({ ok: true }))
    await app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = app.server.address() as AddressInfo
    return { url: `http://127.0.0.1:${port}/r`, close: () => app.close() }
  },
  async express(options, logger) {
    const gate = expressTollgate({ ...(options as object), logger })
    const app = express()
    app.get('/r', gate.limit(), (_req, res) => {
      res.json({ ok: true })
    })
    const server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s))
    })
    const { port } = server.address() as AddressInfo
    return {
      url: `http://127.0.0.1:${port}/r`,
      close: async () => {
        await Promise.all([closeServer(server), gate.close()])
      },
    }
  },
}

const unhandled: unknown[] = []
const onUnhandled = (reason: unknown) => unhandled.push(reason)
beforeAll(() => {
  process.on('unhandledRejection', onUnhandled)
})
afterAll(() => {
  process.off('unhandledRejection', onUnhandled)
})

async function get(url: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, { headers })
  const text = await response.text()
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : undefined }
}

/** Lets a rejected promise's unhandled-rejection event fire before the test looks. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 20))

describe.each(Object.keys(ADAPTERS))('%s: user callbacks that fail', (adapter) => {
  let app: App | undefined
  let logger: Logger

  async function start(options: Options): Promise<string> {
    logger = { warn: vi.fn<(message: string) => void>(), info: vi.fn<(message: string) => void>() }
    app = await ADAPTERS[adapter]!(options, logger)
    return app.url
  }

  afterEach(async () => {
    await app?.close()
    app = undefined
    unhandled.length = 0
  })

  function loggedOnce(kind: string) {
    const messages = logger.warn.mock.calls.map((call) => String(call[0]))
    expect(messages.filter((m) => m.includes(`the ${kind} callback failed`))).toHaveLength(1)
  }

  it('an async onExceeded whose promise rejects: the 429 is sent, the process lives, logged once', async () => {
    const url = await start({
      defaultLimits: '1 per minute',
      onExceeded: async () => {
        throw new Error('audit log is down')
      },
    })
    expect((await get(url)).status).toBe(200)
    for (let i = 0; i < 3; i++) {
      const rejected = await get(url)
      expect(rejected.status).toBe(429)
      expect(rejected.body.error.code).toBe('rate_limit_exceeded')
    }
    await settle()
    expect(unhandled).toEqual([])
    loggedOnce('onExceeded')
    expect((await get(url)).status).toBe(429)
  })

  it('an onExceeded that throws: the 429 is sent anyway', async () => {
    const url = await start({
      defaultLimits: '1 per minute',
      onExceeded: () => {
        throw new Error('boom')
      },
    })
    await get(url)
    expect((await get(url)).status).toBe(429)
    loggedOnce('onExceeded')
  })

  for (const [how, keyGenerator] of [
    [
      'throws',
      () => {
        throw new Error('no user')
      },
    ],
    [
      'rejects',
      async () => {
        throw new Error('no user')
      },
    ],
    ['returns no string', () => undefined as unknown as string],
  ] as const) {
    it(`a keyGenerator that ${how}: 500 JSON, never a shared bucket, logged once`, async () => {
      const url = await start({ defaultLimits: '1 per minute', keyGenerator })
      for (let i = 0; i < 3; i++) {
        const answer = await get(url)
        expect(answer.status).toBe(500)
        expect(answer.body).toEqual({
          error: {
            message: 'The rate limit could not be checked.',
            type: 'server_error',
            code: 'rate_limit_check_failed',
          },
        })
      }
      await settle()
      expect(unhandled).toEqual([])
      loggedOnce('keyGenerator')
    })
  }

  it('a cost function that throws: 500 JSON', async () => {
    const url = await start({
      defaultLimits: '5 per minute',
      cost: () => {
        throw new Error('cannot price')
      },
    })
    const answer = await get(url)
    expect(answer.status).toBe(500)
    expect(answer.body.error.code).toBe('rate_limit_check_failed')
    loggedOnce('cost')
  })

  it('a skip or allowList that fails grants no exemption: the request is counted', async () => {
    const url = await start({
      defaultLimits: '2 per minute',
      skip: async () => {
        throw new Error('flaky')
      },
      allowList: () => {
        throw new Error('flaky')
      },
    })
    expect((await get(url)).status).toBe(200)
    expect((await get(url)).status).toBe(200)
    expect((await get(url)).status).toBe(429)
    loggedOnce('skip')
    loggedOnce('allowList')
  })

  it('a rejectionBody that throws: the default 429 body', async () => {
    const url = await start({
      defaultLimits: '1 per minute',
      rejectionBody: () => {
        throw new Error('template missing')
      },
    })
    await get(url)
    const rejected = await get(url)
    expect(rejected.status).toBe(429)
    expect(rejected.body.error).toMatchObject({ code: 'rate_limit_exceeded', limit: '1 per minute' })
    loggedOnce('rejectionBody')
  })

  it('a cost above the window can never pass: 400 that says so, no Retry-After, nothing charged', async () => {
    const url = await start({
      defaultLimits: '1000 per day, 10 per minute',
      cost: (request: { headers: Record<string, string | undefined> }) =>
        Number(request.headers['x-cost'] ?? 1),
    } as Options)
    const answer = await get(url, { 'x-cost': '11' })
    expect(answer.status).toBe(400)
    expect(answer.body.error).toMatchObject({
      code: 'cost_exceeds_limit',
      cost: 11,
      limit: '10 per minute',
    })
    expect(answer.body.error.message).toMatch(/can never pass/)
    expect(answer.headers.get('retry-after')).toBeNull()
    expect(answer.headers.get('x-should-retry')).toBe('false')
    const next = await get(url, { 'x-cost': '10' })
    expect(next.status).toBe(200)
    expect(next.headers.get('ratelimit')).toBe('"10-per-minute";r=0;t=60')
  })

  it('a long wait tells OpenAI-style clients not to retry; a short one lets them', async () => {
    const url = await start({ defaultLimits: '1 per hour' })
    await get(url)
    const long = await get(url)
    expect(long.status).toBe(429)
    expect(long.headers.get('retry-after')).toBe('3600')
    expect(long.headers.get('x-should-retry')).toBe('false')
    await app!.close()
    const short = await start({ defaultLimits: '1 per 30 seconds' })
    await get(short)
    const soon = await get(short)
    expect(soon.status).toBe(429)
    expect(soon.headers.get('x-should-retry')).toBeNull()
  })
})
