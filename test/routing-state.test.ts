import { randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { type Answer, Cleanup, chat, fake, send, waitFor } from './helpers/http.js'
import { ROUTING_GATEWAYS } from './helpers/routing-gateways.js'

// Gateway replicas in one process sharing the test Redis through `routingState`, each under its
// own key prefix. The kill and outage tests (replicas and Redis in processes of their own) are in
// test/faults/routing-replicas.test.ts.
const cleanup = new Cleanup()
afterEach(() => cleanup.run())
let redis: Redis
beforeAll(() => {
  redis = new Redis({ host: '127.0.0.1', port: 6379, maxRetriesPerRequest: 1 })
})
afterAll(() => redis.disconnect())

const prefixOf = () => `tollgate-test:${randomBytes(6).toString('hex')}:`

/** A replica shares from its first answered heartbeat on: then it is in the replica set. */
function sharing(prefix: string, replicas: number): Promise<void> {
  return waitFor(
    async () => (await redis.zcard(`${prefix}{routing}:replicas`)) === replicas,
    'replicas sharing',
  )
}

function ask(port: number, body: Record<string, unknown> = chat({ max_tokens: 2 })): Promise<Answer> {
  return send(port, { path: '/v1/chat/completions', body })
}

function turn(system: string, n: number): Record<string, unknown> {
  const messages: { role: string; content: string }[] = [{ role: 'system', content: system }]
  for (let i = 0; i < n; i++) {
    messages.push({ role: 'user', content: `question ${i}` }, { role: 'assistant', content: `answer ${i}` })
  }
  messages.push({ role: 'user', content: `question ${n}` })
  return chat({ messages, max_tokens: 2 })
}

describe.each(ROUTING_GATEWAYS)('%s: replicas sharing routingState', (_name, start) => {
  it('holds maxConcurrency per backend across replicas: no backend ever runs more than it', async () => {
    const fakes = await Promise.all(['a', 'b'].map((name) => fake(cleanup, { name, timeToFirstTokenMs: 60 })))
    const prefix = prefixOf()
    const replicas = await Promise.all(
      [0, 1].map(() =>
        start(cleanup, {
          backends: fakes.map((f) => ({ id: f.name, url: f.url, maxConcurrency: 2 })),
          strategy: 'least-connections',
          routingState: { redis, prefix },
        }),
      ),
    )
    await sharing(prefix, 2)
    const answers = await Promise.all(Array.from({ length: 24 }, (_, i) => ask(replicas[i % 2]!.port)))
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200))
    for (const f of fakes) expect(f.stats.maxConcurrent).toBeLessThanOrEqual(2)
    // Both backends served: the capacity is the backends', not one replica's.
    expect(fakes.every((f) => f.stats.completed > 0)).toBe(true)
    // Nothing stays counted once every request has ended.
    await waitFor(async () => {
      const counts = await redis.hgetall(`${prefix}{routing}:b:a`)
      return Object.entries(counts).every(([k, v]) => !k.startsWith('i:') || v === '0')
    }, 'no request counted in flight')
  })

  it('without routingState each replica counts alone (the behaviour the option fixes)', async () => {
    const fakes = await Promise.all(['a'].map((name) => fake(cleanup, { name, timeToFirstTokenMs: 60 })))
    const replicas = await Promise.all(
      [0, 1].map(() =>
        start(cleanup, { backends: fakes.map((f) => ({ id: f.name, url: f.url, maxConcurrency: 2 })) }),
      ),
    )
    await Promise.all(Array.from({ length: 12 }, (_, i) => ask(replicas[i % 2]!.port)))
    expect(fakes[0]!.stats.maxConcurrent).toBe(4)
  })

  it('returns a conversation opened on one replica and continued on others to its first backend', async () => {
    const fakes = await Promise.all(
      ['a', 'b', 'c'].map((name) => fake(cleanup, { name, timePerTokenMs: 10, answerTokens: 1_000 })),
    )
    const prefix = prefixOf()
    const replicas = await Promise.all(
      [0, 1, 2].map(() =>
        start(cleanup, {
          backends: fakes.map((f) => ({ id: f.name, url: f.url })),
          strategy: 'prefix-affinity',
          routingState: { redis, prefix },
        }),
      ),
    )
    await sharing(prefix, 3)
    // Replica 0 alone has two long answers running, so it places new conversations by a load
    // the other replicas do not see: only the shared index tells them where they went.
    const background = [0, 1].map(() => ask(replicas[0]!.port, chat({ max_tokens: 60 })))
    await new Promise((resolve) => setTimeout(resolve, 100))
    const conversations = Array.from(
      { length: 6 },
      (_, i) => `conversation ${i}: ${'Answer in the voice of the house and cite your sources. '.repeat(40)}`,
    )
    const first = new Map<string, string>()
    for (const system of conversations) {
      const answer = await ask(replicas[0]!.port, turn(system, 0))
      expect(answer.status).toBe(200)
      first.set(system, String(answer.headers['x-backend']))
    }
    let returned = 0
    let later = 0
    for (let n = 1; n < 4; n++) {
      for (const system of conversations) {
        const answer = await ask(replicas[1 + (n % 2)]!.port, turn(system, n))
        expect(answer.status).toBe(200)
        later++
        if (first.get(system) === String(answer.headers['x-backend'])) returned++
      }
    }
    await Promise.all(background)
    expect(returned / later).toBeGreaterThanOrEqual(0.9)
  })
})
