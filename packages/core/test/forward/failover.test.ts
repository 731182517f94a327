import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { afterEach, describe, expect, it } from 'vitest'
import type { ForwarderOptions } from '../../src/forward/forwarder.js'
import {
  closedPort,
  type GatewayOptions,
  RoundRobinTestBalancer,
  request,
  startBackend,
  startGateway,
  target,
  waitFor,
} from './helpers.js'

const open: Array<{ close(): Promise<void> }> = []
afterEach(async () => {
  await Promise.all(open.splice(0).map((resource) => resource.close()))
})

async function backend(handler: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void) {
  const started = await startBackend(handler)
  open.push(started)
  return started
}

async function gateway(options: ForwarderOptions, gatewayOptions?: GatewayOptions) {
  const started = await startGateway(options, gatewayOptions)
  open.push(started)
  return started
}

function answer(status: number, headers: Record<string, string> = {}) {
  return (_req: IncomingMessage, res: ServerResponse, body: Buffer): void => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers })
    res.end(JSON.stringify({ status, received: body.length }))
  }
}

const resetSocket = (req: IncomingMessage): void => {
  req.socket.destroy()
}

const body = Buffer.from(
  JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi '.repeat(300) }] }),
)

function post(port: number, payload: Buffer = body) {
  return request(port, {
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { 'content-type': 'application/json' },
    body: payload,
  })
}

async function downUrl(): Promise<string> {
  return `http://127.0.0.1:${await closedPort()}`
}

describe('failover on POST', () => {
  it.each([
    ['resets the connection before answering', async () => (await backend(resetSocket)).url, undefined],
    ['refuses the connection', downUrl, undefined],
    ['answers 503', async () => (await backend(answer(503))).url, 503],
    ['answers 502', async () => (await backend(answer(502))).url, 502],
  ])(
    'the first backend %s → the second answers, with the same body',
    async (_name, firstUrl, firstStatus) => {
      const healthy = await backend(answer(200))
      const balancer = new RoundRobinTestBalancer([
        target('first', await firstUrl()),
        target('second', healthy.url),
      ])
      const gw = await gateway({ balancer })

      const res = await post(gw.port)

      expect(res.status).toBe(200)
      expect(healthy.requests).toHaveLength(1)
      expect(healthy.requests[0]!.body.equals(body)).toBe(true)
      expect(await balancer.allFinishedOnce()).toBe(true)
      const [first, second] = balancer.leases.map((lease) => lease.outcomes[0]!)
      expect(first).toMatchObject({ ok: false, status: firstStatus })
      if (firstStatus === undefined) expect(first!.error).toBeInstanceOf(Error)
      expect(second).toMatchObject({ ok: true, status: 200 })
    },
  )

  it('429 with Retry-After → the next backend answers; the cool-down is reported', async () => {
    const full = await backend(answer(429, { 'retry-after': '7' }))
    const healthy = await backend(answer(200))
    const balancer = new RoundRobinTestBalancer([target('full', full.url), target('healthy', healthy.url)])
    const gw = await gateway({ balancer }, { preRead: true })

    const res = await post(gw.port)

    expect(res.status).toBe(200)
    expect(full.requests[0]!.body.equals(body)).toBe(true)
    expect(healthy.requests[0]!.body.equals(body)).toBe(true)
    expect(await balancer.allFinishedOnce()).toBe(true)
    expect(balancer.leases[0]!.outcomes[0]).toMatchObject({ ok: false, status: 429, retryAfterMs: 7000 })
  })

  it('reads an HTTP-date Retry-After', async () => {
    const when = new Date(Date.now() + 60_000).toUTCString()
    const full = await backend(answer(503, { 'retry-after': when }))
    const healthy = await backend(answer(200))
    const balancer = new RoundRobinTestBalancer([target('full', full.url), target('healthy', healthy.url)])
    const gw = await gateway({ balancer })

    await post(gw.port)

    expect(await balancer.allFinishedOnce()).toBe(true)
    const retryAfterMs = balancer.leases[0]!.outcomes[0]!.retryAfterMs!
    expect(retryAfterMs).toBeGreaterThan(55_000)
    expect(retryAfterMs).toBeLessThanOrEqual(60_000)
  })

  it('never retries on the same backend', async () => {
    const failing = await backend(answer(503))
    const balancer = new RoundRobinTestBalancer([target('only', failing.url)])
    const gw = await gateway({ balancer })

    const res = await post(gw.port)

    expect(res.status).toBe(503)
    expect(failing.requests).toHaveLength(1)
    expect(balancer.leases).toHaveLength(1)
  })
})

describe('when every backend fails', () => {
  it('answers 502 fast when nothing is reachable', async () => {
    const balancer = new RoundRobinTestBalancer([
      target('a', await downUrl()),
      target('b', await downUrl()),
      target('c', await downUrl()),
    ])
    const gw = await gateway({ balancer })

    const started = Date.now()
    const res = await post(gw.port)

    expect(Date.now() - started).toBeLessThan(2000)
    expect(res.status).toBe(502)
    expect(JSON.parse(res.body.toString())).toEqual({
      error: { message: 'no backend could be reached', type: 'server_error', code: 'bad_gateway' },
    })
    expect(balancer.leases).toHaveLength(3)
    expect(await balancer.allFinishedOnce()).toBe(true)
  })

  it('answers 503 with the shortest Retry-After when every backend is overloaded', async () => {
    const a = await backend(answer(503, { 'retry-after': '30' }))
    const b = await backend(answer(429, { 'retry-after': '5' }))
    const balancer = new RoundRobinTestBalancer([target('a', a.url), target('b', b.url)])
    const gw = await gateway({ balancer })

    const started = Date.now()
    const res = await post(gw.port)

    expect(Date.now() - started).toBeLessThan(2000)
    expect(res.status).toBe(503)
    // The test balancer's own BalancerError says 2 s once both are tried; the shortest wins.
    expect(res.headers['retry-after']).toBe('2')
    expect(JSON.parse(res.body.toString()).error.code).toBe('backend_unavailable')
    expect(await balancer.allFinishedOnce()).toBe(true)
  })

  it("passes the last backend's own answer through when no retry is left", async () => {
    const a = await backend(answer(503))
    const b = await backend(answer(429, { 'retry-after': '4' }))
    const balancer = new RoundRobinTestBalancer([target('a', a.url), target('b', b.url)])
    const gw = await gateway({ balancer, maxAttempts: 2 })

    const res = await post(gw.port)

    expect(res.status).toBe(429)
    expect(res.headers['retry-after']).toBe('4')
    expect(JSON.parse(res.body.toString())).toEqual({ status: 429, received: body.length })
    expect(await balancer.allFinishedOnce()).toBe(true)
    expect(balancer.leases[1]!.outcomes[0]).toMatchObject({ ok: false, status: 429, retryAfterMs: 4000 })
  })

  it('retries a first-byte timeout on another backend, cancelling the stalled attempt', async () => {
    const silent = await backend(() => {})
    const healthy = await backend(answer(200))
    const balancer = new RoundRobinTestBalancer([
      target('silent', silent.url),
      target('healthy', healthy.url),
    ])
    const gw = await gateway({ balancer, firstByteTimeoutMs: 300 })

    const res = await post(gw.port)

    expect(res.status).toBe(200)
    expect(healthy.requests).toHaveLength(1)
    await waitFor(() => silent.cancelled === 1)
    expect(await balancer.allFinishedOnce()).toBe(true)
    expect(balancer.leases[0]!.outcomes[0]!.error).toBeInstanceOf(Error)
  })

  it('answers 504 when every backend times out before its first byte', async () => {
    const silent = await backend(() => {})
    const alsoSilent = await backend(() => {})
    const balancer = new RoundRobinTestBalancer([
      target('silent', silent.url),
      target('also-silent', alsoSilent.url),
    ])
    const gw = await gateway({ balancer, firstByteTimeoutMs: 300 })

    const started = Date.now()
    const res = await post(gw.port)

    expect(Date.now() - started).toBeLessThan(5000)
    expect(res.status).toBe(504)
    expect(JSON.parse(res.body.toString()).error.code).toBe('backend_timeout')
    await waitFor(() => silent.cancelled === 1 && alsoSilent.cancelled === 1)
    expect(await balancer.allFinishedOnce()).toBe(true)
  })

  it('stops retrying when the retry budget is spent', async () => {
    const failing = await backend(answer(503))
    const healthy = await backend(answer(200))
    const balancer = new RoundRobinTestBalancer([
      target('failing', failing.url),
      target('healthy', healthy.url),
    ])
    const gw = await gateway({ balancer, retryBudget: { ratio: 0, minRetriesPerSecond: 0 } })

    const res = await post(gw.port)

    expect(res.status).toBe(503)
    expect(healthy.requests).toHaveLength(0)
  })
})

describe('request body bounds', () => {
  const big = randomBytes(256 * 1024)

  it.each<[string, Record<string, string>]>([
    ['with Content-Length', {}],
    ['chunked', { 'transfer-encoding': 'chunked' }],
  ])('a body above the replay bound streams through intact (%s)', async (_name, headers) => {
    const model = await backend(answer(200))
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    const gw = await gateway({ balancer, maxReplayBodyBytes: 1024 })

    const res = await request(gw.port, { method: 'POST', path: '/v1/embeddings', headers, body: big })

    expect(res.status).toBe(200)
    expect(model.requests[0]!.body.equals(big)).toBe(true)
    if (headers['transfer-encoding'] === undefined) {
      expect(model.requests[0]!.headers['content-length']).toBe(String(big.length))
    }
  })

  it('a body above the replay bound is not retried', async () => {
    const healthy = await backend(answer(200))
    const balancer = new RoundRobinTestBalancer([
      target('down', await downUrl()),
      target('healthy', healthy.url),
    ])
    const gw = await gateway({ balancer, maxReplayBodyBytes: 1024 })

    const res = await request(gw.port, { method: 'POST', path: '/v1/embeddings', body: big })

    expect(res.status).toBe(502)
    expect(healthy.requests).toHaveLength(0)
    expect(balancer.leases).toHaveLength(1)
    expect(await balancer.allFinishedOnce()).toBe(true)
  })

  it.each([
    ['announced by Content-Length', {}, 1024],
    ['chunked, found while buffering', { 'transfer-encoding': 'chunked' }, 1024],
    ['chunked, found while streaming past the replay bound', { 'transfer-encoding': 'chunked' }, 256 * 1024],
  ])('a body above maxBodyBytes gets 413 (%s)', async (_name, headers, maxBodyBytes) => {
    const model = await backend(answer(200))
    const balancer = new RoundRobinTestBalancer([target('a', model.url)])
    const gw = await gateway({ balancer, maxReplayBodyBytes: 512, maxBodyBytes })
    const tooBig = randomBytes(maxBodyBytes + 1)

    const res = await request(gw.port, { method: 'POST', path: '/v1/embeddings', headers, body: tooBig })

    expect(res.status).toBe(413)
    expect(JSON.parse(res.body.toString()).error.code).toBe('body_too_large')
    expect(await balancer.allFinishedOnce()).toBe(true)
  })
})
