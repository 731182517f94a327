import http, { type IncomingMessage } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { BackendsHandle, GatewayOptions } from '@tollgate/core'
import { afterEach, describe, expect, it } from 'vitest'
import {
  abortable,
  type Cleanup,
  chat,
  closedPort,
  closeServer,
  countBy,
  fake,
  openStream,
  send,
  sendRaw,
  sentinel,
  waitFor,
} from './http.js'

/** What both adapters' forwarding tests configure: gateway options plus the app-level bits. */
export interface SuiteOptions extends Omit<GatewayOptions<unknown>, 'hashKey'> {
  /** Limits on `POST /v1/chat/completions` only. */
  defaultLimits?: string
  /** The framework's own trust-proxy setting: `true`, or addresses/ranges such as `'10.0.0.0/8'`. */
  trustProxy?: boolean | string
}

export interface StartedGateway {
  port: number
  backends: BackendsHandle
}

/**
 * Starts an app on port 0 with these routes, and registers its closing with `cleanup`:
 * - `POST /v1/chat/completions`: forward (limited when `defaultLimits` is set)
 * - `GET /v1/models`: listModels
 * - `GET /gateway/*`: forward with `rewrite: { stripPrefix: '/gateway', addPrefix: '/v1' }`
 * - any other `GET` or `POST`: forward
 */
export type StartGateway = (cleanup: Cleanup, options: SuiteOptions) => Promise<StartedGateway>

const ERROR_MODES = ['reset', 'error-503', 'error-429'] as const

/** The forwarding behaviour both adapters must share, through real sockets. */
export function describeForwarding(framework: string, cleanup: Cleanup, start: StartGateway): void {
  afterEach(() => cleanup.run())

  describe(`${framework}: forwarding`, () => {
    it('forwards the exact bytes the client sent and streams back the answer', async () => {
      const backend = await fake(cleanup)
      const { port } = await start(cleanup, { backends: [{ url: backend.url }] })
      // Odd spacing, key order, escapes and non-ASCII survive only if nothing re-serialises.
      const body = '{ "model" :"fake-model","messages":[{"content":"h\\u00e9llo ✓","role":"user"}] ,"z":1.50}'
      const answer = await send(port, {
        path: '/v1/chat/completions',
        headers: { 'content-type': 'application/json' },
        body,
      })
      expect(answer.status).toBe(200)
      expect(answer.json().object).toBe('chat.completion')
      expect(backend.lastRequest?.body.equals(Buffer.from(body))).toBe(true)
      expect(backend.lastRequest?.headers['content-length']).toBe(String(Buffer.byteLength(body)))
    })

    it('forwards the path and query as sent, and rewrites where the route says so', async () => {
      const backend = await fake(cleanup)
      const { port } = await start(cleanup, { backends: [{ url: backend.url }] })

      const direct = await send(port, { path: '/v1/models/fake-model?a=1&b=%20x&a=2' })
      expect(direct.status).toBe(200)
      expect(backend.lastRequest?.url).toBe('/v1/models/fake-model?a=1&b=%20x&a=2')

      const rewritten = await send(port, { path: '/gateway/models?x=y' })
      expect(rewritten.status).toBe(200)
      expect(rewritten.json().object).toBe('list')
      expect(backend.lastRequest?.url).toBe('/v1/models?x=y')
    })

    it('sends rate-limit headers on forwarded answers and 429 before forwarding when over', async () => {
      const backend = await fake(cleanup)
      const { port } = await start(cleanup, {
        backends: [{ url: backend.url }],
        defaultLimits: '2 per minute',
      })
      const answers = []
      for (let i = 0; i < 3; i++)
        answers.push(await send(port, { path: '/v1/chat/completions', body: chat() }))
      expect(answers.map((a) => a.status)).toEqual([200, 200, 429])
      expect(answers[0]!.headers.ratelimit).toMatch(/r=1/)
      expect(answers[0]!.headers['ratelimit-policy']).toBeDefined()
      expect(answers[1]!.headers.ratelimit).toMatch(/r=0/)
      expect(answers[1]!.headers['x-backend']).toBe(backend.name)
      expect(answers[2]!.headers['retry-after']).toBeDefined()
      // The rejected request never reached the backend.
      expect(backend.stats.requests).toBe(2)
    })

    describe('failover on POST', () => {
      it.each(ERROR_MODES)('a backend in %s mode: another backend answers 200', async (mode) => {
        const bad = await fake(cleanup, { failureMode: mode, retryAfterSeconds: 30 })
        const good = await fake(cleanup)
        const { port } = await start(cleanup, {
          backends: [
            { url: bad.url, id: 'bad' },
            { url: good.url, id: 'good' },
          ],
        })
        const answers = []
        for (let i = 0; i < 4; i++)
          answers.push(await send(port, { path: '/v1/chat/completions', body: chat() }))
        expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200])
        expect(countBy(answers)).toEqual({ [good.name]: 4 })
        // The failing backend saw the request at least once: this was failover, not luck.
        expect(bad.stats.requests).toBeGreaterThanOrEqual(1)
        expect(good.lastRequest?.body.toString()).toBe(JSON.stringify(chat()))
      })

      it('a backend on a closed port: another backend answers 200', async () => {
        const good = await fake(cleanup)
        const { port, backends } = await start(cleanup, {
          backends: [
            { url: `http://127.0.0.1:${await closedPort()}`, id: 'dead' },
            { url: good.url, id: 'good' },
          ],
        })
        const answers = []
        for (let i = 0; i < 4; i++)
          answers.push(await send(port, { path: '/v1/chat/completions', body: chat() }))
        expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200])
        expect(backends.get('dead')?.totalErrors).toBeGreaterThanOrEqual(1)
      })
    })

    it('answers 502 JSON quickly when every backend is unreachable, 503 when every one is overloaded', async () => {
      const down = await start(cleanup, {
        backends: [
          { url: `http://127.0.0.1:${await closedPort()}` },
          { url: `http://127.0.0.1:${await closedPort()}` },
        ],
      })
      let startedAt = Date.now()
      const unreachable = await send(down.port, { path: '/v1/chat/completions', body: chat() })
      expect(Date.now() - startedAt).toBeLessThan(2_000)
      expect(unreachable.status).toBe(502)
      expect(unreachable.headers['content-type']).toMatch(/application\/json/)
      expect(unreachable.json().error.code).toBe('bad_gateway')

      const a = await fake(cleanup, { failureMode: 'error-503', retryAfterSeconds: 5 })
      const b = await fake(cleanup, { failureMode: 'error-503', retryAfterSeconds: 5 })
      const busy = await start(cleanup, { backends: [{ url: a.url }, { url: b.url }] })
      startedAt = Date.now()
      const overloaded = await send(busy.port, { path: '/v1/chat/completions', body: chat() })
      expect(Date.now() - startedAt).toBeLessThan(2_000)
      expect(overloaded.status).toBe(503)
      expect(overloaded.json().error.type).toBe('server_error')
      expect(Number(overloaded.headers['retry-after'])).toBeGreaterThanOrEqual(1)
    })

    it('names the backend that answered in backendHeader, only when asked to', async () => {
      const dead = `http://127.0.0.1:${await closedPort()}`
      const live = await fake(cleanup, { name: 'live' })
      const named = await start(cleanup, {
        backends: [
          { id: 'dead', url: dead },
          { id: 'live', url: live.url },
        ],
        strategy: 'round-robin',
        backendHeader: 'X-Tollgate-Backend',
      })
      // The failed attempt on `dead` is retried on `live`: the header names the one that answered.
      for (let i = 0; i < 2; i++) {
        const answer = await send(named.port, { path: '/v1/chat/completions', body: chat() })
        expect(answer.status).toBe(200)
        expect(answer.headers['x-tollgate-backend']).toBe('live')
      }
      const plain = await start(cleanup, { backends: [{ id: 'live', url: live.url }] })
      const answer = await send(plain.port, { path: '/v1/chat/completions', body: chat() })
      expect(answer.headers['x-tollgate-backend']).toBeUndefined()
      await expect(
        start(cleanup, { backends: [{ url: live.url }], backendHeader: 'content-type' }),
      ).rejects.toThrow(/option "backendHeader" must be a response header name of your own/)
    })

    it('streams SSE chunks to the client before the backend has finished', async () => {
      const backend = await fake(cleanup, { timePerTokenMs: 80, answerTokens: 6 })
      const { port } = await start(cleanup, { backends: [{ url: backend.url }] })
      const stream = await openStream(port, { body: chat({ stream: true }) })
      expect(stream.status).toBe(200)
      expect(stream.headers['content-type']).toMatch(/text\/event-stream/)
      const first = await stream.nextEvent()
      const second = await stream.nextEvent()
      expect(first).toMatch(/^data: /)
      expect(second).toMatch(/"content":"\w+"/)
      // Two events in, the backend is still generating.
      expect(backend.stats.completed).toBe(0)
      expect(backend.stats.inFlight).toBe(1)
      const rest = await stream.rest()
      expect(rest.at(-1)).toBe('data: [DONE]')
      expect(stream.complete).toBe(true)
    })

    it('cancels the upstream request when the client leaves before the answer starts', async () => {
      const backend = await fake(cleanup, { timeToFirstTokenMs: 20_000 })
      const { port, backends } = await start(cleanup, { backends: [{ url: backend.url, id: 'slow' }] })
      const request = abortable(port, { body: chat() })
      await waitFor(() => backend.stats.inFlight === 1, 'the backend to start generating')
      request.abort()
      await waitFor(() => backend.stats.cancelled === 1, 'the backend to see the cancellation')
      await waitFor(() => backends.get('slow')?.inFlight === 0, 'the lease to be released')
      // A client leaving says nothing about the backend.
      expect(backends.get('slow')?.totalErrors).toBe(0)
    })

    it('drops the upstream connection when the client leaves a stalled backend', async () => {
      const backend = await fake(cleanup, { failureMode: 'stall' })
      let upstream: Socket | undefined
      backend.server.once('request', (req: IncomingMessage) => {
        upstream = req.socket
      })
      const { port } = await start(cleanup, { backends: [{ url: backend.url }] })
      const request = abortable(port, { body: chat() })
      await waitFor(() => backend.stats.requests === 1, 'the backend to receive the request')
      expect(upstream?.destroyed).toBe(false)
      request.abort()
      await waitFor(() => upstream?.destroyed === true, 'the upstream socket to close')
    })

    it('cancels the upstream request when the client leaves mid-stream', async () => {
      const backend = await fake(cleanup, { timePerTokenMs: 50, answerTokens: 200 })
      const { port } = await start(cleanup, { backends: [{ url: backend.url }] })
      const stream = await openStream(port, { body: chat({ stream: true }) })
      await stream.nextEvent()
      await stream.nextEvent()
      stream.abort()
      await waitFor(() => backend.stats.cancelled === 1, 'the backend to see the cancellation')
      expect(backend.stats.completed).toBe(0)
      expect(backend.stats.tokens).toBeLessThan(200)
    })

    it('ends the stream with an SSE error event when the backend dies mid-stream', async () => {
      const backend = await fake(cleanup, { failureMode: 'die-mid-stream', dieAfterChunks: 2 })
      const { port } = await start(cleanup, { backends: [{ url: backend.url }] })
      const stream = await openStream(port, { body: chat({ stream: true }) })
      expect(stream.status).toBe(200)
      const events = await stream.rest()
      expect(events.filter((e) => e.startsWith('data: {')).length).toBeGreaterThanOrEqual(2)
      expect(events).not.toContain('data: [DONE]')
      const last = events.at(-1) ?? ''
      expect(last).toMatch(/^event: error\ndata: /)
      expect(JSON.parse(last.split('data: ')[1]!).error.code).toBe('backend_stream_failed')
    })

    it('strips hop-by-hop headers both ways and sets X-Forwarded-*, ignoring a client X-Forwarded-For', async () => {
      const backend = await fake(cleanup)
      const { port } = await start(cleanup, { backends: [{ url: backend.url }] })
      const answer = await send(port, {
        path: '/v1/chat/completions',
        headers: [
          'Content-Type',
          'application/json',
          'Connection',
          'keep-alive, X-Hop-Secret',
          'X-Hop-Secret',
          'not for the backend',
          'Keep-Alive',
          'timeout=5',
          'Proxy-Authorization',
          'Basic c2VjcmV0',
          'TE',
          'trailers, deflate',
          'X-Forwarded-For',
          '6.6.6.6',
          'X-Forwarded-Host',
          'evil.example',
          'X-Forwarded-Proto',
          'https',
          'X-Custom',
          'kept',
        ],
        body: JSON.stringify(chat()),
      })
      expect(answer.status).toBe(200)
      const headers = backend.lastRequest!.headers
      expect(headers['x-hop-secret']).toBeUndefined()
      expect(headers['keep-alive']).toBeUndefined()
      expect(headers['proxy-authorization']).toBeUndefined()
      expect(headers.te).toBe('trailers')
      expect(headers['x-custom']).toBe('kept')
      expect(headers['x-forwarded-for']).toBe('127.0.0.1')
      expect(headers['x-forwarded-proto']).toBe('http')
      expect(headers['x-forwarded-host']).toBe(`127.0.0.1:${port}`)
    })

    it('keeps the X-Forwarded-For chain only when the app trusts its proxy', async () => {
      const backend = await fake(cleanup)
      const { port } = await start(cleanup, { backends: [{ url: backend.url }], trustProxy: true })
      await send(port, {
        path: '/v1/chat/completions',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': '6.6.6.6' },
        body: JSON.stringify(chat()),
      })
      expect(backend.lastRequest?.headers['x-forwarded-for']).toBe('6.6.6.6, 127.0.0.1')
    })

    it('does not keep the X-Forwarded-For of a client outside the trusted proxy range', async () => {
      const backend = await fake(cleanup)
      const { port } = await start(cleanup, { backends: [{ url: backend.url }], trustProxy: '10.0.0.0/8' })
      await send(port, {
        path: '/v1/chat/completions',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': '6.6.6.6' },
        body: JSON.stringify(chat()),
      })
      expect(backend.lastRequest?.headers['x-forwarded-for']).toBe('127.0.0.1')
    })

    it('forwards a multipart or binary body untouched', async () => {
      const backend = await fake(cleanup)
      const { port } = await start(cleanup, { backends: [{ url: backend.url }] })
      const upload = Buffer.concat([
        Buffer.from('--x\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\n'),
        Buffer.from([0, 1, 2, 255, 254, 13, 10, 0]),
        Buffer.from('\r\n--x--\r\n'),
      ])
      const multipart = await send(port, {
        path: '/v1/audio/transcriptions',
        headers: { 'content-type': 'multipart/form-data; boundary=x' },
        body: upload,
      })
      // The fake has no such endpoint: its own 404 shows the request went through.
      expect(multipart.json().error.code).toBe('not_found')
      expect(backend.lastRequest?.url).toBe('/v1/audio/transcriptions')
      expect(backend.lastRequest?.body.equals(upload)).toBe(true)

      const binary = await send(port, {
        path: '/v1/files',
        headers: { 'content-type': 'application/octet-stream' },
        body: upload,
      })
      expect(binary.headers['x-backend']).toBe(backend.name)
      expect(backend.lastRequest?.body.equals(upload)).toBe(true)
    })

    it('strips hop-by-hop headers from the backend answer', async () => {
      const backend = http.createServer((_req, res) => {
        res.writeHead(200, {
          'content-type': 'application/json',
          connection: 'X-Internal',
          'x-internal': 'backend secret',
          'proxy-authenticate': 'Basic',
          'x-visible': 'yes',
        })
        res.end('{}')
      })
      await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve))
      cleanup.add(() => closeServer(backend), null)
      const url = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`
      const { port } = await start(cleanup, { backends: [{ url }] })
      const answer = await send(port, { path: '/anything' })
      expect(answer.status).toBe(200)
      expect(answer.headers['x-visible']).toBe('yes')
      expect(answer.headers['x-internal']).toBeUndefined()
      expect(answer.headers['proxy-authenticate']).toBeUndefined()
    })

    describe('requests only ever reach registered backends', () => {
      it('an absolute-form request target', async () => {
        const backend = await fake(cleanup)
        const target = await sentinel(cleanup)
        const { port } = await start(cleanup, { backends: [{ url: backend.url }] })
        const answer = await sendRaw(
          port,
          `GET http://127.0.0.1:${target.port}/v1/models HTTP/1.1\r\nHost: 127.0.0.1:${target.port}\r\nConnection: close\r\n\r\n`,
        )
        expect(answer).toMatch(/^HTTP\/1\.1 \d{3}/)
        expect(target.connections).toBe(0)
        if (answer.startsWith('HTTP/1.1 200')) expect(backend.lastRequest?.url).toBe('/v1/models')
      })

      it('a //host/path request target', async () => {
        const backend = await fake(cleanup)
        const target = await sentinel(cleanup)
        const { port } = await start(cleanup, { backends: [{ url: backend.url }] })
        const answer = await sendRaw(
          port,
          `GET //127.0.0.1:${target.port}/v1/models HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`,
        )
        expect(answer).toMatch(/^HTTP\/1\.1 \d{3}/)
        expect(target.connections).toBe(0)
        if (backend.lastRequest !== null)
          expect(backend.lastRequest.url).toBe(`/127.0.0.1:${target.port}/v1/models`)
      })

      it('a Host header naming another server', async () => {
        const backend = await fake(cleanup)
        const target = await sentinel(cleanup)
        const { port } = await start(cleanup, { backends: [{ url: backend.url }] })
        const answer = await send(port, {
          path: '/v1/chat/completions',
          headers: { host: `127.0.0.1:${target.port}`, 'content-type': 'application/json' },
          body: JSON.stringify(chat()),
        })
        expect(answer.status).toBe(200)
        expect(answer.headers['x-backend']).toBe(backend.name)
        expect(target.connections).toBe(0)
        expect(backend.lastRequest?.headers.host).toBe(`127.0.0.1:${backend.port}`)
      })
    })

    describe('model routing', () => {
      it('sends a model only one backend serves to that backend, every time', async () => {
        const alpha = await fake(cleanup, { models: ['alpha'] })
        const beta = await fake(cleanup, { models: ['beta', 'shared'] })
        const gamma = await fake(cleanup, { models: ['shared'] })
        const { port } = await start(cleanup, {
          backends: [alpha, beta, gamma].map((f) => ({ url: f.url, models: f.models })),
        })
        const answers = []
        for (let i = 0; i < 6; i++) {
          answers.push(await send(port, { path: '/v1/chat/completions', body: chat({ model: 'alpha' }) }))
        }
        expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200])
        expect(countBy(answers)).toEqual({ [alpha.name]: 6 })
        const shared = []
        for (let i = 0; i < 4; i++) {
          shared.push(await send(port, { path: '/v1/chat/completions', body: chat({ model: 'shared' }) }))
        }
        expect(countBy(shared)).toEqual({ [beta.name]: 2, [gamma.name]: 2 })
      })

      it('answers an unknown model with 404 JSON listing the models, without forwarding', async () => {
        const alpha = await fake(cleanup, { models: ['alpha'] })
        const beta = await fake(cleanup, { models: ['beta'] })
        const { port } = await start(cleanup, {
          backends: [alpha, beta].map((f) => ({ url: f.url, models: f.models })),
        })
        const answer = await send(port, { path: '/v1/chat/completions', body: chat({ model: 'nope' }) })
        expect(answer.status).toBe(404)
        expect(answer.headers['content-type']).toMatch(/application\/json/)
        const { error } = answer.json()
        expect(error.code).toBe('unknown_model')
        expect(error.models).toEqual(['alpha', 'beta'])
        expect(error.message).toMatch(/alpha, beta/)
        expect(alpha.stats.requests + beta.stats.requests).toBe(0)
      })

      it('answers GET /v1/models from the registry', async () => {
        const alpha = await fake(cleanup, { models: ['alpha'] })
        const beta = await fake(cleanup, { models: ['beta', 'alpha'] })
        const { port } = await start(cleanup, {
          backends: [alpha, beta].map((f) => ({ url: f.url, models: f.models })),
        })
        const answer = await send(port, { path: '/v1/models' })
        expect(answer.status).toBe(200)
        expect(answer.json()).toEqual({
          object: 'list',
          data: [
            { id: 'alpha', object: 'model', owned_by: 'tollgate' },
            { id: 'beta', object: 'model', owned_by: 'tollgate' },
          ],
        })
        expect(alpha.stats.requests + beta.stats.requests).toBe(0)
      })

      it('forwards GET /v1/models when no backend declares models', async () => {
        const backend = await fake(cleanup, { models: ['from-backend'] })
        const { port } = await start(cleanup, { backends: [{ url: backend.url }] })
        const answer = await send(port, { path: '/v1/models' })
        expect(answer.status).toBe(200)
        expect(answer.json().data.map((m: { id: string }) => m.id)).toEqual(['from-backend'])
      })

      it('answers malformed JSON with 400 JSON, without forwarding', async () => {
        const backend = await fake(cleanup, { models: ['fake-model'] })
        const { port } = await start(cleanup, { backends: [{ url: backend.url, models: ['fake-model'] }] })
        const answer = await send(port, {
          path: '/v1/chat/completions',
          headers: { 'content-type': 'application/json' },
          body: '{"model": "fake-model", ',
        })
        expect(answer.status).toBe(400)
        expect(answer.headers['content-type']).toMatch(/application\/json/)
        expect(answer.json()).toBeTypeOf('object')
        expect(backend.stats.requests).toBe(0)
      })
    })

    it('adds, drains and removes backends at runtime, with a snapshot of each', async () => {
      const fast = await fake(cleanup)
      const slow = await fake(cleanup, { timeToFirstTokenMs: 300 })
      const { port, backends } = await start(cleanup, { backends: [{ url: fast.url, id: 'fast' }] })

      const added = backends.add({ url: slow.url, id: 'slow', weight: 2, models: ['fake-model'] })
      expect(added).toMatchObject({ id: 'slow', url: slow.url, weight: 2, status: 'healthy', inFlight: 0 })
      expect(() => backends.add({ url: slow.url, id: 'slow' })).toThrow(/slow/)

      await backends.drain('fast')
      expect(backends.get('fast')?.status).toBe('draining')
      const request = send(port, { path: '/v1/chat/completions', body: chat() })
      await waitFor(() => backends.get('slow')?.inFlight === 1, 'the request to reach the slow backend')
      let drained = false
      const draining = backends.drain('slow').then(() => {
        drained = true
      })
      expect(drained).toBe(false)
      // Every backend is draining: nothing may take a new request.
      const refused = await send(port, { path: '/v1/chat/completions', body: chat() })
      expect(refused.status).toBe(503)
      expect(refused.json().error.code).toBe('no_backend_available')
      expect((await request).headers['x-backend']).toBe(slow.name)
      await draining
      expect(drained).toBe(true)

      backends.undrain('fast')
      backends.undrain('slow')
      expect(backends.remove('slow')).toBe(true)
      expect(backends.remove('slow')).toBe(false)
      const after = await send(port, { path: '/v1/chat/completions', body: chat() })
      expect(after.headers['x-backend']).toBe(fast.name)

      backends.add({ url: `http://127.0.0.1:${await closedPort()}`, id: 'dead' })
      for (let i = 0; i < 2; i++) {
        expect((await send(port, { path: '/v1/chat/completions', body: chat() })).status).toBe(200)
      }

      const snapshot = backends.snapshot()
      expect(snapshot.map((b) => b.id).sort()).toEqual(['dead', 'fast'])
      const fastState = snapshot.find((b) => b.id === 'fast')!
      expect(fastState).toMatchObject({ status: 'healthy', inFlight: 0, totalErrors: 0, queued: 0 })
      expect(fastState.totalRequests).toBeGreaterThanOrEqual(3)
      expect(fastState.latencyMs).toBeGreaterThan(0)
      const dead = snapshot.find((b) => b.id === 'dead')!
      expect(dead.totalErrors).toBeGreaterThanOrEqual(1)
      expect(dead.inFlight).toBe(0)
      expect(dead.latencyMs).toBeGreaterThan(0)
    })

    it('holds requests over maxConcurrency in a bounded queue, 503 with Retry-After when it is full', async () => {
      const backend = await fake(cleanup, { timeToFirstTokenMs: 300 })
      const { port, backends } = await start(cleanup, {
        backends: [{ url: backend.url, id: 'gpu', maxConcurrency: 1 }],
        queue: { size: 1, timeoutMs: 5_000, retryAfterMs: 3_000 },
      })
      const first = send(port, { path: '/v1/chat/completions', body: chat() })
      await waitFor(() => backends.get('gpu')?.inFlight === 1, 'the first request to go out')
      const second = send(port, { path: '/v1/chat/completions', body: chat() })
      await waitFor(() => backends.get('gpu')?.queued === 1, 'the second request to wait')
      const third = await send(port, { path: '/v1/chat/completions', body: chat() })
      expect(third.status).toBe(503)
      expect(third.headers['retry-after']).toBe('3')
      expect(third.json().error.code).toBe('queue_full')
      expect((await first).status).toBe(200)
      expect((await second).status).toBe(200)
      expect(backend.stats.maxConcurrent).toBe(1)
      expect(backend.stats.requests).toBe(2)
    })
  })
}

/** The port an http.Server listens on. */
export function portOf(server: http.Server): number {
  return (server.address() as AddressInfo).port
}
