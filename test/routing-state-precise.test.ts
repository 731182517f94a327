import http from 'node:http'
import type { BackendsHandle } from '@tollgate/core'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { FakeModelServer } from '../examples/fake-model-server.js'
import { Cleanup, chat, fake, listen, send, waitFor } from './helpers/http.js'
import { ask, routingPrefix, shareReturningHome, sharing, turn } from './helpers/replica-conversations.js'
import { ROUTING_GATEWAYS } from './helpers/routing-gateways.js'

// `precise-prefix` on gateway replicas that share `routingState`: each replica subscribes to the
// engines' KV events itself; the capacity leases, the counts and the fallback's index of where
// prompts were sent are shared through Redis.
const cleanup = new Cleanup()
afterEach(() => cleanup.run())
let redis: Redis
beforeAll(() => {
  redis = new Redis({ host: '127.0.0.1', port: 6379, maxRetriesPerRequest: 1 })
})
afterAll(() => redis.disconnect())

function feed(backends: BackendsHandle, id: string) {
  const found = backends.kvEvents()?.feeds.find((f) => f.backend === id)
  if (found === undefined) throw new Error(`no KV feed for ${id}`)
  return found
}

/** Until every replica's subscription to `engine` is live (ZMQ's slow joiner: probe until events arrive). */
async function subscribed(replicas: BackendsHandle[], engine: FakeModelServer): Promise<void> {
  const port = Number(new URL(engine.url).port)
  for (let probe = 0; replicas.some((r) => feed(r, engine.name).batches === 0); probe++) {
    const body = chat({ messages: [{ role: 'user', content: `probe ${probe} `.repeat(40) }], max_tokens: 1 })
    expect((await send(port, { path: '/v1/chat/completions', body })).status).toBe(200)
    const deadline = Date.now() + 200
    while (replicas.some((r) => feed(r, engine.name).batches === 0) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 5))
  }
}

/** A `/tokenize` that never answers: every request is routed by the fallback index. */
async function stalledTokenizer(): Promise<string> {
  const stalled = http.createServer(() => {})
  const port = await listen(stalled)
  cleanup.add(
    () =>
      new Promise<void>((resolve) => {
        stalled.closeAllConnections()
        stalled.close(() => resolve())
      }),
    null,
  )
  return `http://127.0.0.1:${port}/tokenize`
}

describe.each(ROUTING_GATEWAYS)('%s: precise-prefix replicas sharing routingState', (_name, start) => {
  it('returns a conversation to its first backend across replicas when no tokens come (the shared fallback index)', async () => {
    const fakes = await Promise.all(
      ['a', 'b', 'c'].map((name) =>
        fake(cleanup, { name, timePerTokenMs: 10, answerTokens: 1_000, kvEvents: {} }),
      ),
    )
    const prefix = routingPrefix()
    const tokenizeUrl = await stalledTokenizer()
    const replicas = await Promise.all(
      [0, 1, 2].map(() =>
        start(cleanup, {
          backends: fakes.map((f) => ({ id: f.name, url: f.url, kvEvents: f.kvEvents!.endpoint })),
          strategy: 'precise-prefix',
          precisePrefix: { tokenizeUrl, tokenizeTimeoutMs: 50 },
          routingState: { redis, prefix },
        }),
      ),
    )
    await sharing(redis, prefix, 3)
    const share = await shareReturningHome(replicas.map((r) => r.port))
    expect(replicas.every((r) => r.backends.kvEvents()?.routing.requests === 0)).toBe(true)
    expect(share).toBeGreaterThanOrEqual(0.9)
  })

  it('routes by the engines’ events on every replica and holds maxConcurrency across them', async () => {
    const fakes = await Promise.all(
      ['a', 'b'].map((name) => fake(cleanup, { name, timeToFirstTokenMs: 60, kvEvents: {} })),
    )
    const prefix = routingPrefix()
    const replicas = await Promise.all(
      [0, 1].map(() =>
        start(cleanup, {
          backends: fakes.map((f) => ({
            id: f.name,
            url: f.url,
            kvEvents: f.kvEvents!.endpoint,
            maxConcurrency: 1,
          })),
          strategy: 'precise-prefix',
          precisePrefix: { tokenizeTimeoutMs: 10_000 },
          routingState: { redis, prefix },
        }),
      ),
    )
    await sharing(redis, prefix, 2)
    for (const f of fakes)
      await subscribed(
        replicas.map((r) => r.backends),
        f,
      )
    const system = `north: ${'you answer questions about the house rules and cite their sources. '.repeat(30)}`
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) => ask(replicas[i % 2]!.port, turn(system, i % 3))),
    )
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200))
    for (const f of fakes) expect(f.stats.maxConcurrent).toBeLessThanOrEqual(1)
    // Both replicas found the prompt in an engine's cache by its events.
    for (const r of replicas) expect(r.backends.kvEvents()?.routing.cacheHits).toBeGreaterThan(0)
    await waitFor(async () => {
      const counts = await Promise.all(fakes.map((f) => redis.hgetall(`${prefix}{routing}:b:${f.name}`)))
      return counts.every((c) => Object.entries(c).every(([k, v]) => !k.startsWith('i:') || v === '0'))
    }, 'no request counted in flight')
  })
})
