import type { AddressInfo } from 'node:net'
import type { TollgateFastifyOptions } from '@tollgate/fastify'
import tollgate from '@tollgate/fastify'
import Fastify, { type FastifyInstance } from 'fastify'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { startFakeModelServer } from '../../examples/fake-model-server.js'
import {
  type Answer,
  type ChildServer,
  chat,
  freePort,
  load,
  sleep,
  spawnFakeBackend,
  waitFor,
} from './support.js'

// Backends are real processes on real ports; the gateway is a real Fastify server. Every test
// is bounded by request counts, never by how fast the machine is.

const children: ChildServer[] = []
const apps: FastifyInstance[] = []
const closers: (() => Promise<void>)[] = []

afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()))
  await Promise.all(children.splice(0).map((child) => child.kill()))
  await Promise.all(closers.splice(0).map((close) => close()))
})
afterAll(async () => {
  await Promise.all(children.splice(0).map((child) => child.kill()))
})

async function backend(port: number, name: string, args: string[] = []): Promise<ChildServer> {
  const child = await spawnFakeBackend(port, name, args)
  children.push(child)
  return child
}

async function gateway(options: TollgateFastifyOptions): Promise<{ app: FastifyInstance; port: number }> {
  const app = Fastify()
  apps.push(app)
  await app.register(tollgate, options)
  app.post('/v1/chat/completions', app.tollgate.forward())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: (app.server.address() as AddressInfo).port }
}

/** Records every status a backend goes through, polled from the gateway's snapshot. */
function watchStatuses(app: FastifyInstance, id: string): { seen: Set<string>; stop: () => void } {
  const seen = new Set<string>()
  const timer = setInterval(() => {
    const state = app.tollgate.backends.get(id)
    if (state) seen.add(state.status)
  }, 10)
  return { seen, stop: () => clearInterval(timer) }
}

const backendOf = (answer: Answer) => answer.headers['x-backend']
const completeStream = (answer: Answer) =>
  answer.status === 200 && !answer.aborted && answer.body.includes('data: [DONE]')

describe('a backend process is killed under load', () => {
  it('fails over, ends its streams visibly, is ejected and re-admitted when it comes back', async () => {
    const ports = await Promise.all([freePort(), freePort(), freePort()])
    const names = ['a', 'b', 'c']
    // Streams of 150 tokens, 20 ms apart (3 s): long enough to be in flight when the kill lands,
    // even on a loaded machine where the requests before it take a while.
    const args = ['--tpt', '20', '--tokens', '150']
    const processes = await Promise.all(names.map((name, i) => backend(ports[i]!, name, args)))
    const { app, port } = await gateway({
      backends: names.map((name, i) => ({ id: name, url: `http://127.0.0.1:${ports[i]}` })),
      strategy: 'round-robin',
      health: { outlier: { consecutiveFailures: 2, baseEjectionMs: 300, maxEjectionMs: 600 } },
      connectTimeoutMs: 1_000,
    })

    // Streams first, one at a time, until one is being answered by b; the backend serving each
    // is the one whose in-flight count went up.
    const streams: Promise<Answer>[] = []
    const streamBackends: string[] = []
    const inFlight = () => new Map(app.tollgate.backends.snapshot().map((b) => [b.id, b.inFlight]))
    const total = (counts: Map<string, number>) => [...counts.values()].reduce((n, x) => n + x, 0)
    for (let i = 0; i < 9 && !streamBackends.includes('b'); i++) {
      const before = inFlight()
      streams.push(chat(port, true))
      await waitFor(() => total(inFlight()) === streams.length, 5_000, 'the stream to reach a backend')
      const now = inFlight()
      streamBackends.push([...now].find(([id, n]) => n > (before.get(id) ?? 0))![0])
    }
    expect(streamBackends).toContain('b')

    const watcher = watchStatuses(app, 'b')
    const victim = processes[1]!
    let started = 0
    // Requests started once the process is gone: none of them can have been answered by it.
    let startedAfterDeath = Number.POSITIVE_INFINITY
    const answers = await load(300, 6, async (i) => {
      started++
      if (i === 20) {
        await victim.kill('SIGKILL')
        startedAfterDeath = started
      }
      // One token: the answer is produced at once, with its headers.
      return chat(port, false, { maxTokens: 1 })
    })
    const streamed = await Promise.all(streams)
    watcher.stop()

    // Non-streaming answers here are produced at once, so a request the kill caught on b had not
    // started its response: it is replayed on another backend like every request b never saw.
    expect(answers.map((a) => a.status).filter((s) => s !== 200)).toEqual([])
    expect(answers.slice(startedAfterDeath).filter((a) => backendOf(a) === 'b')).toEqual([])

    for (const [i, answer] of streamed.entries()) {
      if (streamBackends[i] === 'b') {
        // Cut visibly: either an SSE error event or a connection that ends without the stream's end.
        expect(answer.body).not.toContain('data: [DONE]')
        expect(answer.aborted || answer.body.includes('event: error')).toBe(true)
      } else {
        expect(completeStream(answer)).toBe(true)
      }
    }
    expect(watcher.seen).toContain('ejected')

    // Back on the same port: once its ejection runs out, b takes requests again.
    await backend(ports[1]!, 'b', args)
    const readmitted = await (async () => {
      const until = Date.now() + 8_000
      while (Date.now() < until) {
        const answer = await chat(port, false, { maxTokens: 1 })
        expect(answer.status).toBe(200)
        if (backendOf(answer) === 'b') return true
        await sleep(20)
      }
      return false
    })()
    expect(readmitted).toBe(true)
    expect(app.tollgate.backends.get('b')?.status).toBe('healthy')
  })
})

describe('a backend answers 503 or 429 with Retry-After', () => {
  for (const mode of ['error-503', 'error-429'] as const) {
    it(`${mode}: load moves off it for the Retry-After time, then comes back`, async () => {
      // In-process fake servers here: the failure mode is switched at runtime and the requests
      // each one received are counted on its side of the socket.
      const fakes = await Promise.all(
        ['a', 'b', 'c'].map((name) => startFakeModelServer({ name, retryAfterSeconds: 2 })),
      )
      closers.push(() => Promise.all(fakes.map((f) => f.close())).then(() => {}))
      const { app, port } = await gateway({
        backends: fakes.map((f) => ({ id: f.name, url: f.url })),
        strategy: 'round-robin',
        // Ejection stays out of the way: this is about cool-downs.
        health: { outlier: false },
      })
      const b = fakes[1]!

      b.setFailureMode(mode, { retryAfterSeconds: 2 })
      b.resetStats()
      const during = await load(150, 4, () => chat(port))
      expect(during.every((a) => a.status === 200 && backendOf(a) !== 'b')).toBe(true)
      // A 2 s cool-down from the first answer: b saw the first round's request(s) and nothing more
      // while that load ran (150 requests would have sent it 50).
      expect(b.stats.requests).toBeGreaterThanOrEqual(1)
      expect(b.stats.requests).toBeLessThanOrEqual(4)
      expect(app.tollgate.backends.get('b')?.status).toBe('cooling-down')

      b.setFailureMode('none')
      await waitFor(
        () => app.tollgate.backends.get('b')?.status === 'healthy',
        5_000,
        'the cool-down to run out',
      )
      const after = await load(60, 3, () => chat(port))
      expect(after.every((a) => a.status === 200)).toBe(true)
      expect(after.filter((a) => backendOf(a) === 'b').length).toBeGreaterThanOrEqual(10)
    })
  }
})

describe('a backend stalls (accepts, reads, never answers)', () => {
  it('times out at the first byte, fails over, is ejected, and the load moves to the others', async () => {
    const ports = await Promise.all([freePort(), freePort(), freePort()])
    await backend(ports[0]!, 'a')
    await backend(ports[1]!, 'b', ['--failure', 'stall'])
    await backend(ports[2]!, 'c')
    const { app, port } = await gateway({
      backends: ['a', 'b', 'c'].map((id, i) => ({ id, url: `http://127.0.0.1:${ports[i]}` })),
      strategy: 'round-robin',
      firstByteTimeoutMs: 200,
      health: { outlier: { consecutiveFailures: 2, baseEjectionMs: 60_000 } },
    })

    const started = Date.now()
    const answers = await load(120, 4, () => chat(port))
    // Bounded: nothing waited anywhere near as long as it would without the first-byte timeout.
    expect(Date.now() - started).toBeLessThan(15_000)

    // A request that reached the stalled backend timed out at the first byte and was replayed on
    // another backend: the client never saw the stall.
    expect(answers.every((a) => a.status === 200 && backendOf(a) !== 'b')).toBe(true)
    expect(app.tollgate.backends.get('b')?.status).toBe('ejected')
    // Every request after the ejection went to a and c, and all of them succeeded.
    expect(answers.slice(20).every((a) => a.status === 200 && backendOf(a) !== 'b')).toBe(true)
  })
})
