import { createServer, request as httpRequest, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tollgate as expressTollgate, type Gate } from '@tollgate/express'
import fastifyTollgate from '@tollgate/fastify'
import express from 'express'
import Fastify, { type FastifyInstance } from 'fastify'
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest'
import { type FakeModelServer, startFakeModelServer } from '../../examples/fake-model-server.js'
import { FRAMEWORKS, rawBackend, startGateway } from '../faults/gateways.js'
import { send } from '../faults/support.js'
import { Cleanup, send as sendOnce } from '../helpers/http.js'

const apps: FastifyInstance[] = []
const servers: Server[] = []
const gates: Gate[] = []
const fakes: FakeModelServer[] = []

afterAll(async () => {
  await Promise.all(apps.map((app) => app.close()))
  await Promise.all(
    servers.map((s) => {
      s.closeAllConnections()
      return new Promise((resolve) => s.close(resolve))
    }),
  )
  await Promise.all(gates.map((g) => g.close()))
  await Promise.all(fakes.map((f) => f.close()))
})

async function listen(server: Server): Promise<number> {
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

async function fake(models?: string[]): Promise<FakeModelServer> {
  const f = await startFakeModelServer({ name: 'bodies', models })
  fakes.push(f)
  return f
}

async function fastifyGateway(backendUrl: string, options: Record<string, unknown> = {}): Promise<number> {
  const app = Fastify()
  apps.push(app)
  await app.register(fastifyTollgate, {
    backends: [{ url: backendUrl, ...options.backend! }],
    ...options.gateway!,
  })
  app.post('/v1/chat/completions', app.tollgate.forward())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return (app.server.address() as AddressInfo).port
}

async function expressGateway(backendUrl: string, options: Record<string, unknown> = {}): Promise<number> {
  const gate = expressTollgate({ backends: [{ url: backendUrl, ...options.backend! }], ...options.gateway! })
  gates.push(gate)
  const app = express()
  app.post('/v1/chat/completions', gate.forward())
  return listen(createServer(app))
}

const malformed: [string, string | Buffer][] = [
  ['truncated', '{"model": "fake-model", "messages": [{"role": "us'],
  ['not JSON at all', 'model=fake-model'],
  ['invalid UTF-8', Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])],
  ['deep nesting', `${'['.repeat(100_000)}${']'.repeat(100_000)}`],
  ['a model that is an object', '{"model": {"$ne": null}, "messages": []}'],
  ['a NUL byte', '{"model": "fake-\u0000model"}'],
  ['an empty body', ''],
  ['a lone number', '1e999999'],
]

for (const [name, gatewayFor] of [
  ['Fastify', fastifyGateway],
  ['Express', expressGateway],
] as const) {
  describe(`${name}: bodies on the forward route`, () => {
    for (const models of [undefined, ['fake-model']]) {
      it(`malformed JSON gets a 400 JSON error or passes through untouched (${models ? 'model routing' : 'no models'})`, async () => {
        const backend = await fake(models)
        const port = await gatewayFor(backend.url, { backend: models ? { models } : {} })
        for (const [label, body] of malformed) {
          backend.resetStats()
          const answer = await send(port, {
            method: 'POST',
            path: '/v1/chat/completions',
            headers: { 'content-type': 'application/json' },
            body,
          })
          // Never a 5xx (a crash or an unhandled error), always a JSON answer.
          expect(answer.status, label).toBeLessThan(500)
          expect(() => JSON.parse(answer.body), label).not.toThrow()
          if (backend.stats.requests > 0) {
            // Passed on: the backend got exactly the bytes the client sent, and answered itself.
            expect(Buffer.compare(backend.lastRequest!.body, Buffer.from(body)), label).toBe(0)
          } else {
            expect(answer.status, label).toBe(400)
          }
        }
        // And the gateway is still serving.
        const ok = await send(port, {
          method: 'POST',
          path: '/v1/chat/completions',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'fake-model', messages: [] }),
        })
        expect(ok.status).toBe(200)
      })
    }

    it('refuses a body above maxBodyBytes with 413, declared or chunked', async () => {
      const backend = await fake()
      const port = await gatewayFor(backend.url, { gateway: { maxBodyBytes: 64 * 1024 } })
      const big = Buffer.alloc(256 * 1024, 0x61)
      for (const type of ['application/json', 'application/octet-stream']) {
        backend.resetStats()
        const declared = await send(port, {
          method: 'POST',
          path: '/v1/chat/completions',
          headers: { 'content-type': type },
          body: big,
        })
        expect(declared.status).toBe(413)
        const chunked = await postChunked(port, type, big, 16 * 1024)
        expect(chunked.status === 413 || chunked.status === 0).toBe(true)
        // Nothing over the bound ever reached the backend.
        expect(backend.stats.requests).toBe(0)
      }
    })
  })
}

/** Posts `body` with Transfer-Encoding: chunked; status 0 when the gateway cut the upload instead. */
function postChunked(port: number, type: string, body: Buffer, chunk: number): Promise<{ status: number }> {
  return new Promise((resolve) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/v1/chat/completions',
        agent: false,
        headers: { 'content-type': type },
      },
      (res) => {
        res.resume()
        res.on('end', () => resolve({ status: res.statusCode ?? 0 }))
        res.on('error', () => resolve({ status: res.statusCode ?? 0 }))
      },
    )
    req.on('error', () => resolve({ status: 0 }))
    for (let at = 0; at < body.length; at += chunk) req.write(body.subarray(at, at + chunk))
    req.end()
  })
}

describe('streaming a large body', () => {
  it('200 MB through the Express gateway to a backend that discards it: memory stays flat', async () => {
    let received = 0
    const sink = createServer((req, res) => {
      req.on('data', (chunk: Buffer) => {
        received += chunk.length
      })
      req.on('end', () => res.end(JSON.stringify({ received })))
    })
    const sinkPort = await listen(sink)
    const port = await expressGateway(`http://127.0.0.1:${sinkPort}`, {
      gateway: { maxBodyBytes: 512 * 1024 * 1024 },
    })

    const TOTAL = 200 * 1024 * 1024
    const piece = Buffer.alloc(256 * 1024, 0x62)
    global.gc?.()
    const baseline = process.memoryUsage()
    let peakRss = baseline.rss
    let peakHeap = baseline.heapUsed
    const sampler = setInterval(() => {
      const now = process.memoryUsage()
      peakRss = Math.max(peakRss, now.rss)
      peakHeap = Math.max(peakHeap, now.heapUsed)
    }, 25)
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/v1/chat/completions',
          agent: false,
          headers: { 'content-type': 'application/octet-stream', 'content-length': String(TOTAL) },
        },
        (res) => {
          res.resume()
          res.on('end', () => resolve(res.statusCode ?? 0))
        },
      )
      req.on('error', reject)
      let sent = 0
      // Respects backpressure, so the client side holds one piece at a time.
      const pump = () => {
        while (sent < TOTAL) {
          sent += piece.length
          if (!req.write(piece)) return void req.once('drain', pump)
        }
        req.end()
      }
      pump()
    })
    clearInterval(sampler)
    expect(status).toBe(200)
    expect(received).toBe(TOTAL)
    const rssGrowth = peakRss - baseline.rss
    const heapGrowth = peakHeap - baseline.heapUsed
    console.info(
      `streamed 200 MB: peak RSS +${(rssGrowth / 2 ** 20).toFixed(1)} MB, peak heap +${(heapGrowth / 2 ** 20).toFixed(1)} MB`,
    )
    // Buffering the body would add 200 MB; streaming keeps a few socket buffers in flight.
    expect(rssGrowth).toBeLessThan(64 * 1024 * 1024)
    expect(heapGrowth).toBeLessThan(64 * 1024 * 1024)
  })
})

describe('a huge deeply nested JSON body on a forward route', () => {
  const cleanup = new Cleanup()
  afterEach(() => cleanup.run())

  for (const framework of FRAMEWORKS) {
    it(`${framework}: is routed by its model without a JSON.parse of the whole body`, async () => {
      const backend = await rawBackend(cleanup, (req, res) => {
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'application/json' })
          res.end('{"ok":true}')
        })
        req.resume()
      })
      const port = await startGateway(framework, cleanup, {
        backends: [{ url: backend.url, models: ['fake-model'] }],
      })
      const depth = 2_500_000
      const body = `{"model":"fake-model","messages":${'['.repeat(depth)}${']'.repeat(depth)}}`
      const parse = vi.spyOn(JSON, 'parse')
      try {
        const answer = await sendOnce(port, {
          path: '/v1/chat/completions',
          headers: { 'content-type': 'application/json' },
          body,
        })
        expect(answer.status, answer.text()).toBe(200)
        expect(backend.bodyBytes).toBe(body.length)
        // JSON.parse of this body blocks the event loop for seconds; nothing may have parsed it.
        const longest = Math.max(0, ...parse.mock.calls.map(([text]) => String(text).length))
        expect(longest).toBeLessThan(1024 * 1024)
      } finally {
        parse.mockRestore()
      }
    })
  }
})
