import http from 'node:http'
import type { BackendsHandle } from '@tollgate/core'
import { afterEach, describe, expect, it } from 'vitest'
import type { FakeModelServer } from '../examples/fake-model-server.js'
import { startFastify } from './helpers/gateways.js'
import { type Answer, Cleanup, chat, fake, listen, send, waitFor } from './helpers/http.js'
import { sampleValue, scrape } from './helpers/metrics-text.js'
import { ROUTING_GATEWAYS } from './helpers/routing-gateways.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

/** A prompt of about 500 tokens (31 full blocks of 16) that no other prompt here starts like. */
function prompt(name: string): Record<string, unknown> {
  const system = `${name}: ${'you answer questions about the house rules and cite their sources. '.repeat(30)}`
  return chat({
    messages: [
      { role: 'system', content: system },
      { role: 'user', content: 'and?' },
    ],
    max_tokens: 1,
  })
}

function ask(port: number, body: Record<string, unknown>): Promise<Answer> {
  return send(port, { path: '/v1/chat/completions', body })
}

/** Sends straight to a backend, as another gateway replica or a direct client would. */
function direct(backend: FakeModelServer, body: Record<string, unknown>): Promise<Answer> {
  return send(Number(new URL(backend.url).port), { path: '/v1/chat/completions', body })
}

function cached(answer: Answer): number {
  return answer.json().usage.prompt_tokens_details.cached_tokens
}

function feed(backends: BackendsHandle, id: string) {
  const found = backends.kvEvents()?.feeds.find((f) => f.backend === id)
  if (found === undefined) throw new Error(`no KV feed for ${id}`)
  return found
}

/**
 * Until the gateway's subscription to `engine` is live: a SUB socket connects in the background,
 * and what the engine publishes before that is not received (ZMQ's slow joiner), so probe prompts
 * go out until one's events arrive.
 */
async function subscribed(backends: BackendsHandle, engine: FakeModelServer): Promise<void> {
  for (let probe = 0; feed(backends, engine.name).batches === 0; probe++) {
    expect(
      (
        await direct(
          engine,
          chat({ messages: [{ role: 'user', content: `probe ${probe} `.repeat(40) }], max_tokens: 1 }),
        )
      ).status,
    ).toBe(200)
    const deadline = Date.now() + 200
    while (feed(backends, engine.name).batches === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 5))
  }
}

/** Until the gateway's view of `id` has applied every batch its engine published so far. */
async function caughtUp(backends: BackendsHandle, id: string, batches: number): Promise<void> {
  await waitFor(() => feed(backends, id).batches >= batches, `${batches} event batches from ${id}`)
}

/** Two fakes whose caches hold about two such prompts each, so a third evicts the first. */
async function smallEngines(encoding: 'array' | 'map' = 'array', replay = false) {
  return Promise.all(
    ['a', 'b'].map((name) =>
      fake(cleanup, {
        name,
        kvCacheTokens: 1_200,
        kvEvents: { encoding, ...(replay ? { replayPort: 0 } : {}) },
      }),
    ),
  )
}

function kvBackends(fakes: FakeModelServer[], replay = false) {
  return fakes.map((f) => ({
    id: f.name,
    url: f.url,
    kvEvents: f.kvEvents!.endpoint,
    ...(replay ? { kvEventsReplay: f.kvEvents!.replayEndpoint! } : {}),
  }))
}

/** Tokenizing may take long on a busy host; only the fallback test wants it to fail. */
const PATIENT = { tokenizeTimeoutMs: 10_000 }

async function preciseGateway(start: (typeof ROUTING_GATEWAYS)[number][1], fakes: FakeModelServer[]) {
  const gateway = await start(cleanup, {
    backends: kvBackends(fakes),
    strategy: 'precise-prefix',
    precisePrefix: PATIENT,
  })
  for (const f of fakes) await subscribed(gateway.backends, f)
  return gateway
}

describe.each(ROUTING_GATEWAYS)('%s: precise prefix routing from KV events', (_name, start) => {
  it.each(['array', 'map'] as const)(
    'reads the engine feed (%s encoding) and sends a prompt to the backend whose cache holds it',
    async (encoding) => {
      const fakes = await smallEngines(encoding)
      const { port, backends } = await preciseGateway(start, fakes)
      // Stored straight on b: only its KV events can tell the gateway.
      const seen = feed(backends, 'b').batches
      expect((await direct(fakes[1]!, prompt('north'))).status).toBe(200)
      await caughtUp(backends, 'b', seen + 1)
      for (let i = 0; i < 3; i++) {
        const answer = await ask(port, prompt('north'))
        expect(answer.headers['x-backend']).toBe('b')
        expect(cached(answer)).toBeGreaterThan(0)
      }
      expect(backends.kvEvents()?.routing.cacheHits).toBe(3)
    },
  )

  it('follows an eviction to the backend that really holds the prefix, where the sent-to index is wrong', async () => {
    const fakes = await smallEngines()
    const [a, b] = fakes as [FakeModelServer, FakeModelServer]
    const { port, backends } = await preciseGateway(start, fakes)
    const seen = { a: feed(backends, 'a').batches, b: feed(backends, 'b').batches }
    const first = await ask(port, prompt('north'))
    const holder = first.headers['x-backend'] === 'a' ? a : b
    const other = holder === a ? b : a
    await caughtUp(backends, holder.name, seen[holder.name as 'a' | 'b'] + 1)
    const [holderBatches, otherBatches] = [
      feed(backends, holder.name).batches,
      feed(backends, other.name).batches,
    ]
    // The holder's cache fills with other prompts and evicts north; the other backend gets north.
    for (const name of ['south', 'east', 'west'])
      expect((await direct(holder, prompt(name))).status).toBe(200)
    expect((await direct(other, prompt('north'))).status).toBe(200)
    await caughtUp(backends, holder.name, holderBatches + 3)
    await caughtUp(backends, other.name, otherBatches + 1)
    const answer = await ask(port, prompt('north'))
    expect(answer.headers['x-backend']).toBe(other.name)
    expect(cached(answer)).toBeGreaterThan(0)
  })

  it('prefix-affinity, by contrast, keeps sending an evicted prefix where it once sent it', async () => {
    const fakes = await smallEngines()
    const [a, b] = fakes as [FakeModelServer, FakeModelServer]
    const { port } = await start(cleanup, {
      backends: fakes.map((f) => ({ id: f.name, url: f.url })),
      strategy: 'prefix-affinity',
    })
    const holder = (await ask(port, prompt('north'))).headers['x-backend'] === 'a' ? a : b
    const other = holder === a ? b : a
    for (const name of ['south', 'east', 'west'])
      expect((await direct(holder, prompt(name))).status).toBe(200)
    expect((await direct(other, prompt('north'))).status).toBe(200)
    const answer = await ask(port, prompt('north'))
    expect(answer.headers['x-backend']).toBe(holder.name)
    expect(cached(answer)).toBe(0)
  })

  it('routes by where prompts were sent when the engine cannot tokenize in time, and the request still goes out', async () => {
    const fakes = await smallEngines()
    // A tokenizer that never answers: every request waits tokenizeTimeoutMs, then goes by the approximate index.
    const stalled = http.createServer(() => {})
    const stalledPort = await listen(stalled)
    cleanup.add(
      () =>
        new Promise<void>((resolve) => {
          stalled.closeAllConnections()
          stalled.close(() => resolve())
        }),
      null,
    )
    const { port, backends } = await start(cleanup, {
      backends: kvBackends(fakes),
      strategy: 'precise-prefix',
      precisePrefix: { tokenizeUrl: `http://127.0.0.1:${stalledPort}/tokenize`, tokenizeTimeoutMs: 50 },
    })
    const served = new Set<string>()
    for (let i = 0; i < 3; i++) {
      const answer = await ask(port, prompt('north'))
      expect(answer.status).toBe(200)
      served.add(String(answer.headers['x-backend']))
    }
    expect(served.size).toBe(1)
    expect(backends.kvEvents()?.routing).toMatchObject({ requests: 0, tokenizeFailures: 3 })
  })
})

describe('KV event feed gaps', () => {
  async function gateway(replay: boolean) {
    const fakes = await smallEngines('array', replay)
    const gate = await startFastify(
      cleanup,
      {
        backends: kvBackends(fakes, replay),
        strategy: 'precise-prefix',
        precisePrefix: PATIENT,
        metrics: true,
      } as never,
      (app) => {
        app.post('/v1/chat/completions', app.tollgate.forward())
        app.get('/metrics', app.tollgate.metrics())
      },
    )
    const backends = gate.app.tollgate.backends as BackendsHandle
    for (const f of fakes) await subscribed(backends, f)
    return { fakes, port: gate.port, backends }
  }

  it('clears the view of a backend whose feed skipped a sequence number, and counts the gap', async () => {
    const { fakes, port, backends } = await gateway(false)
    const a = fakes[0]!
    const seen = feed(backends, 'a').batches
    expect((await direct(a, prompt('north'))).status).toBe(200)
    await caughtUp(backends, 'a', seen + 1)
    a.kvEvents!.dropNext(1)
    expect((await direct(a, prompt('south'))).status).toBe(200)
    expect((await direct(a, prompt('east'))).status).toBe(200)
    await waitFor(() => feed(backends, 'a').gaps === 1, 'the gap')
    // What the engine stored before the gap is no longer trusted; only east, after it, is known.
    expect(feed(backends, 'a')).toMatchObject({ cleared: 1, replayed: 0 })
    expect((await ask(port, prompt('north'))).status).toBe(200)
    expect(backends.kvEvents()?.routing.cacheHits).toBe(0)
    const samples = await scrape(port, '/metrics', [
      'tollgate_kv_events_gaps_total',
      'tollgate_kv_events_cleared_total',
    ])
    expect(sampleValue(samples, 'tollgate_kv_events_gaps_total', { backend: 'a' })).toBe(1)
    expect(sampleValue(samples, 'tollgate_kv_events_cleared_total', { backend: 'a' })).toBe(1)
  })

  it('clears the view when the engine restarts, its sequence starting over', async () => {
    const { fakes, backends } = await gateway(false)
    const a = fakes[0]!
    const endpoint = a.kvEvents!.endpoint
    const seen = feed(backends, 'a').batches
    expect((await direct(a, prompt('north'))).status).toBe(200)
    await caughtUp(backends, 'a', seen + 1)
    await a.close()
    // The same feed address, a new engine: an empty cache, sequence numbers from 0.
    // ZMQ releases the port on its own thread, a moment after close.
    const port = Number(endpoint.slice(endpoint.lastIndexOf(':') + 1))
    let again: FakeModelServer | undefined
    while (again === undefined) {
      again = await fake(cleanup, { name: 'a', kvCacheTokens: 1_200, kvEvents: { port } }).catch(async () => {
        await new Promise((r) => setTimeout(r, 20))
        return undefined
      })
    }
    for (let probe = 0; feed(backends, 'a').cleared === 0; probe++) {
      expect((await direct(again!, prompt(`probe ${probe}`))).status).toBe(200)
      const deadline = Date.now() + 200
      while (feed(backends, 'a').cleared === 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 5))
    }
    expect(feed(backends, 'a')).toMatchObject({ cleared: 1, gaps: 0 })
  })

  it('fills a gap from the replay socket and keeps the view', async () => {
    const { fakes, port, backends } = await gateway(true)
    const a = fakes[0]!
    const seen = feed(backends, 'a').batches
    expect((await direct(a, prompt('north'))).status).toBe(200)
    await caughtUp(backends, 'a', seen + 1)
    a.kvEvents!.dropNext(1)
    expect((await direct(a, prompt('south'))).status).toBe(200)
    expect((await direct(a, prompt('east'))).status).toBe(200)
    await waitFor(() => feed(backends, 'a').replayed === 1, 'the replay')
    expect(feed(backends, 'a')).toMatchObject({ gaps: 1, cleared: 0 })
    // south came only through the replay, and routing finds it on a.
    const answer = await ask(port, prompt('south'))
    expect(answer.headers['x-backend']).toBe('a')
    expect(cached(answer)).toBeGreaterThan(0)
    const samples = await scrape(port, '/metrics', [
      'tollgate_kv_events_gaps_total',
      'tollgate_kv_events_cleared_total',
    ])
    expect(sampleValue(samples, 'tollgate_kv_events_gaps_total', { backend: 'a' })).toBe(1)
    expect(sampleValue(samples, 'tollgate_kv_events_cleared_total', { backend: 'a' })).toBe(0)
  })
})
